package settings

import (
	"errors"
	"flag"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testFlags is the flag set most tests use.
type testFlags struct {
	fs       *flag.FlagSet
	config   *string
	dataDir  *string
	listen   *string
	debug    *bool
	workers  *int
	size     *uint64
	ratio    *float64
	timeout  *time.Duration
	upstream Repeated
	peers    Repeated
}

func newTestFlags() *testFlags {
	t := &testFlags{fs: flag.NewFlagSet("shoal", flag.ContinueOnError)}
	t.fs.SetOutput(discard{})
	t.config = t.fs.String("config", "/etc/shoal/shoal.yaml", "config file")
	t.dataDir = t.fs.String("data-dir", "/var/lib/shoal", "data directory")
	t.listen = t.fs.String("listen", "127.0.0.1:5050", "listen address")
	t.debug = t.fs.Bool("debug", false, "debug logging")
	t.workers = t.fs.Int("workers", 4, "workers")
	t.size = t.fs.Uint64("cache-size", 1024, "cache size")
	t.ratio = t.fs.Float64("ratio", 0.5, "ratio")
	t.timeout = t.fs.Duration("timeout", 30*time.Second, "timeout")
	t.fs.Var(&t.upstream, "upstream", "NAME=URL, repeatable")
	t.fs.Var(&t.peers, "peer", "peer address, repeatable")
	return t
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shoal.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvName(t *testing.T) {
	tests := []struct {
		flag, want string
	}{
		{"data-dir", "SHOAL_DATA_DIR"},
		{"upstream", "SHOAL_UPSTREAM"},
		{"config", "SHOAL_CONFIG"},
		{"p2p-listen-addr", "SHOAL_P2P_LISTEN_ADDR"},
		{"Already_Upper9", "SHOAL_ALREADY_UPPER9"},
		{"log.level", "SHOAL_LOG_LEVEL"},
		{"", "SHOAL_"},
		{"ü", "SHOAL___"}, // two bytes, each replaced
	}
	for _, tt := range tests {
		if got := EnvName(tt.flag); got != tt.want {
			t.Errorf("EnvName(%q) = %q, want %q", tt.flag, got, tt.want)
		}
	}
}

func TestRepeated(t *testing.T) {
	var r Repeated
	var _ flag.Getter = &r
	if r.String() != "" {
		t.Fatalf("empty String() = %q", r.String())
	}
	var nilp *Repeated
	if nilp.String() != "" {
		t.Fatalf("nil String() = %q", nilp.String())
	}
	for _, v := range []string{"a=1", "b=2"} {
		if err := r.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := r.String(), "a=1,b=2"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if !r.IsRepeatable() {
		t.Fatal("IsRepeatable() = false")
	}
	if got := r.Get().([]string); !reflect.DeepEqual(got, []string{"a=1", "b=2"}) {
		t.Fatalf("Get() = %q", got)
	}

	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var up Repeated
	fs.Var(&up, "upstream", "")
	if err := fs.Parse([]string{"--upstream", "a=1", "--upstream=b=2"}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(up), []string{"a=1", "b=2"}) {
		t.Fatalf("parsed %q", up)
	}
}

func TestConfigPath(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"default", nil, nil, "/etc/shoal/shoal.yaml"},
		{"env", nil, map[string]string{"SHOAL_CONFIG": "/env.yaml"}, "/env.yaml"},
		{"empty env is unset", nil, map[string]string{"SHOAL_CONFIG": ""}, "/etc/shoal/shoal.yaml"},
		{"flag beats env", []string{"--config", "/flag.yaml"}, map[string]string{"SHOAL_CONFIG": "/env.yaml"}, "/flag.yaml"},
		{"flag set to empty", []string{"--config="}, map[string]string{"SHOAL_CONFIG": "/env.yaml"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newTestFlags()
			if err := tf.fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if got := ConfigPath(tf.fs, env(tt.env)); got != tt.want {
				t.Fatalf("ConfigPath = %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("nil env", func(t *testing.T) {
		tf := newTestFlags()
		if got := ConfigPath(tf.fs, nil); got != "/etc/shoal/shoal.yaml" {
			t.Fatalf("ConfigPath = %q", got)
		}
	})
	t.Run("no config flag", func(t *testing.T) {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		if got := ConfigPath(fs, env(nil)); got != "" {
			t.Fatalf("ConfigPath = %q", got)
		}
		if got := ConfigPath(fs, env(map[string]string{"SHOAL_CONFIG": "/e"})); got != "/e" {
			t.Fatalf("ConfigPath = %q", got)
		}
	})
}

// result is a snapshot of testFlags for comparison.
type result struct {
	DataDir, Listen string
	Debug           bool
	Workers         int
	Size            uint64
	Ratio           float64
	Timeout         time.Duration
	Upstream, Peers []string
}

func (t *testFlags) result() result {
	return result{
		DataDir: *t.dataDir, Listen: *t.listen, Debug: *t.debug, Workers: *t.workers,
		Size: *t.size, Ratio: *t.ratio, Timeout: *t.timeout,
		Upstream: t.upstream, Peers: t.peers,
	}
}

func defaults() result {
	return result{
		DataDir: "/var/lib/shoal", Listen: "127.0.0.1:5050", Workers: 4,
		Size: 1024, Ratio: 0.5, Timeout: 30 * time.Second,
	}
}

func with(f func(*result)) result {
	r := defaults()
	f(&r)
	return r
}

func TestApply(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // "" means no config file
		want result
	}{
		{
			name: "defaults only",
			want: defaults(),
		},
		{
			name: "env fills unset flags",
			env: map[string]string{
				"SHOAL_DATA_DIR": "/data", "SHOAL_DEBUG": "1", "SHOAL_WORKERS": "9",
				"SHOAL_TIMEOUT": "1m", "SHOAL_RATIO": "0.25", "SHOAL_CACHE_SIZE": "2048",
			},
			want: with(func(r *result) {
				r.DataDir, r.Debug, r.Workers, r.Timeout, r.Ratio, r.Size = "/data", true, 9, time.Minute, 0.25, 2048
			}),
		},
		{
			name: "env repeatable split on commas",
			env:  map[string]string{"SHOAL_UPSTREAM": "docker.io=https://a, ghcr.io=https://b,,", "SHOAL_PEER": "p1"},
			want: with(func(r *result) {
				r.Upstream = []string{"docker.io=https://a", "ghcr.io=https://b"}
				r.Peers = []string{"p1"}
			}),
		},
		{
			name: "empty env value is unset",
			env:  map[string]string{"SHOAL_DEBUG": "", "SHOAL_DATA_DIR": ""},
			want: defaults(),
		},
		{
			name: "env of a non-repeatable flag keeps commas",
			env:  map[string]string{"SHOAL_DATA_DIR": "/a,b"},
			want: with(func(r *result) { r.DataDir = "/a,b" }),
		},
		{
			name: "file fills unset flags",
			file: `
data-dir: /srv/shoal
listen: "0.0.0.0:5050"
debug: true
workers: 0x10
cache-size: 18446744073709551615
ratio: 1e-1
timeout: 90s
upstream:
  - docker.io=https://registry-1.docker.io
  - ghcr.io=https://ghcr.io
peer: single
`,
			want: with(func(r *result) {
				r.DataDir, r.Listen, r.Debug, r.Workers, r.Size, r.Ratio, r.Timeout = "/srv/shoal", "0.0.0.0:5050", true, 16, 1<<64-1, 0.1, 90*time.Second
				r.Upstream = []string{"docker.io=https://registry-1.docker.io", "ghcr.io=https://ghcr.io"}
				r.Peers = []string{"single"}
			}),
		},
		{
			name: "flow list and yaml forms",
			file: "upstream: [a=1, b=2]\ndebug: True\nworkers: 1_000\nratio: .inf\n",
			want: with(func(r *result) {
				r.Upstream = []string{"a=1", "b=2"}
				r.Debug, r.Workers, r.Ratio = true, 1000, math.Inf(1)
			}),
		},
		{
			name: "integer in a float field and float in an int field",
			file: "ratio: 2\nworkers: 1e3\n",
			want: with(func(r *result) { r.Ratio, r.Workers = 2, 1000 }),
		},
		{
			name: "null leaves default, empty list sets nothing",
			file: "data-dir: ~\nlisten:\nupstream: []\n",
			want: defaults(),
		},
		{
			name: "quoted empty string sets empty",
			file: `data-dir: ""`,
			want: with(func(r *result) { r.DataDir = "" }),
		},
		{
			name: "anchors and aliases",
			file: "listen: &l 10.0.0.1:1\npeer: [*l, x]\n",
			want: with(func(r *result) { r.Listen, r.Peers = "10.0.0.1:1", []string{"10.0.0.1:1", "x"} }),
		},
		{
			name: "empty file",
			file: "\n",
			want: defaults(),
		},
		{
			name: "comment-only file",
			file: "# nothing here\n",
			want: defaults(),
		},
		{
			name: "explicit empty document",
			file: "---\n...\n",
			want: defaults(),
		},
		{
			name: "precedence: flag > env > file > default",
			args: []string{"--data-dir", "/flag", "--upstream", "f=1"},
			env:  map[string]string{"SHOAL_DATA_DIR": "/env", "SHOAL_UPSTREAM": "e=1", "SHOAL_LISTEN": "env:1", "SHOAL_PEER": "e"},
			file: "data-dir: /file\nupstream: [x=1]\nlisten: file:1\npeer: [p]\nworkers: 7\n",
			want: with(func(r *result) {
				r.DataDir, r.Upstream, r.Listen, r.Peers, r.Workers = "/flag", []string{"f=1"}, "env:1", []string{"e"}, 7
			}),
		},
		{
			name: "flag set to its default still wins",
			args: []string{"--debug=false"},
			env:  map[string]string{"SHOAL_DEBUG": "true"},
			file: "debug: true\n",
			want: defaults(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newTestFlags()
			if err := tf.fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			path := ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
			}
			if err := Apply(tf.fs, path, env(tt.env)); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if got := tf.result(); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestApplyNilEnv(t *testing.T) {
	tf := newTestFlags()
	if err := Apply(tf.fs, writeConfig(t, "debug: true\n"), nil); err != nil {
		t.Fatal(err)
	}
	if !*tf.debug {
		t.Fatal("debug not set from file")
	}
}

// TestApplyConfigFromEnv is the way cmd wires it: --config or $SHOAL_CONFIG
// picks the file, and the file's values fill the rest.
func TestApplyConfigFromEnv(t *testing.T) {
	p := writeConfig(t, "listen: 1.2.3.4:5\n")
	tf := newTestFlags()
	if err := tf.fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	e := env(map[string]string{"SHOAL_CONFIG": p})
	if err := Apply(tf.fs, ConfigPath(tf.fs, e), e); err != nil {
		t.Fatal(err)
	}
	if *tf.listen != "1.2.3.4:5" || *tf.config != p {
		t.Fatalf("listen %q config %q", *tf.listen, *tf.config)
	}
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		file    string
		want    error
		wantMsg []string // substrings of the error text
	}{
		{"unknown key", nil, nil, "data-dir: /x\nupstreams: [a]\n", ErrUnknownKey, []string{`"upstreams"`, ":2"}},
		{"unknown key even when other flags set", []string{"--data-dir=/x"}, nil, "data-dirr: /x\n", ErrUnknownKey, []string{"data-dirr"}},
		{"syntax error", nil, nil, "data-dir: [\n", ErrBadConfig, nil},
		{"tab indentation", nil, nil, "upstream:\n\t- a\n", ErrBadConfig, nil},
		{"top level list", nil, nil, "- a\n- b\n", ErrBadConfig, []string{"mapping"}},
		{"top level scalar", nil, nil, "hello\n", ErrBadConfig, []string{"mapping"}},
		{"two documents", nil, nil, "debug: true\n---\ndebug: false\n", ErrBadConfig, []string{"more than one"}},
		{"second document malformed", nil, nil, "debug: true\n---\n[\n", ErrBadConfig, nil},
		{"duplicate key", nil, nil, "listen: a\nlisten: b\n", ErrBadConfig, []string{"repeats", "line 1"}},
		{"list for scalar flag", nil, nil, "listen: [a, b]\n", ErrBadConfig, []string{"repeatable"}},
		{"mapping value", nil, nil, "upstream:\n  docker.io: https://x\n", ErrBadConfig, []string{"mapping"}},
		{"nested list", nil, nil, "upstream: [[a]]\n", ErrBadConfig, []string{"scalars"}},
		{"null element", nil, nil, "upstream: [a, ~]\n", ErrBadConfig, []string{"scalars"}},
		{"non-scalar key", nil, nil, "? [a]\n: b\n", ErrBadConfig, []string{"flag names"}},
		{"bad bool in file", nil, nil, "debug: maybe\n", ErrBadValue, []string{`"debug"`}},
		{"bad duration in file", nil, nil, "timeout: 5\n", ErrBadValue, []string{`"timeout"`}},
		{"bad int in env", nil, map[string]string{"SHOAL_WORKERS": "many"}, "", ErrBadValue, []string{"SHOAL_WORKERS"}},
		{"bad duration in env", nil, map[string]string{"SHOAL_TIMEOUT": "soon"}, "", ErrBadValue, []string{"SHOAL_TIMEOUT"}},
		{"bad value of a skipped key is not checked", []string{"--debug"}, nil, "debug: maybe\nnope: 1\n", ErrUnknownKey, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newTestFlags()
			if err := tf.fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			path := ""
			if tt.file != "" {
				path = writeConfig(t, tt.file)
			}
			err := Apply(tf.fs, path, env(tt.env))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Apply error = %v, want %v", err, tt.want)
			}
			msg := err.Error()
			if path != "" && !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file %s", msg, path)
			}
			for _, s := range tt.wantMsg {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
		})
	}
}

// TestApplyFileCheckedBeforeSetting checks that a file with an unknown key
// sets nothing, even keys before the bad one.
func TestApplyFileCheckedBeforeSetting(t *testing.T) {
	tf := newTestFlags()
	err := Apply(tf.fs, writeConfig(t, "data-dir: /x\nbogus: 1\n"), env(nil))
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("err = %v", err)
	}
	if *tf.dataDir != "/var/lib/shoal" {
		t.Fatalf("data-dir changed to %q", *tf.dataDir)
	}
}

func TestApplyMissingFile(t *testing.T) {
	tf := newTestFlags()
	p := filepath.Join(t.TempDir(), "nope.yaml")
	err := Apply(tf.fs, p, env(nil))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("err = %v", err)
	}
}

func TestApplyTooLarge(t *testing.T) {
	tf := newTestFlags()
	p := writeConfig(t, "# "+strings.Repeat("x", maxConfigSize)+"\n")
	if err := Apply(tf.fs, p, env(nil)); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("err = %v", err)
	}
}

// custom is a flag.Value with IsRepeatable false: lists are refused and
// commas in the environment are kept.
type custom struct{ vals []string }

func (c *custom) String() string     { return strings.Join(c.vals, "|") }
func (c *custom) Set(v string) error { c.vals = append(c.vals, v); return nil }
func (c *custom) IsRepeatable() bool { return false }

func TestIsRepeatableFalse(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	var c custom
	fs.Var(&c, "thing", "")
	if err := Apply(fs, "", env(map[string]string{"SHOAL_THING": "a,b"})); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c.vals, []string{"a,b"}) {
		t.Fatalf("vals = %q", c.vals)
	}

	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	c = custom{}
	fs.Var(&c, "thing", "")
	if err := Apply(fs, writeConfig(t, "thing: [a, b]\n"), env(nil)); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("err = %v", err)
	}
}
