package seeder

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// ProgressLine renders p as one terminal line: a bar for the scope the
// preheat is filling (the seeder first, then the nodes).
func ProgressLine(ref string, p ScopeProgress) string {
	if p.Phase == "nodes" {
		finished := p.NodesDone + p.NodesFailed + p.NodesSkipped
		return fmt.Sprintf("preheat %s nodes  %s %d/%d nodes (%d failed), %s / %s", ref, bar(p.NodeBytes, p.NodeTotal),
			finished, p.Nodes, p.NodesFailed, mib(p.NodeBytes), mib(p.NodeTotal))
	}
	return fmt.Sprintf("preheat %s seeder %s %d/%d layers, %s / %s, %s/s", ref, bar(p.Bytes, p.Total),
		p.LayersDone, p.Layers, mib(p.Bytes), mib(p.Total), mib(int64(p.Rate)))
}

func bar(n, total int64) string {
	const width = 24
	fill := width
	if total > 0 {
		fill = int(min(n, total) * width / total)
	}
	return "[" + strings.Repeat("#", fill) + strings.Repeat(".", width-fill) + "]"
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// WriteTable writes a finished preheat's table: a row for the seeder, one
// per node and a total row for the nodes, with the bytes each got from
// the seeder, from peers and from the origin, and the time.
func WriteTable(w io.Writer, p ScopeProgress) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(tw, "scope\tstatus\tnodes done\tbytes\tfrom seeder\tfrom peers\tfrom origin\ttime\t")
	_, _ = fmt.Fprintf(tw, "seeder\t%s\t-\t%s\t-\t-\t-\t%s\t\n", status(p.Error == "" || p.Phase == "nodes"), mib(p.Total), ms(p.SeederMillis))
	if p.Phase == "nodes" {
		for _, r := range p.Results {
			_, _ = fmt.Fprintf(tw, "%s\t%s\t-\t%s\t%s\t%s\t%s\t%s\t\n", short(r.Node), r.Status, mib(r.Bytes),
				mib(r.FromSeeder), mib(r.FromPeers), mib(r.FromOrigin), ms(r.Millis))
		}
		_, _ = fmt.Fprintf(tw, "nodes (%s)\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\t\n", p.Scope, status(p.Error == ""), p.NodesDone, p.Nodes-p.NodesSkipped,
			mib(p.NodeBytes), mib(p.FromSeeder), mib(p.FromPeers), mib(p.FromOrigin), ms(p.Millis))
	}
	return tw.Flush()
}

func status(ok bool) string {
	if ok {
		return "done"
	}
	return "failed"
}

func ms(n int64) string {
	return (time.Duration(n) * time.Millisecond).Round(10 * time.Millisecond).String()
}

// short abbreviates a peer ID for the table.
func short(id string) string {
	if len(id) > 16 {
		return id[:6] + ".." + id[len(id)-6:]
	}
	return id
}
