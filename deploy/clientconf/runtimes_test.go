package clientconf

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestDockerDaemonJSON(t *testing.T) {
	tests := []struct {
		mirror, want string
	}{
		{"http://127.0.0.1:5050", `{
  "registry-mirrors": [
    "http://127.0.0.1:5050"
  ],
  "insecure-registries": [
    "127.0.0.1:5050"
  ]
}
`},
		{"https://mirror.example.com/", `{
  "registry-mirrors": [
    "https://mirror.example.com"
  ]
}
`},
		{"http://[::1]:5050", `{
  "registry-mirrors": [
    "http://[::1]:5050"
  ],
  "insecure-registries": [
    "[::1]:5050"
  ]
}
`},
	}
	for _, tt := range tests {
		got, err := DockerDaemonJSON(tt.mirror)
		if err != nil {
			t.Fatalf("DockerDaemonJSON(%q): %v", tt.mirror, err)
		}
		if string(got) != tt.want {
			t.Errorf("DockerDaemonJSON(%q) =\n%s\nwant\n%s", tt.mirror, got, tt.want)
		}
		var v map[string][]string
		if err := json.Unmarshal(got, &v); err != nil || !json.Valid(got) {
			t.Errorf("DockerDaemonJSON(%q) is not valid JSON: %v", tt.mirror, err)
		}
	}
	for _, bad := range []string{"", "127.0.0.1:5050", "http://m/v2", "unix:///run/shoal.sock"} {
		if _, err := DockerDaemonJSON(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("DockerDaemonJSON(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

type registriesConf struct {
	Registry []struct {
		Prefix   string `toml:"prefix"`
		Location string `toml:"location"`
		Mirror   []struct {
			Location string `toml:"location"`
			Insecure bool   `toml:"insecure"`
		} `toml:"mirror"`
	} `toml:"registry"`
}

func TestRegistriesConf(t *testing.T) {
	got, err := RegistriesConf([]string{"docker.io", "127.0.0.1:5000", "docker.io"}, "http://127.0.0.1:5050/")
	if err != nil {
		t.Fatal(err)
	}
	want := `# written by shoal registries-conf

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "127.0.0.1:5050"
insecure = true

[[registry]]
prefix = "127.0.0.1:5000"
location = "127.0.0.1:5000"

[[registry.mirror]]
location = "127.0.0.1:5050"
insecure = true
`
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	tests := []struct {
		registries []string
		mirror     string
		insecure   bool
	}{
		{[]string{"docker.io", "127.0.0.1:5000"}, "http://127.0.0.1:5050", true},
		{[]string{"ghcr.io"}, "https://mirror.example.com:8443", false},
	}
	for _, tt := range tests {
		b, err := RegistriesConf(tt.registries, tt.mirror)
		if err != nil {
			t.Fatal(err)
		}
		var rc registriesConf
		md, err := toml.Decode(string(b), &rc)
		if err != nil {
			t.Fatalf("does not parse: %v\n%s", err, b)
		}
		if u := md.Undecoded(); len(u) > 0 {
			t.Fatalf("unexpected keys %v", u)
		}
		mirrorHost, _ := mirrorURL(tt.mirror)
		if len(rc.Registry) != len(tt.registries) {
			t.Fatalf("%d registries", len(rc.Registry))
		}
		for i, r := range rc.Registry {
			if r.Prefix != tt.registries[i] || r.Location != tt.registries[i] {
				t.Errorf("registry %d = %+v", i, r)
			}
			wantMirror := []struct {
				Location string `toml:"location"`
				Insecure bool   `toml:"insecure"`
			}{{mirrorHost.Host, tt.insecure}}
			if !reflect.DeepEqual(r.Mirror, wantMirror) {
				t.Errorf("registry %d mirrors %+v, want %+v", i, r.Mirror, wantMirror)
			}
		}
	}

	bad := []struct {
		registries []string
		mirror     string
	}{
		{nil, "http://m:1"},
		{[]string{"docker.io/library"}, "http://m:1"},
		{[]string{"docker.io", "../x"}, "http://m:1"},
		{[]string{"docker.io"}, "m:1"},
		{[]string{"docker.io"}, "http://m:1/x"},
	}
	for _, tt := range bad {
		if _, err := RegistriesConf(tt.registries, tt.mirror); !errors.Is(err, ErrInvalid) {
			t.Errorf("RegistriesConf(%q, %q) error = %v, want ErrInvalid", tt.registries, tt.mirror, err)
		}
	}
}
