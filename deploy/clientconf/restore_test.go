package clientconf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRestoreRoundTrip: a certs.d with a foreign hosts.toml for one
// registry and nothing for another; Write (twice, with a changed mirror in
// between, as an upgrade does), then Restore leaves exactly what was there.
func TestRestoreRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs.d")
	foreign := "server = \"https://ghcr.io\"\n# the operator's own\n"
	if err := os.MkdirAll(filepath.Join(dir, "ghcr.io"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ghcr.io", HostsFile), []byte(foreign), 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "quay.io", HostsFile) // not ours to touch
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("server = \"https://quay.io\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := listFiles(t, dir)

	h := testHosts(dir)
	h.Registries = append(h.Registries, "quay.io")
	h.Server = func(r string) (string, error) { return "https://" + r, nil }
	h.Default = true
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	h.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	if _, err := h.Write(); err != nil {
		t.Fatal(err)
	}
	h.Mirror = "http://127.0.0.1:6060"
	if _, err := h.Write(); err != nil {
		t.Fatal(err)
	}
	// quay.io's foreign file was backed up and replaced like the others.
	restored, err := h.Restore()
	if err != nil {
		t.Fatal(err)
	}
	if len(restored) != 5 {
		t.Errorf("restored %q, want the 5 files written", restored)
	}
	if got := listFiles(t, dir); !reflect.DeepEqual(got, before) {
		t.Fatalf("after restore certs.d holds %q, want what was there: %q", got, before)
	}
	if got := readFile(t, filepath.Join(dir, "ghcr.io", HostsFile)); got != foreign {
		t.Errorf("ghcr.io hosts.toml = %q, want the original", got)
	}
	// Again: nothing of ours is left, nothing changes.
	if again, err := h.Restore(); err != nil || len(again) != 0 {
		t.Errorf("second restore: %q, %v", again, err)
	}
}

func TestRestoreLeavesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "docker.io", HostsFile)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("server = \"x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A stray backup of someone else's must not replace a file we did not write.
	if err := os.WriteFile(p+".bak-20260101T000000Z", []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := Hosts{Registries: []string{"docker.io", "ghcr.io"}, Mirror: "http://127.0.0.1:5050", Dir: dir}
	got, err := h.Restore()
	if err != nil || len(got) != 0 {
		t.Fatalf("restore: %q, %v", got, err)
	}
	if readFile(t, p) != "server = \"x\"\n" {
		t.Error("a foreign hosts.toml changed")
	}
	if _, err := h.Restore(); err != nil {
		t.Fatal(err)
	}
	h.Registries = []string{"../x"}
	if _, err := h.Restore(); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad registry name: %v, want ErrInvalid", err)
	}
}

func TestBackupsOrder(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, HostsFile)
	for _, n := range []string{
		"hosts.toml.bak-20260101T000000Z-10", "hosts.toml.bak-20260101T000000Z-2", "hosts.toml.bak-20251231T235959Z",
		"hosts.toml.bak-20260101T000000Z", "hosts.toml.bak-junk", "hosts.toml.bak-20260101T000000Z-02", "other.bak-20260101T000000Z",
	} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := backups(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, strings.TrimPrefix(filepath.Base(g), "hosts.toml.bak-"))
	}
	want := []string{"20251231T235959Z", "20260101T000000Z", "20260101T000000Z-2", "20260101T000000Z-10"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("backups %q, want %q", names, want)
	}
}

// FuzzBackupSuffix: a suffix is accepted only as <UTC time>[-N] with N in
// 1..maxBackups-1, and then it is exactly what backup() would name.
func FuzzBackupSuffix(f *testing.F) {
	for _, s := range []string{"20260101T000000Z", "20260101T000000Z-1", "20260101T000000Z-01", "20260101T000000Z-", "x", "", "20260101T000000Z-999", "20260101T000000Z-1000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, ok := parseBackupSuffix(s)
		if !ok {
			return
		}
		name := b.t.UTC().Format(backupTimeFormat)
		if b.n > 0 {
			name += "-" + strconv.Itoa(b.n)
		}
		if name != s {
			t.Fatalf("%q parsed as %v/%d, which backup() names %q", s, b.t, b.n, name)
		}
	})
}
