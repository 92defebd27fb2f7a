package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The fault runs' hooks into runMode (setup before the daemons, the lying
// peer before the clock) and their checks after the pulls (stores hashed,
// resumed bytes, the liar's counts).

// prepare runs before the daemons start (disk-full: node 1's data dir
// becomes a small tmpfs).
func (fr *faultRun) prepare(ctx context.Context, dir string, nodes []*nodeProc) error {
	fr.dir, fr.nodes = dir, nodes
	if fr.spec.name == "disk-full" {
		fr.setRole(0, roleDiskFull)
		return fr.l.mountTmpfs(ctx, nodes[0].dir, diskFullSize(fr.l.image.ImageBytes))
	}
	return nil
}

// daemonArgs are extra flags for node i's daemon.
func (fr *faultRun) daemonArgs(i int) []string {
	if fr != nil && fr.spec.name == "disk-full" && i == 0 {
		// No quota: the disk itself fills (ENOSPC), not the store's cap.
		return []string{"--cache-max-bytes=0"}
	}
	return nil
}

// startLiar runs the lying peer in its namespace and waits until it has
// announced every blob of the image to every node.
func (fr *faultRun) startLiar(ctx context.Context, mp *procs, seederID, psk string) error {
	if fr.spec.liar == "" {
		return nil
	}
	l := fr.l
	if l.cfg.LiarBin == "" {
		bin, err := buildTool(ctx, l.tmp, "./bench/cmd/shoal-liar")
		if err != nil {
			return err
		}
		l.cfg.LiarBin = bin
	}
	fr.liarOut = filepath.Join(fr.dir, "liar.json")
	args := []string{"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", liarAddr, p2pPort), "--psk-file", psk,
		"--bootstrap", fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", seederAddr, p2pPort, seederID), "--seeder", seederID,
		"--mode", fr.spec.liar, "--stats", fr.liarOut, "--registry", registryName, "--repo", imageRepo}
	for _, d := range append([]string{l.image.Config}, l.image.Layers...) {
		if d != "" {
			args = append(args, "--provide", d)
		}
	}
	for _, np := range fr.nodes {
		args = append(args, "--victim", fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", np.h.addr, p2pPort, np.peer))
	}
	out := filepath.Join(fr.dir, "liar.out")
	p, err := mp.start("liar", out, filepath.Join(fr.dir, "liar.log"), "ip", nsCmd(l.net.liar.ns, l.cfg.LiarBin, args...)...)
	if err != nil {
		return err
	}
	fr.liar = p
	if err := waitFor(ctx, 60*time.Second+fr.l.cfg.phaseTimeout(1, l.image.ImageBytes), p, func() bool { return strings.Contains(readFile(out), "announced ") }); err != nil {
		return fmt.Errorf("liar did not start: %w: %s", err, tail(filepath.Join(fr.dir, "liar.log"), 2000))
	}
	l.logf("%s: lying peer (%s) announced the image: %s", fr.spec.name, fr.spec.liar, strings.TrimSpace(readFile(out)))
	return nil
}

// finish adds the fault's checks to res after the pulls: the counters of
// the daemons' earlier lives, resumed bytes, the clients' corrupt bytes,
// every store hashed, the liar's counts.
func (fr *faultRun) finish(res *ModeResult, outcomes map[int]PullResult) {
	for k := range res.NodesList {
		n := &res.NodesList[k]
		i := n.Node - 1
		np := fr.nodes[i]
		if e, ok := fr.earlier[i]; ok {
			for s, v := range e.Fetched {
				n.BytesBySource[s] += v
			}
			n.UploadedBytes += e.Uploaded
			n.VerifyFailures += e.VerifyFailures
		}
		n.ResumedBytes = resumedBytes(np.log)
		n.CorruptBytes = outcomes[i].CorruptBytes
		if r := fr.diskRetry; r != nil && fr.roles[i] == roleDiskFull {
			n.CorruptBytes += r.CorruptBytes
		}
	}
	dirs := []string{filepath.Join(fr.dir, "seeder")}
	for _, np := range fr.nodes {
		dirs = append(dirs, np.dir)
	}
	sc := verifyStores(dirs)
	fr.fig.StoredBlobs, fr.fig.StoredBytes, fr.fig.CorruptStoredBytes = sc.blobs, sc.bytes, sc.corrupt
	for _, b := range sc.bad {
		fr.note("corrupt stored blob: %s", b)
	}
	if fr.liar != nil {
		fr.liar.stop(3 * time.Second)
		var st LiarStats
		if err := json.Unmarshal([]byte(readFile(fr.liarOut)), &st); err != nil {
			fr.note("liar stats: %v", err)
		} else {
			fr.fig.Liar = &st
		}
	}
}

// storeCheck is what hashing the stores found.
type storeCheck struct {
	blobs   int
	bytes   int64
	corrupt int64
	bad     []string
}

// verifyStores hashes every complete blob (blobs/sha256/<hex>) under each
// data dir against its name, two at a time.
func verifyStores(dirs []string) storeCheck {
	var files []string
	for _, d := range dirs {
		ms, _ := filepath.Glob(filepath.Join(d, "blobs", "sha256", "*"))
		files = append(files, ms...)
	}
	var mu sync.Mutex
	var out storeCheck
	work := make(chan string)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				n, ok, err := hashFile(f)
				mu.Lock()
				out.blobs++
				out.bytes += n
				if err != nil || !ok {
					out.corrupt += n
					out.bad = append(out.bad, fmt.Sprintf("%s (%d bytes, err %v)", f, n, err))
				}
				mu.Unlock()
			}
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	return out
}

func hashFile(path string) (int64, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false, err
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return n, false, err
	}
	return n, hex.EncodeToString(h.Sum(nil)) == filepath.Base(path), nil
}

// resumedBytes sums the "resuming partial download" lines of a daemon's log.
func resumedBytes(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	var total int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), "resuming partial download") {
			continue
		}
		var l struct {
			Bytes int64 `json:"bytes"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			total += l.Bytes
		}
	}
	return total
}

// readPull reads a puller's result file; false while it has not reported.
func readPull(path string) (PullResult, bool) {
	var r PullResult
	b := strings.TrimSpace(readFile(path))
	if b == "" || json.Unmarshal([]byte(b), &r) != nil {
		return r, false
	}
	return r, true
}

// cleanup puts cut links back (idempotent; also when a run failed).
func (fr *faultRun) cleanup() {
	if fr == nil || fr.l.net == nil {
		return
	}
	for _, ns := range []string{fr.l.net.origin.ns, fr.l.net.seeder.ns} {
		_ = setLink(context.Background(), ns, true)
	}
	for i := range fr.nodes {
		if fr.roles[i] == roleFlapped {
			_ = setLink(context.Background(), fr.nodes[i].h.ns, true)
		}
	}
	if fr.liar != nil {
		fr.liar.signal(syscall.SIGTERM)
	}
}
