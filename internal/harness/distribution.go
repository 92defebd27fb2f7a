package harness

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// DistributionOptions configure a real distribution registry (Debian's
// docker-registry, 2.8) child process.
type DistributionOptions struct {
	// Bin is the registry binary (default "docker-registry" on PATH).
	Bin string
	// NotifyURL, if set, is a notifications endpoint the registry posts
	// its events to; NotifyAuth its Authorization header ("" : none).
	NotifyURL, NotifyAuth string
}

// StartDistribution runs a distribution registry on a free loopback port
// with its own config (the packaged one turns on htpasswd auth), storage
// in a temp dir, and waits until it answers GET /v2/. It is killed when t
// ends.
func StartDistribution(t testing.TB, o DistributionOptions) Registry {
	t.Helper()
	if o.Bin == "" {
		o.Bin = "docker-registry"
	}
	dir := t.TempDir()
	addr := FreeAddr(t)
	conf := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: %s
`, filepath.Join(dir, "data"), addr)
	if o.NotifyURL != "" {
		conf += fmt.Sprintf(`notifications:
  endpoints:
    - name: shoal
      url: %s
      timeout: 5s
      threshold: 10
      backoff: 1s
`, o.NotifyURL)
		if o.NotifyAuth != "" {
			conf += fmt.Sprintf("      headers:\n        Authorization: [%q]\n", o.NotifyAuth)
		}
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	StartProcess(t, "docker-registry", o.Bin, []string{"serve", path}, ProcessOptions{})
	url := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return Registry{Host: addr, URL: url}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("docker-registry at %s did not answer /v2/: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
