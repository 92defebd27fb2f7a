package swarm

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/shoal-dev/shoal/p2p/chunk"
)

func TestPenaltyBox(t *testing.T) {
	var p penalties
	now := time.Now()
	a, b := peer.ID("a"), peer.ID("b")
	p.add(a, time.Minute, now)
	p.add(a, time.Second, now) // a shorter sentence does not shorten a running one
	if !p.has(a, now.Add(30*time.Second)) || p.has(b, now) {
		t.Fatal("sentences")
	}
	if p.has(a, now.Add(2*time.Minute)) {
		t.Fatal("a sentence outlived its end")
	}
	// The box is bounded: a flood of identities evicts the sentences
	// closest to their end.
	for i := range maxPenalties + 10 {
		p.add(peer.ID(fmt.Sprint(i)), time.Hour+time.Duration(i)*time.Second, now)
	}
	if len(p.until) > maxPenalties {
		t.Fatalf("%d sentences kept, cap %d", len(p.until), maxPenalties)
	}
	if p.has("0", now) || !p.has(peer.ID(fmt.Sprint(maxPenalties+9)), now) {
		t.Fatal("the cap evicted the wrong sentence")
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{fmt.Errorf("x: %w", chunk.ErrStalled), reasonStalled},
		{fmt.Errorf("%w: %w", chunk.ErrProtocol, chunk.ErrUnrequested), reasonUnrequested},
		{chunk.ErrUntrustedSigner, reasonBadChunk},
		{chunk.ErrChunkMismatch, reasonGeometry},
		{chunk.ErrMalformed, reasonProtocol},
		{chunk.ErrClosed, ""},
		{errors.New("stream reset"), ""},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
	for _, r := range reasons {
		if hostile(r) == (r == reasonStalled || r == reasonNoHave || r == reasonUnavailable || r == reasonUnreachable) {
			t.Errorf("hostile(%s) = %v", r, hostile(r))
		}
	}
}
