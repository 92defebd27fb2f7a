package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The origin: a real distribution registry in its own namespace, the
// image pushed into it over that namespace's loopback.

const registryConfig = `version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  cache:
    blobdescriptor: inmemory
  delete:
    enabled: true
http:
  addr: :%d
`

// startOrigin runs the registry in the origin's namespace and pushes the
// image into it over that namespace's loopback (not the shaped link).
func (l *Lab) startOrigin(ctx context.Context) error {
	dir := filepath.Join(l.tmp, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return err
	}
	conf := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, registryConfig, filepath.Join(dir, "data"), registryPort), 0o644); err != nil {
		return err
	}
	p, err := l.procs.start("registry", filepath.Join(dir, "stdout"), l.registryLog(), "ip", nsCmd(l.net.origin.ns, l.cfg.RegistryBin, "serve", conf)...)
	if err != nil {
		return err
	}
	l.registry = p
	l.logf("origin: docker-registry in %s at %s, pushing the image", l.net.origin.ns, registryName)
	out, err := l.helper(ctx, l.net.origin.ns, 15*time.Minute, "_push",
		"--registry", fmt.Sprintf("127.0.0.1:%d", registryPort), "--repo", imageRepo, "--tag", imageTag,
		"--image-size", strconv.FormatInt(l.cfg.ImageBytes, 10), "--layers", strconv.Itoa(l.cfg.Layers))
	if err != nil {
		if p.exited() {
			return fmt.Errorf("origin registry exited: %s", tail(l.registryLog(), 2000))
		}
		return err
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &l.image); err != nil {
		return fmt.Errorf("push helper said %q: %w", out, err)
	}
	return nil
}

func (l *Lab) registryLog() string { return filepath.Join(l.tmp, "registry", "log") }

// tail is the last n bytes of a file.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer func() { _ = f.Close() }()
	st, _ := f.Stat()
	if st != nil && st.Size() > n {
		_, _ = f.Seek(-n, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}
