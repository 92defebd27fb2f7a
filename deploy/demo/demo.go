// Package demo runs shoal's local demo cluster in one process: a real OCI
// registry as the origin holding a generated image, a seeder beside it,
// several shoal daemons (each with its registry shim, store and libp2p
// host), and a real client (go-containerregistry) pulling the image through
// every daemon at the same moment, with progress and a table of where each
// node's bytes came from: peers, the seeder, or the origin.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/internal/imagegen"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/origin"
	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/p2p/member"
	"github.com/shoal-dev/shoal/p2p/swarm"
	"github.com/shoal-dev/shoal/seeder"
)

// writePSK writes a new network key to path (mode 0600) and returns path.
func writePSK(path string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, host.WritePSKFile(path, true)
}

// Options shape the demo.
type Options struct {
	ImageBytes int64
	Layers     int
	Nodes      int
	Dir        string // work directory; a temporary one when empty
	Log        *zap.Logger
}

// Run runs the demo and writes its progress and summary to out.
func Run(ctx context.Context, o Options, out io.Writer) error {
	if o.ImageBytes <= 0 {
		o.ImageBytes = 256 << 20
	}
	if o.Layers <= 0 {
		o.Layers = 4
	}
	if o.Nodes <= 0 {
		o.Nodes = 4
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "shoal-demo-")
		if err != nil {
			return err
		}
		defer func() { _ = os.RemoveAll(d) }()
		dir = d
	}
	_, _ = fmt.Fprintf(out, "shoal demo: work dir %s\n", dir)

	org := origin.Start(filepath.Join(dir, "origin"))
	defer org.Close()
	sizes := make([]int64, o.Layers)
	for i := range sizes {
		sizes[i] = o.ImageBytes / int64(o.Layers)
	}
	_, _ = fmt.Fprintf(out, "origin:  registry at %s; generating an image of %s in %d layers...\n", org.URL(), human(o.ImageBytes), o.Layers)
	img, err := imagegen.BlobImage(uint64(time.Now().UnixNano()), sizes...)
	if err != nil {
		return err
	}
	if _, err := org.Push(img, "demo/app:v1"); err != nil {
		return err
	}
	digest, _ := img.Digest()
	_, _ = fmt.Fprintf(out, "origin:  pushed demo/app:v1 (%s)\n", digest)
	origin0 := org.BlobBytes()

	g, gctx := errgroup.WithContext(ctx)
	runCtx, stop := context.WithCancel(gctx)
	defer func() {
		stop()
		_ = g.Wait()
	}()
	up := upstream.Settings{Upstreams: []string{org.Host + "=" + org.URL()}, DefaultUpstream: org.Host, Timeout: 30 * time.Second}
	// Every member gets the same network key, as `shoal psk` makes it.
	psk, err := writePSK(filepath.Join(dir, "swarm.key"))
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "swarm:   private network key %s\n", psk)
	sd, err := seeder.New(runCtx, seeder.Config{
		DataDir: filepath.Join(dir, "seeder"), Upstream: up,
		Swarm: member.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, PSKFile: psk},
	}, o.Log.Named("seeder"))
	if err != nil {
		return err
	}
	g.Go(func() error { return sd.Run(runCtx) })
	_, _ = fmt.Fprintf(out, "seeder:  %s\n", sd.Addrs()[0])

	nodes := make([]*node.Daemon, o.Nodes)
	for i := range nodes {
		d, err := node.New(runCtx, node.Config{
			DataDir: filepath.Join(dir, fmt.Sprintf("node-%d", i+1)), RegistryAddr: "127.0.0.1:0",
			Upstream: up, TagTTL: 5 * time.Second, P2P: true,
			Swarm:          member.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Bootstrap: sd.Addrs()[:1], PSKFile: psk},
			TrustedSeeders: []string{sd.ID().String()}, MaxSourcesPerBlob: swarm.DefaultMaxSources, SharePartial: true,
		}, o.Log.Named(fmt.Sprintf("node-%d", i+1)))
		if err != nil {
			return err
		}
		nodes[i] = d
		g.Go(func() error { return d.Run(runCtx) })
		_, _ = fmt.Fprintf(out, "node-%d:  shim http://%s, peer %s\n", i+1, d.RegistryAddr(), shortID(d.PeerID()))
	}
	_, _ = fmt.Fprintf(out, "\nall %d nodes pull demo/app:v1 through their own shim at the same moment:\n", o.Nodes)

	var total int64
	layers, _ := img.Layers()
	for _, l := range layers {
		sz, _ := l.Size()
		total += sz
	}
	p := &progress{out: out, total: total * int64(len(nodes)), start: time.Now(), label: fmt.Sprintf("%d nodes", len(nodes))}
	rows := make([]row, len(nodes))
	var pg errgroup.Group
	for i, d := range nodes {
		pg.Go(func() error {
			r, err := pull(ctx, d, p)
			r.node = fmt.Sprintf("node-%d", i+1)
			rows[i] = r
			return err
		})
	}
	if err := pg.Wait(); err != nil {
		return err
	}
	p.done()

	_, _ = fmt.Fprintln(out)
	_, _ = fmt.Fprintf(out, "%-8s %9s %12s %12s %12s %12s\n", "node", "time", "rate", "from peers", "from seeder", "from origin")
	var peers, seeded, direct int64
	for _, r := range rows {
		_, _ = fmt.Fprintf(out, "%-8s %9s %10s/s %12s %12s %12s\n", r.node, r.took.Round(time.Millisecond),
			human(int64(float64(r.bytes)/r.took.Seconds())), human(r.peer), human(r.seeder), human(r.origin))
		peers, seeded, direct = peers+r.peer, seeded+r.seeder, direct+r.origin
	}
	all := max(peers+seeded+direct, 1)
	_, _ = fmt.Fprintf(out, "\n%d nodes received %s: %.0f%% from peers, %.0f%% from the seeder, %.0f%% straight from the origin.\n",
		len(nodes), human(all), 100*float64(peers)/float64(all), 100*float64(seeded)/float64(all), 100*float64(direct)/float64(all))
	sent := org.BlobBytes() - origin0
	verdict := "the seeder pulled each blob once"
	if sent > total {
		verdict = "more than once: some nodes fell back to the origin"
	}
	_, _ = fmt.Fprintf(out, "The origin registry sent %s in all (the image is %s): %s.\n", human(sent), human(total), verdict)
	return nil
}

type row struct {
	node                        string
	took                        time.Duration
	bytes, peer, seeder, origin int64
}

func pull(ctx context.Context, d *node.Daemon, p *progress) (row, error) {
	ref, err := name.ParseReference(d.RegistryAddr()+"/demo/app:v1", name.Insecure)
	if err != nil {
		return row{}, err
	}
	start := time.Now()
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return row{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return row{}, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(layers))
	var n atomic.Int64
	for i, l := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = readLayer(l, p, &n)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return row{}, err
		}
	}
	return row{took: time.Since(start), bytes: n.Load(),
		peer: fetched(d, "peer"), seeder: fetched(d, "seeder"), origin: fetched(d, "origin")}, nil
}

func readLayer(l v1.Layer, p *progress, n *atomic.Int64) error {
	rc, err := l.Compressed() // verifies the digest at EOF
	if err != nil {
		return err
	}
	defer func() { _ = rc.Close() }()
	buf := make([]byte, 1<<20)
	for {
		k, err := rc.Read(buf)
		p.add(int64(k))
		n.Add(int64(k))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type progress struct {
	mu          sync.Mutex
	out         io.Writer
	label       string
	total, have int64
	start, last time.Time
}

func (p *progress) add(n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.have += n
	if time.Since(p.last) > 200*time.Millisecond {
		p.last = time.Now()
		p.print()
	}
}

func (p *progress) print() {
	frac := float64(p.have) / float64(max(p.total, 1))
	bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
	rate := float64(p.have) / max(time.Since(p.start).Seconds(), 1e-6)
	_, _ = fmt.Fprintf(p.out, "\r%-8s [%s] %5.1f%% %s / %s  %s/s   ", p.label, bar, frac*100, human(p.have), human(p.total), human(int64(rate)))
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.print()
	_, _ = fmt.Fprintln(p.out)
}

func fetched(d *node.Daemon, source string) int64 {
	mfs, err := d.Gatherer().Gather()
	if err != nil {
		return 0
	}
	return int64(sum(mfs, "shoal_fetched_bytes_total", "source", source))
}

func sum(mfs []*dto.MetricFamily, metric, label, value string) float64 {
	var s float64
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					s += m.GetCounter().GetValue()
				}
			}
		}
	}
	return s
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:6] + ".." + id[len(id)-6:]
	}
	return id
}

func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
