package swarm

import (
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Why a source was dropped: the reason label of shoal_peer_rejections_total.
const (
	// A lie about the blob's size that the digest itself disproves (a
	// HAVE of 0 bytes for a non-empty blob).
	reasonUntrustedSize = "untrusted_size"
	// A HAVE (or a record) whose geometry is not the trusted one.
	reasonGeometry = "geometry"
	// A CHUNK or ERROR for a chunk with no request outstanding.
	reasonUnrequested = "unrequested_chunk"
	// A chunk that failed verification (signature, signer, hash).
	reasonBadChunk = "bad_chunk"
	// The sender of chunks of a blob that failed its digest.
	reasonDigest = "digest_mismatch"
	// Requests in flight and no answer within the answer deadline.
	reasonStalled = "stalled"
	// No HAVE in time, a HAVE holding nothing, NOT_FOUND.
	reasonNoHave = "no_have"
	// ERRORs for the chunks asked and nothing delivered.
	reasonUnavailable = "unavailable"
	// Any other break of the protocol (malformed, unexpected frames).
	reasonProtocol = "protocol"
	// The stream could not be opened (a provider that is gone).
	reasonUnreachable = "unreachable"
)

var reasons = []string{reasonUntrustedSize, reasonGeometry, reasonUnrequested, reasonBadChunk, reasonDigest,
	reasonStalled, reasonNoHave, reasonUnavailable, reasonProtocol, reasonUnreachable}

// hostile reports whether a reason shows intent or corruption (a long
// sentence) rather than a peer that merely does not deliver (a short one).
func hostile(reason string) bool {
	switch reason {
	case reasonStalled, reasonNoHave, reasonUnavailable, reasonUnreachable:
		return false
	}
	return true
}

// classify maps the error that ended a session to a reason ("" for an
// ordinary end: the server closed, the session was closed, a reset).
func classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, chunk.ErrStalled):
		return reasonStalled
	case errors.Is(err, chunk.ErrUnrequested):
		return reasonUnrequested
	case errors.Is(err, chunk.ErrUntrustedSigner), errors.Is(err, chunk.ErrBadSignature), errors.Is(err, chunk.ErrBadRecord):
		return reasonBadChunk
	case errors.Is(err, chunk.ErrChunkMismatch), errors.Is(err, chunk.ErrBadGeometry), errors.Is(err, chunk.ErrTooLarge):
		return reasonGeometry
	case errors.Is(err, chunk.ErrProtocol), errors.Is(err, chunk.ErrMalformed), errors.Is(err, chunk.ErrUnknownType),
		errors.Is(err, chunk.ErrUnexpectedType), errors.Is(err, chunk.ErrFrameTooLarge):
		return reasonProtocol
	}
	return ""
}

// maxPenalties bounds the penalty box: a flood of identities cannot grow
// it without bound (the sentences closest to their end go first).
const maxPenalties = 4096

// penalties is a node's penalty box: peers not dialed for any blob until
// their sentence ends. Trusted seeders never enter it.
type penalties struct {
	mu    sync.Mutex
	until map[peer.ID]time.Time
}

// add sentences id until now+d (a longer sentence already running stays).
func (p *penalties) add(id peer.ID, d time.Duration, now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.until == nil {
		p.until = map[peer.ID]time.Time{}
	}
	if t, ok := p.until[id]; ok && t.After(now.Add(d)) {
		return
	}
	if len(p.until) >= maxPenalties {
		p.pruneLocked(now)
	}
	p.until[id] = now.Add(d)
}

// pruneLocked drops ended sentences and, if the box is still full, the
// one closest to its end.
func (p *penalties) pruneLocked(now time.Time) {
	var first peer.ID
	var firstAt time.Time
	for id, t := range p.until {
		if !t.After(now) {
			delete(p.until, id)
			continue
		}
		if firstAt.IsZero() || t.Before(firstAt) {
			first, firstAt = id, t
		}
	}
	if len(p.until) >= maxPenalties {
		delete(p.until, first)
	}
}

// has reports whether id is serving a sentence.
func (p *penalties) has(id peer.ID, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.until[id]
	if ok && !t.After(now) {
		delete(p.until, id)
		return false
	}
	return ok
}
