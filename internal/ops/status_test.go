package ops

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReadStatus reads a real ops endpoint (Handler over a registry with the
// metrics a node serves, and its Pulls) into a Status.
func TestReadStatus(t *testing.T) {
	reg := NewRegistry()
	gauge := func(name string, v float64, labels prometheus.Labels) {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: name, ConstLabels: labels})
		g.Set(v)
		reg.MustRegister(g)
	}
	gauge("shoal_store_used_bytes", 300, nil)
	gauge("shoal_store_limit_bytes", 1000, nil)
	gauge("shoal_store_blobs", 2, prometheus.Labels{"state": "complete"})
	gauge("shoal_store_blobs", 1, prometheus.Labels{"state": "partial"})
	gauge("shoal_peers_connected", 3, nil)
	gauge("shoal_dht_routing_table_peers", 5, nil)
	fetched := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_fetched_bytes_total", Help: "x"}, []string{"source"})
	fetched.WithLabelValues(SourcePeer).Add(700)
	fetched.WithLabelValues(SourceOrigin).Add(300)
	reg.MustRegister(fetched)
	pulls := NewPulls(4)
	start := time.Date(2026, 12, 1, 20, 0, 0, 0, time.UTC)
	pulls.Add(Pull{Digest: "sha256:aa", Repo: "app", Size: 10, Bytes: map[string]int64{SourcePeer: 10}, Sources: []string{"p1"}, Started: start, Seconds: 0.5})
	var ready Ready
	srv := httptest.NewServer(Handler(reg, &ready, false, Route{Pattern: PullsPath, Handler: pulls}))
	defer srv.Close()

	st, err := ReadStatus(context.Background(), srv.Client(), srv.URL+"/")
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || !st.Swarm || st.PeersConnected != 3 || st.DHT.RoutingTablePeers != 5 {
		t.Fatalf("status %+v", st)
	}
	if st.Store != (Store{Blobs: 2, Partials: 1, UsedBytes: 300, LimitBytes: 1000}) {
		t.Fatalf("store %+v", st.Store)
	}
	if st.Fetched[SourcePeer] != 700 || st.Fetched[SourceOrigin] != 300 || st.P2PShare() != 0.7 {
		t.Fatalf("fetched %v, share %v", st.Fetched, st.P2PShare())
	}
	if len(st.Pulls.Pulls) != 1 || st.Pulls.Pulls[0].P2P() != 10 || !st.Pulls.Pulls[0].Started.Equal(start) {
		t.Fatalf("pulls %+v", st.Pulls)
	}
	ready.Set(true)
	if st, err = ReadStatus(context.Background(), srv.Client(), srv.URL); err != nil || !st.Ready {
		t.Fatalf("ready: %v %v", st.Ready, err)
	}
}

// Answers that are not a shoal node's ops page are ErrBadStatus.
func TestReadStatusRefuses(t *testing.T) {
	for _, tc := range []struct {
		name           string
		metrics, pulls string
		status         int
	}{
		{"not found", "", "", http.StatusNotFound},
		{"not metrics", "<html>hello</html>\n", `{"pulls":[]}`, http.StatusOK},
		{"other process", "# TYPE go_goroutines gauge\ngo_goroutines 3\n", `{"pulls":[]}`, http.StatusOK},
		{"bad pulls", "shoal_store_used_bytes 1\n", `{"pulls":`, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				if r.URL.Path == PullsPath {
					_, _ = w.Write([]byte(tc.pulls))
					return
				}
				_, _ = w.Write([]byte(tc.metrics))
			}))
			defer srv.Close()
			_, err := ReadStatus(context.Background(), srv.Client(), srv.URL)
			if err == nil || !strings.Contains(err.Error(), "bad status") {
				t.Fatalf("err %v, want ErrBadStatus", err)
			}
		})
	}
}

// FuzzStatusDecode: any metrics page and pulls body decode or fail with
// ErrBadStatus, never panic.
func FuzzStatusDecode(f *testing.F) {
	f.Add([]byte("shoal_store_used_bytes 1\nshoal_fetched_bytes_total{source=\"peer\"} 5\n"), []byte(`{"pulls":[{"digest":"sha256:aa","bytes":{"peer":3}}],"total":1}`))
	f.Add([]byte("# TYPE shoal_store_blobs gauge\nshoal_store_blobs{state=\"complete\"} NaN\n"), []byte(`{}`))
	f.Add([]byte("shoal_store_used_bytes 1e300\n"), []byte(`{"pulls":null}`))
	f.Fuzz(func(t *testing.T, metrics, pulls []byte) {
		var st Status
		if err := st.decode(bytes.NewReader(metrics), bytes.NewReader(pulls)); err != nil {
			return
		}
		if _, err := json.Marshal(st); err != nil {
			t.Fatalf("a decoded status does not encode: %v", err)
		}
	})
}
