package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/p2p/host"
)

// testPSK is the network key every daemon and seeder of the e2e tests
// shares (the harness passes it to each process it starts).
func testPSK(testing.TB) string { return harness.NetworkKeyFile() }

// shoal runs the binary to its end (at most 30 s) and returns what it
// wrote (stdout, then stderr) and its error.
func shoal(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, errOut, err := harness.RunShoal(t, 30*time.Second, args...)
	return out + errOut, err
}

// TestE2ESecureDefaults (finding 11): without a network key the daemon and
// the seeder refuse to start, say how to make one, and start with
// --open-swarm; `shoal psk` writes a key --psk-file reads and will not
// overwrite one; with the key the p2p port refuses a peer without it and
// accepts one with it; pprof is served only with --pprof.
func TestE2ESecureDefaults(t *testing.T) {
	requireE2E(t)
	origin := startOrigin(t)
	// A daemon joins the swarm only when it trusts a seeder.
	seederID := shoalID(t, t.TempDir())
	common := []string{"--data-dir", t.TempDir(), "--p2p-listen", "/ip4/127.0.0.1/tcp/0",
		"--upstream", origin.Host + "=" + origin.URL(), "--default-upstream", origin.Host, "--docker-config", "", "--metrics-addr", ""}

	t.Run("no key", func(t *testing.T) {
		for role, extra := range map[string][]string{
			"daemon": {"--registry-addr", "127.0.0.1:0", "--trusted-seeder", seederID},
			"seeder": {"--admin-addr", "127.0.0.1:0"},
		} {
			args := append(append([]string{role}, common...), extra...)
			out, err := shoal(t, args...)
			if err == nil {
				t.Fatalf("shoal %s started without --psk-file or --open-swarm:\n%s", role, out)
			}
			if !strings.Contains(out, "no network key") || !strings.Contains(out, "shoal psk --out") || !strings.Contains(out, "--open-swarm") {
				t.Fatalf("shoal %s without a key said:\n%s\nwant the reason and how to make a key", role, harness.Tail(out, 2000))
			}
			out, err = shoal(t, append(args, "--psk-file", testPSK(t), "--open-swarm")...)
			if err == nil || !strings.Contains(out, "open swarm at once") {
				t.Fatalf("shoal %s with both --psk-file and --open-swarm: %v\n%s", role, err, harness.Tail(out, 2000))
			}
		}
		d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: []string{"--psk-file", "", "--open-swarm", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--trusted-seeder", seederID}})
		d.Stop(10 * time.Second) //nolint:errcheck // it started: that is the point
	})

	t.Run("shoal psk", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "swarm.key")
		if out, err := shoal(t, "psk", "--out", path); err != nil {
			t.Fatalf("shoal psk: %v\n%s", err, out)
		}
		k1, err := host.LoadPSK(path)
		if err != nil {
			t.Fatalf("the key shoal psk wrote does not load: %v", err)
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key file mode: %v %v, want 0600", fi.Mode(), err)
		}
		if out, err := shoal(t, "psk", "--out", path); err == nil || !strings.Contains(out, "exists") {
			t.Fatalf("shoal psk over an existing key: %v\n%s", err, out)
		}
		if out, err := shoal(t, "psk", "--out", path, "--force"); err != nil {
			t.Fatalf("shoal psk --force: %v\n%s", err, out)
		}
		k2, err := host.LoadPSK(path)
		if err != nil || bytes.Equal(k1, k2) {
			t.Fatalf("shoal psk --force did not write a new key: %v", err)
		}
	})

	t.Run("outsider refused, pprof off", func(t *testing.T) {
		d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: []string{"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--trusted-seeder", seederID}})
		var target *peer.AddrInfo
		for _, e := range d.LogEntries() {
			if e.Msg() != "libp2p host started" {
				continue
			}
			if addrs, ok := e["addrs"].([]any); ok && len(addrs) > 0 {
				s, _ := addrs[0].(string)
				target, _ = peer.AddrInfoFromString(s)
			}
		}
		if target == nil {
			t.Fatalf("no p2p address in the daemon's log:\n%s", harness.Tail(d.Logs(), 4000))
		}
		psk, err := host.LoadPSK(testPSK(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			psk  []byte
			ok   bool
		}{{"without the key", nil, false}, {"with another key", otherKey(t), false}, {"with the key", psk, true}} {
			key, _, err := crypto.GenerateEd25519Key(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			h, err := host.New(host.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, PSK: tc.psk, Key: key}, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err = h.Connect(ctx, *target)
			cancel()
			_ = h.Close()
			if (err == nil) != tc.ok {
				t.Errorf("a peer %s: connect err = %v, want ok = %v", tc.name, err, tc.ok)
			}
		}
		resp, err := http.Get(d.MetricsURL + "/debug/pprof/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("pprof without --pprof: %s, want 404", resp.Status)
		}
	})

	t.Run("pprof on", func(t *testing.T) {
		d := harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: []string{"--p2p=false", "--pprof"}})
		resp, err := http.Get(d.MetricsURL + "/debug/pprof/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("pprof with --pprof: %s", resp.Status)
		}
	})
}

// otherKey is a network key nobody else has.
func otherKey(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := host.GeneratePSK(&b); err != nil {
		t.Fatal(err)
	}
	k, err := host.ParsePSK(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return k
}
