package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/ops"
)

// status runs `shoal status --json` against n's ops endpoint and decodes it.
func status(t *testing.T, n *harness.Node) ops.Status {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, []string{"status", "--metrics-addr", n.MetricsAddr(), "--json", "--pulls", "-1"}, &out, &errOut); err != nil {
		t.Fatalf("shoal status --json: %v\n%s", err, errOut.String())
	}
	var st ops.Status
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("decode status: %v\n%s", err, out.String())
	}
	return st
}

// pullsOf indexes a status's pulls by digest.
func pullsOf(st ops.Status) map[string]ops.Pull {
	m := map[string]ops.Pull{}
	for _, p := range st.Pulls.Pulls {
		m[p.Digest] = p
	}
	return m
}

// A node pulls an image through a real seeder in front of a real origin,
// a second node pulls it after: `shoal status` on each shows every layer
// as a pull whose bytes all came from the swarm (the first node's from the
// seeder, none from the origin), with the sources it used, and the totals
// by source agree with the node's own counters. A node without the swarm
// shows the same pull as all origin, with the warning.
func TestStatusShowsPullsBySource(t *testing.T) {
	requireE2E(t)
	c := harness.NewCluster(t, harness.ClusterOptions{})
	img, err := harness.BlobImage(51, 3<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Origin.Push(img, "status/app:v1"); err != nil {
		t.Fatal(err)
	}
	c.AddSeeder(harness.SeederOptions{})
	first := c.AddNode(harness.NodeOptions{})
	second := c.AddNode(harness.NodeOptions{})
	direct := c.AddNode(harness.NodeOptions{NoP2P: true})

	layers := harness.PullLayers(t, first.URL, "status/app:v1")
	for d := range layers {
		if !first.Stored(d, 10*time.Second) {
			t.Fatalf("first node did not store %s", d)
		}
	}
	harness.PullLayers(t, second.URL, "status/app:v1")
	harness.PullLayers(t, direct.URL, "status/app:v1")

	for _, tc := range []struct {
		name string
		n    *harness.Node
		p2p  bool
	}{{"first", first, true}, {"second", second, true}, {"direct", direct, false}} {
		st := status(t, tc.n)
		if !st.Ready || st.Swarm != tc.p2p {
			t.Errorf("%s: ready %v swarm %v, want ready and swarm %v", tc.name, st.Ready, st.Swarm, tc.p2p)
		}
		pulls := pullsOf(st)
		for d, size := range layers {
			p, ok := pulls[d]
			if !ok {
				t.Fatalf("%s: no pull of layer %s in %+v", tc.name, d, st.Pulls)
			}
			if p.Size != size || p.Error != "" || p.Repo != "status/app" {
				t.Errorf("%s: pull of %s: %+v, want size %d, repo status/app, no error", tc.name, d, p, size)
			}
			origin := p.Bytes[ops.SourceOrigin]
			if tc.p2p && (origin != 0 || p.P2P() != size || len(p.Sources) == 0) {
				t.Errorf("%s: pull of %s: bytes %v from %d sources, want all %d from the swarm", tc.name, d, p.Bytes, len(p.Sources), size)
			}
			if !tc.p2p && (origin != size || p.P2P() != 0) {
				t.Errorf("%s: pull of %s: bytes %v, want all %d from the origin", tc.name, d, p.Bytes, size)
			}
		}
		if tc.name == "first" {
			for d := range layers {
				if got := pulls[d].Bytes[ops.SourceSeeder]; got != layers[d] {
					t.Errorf("first: %s: %d bytes from the seeder, want %d (no other peer had it)", d, got, layers[d])
				}
			}
		}
		// The totals are the node's own counters.
		fetched := tc.n.Fetched()
		for _, src := range []string{ops.SourceOrigin, ops.SourceSeeder, ops.SourcePeer} {
			if st.Fetched[src] != int64(fetched[src]) {
				t.Errorf("%s: status fetched[%s] = %d, the node's counter %v", tc.name, src, st.Fetched[src], fetched[src])
			}
		}
		var total int64
		for _, size := range layers {
			total += size
		}
		if len(st.Repositories) != 1 || st.Repositories[0].Repo != "status/app" || st.Repositories[0].Blobs != len(st.Pulls.Pulls) {
			t.Errorf("%s: by repository %+v, want status/app with its %d pulls", tc.name, st.Repositories, len(st.Pulls.Pulls))
		} else if r := st.Repositories[0]; tc.p2p && (r.P2P() < total || r.Bytes[ops.SourceOrigin] != 0) || !tc.p2p && r.Bytes[ops.SourceOrigin] < total {
			t.Errorf("%s: status/app bytes %v, want the %d layer bytes from the %s", tc.name, r.Bytes, total, map[bool]string{true: "swarm", false: "origin"}[tc.p2p])
		}
		wantBy := map[bool]string{true: "p2p", false: "origin"}[tc.p2p]
		if st.PullsBy[wantBy] != int64(len(st.Pulls.Pulls)) || st.Pulls.Total != int64(len(st.Pulls.Pulls)) {
			t.Errorf("%s: pulls served by %v (%d recorded), want all %d by %s", tc.name, st.PullsBy, st.Pulls.Total, len(st.Pulls.Pulls), wantBy)
		}
		if st.Store.Blobs < int64(len(layers)) || st.Store.BlobBytes < 4<<20 || st.Store.UsedBytes < st.Store.BlobBytes {
			t.Errorf("%s: store %+v, want at least the %d layers (4 MiB)", tc.name, st.Store, len(layers))
		}
		if tc.p2p && (st.PeersConnected < 1 || st.DHT.RoutingTablePeers < 1) {
			t.Errorf("%s: %d peers connected, routing table %d: want the seeder at least", tc.name, st.PeersConnected, st.DHT.RoutingTablePeers)
		}
	}

	// The text form names the pulls and, for the direct node, warns.
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"status", "--metrics-addr", direct.MetricsAddr()}, &out, &errOut); err != nil {
		t.Fatalf("shoal status: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"swarm:             off", "P2P is not serving this node", "status/app"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("shoal status output lacks %q:\n%s", want, out.String())
		}
	}
	for d := range layers {
		if !strings.Contains(out.String(), short(d)) {
			t.Errorf("shoal status output lacks layer %s:\n%s", short(d), out.String())
		}
	}
	out.Reset()
	if err := run(context.Background(), []string{"status", "--metrics-addr", second.MetricsAddr()}, &out, &errOut); err != nil {
		t.Fatalf("shoal status: %v\n%s", err, errOut.String())
	}
	if strings.Contains(out.String(), "WARNING") || !strings.Contains(out.String(), "(P2P 100%)") {
		t.Errorf("status of the second node: want P2P 100%% and no warning:\n%s", out.String())
	}
	t.Logf("shoal status of the second node:\n%s", out.String())
}

// shoal status against something that is not a shoal ops endpoint (the
// registry shim) fails with a clear error.
func TestStatusRefusesOtherEndpoints(t *testing.T) {
	requireE2E(t)
	c := harness.NewCluster(t, harness.ClusterOptions{})
	n := c.AddNode(harness.NodeOptions{NoP2P: true})
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"status", "--metrics-addr", strings.TrimPrefix(n.URL, "http://"), "--timeout", "5s"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "status") {
		t.Fatalf("status of the registry port: %v, want an error", err)
	}
}

// --origin-max-rate takes a byte count with the suffixes of
// --cache-max-bytes, or none; auto means nothing for a rate.
func TestByteRateFlag(t *testing.T) {
	for in, want := range map[string]int64{"100MiB": 100 << 20, "none": 0, "0": 0, "1G": 1e9, "65536": 65536} {
		var b byteRate
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q: %d %v, want %d", in, b, err, want)
		}
	}
	for _, bad := range []string{"auto", "-5", "fast", "1.5MiB"} {
		var b byteRate
		if err := b.Set(bad); err == nil {
			t.Errorf("%q accepted as %d", bad, b)
		}
	}
}
