package oci

import (
	_ "crypto/sha256" // registers sha256 for digest.Algorithm.Hash
	_ "crypto/sha512" // registers sha512 for digest.Algorithm.Hash
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Sentinel errors of the parsers; every returned error wraps one of them and
// is also an *Error with a 400 status.
var (
	ErrNameInvalid      = errors.New("invalid repository name")
	ErrReferenceInvalid = errors.New("invalid reference")
	ErrDigestInvalid    = errors.New("invalid digest")
	ErrRangeInvalid     = errors.New("invalid range")
	ErrRangeUnsatisfied = errors.New("range not satisfiable")
	ErrRouteUnknown     = errors.New("unknown API route")
)

// MaxNameLength bounds a repository name (host prefix included), as
// distribution/registry does.
const MaxNameLength = 255

var (
	nameComponent = `[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*`
	nameRE        = regexp.MustCompile(`^` + nameComponent + `(?:/` + nameComponent + `)*$`)
	tagRE         = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidateName checks a repository name against the distribution spec
// grammar.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > MaxNameLength || !nameRE.MatchString(name) {
		return Wrap(fmt.Errorf("%w: %q", ErrNameInvalid, truncate(name)), http.StatusBadRequest, CodeNameInvalid, "invalid repository name")
	}
	return nil
}

// ParseDigest parses algorithm:hex for the sha256 and sha512 algorithms,
// lower-case hex only, into the ecosystem's digest type. It is the one
// place a digest from a client, a peer or the disk is validated; a bad one
// is an OCI DIGEST_INVALID error wrapping ErrDigestInvalid.
func ParseDigest(s string) (digest.Digest, error) {
	bad := func(why string) (digest.Digest, error) {
		return "", Wrap(fmt.Errorf("%w: %s: %q", ErrDigestInvalid, why, truncate(s)), http.StatusBadRequest, CodeDigestInvalid, "invalid digest: "+why)
	}
	alg, hx, ok := strings.Cut(s, ":")
	if !ok {
		return bad("missing algorithm")
	}
	n, known := hexLen[alg]
	if !known {
		return bad("unsupported algorithm")
	}
	if len(hx) != n {
		return bad("wrong length")
	}
	for i := 0; i < len(hx); i++ {
		c := hx[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return bad("not lower-case hex")
		}
	}
	return digest.Digest(s), nil
}

var hexLen = map[string]int{"sha256": 64, "sha512": 128}

// DigestBytes returns the raw bytes of a digest ParseDigest accepted.
func DigestBytes(d digest.Digest) []byte {
	b, _ := hex.DecodeString(d.Encoded())
	return b
}

// Matches reports whether sum, the output of d.Algorithm().Hash(), is d.
func Matches(d digest.Digest, sum []byte) bool {
	return hex.EncodeToString(sum) == d.Encoded()
}

// Reference is a manifest reference: exactly one of Tag or Digest is set.
type Reference struct {
	Tag    string
	Digest digest.Digest
}

// IsDigest reports whether the reference names content by digest.
func (r Reference) IsDigest() bool { return r.Digest != "" }

func (r Reference) String() string {
	if r.IsDigest() {
		return r.Digest.String()
	}
	return r.Tag
}

// ParseReference parses a tag or a digest.
func ParseReference(s string) (Reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		if err != nil {
			return Reference{}, err
		}
		return Reference{Digest: d}, nil
	}
	if !tagRE.MatchString(s) {
		return Reference{}, Wrap(fmt.Errorf("%w: %q", ErrReferenceInvalid, truncate(s)), http.StatusBadRequest, CodeReferenceInvalid, "invalid tag")
	}
	return Reference{Tag: s}, nil
}

// Kind is the kind of API route a request names.
type Kind int

// The routes of the pull API (and the write routes the shim refuses).
const (
	KindBase Kind = iota
	KindManifest
	KindBlob
	KindReferrers
	KindTags
	KindUpload
)

// Route is a parsed /v2/ path.
type Route struct {
	Kind Kind
	Name string
	// Ref is the raw last segment: a tag or digest for manifests, a digest
	// for blobs and referrers, an upload id (or empty) for uploads.
	Ref string
}

// ParseRoute splits a request path into its route. Names are validated;
// references are left to the caller, which knows what it expects.
func ParseRoute(path string) (Route, error) {
	if path == "/v2" || path == "/v2/" {
		return Route{Kind: KindBase}, nil
	}
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return Route{}, notFound(path)
	}
	// Uploads: /v2/<name>/blobs/uploads/ and /v2/<name>/blobs/uploads/<id>.
	if i := strings.LastIndex(rest, "/blobs/uploads"); i > 0 {
		tail := rest[i+len("/blobs/uploads"):]
		if tail == "" || tail == "/" || (strings.HasPrefix(tail, "/") && !strings.Contains(tail[1:], "/")) {
			name := rest[:i]
			if err := ValidateName(name); err != nil {
				return Route{}, err
			}
			return Route{Kind: KindUpload, Name: name, Ref: strings.TrimPrefix(tail, "/")}, nil
		}
	}
	if name, ok := strings.CutSuffix(rest, "/tags/list"); ok {
		if err := ValidateName(name); err != nil {
			return Route{}, err
		}
		return Route{Kind: KindTags, Name: name}, nil
	}
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return Route{}, notFound(path)
	}
	ref := rest[i+1:]
	j := strings.LastIndex(rest[:i], "/")
	if j <= 0 {
		return Route{}, notFound(path)
	}
	name, kind := rest[:j], rest[j+1:i]
	var k Kind
	switch kind {
	case "manifests":
		k = KindManifest
	case "blobs":
		k = KindBlob
	case "referrers":
		k = KindReferrers
	default:
		return Route{}, notFound(path)
	}
	if ref == "" {
		return Route{}, notFound(path)
	}
	if err := ValidateName(name); err != nil {
		return Route{}, err
	}
	return Route{Kind: k, Name: name, Ref: ref}, nil
}

func notFound(path string) error {
	return Wrap(fmt.Errorf("%w: %q", ErrRouteUnknown, truncate(path)), http.StatusNotFound, CodeUnsupported, "unknown API route")
}

// Range is an inclusive byte range [Start, End] of a blob.
type Range struct {
	Start, End int64
}

// Len is the number of bytes in r.
func (r Range) Len() int64 { return r.End - r.Start + 1 }

// ContentRange formats the Content-Range header value for a blob of size.
func (r Range) ContentRange(size int64) string {
	return fmt.Sprintf("bytes %d-%d/%d", r.Start, r.End, size)
}

// ParseRange parses a single-range Range header value against a blob of
// the given size. ok is false when header is empty. A malformed header or
// several ranges is ErrRangeInvalid (400); a well-formed range outside the
// blob is ErrRangeUnsatisfied (416).
func ParseRange(header string, size int64) (r Range, ok bool, err error) {
	if header == "" {
		return Range{}, false, nil
	}
	bad := func(why string) (Range, bool, error) {
		return Range{}, false, Wrap(fmt.Errorf("%w: %s: %q", ErrRangeInvalid, why, truncate(header)), http.StatusBadRequest, CodeRangeInvalid, "invalid Range header: "+why)
	}
	spec, found := strings.CutPrefix(header, "bytes=")
	if !found {
		return bad("unit must be bytes")
	}
	spec = strings.TrimSpace(spec)
	if strings.Contains(spec, ",") {
		return bad("only a single range is supported")
	}
	first, last, found := strings.Cut(spec, "-")
	if !found {
		return bad("missing '-'")
	}
	first, last = strings.TrimSpace(first), strings.TrimSpace(last)
	unsat := func() (Range, bool, error) {
		return Range{}, false, Wrap(fmt.Errorf("%w: %q of %d bytes", ErrRangeUnsatisfied, truncate(header), size), http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid, "range not satisfiable")
	}
	switch {
	case first == "" && last == "":
		return bad("empty range")
	case first == "":
		n, err := parseUint(last)
		if err != nil {
			return bad("bad suffix length")
		}
		if n == 0 || size == 0 {
			return unsat()
		}
		if n > size {
			n = size
		}
		return Range{Start: size - n, End: size - 1}, true, nil
	default:
		start, err := parseUint(first)
		if err != nil {
			return bad("bad first byte")
		}
		end := size - 1
		if last != "" {
			if end, err = parseUint(last); err != nil {
				return bad("bad last byte")
			}
			if end < start {
				return bad("last byte before first")
			}
		}
		if start >= size {
			return unsat()
		}
		if end >= size {
			end = size - 1
		}
		return Range{Start: start, End: end}, true, nil
	}
}

func parseUint(s string) (int64, error) {
	if s == "" || len(s) > 19 {
		return 0, ErrRangeInvalid
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrRangeInvalid
		}
	}
	return strconv.ParseInt(s, 10, 64)
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
