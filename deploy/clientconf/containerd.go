package clientconf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// ErrConfigPath is wrapped by CheckConfigPath's errors: containerd's
// config does not make it read the hosts directory.
var ErrConfigPath = errors.New("clientconf: containerd does not read the hosts directory")

// Limits on reading containerd's configuration.
const (
	maxConfigFileSize = 1 << 20
	maxConfigImports  = 32
)

// registryPluginKeys are the CRI registry sections whose config_path
// containerd reads: containerd 1.x (config version 2) and 2.x (version 3).
var registryPluginKeys = []string{"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images"}

// containerdConfig is the part of containerd's config.toml read here.
type containerdConfig struct {
	Imports []string `toml:"imports"`
	Plugins map[string]struct {
		Registry struct {
			ConfigPath string `toml:"config_path"`
		} `toml:"registry"`
	} `toml:"plugins"`
}

// ConfigPaths returns the hosts directories containerd's CRI plugin reads
// (config_path, split at ':') according to the config file at path and
// the files its imports name (globs, relative to path's directory; later
// files win, as in containerd). Files larger than 1 MiB or more than 32
// imports are refused.
func ConfigPaths(path string) ([]string, error) {
	files := []string{path}
	var paths []string
	found := false
	for i := 0; i < len(files); i++ {
		if i > maxConfigImports {
			return nil, fmt.Errorf("%w: more than %d imported files from %s", ErrInvalid, maxConfigImports, path)
		}
		cfg, err := readContainerdConfig(files[i])
		if err != nil {
			return nil, err
		}
		for _, k := range registryPluginKeys {
			if p, ok := cfg.Plugins[k]; ok && p.Registry.ConfigPath != "" {
				paths, found = strings.Split(p.Registry.ConfigPath, ":"), true
			}
		}
		for _, imp := range cfg.Imports {
			if !filepath.IsAbs(imp) {
				imp = filepath.Join(filepath.Dir(files[i]), imp)
			}
			matches, err := filepath.Glob(imp)
			if err != nil {
				return nil, fmt.Errorf("%w: import %q in %s: %w", ErrInvalid, imp, files[i], err)
			}
			sort.Strings(matches)
			files = append(files, matches...)
		}
	}
	if !found {
		return nil, nil
	}
	return paths, nil
}

func readContainerdConfig(path string) (containerdConfig, error) {
	var cfg containerdConfig
	f, err := os.Open(path)
	if err != nil {
		return cfg, fmt.Errorf("%w: %w", ErrConfigPath, err)
	}
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(io.LimitReader(f, maxConfigFileSize+1))
	if err != nil {
		return cfg, fmt.Errorf("clientconf: read %s: %w", path, err)
	}
	if len(raw) > maxConfigFileSize {
		return cfg, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalid, path, maxConfigFileSize)
	}
	if _, err := toml.Decode(string(raw), &cfg); err != nil {
		return cfg, fmt.Errorf("%w: %s is not valid TOML: %w", ErrInvalid, path, err)
	}
	return cfg, nil
}

// CheckConfigPath returns nil when the containerd config at configFile
// makes the CRI plugin read hostsDir (as containerd names it), and
// otherwise an error wrapping ErrConfigPath that says what to change.
func CheckConfigPath(configFile, hostsDir string) error {
	paths, err := ConfigPaths(configFile)
	if err != nil {
		return err
	}
	want := filepath.Clean(hostsDir)
	for _, p := range paths {
		if filepath.Clean(p) == want {
			return nil
		}
	}
	fix := fmt.Sprintf("set it once (containerd 1.x, config version 2):\n"+
		"  [plugins.\"io.containerd.grpc.v1.cri\".registry]\n    config_path = %q\n"+
		"or (containerd 2.x, version 3):\n"+
		"  [plugins.\"io.containerd.cri.v1.images\".registry]\n    config_path = %q\n"+
		"then restart containerd yourself (shoal never restarts it), or point the chart's containerd.certsDir at the config_path in use",
		want, want)
	if len(paths) == 0 {
		return fmt.Errorf("%w: %s sets no registry config_path, so containerd ignores %s; %s", ErrConfigPath, configFile, want, fix)
	}
	return fmt.Errorf("%w: %s sets config_path = %q, not %s; %s", ErrConfigPath, configFile, strings.Join(paths, ":"), want, fix)
}
