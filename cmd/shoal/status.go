package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/shoal-dev/shoal/internal/ops"
)

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("metrics-addr", "127.0.0.1:5051", "the daemon's ops endpoint (its --metrics-addr), host:port or an http:// URL")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	last := fs.Int("pulls", 10, "recent pulls to list (the daemon keeps the last 128; -1: all it has)")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on reading the endpoint")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	base := *addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	c := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	st, err := ops.ReadStatus(ctx, c, base)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	if *last >= 0 && len(st.Pulls.Pulls) > *last {
		st.Pulls.Pulls = st.Pulls.Pulls[:*last]
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return writeStatus(stdout, st)
}

// writeStatus prints st for a person: the node, then its recent pulls.
func writeStatus(w io.Writer, st ops.Status) error {
	ew := &errWriter{w: w}
	ready := "not ready"
	if st.Ready {
		ready = "ready"
	}
	ew.printf("node %s: %s\n", st.Endpoint, ready)
	if st.Swarm {
		ew.printf("peers connected:   %d\n", st.PeersConnected)
		ew.printf("DHT routing table: %d peers (lookups %s; provides %s)\n", st.DHT.RoutingTablePeers,
			counts(st.DHT.Lookups, "found", "not_found", "error"), counts(st.DHT.Provides, "ok", "error"))
		if st.DHT.RoutingTablePeers == 0 {
			ew.printf("  WARNING: the routing table is empty: this node finds no peers (check --bootstrap and the PSK)\n")
		}
	} else {
		ew.printf("swarm:             off (a plain pull-through mirror: every miss goes to the origin)\n")
	}
	s := st.Store
	quota := "no quota"
	if s.LimitBytes > 0 {
		quota = fmt.Sprintf("%s of %s quota (%.1f%%)", size(s.UsedBytes), size(s.LimitBytes), 100*float64(s.UsedBytes)/float64(s.LimitBytes))
	}
	ew.printf("store:             %d blobs (%s), %d partial (%s); %s\n", s.Blobs, size(s.BlobBytes), s.Partials, size(s.PartialBytes), quota)
	ew.printf("fetched:           %s\n", bySource(st.Fetched))
	if share := st.P2PShare(); share == 0 {
		ew.printf("  WARNING: every fetched byte came from the origin: P2P is not serving this node\n")
	}
	ew.printf("pulls served by:   %s\n", counts(st.PullsBy, "p2p", "mixed", "origin", "failed"))
	ew.printf("chunk verify failures: %d\n", st.ChunkVerifyFailures)
	ew.printf("\nrecent pulls by repository:\n")
	tw := tabwriter.NewWriter(ew, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "REPOSITORY\tBLOBS\tPEERS\tSEEDER\tORIGIN\tP2P\tSOURCES\tTIME\tFAILED")
	for _, r := range st.Repositories {
		_, _ = fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%d\t%.1fs\t%d\n", printable(r.Repo), r.Blobs,
			size(r.Bytes[ops.SourcePeer]), size(r.Bytes[ops.SourceSeeder]), size(r.Bytes[ops.SourceOrigin]),
			percent(r.P2P(), r.P2P()+r.Bytes[ops.SourceOrigin]), r.Sources, r.Seconds, r.Failed)
	}
	_ = tw.Flush()
	ew.printf("\nrecent pulls (%d shown, %d since start):\n", len(st.Pulls.Pulls), st.Pulls.Total)
	tw = tabwriter.NewWriter(ew, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "STARTED\tREPOSITORY\tBLOB\tSIZE\tPEERS\tSEEDER\tORIGIN\tP2P\tSOURCES\tTIME\tRESULT")
	for _, p := range st.Pulls.Pulls {
		result := "ok"
		if p.Error != "" {
			result = printable(p.Error)
		}
		_, _ = fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%.1fs\t%s\n", p.Started.Local().Format("15:04:05"), printable(p.Repo), printable(short(p.Digest)),
			size(p.Size), size(p.Bytes[ops.SourcePeer]), size(p.Bytes[ops.SourceSeeder]), size(p.Bytes[ops.SourceOrigin]),
			percent(p.P2P(), p.P2P()+p.Bytes[ops.SourceOrigin]), len(p.Sources), p.Seconds, result)
	}
	_ = tw.Flush()
	return ew.err
}

// errWriter keeps the first write error, so the printing above reads
// straight.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, a ...any) { _, _ = fmt.Fprintf(e, format, a...) }

func counts(m map[string]int64, keys ...string) string {
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", strings.ReplaceAll(k, "_", " "), m[k]))
	}
	return strings.Join(parts, ", ")
}

func bySource(m map[string]int64) string {
	p2p := m[ops.SourcePeer] + m[ops.SourceSeeder]
	return fmt.Sprintf("peers %s, seeders %s, origin %s (P2P %s)", size(m[ops.SourcePeer]), size(m[ops.SourceSeeder]),
		size(m[ops.SourceOrigin]), percent(p2p, p2p+m[ops.SourceOrigin]))
}

func percent(part, whole int64) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(part)/float64(whole))
}

// size renders a byte count in binary units.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// short is a digest's algorithm and first 12 hex digits.
func short(d string) string {
	alg, hx, ok := strings.Cut(d, ":")
	if !ok || len(hx) <= 12 {
		return d
	}
	return alg + ":" + hx[:12]
}

// printable drops control characters (an ops page is another process's
// words: no terminal escapes reach the screen).
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
