package layout_test

import (
	"bufio"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/shoal-dev/shoal"

// layers puts every package of the module on a layer: a package may import
// packages of the module on lower layers only. The order reads as the
// architecture: a leaf vocabulary and small tools; the store and the
// libp2p host; the upstream client, discovery and the chunk protocol; the
// swarm, the p2p membership and the registry shim; the two composition
// roots (node daemon and seeder); the demo; the commands.
var layers = map[string]int{
	"internal/oci":          0,
	"internal/chunkset":     0,
	"internal/ops":          0,
	"internal/imagegen":     0,
	"internal/layout":       0,
	"p2p/seederset":         0,
	"deploy/settings":       0,
	"deploy/clientconf":     0,
	"deploy/monitoring":     0,
	"internal/store":        1,
	"p2p/plan":              1, // the pure scheduler (swarm, chunk server, bench/sim)
	"internal/origin":       1,
	"p2p/host":              1,
	"internal/upstream":     2,
	"p2p/discovery":         2,
	"p2p/chunk":             2,
	"p2p/preheat":           2,
	"p2p/swarm":             3,
	"p2p/member":            3,
	"registryshim":          3,
	"seeder":                4,
	"internal/node":         4,
	"deploy/demo":           5,
	"bench/lab":             6,
	"bench/cmd/shoal-bench": 7,
	"bench/load":            6, // the load client (bench-load)
	"bench/cmd/shoal-load":  7,
	"bench/dht":             6, // the DHT at size (bench-dht)
	"bench/cmd/shoal-dht":   7,
	"bench/sim":             7, // the discrete-event simulator (make sim); above bench/lab, whose result types it writes
	"bench/cmd/shoal-sim":   8,
	"cmd/shoal":             7,
	// Deployment: the image builder and its command, the chart's tests.
	"deploy/image":                 0,
	"deploy/image/cmd/shoal-image": 7,
	"deploy/hostdir":               0,
	"deploy/helm":                  7, // tests only
}

// testHelpers are packages only tests and benchmarks may import: the shared
// harness, the conformance suites and in-memory fakes. They may import
// anything.
var testHelpers = map[string]bool{
	"internal/harness":            true,
	"internal/harness/hostile":    true,
	"bench/cmd/shoal-liar":        true, // the bench lab's lying peer (a hostile harness peer as a process)
	"internal/harness/credhelper": true, // a docker-credential-* helper program for tests
	"internal/harness/kube":       true, // the real single-node cluster (make test-k8s)
	"internal/harness/kube/pause": true, // its sandbox and workload binary
	"deploy/k8stest":              true, // the chart on a real node (test only)
	"p2p/chunk/chunktest":         true,
	"p2p/discovery/discoverytest": true,
	"p2p/discovery/memrouter":     true,
	"registryshim/shimtest":       true,
	"bench":                       true, // benchmarks only
}

type pkg struct {
	ImportPath   string
	Dir          string
	Name         string
	GoFiles      []string
	TestGoFiles  []string
	XTestGoFiles []string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; the module has more", len(pkgs))
	}
	return pkgs
}

func rel(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
}

func TestImportDirections(t *testing.T) {
	pkgs := listPackages(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[rel(p.ImportPath)] = true
	}
	for name := range layers {
		if !seen[name] {
			t.Errorf("layers lists %s, which is not a package of the module any more", name)
		}
	}
	for _, p := range pkgs {
		from := rel(p.ImportPath)
		if testHelpers[from] {
			continue
		}
		layer, ok := layers[from]
		if !ok {
			t.Errorf("%s is on no layer: place it in layers (or testHelpers) in internal/layout", from)
			continue
		}
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := rel(imp)
			switch {
			case testHelpers[to]:
				t.Errorf("%s (shipped code) imports the test helper %s", from, to)
			case strings.HasPrefix(from, "p2p/") && strings.HasPrefix(to, "registryshim"):
				t.Errorf("%s imports %s: p2p/** imports nothing from registryshim/**", from, to)
			case layers[to] >= layer:
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go to lower layers only", from, layer, to, layers[to])
			}
		}
		if from == "internal/oci" {
			for _, imp := range p.Imports {
				if strings.HasPrefix(imp, module) {
					t.Errorf("internal/oci is the leaf vocabulary and imports nothing of ours, but imports %s", imp)
				}
			}
		}
	}
}

// TestPackageDocs requires exactly one package doc comment per package.
func TestPackageDocs(t *testing.T) {
	for _, p := range listPackages(t) {
		files := p.GoFiles
		if len(files) == 0 {
			files = append(append(files, p.TestGoFiles...), p.XTestGoFiles...)
		}
		var docs []string
		for _, f := range files {
			af, err := parser.ParseFile(token.NewFileSet(), filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil && !strings.HasSuffix(af.Name.Name, "_test") {
				docs = append(docs, f)
			}
		}
		switch len(docs) {
		case 0:
			t.Errorf("%s has no package doc comment", rel(p.ImportPath))
		case 1:
			if !strings.HasPrefix(strings.TrimSpace(docText(t, filepath.Join(p.Dir, docs[0]))), "Package "+p.Name) &&
				!(p.Name == "main" && strings.HasPrefix(strings.TrimSpace(docText(t, filepath.Join(p.Dir, docs[0]))), "Command ")) {
				t.Errorf("%s: the package doc in %s should start with \"Package %s\"", rel(p.ImportPath), docs[0], p.Name)
			}
		default:
			sort.Strings(docs)
			t.Errorf("%s has package doc comments in %d files (%s): keep one", rel(p.ImportPath), len(docs), strings.Join(docs, ", "))
		}
	}
}

func docText(t *testing.T, path string) string {
	t.Helper()
	af, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	return af.Doc.Text()
}

// TestFileSizes keeps shipped files under 600 lines, split by concern
// (the bench lab's tables and plots excepted).
func TestFileSizes(t *testing.T) {
	const limit = 600
	for _, p := range listPackages(t) {
		if strings.HasPrefix(rel(p.ImportPath), "bench/lab") {
			continue
		}
		for _, f := range p.GoFiles {
			n := countLines(t, filepath.Join(p.Dir, f))
			if n > limit {
				t.Errorf("%s/%s has %d lines (limit %d): split it by concern", rel(p.ImportPath), f, n, limit)
			}
		}
	}
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
	}
	return n
}
