// Package chunk is shoal's chunk protocol: how a peer asks another peer (or a
// seeder) which chunks of a blob it holds and fetches them, and how a seeder
// signs chunk hashes so that any peer can relay them. This comment is the
// specification; the code follows it.
//
// # Chunk geometry
//
// The geometry is internal/chunkset's, shared with the content store. A blob
// of S bytes is cut into chunkset.Count(S, C) chunks of C = chunkset.Size(S)
// bytes each, the last one shorter when C does not divide S. C is a function
// of S alone, so every peer and seeder cuts a blob the same way:
//
//   - C = 1 MiB (chunkset.DefaultSize) while S <= 4096 * 1 MiB (4 GiB);
//   - above that, the smallest power-of-two multiple of 1 MiB that keeps the
//     count at or below 4096 (chunkset.TargetChunks), capped at 64 MiB
//     (chunkset.MaxSize);
//   - at 64 MiB the count may exceed 4096, up to chunkset.MaxChunks = 2^20,
//     so the largest blob is chunkset.MaxBlobSize = 64 TiB; a bigger one is
//     refused with ErrTooLarge (CheckGeometry).
//
// Chunk i covers bytes [i*C, min((i+1)*C, S)). An empty blob has no chunks.
//
// # Chunk signatures
//
// A seeder that holds a blob (or a verified range of it) hashes each chunk
// with SHA-256 (whatever the blob's digest algorithm) and signs a Record with
// its libp2p identity key. The signed message is exactly SigningBytes:
//
//	"shoal-chunk-sig/v1\x00"  19 bytes, domain separation
//	u8  A                     length of the digest algorithm, 1..255
//	A   algorithm             ASCII, e.g. "sha256"
//	u8  D                     length of the raw digest, 1..255
//	D   digest                raw digest bytes (not hex), e.g. 32 for sha256
//	u64 blob size             big-endian
//	u64 chunk size            big-endian, must equal chunkset.Size(blob size)
//	u32 index                 big-endian, 0 <= index < Count
//	32  hash                  SHA-256 of the chunk's bytes
//
// Every field is fixed-width or length-prefixed, so two different records
// never share signing bytes, and the prefix keeps these signatures apart from
// anything else the key signs. A record is valid only if its digest parses,
// its geometry is canonical (chunk size = chunkset.Size(blob size), blob
// size <= chunkset.MaxBlobSize) and its index is in range (ErrBadRecord
// otherwise).
//
// The signer is named by its peer ID. A verifier (Signed.Verify) accepts a
// signature only if the signer is in its trust set (ErrUntrustedSigner) and
// the signature checks out under the public key embedded in the peer ID
// (Ed25519 and secp256k1 IDs embed it; an ID that does not, or a wrong
// signature, is ErrBadSignature). Signed.Check also hashes the chunk bytes and
// compares them and their length with the record (ErrChunkMismatch). Signed
// records can be relayed by any peer: trust comes from the signature, never
// from the peer that sent it.
//
// MarshalSigned is the compact form of a signed record, used inside CHUNK
// frames and stored on disk beside a partial blob:
//
//	u8  version = 1
//	u8  A, A bytes algorithm; u8 D, D bytes raw digest
//	u64 blob size; u64 chunk size; u32 index; 32 bytes hash
//	u8  P, P bytes signer peer ID (1..MaxSignerLen)
//	u16 G, G bytes signature (1..MaxSigLen)
//
// UnmarshalSigned rejects trailing bytes, unknown versions and invalid
// records; it does not verify the signature.
//
// # Protocol
//
// Protocol ID: /shoal/chunks/2.0.0 (ProtocolID), one libp2p stream per
// (client, blob). An incompatible change gets a new major version: 2.0.0
// cut blobs into 1 MiB chunks (1.0.0: 4 MiB; a chunk relays a hop four
// times sooner) and lets a server answer out of order (upload slots).
//
// # Framing
//
// Every frame is
//
//	u8      type
//	uvarint body length (minimal encoding; at most the type's cap)
//	body    that many bytes
//
// Integers in bodies are big-endian. A receiver checks the length against the
// type's cap before it reads or allocates the body (ErrFrameTooLarge). An
// unknown type is ErrUnknownType; a known type that may not travel in that
// direction or at that point is ErrUnexpectedType; a body that does not
// decode exactly (short, trailing bytes, out-of-range values) is
// ErrMalformed.
//
// # Messages
//
// OPEN (0x01, client -> server, first frame only), cap 1794 bytes:
//
//	u8 A, A bytes digest algorithm; u8 D, D bytes raw digest
//	u8 R, R bytes registry (<= 255)  hint: origin registry host, may be empty
//	u16 P, P bytes repository (<= 1024)  hint: repository name, may be empty
//
// The digest must be a valid OCI digest (sha256 or sha512). The hints tell a
// seeder where the blob lives at the origin; they are printable ASCII
// (0x21-0x7e). They are not trusted for anything but that.
//
// HAVE (0x02, server -> client, exactly once, in answer to OPEN), cap
// 17 + chunkset.MaxChunks/8 bytes:
//
//	u64 blob size; u64 chunk size (= chunkset.Size(blob size))
//	u8  flags: bit 0 = complete (the server holds the whole blob, verified
//	    against its digest); other bits zero; complete implies a full bitmap
//	bitmap: ceil(Count/8) bytes, chunk i is bit 7-(i%8) of byte i/8 (most
//	    significant bit first); bits past Count are zero (the wire form of
//	    a chunkset.Set)
//
// A server that does not know the blob's size yet (a seeder still asking the
// origin) waits until it does, up to its HAVE deadline, and otherwise answers
// ERROR(UNAVAILABLE, -1).
//
// HAVE_UPDATE (0x03, server -> client, any time after HAVE), cap 65536 bytes:
//
//	u32 index, repeated 1..MaxUpdate (16384) times (body length = 4k)
//
// Chunks the server gained since HAVE (or the last HAVE_UPDATE), so a peer
// shares what it has while it is still downloading. Indexes are < Count.
// Receivers treat them idempotently. A server announces only chunks it can
// serve and never withdraws an announcement; a chunk it loses later (e.g.
// evicted) is answered with ERROR(UNAVAILABLE, i).
//
// REQUEST (0x04, client -> server), body exactly 4 bytes: u32 index.
//
// CANCEL (0x05, client -> server), body exactly 4 bytes: u32 index. Drops the
// oldest still-queued REQUEST for that index, silently; if none is queued
// (it is being sent or was answered) CANCEL does nothing, so a client must
// still accept the answer. Used in the endgame when another peer won the race.
//
// CHUNK (0x06, server -> client, answers a REQUEST), cap MaxFrame =
// chunkset.MaxSize + 64 KiB:
//
//	u32 index
//	u16 L, L bytes signed record (MarshalSigned, L <= MaxSignedLen); its
//	    index equals the frame's
//	payload: the rest, exactly the chunk's length per the record's geometry
//
// ERROR (0x07, server -> client), cap 1029 bytes:
//
//	u8  code: 1 NOT_FOUND (unknown blob), 2 UNAVAILABLE (not held yet, the
//	    origin is failing, or the size is not known in time), 3 BUSY (try
//	    later or elsewhere), 4 BAD_REQUEST (protocol violation; a reset
//	    follows), 5 INTERNAL
//	u32 index: the chunk this answers, or 0xFFFFFFFF (-1) for the whole blob
//	message: the rest, UTF-8, <= 1024 bytes, for humans only
//
// All chunk indexes on the wire are < chunkset.MaxChunks; HAVE_UPDATE,
// REQUEST, CANCEL, CHUNK and ERROR indexes must also be < Count for the
// stream's blob.
//
// # Message flow
//
//	client                              server
//	OPEN                 ------------>
//	                     <------------  HAVE  | ERROR(-1), then close
//	REQUEST i, REQUEST j ------------>
//	                     <------------  HAVE_UPDATE k..   (any time)
//	CANCEL j             ------------>
//	                     <------------  CHUNK i | ERROR(code, i)
//	close write          ------------>
//	                     <------------  answers still queued, then close
//
// The client may pipeline REQUESTs. The server answers them one at a time,
// each with exactly one CHUNK, or ERROR(code, index) when
// it cannot serve that chunk (UNAVAILABLE: not held); such an ERROR does not
// end the stream. A REQUEST dropped by CANCEL gets no answer. The server
// queues at most MaxQueued (default 16) REQUESTs that it has received and not
// yet begun to answer; one more is a protocol violation. A client that keeps
// at most MaxQueued requests unanswered, not counting the cancelled ones, never
// overflows the queue, because the server reads frames in order.
//
// Answers need not follow the order of the REQUESTs: a server bounds the
// CHUNKs it sends at once across all its streams (upload slots) and, when a
// slot frees, answers first the queued request for the chunk it has sent the
// fewest times, less one per 10 seconds the request has waited (oldest first
// among equals): a seeder sends fresh chunks before repeats, and a repeat is
// delayed, never starved. A client matches answers by index.
//
// The client half-closes its side when it has nothing more to request; the
// server then answers what is queued and closes. ERROR(-1) after HAVE means
// the server gave up on the blob; it closes the stream after it.
//
// # Errors and resets
//
// A protocol violation (a malformed, oversized, unknown or unexpected frame,
// an index out of range, a second OPEN, a full request queue, a CHUNK or
// ERROR for an index never requested) ends the stream with a reset. The
// server first tries to send ERROR(BAD_REQUEST) when no other write is in
// progress; that is a courtesy, not a guarantee. A reset is also how either
// side abandons a stream (deadline, shutdown).
//
// # Deadlines (server defaults; ServerOptions)
//
//   - OPEN must arrive within OpenTimeout (10 s) of the stream opening.
//   - HAVE must be ready (blob opened, size known) within HaveTimeout
//     (30 s) of OPEN, else ERROR(UNAVAILABLE, -1).
//   - A stream with no complete frame in either direction for IdleTimeout
//     (60 s) is reset; the time a frame spends being written does not count
//     as idle.
//   - Each frame must be written within WriteTimeout (60 s), else reset.
//
// Client defaults (ClientOptions): HAVE must arrive within HaveTimeout (45 s,
// longer than the server's so the server's ERROR wins), each OPEN, REQUEST or
// CANCEL must be written within WriteTimeout (10 s). After HAVE, while
// requests are in flight, each answer (CHUNK or ERROR; a HAVE_UPDATE does
// not count) must arrive within chunk size / MinRate + Slack (256 KiB/s and
// 10 s: 14 s for a 1 MiB chunk) of the previous answer or of the first
// request, and a CHUNK's payload within that of its header; else the
// session is reset (ErrStalled). With nothing in flight the client waits as
// long as the caller's context says.
//
// # Client rules
//
// These are how this package's client treats a server it does not trust;
// they change nothing on the wire.
//
//   - A HAVE is a claim. With ClientOptions.Trust set, the session takes the
//     blob's size only from its caller (Session.Confirm), who learned it
//     from a trusted source: a trusted seeder's HAVE (the stream is
//     authenticated by the seeder's peer ID), a record signed by a trusted
//     seeder, or the origin. A HAVE of another geometry fails Confirm
//     (ErrBadGeometry): that server alone is dropped.
//   - Before Confirm the client may have one REQUEST in flight, a size
//     probe: chunk 0 exists in every non-empty blob, and any chunk a
//     truthful HAVE lists is in range. The answer is admitted only under a
//     record a trusted signer made for this digest; its geometry gives the
//     payload's length.
//   - A CHUNK is checked from its header, before its payload is read or a
//     buffer allocated (Reader.CheckChunk): its index must have a REQUEST
//     outstanding (one answer per REQUEST; ErrUnrequested), its record must
//     be for this digest at the confirmed geometry (ErrChunkMismatch), and
//     its payload exactly that chunk's length. Only then is a buffer of that
//     length taken. So the memory a server can make the client spend is one
//     trusted chunk per session, whatever it claims.
//   - An ERROR for a chunk needs an outstanding REQUEST too; ERROR(-1) may
//     come at any time.
//
// # Code layout
//
// Frames and their codec are WriteFrame and Reader. Stream plumbing (deadlines,
// caps, write serialization, reset and close) is Serve/Handler on the server,
// over the Blobs and Blob interfaces that the store or the seeder implement,
// and Dial/NewSession/Session on the client (NewSession runs over any Stream,
// e.g. a net.Pipe in tests). The client checks each CHUNK's header before
// its payload (see Client rules) but does not verify chunk contents: the
// caller does, with VerifyChunk and its trust set, before a byte is stored,
// served or handed on. Package chunktest holds an in-memory Blobs and the
// conformance suite every Blobs implementation must pass.
package chunk
