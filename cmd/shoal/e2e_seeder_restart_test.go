package main

// A seeder outage with real processes: the one trusted seeder is killed
// with SIGKILL mid-pull and started again on its data dir and address
// some seconds later. The daemons keep what they hold, wait for it (the
// swarm's SeederOutage) instead of going to the origin, and finish from
// the restarted seeder, which resumes its own origin fetch.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
)

func TestE2ESeederRestart(t *testing.T) {
	requireE2E(t)
	size, rate := int64(64<<20), int64(8<<20)
	if harness.RaceEnabled() {
		size, rate = 32<<20, 4<<20
	}
	origin := startOrigin(t)
	layer, imageBytes := pushOneLayer(t, origin, 92, size, "e2e/restart:v1")

	harness.ShoalBinary(t)
	dir := t.TempDir()
	seeder := harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: origin, DataDir: dir})
	listen, _, _ := strings.Cut(seeder.Addrs[0], "/p2p/")
	c := &haCluster{seeders: []*harness.SeederProcess{seeder}, ids: []string{seeder.ID}}
	for range 3 {
		args := []string{"--p2p=true", "--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", seeder.Addrs[0], "--trusted-seeder", seeder.ID}
		c.daemons = append(c.daemons, harness.StartDaemonProcess(t, harness.DaemonProcessOptions{Origin: origin, Args: args}))
	}
	origin.SetRate(rate)
	before := origin.BlobBytes()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	down := 5 * time.Second
	type pulled struct {
		sums [][]string
		errs []error
		took []time.Duration
	}
	done := make(chan pulled, 1)
	go func() {
		var p pulled
		p.sums, p.errs, p.took = c.pullAll(ctx, "e2e/restart:v1")
		done <- p
	}()
	// The test's goroutine kills and restarts (StartSeederProcess may fail t).
	for origin.BlobBytes()-before < size/3 {
		if ctx.Err() != nil {
			t.Fatal("the origin never sent a third of the layer")
		}
		time.Sleep(5 * time.Millisecond)
	}
	seeder.Kill()
	t.Logf("seeder killed with %d MiB of the layer sent by the origin; restarting it in %v", (origin.BlobBytes()-before)>>20, down)
	time.Sleep(down)
	c.seeders = append(c.seeders, harness.StartSeederProcess(t, harness.SeederProcessOptions{Origin: origin, DataDir: dir, Args: []string{"--p2p-listen", listen}}))
	p := <-done
	sums, errs, took := p.sums, p.errs, p.took
	for i := range c.daemons {
		if errs[i] != nil {
			t.Errorf("daemon %d: pull failed: %v\n%s", i, errs[i], harness.Tail(c.daemons[i].Logs(), 40))
			continue
		}
		if len(sums[i]) != 1 || sums[i][0] != layer {
			t.Errorf("daemon %d read layers %v, want [%s]", i, sums[i], layer)
		}
		m := c.daemons[i].Metrics(t)
		t.Logf("daemon %d pulled the image in %.2f s; fetched bytes by source %v", i, took[i].Seconds(), m.ByLabel("shoal_fetched_bytes_total", "source"))
	}
	egress := origin.BlobBytes() - before
	ratio := float64(egress) / float64(imageBytes)
	t.Logf("origin egress %d bytes = %.3fx the image (%d bytes)", egress, ratio, imageBytes)
	if ratio > 1.5 {
		t.Errorf("the origin sent %.3fx the image, want at most 1.5x: the daemons did not wait for the restarted seeder", ratio)
	}
}
