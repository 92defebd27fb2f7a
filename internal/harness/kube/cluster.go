package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

// Version is the Kubernetes version .ci/install-k8s.sh builds.
const Version = "v1.37.2"

// NodeName is the node's name and address: an IP, so that the kubelet
// reports it as the node's address without a DNS lookup, and the apiserver
// reaches the kubelet on loopback (--kubelet-preferred-address-types=Hostname).
const NodeName = "127.0.0.1"

// ToolsDir is where .ci/install-k8s.sh puts kube-apiserver,
// kube-controller-manager, kube-scheduler, kubelet, kubectl and helm:
// SHOAL_K8S_DIR, or /var/cache/shoal-k8s/<Version>.
func ToolsDir() string {
	if d := os.Getenv("SHOAL_K8S_DIR"); d != "" {
		return d
	}
	return "/var/cache/shoal-k8s/" + Version
}

// Require skips t unless SHOAL_K8S=1 (make test-k8s sets it after
// installing the binaries), and fails it when the cluster cannot run here.
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv("SHOAL_K8S") != "1" {
		t.Skip("the real-cluster test runs with SHOAL_K8S=1: use make test-k8s, which builds the Kubernetes and Helm binaries once (.ci/install-k8s.sh)")
	}
	if os.Geteuid() != 0 {
		t.Fatal("the real-cluster test needs root (a kubelet and containerd)")
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl", "helm"} {
		if _, err := os.Stat(filepath.Join(ToolsDir(), name)); err != nil {
			t.Fatalf("%s missing in %s: run bash .ci/install-k8s.sh (make test-k8s does): %v", name, ToolsDir(), err)
		}
	}
	for _, name := range []string{"etcd", "containerd", "ctr", "runc", "iptables"} {
		if _, err := exec.LookPath(name); err != nil {
			t.Fatalf("%s missing: run bash .ci/install-k8s.sh (make test-k8s does): %v", name, err)
		}
	}
}

// Timings are measured from the start of Start.
type Timings struct {
	Etcd       time.Duration // etcd healthy
	APIServer  time.Duration // kube-apiserver ready
	Containerd time.Duration // containerd answering, pause image imported
	NodeReady  time.Duration // the node reports Ready
	Kubelet    time.Duration // kubelet start to node Ready
}

// Cluster is a running single-node cluster.
type Cluster struct {
	Dir        string // everything of the cluster lives below (short: unix sockets)
	Kubeconfig string // admin (system:masters)
	CertsDir   string // containerd's config_path for registry hosts (hosts.toml)
	Containerd string // containerd's socket
	// ContainerdConfig is containerd's config file (its CRI config_path
	// names CertsDir).
	ContainerdConfig string
	Timings          Timings

	t      testing.TB
	tools  string
	procs  []*harness.Process
	pki    *pki
	admin  credential
	apiURL string
	left   *leftovers
}

// Start runs a cluster for t and tears it down completely when t ends,
// also when t fails. Call Require first.
func Start(t testing.TB) *Cluster {
	t.Helper()
	Lock(t)
	start := time.Now()
	dir, err := os.MkdirTemp("", "shoal-k8s-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, t: t, tools: ToolsDir(),
		CertsDir: filepath.Join(dir, "certs.d"), Containerd: filepath.Join(dir, "containerd", "containerd.sock"),
		ContainerdConfig: filepath.Join(dir, "containerd", "config.toml")}
	if err := refuseSecondKubelet(); err != nil {
		t.Fatal(err)
	}
	c.left = snapshotHost(dir)
	// Registered before any process starts, so it runs after every
	// process was killed (t.Cleanup is last-in first-out).
	t.Cleanup(c.teardown)
	for _, d := range []string{c.CertsDir, filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if c.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	loop := net.ParseIP("127.0.0.1")
	serving := c.must(c.pki.issue("apiserver", "kube-apiserver", nil, loop))
	c.admin = c.must(c.pki.issue("admin", "shoal-test-admin", []string{"system:masters"}))
	node := c.must(c.pki.issue("node", "system:node:"+NodeName, []string{"system:nodes"}))
	saKey, err := c.pki.signingKey("service-account")
	if err != nil {
		t.Fatal(err)
	}

	etcdURL := "http://" + freeAddr(t)
	c.start("etcd", "etcd",
		"--name", "shoal-test", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://"+freeAddr(t), "--initial-cluster-state", "new",
		"--log-level", "warn")
	c.waitHTTP("etcd", 30*time.Second, http.DefaultClient, etcdURL+"/health", `"health":"true"`)
	c.Timings.Etcd = time.Since(start)

	apiAddr := freeAddr(t)
	c.apiURL = "https://" + apiAddr
	_, apiPort, _ := net.SplitHostPort(apiAddr)
	c.start("kube-apiserver", c.tool("kube-apiserver"),
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", apiPort,
		"--endpoint-reconciler-type", "none",
		"--cert-dir", filepath.Join(dir, "apiserver"),
		"--tls-cert-file", serving.cert, "--tls-private-key-file", serving.key,
		"--client-ca-file", c.pki.caPath,
		"--kubelet-client-certificate", c.admin.cert, "--kubelet-client-key", c.admin.key,
		"--kubelet-preferred-address-types", "Hostname",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--authorization-mode", "Node,RBAC",
		"--profiling=false", "--v=1")
	c.waitHTTP("kube-apiserver", 90*time.Second, c.apiClient(), c.apiURL+"/readyz", "ok")
	c.Timings.APIServer = time.Since(start)

	c.Kubeconfig = c.kubeconfig("admin", c.admin)
	c.start("kube-controller-manager", c.tool("kube-controller-manager"),
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", port(t),
		"--service-account-private-key-file", saKey, "--root-ca-file", c.pki.caPath,
		"--leader-elect=false", "--use-service-account-credentials=false",
		"--profiling=false", "--v=1")
	c.start("kube-scheduler", c.tool("kube-scheduler"),
		"--kubeconfig", c.Kubeconfig, "--authentication-kubeconfig", c.Kubeconfig, "--authorization-kubeconfig", c.Kubeconfig,
		"--bind-address", "127.0.0.1", "--secure-port", port(t),
		"--leader-elect=false", "--profiling=false", "--v=1")

	c.startContainerd()
	c.ImportImage(PauseRef, c.pauseImage())
	c.Timings.Containerd = time.Since(start)

	kubeletStart := time.Now()
	c.startKubelet(c.kubeconfig("node", node))
	c.waitNodeReady(3 * time.Minute)
	c.Timings.NodeReady = time.Since(start)
	c.Timings.Kubelet = time.Since(kubeletStart)
	// Pods need the namespace's default service account, which the
	// controller manager makes.
	c.wait("the default service account", time.Minute, func() error {
		_, err := c.Kubectl("get", "serviceaccount", "default", "-n", "default")
		return err
	})
	t.Logf("cluster up: etcd %v, apiserver %v, containerd %v, node Ready %v (kubelet start to Ready %v)",
		c.Timings.Etcd.Round(time.Millisecond), c.Timings.APIServer.Round(time.Millisecond),
		c.Timings.Containerd.Round(time.Millisecond), c.Timings.NodeReady.Round(time.Millisecond),
		c.Timings.Kubelet.Round(time.Millisecond))
	return c
}

func (c *Cluster) must(cr credential, err error) credential {
	c.t.Helper()
	if err != nil {
		c.t.Fatal(err)
	}
	return cr
}

func (c *Cluster) tool(name string) string { return filepath.Join(c.tools, name) }

// start runs a component with its log in the cluster's logs directory.
func (c *Cluster) start(name, bin string, args ...string) *harness.Process {
	c.t.Helper()
	p := harness.StartProcess(c.t, name, bin, args, harness.ProcessOptions{
		LogPath: filepath.Join(c.Dir, "logs", name+".log")})
	c.procs = append(c.procs, p)
	return p
}

// wait polls check every 200 ms until it succeeds, a component exits or
// timeout passes; it fails the test with the last error.
func (c *Cluster) wait(what string, timeout time.Duration, check func() error) {
	c.t.Helper()
	if err := c.poll(what, timeout, check); err != nil {
		c.t.Fatal(err)
	}
}

func (c *Cluster) poll(what string, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		for _, p := range c.procs {
			if p.Exited() {
				exit := p.Err()
				if exit == nil {
					exit = errors.New("exit status 0")
				}
				return fmt.Errorf("waiting for %s: %s exited (%w):\n%s", what, p.Name, exit, harness.Tail(p.Logs(), 40))
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: not within %v: %w", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) waitHTTP(what string, timeout time.Duration, client *http.Client, url, want string) {
	c.t.Helper()
	c.wait(what, timeout, func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			return fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, body)
		}
		return nil
	})
}

// apiClient talks to the apiserver as the admin.
func (c *Cluster) apiClient() *http.Client {
	c.t.Helper()
	pem, err := os.ReadFile(c.pki.caPath)
	if err != nil {
		c.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(c.admin.cert, c.admin.key)
	if err != nil {
		c.t.Fatal(err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}}
}

// kubeconfig writes a kubeconfig for the apiserver with cred.
func (c *Cluster) kubeconfig(name string, cred credential) string {
	c.t.Helper()
	path := filepath.Join(c.Dir, name+".kubeconfig")
	conf := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: shoal-test
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: %s
  user:
    client-certificate: %s
    client-key: %s
contexts:
- name: shoal-test
  context:
    cluster: shoal-test
    user: %s
current-context: shoal-test
`, c.apiURL, c.pki.caPath, name, cred.cert, cred.key, name)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		c.t.Fatal(err)
	}
	return path
}

// Kubectl runs kubectl as the admin (two minutes at most) and returns its
// stdout; an error carries stderr.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	return c.run(2*time.Minute, c.tool("kubectl"), nil, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
}

// MustKubectl is Kubectl failing the test on an error.
func (c *Cluster) MustKubectl(args ...string) string {
	c.t.Helper()
	out, err := c.Kubectl(args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// Helm runs helm against the cluster (its cache, config and data in the
// cluster's directory) with a bound of timeout, and returns its stdout.
func (c *Cluster) Helm(timeout time.Duration, args ...string) (string, error) {
	home := filepath.Join(c.Dir, "helm")
	env := []string{"KUBECONFIG=" + c.Kubeconfig,
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data")}
	return c.run(timeout, c.tool("helm"), env, args...)
}

// Ctr runs ctr against the node's containerd.
func (c *Cluster) Ctr(args ...string) (string, error) {
	return c.run(2*time.Minute, "ctr", nil, append([]string{"--address", c.Containerd}, args...)...)
}

func (c *Cluster) run(timeout time.Duration, bin string, env []string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(harness.CleanEnv("SHOAL_", "KUBECONFIG", "HELM_"), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("%w (after %v)", err, timeout)
		}
		return string(out), fmt.Errorf("%s %s: %w\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stderr.String(), out)
	}
	return string(out), nil
}

// Logs is the named component's output so far (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, containerd, kubelet).
func (c *Cluster) Logs(name string) string {
	for _, p := range c.procs {
		if p.Name == name {
			return p.Logs()
		}
	}
	return ""
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

func port(t testing.TB) string {
	t.Helper()
	_, p, _ := net.SplitHostPort(freeAddr(t))
	return p
}

// FreePort is a loopback port free right now, for values a test hands
// to the chart's host-network pods.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := strconv.Atoi(port(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WaitPodsReady waits up to timeout until pods matching selector in
// namespace exist and are all Ready (kubectl wait, retried while none
// exist yet).
func (c *Cluster) WaitPodsReady(timeout time.Duration, namespace, selector string) error {
	return c.poll("pods "+selector+" Ready", timeout, func() error {
		_, err := c.Kubectl("wait", "--for=condition=Ready", "pod", "-n", namespace, "-l", selector, "--timeout=10s")
		return err
	})
}
