package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/shoal-dev/shoal/internal/oci"
)

// Access checks: the origin is asked, with the client's own credentials,
// whether it would give this client this manifest or blob of this
// repository. The check is a HEAD of that very object at the configured
// upstream, so a digest the client may read elsewhere is no pass here.
// The client's Authorization header goes only to the upstream's own host
// (a redirect, such as a blob's to storage, is not followed: it means yes).
// Without credentials the check is anonymous: through an anonymous token
// when the origin hands those out (Docker Hub does, for public images).

// MaxChallengeLen bounds a WWW-Authenticate challenge relayed to a client.
const MaxChallengeLen = 4096

// Verdict is the origin's answer to an access check.
type Verdict struct {
	// Status is the origin's: 200 (any 2xx or a redirect) means the client
	// may read the object; 401, 403 and 404 that it may not.
	Status int
	// Challenge is the WWW-Authenticate header of a 401, for the client:
	// with it, the client learns where to get credentials.
	Challenge string
	// Desc describes a manifest the origin named (Docker-Content-Digest).
	Desc Descriptor
}

// Allowed reports whether the verdict lets the client read the object.
func (v Verdict) Allowed() bool { return v.Status == http.StatusOK }

// WithClientAuth returns t carrying a client's Authorization header. The
// client's credentials are used only when the node's own are refused (a
// node without credentials for a private repository), and only toward t's
// upstream.
func (t Target) WithClientAuth(authorization string) Target {
	t.clientAuth = authorization
	return t
}

// Authorize asks the upstream whether the holder of authorization (an
// Authorization header value, "" for anonymous) may read kind ("manifests"
// or "blobs") ref of t's repository. A network failure, a timeout, 5xx or
// 429 is ErrUnavailable; an answer is a Verdict.
func (c *Client) Authorize(ctx context.Context, t Target, kind, ref, authorization string, accept []string) (Verdict, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, t.url(kind, ref), nil)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if kind == "manifests" {
		req.Header.Set("Accept", acceptHeader(accept))
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.asClient(ctx, t, req, authorization == "")
	if err != nil {
		err = classify(err)
		c.fail("authorize", t, err)
		return Verdict{}, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	c.m.requests.WithLabelValues("authorize", strconv.Itoa(resp.StatusCode)).Inc()
	v := Verdict{Status: resp.StatusCode}
	switch s := resp.StatusCode; {
	case s/100 == 2, s/100 == 3:
		v.Status = http.StatusOK
		if kind == "manifests" {
			if d, err := oci.ParseDigest(resp.Header.Get("Docker-Content-Digest")); err == nil && resp.ContentLength >= 0 {
				v.Desc = Descriptor{MediaType: mediaType(resp.Header), Digest: d, Size: resp.ContentLength}
			}
		}
	case s == http.StatusUnauthorized:
		v.Challenge = challenge(resp.Header)
	case s == http.StatusTooManyRequests, s >= 500:
		c.m.failures.WithLabelValues("authorize").Inc()
		return Verdict{}, statusError(s, "", "access check")
	}
	return v, nil
}

// Challenge returns the upstream's answer to an unauthenticated (or, with
// authorization, that client's) GET /v2/: 200, or 401 with its challenge.
// The shim relays it, so a client that pings the mirror learns how the
// origin authenticates.
func (c *Client) Challenge(ctx context.Context, t Target, authorization string) (Verdict, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.Base.String()+"/v2/", nil)
	if err != nil {
		return Verdict{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := c.raw(t).RoundTrip(req)
	if err != nil {
		err = classify(err)
		c.fail("ping", t, err)
		return Verdict{}, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return Verdict{Status: resp.StatusCode, Challenge: challenge(resp.Header)}, nil
	}
	return Verdict{Status: http.StatusOK}, nil
}

// asClient sends a request on behalf of a client (an access check, a tag
// list). With the client's credentials it goes as it is. Anonymous, it
// goes plainly first; an origin that answers with a Bearer challenge
// (Docker Hub, for public images too) is asked again with an anonymous
// token, and remembered as one that wants it.
func (c *Client) asClient(ctx context.Context, t Target, req *http.Request, anonymous bool) (*http.Response, error) {
	key := t.Base.String() + "|" + t.Repo
	if anonymous {
		if _, ok := c.anonBearer.Load(key); ok {
			if rt, err := c.anonymous(ctx, t); err == nil {
				return rt.RoundTrip(req)
			}
		}
	}
	resp, err := c.raw(t).RoundTrip(req)
	if err != nil || !anonymous || resp.StatusCode != http.StatusUnauthorized ||
		!strings.HasPrefix(strings.ToLower(resp.Header.Get("WWW-Authenticate")), "bearer ") {
		return resp, err
	}
	rt, terr := c.anonymous(ctx, t)
	if terr != nil {
		return resp, nil // no anonymous token: the plain 401 and its challenge stand
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	c.anonBearer.Store(key, true)
	return rt.RoundTrip(req)
}

// challenge returns a response's WWW-Authenticate challenges as one header
// value, or "" when they are unusable (too long, or not one line).
func challenge(h http.Header) string {
	v := strings.Join(h.Values("WWW-Authenticate"), ", ")
	if len(v) > MaxChallengeLen || strings.ContainsAny(v, "\r\n\x00") {
		return ""
	}
	return v
}

// raw is the plain transport to t's upstream: no handshake, no
// credentials of the node's, no redirects.
func (c *Client) raw(t Target) http.RoundTripper { return schemeOnly{c.base, t.Base} }

// anonymous returns an anonymous transport for t's repository (with an
// anonymous token when the origin wants one), cached like the node's own.
func (c *Client) anonymous(ctx context.Context, t Target) (http.RoundTripper, error) {
	ct, err := c.cachedTransport(ctx, t, "anon", authn.Anonymous)
	return ct.rt, err
}

// clientTransport is the transport for a request made on behalf of a
// client whose own Authorization header is in t.
func (c *Client) clientTransport(t Target) http.RoundTripper {
	return authorizing{rt: c.raw(t), authorization: t.clientAuth}
}

// authorizing sets one Authorization header on every request.
type authorizing struct {
	rt            http.RoundTripper
	authorization string
}

func (a authorizing) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", a.authorization)
	return a.rt.RoundTrip(r)
}

// registryOf is the go-containerregistry registry of t's upstream.
func registryOf(t Target) (name.Registry, error) {
	var opts []name.Option
	if t.Base.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(t.Base.Host, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("%w: registry %q: %w", ErrBadMapping, t.Base.Host, err)
	}
	return reg, nil
}
