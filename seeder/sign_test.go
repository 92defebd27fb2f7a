package seeder

import (
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/internal/upstream"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// A STREAMED record of the seeder's own is re-signed, for the same hash,
// once past half its life (a download slower than StreamedTTL keeps its
// chunks servable); a fresh one, a VERIFIED one or another signer's is
// left as it is.
func TestSignerRefresh(t *testing.T) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1_800_000_000, 0)
	sg, err := newSigner(key, func() time.Time { return t0 })
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("chunk bytes")
	d := digest.FromBytes(data)
	sum := sha256.Sum256(data)
	dec := func(b []byte, err error) chunk.Signed {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		s, err := chunk.UnmarshalSigned(b)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	st := dec(sg.streamed(d, int64(len(data)), 1<<20, 0, sum))
	if st.Kind != chunk.Streamed || !st.NotAfter.Equal(t0.Add(chunk.StreamedTTL)) {
		t.Fatalf("streamed record: %s until %s", st.Kind, st.NotAfter)
	}
	trust := chunk.NewTrustSet(sg.id)

	same, err := sg.refresh(st, t0.Add(chunk.StreamedTTL/4))
	if err != nil || !same.NotAfter.Equal(st.NotAfter) {
		t.Fatalf("a fresh record was re-signed: %v %v", same.NotAfter, err)
	}
	later := t0.Add(chunk.StreamedTTL * 3 / 4)
	re, err := sg.refresh(st, later)
	if err != nil {
		t.Fatal(err)
	}
	if re.Kind != chunk.Streamed || !re.NotAfter.Equal(later.Add(chunk.StreamedTTL)) || re.Hash != sum {
		t.Fatalf("refreshed: %s until %s", re.Kind, re.NotAfter)
	}
	if err := re.CheckAt(data, trust, t0.Add(chunk.StreamedTTL+time.Minute)); err != nil {
		t.Fatalf("refreshed record past the first expiry: %v", err)
	}

	v := dec(sg.verified(d, int64(len(data)), 1<<20, 0, sum))
	if got, _ := sg.refresh(v, t0.Add(100*time.Hour)); got.Kind != chunk.Verified || !got.NotAfter.IsZero() {
		t.Fatalf("a VERIFIED record changed: %+v", got.Record)
	}
	other, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	osg, _ := newSigner(other, func() time.Time { return t0 })
	theirs := dec(osg.streamed(d, int64(len(data)), 1<<20, 0, sum))
	if got, _ := sg.refresh(theirs, later); got.Signer != osg.id || !got.NotAfter.Equal(theirs.NotAfter) {
		t.Fatal("another signer's record was re-signed")
	}
}

func TestConfiguredRegistries(t *testing.T) {
	ok, err := configuredRegistries(upstream.Settings{Upstreams: []string{"Registry.Internal:5000=https://r.internal:5000", "docker.io=https://mirror.example"}, DefaultUpstream: "registry.internal:5000"})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{
		"": true, "registry.internal:5000": true, "REGISTRY.internal:5000": true, "docker.io": true, "index.docker.io": true,
		"registry.internal": false, "127.0.0.1:5000": false, "ghcr.io": false, "evil.example": false,
	} {
		if ok(name) != want {
			t.Errorf("%q: %v, want %v", name, ok(name), want)
		}
	}
	if _, err := configuredRegistries(upstream.Settings{Upstreams: []string{"nourl"}}); err == nil {
		t.Error("a bad mapping was accepted")
	}
}
