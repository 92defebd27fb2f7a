package harness

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Blackhole is a loopback TCP listener that accepts every connection,
// counts it and never answers: the upstream an open proxy would be steered
// to. A test that expects no dial checks Accepts() == 0.
type Blackhole struct {
	ln      net.Listener
	accepts atomic.Int64
	open    atomic.Int64
	mu      sync.Mutex
	conns   []net.Conn
	done    chan struct{}
}

// StartBlackhole listens on 127.0.0.1 and closes at the end of the test.
func StartBlackhole(t testing.TB) *Blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Blackhole{ln: ln, done: make(chan struct{})}
	go b.serve()
	t.Cleanup(b.Close)
	return b
}

func (b *Blackhole) serve() {
	defer close(b.done)
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.accepts.Add(1)
		b.open.Add(1)
		b.mu.Lock()
		b.conns = append(b.conns, c)
		b.mu.Unlock()
		go func() {
			// Read (and drop) until the dialer hangs up.
			_, _ = io.Copy(io.Discard, c)
			b.open.Add(-1)
		}()
	}
}

// Addr is the listener's host:port.
func (b *Blackhole) Addr() string { return b.ln.Addr().String() }

// Accepts is how many connections were accepted so far.
func (b *Blackhole) Accepts() int64 { return b.accepts.Load() }

// Open is how many accepted connections the dialer still holds.
func (b *Blackhole) Open() int64 { return b.open.Load() }

// Close stops listening and drops every connection held.
func (b *Blackhole) Close() {
	_ = b.ln.Close()
	<-b.done
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns = nil
}
