package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// containerdConfig is the node's containerd 1.6: its own root, state and
// sockets, runc's state inside the cluster's directory, and the CRI
// plugin with config_path = the cluster's certs.d, the pause image
// imported (no registry), a CNI network of loopback alone (pods the test
// runs use the host's network; no interface is made on the host), and
// restrict_oom_score_adj, since this sandbox lacks CAP_SYS_RESOURCE (runc
// fails every container that lowers oom_score_adj otherwise).
const containerdConfig = `version = 2
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]

[grpc]
  address = %[3]q

[ttrpc]
  address = "%[3]s.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = %[4]q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[5]q
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %[6]q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %[7]q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %[8]q
`

const loopbackCNI = `{"cniVersion": "1.0.0", "name": "shoal-test-lo", "plugins": [{"type": "loopback"}]}
`

func (c *Cluster) startContainerd() {
	c.t.Helper()
	base := filepath.Dir(c.Containerd)
	cni := filepath.Join(base, "cni")
	for _, d := range []string{cni, filepath.Join(base, "runc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cni, "10-loopback.conflist"), []byte(loopbackCNI), 0o644); err != nil {
		c.t.Fatal(err)
	}
	conf := fmt.Sprintf(containerdConfig, filepath.Join(base, "root"), filepath.Join(base, "state"), c.Containerd,
		filepath.Join(base, "opt"), PauseRef, filepath.Join(base, "runc"), cni, c.CertsDir)
	if err := os.WriteFile(c.ContainerdConfig, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.start("containerd", "containerd", "--config", c.ContainerdConfig)
	c.wait("containerd", 30*time.Second, func() error {
		_, err := c.Ctr("version")
		return err
	})
}

// kubeletConfig keeps the kubelet on loopback (serving, healthz), on
// cgroup v1 with the cgroupfs driver, without swap checks, without an
// oom_score_adj of its own (no CAP_SYS_RESOURCE here), with its logs,
// plugins and resolv.conf inside the cluster's directory, and with
// eviction thresholds a shared test machine does not cross.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: %[1]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %[2]s
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %[3]q
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
containerRuntimeEndpoint: unix://%[4]s
podLogsDir: %[5]q
volumePluginDir: %[6]q
resolvConf: %[7]q
staticPodPath: ""
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  imagefs.available: "1%%"
  nodefs.inodesFree: "1%%"
mergeDefaultEvictionSettings: false
nodeStatusUpdateFrequency: 2s
syncFrequency: 5s
fileCheckFrequency: 5s
`

// resolvConf sends every DNS lookup of a pod to loopback, where nothing
// answers on port 53: a test must not send queries off the machine.
const resolvConf = "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"

func (c *Cluster) startKubelet(kubeconfig string) {
	c.t.Helper()
	dir := filepath.Join(c.Dir, "kubelet")
	etc := filepath.Join(c.Dir, "kubelet-etc")
	for _, d := range []string{dir, etc, filepath.Join(etc, "pod-logs"), filepath.Join(etc, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			c.t.Fatal(err)
		}
	}
	resolv := filepath.Join(etc, "resolv.conf")
	if err := os.WriteFile(resolv, []byte(resolvConf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	conf := fmt.Sprintf(kubeletConfig, port(c.t), port(c.t), c.pki.caPath, c.Containerd,
		filepath.Join(etc, "pod-logs"), filepath.Join(etc, "volume-plugins"), resolv)
	path := filepath.Join(etc, "config.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.start("kubelet", c.tool("kubelet"),
		"--config", path, "--kubeconfig", kubeconfig, "--root-dir", dir,
		"--cert-dir", filepath.Join(etc, "pki"), "--hostname-override", NodeName, "--v=1")
}

// waitNodeReady waits for the node's Ready condition.
func (c *Cluster) waitNodeReady(timeout time.Duration) {
	c.t.Helper()
	c.wait("node "+NodeName+" Ready", timeout, func() error {
		out, err := c.Kubectl("get", "node", NodeName, "-o", `jsonpath={.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].message}`)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(out, "True") {
			return errors.New("node not Ready: " + out)
		}
		return nil
	})
}
