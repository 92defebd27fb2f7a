package seeder_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/seeder"
)

// blob is one blob of a test image.
type blob struct {
	digest string
	size   int64
}

// imageBlobs lists img's config and layers.
func imageBlobs(t *testing.T, img v1.Image) []blob {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	out := []blob{{m.Config.Digest.String(), m.Config.Size}}
	for _, l := range m.Layers {
		out = append(out, blob{l.Digest.String(), l.Size})
	}
	return out
}

func totalSize(bs []blob) int64 {
	var n int64
	for _, b := range bs {
		n += b.size
	}
	return n
}

// checkProgress checks the NDJSON stream of a successful preheat of blobs:
// counters only grow and the last line is done with everything counted.
func checkProgress(t *testing.T, res preheatResult, bs []blob) {
	t.Helper()
	last := res.Last()
	if !last.Done || last.Error != "" {
		t.Fatalf("last line %+v, want done without error", last)
	}
	if last.Layers != len(bs) || last.LayersDone != len(bs) || last.Total != totalSize(bs) || last.Bytes != last.Total {
		t.Fatalf("last line %+v, want %d/%d blobs and %d/%d bytes", last, len(bs), len(bs), totalSize(bs), totalSize(bs))
	}
	var prev seeder.Progress
	for i, p := range res.Lines {
		if p.Bytes < prev.Bytes || p.LayersDone < prev.LayersDone || p.Bytes > p.Total || p.LayersDone > p.Layers || p.Rate < 0 {
			t.Fatalf("line %d %+v after %+v: counters must grow within their totals", i, p, prev)
		}
		if i < len(res.Lines)-1 && (p.Done || p.Error != "") {
			t.Fatalf("line %d %+v: done or error before the last line", i, p)
		}
		prev = p
	}
}

// A single-platform image: every blob is pulled from the origin once and
// ends up complete in the store; a second preheat, by tag or by digest,
// does not go back to the origin.
func TestSeederPreheatImage(t *testing.T) {
	origin := startOrigin(t)
	img, err := harness.BlobImage(21, 9<<20, 3<<20, 100<<10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "preheat/app:v1"); err != nil {
		t.Fatal(err)
	}
	bs := imageBlobs(t, img)
	s := startSeeder(t, origin)
	ref := origin.Host + "/preheat/app:v1"

	checkProgress(t, preheat(t, s, ref, "all"), bs)
	for _, b := range bs {
		if n := origin.BlobGets(b.digest); n != 1 {
			t.Errorf("origin served %s %d times, want 1", b.digest, n)
		}
		requireComplete(t, s.store, b.digest, b.size)
	}
	// The manifest went into the store too.
	md, _ := img.Digest()
	mdg, _ := oci.ParseDigest(md.String())
	if _, _, err := s.store.ReadSmall(mdg); err != nil {
		t.Errorf("manifest %s is not in the store: %v", md, err)
	}

	before := origin.BlobBytes()
	checkProgress(t, preheat(t, s, ref, ""), bs)
	checkProgress(t, preheat(t, s, origin.Host+"/preheat/app@"+md.String(), "all"), bs)
	for _, b := range bs {
		if n := origin.BlobGets(b.digest); n != 1 {
			t.Errorf("after preheating again: origin served %s %d times, want 1", b.digest, n)
		}
	}
	if after := origin.BlobBytes(); after != before {
		t.Errorf("preheating again pulled %d more blob bytes from the origin", after-before)
	}
}

// A multi-platform index: "all" pulls every child's blobs; "linux/arm64"
// pulls that child's blobs only.
func TestSeederPreheatIndex(t *testing.T) {
	for _, tc := range []struct {
		platform string
		want     []string // platforms whose blobs are pulled
	}{
		{"all", []string{"linux/amd64", "linux/arm64"}},
		{"", []string{"linux/amd64", "linux/arm64"}},
		{"linux/arm64", []string{"linux/arm64"}},
		{"linux/amd64", []string{"linux/amd64"}},
	} {
		name := tc.platform
		if name == "" {
			name = "default"
		}
		t.Run(strings.ReplaceAll(name, "/", "-"), func(t *testing.T) {
			origin := startOrigin(t)
			platforms := []string{"linux/amd64", "linux/arm64"}
			amd, err := harness.BlobImage(31, 5<<20, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			arm, err := harness.BlobImage(32, 6<<20, 2<<20, 10<<10)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := origin.PushIndex([]v1.Image{amd, arm}, platforms, "multi/app:v1"); err != nil {
				t.Fatal(err)
			}
			s := startSeeder(t, origin)

			res := preheat(t, s, origin.Host+"/multi/app:v1", tc.platform)
			var wanted []blob
			for i, img := range []v1.Image{amd, arm} {
				bs := imageBlobs(t, img)
				pulled := false
				for _, p := range tc.want {
					pulled = pulled || p == platforms[i]
				}
				if pulled {
					wanted = append(wanted, bs...)
				}
				for _, b := range bs {
					n := origin.BlobGets(b.digest)
					switch {
					case pulled && n != 1:
						t.Errorf("%s blob %s: origin served it %d times, want 1", platforms[i], b.digest, n)
					case !pulled && n != 0:
						t.Errorf("%s blob %s: origin served it %d times, want 0 (not the platform asked for)", platforms[i], b.digest, n)
					}
					if pulled {
						requireComplete(t, s.store, b.digest, b.size)
					} else {
						requireAbsent(t, s.store, b.digest)
					}
				}
			}
			checkProgress(t, res, wanted)
		})
	}
}

// A preheat that cannot start still answers 200 with an NDJSON stream whose
// last line carries the error.
func TestSeederPreheatErrors(t *testing.T) {
	origin := startOrigin(t)
	img, err := harness.BlobImage(41, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "errs/app:v1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := origin.PushIndex([]v1.Image{img}, []string{"linux/amd64"}, "errs/multi:v1"); err != nil {
		t.Fatal(err)
	}
	s := startSeeder(t, origin)
	for _, tc := range []struct {
		name, ref, platform, want string
	}{
		{"bad reference", "Not A Ref!!", "all", "bad reference"},
		{"bad digest", origin.Host + "/errs/app@sha256:1234", "all", "bad reference"},
		{"unknown tag", origin.Host + "/errs/app:nope", "all", ""},
		{"unknown repo", origin.Host + "/errs/none:v1", "all", ""},
		{"unknown digest", origin.Host + "/errs/app@sha256:" + strings.Repeat("ab", 32), "all", ""},
		{"no such platform", origin.Host + "/errs/multi:v1", "linux/s390x", "no manifest for platform"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := preheat(t, s, tc.ref, tc.platform)
			last := res.Last()
			if last.Error == "" || last.Done {
				t.Fatalf("last line %+v, want an error", last)
			}
			if !strings.Contains(last.Error, tc.want) {
				t.Fatalf("error %q, want it to mention %q", last.Error, tc.want)
			}
		})
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	if n := origin.BlobGets(ld.String()); n != 0 {
		t.Fatalf("failed preheats pulled a blob %d times", n)
	}
}

// Two preheats of one image at once share one origin pull per blob.
func TestSeederPreheatConcurrent(t *testing.T) {
	origin := startOrigin(t)
	img, err := harness.BlobImage(51, 10<<20, 6<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "conc/app:v1"); err != nil {
		t.Fatal(err)
	}
	bs := imageBlobs(t, img)
	s := startSeeder(t, origin)
	// Slow enough that the two preheats overlap on every blob.
	origin.SetRate(16 << 20)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n = 2
	results := make([]preheatResult, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = postPreheat(ctx, s.admin, origin.Host+"/conc/app:v1", "all", nil)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("preheat %d: %v", i, errs[i])
		}
		checkProgress(t, results[i], bs)
	}
	for _, b := range bs {
		if got := origin.BlobGets(b.digest); got != 1 {
			t.Errorf("origin served %s %d times, want 1", b.digest, got)
		}
		requireComplete(t, s.store, b.digest, b.size)
	}
}

// Preheat reports at least every 500 ms while it pulls, and the report
// lines stream out before the pull ends.
func TestSeederPreheatStreamsProgress(t *testing.T) {
	origin := startOrigin(t)
	img, err := harness.BlobImage(61, 6<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Push(img, "slow/app:v1"); err != nil {
		t.Fatal(err)
	}
	bs := imageBlobs(t, img)
	s := startSeeder(t, origin)
	origin.SetRate(3 << 20) // about 2 s

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var early []seeder.Progress // lines read while the origin was still sending
	res, err := postPreheat(ctx, s.admin, origin.Host+"/slow/app:v1", "all", func(p seeder.Progress) {
		if origin.BlobBytes() < bs[1].size {
			early = append(early, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	checkProgress(t, res, bs)
	if len(early) == 0 {
		t.Fatalf("no progress line arrived while the blob was being pulled (%d lines in all)", len(res.Lines))
	}
	for _, p := range early {
		if p.Total != totalSize(bs) || p.Layers != len(bs) || p.Done {
			t.Fatalf("early line %+v, want the totals and not done", p)
		}
	}
}
