package load_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/bench/load"
	"github.com/shoal-dev/shoal/internal/harness"
)

// flipper forwards to the origin and flips one bit of every body.
type flipper struct{ http.ResponseWriter }

func (f flipper) Write(p []byte) (int, error) {
	if len(p) > 0 {
		q := append([]byte(nil), p...)
		q[len(q)/2] ^= 1
		return f.ResponseWriter.Write(q)
	}
	return 0, nil
}

// TestCheckCatches: the classifier finds every wrong answer. A shim that
// answers 200 "ok" to everything fails every daemon request; one that
// relays the origin with a bit flipped in every body fails every request
// that carries bytes. The origin baseline passes in both.
func TestCheckCatches(t *testing.T) {
	o := harness.StartOrigin("")
	t.Cleanup(o.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var imgs []load.Image
	for i, ref := range []string{"check/warm:v1", "check/cold:v1"} {
		im, err := harness.BlobImage(uint64(200+i), 300<<10, 20<<10)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := o.Push(im, ref); err != nil {
			t.Fatal(err)
		}
		li, err := load.ReadImage(ctx, o.Host, ref)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, li)
	}
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	defer ok.Close()
	u, err := url.Parse(o.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	flip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxy.ServeHTTP(flipper{w}, r)
	}))
	defer flip.Close()
	c := load.NewClient(64)
	defer c.CloseIdleConnections()
	for _, tc := range []struct {
		name string
		shim string
		want func(load.Result) bool // the requests that must be found unexpected
	}{
		{"always 200", ok.URL, func(r load.Result) bool { return r.Kind != load.OriginBlobGet }},
		{"bit flipped", flip.URL, func(r load.Result) bool {
			switch r.Kind {
			case load.ManifestTagGet, load.ManifestDigestGet, load.WarmBlobGet, load.ColdBlobGet, load.WarmRange, load.ColdRange:
				return true
			}
			return false
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := load.Target{Shim: tc.shim, Origin: o.URL(), Warm: imgs[0], Cold: imgs[1]}
			reqs, err := load.Plan(target, 60, 7)
			if err != nil {
				t.Fatal(err)
			}
			caught := 0
			for _, r := range load.Run(ctx, c, reqs, 30*time.Second) {
				unexpected := errors.Is(r.Err, load.ErrUnexpected)
				if tc.want(r) && !unexpected {
					t.Errorf("%s: status %d passed as expected", r.Kind, r.Status)
				}
				if r.Kind == load.OriginBlobGet && r.Err != nil {
					t.Errorf("the origin's answer: %v", r.Err)
				}
				if unexpected {
					caught++
				}
			}
			if caught == 0 {
				t.Fatal("nothing caught")
			}
		})
	}
}

// TestProcMem reads this process's memory from /proc.
func TestProcMem(t *testing.T) {
	rss, hwm, err := load.ProcMem(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("ProcMem: rss %d, hwm %d, %v", rss, hwm, err)
	}
	if _, _, err := load.ProcMem(-1); err == nil {
		t.Fatal("ProcMem(-1) succeeded")
	}
}
