package oci

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{"/v2/", "/v2/a/b/manifests/latest", "/v2/x/blobs/sha256:" + strings.Repeat("a", 64), "/v2/x/blobs/uploads/1", "/v2/../../etc/passwd/blobs/x", "/v2/a/tags/list"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, err := ParseRoute(path)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || oe.Status != 400 && oe.Status != 404 {
				t.Fatalf("%q: not a 400/404 OCI error: %v", path, err)
			}
			return
		}
		if rt.Kind == KindBase {
			return
		}
		if err := ValidateName(rt.Name); err != nil {
			t.Fatalf("%q: route with invalid name %q", path, rt.Name)
		}
		// A valid name never climbs out of a directory it is joined to.
		if p := filepath.Join("/data", rt.Name); !strings.HasPrefix(p, "/data/") {
			t.Fatalf("%q: name %q escapes: %s", path, rt.Name, p)
		}
	})
}

func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"latest", "sha256:" + strings.Repeat("a", 64), "sha512:" + strings.Repeat("b", 128), "sha256:..", "a:b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseReference(s)
		if err != nil {
			return
		}
		if ref.String() != s {
			t.Fatalf("%q round-trips to %q", s, ref.String())
		}
		if ref.IsDigest() {
			if strings.ContainsAny(ref.Digest.Encoded(), "/.\\") || len(DigestBytes(ref.Digest))*2 != len(ref.Digest.Encoded()) {
				t.Fatalf("%q: unsafe digest hex", s)
			}
		} else if strings.ContainsAny(ref.Tag, "/:") {
			t.Fatalf("%q: unsafe tag", s)
		}
	})
}

func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:" + strings.Repeat("0", 64))
	f.Add("sha256:")
	f.Add(":")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			if !errors.Is(err, ErrDigestInvalid) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if d.String() != s {
			t.Fatalf("%q round-trips to %q", s, d)
		}
		h := d.Algorithm().Hash()
		if h.Size()*2 != len(d.Encoded()) {
			t.Fatalf("%q: hash size %d", s, h.Size())
		}
	})
}

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-1", "bytes=-5", "bytes=5-", "bytes=1-2,3-4", "bytes=9223372036854775807-"} {
		f.Add(s, int64(1000))
	}
	f.Fuzz(func(t *testing.T, h string, size int64) {
		if size < 0 {
			size = -size
		}
		if size < 0 {
			return
		}
		r, ok, err := ParseRange(h, size)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) || (oe.Status != 400 && oe.Status != 416) {
				t.Fatalf("%q: %v", h, err)
			}
			return
		}
		if !ok {
			if h != "" {
				t.Fatalf("%q: no range and no error", h)
			}
			return
		}
		if r.Start < 0 || r.End < r.Start || r.End >= size || r.Len() <= 0 {
			t.Fatalf("%q size %d: bad range %+v", h, size, r)
		}
	})
}
