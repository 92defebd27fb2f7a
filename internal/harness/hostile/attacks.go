package hostile

import (
	"encoding/binary"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/shoal-dev/shoal/internal/chunkset"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// Lie answers every stream with have (any geometry, any bitmap), then reads
// and ignores the victim's requests until hold passes: a provider whose
// HAVE is a lie and who never delivers.
func Lie(hold time.Duration, have chunk.Have) Behavior {
	return Script(hold, Frame(have))
}

// HugeHave is a HAVE for the largest blob the protocol carries, held
// complete: the geometry that makes a naive client allocate the most.
func HugeHave() chunk.Have {
	bm := chunkset.New(chunkset.MaxChunks)
	for i := range chunkset.MaxChunks {
		bm.Set(i)
	}
	return chunk.Have{BlobSize: chunkset.MaxBlobSize, ChunkSize: chunkset.MaxSize, Bitmap: bm, Complete: true}
}

// ChunkHeader writes the head of a CHUNK frame for chunk i of the stream's
// blob whose record (signed by the peer's own, untrusted key) claims a
// blob of blobSize bytes, so the frame announces that chunk's full payload;
// the caller then writes as much of the payload as it likes.
func (p *Peer) ChunkHeader(s network.Stream, open chunk.Open, blobSize int64, i int) (payload int64, err error) {
	cs := chunkset.Size(blobSize)
	signed, err := chunk.Sign(p.Key, chunk.Record{Kind: chunk.Verified, Digest: open.Digest, BlobSize: blobSize, ChunkSize: cs, Index: i})
	if err != nil {
		return 0, err
	}
	rec, err := chunk.MarshalSigned(signed)
	if err != nil {
		return 0, err
	}
	_, payload = chunkset.Bounds(blobSize, cs, i)
	body := binary.BigEndian.AppendUint32(nil, uint32(i))
	body = binary.BigEndian.AppendUint16(body, uint16(len(rec)))
	body = append(body, rec...)
	hdr := binary.AppendUvarint([]byte{byte(chunk.TypeChunk)}, uint64(len(body))+uint64(payload))
	_, err = s.Write(append(hdr, body...))
	return payload, err
}

// trickle writes n garbage bytes, 16 KiB at a time every interval, and
// stops early when hold passes or the victim goes away.
func trickle(s network.Stream, n int64, interval, hold time.Duration) {
	buf := make([]byte, 16<<10)
	end := time.Now().Add(hold)
	for n > 0 && time.Now().Before(end) {
		k := min(int64(len(buf)), n)
		_ = s.SetWriteDeadline(end)
		if _, err := s.Write(buf[:k]); err != nil {
			return
		}
		n -= k
		time.Sleep(interval)
	}
}

// Bloat answers HAVE for the largest blob (HugeHave), then at once sends an
// unrequested CHUNK whose header announces a 64 MiB payload and trickles
// garbage into it until hold passes: a client that allocates a payload
// before it checks that the chunk was asked for holds 64 MiB per stream.
func (p *Peer) Bloat(hold time.Duration) Behavior {
	return func(s network.Stream, open chunk.Open) {
		if err := Send(s, HugeHave()); err != nil {
			return
		}
		go Drain(s)
		n, err := p.ChunkHeader(s, open, chunkset.MaxBlobSize, 0)
		if err != nil {
			return
		}
		trickle(s, n, 50*time.Millisecond, hold)
	}
}

// BloatOnRequest answers HAVE for the largest blob, then answers every
// REQUEST with a CHUNK that announces a 64 MiB payload under an untrusted
// record and trickles garbage into it until hold passes.
func (p *Peer) BloatOnRequest(hold time.Duration) Behavior {
	return func(s network.Stream, open chunk.Open) {
		if err := Send(s, HugeHave()); err != nil {
			return
		}
		r := chunk.NewReader(s, nil)
		r.Allow(chunk.TypeRequest, chunk.TypeCancel, chunk.TypeProgress)
		for {
			_ = s.SetReadDeadline(time.Now().Add(hold))
			m, err := r.Next()
			if err != nil {
				return
			}
			req, ok := m.(chunk.Request)
			if !ok {
				continue
			}
			go Drain(s)
			n, err := p.ChunkHeader(s, open, chunkset.MaxBlobSize, req.Index)
			if err != nil {
				return
			}
			trickle(s, n, 50*time.Millisecond, hold)
			return
		}
	}
}
