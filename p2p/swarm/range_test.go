package swarm_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peerstore"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/harness/hostile"
	"github.com/shoal-dev/shoal/p2p/swarm"
)

// The Range tests run a cold peer behind the registry shim (PeerOptions.
// Shim: the store checks chunk records as a daemon's does) and a holder
// peer whose chunk server is paced, so the blob takes a while to cross:
// a Range must be answered from its own chunks, fetched first, while the
// rest of the blob is still on its way.

// rangeCluster is a cluster whose one seeder has been stopped after a
// paced peer (holder) got blob from it, and a cold peer with a shim.
func rangeCluster(t *testing.T, size int, seed uint64, rate int64) (blob []byte, req swarm.Request, holder, cold *harness.Peer, c *harness.Cluster) {
	t.Helper()
	c = harness.NewCluster(t, harness.ClusterOptions{})
	blob, req = pushBlob(t, c, size, seed)
	c.AddSeeder(harness.SeederOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	holder, err := c.PeerHolding(ctx, req, harness.PeerOptions{ServeRate: rate})
	if err != nil {
		t.Fatal(err)
	}
	// Only the holder has it now: the seeder is gone.
	if err := c.Seeders[0].Stop(); err != nil {
		t.Fatal(err)
	}
	cold = newPeerWith(c, harness.PeerOptions{Shim: true})
	return blob, req, holder, cold, c
}

// getRange asks the shim for [off, off+n) of req's blob and returns the body.
func getRange(ctx context.Context, shim *harness.PeerShim, req swarm.Request, off, n int64) ([]byte, error) {
	u := fmt.Sprintf("%s/v2/%s/blobs/%s", shim.URL(), req.Repo, req.Digest)
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusPartialContent {
		return nil, fmt.Errorf("range %d+%d: status %d", off, n, resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

func TestRangeOfColdBlobFromPeer(t *testing.T) {
	const size, tail = 32 << 20, 8 << 20
	blob, req, _, cold, c := rangeCluster(t, size, 41, 16<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	got, err := getRange(ctx, cold.Shim, req, size-tail, tail)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blob[size-tail:]) {
		t.Fatalf("tail range: %d bytes differ from the blob's last %d", len(got), tail)
	}
	// The whole blob lands too (the download goes on without the reader).
	if !harness.StoredIn(cold.Store.Dir(), req.Digest.String(), 3*time.Minute) {
		t.Fatal("the cold peer did not complete the blob")
	}
	if got := c.Origin.BlobGets(req.Digest.String()); got != 1 {
		t.Fatalf("origin served the blob %d times, want once (the seeder's)", got)
	}
	t.Logf("last %d MiB of %d MiB: %v", tail>>20, size>>20, took)
}

func TestConcurrentSlicesOfColdBlob(t *testing.T) {
	const size, slices = 32 << 20, 8
	blob, req, _, cold, _ := rangeCluster(t, size, 42, 32<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, slices)
	// Slices that do not fall on chunk bounds, as multipart clients cut.
	step := int64(size / slices)
	for k := range slices {
		off := int64(k)*step + int64(k)*4099
		n := min(step, int64(size)-off)
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := getRange(ctx, cold.Shim, req, off, n)
			if err == nil && !bytes.Equal(got, blob[off:off+n]) {
				err = fmt.Errorf("slice %d: %d bytes differ", k, len(got))
			}
			errs[k] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A Range's chunks are asked for first, and a request withdrawn for them
// may still be answered: neither lets a byte through that its record does
// not vouch for. A relay that holds the blob (it asks the holder) flips a
// bit of every chunk of the tail and ignores CANCEL; it is listed first,
// so the cold peer asks it for wanted chunks. The tail must come back
// exact, and a relay that sent a bad chunk must be dropped for it.
func TestRangeNotServedFromTamperedChunks(t *testing.T) {
	const size, tail = 16 << 20, 4 << 20
	blob, req, holder, cold, c := rangeCluster(t, size, 43, 16<<20)
	relay := hostile.New(t, hostile.Options{})
	relay.Host.Peerstore().AddAddrs(holder.Host.ID(), holder.Host.Addrs(), peerstore.PermanentAddrTTL)
	firstTail := int((size - tail) / chunkset.Size(size))
	var tampered atomic.Int64
	relay.Answer(hostile.Relay(relay, holder.Host.ID(), func(i int, data []byte) {
		if i >= firstTail {
			tampered.Add(1)
			hostile.FlipBit(i, data)
		}
	}))
	c.ListFirst(req.Digest, relay.Info())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got, err := getRange(ctx, cold.Shim, req, size-tail, tail)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blob[size-tail:]) {
		t.Fatalf("tail range: %d bytes that differ from the blob's last %d", len(got), tail)
	}
	if !harness.StoredIn(cold.Store.Dir(), req.Digest.String(), 3*time.Minute) {
		t.Fatal("the cold peer did not complete the blob")
	}
	if tampered.Load() == 0 {
		t.Fatal("the relay was never asked for a chunk of the tail: the test proves nothing")
	}
	if got := rejections(t, cold, "bad_chunk"); got < 1 {
		t.Fatalf("bad_chunk rejections %v after the relay sent %d tampered chunks, want the relay dropped", got, tampered.Load())
	}
}
