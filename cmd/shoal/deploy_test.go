package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/p2p/host"
	"github.com/shoal-dev/shoal/seeder"
)

// The plain-host files in deploy/systemd: units, example configs and the
// snippets the config generators print, kept equal to the real commands'
// output (SHOAL_UPDATE_MANIFESTS=1, as `make manifests` sets, rewrites them).

var systemdDir = filepath.Join("..", "..", "deploy", "systemd")

func noEnv(string) (string, bool) { return "", false }

// unitValue returns the value of the first Key= line of a unit file.
func unitValue(t *testing.T, unit, key string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(systemdDir, unit))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	t.Fatalf("%s has no %s=", unit, key)
	return ""
}

func TestSystemdConfigsParse(t *testing.T) {
	var d node.Config
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	daemonFlags(fs, &d)
	new(processFlags).declare(fs, 0)
	if err := settings.Apply(fs, filepath.Join(systemdDir, "daemon.yaml"), noEnv); err != nil {
		t.Fatalf("daemon.yaml: %v", err)
	}
	if d.DataDir != "/var/lib/"+unitValue(t, "shoal-daemon.service", "StateDirectory") {
		t.Errorf("daemon.yaml data-dir %q is not the unit's StateDirectory", d.DataDir)
	}
	if want := "/run/credentials/shoal-daemon.service/swarm.key"; d.Swarm.PSKFile != want || !strings.HasPrefix(unitValue(t, "shoal-daemon.service", "LoadCredential"), "swarm.key:") {
		t.Errorf("daemon psk-file %q, want %s from LoadCredential=swarm.key:...", d.Swarm.PSKFile, want)
	}
	if len(d.TrustedSeeders) == 0 || len(d.Swarm.Bootstrap) == 0 || len(d.Upstream.Upstreams) == 0 {
		t.Errorf("daemon.yaml: seeders %v bootstrap %v upstreams %v", d.TrustedSeeders, d.Swarm.Bootstrap, d.Upstream.Upstreams)
	}
	for _, id := range d.TrustedSeeders {
		if _, err := peer.Decode(id); err != nil {
			t.Errorf("daemon.yaml trusted-seeder %q: %v", id, err)
		}
	}
	if _, err := host.ParseAddrInfos(d.Swarm.Bootstrap); err != nil {
		t.Errorf("daemon.yaml bootstrap: %v", err)
	}

	var s seeder.Config
	fs = flag.NewFlagSet("seeder", flag.ContinueOnError)
	_ = seederFlags(fs, &s)
	new(processFlags).declare(fs, 0)
	if err := settings.Apply(fs, filepath.Join(systemdDir, "seeder.yaml"), noEnv); err != nil {
		t.Fatalf("seeder.yaml: %v", err)
	}
	if s.DataDir != "/var/lib/"+unitValue(t, "shoal-seeder.service", "StateDirectory") || s.Swarm.PSKFile != "/run/credentials/shoal-seeder.service/swarm.key" {
		t.Errorf("seeder.yaml data-dir %q psk-file %q", s.DataDir, s.Swarm.PSKFile)
	}
}

// snippet compares (or, with SHOAL_UPDATE_MANIFESTS set, writes) one file
// under deploy/systemd/snippets.
func snippet(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join(systemdDir, "snippets", name)
	if os.Getenv("SHOAL_UPDATE_MANIFESTS") != "" {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what the command prints now (run make manifests):\n%s", p, got)
	}
}

func TestSystemdSnippets(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	args := []string{"--config", filepath.Join(systemdDir, "containerd-config.yaml"), "--dir", dir, "--check-containerd-config="}
	if err := runContainerdConfig(ctx, args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, reg := range []string{"docker.io", "ghcr.io"} {
		b, err := os.ReadFile(filepath.Join(dir, reg, "hosts.toml"))
		if err != nil {
			t.Fatal(err)
		}
		snippet(t, filepath.Join("containerd", "certs.d", reg, "hosts.toml"), b)
	}
	// --restore takes them away again.
	if err := runContainerdConfig(ctx, append(args, "--restore"), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("after --restore the hosts directory holds %d entries", len(ents))
	}

	var out bytes.Buffer
	if err := runDockerConfig(ctx, []string{"--mirror", "http://127.0.0.1:5050"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	snippet(t, "docker-daemon.json", out.Bytes())
	out.Reset()
	if err := runRegistriesConf(ctx, []string{"--mirror", "http://127.0.0.1:5050", "--registry", "docker.io", "--registry", "ghcr.io"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	snippet(t, "registries.conf", out.Bytes())
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify over both units
// (with ExecStart pointing at a real shoal binary): no error, no warning.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa := harness.RequireTool(t, "", "systemd-analyze")
	bin := harness.ShoalBinary(t)
	dir := t.TempDir()
	var units []string
	for _, u := range []string{"shoal-daemon.service", "shoal-seeder.service"} {
		b, err := os.ReadFile(filepath.Join(systemdDir, u))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, u)
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("/usr/local/bin/shoal"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		units = append(units, p)
	}
	cmd := exec.Command(sa, append([]string{"verify", "--man=no"}, units...)...)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestContainerdConfigChecksAndRestores drives the chart's two uses of
// containerd-config: the init container (check containerd's config_path
// first, write nothing when it is wrong) and the sidecar (restore certs.d
// when its context ends, as SIGTERM ends it).
func TestContainerdConfigChecksAndRestores(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	certs := filepath.Join(base, "certs.d")
	conf := filepath.Join(base, "config.toml")
	if err := os.WriteFile(conf, []byte("version = 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--dir", certs, "--host-dir", "/etc/containerd/certs.d", "--registry", "docker.io", "--mirror", "http://127.0.0.1:5050"}
	err := runContainerdConfig(ctx, append(args, "--check-containerd-config", conf), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "sets no registry config_path") || !strings.Contains(err.Error(), `config_path = "/etc/containerd/certs.d"`) {
		t.Fatalf("check of a config without config_path: %v", err)
	}
	if _, err := os.Stat(certs); !os.IsNotExist(err) {
		t.Errorf("a failed check wrote %s", certs)
	}
	good := "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n"
	if err := os.WriteFile(conf, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := runContainerdConfig(ctx, append(args, "--check-containerd-config", conf), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(certs, "docker.io", "hosts.toml")); err != nil {
		t.Fatal(err)
	}

	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() { done <- runContainerdConfig(sctx, append(args, "--restore-on-exit"), &out, io.Discard) }()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(certs); len(ents) != 0 || !strings.Contains(out.String(), "restored") {
		t.Errorf("after the sidecar stopped certs.d holds %d entries; it printed %q", len(ents), out.String())
	}
}
