package settings

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzApply feeds arbitrary config file bytes to what Apply does after
// reading the file. It must never panic,
// every error must wrap one of the package's sentinels, and a flag set on
// the command line must keep its value.
func FuzzApply(f *testing.F) {
	seeds := []string{
		"",
		"data-dir: /srv\n",
		"upstream: [a=1, b=2]\ndebug: yes\n",
		"upstream:\n  - a=1\n  - b=2\n",
		"listen: &x a\npeer: [*x, *x]\n",
		"a: &a [*a]\n",
		"---\n---\n",
		"? [a]\n: b\n",
		"timeout: 1h\nworkers: 0x7f\nratio: .nan\ncache-size: 1e30\n",
		"upstream: {a: b}\n",
		"!!map {debug: !!bool yes}\n",
		"debug: !!int xx\n",
		"\xef\xbb\xbfdata-dir: bom\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tf := newTestFlags()
		if err := tf.fs.Parse([]string{"--peer", "cli"}); err != nil {
			t.Fatal(err)
		}
		// Apply without the file read, to keep the fuzzer fast.
		skip, err := applyEnv(tf.fs, env(map[string]string{"SHOAL_LISTEN": "env:1"}))
		if err != nil {
			t.Fatal(err)
		}
		err = applyYAML(tf.fs, "fuzz.yaml", data, skip)
		if err != nil && !errors.Is(err, ErrBadConfig) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrBadValue) {
			t.Fatalf("error wraps no sentinel: %v", err)
		}
		if !reflect.DeepEqual([]string(tf.peers), []string{"cli"}) {
			t.Fatalf("command-line flag changed: %q", tf.peers)
		}
		if *tf.listen != "env:1" {
			t.Fatalf("environment value overridden: %q", *tf.listen)
		}
	})
}
