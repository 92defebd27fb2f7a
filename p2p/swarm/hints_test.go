package swarm_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

func hints(t *testing.T, p *harness.Peer) float64 {
	t.Helper()
	return harness.Sum(t, p.Registry, "shoal_swarm_holder_hints_total", nil)
}

// The attack: a peer (not a seeder) sends HOLDER on its session, naming a
// decoy, to steer the puller's slots. The session does not accept the
// frame: the liar is dropped for breaking the protocol, the decoy is never
// dialed, no hint is counted, and the pull finishes from the seeder.
func TestHolderFromAPeerIsAViolation(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 4<<20, 31)
	c.AddSeeder(harness.SeederOptions{})
	decoy := hostile.New(t, hostile.Options{})
	var dialed atomic.Int32
	decoy.Answer(func(network.Stream, chunk.Open) { dialed.Add(1) })
	a := newPeer(c, swarm.Config{})
	// The origin sends the blob only once the liar's session with a has
	// ended: on a loaded machine the seeder could otherwise finish the
	// pull before a dialed the liar or read its frame (bounded: after 30 s
	// the origin answers anyway and the assertions below say what went
	// wrong). The seeder may dial the liar too; that session does not
	// count.
	ended := make(chan struct{})
	var once sync.Once
	c.Origin.OnRequest(func(r *http.Request) {
		if r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/blobs/") {
			return
		}
		select {
		case <-ended:
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	})
	liar := hostile.Script(time.Minute, hostile.Frame(fullHave(int64(len(blob)))), hostile.Frame(chunk.Holder{Peer: decoy.Info().ID, Addrs: decoy.Info().Addrs}))
	c.ListFirst(req.Digest, hostiles(t, 1, func(int, *hostile.Peer) hostile.Behavior {
		return func(s network.Stream, o chunk.Open) {
			liar(s, o)
			if s.Conn().RemotePeer() == a.Host.ID() {
				once.Do(func() { close(ended) })
			}
		}
	})...)
	if err := pull(a, req, blob, noFallback(t)); err != nil {
		t.Fatal(err)
	}
	if n := dialed.Load(); n != 0 {
		t.Errorf("the decoy a peer named was dialed %d times", n)
	}
	if n := hints(t, a); n != 0 {
		t.Errorf("%v hints counted from a peer", n)
	}
	// Dropped at once for the frame, not later for stalling.
	if n := rejections(t, a, "protocol"); n != 1 {
		t.Errorf("the peer that sent HOLDER: %v protocol rejections, want 1 (%v rejections in all)", n, rejections(t, a, ""))
	}
}

// Two nodes pull the same blob at once through a real seeder, which names
// each to the other when it sends it its first chunk: the hints are
// counted, taken as sources, and both finish with the origin sending the
// blob once.
func TestSeederNamesNewHolders(t *testing.T) {
	c := harness.NewCluster(t, harness.ClusterOptions{})
	blob, req := pushBlob(t, c, 24<<20, 32)
	c.AddSeeder(harness.SeederOptions{})
	c.Origin.SetRate(8 << 20) // the two fetches overlap for seconds

	a, b := newPeer(c, swarm.Config{}), newPeer(c, swarm.Config{})
	pullAll(t, []*harness.Peer{a, b}, req, blob)
	if n := hints(t, a) + hints(t, b); n < 1 {
		t.Fatalf("no holder hint reached either node")
	}
	peerBytes := harness.Sum(t, a.Registry, "shoal_fetched_bytes_total", harness.Labels{"source": "peer"}) +
		harness.Sum(t, b.Registry, "shoal_fetched_bytes_total", harness.Labels{"source": "peer"})
	if peerBytes == 0 {
		t.Errorf("no bytes went between the nodes the seeder named to each other")
	}
	if got := c.Origin.BlobGets(req.Digest.String()); got != 1 {
		t.Errorf("origin served the blob %d times, want once", got)
	}
}
