package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/internal/node"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/internal/upstream"
)

func TestByteLimitFlag(t *testing.T) {
	for in, want := range map[string]int64{
		"auto": store.AutoQuota, "AUTO": store.AutoQuota, "none": 0, "0": 0, "1234": 1234,
		"10KiB": 10 << 10, "50GiB": 50 << 30, "2TiB": 2 << 40, "5G": 5e9, "5GB": 5e9, "7M": 7e6, "100B": 100, "3 MiB": 3 << 20,
	} {
		var b byteLimit
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "x", "1.5GiB", "10PiB", "99999999999TiB", "GiB"} {
		var b byteLimit
		if err := b.Set(bad); err == nil {
			t.Errorf("%q accepted as %d", bad, b)
		}
	}
}

// TestDaemonFlagDefaults: the defaults that bound what clients can make a
// node spend are on unless an operator turns them off.
func TestDaemonFlagDefaults(t *testing.T) {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg node.Config
	daemonFlags(fs, &cfg)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.CacheMaxBytes != store.AutoQuota {
		t.Errorf("--cache-max-bytes default %d, want auto", cfg.CacheMaxBytes)
	}
	if cfg.Downloads.MaxDownloads != 64 || cfg.Downloads.Grace != 30*time.Second || cfg.Downloads.PartialMaxAge != 24*time.Hour {
		t.Errorf("download limits %+v", cfg.Downloads)
	}
	if cfg.Upstream.DefaultUpstream != "" || len(cfg.Upstream.AllowPatterns) != 0 {
		t.Errorf("upstream defaults %+v: want no default upstream and no allow pattern", cfg.Upstream)
	}
	if err := fs.Parse([]string{"--cache-max-bytes", "none", "--allow-upstream-pattern", "*.example.com", "--max-downloads", "8"}); err != nil {
		t.Fatal(err)
	}
	if cfg.CacheMaxBytes != 0 || cfg.Upstream.AllowPatterns[0] != "*.example.com" || cfg.Downloads.MaxDownloads != 8 {
		t.Errorf("parsed %+v", cfg)
	}
}

// TestCredentialFlagsLayering: the credential settings come from flags,
// SHOAL_* variables (the chart passes SHOAL_PULL_SECRETS_DIR or the flag)
// and the YAML config, per-upstream choices as a YAML list.
func TestCredentialFlagsLayering(t *testing.T) {
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cfg node.Config
	daemonFlags(fs, &cfg)
	yml := filepath.Join(t.TempDir(), "shoal.yaml")
	if err := os.WriteFile(yml, []byte("docker-config: /etc/shoal/config.json\nupstream-credentials:\n  - ghcr.io=pull-secrets\n  - \"*.example.com=helper:ecr-login\"\ncredential-ttl: 1m\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := fs.Parse([]string{"--credential-helper-timeout", "3s"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHOAL_PULL_SECRETS_DIR": "/etc/shoal/pull-secrets"}
	if err := settings.Apply(fs, yml, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	u := cfg.Upstream
	if u.PullSecretsDir != "/etc/shoal/pull-secrets" || u.DockerConfig != "/etc/shoal/config.json" || u.CredentialTTL != time.Minute || u.HelperTimeout != 3*time.Second ||
		len(u.Credentials) != 2 || u.Credentials[1] != "*.example.com=helper:ecr-login" {
		t.Fatalf("credential settings %+v", u)
	}
	for _, c := range u.Credentials {
		if _, err := upstream.ParseCredentialChoice(c); err != nil {
			t.Error(err)
		}
	}
}
