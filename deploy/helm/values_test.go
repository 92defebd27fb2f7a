package helm

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// nonDefault are values an operator of the single-node test cluster (and of
// a real one) changes: temporary host paths, loopback addresses, seeders on
// the host network at fixed addresses, pull secrets, monitoring on.
const nonDefault = `
image: {repository: example.test/shoal, tag: v9.9.9, pullPolicy: Never}
registries: {mirror: ["127.0.0.1:5000"], catchAll: true}
upstreams: {"127.0.0.1:5000": "http://127.0.0.1:5000"}
allowUpstreamPatterns: ["*.example.test"]
defaultUpstream: "127.0.0.1:5000"
pullSecrets: [origin-creds, other]
psk: {existingSecret: my-psk, key: key}
containerd:
  certsDir: /tmp/k8s/certs.d
  configFile: /tmp/k8s/containerd/config.toml
  dialTimeout: 300ms
  restoreOnStop: false
daemon:
  registryAddr: 127.0.0.1:15050
  metricsAddr: 0.0.0.0:15051
  p2pPort: 15052
  p2pListen: [/ip4/127.0.0.1/tcp/15052]
  dataDir: /tmp/k8s/shoal
  cacheMaxBytes: 2GiB
  goMemLimitPercent: 80
  resources: {limits: {memory: 512Mi}}
  tolerations: []
  nodeSelector: {disk: ssd}
  extraArgs: [--max-downloads=7]
  extraEnv: [{name: SHOAL_TAG_TTL, value: 9s}]
seeder:
  replicas: 1
  hostNetwork: true
  listenHost: 127.0.0.1
  ports: {p2p: 15053, admin: 15061, metrics: 15062}
  addresses: [/ip4/127.0.0.1/tcp/15053]
  cacheMaxBytes: 1GiB
  resources: {limits: {memory: 1G}}
  persistence: {enabled: true, size: 5Gi, storageClassName: fast}
metrics:
  serviceMonitor: {enabled: true, labels: {release: prom}}
  prometheusRule: {enabled: true}
networkPolicy: {enabled: true}
`

func nonDefaultValues(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal([]byte(nonDefault), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestNonDefaultValues(t *testing.T) {
	r := render(t, nonDefault)
	ds := r.daemonSet(t)
	spec := ds.Spec.Template.Spec
	if v := volume(t, spec.Volumes, "data"); v.HostPath.Path != "/tmp/k8s/shoal" {
		t.Errorf("data hostPath %q", v.HostPath.Path)
	}
	if v := volume(t, spec.Volumes, "certs-d"); v.HostPath.Path != "/tmp/k8s/certs.d" {
		t.Errorf("certs.d hostPath %q", v.HostPath.Path)
	}
	if v := volume(t, spec.Volumes, "containerd-config"); v.HostPath.Path != "/tmp/k8s/containerd" {
		t.Errorf("containerd config hostPath %q", v.HostPath.Path)
	}
	if len(spec.Tolerations) != 0 || spec.NodeSelector["disk"] != "ssd" {
		t.Errorf("tolerations %v nodeSelector %v", spec.Tolerations, spec.NodeSelector)
	}
	names := []string{}
	for _, c := range spec.InitContainers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"data-dir", "containerd-config"}) {
		t.Errorf("init containers %q: restoreOnStop=false has no restore sidecar", names)
	}
	cc := spec.InitContainers[1]
	want := []string{"containerd-config", "--dir=/host/certs.d", "--host-dir=/tmp/k8s/certs.d", "--mirror=http://127.0.0.1:15050",
		"--registry=127.0.0.1:5000", "--default", "--upstream=127.0.0.1:5000=http://127.0.0.1:5000", "--dial-timeout=300ms",
		"--check-containerd-config=/tmp/k8s/containerd/config.toml"}
	if !slices.Equal(cc.Args, want) {
		t.Errorf("containerd-config args\n%q\nwant\n%q", cc.Args, want)
	}

	d := container(t, spec.Containers, "daemon")
	if d.Image != "example.test/shoal:v9.9.9" || d.ImagePullPolicy != corev1.PullNever {
		t.Errorf("image %s %s", d.Image, d.ImagePullPolicy)
	}
	for _, w := range []string{"--registry-addr=127.0.0.1:15050", "--metrics-addr=0.0.0.0:15051", "--p2p-listen=/ip4/127.0.0.1/tcp/15052",
		"--psk-file=/etc/shoal/psk/key", "--cache-max-bytes=2GiB", "--allow-upstream-pattern=*.example.test",
		"--default-upstream=127.0.0.1:5000", "--pull-secrets-dir=/etc/shoal/pull-secrets", "--max-downloads=7"} {
		if !slices.Contains(d.Args, w) {
			t.Errorf("daemon args lack %q: %q", w, d.Args)
		}
	}
	if flagValues(d.Args, "bootstrap-dns") != nil {
		t.Errorf("daemon has --bootstrap-dns with static seeder addresses: %q", d.Args)
	}
	boot := flagValues(d.Args, "bootstrap")
	trusted := flagValues(d.Args, "trusted-seeder")
	if len(boot) != 1 || len(trusted) != 1 || boot[0] != "/ip4/127.0.0.1/tcp/15053/p2p/"+trusted[0] {
		t.Errorf("bootstrap %q trusted %q", boot, trusted)
	}
	if v, _ := env(d, "GOMEMLIMIT"); v != "429496729" { // 80% of 512Mi
		t.Errorf("GOMEMLIMIT %q, want 429496729", v)
	}
	if v, _ := env(d, "SHOAL_TAG_TTL"); v != "9s" {
		t.Errorf("extra env SHOAL_TAG_TTL = %q", v)
	}
	if p := d.ReadinessProbe.HTTPGet; p.Host != "127.0.0.1" || p.Port.IntValue() != 15051 {
		t.Errorf("readiness probe %+v: a wildcard listener is probed on 127.0.0.1", p)
	}
	// Pull secrets: each Secret in its own directory with .dockerconfigjson.
	for _, s := range []string{"origin-creds", "other"} {
		v := volume(t, spec.Volumes, "pull-"+s)
		if v.Secret == nil || v.Secret.SecretName != s || len(v.Secret.Items) != 1 || v.Secret.Items[0].Path != ".dockerconfigjson" {
			t.Errorf("pull secret volume %+v", v.VolumeSource)
		}
		found := false
		for _, m := range d.VolumeMounts {
			found = found || (m.Name == "pull-"+s && m.MountPath == "/etc/shoal/pull-secrets/"+s && m.ReadOnly)
		}
		if !found {
			t.Errorf("daemon does not mount %s at /etc/shoal/pull-secrets/%s", s, s)
		}
	}
	if v := volume(t, spec.Volumes, "psk"); v.Secret.SecretName != "my-psk" {
		t.Errorf("psk from %q, want the existing Secret", v.Secret.SecretName)
	}
	if _, ok := r.objs["Secret/shoal-psk"]; ok {
		t.Error("a PSK Secret is generated although psk.existingSecret is set")
	}

	ss := r.statefulSet(t)
	sd := container(t, ss.Spec.Template.Spec.Containers, "seeder")
	if !ss.Spec.Template.Spec.HostNetwork || sd.ReadinessProbe.HTTPGet.Host != "127.0.0.1" {
		t.Errorf("seeder hostNetwork %v probe host %q", ss.Spec.Template.Spec.HostNetwork, sd.ReadinessProbe.HTTPGet.Host)
	}
	for _, w := range []string{"--p2p-listen=/ip4/0.0.0.0/tcp/15053", "--admin-addr=127.0.0.1:15061", "--metrics-addr=127.0.0.1:15062", "--cache-max-bytes=1GiB", "--pull-secrets-dir=/etc/shoal/pull-secrets"} {
		if !slices.Contains(sd.Args, w) {
			t.Errorf("seeder args lack %q: %q", w, sd.Args)
		}
	}
	if v, _ := env(sd, "GOMEMLIMIT"); v != "900000000" {
		t.Errorf("seeder GOMEMLIMIT %q, want 90%% of 1G", v)
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || *ss.Spec.VolumeClaimTemplates[0].Spec.StorageClassName != "fast" {
		t.Errorf("volumeClaimTemplates %+v", ss.Spec.VolumeClaimTemplates)
	}
	for _, k := range []string{"ServiceMonitor/shoal", "PrometheusRule/shoal", "Service/shoal-metrics"} {
		if _, ok := r.objs[k]; !ok {
			if _, ok := r.other[k]; !ok {
				t.Errorf("%s not rendered", k)
			}
		}
	}
	if _, ok := r.objs["NetworkPolicy/shoal-seeder"]; ok {
		t.Error("a NetworkPolicy over host-network seeders (it would govern nothing)")
	}
	rule := r.other["PrometheusRule/shoal"]
	text, _ := yaml.Marshal(rule)
	for _, metric := range []string{"shoal_fetched_bytes_total", "shoal_chunk_verify_failures_total", "up{"} {
		if !strings.Contains(string(text), metric) {
			t.Errorf("PrometheusRule does not use %s", metric)
		}
	}
}

func TestNetworkPolicy(t *testing.T) {
	r := render(t, "networkPolicy: {enabled: true, p2pFrom: [{ipBlock: {cidr: 10.0.0.0/8}}]}")
	np, ok := r.objs["NetworkPolicy/shoal-seeder"]
	if !ok {
		t.Fatal("no NetworkPolicy")
	}
	text, _ := yaml.Marshal(np)
	for _, w := range []string{"port: 5052", "port: 5062", "cidr: 10.0.0.0/8"} {
		if !strings.Contains(string(text), w) {
			t.Errorf("NetworkPolicy lacks %q:\n%s", w, text)
		}
	}
	if strings.Contains(string(text), "5061") {
		t.Error("the admin port is open in the NetworkPolicy")
	}
}
