package dht_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/bench/dht"
)

// TestSmallFleet is the benchmark at 30 hosts in 3 processes: every lookup
// must find a provider and no lookup may return a peer that does not
// provide the blob, without churn and while 10% of the hosts restart. It
// asserts no latency.
func TestSmallFleet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := dht.Config{
		Hosts: 30, Seeders: 2, Workers: 3,
		Blobs: 10, ProvidersPerBlob: 3,
		Lookups: 60, Concurrency: 4,
		ChurnFraction: 0.1, ChurnWindow: 6 * time.Second, Downtime: time.Second,
		LookupTimeout: 20 * time.Second, SettleTimeout: 30 * time.Second, ProvideTimeout: 30 * time.Second,
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
	if res.Static.Incomplete != 0 {
		t.Errorf("static: %d lookups missed a provider", res.Static.Incomplete)
	}
	if res.Restarts != 3 || res.RestartErrors != 0 {
		t.Errorf("restarts: %d done, %d failed; want 3, 0", res.Restarts, res.RestartErrors)
	}
	if res.Stats.Hosts != 30 {
		t.Errorf("%d hosts up at the end, want 30", res.Stats.Hosts)
	}
}
