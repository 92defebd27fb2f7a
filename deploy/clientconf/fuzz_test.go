package clientconf

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzRegistryName checks that a registry name is either rejected with
// ErrInvalid or names a directory directly inside Dir, and that the
// hosts.toml rendered for it parses with the server the name maps to.
func FuzzRegistryName(f *testing.F) {
	for _, s := range []string{
		"docker.io", "127.0.0.1:5000", "[::1]:5000", "..", "../etc", "a/b", `a\b`,
		"_default", ".", "", "a:0", "[::1]/../x", "docker.io\x00", "C:\\x", "~",
	} {
		f.Add(s)
	}
	dir := filepath.Join(f.TempDir(), "certs.d")
	f.Fuzz(func(t *testing.T, name string) {
		h := Hosts{
			Mirror: "http://127.0.0.1:5050",
			Dir:    dir,
			Server: func(r string) (string, error) { return "https://" + r, nil },
		}
		p, perr := h.path(name)
		text, rerr := h.Render(name)
		verr := validRegistry(name)
		if name == DefaultHost {
			if perr != nil || rerr != nil {
				t.Fatalf("default: %v %v", perr, rerr)
			}
			return
		}
		if (perr == nil) != (verr == nil) || (rerr == nil) != (verr == nil) {
			t.Fatalf("%q: path %v, render %v, valid %v disagree", name, perr, rerr, verr)
		}
		if verr != nil {
			if !errors.Is(verr, ErrInvalid) || !errors.Is(perr, ErrInvalid) || !errors.Is(rerr, ErrInvalid) {
				t.Fatalf("%q: errors do not wrap ErrInvalid: %v %v %v", name, verr, perr, rerr)
			}
			return
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || !filepath.IsLocal(rel) || rel != filepath.Join(name, HostsFile) {
			t.Fatalf("%q: path %s leaves %s (rel %q, %v)", name, p, dir, rel, err)
		}
		if strings.ContainsAny(name, `/\`) || strings.Contains(name, "..") {
			t.Fatalf("%q accepted", name)
		}
		hf := parseHosts(t, text)
		if hf.Server != "https://"+name {
			t.Fatalf("%q: server %q", name, hf.Server)
		}
	})
}

// FuzzRender checks that any mirror and server URLs are either rejected
// with ErrInvalid or produce a hosts.toml that parses back to them.
func FuzzRender(f *testing.F) {
	f.Add("http://127.0.0.1:5050", "https://registry-1.docker.io")
	f.Add("https://[::1]:1/", "http://a\"b")
	f.Add("http://a\\b", "https://x/y")
	f.Add("http://%41:1", "https://ex%61mple.com")
	f.Fuzz(func(t *testing.T, mirror, server string) {
		h := Hosts{
			Mirror: mirror,
			Server: func(string) (string, error) { return server, nil },
		}
		text, err := h.Render("docker.io")
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error wraps no ErrInvalid: %v", err)
			}
			return
		}
		hf := parseHosts(t, text)
		m, err := mirrorURL(mirror)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := hf.Host[m.String()]; !ok || len(hf.Host) != 1 {
			t.Fatalf("hosts %v, want %s", hf.Host, m)
		}
		if server != "" {
			s, err := baseURL("server", server)
			if err != nil {
				t.Fatal(err)
			}
			if hf.Server != s.String() {
				t.Fatalf("server %q, want %q", hf.Server, s)
			}
		}
		if _, err := DockerDaemonJSON(mirror); err != nil {
			t.Fatalf("DockerDaemonJSON rejects a mirror Render accepts: %v", err)
		}
		if _, err := RegistriesConf([]string{"docker.io"}, mirror); err != nil {
			t.Fatalf("RegistriesConf rejects a mirror Render accepts: %v", err)
		}
	})
}
