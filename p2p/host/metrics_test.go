package host_test

import (
	"context"
	"testing"
	"time"

	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/p2p/host"
)

func TestPeersConnectedGauge(t *testing.T) {
	newHost := func() libhost.Host { return harness.NewHost(t, harness.HostOptions{Log: zaptest.NewLogger(t)}) }
	reg := prometheus.NewPedanticRegistry()
	a := newHost()
	if err := host.RegisterMetrics(a, reg); err != nil {
		t.Fatal(err)
	}
	if err := host.RegisterMetrics(a, reg); err == nil {
		t.Fatal("registering twice on one registry succeeded")
	}
	gauge := func() float64 {
		if n := harness.Count(t, reg, "shoal_peers_connected"); n != 1 {
			t.Fatalf("gather: %d series", n)
		}
		return harness.Value(t, reg, "shoal_peers_connected", nil)
	}
	waitFor := func(want float64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for gauge() != want {
			if time.Now().After(deadline) {
				t.Fatalf("shoal_peers_connected = %v, want %v", gauge(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(0)
	b := newHost()
	c := newHost()
	for _, o := range []libhost.Host{b, c} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		err := a.Connect(ctx, harness.Info(o))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	waitFor(2)
	if err := a.Network().ClosePeer(b.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(1)
	c.Close()
	waitFor(0)
}
