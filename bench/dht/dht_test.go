package dht_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/bench/dht"
)

// TestSmallFleet is the benchmark at 20 hosts in 2 processes: every lookup
// must find a provider and no lookup may return a peer that does not
// provide the blob, without churn and while 10% of the hosts restart. It
// asserts no latency (and logs a lookup that missed one of the two
// providers: under load an RPC of the lookup may time out).
func TestSmallFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := dht.Config{
		Hosts: 20, Seeders: 2, Workers: 2,
		Blobs: 6, ProvidersPerBlob: 2,
		Lookups: 40, Concurrency: 4,
		ChurnFraction: 0.1, ChurnWindow: 5 * time.Second, Downtime: 500 * time.Millisecond,
		LookupTimeout: 20 * time.Second, SettleTimeout: 20 * time.Second, ProvideTimeout: 20 * time.Second,
		Seed:   7,
		Worker: workerCommand,
		Dir:    t.TempDir(),
	}
	res, err := dht.Run(ctx, cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", *res)
	if res.ProvidesMissing != 0 {
		t.Errorf("%d announcements never succeeded", res.ProvidesMissing)
	}
	for name, ph := range map[string]dht.Phase{"static": res.Static, "churn": res.Churn} {
		if ph.Lookups == 0 || ph.Failures != 0 || ph.Wrong != 0 || ph.Errors != 0 {
			t.Errorf("%s: %d lookups, %d found no provider, %d wrong providers, %d errors",
				name, ph.Lookups, ph.Failures, ph.Wrong, ph.Errors)
		}
	}
	if res.Restarts != 2 || res.RestartErrors != 0 {
		t.Errorf("restarts: %d done, %d failed; want 2, 0", res.Restarts, res.RestartErrors)
	}
	if res.Stats.Hosts != 20 {
		t.Errorf("%d hosts up at the end, want 20", res.Stats.Hosts)
	}
}
