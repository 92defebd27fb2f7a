package dht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-dev/shoal/p2p/host"
)

// ErrConfig is wrapped by errors about an invalid [Config].
var ErrConfig = errors.New("dht bench: invalid config")

// fleet is the coordinator's view of the worker processes and their hosts.
type fleet struct {
	dir     string
	workers []*worker
	hosts   []HostInfo // by index
}

type worker struct {
	cmd    *exec.Cmd
	client *rpc.Client
	stdin  io.Closer
	log    string
}

// clientConn is a worker's stdout (replies) and stdin (requests).
type clientConn struct {
	io.Reader
	io.WriteCloser
}

// startFleet starts the worker processes and, in them, cfg.Hosts hosts:
// the seeders first (the first with no bootstrap peer, the others through
// it), then every other host with all seeders as its bootstrap peers, as
// a daemon is configured (--bootstrap with the seeders' addresses).
func startFleet(ctx context.Context, cfg Config, dir string) (*fleet, error) {
	f := &fleet{dir: dir, hosts: make([]HostInfo, cfg.Hosts)}
	psk := filepath.Join(dir, "swarm.key")
	if err := host.WritePSKFile(psk, false); err != nil {
		return nil, err
	}
	for i := range cfg.Workers {
		w, err := spawn(ctx, cfg, dir, i)
		if err != nil {
			f.close()
			return nil, err
		}
		f.workers = append(f.workers, w)
	}
	spec := func(i int, boot []string) HostSpec {
		return HostSpec{Index: i, DataDir: filepath.Join(dir, fmt.Sprintf("host-%03d", i)), Bootstrap: boot}
	}
	// Seeder 0 alone, then the other seeders through it, then the rest.
	steps := [][]int{{0}, seq(1, cfg.Seeders), seq(cfg.Seeders, cfg.Hosts)}
	for si, idx := range steps {
		var boot []string
		switch si {
		case 1:
			boot = f.hosts[0].Addrs
		case 2:
			for i := range cfg.Seeders {
				boot = append(boot, f.hosts[i].Addrs...)
			}
		}
		per := make([][]HostSpec, len(f.workers))
		for _, i := range idx {
			w := i % len(f.workers)
			per[w] = append(per[w], spec(i, boot))
		}
		err := f.each(func(wi int, w *worker) error {
			if len(per[wi]) == 0 {
				return nil
			}
			var r StartReply
			if err := w.client.Call("Worker.Start", &StartArgs{PSKFile: psk, Hosts: per[wi]}, &r); err != nil {
				return fmt.Errorf("worker %d: start: %w", wi, err)
			}
			for _, h := range r.Hosts {
				f.hosts[h.Index] = h
			}
			return nil
		})
		if err != nil {
			f.close()
			return nil, err
		}
	}
	return f, nil
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func spawn(ctx context.Context, cfg Config, dir string, i int) (*worker, error) {
	cmd := cfg.Worker(ctx)
	logPath := filepath.Join(dir, fmt.Sprintf("worker-%d.log", i))
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("dht bench: %w", err)
	}
	cmd.Stderr = logf
	stdin, err := cmd.StdinPipe()
	if err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("dht bench: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("dht bench: %w", err)
	}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("dht bench: start worker: %w", err)
	}
	_ = logf.Close() // the child holds its own descriptor
	return &worker{
		cmd:    cmd,
		client: rpc.NewClientWithCodec(jsonrpc.NewClientCodec(clientConn{stdout, stdin})),
		stdin:  stdin,
		log:    logPath,
	}, nil
}

// each calls fn for every worker at once and joins the errors.
func (f *fleet) each(fn func(i int, w *worker) error) error {
	errs := make([]error, len(f.workers))
	var wg sync.WaitGroup
	for i, w := range f.workers {
		wg.Go(func() { errs[i] = fn(i, w) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (f *fleet) worker(hostIndex int) *worker { return f.workers[hostIndex%len(f.workers)] }

// tables gathers every host's routing table size and connections.
func (f *fleet) tables() (TableReply, error) {
	all := TableReply{Routing: map[int]int{}, Conns: map[int]int{}}
	var mu sync.Mutex
	err := f.each(func(_ int, w *worker) error {
		var r TableReply
		if err := w.client.Call("Worker.Tables", &None{}, &r); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for k, v := range r.Routing {
			all.Routing[k] = v
		}
		for k, v := range r.Conns {
			all.Conns[k] = v
		}
		return nil
	})
	return all, err
}

// provided gathers every host's successful announcements.
func (f *fleet) provided() (map[int]int, error) {
	all := map[int]int{}
	var mu sync.Mutex
	err := f.each(func(_ int, w *worker) error {
		var r ProvidedReply
		if err := w.client.Call("Worker.Provided", &None{}, &r); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for k, v := range r.OK {
			all[k] = v
		}
		return nil
	})
	return all, err
}

// stats sums the workers' resource use (the peaks are summed per process,
// so the sum is an upper bound of the fleet's simultaneous peak).
func (f *fleet) stats() (Stats, error) {
	var (
		sum Stats
		mu  sync.Mutex
	)
	err := f.each(func(_ int, w *worker) error {
		var r Stats
		if err := w.client.Call("Worker.Stats", &None{}, &r); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		sum.Goroutines += r.Goroutines
		sum.PeakGoroutines += r.PeakGoroutines
		sum.RSSBytes += r.RSSBytes
		sum.PeakRSSBytes += r.PeakRSSBytes
		sum.CPUSeconds += r.CPUSeconds
		sum.Hosts += r.Hosts
		sum.Conns += r.Conns
		return nil
	})
	return sum, err
}

// close stops every worker: closing its stdin ends its RPC loop, which
// stops its hosts; a worker that does not exit within 30 s is killed.
func (f *fleet) close() {
	var wg sync.WaitGroup
	for _, w := range f.workers {
		wg.Go(func() {
			_ = w.stdin.Close()
			done := make(chan struct{})
			go func() { _ = w.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				_ = w.cmd.Process.Kill()
				<-done
			}
			_ = w.client.Close()
		})
	}
	wg.Wait()
}

// atomicMax keeps the largest value it was set to.
type atomicMax struct{ v atomic.Int64 }

func (m *atomicMax) set(x int64) {
	for {
		cur := m.v.Load()
		if x <= cur || m.v.CompareAndSwap(cur, x) {
			return
		}
	}
}

func (m *atomicMax) get() int64 { return m.v.Load() }
