package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Roles a fault gives a node.
const (
	roleKilled    = "killed"    // killed and left dead
	roleRestarted = "restarted" // killed (or stopped) and started again
	roleFlapped   = "flapped"
	roleDiskFull  = "disk-full"
)

// The injectors. Each returns once its fault is over and the pulls it
// started again are done.

func injectKillNodes(ctx context.Context, fr *faultRun) error {
	n := len(fr.nodes)
	victims := lastNodes(n, quarter(n))
	back := victims[:(len(victims)+1)/2]
	if !sleepUntil(ctx, fr.at()) {
		return ctx.Err()
	}
	for _, i := range victims {
		fr.setRole(i, roleKilled)
		fr.kill(ctx, i, syscall.SIGKILL)
	}
	fr.event("kill -9", victims...)
	if !sleepUntil(ctx, time.Now().Add(fr.l.cfg.RestartAfter)) {
		return ctx.Err()
	}
	fr.event("restart", back...)
	var wg sync.WaitGroup
	errs := make([]error, len(back))
	for k, i := range back {
		fr.setRole(i, roleRestarted)
		wg.Add(1)
		go func() { defer wg.Done(); errs[k] = fr.restartAndPull(ctx, i) }()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func injectDaemonRestart(ctx context.Context, fr *faultRun) error {
	i := len(fr.nodes) - 1
	if !sleepUntil(ctx, fr.at()) {
		return ctx.Err()
	}
	fr.setRole(i, roleRestarted)
	fr.kill(ctx, i, syscall.SIGTERM)
	p := fr.nodes[i].p
	select {
	case <-p.done:
		fr.event("SIGTERM (exited within 1 s)", i)
	case <-time.After(time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
		fr.event("SIGTERM, SIGKILL 1 s later", i)
	}
	return fr.restartAndPull(ctx, i)
}

func injectSeederKill(ctx context.Context, fr *faultRun) error {
	if !sleepUntil(ctx, fr.at()) {
		return ctx.Err()
	}
	old := fr.seeder
	old.signal(syscall.SIGKILL)
	<-old.done
	fr.event("seeder kill -9")
	if !sleepUntil(ctx, time.Now().Add(fr.l.cfg.RestartAfter)) {
		return ctx.Err()
	}
	before := strings.Count(readFile(old.stdout), "peer ID: ")
	p, err := fr.l.modeProcs().restart(old)
	if err != nil {
		return err
	}
	fr.mu.Lock()
	fr.seeder = p
	fr.mu.Unlock()
	if err := waitFor(ctx, 30*time.Second, p, func() bool { return strings.Count(readFile(old.stdout), "peer ID: ") > before }); err != nil {
		return fmt.Errorf("seeder restart: %w", err)
	}
	fr.event("seeder restarted")
	return nil
}

func injectLinkFlap(ctx context.Context, fr *faultRun) error {
	k := quarter(len(fr.nodes))
	var victims []int
	for i := range k {
		victims = append(victims, i)
		fr.setRole(i, roleFlapped)
	}
	if !sleepUntil(ctx, fr.at()) {
		return ctx.Err()
	}
	for _, i := range victims {
		if err := setLink(ctx, fr.nodes[i].h.ns, false); err != nil {
			return err
		}
	}
	fr.event("link down", victims...)
	sleepUntil(ctx, time.Now().Add(fr.l.cfg.FlapFor))
	var errs []error
	for _, i := range victims {
		errs = append(errs, setLink(context.Background(), fr.nodes[i].h.ns, true))
	}
	fr.event("link up", victims...)
	return errors.Join(errs...)
}

func injectOriginCut(ctx context.Context, fr *faultRun) error {
	if !sleepUntil(ctx, fr.startAt.Add(3*time.Second)) {
		return ctx.Err()
	}
	org := fr.l.net.origin.ns
	if err := setLink(ctx, org, false); err != nil {
		return err
	}
	fr.event("origin link down")
	defer func() { _ = setLink(context.Background(), org, true) }()
	cut := time.Now().UnixNano()
	fr.waitPulls(ctx, len(fr.nodes))
	late := 0
	for _, out := range fr.outs {
		if r, ok := readPull(out); ok && (r.ManifestNS == 0 || r.ManifestNS > cut) {
			late++
		}
	}
	if late > 0 {
		fr.note("%d clients had not got their manifest when the origin was cut", late)
	}
	return setLink(ctx, org, true)
}

func injectOriginSeederCut(ctx context.Context, fr *faultRun) error {
	half := (len(fr.nodes) + 1) / 2
	if !fr.waitPulls(ctx, half) {
		return ctx.Err()
	}
	org, sdr := fr.l.net.origin.ns, fr.l.net.seeder.ns
	for _, ns := range []string{org, sdr} {
		if err := setLink(ctx, ns, false); err != nil {
			return err
		}
	}
	fr.event(fmt.Sprintf("origin and seeder links down (%d nodes done)", fr.donePulls()))
	defer func() {
		_ = setLink(context.Background(), org, true)
		_ = setLink(context.Background(), sdr, true)
	}()
	fr.waitPulls(ctx, len(fr.nodes))
	// A pull by tag on a node that holds the image, the origin still cut:
	// the tag's last known digest serves it within the stale window.
	for i, out := range fr.outs {
		if r, ok := readPull(out); ok && r.Error == "" {
			r, err := fr.l.pullNow(ctx, fr, i, shimAddr+"/"+imageRepo+":"+imageTag)
			switch {
			case err != nil:
				fr.note("pull by tag on node %d with the origin cut: %v", i+1, err)
			case r.Error != "":
				fr.note("pull by tag on node %d with the origin cut failed: %s", i+1, r.Error)
			default:
				fr.note("pull by tag on node %d with the origin and seeder cut: complete, %s verified (the tag's last known digest)", i+1, mib(r.Bytes))
			}
			break
		}
	}
	return nil
}

// diskFullSize is the tmpfs the disk-full node starts with: half the image.
func diskFullSize(image int64) int64 { return max(4<<20, image/2) }

func injectDiskFull(ctx context.Context, fr *faultRun) error {
	fr.waitPulls(ctx, len(fr.nodes))
	first, _ := readPull(fr.outs[0])
	if first.Error != "" {
		fr.note("node 1 (data dir on a %s tmpfs, no quota): its client got: %s", mib(diskFullSize(fr.l.image.ImageBytes)), strings.ReplaceAll(first.Error, "\n", "; "))
	} else {
		fr.note("node 1 (data dir on a %s tmpfs, no quota): its client got the whole image (%s verified) with its disk full", mib(diskFullSize(fr.l.image.ImageBytes)), mib(first.Bytes))
	}
	for _, line := range strings.Split(readFile(fr.nodes[0].log), "\n") {
		if strings.Contains(line, "no space left on device") {
			fr.note("node 1's daemon logged: %s", strings.TrimSpace(line))
			break
		}
	}
	dir := fr.nodes[0].dir
	size := 2*fr.l.image.ImageBytes + 64<<20
	if _, err := run(ctx, 10*time.Second, "mount", "-o", "remount,size="+strconv.FormatInt(size, 10), dir); err != nil {
		return err
	}
	fr.event("space back", 0)
	if fr.nodes[0].p.exited() {
		fr.note("node 1's daemon had exited on the full disk: %s", strings.TrimSpace(tail(fr.nodes[0].log, 500)))
		return nil
	}
	r, err := fr.l.pullNow(ctx, fr, 0, shimAddr+"/"+imageRepo+":"+imageTag)
	if err != nil {
		return err
	}
	fr.mu.Lock()
	fr.diskRetry = &r
	fr.mu.Unlock()
	if r.Error != "" {
		fr.note("node 1 pulled again once space was back: failed: %s", strings.ReplaceAll(r.Error, "\n", "; "))
	} else {
		fr.note("node 1 pulled again once space was back: complete in %.1f s, %s verified", float64(r.EndNS-r.StartNS)/1e9, mib(r.Bytes))
	}
	return nil
}

// kill scrapes node i's counters (they die with it), then signals it.
func (fr *faultRun) kill(ctx context.Context, i int, sig syscall.Signal) {
	np := fr.nodes[i]
	if out, err := fr.l.helper(ctx, np.h.ns, 5*time.Second, "_get", "http://"+metAddr+"/metrics"); err == nil {
		fr.mu.Lock()
		fr.earlier[i] = addMetrics(fr.earlier[i], ParseMetrics(string(out)))
		fr.mu.Unlock()
	}
	if cpu, _, err := procStats(np.p.pid()); err == nil {
		np.cpuDead += cpu - np.cpu0
		np.cpu0 = 0
	}
	np.p.signal(sig)
	if sig == syscall.SIGKILL {
		<-np.p.done
	}
}

func addMetrics(a, b Metrics) Metrics {
	out := Metrics{Fetched: map[string]int64{}}
	for k, v := range a.Fetched {
		out.Fetched[k] += v
	}
	for k, v := range b.Fetched {
		out.Fetched[k] += v
	}
	out.Uploaded = a.Uploaded + b.Uploaded
	out.VerifyFailures = a.VerifyFailures + b.VerifyFailures
	return out
}

// restartAndPull starts node i's daemon again on its data dir and has its
// client pull the image again.
func (fr *faultRun) restartAndPull(ctx context.Context, i int) error {
	np := fr.nodes[i]
	before := strings.Count(readFile(np.log), `"daemon ready"`)
	p, err := fr.l.modeProcs().restart(np.p)
	if err != nil {
		return err
	}
	np.p = p
	if err := waitFor(ctx, 60*time.Second, p, func() bool { return strings.Count(readFile(np.log), `"daemon ready"`) > before }); err != nil {
		return fmt.Errorf("daemon %s did not come back: %w: %s", np.h.ns, err, tail(np.log, 2000))
	}
	fr.event("daemon ready again", i)
	r, err := fr.l.pullNow(ctx, fr, i, shimAddr+"/"+imageRepo+":"+imageTag)
	if err != nil {
		return err
	}
	fr.mu.Lock()
	fr.retries[i] = r
	fr.mu.Unlock()
	return nil
}

// pullNow runs a client on node i at once and waits for its result.
func (l *Lab) pullNow(ctx context.Context, fr *faultRun, i int, ref string) (PullResult, error) {
	startAt := time.Now().Add(200 * time.Millisecond)
	p, out, err := l.startPull(fr.dir, fr.nodes[i], ref, startAt, fr.timeout)
	if err != nil {
		return PullResult{}, err
	}
	wctx, cancel := context.WithDeadline(ctx, startAt.Add(fr.timeout+30*time.Second))
	defer cancel()
	_ = p.wait(wctx)
	if ctx.Err() != nil {
		return PullResult{}, ctx.Err()
	}
	return l.collectPull(p, out), nil
}

// waitPulls waits until k of the run's first pulls reported (false when
// ctx ended or the phase's time ran out).
func (fr *faultRun) waitPulls(ctx context.Context, k int) bool {
	deadline := fr.startAt.Add(fr.timeout + 30*time.Second)
	for fr.donePulls() < k {
		if time.Now().After(deadline) {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
	return true
}

func (fr *faultRun) donePulls() int {
	n := 0
	for _, out := range fr.outs {
		if _, ok := readPull(out); ok {
			n++
		}
	}
	return n
}

// setLink takes namespace ns's eth0 down or up.
func setLink(ctx context.Context, ns string, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	_, err := run(ctx, 10*time.Second, "ip", "-n", ns, "link", "set", "eth0", state)
	return err
}

// mountTmpfs mounts a tmpfs of size bytes on dir (made if missing); the
// lab unmounts it after the run and at teardown.
func (l *Lab) mountTmpfs(ctx context.Context, dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if _, err := run(ctx, 10*time.Second, "mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10)+",mode=0700", "shoal-lab", dir); err != nil {
		return err
	}
	l.mountMu.Lock()
	l.mounts = append(l.mounts, dir)
	l.mountMu.Unlock()
	return nil
}

// unmountAll unmounts the lab's tmpfs mounts (processes using them must
// be gone).
func (l *Lab) unmountAll() {
	l.mountMu.Lock()
	ms := l.mounts
	l.mounts = nil
	l.mountMu.Unlock()
	for _, m := range ms {
		if _, err := run(context.Background(), 10*time.Second, "umount", m); err != nil {
			_, _ = run(context.Background(), 10*time.Second, "umount", "-l", m)
		}
	}
}

func (l *Lab) modeProcs() *procs {
	l.modeMu.Lock()
	defer l.modeMu.Unlock()
	return l.mode
}

// pullOut is the result file of node np's pull that starts at startAt.
func (l *Lab) pullOut(dir string, np *nodeProc, startAt time.Time) string {
	return filepath.Join(dir, fmt.Sprintf("pull-%s-%d.json", np.h.ns[len(l.prefix):], startAt.UnixNano()))
}
