package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"

	"github.com/shoal-dev/shoal/p2p/host"
)

func container(t *testing.T, cs []corev1.Container, name string) corev1.Container {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func volume(t *testing.T, vs []corev1.Volume, name string) corev1.Volume {
	t.Helper()
	for _, v := range vs {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no volume %s", name)
	return corev1.Volume{}
}

func env(c corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// flagValues returns the values of --name=VALUE in args, in order.
func flagValues(args []string, name string) []string {
	var out []string
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

func TestLint(t *testing.T) {
	for _, vals := range []map[string]any{nil, nonDefaultValues(t)} {
		l := lint.All(chartDir, vals, namespace, false)
		for _, m := range l.Messages {
			t.Logf("lint: %s", m)
		}
		if l.HighestSeverity > support.InfoSev {
			t.Errorf("helm lint (values %v): highest severity %d", vals != nil, l.HighestSeverity)
		}
	}
}

func TestDefaultsDaemonSet(t *testing.T) {
	r := render(t, "")
	ds := r.daemonSet(t)
	spec := ds.Spec.Template.Spec
	if !spec.HostNetwork || spec.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("hostNetwork %v dnsPolicy %s: the shim must be on the node's loopback", spec.HostNetwork, spec.DNSPolicy)
	}
	if spec.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	// Found on a real kubelet: the 0440 Secrets (the PSK) are readable by
	// the non-root daemon only through the pod's fsGroup.
	if sc := spec.SecurityContext; sc == nil || sc.FSGroup == nil || *sc.FSGroup != 65532 {
		t.Errorf("pod securityContext %+v, want fsGroup 65532", sc)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %+v, want every taint tolerated", spec.Tolerations)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("a service account token is mounted; shoal uses no Kubernetes API")
	}
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru == nil || ru.MaxSurge != nil && ru.MaxSurge.String() != "0" {
		t.Errorf("rolling update %+v: maxSurge must stay 0 (host ports)", ru)
	}

	// State on the host, not in an emptyDir.
	data := volume(t, spec.Volumes, "data")
	if data.HostPath == nil || data.HostPath.Path != "/var/lib/shoal" || *data.HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("data volume %+v, want hostPath /var/lib/shoal", data.VolumeSource)
	}
	certs := volume(t, spec.Volumes, "certs-d")
	if certs.HostPath == nil || certs.HostPath.Path != "/etc/containerd/certs.d" {
		t.Errorf("certs-d volume %+v", certs.VolumeSource)
	}
	if cfg := volume(t, spec.Volumes, "containerd-config"); cfg.HostPath == nil || cfg.HostPath.Path != "/etc/containerd" || *cfg.HostPath.Type != corev1.HostPathDirectory {
		t.Errorf("containerd-config volume %+v", cfg.VolumeSource)
	}

	d := container(t, spec.Containers, "daemon")
	for _, want := range []string{"daemon", "--data-dir=/var/lib/shoal", "--registry-addr=127.0.0.1:5050", "--metrics-addr=127.0.0.1:5051",
		"--p2p-listen=/ip4/0.0.0.0/tcp/5052", "--psk-file=/etc/shoal/psk/swarm.key", "--cache-max-bytes=auto",
		"--upstream=docker.io=https://registry-1.docker.io", "--bootstrap-dns=shoal-seeder.shoal-system.svc.cluster.local"} {
		if !slices.Contains(d.Args, want) {
			t.Errorf("daemon args lack %q: %q", want, d.Args)
		}
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range d.VolumeMounts {
		mounts[m.Name] = m
	}
	if mounts["data"].MountPath != "/var/lib/shoal" || mounts["data"].ReadOnly {
		t.Errorf("daemon data mount %+v", mounts["data"])
	}
	if !mounts["psk"].ReadOnly {
		t.Errorf("psk mount %+v, want read-only", mounts["psk"])
	}
	if _, ok := mounts["certs-d"]; ok {
		t.Error("the daemon itself mounts certs.d; only the root writer containers do")
	}

	// GOMEMLIMIT is 90% of the 1Gi limit.
	if v, ok := env(d, "GOMEMLIMIT"); !ok || v != strconv.Itoa(1<<30*9/10) {
		t.Errorf("GOMEMLIMIT = %q (set %v), want %d", v, ok, 1<<30*9/10)
	}

	// Probes on the ops endpoint, on the node's loopback.
	for name, p := range map[string]*corev1.Probe{"startup": d.StartupProbe, "readiness": d.ReadinessProbe, "liveness": d.LivenessProbe} {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s probe missing", name)
			continue
		}
		wantPath := "/readyz"
		if name == "liveness" {
			wantPath = "/healthz"
		}
		if p.HTTPGet.Host != "127.0.0.1" || p.HTTPGet.Port != intstr.FromInt32(5051) || p.HTTPGet.Path != wantPath {
			t.Errorf("%s probe %+v, want http://127.0.0.1:5051%s", name, p.HTTPGet, wantPath)
		}
	}
	checkNonRoot(t, "daemon", d)
}

// checkNonRoot asserts the security context of a non-root container.
func checkNonRoot(t *testing.T, name string, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("%s securityContext %+v: want non-root 65532, read-only root, no privilege, every capability dropped", name, sc)
	}
}

func TestDefaultsInitContainers(t *testing.T) {
	spec := render(t, "").daemonSet(t).Spec.Template.Spec
	names := []string{}
	for _, c := range spec.InitContainers {
		names = append(names, c.Name)
	}
	if !slices.Equal(names, []string{"data-dir", "containerd-config", "certs-d-restore"}) {
		t.Fatalf("init containers %q", names)
	}
	dataDir := spec.InitContainers[0]
	if !slices.Equal(dataDir.Args, []string{"host-dir", "--owner=65532:65532", "/var/lib/shoal"}) ||
		!slices.Equal(dataDir.SecurityContext.Capabilities.Add, []corev1.Capability{"CHOWN"}) {
		t.Errorf("data-dir: args %q caps %+v", dataDir.Args, dataDir.SecurityContext.Capabilities)
	}

	cc := spec.InitContainers[1]
	want := []string{"containerd-config", "--dir=/host/certs.d", "--host-dir=/etc/containerd/certs.d", "--mirror=http://127.0.0.1:5050",
		"--registry=docker.io", "--registry=ghcr.io", "--registry=quay.io", "--registry=registry.k8s.io",
		"--upstream=docker.io=https://registry-1.docker.io", "--upstream=ghcr.io=https://ghcr.io", "--upstream=quay.io=https://quay.io",
		"--upstream=registry.k8s.io=https://registry.k8s.io", "--dial-timeout=1s", "--check-containerd-config=/etc/containerd/config.toml"}
	if !slices.Equal(cc.Args, want) {
		t.Errorf("containerd-config args\n%q\nwant\n%q", cc.Args, want)
	}
	if cc.RestartPolicy != nil {
		t.Error("containerd-config must be a plain init container (it fails the pod when the check fails)")
	}
	checkRootWriter(t, cc)
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range cc.VolumeMounts {
		mounts[m.Name] = m
	}
	if m := mounts["certs-d"]; m.MountPath != "/host/certs.d" || m.ReadOnly {
		t.Errorf("certs-d mount %+v", m)
	}
	if m := mounts["containerd-config"]; m.MountPath != "/etc/containerd" || !m.ReadOnly {
		t.Errorf("containerd config mount %+v, want read-only at its own path", m)
	}

	// The restorer is a sidecar with the same registries, writing nothing at start.
	rs := spec.InitContainers[2]
	if rs.RestartPolicy == nil || *rs.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("certs-d-restore is not a sidecar (restartPolicy: Always)")
	}
	if !slices.Equal(rs.Args[:len(want)-2], want[:len(want)-2]) || rs.Args[len(rs.Args)-1] != "--restore-on-exit" {
		t.Errorf("certs-d-restore args %q", rs.Args)
	}
	checkRootWriter(t, rs)
}

func checkRootWriter(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged == nil || *sc.Privileged ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 {
		t.Errorf("%s securityContext %+v: want root with no capabilities, read-only root, no privilege", c.Name, sc)
	}
}

// TestGeneratedKeys: the PSK Secret holds a swarm key shoal loads, and the
// identity Secret's keys are libp2p keys whose peer IDs are exactly the
// daemons' --trusted-seeder arguments (and the IDs stored beside them).
func TestGeneratedKeys(t *testing.T) {
	r := render(t, "")
	psk := r.secret(t, "shoal-psk")
	p := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(p, psk.Data["swarm.key"], 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := host.LoadPSK(p); err != nil {
		t.Errorf("generated PSK: %v\n%q", err, psk.Data["swarm.key"])
	}
	if again := render(t, "").secret(t, "shoal-psk"); string(again.Data["swarm.key"]) == string(psk.Data["swarm.key"]) {
		t.Error("two installs generated the same PSK")
	}

	ids := r.secret(t, "shoal-seeder-identity")
	d := container(t, r.daemonSet(t).Spec.Template.Spec.Containers, "daemon")
	trusted := flagValues(d.Args, "trusted-seeder")
	if len(trusted) != 2 {
		t.Fatalf("daemon trusts %q, want the 2 seeders", trusted)
	}
	for i, tr := range trusted {
		name := "shoal-seeder-" + strconv.Itoa(i)
		key, err := crypto.UnmarshalPrivateKey(ids.Data[name+".key"])
		if err != nil {
			t.Fatalf("%s.key is not a libp2p key: %v", name, err)
		}
		if key.Type() != crypto.Ed25519 {
			t.Errorf("%s key type %v", name, key.Type())
		}
		want, err := peer.IDFromPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		got, err := peer.Decode(tr)
		if err != nil {
			t.Fatalf("--trusted-seeder=%s: %v", tr, err)
		}
		if got != want || string(ids.Data[name+".id"]) != tr {
			t.Errorf("seeder %d: trusted %s (%s), stored %q, key's ID %s", i, tr, got, ids.Data[name+".id"], want)
		}
		// The key signs, and its public half verifies (a real Ed25519 pair).
		sig, err := key.Sign([]byte("chunk"))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := key.GetPublic().Verify([]byte("chunk"), sig); !ok || err != nil {
			t.Errorf("seeder %d key does not verify its own signature: %v", i, err)
		}
	}
	if trusted[0] == trusted[1] {
		t.Error("both seeders got the same identity")
	}

	// The seeder mounts its own key as <data-dir>/identity.key.
	ss := r.statefulSet(t)
	sd := container(t, ss.Spec.Template.Spec.Containers, "seeder")
	var idMount *corev1.VolumeMount
	for i := range sd.VolumeMounts {
		if sd.VolumeMounts[i].Name == "identity" {
			idMount = &sd.VolumeMounts[i]
		}
	}
	if idMount == nil || idMount.MountPath != "/var/lib/shoal-seeder/"+host.IdentityFile || idMount.SubPathExpr != "$(POD_NAME).key" || !idMount.ReadOnly {
		t.Errorf("seeder identity mount %+v", idMount)
	}
	if v := volume(t, ss.Spec.Template.Spec.Volumes, "identity"); v.Secret == nil || v.Secret.SecretName != "shoal-seeder-identity" {
		t.Errorf("identity volume %+v", v.VolumeSource)
	}
}

func TestDefaultsSeeder(t *testing.T) {
	r := render(t, "")
	ss := r.statefulSet(t)
	if *ss.Spec.Replicas != 2 || ss.Spec.ServiceName != "shoal-seeder" {
		t.Errorf("replicas %d service %q", *ss.Spec.Replicas, ss.Spec.ServiceName)
	}
	sd := container(t, ss.Spec.Template.Spec.Containers, "seeder")
	checkNonRoot(t, "seeder", sd)
	for _, want := range []string{"seeder", "--data-dir=/var/lib/shoal-seeder", "--p2p-listen=/ip4/0.0.0.0/tcp/5052", "--psk-file=/etc/shoal/psk/swarm.key", "--metrics-addr=0.0.0.0:5062",
		"--admin-addr=127.0.0.1:5061"} { // the admin API has no authentication: never beyond the pod
		if !slices.Contains(sd.Args, want) {
			t.Errorf("seeder args lack %q: %q", want, sd.Args)
		}
	}
	if v, _ := env(sd, "GOMEMLIMIT"); v != strconv.Itoa(2<<30*9/10) {
		t.Errorf("seeder GOMEMLIMIT %q", v)
	}
	if sd.ReadinessProbe == nil || sd.ReadinessProbe.HTTPGet.Path != "/readyz" || sd.ReadinessProbe.HTTPGet.Host != "" {
		t.Errorf("seeder readiness %+v", sd.ReadinessProbe)
	}
	svc, ok := r.objs["Service/shoal-seeder"].(*corev1.Service)
	if !ok || svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("seeder Service %+v: want headless with publishNotReadyAddresses", svc)
	}
	if _, ok := r.objs["PodDisruptionBudget/shoal-seeder"]; !ok {
		t.Error("no PodDisruptionBudget for the seeders")
	}
	for _, k := range []string{"NetworkPolicy/shoal-seeder", "ServiceMonitor/shoal", "PrometheusRule/shoal"} {
		if _, ok := r.objs[k]; ok {
			t.Errorf("%s rendered by default", k)
		}
	}
}

func TestSchemaRejectsBadValues(t *testing.T) {
	for _, vals := range []string{
		"daemon: {registryAddr: 5050}",
		"seeder: {replicas: -1}",
		"registries: {mirror: [\"a b\"]}",
		"containerd: {restoreOnStop: yes please}",
		"unknownKey: 1",
		"daemon: {resources: {limits: {memory: lots}}}",
	} {
		if _, err := renderRaw(t, vals); err == nil {
			t.Errorf("values %s rendered", vals)
		}
	}
}

// TestReadmeDocumentsEveryValue: each value of values.yaml (maps the user
// fills freely count as one value) has a row in the chart's README.
func TestReadmeDocumentsEveryValue(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal(raw, &vals); err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	freeform := map[string]bool{"resources": true, "nodeSelector": true, "updateStrategy": true, "upstreams": true}
	var walk func(prefix string, m map[string]any)
	n := 0
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			path := prefix + k
			if sub, ok := v.(map[string]any); ok && len(sub) > 0 && !freeform[k] {
				walk(path+".", sub)
				continue
			}
			n++
			if !strings.Contains(string(readme), "| `"+path+"` |") {
				t.Errorf("README.md does not document %s", path)
			}
		}
	}
	walk("", vals)
	if n < 80 {
		t.Errorf("found only %d values", n)
	}
}
