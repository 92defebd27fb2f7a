package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix starts every namespace and temp dir name of the lab:
// shoalb-<pid>-hub, shoalb-<pid>-org, shoalb-<pid>-sdr, shoalb-<pid>-h<i>.
const Prefix = "shoalb-"

// Subnet is the lab's address range (a /16 on the hub's bridge).
const (
	subnetBase   = "10.213"
	originAddr   = subnetBase + ".0.2"
	seederAddr   = subnetBase + ".0.3"
	liarAddr     = subnetBase + ".0.4"
	maskBits     = 16
	maxLabNodes  = 2000
	registryPort = 5000
	p2pPort      = 5052
)

// nodeAddr is node i's address (1-based).
func nodeAddr(i int) string {
	return fmt.Sprintf("%s.%d.%d", subnetBase, 1+(i-1)/250, 1+(i-1)%250)
}

// host is one namespace on the star.
type host struct {
	ns   string // namespace name
	addr string
	veth string // its cable's end in the hub
	rate Rate
}

// network is the star of namespaces.
type network struct {
	prefix string
	cc     string // TCP congestion control of every host ("": unknown, left as is)
	hub    string
	origin host
	seeder host
	liar   host // the fault scenarios' lying peer
	nodes  []host
	more   []host   // extra seeder hosts (seeder-failover, ha.go)
	made   []string // namespaces created, for teardown
	// allowed is the host's tcp_allowed_congestion_control before up
	// added cc to it ("": unchanged), restored by down.
	allowed string
	mu      sync.Mutex
}

// allowedPath lists the congestion controls a namespace other than the
// root one may choose.
const allowedPath = "/proc/sys/net/ipv4/tcp_allowed_congestion_control"

// allowCongestion lets the namespaces use n.cc: a namespace may set only
// an algorithm the root namespace allows (a kernel with bbr as its default
// often allows only "reno bbr", and setting cubic in a namespace fails
// with EPERM). It adds cc to the allowed list if it is missing, and notes
// the list to restore.
func (n *network) allowCongestion() error {
	if n.cc == "" {
		return nil
	}
	b, err := os.ReadFile(allowedPath)
	if err != nil {
		return nil // not Linux's procfs: the sysctl will say why
	}
	old := strings.TrimSpace(string(b))
	if slices.Contains(strings.Fields(old), n.cc) {
		return nil
	}
	if err := os.WriteFile(allowedPath, []byte(old+" "+n.cc), 0o644); err != nil {
		return fmt.Errorf("allowing TCP congestion control %s in namespaces (%s): %w", n.cc, allowedPath, err)
	}
	n.mu.Lock()
	n.allowed = old
	n.mu.Unlock()
	return nil
}

// newNetwork plans the star; cc "" is the host's congestion control (what
// new namespaces copy), read once here so that the results name it.
func newNetwork(prefix string, nodes int, nodeRate, originRate Rate, cc string) *network {
	if cc == "" {
		cc = hostCongestion()
	}
	n := &network{prefix: prefix, hub: prefix + "hub", cc: cc}
	n.origin = host{ns: prefix + "org", addr: originAddr, veth: "vorg", rate: originRate}
	n.seeder = host{ns: prefix + "sdr", addr: seederAddr, veth: "vsdr", rate: originRate}
	n.liar = host{ns: prefix + "lia", addr: liarAddr, veth: "vlia", rate: nodeRate}
	for i := 1; i <= nodes; i++ {
		n.nodes = append(n.nodes, host{ns: fmt.Sprintf("%sh%d", prefix, i), addr: nodeAddr(i), veth: fmt.Sprintf("vh%d", i), rate: nodeRate})
	}
	return n
}

// hostCongestion is the root namespace's TCP congestion control ("" if
// unreadable).
func hostCongestion() string {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_congestion_control")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (n *network) hosts() []host {
	return append(append([]host{n.origin, n.seeder, n.liar}, n.more...), n.nodes...)
}

func (n *network) addNS(ctx context.Context, name string) error {
	if _, err := run(ctx, 10*time.Second, "ip", "netns", "add", name); err != nil {
		return err
	}
	n.mu.Lock()
	n.made = append(n.made, name)
	n.mu.Unlock()
	_, err := run(ctx, 10*time.Second, "ip", "-n", name, "link", "set", "lo", "up")
	return err
}

// up builds the hub with its bridge and every host with its shaped cable.
func (n *network) up(ctx context.Context) error {
	if err := n.allowCongestion(); err != nil {
		return err
	}
	if err := n.addNS(ctx, n.hub); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"-n", n.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", n.hub, "link", "set", "br0", "up"},
	} {
		if _, err := run(ctx, 10*time.Second, "ip", args...); err != nil {
			return err
		}
	}
	// Bridged frames skip iptables in the hub (per-namespace since 5.3;
	// failure is harmless).
	_, _ = run(ctx, 10*time.Second, "ip", "netns", "exec", n.hub, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0")
	hosts := n.hosts()
	errs := make([]error, len(hosts))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = n.addHost(ctx, h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (n *network) addHost(ctx context.Context, h host) error {
	if err := n.addNS(ctx, h.ns); err != nil {
		return err
	}
	burst := strconv.FormatInt(burstFor(h.rate), 10)
	steps := [][]string{
		{"ip", "-n", n.hub, "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"ip", "-n", n.hub, "link", "set", h.veth, "master", "br0"},
		{"ip", "-n", n.hub, "link", "set", h.veth, "up"},
		{"ip", "-n", h.ns, "addr", "add", fmt.Sprintf("%s/%d", h.addr, maskBits), "dev", "eth0"},
		{"ip", "-n", h.ns, "link", "set", "eth0", "up"},
		// The host's upload: its own eth0.
		{"tc", "-n", h.ns, "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", h.rate.Text, "burst", burst, "latency", "50ms"},
		// Its download: the hub's end of its cable.
		{"tc", "-n", n.hub, "qdisc", "add", "dev", h.veth, "root", "tbf", "rate", h.rate.Text, "burst", burst, "latency", "50ms"},
	}
	if n.cc != "" {
		steps = append(steps, []string{"ip", "netns", "exec", h.ns, "sysctl", "-qw", "net.ipv4.tcp_congestion_control=" + n.cc})
	}
	for _, s := range steps {
		if _, err := run(ctx, 10*time.Second, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// down deletes every namespace the lab made (the veths go with them).
// Processes must be gone first: a namespace with a process lives on.
func (n *network) down() error {
	n.mu.Lock()
	made, allowed := n.made, n.allowed
	n.made, n.allowed = nil, ""
	n.mu.Unlock()
	var errs []error
	if allowed != "" {
		if err := os.WriteFile(allowedPath, []byte(allowed), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range made {
		killNamespace(ns)
		if _, err := run(context.Background(), 10*time.Second, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNamespace SIGKILLs every process left in namespace ns.
func killNamespace(ns string) {
	out, err := run(context.Background(), 10*time.Second, "ip", "netns", "pids", ns)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// linkStats is an interface's byte counters.
type linkStats struct{ rx, tx int64 }

// ifStats reads the counters of every interface in namespace ns.
func ifStats(ctx context.Context, ns string) (map[string]linkStats, error) {
	out, err := run(ctx, 10*time.Second, "ip", "-n", ns, "-j", "-s", "link", "show")
	if err != nil {
		return nil, err
	}
	return parseIPLinkJSON([]byte(out))
}

func parseIPLinkJSON(b []byte) (map[string]linkStats, error) {
	var links []struct {
		Name  string `json:"ifname"`
		Stats struct {
			RX struct {
				Bytes int64 `json:"bytes"`
			} `json:"rx"`
			TX struct {
				Bytes int64 `json:"bytes"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal(b, &links); err != nil {
		return nil, fmt.Errorf("ip -j link: %w", err)
	}
	m := map[string]linkStats{}
	for _, l := range links {
		m[l.Name] = linkStats{rx: l.Stats.RX.Bytes, tx: l.Stats.TX.Bytes}
	}
	return m, nil
}

var staleName = regexp.MustCompile(`^` + regexp.QuoteMeta(Prefix) + `(\d+)-`)

// CleanupStale removes namespaces and temp dirs of lab runs whose process
// is gone (a run killed with SIGKILL). A run still alive is left alone
// unless force is set. It returns what it removed.
func CleanupStale(ctx context.Context, force bool) ([]string, error) {
	out, err := run(ctx, 10*time.Second, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := f[0]
		m := staleName.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if !force && pidAlive(pid) {
			continue
		}
		killNamespace(name)
		if _, err := run(ctx, 10*time.Second, "ip", "netns", "del", name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "netns "+name)
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), Prefix+"*"))
	for _, d := range dirs {
		m := staleName.FindStringSubmatch(filepath.Base(d))
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if !force && pidAlive(pid) {
			continue
		}
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "dir "+d)
	}
	return removed, errors.Join(errs...)
}

// pidAlive reports whether a process with this pid runs: the lab that
// made the names may still be using them (a reused pid keeps a stale lab
// until --force).
func pidAlive(pid int) bool {
	if pid == os.Getpid() {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
