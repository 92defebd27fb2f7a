package seeder_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	libhost "github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/internal/store"
	"github.com/shoal-dev/shoal/p2p/chunk"
	"github.com/shoal-dev/shoal/seeder"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testSeeder is a running seeder on loopback with its origin.
type testSeeder struct {
	*harness.Seeder
	origin *harness.Origin
	// admin is the admin API's base URL.
	admin string
	store *store.Store
}

// startOrigin runs an in-memory origin registry for the test.
func startOrigin(t *testing.T) *harness.Origin {
	t.Helper()
	o := harness.StartOrigin("")
	t.Cleanup(o.Close)
	return o
}

// startSeeder runs a seeder in front of origin until the test ends; its
// cleanup waits for Run to return.
func startSeeder(t *testing.T, origin *harness.Origin) *testSeeder {
	t.Helper()
	s := harness.NewSeeder(t, harness.SeederOptions{
		Upstream: origin.Registry(),
		Log:      zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	})
	return &testSeeder{Seeder: s, origin: origin, admin: s.AdminURL, store: s.StoreForTest()}
}

// preheatResult is what one POST /v1/preheat streamed back.
type preheatResult struct {
	Status      int
	ContentType string
	Lines       []seeder.Progress
}

// Last is the final progress line (the zero Progress without any).
func (r preheatResult) Last() seeder.Progress {
	if len(r.Lines) == 0 {
		return seeder.Progress{}
	}
	return r.Lines[len(r.Lines)-1]
}

// postPreheat asks the seeder's admin API to preheat ref and reads the
// whole NDJSON stream; each line is passed to onLine as it arrives (nil:
// ignore).
func postPreheat(ctx context.Context, admin, ref, platform string, onLine func(seeder.Progress)) (preheatResult, error) {
	body, _ := json.Marshal(map[string]string{"ref": ref, "platform": platform})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/v1/preheat", bytes.NewReader(body))
	if err != nil {
		return preheatResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return preheatResult{}, err
	}
	defer resp.Body.Close()
	res := preheatResult{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type")}
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return res, nil
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		// The lines are ScopeProgress: the seeder's Progress plus the
		// nodes' fields (scope "seeder" here: only the Progress part moves).
		var sp seeder.ScopeProgress
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&sp); err != nil {
			return res, errors.New("bad NDJSON line " + sc.Text() + ": " + err.Error())
		}
		if sp.Phase != "seeder" || sp.Nodes != 0 {
			return res, errors.New("a seeder-scope preheat reported nodes: " + sc.Text())
		}
		p := sp.Progress
		res.Lines = append(res.Lines, p)
		if onLine != nil {
			onLine(p)
		}
	}
	return res, sc.Err()
}

// preheat is postPreheat bounded to a minute, failing the test on a
// transport error or a status other than 200.
func preheat(t *testing.T, s *testSeeder, ref, platform string) preheatResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := postPreheat(ctx, s.admin, ref, platform, nil)
	if err != nil {
		t.Fatalf("preheat %s: %v", ref, err)
	}
	if res.Status != http.StatusOK || res.ContentType != "application/x-ndjson" {
		t.Fatalf("preheat %s: status %d, content type %q", ref, res.Status, res.ContentType)
	}
	if len(res.Lines) == 0 {
		t.Fatalf("preheat %s: no progress lines", ref)
	}
	return res
}

// requireComplete checks that the seeder's store holds blob d complete:
// size and content match.
func requireComplete(t *testing.T, st *store.Store, d string, size int64) {
	t.Helper()
	dg, err := oci.ParseDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.Stat(dg)
	if err != nil {
		t.Fatalf("blob %s is not complete in the seeder's store: %v", d, err)
	}
	if n != size {
		t.Fatalf("blob %s: %d bytes in the store, want %d", d, n, size)
	}
	f, _, err := st.OpenBlob(dg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != d {
		t.Fatalf("blob %s: stored bytes hash to %s", d, got)
	}
}

// requireAbsent checks that the seeder's store has no part of blob d.
func requireAbsent(t *testing.T, st *store.Store, d string) {
	t.Helper()
	dg, err := oci.ParseDigest(d)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(dg); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("blob %s: Stat = %v, want ErrNotFound", d, err)
	}
}

// A chunk client sees a blob's chunks while the seeder is still pulling it
// from a throttled origin: HAVE lists the chunks already in, HAVE_UPDATEs
// announce the rest before the origin has sent the whole blob, and every
// CHUNK carries a record signed by the seeder's key.
func TestSeederServesChunksWhileBlobStreams(t *testing.T) {
	const (
		blobSize = 24 << 20 // 24 chunks of 1 MiB
		rate     = 4 << 20  // bytes/s: the pull takes about 6 s
	)
	origin := startOrigin(t)
	img, err := harness.BlobImage(11, blobSize)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "stream/app:v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	dg, err := oci.ParseDigest(ld.String())
	if err != nil {
		t.Fatal(err)
	}
	s := startSeeder(t, origin)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// Connect first, so that the OPEN below is quick.
	client := newClientHost(t)
	if err := client.Connect(ctx, s.Info); err != nil {
		t.Fatal(err)
	}
	origin.SetRate(rate)

	// The preheat drives the pull; the test watches its end.
	var preheatDone atomic.Bool
	preheatErr := make(chan error, 1)
	go func() {
		res, err := postPreheat(ctx, s.admin, origin.Host+"/stream/app:v1", "all", nil)
		preheatDone.Store(true)
		if err == nil && !res.Last().Done {
			err = errors.New("preheat did not end with done: " + res.Last().Error)
		}
		preheatErr <- err
	}()

	// Wait until the seeder can serve two chunks.
	for servable(ctx, s.store, dg) < 2 {
		if ctx.Err() != nil || preheatDone.Load() {
			t.Fatalf("the seeder has %d servable chunks; the origin sent %d bytes (preheat done: %v)",
				servable(ctx, s.store, dg), origin.BlobBytes(), preheatDone.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	sess, err := chunk.Dial(ctx, client, s.ID(), chunk.Open{Digest: dg, Registry: origin.Host, Repo: "stream/app"}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	have := sess.Have()
	count := chunkset.Count(blobSize, chunkset.Size(blobSize))
	if have.BlobSize != blobSize || have.ChunkSize != chunkset.Size(blobSize) || have.Bitmap.Len() != count {
		t.Fatalf("HAVE: size %d chunk %d count %d, want %d %d %d", have.BlobSize, have.ChunkSize, have.Bitmap.Len(), blobSize, chunkset.Size(blobSize), count)
	}
	if have.Complete || have.Bitmap.Full() {
		t.Fatalf("HAVE says complete (%d/%d chunks) before the origin sent the blob", have.Bitmap.Count(), count)
	}
	if have.Bitmap.Count() == 0 {
		t.Fatalf("HAVE lists no chunk though the origin sent %d bytes", origin.BlobBytes())
	}
	t.Logf("HAVE: %d/%d chunks", have.Bitmap.Count(), count)

	trust := chunk.NewTrustSet(s.ID())
	got := chunkset.New(count)
	requested := chunkset.New(count)
	ask := func(i int) {
		if !requested.Set(i) {
			return
		}
		if err := sess.Request(i); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for i := range count {
		if have.Bitmap.Has(i) {
			ask(i)
		}
	}
	updates, updatesBeforeEnd := 0, 0
	for !got.Full() {
		m, err := sess.Next(ctx)
		if err != nil {
			t.Fatalf("after %d/%d chunks: %v", got.Count(), count, err)
		}
		switch m := m.(type) {
		case chunk.HaveUpdate:
			updates++
			if origin.BlobBytes() < blobSize && !preheatDone.Load() {
				updatesBeforeEnd++
			}
			for _, i := range m.Indexes {
				ask(i)
			}
		case chunk.Chunk:
			if err := chunk.VerifyChunk(m, dg, blobSize, trust); err != nil {
				t.Fatalf("chunk %d: %v", m.Index, err)
			}
			if m.Signed.Signer != s.ID() {
				t.Fatalf("chunk %d signed by %s, want the seeder %s", m.Index, m.Signed.Signer, s.ID())
			}
			got.Set(m.Index)
		case chunk.Error:
			t.Fatalf("seeder answered %v", m)
		}
	}
	if updates == 0 || updatesBeforeEnd == 0 {
		t.Fatalf("%d HAVE_UPDATEs, %d of them before the origin pull completed; want some before", updates, updatesBeforeEnd)
	}
	if err := <-preheatErr; err != nil {
		t.Fatal(err)
	}
	if n := origin.BlobGets(ld.String()); n != 1 {
		t.Fatalf("origin served the blob %d times, want 1", n)
	}
	requireComplete(t, s.store, ld.String(), blobSize)
}

// servable counts the chunks of d the store can serve now.
func servable(ctx context.Context, st *store.Store, d digest.Digest) int {
	v, err := st.Chunks(d)
	if err != nil {
		return 0
	}
	defer v.Close()
	state, err := v.State(ctx)
	if err != nil {
		return 0
	}
	return state.Servable.Count()
}

// A chunk signed by the seeder does not verify against any other key.
func TestSeederChunksVerifyOnlyAgainstSeeder(t *testing.T) {
	origin := startOrigin(t)
	img, err := harness.BlobImage(12, 5<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "verify/app:v1"); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	dg, _ := oci.ParseDigest(ld.String())
	s := startSeeder(t, origin)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := newClientHost(t)
	if err := client.Connect(ctx, s.Info); err != nil {
		t.Fatal(err)
	}
	// No preheat: the OPEN itself starts the pull at the origin.
	sess, err := chunk.Dial(ctx, client, s.ID(), chunk.Open{Digest: dg, Registry: origin.Host, Repo: "verify/app"}, chunk.ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	count := sess.Have().Bitmap.Len()
	for i := range count {
		if sess.Have().Bitmap.Has(i) {
			if err := sess.Request(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	other := chunk.NewTrustSet(client.ID())
	seen := 0
	for seen < count {
		m, err := sess.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case chunk.HaveUpdate:
			for _, i := range m.Indexes {
				if err := sess.Request(i); err != nil {
					t.Fatal(err)
				}
			}
		case chunk.Chunk:
			seen++
			if err := chunk.VerifyChunk(m, dg, 5<<20, chunk.NewTrustSet(s.ID())); err != nil {
				t.Fatalf("chunk %d: %v", m.Index, err)
			}
			if err := chunk.VerifyChunk(m, dg, 5<<20, other); !errors.Is(err, chunk.ErrUntrustedSigner) {
				t.Fatalf("chunk %d against another trust set: %v, want ErrUntrustedSigner", m.Index, err)
			}
			bad := m
			bad.Data = append([]byte(nil), m.Data...)
			bad.Data[0] ^= 1
			if err := chunk.VerifyChunk(bad, dg, 5<<20, chunk.NewTrustSet(s.ID())); !errors.Is(err, chunk.ErrChunkMismatch) {
				t.Fatalf("flipped chunk %d: %v, want ErrChunkMismatch", m.Index, err)
			}
		case chunk.Error:
			t.Fatalf("seeder answered %v", m)
		}
	}
	if n := origin.BlobGets(ld.String()); n != 1 {
		t.Fatalf("origin served the blob %d times, want 1", n)
	}
}

// GET /v1/status names the seeder's peer ID and its full addresses.
func TestSeederStatus(t *testing.T) {
	origin := startOrigin(t)
	s := startSeeder(t, origin)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(s.admin + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status: %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var st struct {
		PeerID string   `json:"peer_id"`
		Addrs  []string `json:"addrs"`
		Peers  *int     `json:"peers"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.PeerID != s.ID().String() {
		t.Fatalf("peer_id %q, want %q", st.PeerID, s.ID())
	}
	if _, err := peer.Decode(st.PeerID); err != nil {
		t.Fatalf("peer_id %q: %v", st.PeerID, err)
	}
	if st.Peers == nil {
		t.Fatal("status has no peers count")
	}
	if len(st.Addrs) == 0 || strings.Join(st.Addrs, " ") != strings.Join(s.Addrs(), " ") {
		t.Fatalf("addrs %q, want %q", st.Addrs, s.Addrs())
	}
	for _, a := range st.Addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			t.Fatalf("addr %q: %v", a, err)
		}
		if ai.ID != s.ID() {
			t.Fatalf("addr %q names peer %s", a, ai.ID)
		}
		if ip, err := ai.Addrs[0].ValueForProtocol(ma.P_IP4); err != nil || ip != "127.0.0.1" {
			t.Fatalf("addr %q is not on 127.0.0.1", a)
		}
	}
	// A libp2p client can reach the seeder at the advertised address.
	ai, _ := peer.AddrInfoFromString(st.Addrs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := newClientHost(t).Connect(ctx, *ai); err != nil {
		t.Fatalf("connect to %s: %v", st.Addrs[0], err)
	}
}

// The admin API refuses what is not a preheat or a status request.
func TestSeederAdminRejects(t *testing.T) {
	origin := startOrigin(t)
	s := startSeeder(t, origin)
	client := &http.Client{Timeout: 10 * time.Second}
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"not json", http.MethodPost, "/v1/preheat", "ref=x", http.StatusBadRequest},
		{"no ref", http.MethodPost, "/v1/preheat", `{"platform":"all"}`, http.StatusBadRequest},
		{"empty body", http.MethodPost, "/v1/preheat", "", http.StatusBadRequest},
		{"GET preheat", http.MethodGet, "/v1/preheat", "", http.StatusMethodNotAllowed},
		{"POST status", http.MethodPost, "/v1/status", "", http.StatusMethodNotAllowed},
		{"unknown path", http.MethodGet, "/v2/", "", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, s.admin+tc.path, strings.NewReader(tc.body))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, b, tc.want)
			}
			if tc.want == http.StatusBadRequest && !json.Valid(b) {
				t.Fatalf("400 body is not JSON: %q", b)
			}
		})
	}
}

// newClientHost is a plain shoal libp2p host on loopback, closed with the
// test.
func newClientHost(t *testing.T) libhost.Host {
	t.Helper()
	return harness.NewHost(t, harness.HostOptions{})
}
