// Package settings layers configuration onto a standard library
// [flag.FlagSet]: values given on the command line win, then environment
// variables named SHOAL_<FLAG>, then keys of a YAML config file, then the
// flag defaults.
//
// The environment variable for a flag is its name upper-cased with every
// character other than a letter, digit or underscore turned into '_', so
// --data-dir is SHOAL_DATA_DIR. An environment variable that is set but empty
// counts as unset.
//
// The config file is one YAML document whose top-level mapping has flag names
// as keys:
//
//	data-dir: /var/lib/shoal
//	listen: 127.0.0.1:5050
//	debug: true
//	upstream:
//	  - docker.io=https://registry-1.docker.io
//	  - ghcr.io=https://ghcr.io
//
// A scalar is passed to the flag's Set in its string form (YAML booleans and
// numbers are formatted canonically, everything else is used as written); a
// null value leaves the flag alone. Repeatable flags, whose [flag.Value] has an
// IsRepeatable method returning true (such as [Repeated]), take a YAML list,
// each element Set in turn, or a scalar, Set once; in the environment their
// value is split on commas. Other flags reject lists. Unknown keys, duplicate
// keys, nested mappings and more than one document are errors.
package settings

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Errors returned by [Apply], matched with [errors.Is].
var (
	// ErrUnknownKey is returned for a config file key that names no flag.
	ErrUnknownKey = errors.New("settings: unknown key")
	// ErrBadConfig is returned for a config file that is not valid YAML or
	// does not have the expected shape.
	ErrBadConfig = errors.New("settings: bad config file")
	// ErrBadValue is returned when a flag rejects a value taken from the
	// environment or the config file.
	ErrBadValue = errors.New("settings: bad value")
)

// EnvPrefix starts the name of every environment variable [Apply] consults.
const EnvPrefix = "SHOAL_"

// ConfigFlag is the name of the flag holding the config file path; see
// [ConfigPath].
const ConfigFlag = "config"

// maxConfigSize bounds the config file read by [Apply].
const maxConfigSize = 1 << 20

// EnvName returns the environment variable consulted for a flag name:
// SHOAL_ followed by the name upper-cased, with '-' (and any other character
// that is not an ASCII letter, digit or '_') replaced by '_'.
func EnvName(flag string) string {
	var b strings.Builder
	b.Grow(len(EnvPrefix) + len(flag))
	b.WriteString(EnvPrefix)
	for i := 0; i < len(flag); i++ {
		c := flag[i]
		switch {
		case 'a' <= c && c <= 'z':
			b.WriteByte(c - 'a' + 'A')
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Repeated is a [flag.Value] that collects every value it is Set to, in
// order, for flags given more than once such as --upstream NAME=URL.
// Its IsRepeatable method reports true, so [Apply] splits environment values
// on commas and accepts YAML lists for it.
type Repeated []string

// String returns the collected values joined by commas.
func (r *Repeated) String() string {
	if r == nil {
		return ""
	}
	return strings.Join(*r, ",")
}

// Set appends one value.
func (r *Repeated) Set(v string) error {
	*r = append(*r, v)
	return nil
}

// IsRepeatable reports true.
func (r *Repeated) IsRepeatable() bool { return true }

// Get returns the collected values as a []string, so that Repeated is a
// [flag.Getter].
func (r *Repeated) Get() any { return []string(*r) }

// repeatable is the optional interface marking a flag.Value that may be Set
// more than once to collect values.
type repeatable interface {
	IsRepeatable() bool
}

func isRepeatable(f *flag.Flag) bool {
	r, ok := f.Value.(repeatable)
	return ok && r.IsRepeatable()
}

// envLookup calls lookupEnv, treating a nil function as an empty environment
// and an empty value as unset.
func envLookup(lookupEnv func(string) (string, bool), name string) (string, bool) {
	if lookupEnv == nil {
		return "", false
	}
	v, ok := lookupEnv(name)
	if !ok || v == "" {
		return "", false
	}
	return v, true
}

// ConfigPath returns the config file path: the value of the --config flag if
// it was set on the command line, else $SHOAL_CONFIG, else the flag's
// default. Without a config flag in fs it returns $SHOAL_CONFIG or "".
// A nil lookupEnv means an empty environment.
func ConfigPath(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) string {
	f := fs.Lookup(ConfigFlag)
	if f != nil && setFlags(fs)[ConfigFlag] {
		return f.Value.String()
	}
	if v, ok := envLookup(lookupEnv, EnvName(ConfigFlag)); ok {
		return v
	}
	if f == nil {
		return ""
	}
	return f.DefValue
}

// setFlags returns the names of the flags of fs that have been set.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// Apply fills every flag of fs that was not set on the command line, first
// from the environment variable [EnvName](flag), then from the YAML file at
// configPath (if configPath is not empty) whose top-level keys are flag
// names. Precedence is flags, then environment, then file, then defaults.
//
// A repeatable flag's environment value is split on commas (parts are
// trimmed of spaces and empty parts skipped) and each part Set separately;
// a YAML list Sets each element, a YAML scalar Sets once.
//
// Errors wrap [ErrUnknownKey] for a file key that names no flag,
// [ErrBadConfig] for a malformed file and [ErrBadValue] for a value a flag
// rejects; file errors name the file. A nil lookupEnv means an empty
// environment. The file is checked completely before any flag is set from
// it, but flags already set from the environment stay set on error.
func Apply(fs *flag.FlagSet, configPath string, lookupEnv func(string) (string, bool)) error {
	skip, err := applyEnv(fs, lookupEnv)
	if err != nil || configPath == "" {
		return err
	}
	data, err := readConfig(configPath)
	if err != nil {
		return err
	}
	return applyYAML(fs, configPath, data, skip)
}

// applyEnv fills the flags of fs not yet set from the environment and
// returns the names of the flags set on the command line or from the
// environment.
func applyEnv(fs *flag.FlagSet, lookupEnv func(string) (string, bool)) (map[string]bool, error) {
	skip := setFlags(fs)
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		if envErr != nil || skip[f.Name] {
			return
		}
		name := EnvName(f.Name)
		v, ok := envLookup(lookupEnv, name)
		if !ok {
			return
		}
		skip[f.Name] = true
		if err := setEnv(fs, f, v); err != nil {
			envErr = fmt.Errorf("settings: environment %s: %w: %w", name, ErrBadValue, err)
		}
	})
	return skip, envErr
}

func setEnv(fs *flag.FlagSet, f *flag.Flag, v string) error {
	if !isRepeatable(f) {
		return fs.Set(f.Name, v)
	}
	for part := range strings.SplitSeq(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := fs.Set(f.Name, part); err != nil {
			return err
		}
	}
	return nil
}

func readConfig(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("settings: config: %w", err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("settings: config: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrBadConfig, path, maxConfigSize)
	}
	return data, nil
}
