// Package demo runs shoal's local demo cluster in one process: a real OCI
// registry as the origin holding a generated image, shoal daemons in front
// of it, and a real client (go-containerregistry) pulling the image through
// a daemon's registry shim, with progress and a summary of where the bytes
// came from.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/bench/testorigin"
	"github.com/shoal-dev/shoal/registryshim/daemon"
)

// Options shape the demo.
type Options struct {
	ImageBytes int64
	Layers     int
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
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	dir := o.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "shoal-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Fprintf(out, "shoal demo: work dir %s\n", dir)

	origin := testorigin.Start(filepath.Join(dir, "origin"))
	defer origin.Close()
	sizes := make([]int64, o.Layers)
	for i := range sizes {
		sizes[i] = o.ImageBytes / int64(o.Layers)
	}
	fmt.Fprintf(out, "origin: registry at %s; generating an image of %s in %d layers...\n", origin.URL(), human(o.ImageBytes), o.Layers)
	img, err := testorigin.BlobImage(uint64(time.Now().UnixNano()), sizes...)
	if err != nil {
		return err
	}
	if _, err := origin.Push(img, "demo/app:v1"); err != nil {
		return err
	}
	digest, _ := img.Digest()
	fmt.Fprintf(out, "origin: pushed demo/app:v1 (%s)\n", digest)

	d, err := daemon.New(context.Background(), daemon.Config{
		DataDir:         filepath.Join(dir, "node-1"),
		RegistryAddr:    "127.0.0.1:0",
		Upstreams:       []string{origin.Host + "=" + origin.URL()},
		DefaultUpstream: origin.Host,
		TagTTL:          5 * time.Second,
		UpstreamTimeout: 15 * time.Second,
	}, o.Log.Named("node-1"))
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	dctx, stop := context.WithCancel(gctx)
	g.Go(func() error { return d.Run(dctx) })
	fmt.Fprintf(out, "node-1: shoal daemon, registry shim at http://%s\n\n", d.RegistryAddr())

	var rows []row
	for _, pass := range []string{"cold", "warm"} {
		r, err := pull(ctx, out, d, origin, pass)
		if err != nil {
			stop()
			_ = g.Wait()
			return err
		}
		rows = append(rows, r)
	}
	stop()
	if err := g.Wait(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%-8s %-6s %10s %10s %12s %12s %12s\n", "node", "pull", "time", "rate", "from store", "from origin", "origin sent")
	for _, r := range rows {
		fmt.Fprintf(out, "%-8s %-6s %10s %10s %12s %12s %12s\n", "node-1", r.pass, r.took.Round(time.Millisecond),
			human(int64(float64(r.bytes)/r.took.Seconds()))+"/s", human(r.store), human(r.upstream), human(r.originSent))
	}
	fmt.Fprintln(out, "\nThe cold pull streamed every blob from the origin once, through the store; the warm pull came from the store.")
	fmt.Fprintln(out, "(Peers and the seeder join this table when the swarm lands.)")
	return nil
}

type row struct {
	pass                               string
	took                               time.Duration
	bytes, store, upstream, originSent int64
}

func pull(ctx context.Context, out io.Writer, d *daemon.Daemon, origin *testorigin.Origin, pass string) (row, error) {
	ref, err := name.ParseReference(d.RegistryAddr()+"/demo/app:v1", name.Insecure)
	if err != nil {
		return row{}, err
	}
	store0, up0, orig0 := served(d, "store"), served(d, "upstream"), origin.BlobBytes()
	start := time.Now()
	img, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		return row{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	layers, err := img.Layers()
	if err != nil {
		return row{}, err
	}
	var total int64
	for _, l := range layers {
		sz, _ := l.Size()
		total += sz
	}
	p := &progress{out: out, total: total, start: start, label: pass + " pull"}
	for _, l := range layers {
		if err := readLayer(l, p); err != nil {
			return row{}, err
		}
	}
	p.done()
	return row{pass: pass, took: time.Since(start), bytes: total,
		store: served(d, "store") - store0, upstream: served(d, "upstream") - up0, originSent: origin.BlobBytes() - orig0}, nil
}

func readLayer(l v1.Layer, p *progress) error {
	rc, err := l.Compressed() // verifies the digest at EOF
	if err != nil {
		return err
	}
	defer rc.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := rc.Read(buf)
		p.add(int64(n))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type progress struct {
	out         io.Writer
	label       string
	total, have int64
	start, last time.Time
}

func (p *progress) add(n int64) {
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
	fmt.Fprintf(p.out, "\r%-10s [%s] %5.1f%% %s / %s  %s/s   ", p.label, bar, frac*100, human(p.have), human(p.total), human(int64(rate)))
}

func (p *progress) done() {
	p.print()
	fmt.Fprintln(p.out)
}

func served(d *daemon.Daemon, source string) int64 {
	mfs, err := d.Gatherer().Gather()
	if err != nil {
		return 0
	}
	return int64(sum(mfs, "shoal_served_bytes_total", "source", source))
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
