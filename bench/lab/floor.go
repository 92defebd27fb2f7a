package lab

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// The floor is what receiving a byte costs this machine at the least, in
// the same run as the daemons that are measured against it: a child process
// (the _floor helper, so its CPU is its own) writes as many bytes as a node
// received into files in the node's data dir filesystem the way the store
// does (1 MiB pwrites at increasing offsets, one fsync per blob), and hashes
// every byte once with SHA-256. Its user+system CPU seconds per GiB is
// floor_cpu_s_per_gib; a daemon's cpu_s_per_gib over it is cpu_x_floor.

// floorChunk is the store's write size: one chunk (chunkset.DefaultSize).
const floorChunk = 1 << 20

// Floor is one measurement of the floor.
type Floor struct {
	// Bytes written (and hashed) in Files files (one per blob).
	Bytes int64 `json:"bytes"`
	Files int   `json:"files"`
	// UserS and SysS are the child's CPU seconds (from wait4's rusage):
	// user is mostly SHA-256, system the writes and the fsyncs.
	UserS float64 `json:"user_s"`
	SysS  float64 `json:"sys_s"`
	// WallS is the child's own time from the first write to the last fsync.
	WallS float64 `json:"wall_s"`
	// HostBusyCores is the machine's average busy cores meanwhile.
	HostBusyCores float64 `json:"host_busy_cores"`
	// Dir is where the files were written (removed afterwards).
	Dir string `json:"dir"`
	// RunsCPUSPerGiB are every run's figure when the floor was measured
	// more than once (the fields above are the median run's).
	RunsCPUSPerGiB []float64 `json:"runs_cpu_s_per_gib,omitempty"`
}

// floorRuns is how often the lab measures the floor after a mode: the
// median of three, as one run varies with the page cache's state.
const floorRuns = 3

// medianFloor measures the floor runs times and returns the median run.
// The lab syncs before it (measureModeFloor), so the mode's own dirty pages are
// written back first; a test does not (a machine-wide sync on a shared
// host can stall for long).
func medianFloor(ctx context.Context, bin, dir string, total int64, files, runs int) (Floor, error) {
	var fs []Floor
	for range runs {
		f, err := measureFloor(ctx, bin, dir, total, files)
		if err != nil {
			return f, err
		}
		fs = append(fs, f)
	}
	slices.SortFunc(fs, func(a, b Floor) int { return cmp.Compare(a.PerGiB(), b.PerGiB()) })
	med := fs[(len(fs)-1)/2]
	for _, f := range fs {
		med.RunsCPUSPerGiB = append(med.RunsCPUSPerGiB, f.PerGiB())
	}
	return med, nil
}

// CPUS is the floor's user+system CPU seconds.
func (f Floor) CPUS() float64 { return f.UserS + f.SysS }

// PerGiB is the floor's CPU seconds per GiB (0 when nothing was written).
func (f Floor) PerGiB() float64 {
	if f.Bytes <= 0 {
		return 0
	}
	return f.CPUS() / (float64(f.Bytes) / (1 << 30))
}

// floorWork is what the _floor helper prints.
type floorWork struct {
	Bytes  int64   `json:"bytes"`
	Files  int     `json:"files"`
	WallS  float64 `json:"wall_s"`
	SHA256 string  `json:"sha256"`
}

// errFloor is a floor measurement that went wrong.
var errFloor = errors.New("floor")

// helperFloor is the _floor helper: --dir D --bytes N --files K.
func helperFloor(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("_floor", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory to write into (created; the files are left for the caller)")
	n := fs.Int64("bytes", 0, "bytes to write")
	files := fs.Int("files", 1, "files (blobs) to spread them over, one fsync each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	w, err := writeFloor(*dir, *n, *files)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(w)
}

// writeFloor writes total bytes into files files under dir in floorChunk
// pwrites, fsyncs each file when it is complete, and hashes every byte
// once as it is written (the store hashes behind its writes too).
func writeFloor(dir string, total int64, files int) (floorWork, error) {
	if dir == "" || total <= 0 || files <= 0 || int64(files) > total {
		return floorWork{}, fmt.Errorf("%w: want a dir, bytes > 0 and 0 < files <= bytes (got %q, %d, %d)", errFloor, dir, total, files)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return floorWork{}, err
	}
	buf := make([]byte, floorChunk)
	if _, err := rand.Read(buf); err != nil {
		return floorWork{}, err
	}
	h := sha256.New()
	start := time.Now()
	var written int64
	for i := range files {
		size := total / int64(files)
		if i == files-1 {
			size = total - written
		}
		if err := writeFloorFile(filepath.Join(dir, fmt.Sprintf("blob-%d", i)), size, buf, h, &written); err != nil {
			return floorWork{}, err
		}
	}
	return floorWork{Bytes: written, Files: files, WallS: time.Since(start).Seconds(), SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

func writeFloorFile(path string, size int64, buf []byte, h io.Writer, written *int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	for off := int64(0); off < size; off += floorChunk {
		b := buf[:min(floorChunk, size-off)]
		// A counter in every chunk: no two chunks are alike.
		if len(b) >= 8 {
			binary.LittleEndian.PutUint64(b, uint64(*written))
		}
		if _, err := f.WriteAt(b, off); err != nil {
			_ = f.Close()
			return err
		}
		_, _ = h.Write(b)
		*written += int64(len(b))
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// measureFloor runs bin's _floor helper as a child process writing total
// bytes in files files under dir, takes its CPU from wait4 and removes
// the files. bin is shoal-bench (or a test binary whose TestMain runs the
// helpers).
func measureFloor(ctx context.Context, bin, dir string, total int64, files int) (Floor, error) {
	fl := Floor{Bytes: total, Files: files, Dir: dir}
	defer func() { _ = os.RemoveAll(dir) }()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "_floor", "--dir", dir, "--bytes", strconv.FormatInt(total, 10), "--files", strconv.Itoa(files))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second
	before := readCPU()
	out, err := cmd.Output()
	after := readCPU()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fl, fmt.Errorf("%w: %w: %s", errFloor, err, ee.Stderr)
		}
		return fl, fmt.Errorf("%w: %w", errFloor, err)
	}
	var w floorWork
	if err := json.Unmarshal(out, &w); err != nil {
		return fl, fmt.Errorf("%w: helper output: %w", errFloor, err)
	}
	if w.Bytes != total || len(w.SHA256) != 64 {
		return fl, fmt.Errorf("%w: helper wrote %d of %d bytes", errFloor, w.Bytes, total)
	}
	fl.WallS = w.WallS
	fl.UserS = cmd.ProcessState.UserTime().Seconds()
	fl.SysS = cmd.ProcessState.SystemTime().Seconds()
	fl.HostBusyCores = busyCores(before, after, hostCPUs())
	if fl.CPUS() <= 0 {
		return fl, fmt.Errorf("%w: no CPU time measured", errFloor)
	}
	return fl, nil
}

// floorBytes is what the floor writes for a mode: the median of what its
// measured nodes received (the image when none reported).
func floorBytes(m *ModeResult) int64 {
	var rs []float64
	for _, n := range m.NodesList {
		if r := n.Received(); r > 0 {
			rs = append(rs, float64(r))
		}
	}
	if len(rs) == 0 {
		return m.ImageBytes
	}
	return int64(Percentile(rs, 50))
}

// SetFloor records the floor and each node's cost against it: cpu_x_floor
// per node, and its median and max over the nodes.
func (m *ModeResult) SetFloor(f Floor) {
	m.Floor = &f
	m.FloorCPUSPerGiB = f.PerGiB()
	m.CPUXFloorMedian, m.CPUXFloorMax = 0, 0
	if m.FloorCPUSPerGiB <= 0 {
		return
	}
	var xs []float64
	for i := range m.NodesList {
		n := &m.NodesList[i]
		n.CPUXFloor = 0
		if n.CPUSPerGiB > 0 {
			n.CPUXFloor = n.CPUSPerGiB / m.FloorCPUSPerGiB
			xs = append(xs, n.CPUXFloor)
		}
	}
	if len(xs) > 0 {
		m.CPUXFloorMedian = Percentile(xs, 50)
		m.CPUXFloorMax = slices.Max(xs)
	}
}

// summarizeCost fills each node's cpu_s_per_gib, the median over nodes
// and the median peak RSS (Summarize calls it; the floor comes later).
func (m *ModeResult) summarizeCost() {
	var perGiB, rss []float64
	for i := range m.NodesList {
		n := &m.NodesList[i]
		n.CPUSPerGiB = 0
		if r := n.Received(); r > 0 && n.CPUS > 0 {
			n.CPUSPerGiB = n.CPUS / (float64(r) / (1 << 30))
			perGiB = append(perGiB, n.CPUSPerGiB)
		}
		if n.PeakRSSBytes > 0 {
			rss = append(rss, float64(n.PeakRSSBytes))
		}
	}
	m.CPUSPerGiBMedian = Percentile(perGiB, 50)
	m.PeakRSSBytesMedian = int64(math.Round(Percentile(rss, 50)))
	if m.FloorCPUSPerGiB > 0 && m.Floor != nil {
		m.SetFloor(*m.Floor)
	}
}

// measureModeFloor measures the floor after a mode's pulls, in the data
// dir filesystem of the mode's first node, and records it on r.
func (l *Lab) measureModeFloor(ctx context.Context, r *ModeResult) {
	if len(r.NodesList) == 0 || ctx.Err() != nil {
		return
	}
	n := floorBytes(r)
	dir := filepath.Join(l.tmp, r.Mode, r.NodesList[0].Host, "floor")
	syscall.Sync()
	f, err := medianFloor(ctx, l.cfg.SelfBin, dir, n, max(1, min(r.Layers, int(n/floorChunk))), floorRuns)
	if err != nil {
		r.Notes = append(r.Notes, "floor not measured: "+err.Error())
		l.logf("%s: floor: %v", r.Mode, err)
		return
	}
	r.SetFloor(f)
	l.logf("%s: floor %.2f core-s/GiB, median of %.2f (user %.2f, sys %.2f s for %s; host %.2f busy cores); daemons %.2fx median, %.2fx max",
		r.Mode, f.PerGiB(), f.RunsCPUSPerGiB, f.UserS, f.SysS, mib(f.Bytes), f.HostBusyCores, r.CPUXFloorMedian, r.CPUXFloorMax)
}

// floorMarkdown is the floor's line per mode for results.md.
func floorMarkdown(results []ModeResult) string {
	var out string
	for _, r := range results {
		if f := r.Floor; f != nil {
			out += fmt.Sprintf("\nFloor after %s: %.2f core-s/GiB (runs %.2f; median run: %s in %d files, 1 MiB pwrites, fsync per file, SHA-256 once: user %.2f s, system %.2f s, %.2f s wall; host %.2f busy cores); daemons' CPU per GiB received %.2f median (%.2fx the floor), %.2f max (%.2fx).\n",
				r.Mode, f.PerGiB(), f.RunsCPUSPerGiB, mib(f.Bytes), f.Files, f.UserS, f.SysS, f.WallS, f.HostBusyCores,
				r.CPUSPerGiBMedian, r.CPUXFloorMedian, r.CPUSPerGiBMax, r.CPUXFloorMax)
		}
	}
	return out
}
