package preheat_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/shoal-dev/shoal/p2p/preheat"
)

// FuzzReadRequest feeds arbitrary bytes to the node's side of the wire: a
// frame read with the REQUEST cap, then the strict request parser. It
// must never panic, never accept a frame over its cap, and anything it
// accepts must validate and survive a write/read round trip.
func FuzzReadRequest(f *testing.F) {
	var good bytes.Buffer
	_ = preheat.WriteFrame(&good, preheat.TypeRequest, request())
	f.Add(good.Bytes())
	f.Add([]byte{1, 0, 0, 0, 2, '{', '}'})
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{4, 0, 0, 0, 0})
	f.Add([]byte(`{"registry":"r","repo":"a","blobs":[{"digest":"sha256:00","size":1}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		typ, body, err := preheat.ReadFrame(bytes.NewReader(in), preheat.TypeRequest)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, preheat.ErrTooLarge) &&
				!errors.Is(err, preheat.ErrUnknownType) && !errors.Is(err, preheat.ErrUnexpectedType) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if typ != preheat.TypeRequest || len(body) > preheat.MaxRequestBody {
			t.Fatalf("accepted %v with %d bytes", typ, len(body))
		}
		req, err := preheat.ParseRequest(body)
		if err != nil {
			if !errors.Is(err, preheat.ErrMalformed) {
				t.Fatalf("parse error without ErrMalformed: %v", err)
			}
			return
		}
		if err := req.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		var out bytes.Buffer
		if err := preheat.WriteFrame(&out, preheat.TypeRequest, req); err != nil {
			return // re-encoding may exceed the cap (escaping); that is refused, not sent
		}
		_, body2, err := preheat.ReadFrame(&out, preheat.TypeRequest)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := preheat.ParseRequest(body2); err != nil {
			t.Fatalf("round trip: %v", err)
		}
	})
}
