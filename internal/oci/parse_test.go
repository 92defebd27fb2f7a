package oci

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestParseRoute(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	cases := []struct {
		path string
		kind Kind
		name string
		ref  string
		err  error
	}{
		{"/v2/", KindBase, "", "", nil},
		{"/v2", KindBase, "", "", nil},
		{"/v2/library/alpine/manifests/3.20", KindManifest, "library/alpine", "3.20", nil},
		{"/v2/a/b/c/d/blobs/" + d, KindBlob, "a/b/c/d", d, nil},
		{"/v2/app/referrers/" + d, KindReferrers, "app", d, nil},
		{"/v2/app/tags/list", KindTags, "app", "", nil},
		{"/v2/app/blobs/uploads/", KindUpload, "app", "", nil},
		{"/v2/app/blobs/uploads/abc-123", KindUpload, "app", "abc-123", nil},
		{"/v2/manifests/latest", 0, "", "", ErrRouteUnknown},
		{"/v2/App/manifests/latest", 0, "", "", ErrNameInvalid},
		{"/v2/../etc/blobs/" + d, 0, "", "", ErrNameInvalid},
		{"/v2/a//b/manifests/x", 0, "", "", ErrNameInvalid},
		{"/v2/app/manifests/", 0, "", "", ErrRouteUnknown},
		{"/v2/app/things/x", 0, "", "", ErrRouteUnknown},
		{"/v3/app/manifests/x", 0, "", "", ErrRouteUnknown},
		{"/v2/" + strings.Repeat("a", 300) + "/manifests/x", 0, "", "", ErrNameInvalid},
	}
	for _, c := range cases {
		rt, err := ParseRoute(c.path)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%s: err %v, want %v", c.path, err, c.err)
			}
			var oe *Error
			if !errors.As(err, &oe) || oe.Status >= 500 {
				t.Errorf("%s: not a client OCI error: %v", c.path, err)
			}
			continue
		}
		if err != nil || rt.Kind != c.kind || rt.Name != c.name || rt.Ref != c.ref {
			t.Errorf("%s: got %+v, %v", c.path, rt, err)
		}
	}
}

func TestParseReference(t *testing.T) {
	for _, ok := range []string{"latest", "v1.2.3", "_x", "A-b.c_d", strings.Repeat("t", 128), "sha256:" + strings.Repeat("0", 64), "sha512:" + strings.Repeat("f", 128)} {
		if _, err := ParseReference(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".x", "-x", strings.Repeat("t", 129), "sha256:abc", "sha256:" + strings.Repeat("A", 64), "md5:" + strings.Repeat("0", 32), "a/b", "x y", "sha256:" + strings.Repeat("0", 63) + "/"} {
		if _, err := ParseReference(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

func TestParseRange(t *testing.T) {
	const size = 1000
	cases := []struct {
		h          string
		start, end int64
		ok         bool
		err        error
	}{
		{"", 0, 0, false, nil},
		{"bytes=0-0", 0, 0, true, nil},
		{"bytes=0-", 0, 999, true, nil},
		{"bytes=10-20", 10, 20, true, nil},
		{"bytes=990-5000", 990, 999, true, nil},
		{"bytes=-1", 999, 999, true, nil},
		{"bytes=-5000", 0, 999, true, nil},
		{"bytes=1000-", 0, 0, false, ErrRangeUnsatisfied},
		{"bytes=-0", 0, 0, false, ErrRangeUnsatisfied},
		{"bytes=5-4", 0, 0, false, ErrRangeInvalid},
		{"bytes=a-b", 0, 0, false, ErrRangeInvalid},
		{"bytes=1-2,3-4", 0, 0, false, ErrRangeInvalid},
		{"items=1-2", 0, 0, false, ErrRangeInvalid},
		{"bytes=-", 0, 0, false, ErrRangeInvalid},
		{"bytes=99999999999999999999-", 0, 0, false, ErrRangeInvalid},
		{"bytes=+1-2", 0, 0, false, ErrRangeInvalid},
	}
	for _, c := range cases {
		r, ok, err := ParseRange(c.h, size)
		if c.err != nil {
			if !errors.Is(err, c.err) {
				t.Errorf("%q: err %v, want %v", c.h, err, c.err)
			}
			continue
		}
		if err != nil || ok != c.ok || (ok && (r.Start != c.start || r.End != c.end)) {
			t.Errorf("%q: got %+v %v %v", c.h, r, ok, err)
		}
	}
	if _, _, err := ParseRange("bytes=0-", 0); !errors.Is(err, ErrRangeUnsatisfied) {
		t.Errorf("empty blob: %v", err)
	}
}

func TestWriteErrorIsOCIJSON(t *testing.T) {
	rec := newRecorder()
	e := WriteError(rec, &http.Request{Method: http.MethodGet}, Errorf(404, CodeBlobUnknown, "no such blob"))
	if e.Status != 404 || rec.status != 404 || rec.header.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %v", rec.status, rec.header)
	}
	code, msg, ok := ParseErrorBody(rec.body)
	if !ok || code != CodeBlobUnknown || msg != "no such blob" {
		t.Fatalf("body %s", rec.body)
	}
	// A plain error becomes a 500 without leaking its text.
	rec = newRecorder()
	_ = WriteError(rec, &http.Request{Method: http.MethodHead}, errors.New("secret path /x/y"))
	if rec.status != 500 || len(rec.body) != 0 {
		t.Fatalf("HEAD 500: %d %q", rec.status, rec.body)
	}
}

type recorder struct {
	header http.Header
	status int
	body   []byte
}

func newRecorder() *recorder                    { return &recorder{header: http.Header{}} }
func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(s int)           { r.status = s }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }
