package settings

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// assignment is one config file key with the values to Set on its flag.
type assignment struct {
	flag   *flag.Flag
	line   int
	values []string
}

// applyYAML parses data (the contents of the config file at path), checks
// every key against fs and then Sets the flags not in skip.
func applyYAML(fs *flag.FlagSet, path string, data []byte, skip map[string]bool) error {
	as, err := parseYAML(fs, path, data)
	if err != nil {
		return err
	}
	for _, a := range as {
		if skip[a.flag.Name] {
			continue
		}
		for _, v := range a.values {
			if err := fs.Set(a.flag.Name, v); err != nil {
				return fmt.Errorf("settings: %s:%d: key %q: %w: %w", path, a.line, a.flag.Name, ErrBadValue, err)
			}
		}
	}
	return nil
}

// parseYAML turns the config file into assignments without setting anything.
func parseYAML(fs *flag.FlagSet, path string, data []byte) ([]assignment, error) {
	bad := func(line int, format string, args ...any) error {
		where := path
		if line > 0 {
			where = fmt.Sprintf("%s:%d", path, line)
		}
		return fmt.Errorf("%w: %s: %s", ErrBadConfig, where, fmt.Sprintf(format, args...))
	}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty file
		}
		return nil, bad(0, "%v", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, bad(0, "%v", err)
		}
		return nil, bad(extra.Line, "more than one YAML document")
	}

	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	root, err := deref(root)
	if err != nil {
		return nil, bad(root.Line, "%v", err)
	}
	if isNull(root) {
		return nil, nil // document with no content
	}
	if root.Kind != yaml.MappingNode {
		return nil, bad(root.Line, "top level must be a mapping of flag names to values")
	}

	seen := map[string]int{}
	var as []assignment
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, err := deref(root.Content[i])
		if err != nil {
			return nil, bad(root.Content[i].Line, "%v", err)
		}
		if k.Kind != yaml.ScalarNode {
			return nil, bad(k.Line, "keys must be flag names")
		}
		key := k.Value
		if prev, dup := seen[key]; dup {
			return nil, bad(k.Line, "key %q repeats the one on line %d", key, prev)
		}
		seen[key] = k.Line
		f := fs.Lookup(key)
		if f == nil {
			return nil, fmt.Errorf("settings: %s:%d: %w %q", path, k.Line, ErrUnknownKey, key)
		}
		values, err := flagValues(root.Content[i+1], isRepeatable(f))
		if err != nil {
			return nil, bad(k.Line, "key %q: %v", key, err)
		}
		as = append(as, assignment{flag: f, line: k.Line, values: values})
	}
	return as, nil
}

// maxAliasDepth bounds alias chains (YAML forbids anchoring an alias, but be
// defensive about what the parser hands back).
const maxAliasDepth = 8

// deref follows aliases to the node they name.
func deref(n *yaml.Node) (*yaml.Node, error) {
	for range maxAliasDepth {
		if n.Kind != yaml.AliasNode {
			return n, nil
		}
		if n.Alias == nil {
			return n, errors.New("unresolved alias")
		}
		n = n.Alias
	}
	return n, errors.New("alias chain too long")
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// flagValues returns the strings to Set for a key's value node.
func flagValues(n *yaml.Node, repeatable bool) ([]string, error) {
	n, err := deref(n)
	if err != nil {
		return nil, err
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if isNull(n) {
			return nil, nil
		}
		return []string{scalarString(n)}, nil
	case yaml.SequenceNode:
		if !repeatable {
			return nil, errors.New("a list is only allowed for a repeatable flag")
		}
		values := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			e, err := deref(e)
			if err != nil {
				return nil, err
			}
			if e.Kind != yaml.ScalarNode || isNull(e) {
				return nil, fmt.Errorf("line %d: list elements must be scalars", e.Line)
			}
			values = append(values, scalarString(e))
		}
		return values, nil
	case yaml.MappingNode:
		return nil, errors.New("value must be a scalar or a list, not a mapping")
	default:
		return nil, fmt.Errorf("unexpected YAML node kind %d", n.Kind)
	}
}

// scalarString returns the string form of a scalar: booleans and numbers
// formatted canonically (so yes-style YAML booleans, hex integers and .inf
// reach the flag in a form strconv parses), anything else as written.
func scalarString(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return strconv.FormatBool(b)
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return strconv.FormatInt(i, 10)
		}
		var u uint64
		if n.Decode(&u) == nil {
			return strconv.FormatUint(u, 10)
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
	}
	return n.Value
}
