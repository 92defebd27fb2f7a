package k8stest

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/shoal-dev/shoal/internal/harness/kube"
)

// newValues are the chart's values for the test: the image imported into
// the node (never pulled), the test origin as the one mirrored registry
// and upstream (the chart's default registries removed), containerd's
// certs.d and config file of the test's node, the daemon's store on a host
// path inside the cluster's directory, and every listener of the daemon
// and the one seeder (both on the host network) on 127.0.0.1 at ports free
// now.
func newValues(t *testing.T, c *kube.Cluster, originHost, originURL, repo, tag string) values {
	t.Helper()
	reg, met, p2p := kube.FreePort(t), kube.FreePort(t), kube.FreePort(t)
	sp2p, sadmin, smet := kube.FreePort(t), kube.FreePort(t), kube.FreePort(t)
	small := map[string]any{
		"requests": map[string]any{"cpu": "10m", "memory": "64Mi"},
		"limits":   map[string]any{"memory": "512Mi"},
	}
	m := map[string]any{
		"image": map[string]any{"repository": repo, "tag": tag, "pullPolicy": "Never"},
		"registries": map[string]any{
			"mirror":   []string{originHost},
			"catchAll": false,
		},
		// null removes a default key of the chart's map.
		"upstreams": map[string]any{
			"docker.io": nil, "ghcr.io": nil, "quay.io": nil, "registry.k8s.io": nil,
			originHost: originURL,
		},
		"containerd": map[string]any{
			"certsDir":      c.CertsDir,
			"configFile":    c.ContainerdConfig,
			"dialTimeout":   "1s",
			"restoreOnStop": true,
		},
		"daemon": map[string]any{
			"registryAddr":                  fmt.Sprintf("127.0.0.1:%d", reg),
			"metricsAddr":                   fmt.Sprintf("127.0.0.1:%d", met),
			"p2pPort":                       p2p,
			"p2pListen":                     []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p2p)},
			"dataDir":                       filepath.Join(c.Dir, "host", "shoal"),
			"cacheMaxBytes":                 "1GiB",
			"resources":                     small,
			"logLevel":                      "debug",
			"terminationGracePeriodSeconds": 5,
		},
		"seeder": map[string]any{
			"replicas":                      1,
			"hostNetwork":                   true,
			"listenHost":                    "127.0.0.1",
			"ports":                         map[string]any{"p2p": sp2p, "admin": sadmin, "metrics": smet},
			"p2pListen":                     []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", sp2p)},
			"addresses":                     []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", sp2p)},
			"resources":                     small,
			"podDisruptionBudget":           map[string]any{"enabled": true, "maxUnavailable": 1},
			"terminationGracePeriodSeconds": 5,
		},
	}
	return values{m: m}
}

func (v values) daemon() map[string]any { return v.m["daemon"].(map[string]any) }

func (v values) daemonURL() string { return "http://" + v.daemon()["registryAddr"].(string) }

func (v values) daemonMetricsURL() string { return "http://" + v.daemon()["metricsAddr"].(string) }

func (v values) daemonDataDir() string { return v.daemon()["dataDir"].(string) }

// tagKey is the value an upgrade to a new image tag sets.
func (v values) tagKey() string { return "image.tag" }

func (v values) daemonSelector() string {
	return "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=daemon"
}

func (v values) seederSelector() string {
	return "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=seeder"
}
