#!/usr/bin/env python3
"""Split a CPU profile by pprof role label and by cost category (SHA-256 by caller, TLS AES-GCM, syscalls by kind, copies, yamux, GC).

Usage: python3 bench/cpusplit.py PROFILE... (several profiles are merged), e.g. the per-pull profiles that
SHOAL_BENCH_CPUPROFILE_DIR=DIR go test -run "^$" -bench Swarm -benchtime 3x ./bench/ writes:
python3 bench/cpusplit.py DIR/swarm-4-peers-N3-*.pprof
It reads `go tool pprof -traces`; the category is the leaf frame, syscalls by their caller."""
import subprocess, sys, re, collections

def val(s):
    m = re.match(r'([\d.]+)(ns|us|ms|s)$', s)
    n, u = float(m.group(1)), m.group(2)
    return n * {'ns': 1e-9, 'us': 1e-6, 'ms': 1e-3, 's': 1}[u]

def category(stack):
    leaf = stack[0]
    joined = '\n'.join(stack)
    if 'sha256' in leaf:
        if 'VerifyChunk' in joined or 'Signed).Check' in joined: return 'sha256: chunk verify'
        if 'Partial).advance' in joined or 'Partial).write' in joined: return 'sha256: blob digest (store)'
        if 'bench_test.pull' in joined or 'firstByte' in joined: return 'sha256: client digest check'
        if 'hashChunks' in joined or 'TrackChunks' in joined: return 'sha256: seeder chunk hashing'
        return 'sha256: other'
    if 'aes/gcm' in leaf or 'chacha' in leaf.lower() or 'poly1305' in leaf:
        return 'TLS AES-GCM (libp2p security)'
    if 'Syscall' in leaf or leaf.startswith('syscall.') or 'runtime/internal/syscall' in leaf:
        for f in stack:
            if 'syscall.pwrite' in f: return 'syscall: pwrite (store write)'
            if 'syscall.pread' in f: return 'syscall: pread (store read)'
            if 'sendfile' in f: return 'syscall: sendfile (shim/origin to client)'
            if 'syscall.read' in f:
                return 'syscall: read (network)'
            if 'syscall.write' in f: return 'syscall: write (network)' if 'tls' in joined or 'net.(*netFD)' in joined else 'syscall: write (file/other)'
        return 'syscall: other'
    if leaf in ('runtime.memmove',) or 'memclr' in leaf:
        if 'yamux' in joined: return 'copy: yamux buffers'
        if 'crypto/tls' in joined: return 'copy: TLS record buffers'
        if 'mallocgc' in joined: return 'copy: zeroing new buffers'
        return 'copy: other'
    if 'go-yamux' in leaf: return 'yamux (own code)'
    if any(x in joined for x in ('gcBgMarkWorker', 'gcAssist', 'gcDrain', 'runtime.bgsweep', 'runtime.scavenge')): return 'runtime: GC'
    if leaf.startswith('runtime.'): return 'runtime: sched/other'
    return 'other'

files = sys.argv[1:]
out = subprocess.run(['go', 'tool', 'pprof', '-traces'] + files, capture_output=True, text=True).stdout
blocks = out.split('-----------+-------------------------------------------------------')
tot = collections.defaultdict(lambda: collections.defaultdict(float))
for b in blocks[1:]:
    lines = [l for l in b.split('\n') if l.strip()]
    role = 'unlabelled'
    stack, v = [], None
    for l in lines:
        s = l.strip()
        if s.startswith('role:'):
            role = s.split(':', 1)[1].strip()
            continue
        if re.match(r'^\S+:\s', s) and v is None and not re.match(r'^[\d.]+(ns|us|ms|s)\s', s):
            continue  # other labels
        m = re.match(r'^([\d.]+(?:ns|us|ms|s))\s+(.*)$', s)
        if m and v is None:
            v = val(m.group(1)); stack.append(m.group(2)); continue
        if v is not None: stack.append(s)
    if v is None: continue
    tot[role][category(stack)] += v
grand = sum(sum(c.values()) for c in tot.values())
for role in sorted(tot, key=lambda r: -sum(tot[r].values())):
    rt = sum(tot[role].values())
    print(f'{role}: {rt:.2f}s ({100*rt/grand:.0f}% of {grand:.2f}s)')
    for cat, x in sorted(tot[role].items(), key=lambda kv: -kv[1]):
        if x / rt >= 0.01:
            print(f'    {x:6.2f}s {100*x/rt:4.0f}%  {cat}')
