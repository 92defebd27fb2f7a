package load

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// Report is one run's figures.
type Report struct {
	// Requests went to the daemon, Baseline to the origin (one per
	// WarmBlobGet), all at once.
	Requests, Baseline int
	// Unexpected counts answers other than expected (both targets);
	// Examples holds the first few.
	Unexpected int
	Examples   []string
	Kinds      []KindStats
	Wall       time.Duration
	// RSSBefore is the daemon's VmRSS before the run, PeakRSS its VmHWM
	// after it (bytes; 0 when no pid was given).
	RSSBefore, PeakRSS int64
	// WarmP50Ratio and WarmP99Ratio are the daemon's warm blob GET
	// latency over the origin's for the same blobs in the same run.
	WarmP50Ratio, WarmP99Ratio float64
	// ServedP50Ratio and ServedP99Ratio are the same over the time from
	// having a connection to the end of the body.
	ServedP50Ratio, ServedP99Ratio float64
	// Sequential marks a run whose requests went one after the other.
	Sequential bool
}

// NewReport sums a run's results.
func NewReport(results []Result, wall time.Duration, rssBefore, peakRSS int64) Report {
	rep := Report{Wall: wall, RSSBefore: rssBefore, PeakRSS: peakRSS, Kinds: Stats(results)}
	for _, r := range results {
		if r.Kind == OriginBlobGet {
			rep.Baseline++
		} else {
			rep.Requests++
		}
		if r.Err != nil {
			rep.Unexpected++
			if len(rep.Examples) < 10 {
				rep.Examples = append(rep.Examples, string(r.Kind)+": "+r.Err.Error())
			}
		}
	}
	warm, origin := rep.kind(WarmBlobGet), rep.kind(OriginBlobGet)
	if warm != nil && origin != nil && origin.P50 > 0 && origin.P99 > 0 {
		rep.WarmP50Ratio = float64(warm.P50) / float64(origin.P50)
		rep.WarmP99Ratio = float64(warm.P99) / float64(origin.P99)
	}
	if warm != nil && origin != nil && origin.ServedP50 > 0 && origin.ServedP99 > 0 {
		rep.ServedP50Ratio = float64(warm.ServedP50) / float64(origin.ServedP50)
		rep.ServedP99Ratio = float64(warm.ServedP99) / float64(origin.ServedP99)
	}
	return rep
}

func (r Report) kind(k Kind) *KindStats {
	for i := range r.Kinds {
		if r.Kinds[i].Kind == k {
			return &r.Kinds[i]
		}
	}
	return nil
}

// WriteMarkdown writes the report as a summary and a table per kind.
func (r Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	how := "all at once"
	if r.Sequential {
		how = "one after the other"
	}
	fmt.Fprintf(&b, "%d requests at the daemon and %d at the origin (the baseline), %s, in %s: %d unexpected answers.\n\n",
		r.Requests, r.Baseline, how, r.Wall.Round(time.Millisecond), r.Unexpected)
	if r.PeakRSS > 0 {
		fmt.Fprintf(&b, "Daemon memory: VmRSS %s before the run, peak (VmHWM) %s.\n\n", mib(r.RSSBefore), mib(r.PeakRSS))
	}
	if r.WarmP50Ratio > 0 {
		fmt.Fprintf(&b, "Warm blob GETs, daemon over origin (same blobs, same run): p50 x%.2f, p99 x%.2f; "+
			"from having a connection: p50 x%.2f, p99 x%.2f.\n\n", r.WarmP50Ratio, r.WarmP99Ratio, r.ServedP50Ratio, r.ServedP99Ratio)
	}
	b.WriteString("| kind | requests | unexpected | p50 | p99 | max | p50 from conn | p99 from conn | bytes |\n" +
		"|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", k.Kind, k.Requests, k.Unexpect,
			ms(k.P50), ms(k.P99), ms(k.Max), ms(k.ServedP50), ms(k.ServedP99), mib(k.Bytes))
	}
	if len(r.Examples) > 0 {
		b.WriteString("\nUnexpected answers (first ones):\n\n")
		for _, e := range r.Examples {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// ErrNoProcStatus is a /proc/PID/status without the memory lines.
var ErrNoProcStatus = errors.New("no VmRSS/VmHWM in /proc status")

// ProcMem reads a process's resident memory now (VmRSS) and its peak
// (VmHWM), in bytes, from /proc/PID/status.
func ProcMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, fmt.Errorf("load: %w", err)
	}
	return parseStatus(string(b))
}

func parseStatus(s string) (rss, hwm int64, err error) {
	for _, line := range strings.Split(s, "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("load: /proc status line %q", line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("load: /proc status line %q: %w", line, err)
		}
		if key == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, ErrNoProcStatus
	}
	return rss, hwm, nil
}
