package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// manifestsFile is the chart rendered for kubectl apply users.
var manifestsFile = filepath.Join("..", "manifests", "shoal.yaml")

// manifestValues are the defaults except the keys: a committed file must
// not carry a swarm key or seeder private keys (everyone applying it would
// share them), so it names Secrets and a ConfigMap the user makes first.
const manifestValues = `
psk: {existingSecret: shoal-psk}
seeder:
  identity: {existingSecret: shoal-seeder-identity, trustedSeedersConfigMap: shoal-trusted-seeders}
`

const manifestsHeader = `# shoal for kubectl apply: the Helm chart deploy/helm/shoal rendered with its
# defaults (release "shoal", namespace shoal-system), except that the swarm
# key and the seeders' identities are Secrets you make once, so no key is
# shared through this file. Regenerate with: make manifests
#
#   kubectl create namespace shoal-system
#   shoal psk --out swarm.key
#   kubectl -n shoal-system create secret generic shoal-psk --from-file=swarm.key
#   for i in 0 1; do shoal id --data-dir seeder-$i; done    # prints each peer ID
#   kubectl -n shoal-system create secret generic shoal-seeder-identity \
#     --from-file=shoal-seeder-0.key=seeder-0/identity.key --from-file=shoal-seeder-1.key=seeder-1/identity.key
#   printf 'trusted-seeder:\n  - %s\n  - %s\n' ID0 ID1 > trusted-seeders.yaml
#   kubectl -n shoal-system create configmap shoal-trusted-seeders --from-file=trusted-seeders.yaml
#   kubectl apply -f shoal.yaml
`

// TestManifestsMatchChart keeps deploy/manifests/shoal.yaml equal to the
// chart's output; SHOAL_UPDATE_MANIFESTS=1 (make manifests) rewrites it.
func TestManifestsMatchChart(t *testing.T) {
	r := render(t, manifestValues)
	want := manifestsHeader + r.text
	if os.Getenv("SHOAL_UPDATE_MANIFESTS") != "" {
		if err := os.WriteFile(manifestsFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(manifestsFile)
	if err != nil {
		t.Fatalf("%v (run make manifests)", err)
	}
	if string(got) != want {
		t.Fatalf("%s differs from the chart's output: run make manifests", manifestsFile)
	}
	for _, k := range []string{"Secret/shoal-psk", "Secret/shoal-seeder-identity"} {
		if _, ok := r.objs[k]; ok {
			t.Errorf("the manifests carry %s", k)
		}
	}
	if strings.Contains(string(got), "/key/swarm/psk") {
		t.Error("the manifests carry a swarm key")
	}
	d := container(t, r.daemonSet(t).Spec.Template.Spec.Containers, "daemon")
	if !slices.Contains(d.Args, "--config=/etc/shoal/trusted-seeders/trusted-seeders.yaml") ||
		!slices.Contains(d.Args, "--bootstrap-dns=shoal-seeder.shoal-system.svc.cluster.local") {
		t.Errorf("daemon args %q: want the trusted seeders from the ConfigMap and DNS bootstrap", d.Args)
	}
}
