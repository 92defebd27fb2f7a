// Package hostile is the hostile-peer harness: a real libp2p host, a member
// of the test's private network, that does whatever a test scripts. It can
// announce any digest in the DHT (many identities flood it), answer the
// chunk protocol with any frame sequence (lies about sizes, garbage, bytes
// with stolen records, nothing at all), and open streams to a victim on
// which it sends any frames and then stops reading. Only tests import it.
package hostile

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/discovery"
	"github.com/shoal-dev/shoal/p2p/host"
)

// Options configure a hostile peer.
type Options struct {
	// PSK makes the peer a member of that private network (the insider
	// threat); nil is an outsider on an open network.
	PSK []byte
	// Bootstrap, when set, joins the DHT through these peers, so the peer
	// can announce digests.
	Bootstrap []peer.AddrInfo
	// Listen are the peer's listen addresses (nil: a port on loopback).
	Listen []string
}

// Peer is a hostile member of the swarm.
type Peer struct {
	Host libhost.Host
	DHT  *discovery.DHT
	Key  crypto.PrivKey

	mu      sync.Mutex
	streams []network.Stream
}

// New starts a hostile peer on loopback; it stops when the test ends.
func New(t testing.TB, opts Options) *Peer {
	t.Helper()
	p, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Start starts a hostile peer outside a test (the bench lab runs one as a
// process in a network namespace); the caller stops it with Close.
func Start(ctx context.Context, opts Options) (*Peer, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	listen := opts.Listen
	if len(listen) == 0 {
		listen = []string{"/ip4/127.0.0.1/tcp/0"}
	}
	h, err := host.New(host.Config{Listen: listen, PSK: opts.PSK, Key: key}, zap.NewNop())
	if err != nil {
		return nil, err
	}
	p := &Peer{Host: h, Key: key}
	if len(opts.Bootstrap) > 0 {
		p.DHT, err = discovery.New(ctx, h, discovery.Config{Bootstrap: opts.Bootstrap}, zap.NewNop(), nil)
		if err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	return p, nil
}

// Many starts n hostile peers with distinct identities.
func Many(t testing.TB, n int, opts Options) []*Peer {
	t.Helper()
	ps := make([]*Peer, n)
	for i := range ps {
		ps[i] = New(t, opts)
	}
	return ps
}

// Close resets the streams the peer opened and stops it.
func (p *Peer) Close() {
	p.mu.Lock()
	for _, s := range p.streams {
		_ = s.Reset()
	}
	p.streams = nil
	p.mu.Unlock()
	if p.DHT != nil {
		_ = p.DHT.Close()
	}
	_ = p.Host.Close()
}

// Info is the peer's address for a victim to dial.
func (p *Peer) Info() peer.AddrInfo {
	return peer.AddrInfo{ID: p.Host.ID(), Addrs: p.Host.Addrs()}
}

// Provide announces the peer as a holder of d in the DHT (it holds
// nothing). It needs Options.Bootstrap (ErrNoDHT).
func (p *Peer) Provide(ctx context.Context, d digest.Digest) error {
	if p.DHT == nil {
		return ErrNoDHT
	}
	p.DHT.StartProviding(ctx, d)
	return nil
}

// A Behavior answers one chunk-protocol stream a victim opened to the peer,
// after the peer read its OPEN. It may write anything; when it returns the
// stream is reset.
type Behavior func(s network.Stream, open chunk.Open)

// Answer makes the peer answer every chunk-protocol stream with b.
func (p *Peer) Answer(b Behavior) {
	chunk.Register(p.Host, func(s network.Stream) {
		defer func() { _ = s.Reset() }()
		_ = s.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := chunk.NewReader(s, nil)
		r.Allow(chunk.TypeOpen)
		m, err := r.Next()
		if err != nil {
			return
		}
		_ = s.SetReadDeadline(time.Time{})
		b(s, m.(chunk.Open))
	})
}

// Raw writes one frame of any type and body, unchecked.
func Raw(w io.Writer, typ chunk.Type, body []byte) error {
	hdr := binary.AppendUvarint([]byte{byte(typ)}, uint64(len(body)))
	_, err := w.Write(append(hdr, body...))
	return err
}

// Send writes valid frames.
func Send(w io.Writer, msgs ...chunk.Message) error {
	for _, m := range msgs {
		if err := chunk.WriteFrame(w, m); err != nil {
			return err
		}
	}
	return nil
}

// Drain reads and drops whatever the victim sends until the stream ends.
func Drain(s network.Stream) { _, _ = io.Copy(io.Discard, s) }

// Script answers with the given frames (valid messages or raw frames made
// by Frame), then holds the stream open, reading, until the victim closes
// it or hold passes.
func Script(hold time.Duration, frames ...[]byte) Behavior {
	return func(s network.Stream, _ chunk.Open) {
		for _, f := range frames {
			if _, err := s.Write(f); err != nil {
				return
			}
		}
		_ = s.SetReadDeadline(time.Now().Add(hold))
		Drain(s)
	}
}

// Frame encodes m as a frame for Script; it panics on an invalid message
// (use RawFrame for those).
func Frame(m chunk.Message) []byte {
	var b bytesWriter
	if err := chunk.WriteFrame(&b, m); err != nil {
		panic(err)
	}
	return b
}

// RawFrame encodes any type and body as a frame for Script.
func RawFrame(typ chunk.Type, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{byte(typ)}, uint64(len(body))), body...)
}

type bytesWriter []byte

func (b *bytesWriter) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// Silent reads OPEN and never answers: a provider that does not deliver.
func Silent(hold time.Duration) Behavior { return Script(hold) }

// Relay answers as the trusted source would, by asking it: HAVE is the
// source's HAVE, and every REQUEST is fetched from the source and sent on
// with the source's signed record, after tamper has had its way with the
// bytes (flip one bit, say). A nil tamper relays honestly.
func Relay(p *Peer, source peer.ID, tamper func(i int, data []byte)) Behavior {
	return func(s network.Stream, open chunk.Open) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		up, err := chunk.Dial(ctx, p.Host, source, open, chunk.ClientOptions{})
		if err != nil {
			return
		}
		defer func() { _ = up.Reset() }()
		if err := Send(s, up.Have()); err != nil {
			return
		}
		reqs := chunk.NewReader(s, nil)
		reqs.Allow(chunk.TypeRequest, chunk.TypeCancel, chunk.TypeProgress)
		go func() {
			for {
				m, err := reqs.Next()
				if err != nil {
					cancel()
					return
				}
				if r, ok := m.(chunk.Request); ok {
					if up.Request(r.Index) != nil {
						cancel()
						return
					}
				}
			}
		}()
		for {
			m, err := up.Next(ctx)
			if err != nil {
				return
			}
			if c, ok := m.(chunk.Chunk); ok {
				if tamper != nil {
					tamper(c.Index, c.Data)
				}
				if Send(s, c) != nil {
					return
				}
			}
		}
	}
}

// FlipBit is a tamper for Relay that flips one bit of every chunk.
func FlipBit(_ int, data []byte) {
	if len(data) > 0 {
		data[len(data)/2] ^= 0x10
	}
}

// Open opens a chunk-protocol stream to victim and sends OPEN; the caller
// then writes any frames and reads (or stops reading) as it likes. The
// stream is reset when the test ends.
func (p *Peer) Open(ctx context.Context, victim peer.AddrInfo, open chunk.Open) (network.Stream, error) {
	s, err := p.OpenRaw(ctx, victim)
	if err != nil {
		return nil, err
	}
	if err := Send(s, open); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return s, nil
}

// Stall opens a stream to victim for open, reads its HAVE, requests the
// given chunks and then never reads again: a slowloris on upload slots.
func (p *Peer) Stall(ctx context.Context, victim peer.AddrInfo, open chunk.Open, chunks ...int) (network.Stream, error) {
	s, err := p.Open(ctx, victim, open)
	if err != nil {
		return nil, err
	}
	r := chunk.NewReader(s, nil)
	r.Allow(chunk.TypeHave, chunk.TypeError)
	m, err := r.Next()
	if err != nil {
		return nil, err
	}
	if e, ok := m.(chunk.Error); ok {
		return nil, e
	}
	for _, i := range chunks {
		if err := Send(s, chunk.Request{Index: i}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ErrNoDHT is returned by helpers that need the DHT when the peer has none.
var ErrNoDHT = errors.New("hostile: the peer did not join the DHT")
