package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/host"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal-liar:", err)
		os.Exit(1)
	}
}

// Stats is what the liar served, written to --stats on exit.
type Stats struct {
	PeerID string `json:"peer_id"`
	Mode   string `json:"mode"`
	// Streams and Chunks are per victim peer ID: chunk-protocol streams
	// the victim opened to the liar, bad chunks the liar sent it.
	Streams map[string]int `json:"streams"`
	Chunks  map[string]int `json:"chunks"`
	// Provided is how many announcements reached a victim directly.
	Provided int `json:"provided"`
}

type counter struct {
	mu sync.Mutex
	st Stats
}

func (c *counter) stream(v peer.ID) { c.mu.Lock(); c.st.Streams[v.String()]++; c.mu.Unlock() }
func (c *counter) chunk(v peer.ID)  { c.mu.Lock(); c.st.Chunks[v.String()]++; c.mu.Unlock() }

func (c *counter) write(path string) error {
	c.mu.Lock()
	b, err := json.MarshalIndent(c.st, "", "  ")
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal-liar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "listen multiaddr, e.g. /ip4/10.213.0.4/tcp/5052")
	pskFile := fs.String("psk-file", "", "the swarm's network key")
	boot := fs.String("bootstrap", "", "peer to join the DHT through, /ip4/.../tcp/.../p2p/<id>")
	seeder := fs.String("seeder", "", "the trusted seeder's peer ID (geometry and, for bitflip, the chunks)")
	mode := fs.String("mode", "garbage", "garbage (random bytes, own records) or bitflip (seeder's chunks, one bit flipped)")
	statsPath := fs.String("stats", "", "write the per-victim counts here on exit")
	registry := fs.String("registry", "", "bitflip: the registry the blobs come from, as the seeder knows it")
	repo := fs.String("repo", "", "bitflip: the repository the blobs are in")
	var provide, victims multi
	fs.Var(&provide, "provide", "digest to announce; repeatable")
	fs.Var(&victims, "victim", "peer to announce the digests to directly, /ip4/.../p2p/<id>; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *pskFile == "" || *boot == "" || *seeder == "" {
		return errors.New("--listen, --psk-file, --bootstrap and --seeder are required")
	}
	if *mode != "garbage" && *mode != "bitflip" {
		return fmt.Errorf("--mode %q: want garbage or bitflip", *mode)
	}
	psk, err := host.LoadPSK(*pskFile)
	if err != nil {
		return err
	}
	bs, err := host.ParseAddrInfos([]string{*boot})
	if err != nil {
		return err
	}
	vs, err := host.ParseAddrInfos(victims)
	if err != nil {
		return err
	}
	src, err := peer.Decode(*seeder)
	if err != nil {
		return fmt.Errorf("--seeder: %w", err)
	}
	var ds []digest.Digest
	for _, s := range provide {
		d, err := digest.Parse(s)
		if err != nil {
			return fmt.Errorf("--provide: %w", err)
		}
		ds = append(ds, d)
	}
	p, err := hostile.Start(ctx, hostile.Options{PSK: psk, Bootstrap: bs, Listen: []string{*listen}})
	if err != nil {
		return err
	}
	defer p.Close()
	c := &counter{st: Stats{PeerID: p.Host.ID().String(), Mode: *mode, Streams: map[string]int{}, Chunks: map[string]int{}}}
	var answer hostile.Behavior
	switch *mode {
	case "garbage":
		answer = p.Liar(src, time.Minute, func(v peer.ID, _ int) { c.chunk(v) })
	default:
		// A store whose bits rotted: every blob fetched whole from the
		// seeder first, then one bit of every chunk flipped; served under
		// the seeder's true records.
		hoard := hostile.NewHoard()
		for _, d := range ds {
			fctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			err := hoard.Fetch(fctx, p, src, chunk.Open{Digest: d, Registry: *registry, Repo: *repo})
			cancel()
			if err != nil {
				return fmt.Errorf("hoard %s: %w", d, err)
			}
		}
		hoard.Rot(hostile.FlipBit)
		answer = hoard.Serve(time.Minute, func(v peer.ID, _ int) { c.chunk(v) })
	}
	p.Answer(func(s network.Stream, open chunk.Open) {
		c.stream(s.Conn().RemotePeer())
		answer(s, open)
	})
	for _, d := range ds {
		if err := p.Provide(ctx, d); err != nil {
			return err
		}
	}
	for _, v := range vs {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := p.ProvideTo(pctx, v, ds...)
		cancel()
		if err != nil {
			_, _ = fmt.Fprintf(stderr, "announce to %s: %v\n", v.ID, err)
			continue
		}
		c.mu.Lock()
		c.st.Provided++
		c.mu.Unlock()
	}
	_, _ = fmt.Fprintf(stdout, "peer ID: %s\nannounced %d digests to %d victims\n", p.Host.ID(), len(ds), len(vs))
	<-ctx.Done()
	if *statsPath != "" {
		return c.write(*statsPath)
	}
	return nil
}

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string { return strings.Join(*m, " ") }

func (m *multi) Set(v string) error { *m = append(*m, v); return nil }
