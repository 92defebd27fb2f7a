package helm

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/scheme"
)

// cluster answers the chart's lookup calls from client-go's in-memory
// dynamic client, holding the objects of an earlier install.
type cluster struct {
	client *dynamicfake.FakeDynamicClient
}

func newCluster(objs ...runtime.Object) cluster {
	return cluster{client: dynamicfake.NewSimpleDynamicClient(scheme.Scheme, objs...)}
}

func (c cluster) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, false, err
	}
	// Secrets are the only kind the chart looks up.
	return c.client.Resource(gv.WithResource("secrets")), true, nil
}

// TestUpgradeKeepsKeys: an upgrade (a render that finds the first
// install's Secrets through lookup) keeps the swarm key, every seeder's key
// and the IDs the daemons trust; a seeder added by the upgrade gets a new
// identity of its own.
func TestUpgradeKeepsKeys(t *testing.T) {
	first := render(t, "")
	psk := first.secret(t, "shoal-psk")
	ids := first.secret(t, "shoal-seeder-identity")
	c := newCluster(psk, ids)

	second := renderIn(t, "seeder: {replicas: 3}", c)
	if got := second.secret(t, "shoal-psk"); string(got.Data["swarm.key"]) != string(psk.Data["swarm.key"]) {
		t.Error("the upgrade generated a new PSK")
	}
	ids2 := second.secret(t, "shoal-seeder-identity")
	for _, k := range []string{"shoal-seeder-0.key", "shoal-seeder-0.id", "shoal-seeder-1.key", "shoal-seeder-1.id"} {
		if string(ids2.Data[k]) != string(ids.Data[k]) {
			t.Errorf("the upgrade changed %s", k)
		}
	}
	if len(ids2.Data["shoal-seeder-2.key"]) == 0 || string(ids2.Data["shoal-seeder-2.id"]) == string(ids.Data["shoal-seeder-0.id"]) {
		t.Error("the third seeder has no identity of its own")
	}
	before := flagValues(container(t, first.daemonSet(t).Spec.Template.Spec.Containers, "daemon").Args, "trusted-seeder")
	after := flagValues(container(t, second.daemonSet(t).Spec.Template.Spec.Containers, "daemon").Args, "trusted-seeder")
	if len(after) != 3 || after[0] != before[0] || after[1] != before[1] {
		t.Errorf("trusted seeders %q after the upgrade, want %q and one more", after, before)
	}
}
