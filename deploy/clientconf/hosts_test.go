package clientconf

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// hostsFile is what containerd reads from hosts.toml, as far as shoal
// writes it.
type hostsFile struct {
	Server string `toml:"server"`
	Host   map[string]struct {
		Capabilities []string `toml:"capabilities"`
		DialTimeout  string   `toml:"dial_timeout"`
	} `toml:"host"`
}

// parseHosts decodes a hosts.toml and fails on keys containerd would not
// know.
func parseHosts(t testing.TB, text string) hostsFile {
	t.Helper()
	var h hostsFile
	md, err := toml.Decode(text, &h)
	if err != nil {
		t.Fatalf("hosts.toml does not parse: %v\n%s", err, text)
	}
	if u := md.Undecoded(); len(u) > 0 {
		t.Fatalf("unexpected keys %v in\n%s", u, text)
	}
	return h
}

func servers(m map[string]string) func(string) (string, error) {
	return func(r string) (string, error) {
		s, ok := m[r]
		if !ok {
			return "", fmt.Errorf("no upstream for %s", r)
		}
		return s, nil
	}
}

func testHosts(dir string) Hosts {
	return Hosts{
		Registries: []string{"docker.io", "ghcr.io", "127.0.0.1:5000"},
		Mirror:     "http://127.0.0.1:5050",
		Dir:        dir,
		Server: servers(map[string]string{
			"docker.io":      "https://registry-1.docker.io",
			"ghcr.io":        "https://ghcr.io/",
			"127.0.0.1:5000": "http://127.0.0.1:5000",
		}),
	}
}

func TestRender(t *testing.T) {
	h := testHosts("")
	tests := []struct {
		name     string
		h        Hosts
		registry string
		want     string
	}{
		{
			name: "docker.io", h: h, registry: "docker.io",
			want: `# written by shoal containerd-config
server = "https://registry-1.docker.io"

[host."http://127.0.0.1:5050"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "2s"
`,
		},
		{
			name: "server with trailing slash, https mirror, custom timeout", registry: "ghcr.io",
			h: func() Hosts {
				h := h
				h.Mirror, h.DialTimeout = "https://mirror.local:8443/", 1500*time.Millisecond
				return h
			}(),
			want: `# written by shoal containerd-config
server = "https://ghcr.io"

[host."https://mirror.local:8443"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "1.5s"
`,
		},
		{
			name: "default has no server", h: h, registry: DefaultHost,
			want: `# written by shoal containerd-config

[host."http://127.0.0.1:5050"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "2s"
`,
		},
		{
			name: "nil Server omits server", registry: "quay.io",
			h: Hosts{Mirror: "http://[::1]:5050", DialTimeout: time.Minute},
			want: `# written by shoal containerd-config

[host."http://[::1]:5050"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "1m0s"
`,
		},
		{
			name: "empty server omits server", registry: "quay.io",
			h: func() Hosts {
				h := h
				h.Server = func(string) (string, error) { return "", nil }
				return h
			}(),
			want: `# written by shoal containerd-config

[host."http://127.0.0.1:5050"]
  capabilities = ["pull", "resolve"]
  dial_timeout = "2s"
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.h.Render(tt.registry)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			parseHosts(t, got)
		})
	}
}

func TestRenderParses(t *testing.T) {
	h := testHosts("")
	for _, r := range append(h.Registries, DefaultHost) {
		text, err := h.Render(r)
		if err != nil {
			t.Fatal(err)
		}
		hf := parseHosts(t, text)
		wantServer := ""
		if r != DefaultHost {
			s, _ := h.Server(r)
			wantServer = strings.TrimSuffix(s, "/")
		}
		if hf.Server != wantServer {
			t.Errorf("%s: server %q, want %q", r, hf.Server, wantServer)
		}
		host, ok := hf.Host["http://127.0.0.1:5050"]
		if len(hf.Host) != 1 || !ok {
			t.Fatalf("%s: hosts %v", r, hf.Host)
		}
		if !reflect.DeepEqual(host.Capabilities, []string{"pull", "resolve"}) || host.DialTimeout != "2s" {
			t.Errorf("%s: host %+v", r, host)
		}
		if strings.Contains(text, "skip_verify") {
			t.Errorf("%s: skip_verify written", r)
		}
	}
}

var errNoUpstream = errors.New("no upstream")

func TestRenderErrors(t *testing.T) {
	base := testHosts("")
	tests := []struct {
		name     string
		edit     func(*Hosts)
		registry string
		want     error
	}{
		{"bad mirror", func(h *Hosts) { h.Mirror = "127.0.0.1:5050" }, "docker.io", ErrInvalid},
		{"mirror with path", func(h *Hosts) { h.Mirror = "http://m/v2/" }, "docker.io", ErrInvalid},
		{"empty mirror", func(h *Hosts) { h.Mirror = "" }, DefaultHost, ErrInvalid},
		{"negative timeout", func(h *Hosts) { h.DialTimeout = -time.Second }, "docker.io", ErrInvalid},
		{"bad registry", func(h *Hosts) {}, "../etc", ErrInvalid},
		{"registry with path", func(h *Hosts) {}, "docker.io/library", ErrInvalid},
		{"server error", func(h *Hosts) {
			h.Server = func(string) (string, error) { return "", errNoUpstream }
		}, "docker.io", errNoUpstream},
		{"server not http", func(h *Hosts) {
			h.Server = func(string) (string, error) { return "ftp://x", nil }
		}, "docker.io", ErrInvalid},
		{"server with quote", func(h *Hosts) {
			h.Server = func(string) (string, error) { return `https://x"y`, nil }
		}, "docker.io", ErrInvalid},
		{"server with path", func(h *Hosts) {
			h.Server = func(string) (string, error) { return "https://x/v2", nil }
		}, "docker.io", ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base
			tt.edit(&h)
			if _, err := h.Render(tt.registry); !errors.Is(err, tt.want) {
				t.Fatalf("Render error = %v, want %v", err, tt.want)
			}
		})
	}
}

// listFiles returns every file and directory under dir, relative, sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs.d") // Write creates it
	h := testHosts(dir)
	h.Registries = append(h.Registries, "docker.io") // duplicates written once
	h.Default = true
	clock := time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("X", 3600))
	h.now = func() time.Time { return clock }

	paths, err := h.Write()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		filepath.Join(dir, "docker.io", "hosts.toml"),
		filepath.Join(dir, "ghcr.io", "hosts.toml"),
		filepath.Join(dir, "127.0.0.1:5000", "hosts.toml"),
		filepath.Join(dir, "_default", "hosts.toml"),
	}
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	for i, p := range paths {
		name := []string{"docker.io", "ghcr.io", "127.0.0.1:5000", DefaultHost}[i]
		r, _ := h.Render(name)
		if got := readFile(t, p); got != r {
			t.Errorf("%s:\n%s\nwant\n%s", p, got, r)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s mode %v", p, fi.Mode())
		}
	}
	files := []string{
		"127.0.0.1:5000", "127.0.0.1:5000/hosts.toml", "_default", "_default/hosts.toml",
		"docker.io", "docker.io/hosts.toml", "ghcr.io", "ghcr.io/hosts.toml",
	}
	if got := listFiles(t, dir); !reflect.DeepEqual(got, files) {
		t.Fatalf("files %q", got)
	}

	// Same content again: nothing backed up or changed.
	if _, err := h.Write(); err != nil {
		t.Fatal(err)
	}
	if got := listFiles(t, dir); !reflect.DeepEqual(got, files) {
		t.Fatalf("rewrite with same content made %q", got)
	}

	// A new mirror replaces every file, backing up the old one.
	old := readFile(t, paths[0])
	h.Mirror = "http://127.0.0.1:6060"
	if _, err := h.Write(); err != nil {
		t.Fatal(err)
	}
	bak := paths[0] + ".bak-20250304T040607Z"
	if got := readFile(t, bak); got != old {
		t.Fatalf("backup %s =\n%s\nwant\n%s", bak, got, old)
	}
	if got := parseHosts(t, readFile(t, paths[0])); len(got.Host) != 1 || got.Host["http://127.0.0.1:6060"].DialTimeout != "2s" {
		t.Fatalf("new file %+v", got)
	}

	// Another change in the same second keeps the earlier backup.
	prev := readFile(t, paths[0])
	h.Mirror = "http://127.0.0.1:7070"
	if _, err := h.Write(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, bak); got != old {
		t.Fatalf("first backup overwritten")
	}
	if got := readFile(t, bak+"-1"); got != prev {
		t.Fatalf("second backup = %q, want %q", got, prev)
	}
	want2 := []string{
		"docker.io", "docker.io/hosts.toml",
		"docker.io/hosts.toml.bak-20250304T040607Z", "docker.io/hosts.toml.bak-20250304T040607Z-1",
	}
	var got2 []string
	for _, f := range listFiles(t, dir) {
		if strings.HasPrefix(f, "docker.io") {
			got2 = append(got2, f)
		}
	}
	if !reflect.DeepEqual(got2, want2) {
		t.Fatalf("docker.io files %q, want %q (no temp files left)", got2, want2)
	}
}

func TestWriteBacksUpForeignFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ghcr.io", "hosts.toml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	mine := "server = \"https://ghcr.io\"\n# hand-written\n"
	if err := os.WriteFile(p, []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	h := Hosts{Registries: []string{"ghcr.io"}, Mirror: "http://m:1", Dir: dir}
	if _, err := h.Write(); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(p + ".bak-*")
	if len(matches) != 1 {
		t.Fatalf("backups %q", matches)
	}
	if readFile(t, matches[0]) != mine {
		t.Fatal("backup content differs")
	}
	if fi, _ := os.Stat(matches[0]); fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup mode %v, want the original's 0600", fi.Mode())
	}
	name := strings.TrimPrefix(filepath.Base(matches[0]), "hosts.toml.bak-")
	if _, err := time.Parse(backupTimeFormat, name); err != nil {
		t.Fatalf("backup name %q: %v", name, err)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Hosts)
	}{
		{"no dir", func(h *Hosts) { h.Dir = "" }},
		{"nothing to write", func(h *Hosts) { h.Registries = nil }},
		{"parent escape", func(h *Hosts) { h.Registries = []string{"docker.io", "../escape"} }},
		{"dot dot", func(h *Hosts) { h.Registries = []string{".."} }},
		{"slash", func(h *Hosts) { h.Registries = []string{"a/b"} }},
		{"absolute", func(h *Hosts) { h.Registries = []string{"/etc/x"} }},
		{"backslash", func(h *Hosts) { h.Registries = []string{`..\..\x`} }},
		{"default spelled as registry", func(h *Hosts) { h.Registries = []string{DefaultHost} }},
		{"bad mirror", func(h *Hosts) { h.Mirror = "http://m/path" }},
		{"bad server", func(h *Hosts) {
			h.Server = func(string) (string, error) { return "https://x?y", nil }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "certs.d")
			h := testHosts(dir)
			tt.edit(&h)
			paths, err := h.Write()
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Write error = %v, want ErrInvalid", err)
			}
			if len(paths) != 0 {
				t.Fatalf("paths %q", paths)
			}
			if got := listFiles(t, root); len(got) != 0 {
				t.Fatalf("wrote %q despite invalid input", got)
			}
		})
	}
}

func TestWriteIOErrors(t *testing.T) {
	t.Run("hosts.toml is a directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "ghcr.io", "hosts.toml"), 0o755); err != nil {
			t.Fatal(err)
		}
		h := Hosts{Registries: []string{"docker.io", "ghcr.io"}, Mirror: "http://m:1", Dir: dir}
		paths, err := h.Write()
		if err == nil {
			t.Fatal("no error")
		}
		if want := []string{filepath.Join(dir, "docker.io", "hosts.toml")}; !reflect.DeepEqual(paths, want) {
			t.Fatalf("paths %q, want %q", paths, want)
		}
	})
	t.Run("Dir is a file", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		h := Hosts{Registries: []string{"docker.io"}, Mirror: "http://m:1", Dir: f}
		if _, err := h.Write(); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestHostsPath(t *testing.T) {
	h := Hosts{Dir: "/etc/containerd/certs.d/"}
	tests := []struct {
		name, want string
	}{
		{"docker.io", "/etc/containerd/certs.d/docker.io/hosts.toml"},
		{"[::1]:5000", "/etc/containerd/certs.d/[::1]:5000/hosts.toml"},
		{DefaultHost, "/etc/containerd/certs.d/_default/hosts.toml"},
		{"..", ""},
		{"", ""},
		{"a/../../b", ""},
	}
	for _, tt := range tests {
		got, err := h.path(tt.name)
		if tt.want == "" {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("path(%q) = %q, %v; want ErrInvalid", tt.name, got, err)
			}
			continue
		}
		if err != nil || got != filepath.FromSlash(tt.want) {
			t.Errorf("path(%q) = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
