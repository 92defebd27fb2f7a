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
// A seeder hashes each chunk with SHA-256 (whatever the blob's digest
// algorithm) and signs a Record with its libp2p identity key. A record has
// a kind, which is part of what is signed:
//
//   - STREAMED (1): signed as the chunk arrived from the origin, before the
//     seeder could check the blob's digest. It says "these are the bytes the
//     origin sent as chunk i of X", not "these are X's bytes". It carries a
//     NotAfter (the seeder signs it for StreamedTTL, 1 h, and re-signs it
//     while its download goes on); a verifier refuses it after NotAfter
//     (ErrExpiredRecord) and refuses a NotAfter more than MaxStreamedTTL
//     (2 h) ahead of its own clock (ErrBadRecord). A node may store, relay
//     and stream in order such a chunk, but it is provisional: only the
//     node's own check of the whole digest makes its bytes the blob's, and
//     it never answers a Range.
//   - VERIFIED (2): signed only after the whole blob matched its digest at
//     the seeder, over the chunk hashes taken from the very bytes the digest
//     check read. It has no expiry (content under a digest never changes).
//     When its download completes the seeder re-signs every chunk VERIFIED
//     and these records replace the STREAMED ones at once; a download whose
//     digest does not match is deleted with its records and gets none. A
//     node prefers VERIFIED records, and once it holds one for a blob it
//     takes no STREAMED chunk of that blob any more.
//
// The signed message is exactly SigningBytes:
//
//	"shoal-chunk-sig/v2\x00"  19 bytes, domain separation
//	u8  kind                  1 STREAMED, 2 VERIFIED
//	u8  A                     length of the digest algorithm, 1..255
//	A   algorithm             ASCII, e.g. "sha256"
//	u8  D                     length of the raw digest, 1..255
//	D   digest                raw digest bytes (not hex), e.g. 32 for sha256
//	u64 blob size             big-endian
//	u64 chunk size            big-endian, must equal chunkset.Size(blob size)
//	u32 index                 big-endian, 0 <= index < Count
//	32  hash                  SHA-256 of the chunk's bytes
//	u64 not after             big-endian Unix seconds; STREAMED: 1..253402300799
//	                          (the end of year 9999); VERIFIED: 0
//
// Every field is fixed-width or length-prefixed, so two different records
// never share signing bytes, and the prefix keeps these signatures apart from
// anything else the key signs, including version 1 signatures (protocol
// 2.0.0), which had no kind: none of them verifies as a record of this
// version. A record is valid only if its kind is known and its expiry
// matches the kind, its digest parses, its geometry is canonical (chunk
// size = chunkset.Size(blob size), blob size <= chunkset.MaxBlobSize) and its
// index is in range (ErrBadRecord otherwise).
//
// The signer is named by its peer ID. A verifier (Signed.VerifyAt, which
// takes the clock; Verify uses time.Now) accepts a signature only if the
// signer is in its trust set (ErrUntrustedSigner), the signature checks out
// under the public key embedded in the peer ID (Ed25519 and secp256k1 IDs
// embed it; an ID that does not, or a wrong signature, is ErrBadSignature)
// and a STREAMED record is within its validity. Signed.CheckAt also hashes
// the chunk bytes and compares them and their length with the record
// (ErrChunkMismatch). Signed records can be relayed by any peer: trust comes
// from the signature, never from the peer that sent it. The trust argument
// is in docs/SECURITY.md ("Chunk records: the trust argument").
//
// MarshalSigned is the compact form of a signed record, used inside CHUNK
// frames and stored on disk beside a blob:
//
//	u8  version = 2
//	u8  kind
//	u8  A, A bytes algorithm; u8 D, D bytes raw digest
//	u64 blob size; u64 chunk size; u32 index; 32 bytes hash
//	u64 not after (as in SigningBytes)
//	u8  P, P bytes signer peer ID (1..MaxSignerLen)
//	u16 G, G bytes signature (1..MaxSigLen)
//
// UnmarshalSigned rejects trailing bytes, unknown versions (version 1 is
// the 2.0.0 record) and invalid records; it checks neither the signature
// nor the clock.
//
// # Protocol
//
// Protocol ID: /shoal/chunks/3.2.0 (ProtocolID), one libp2p stream per
// (client, blob). 3.1.0 (ProtocolV31) added one frame to 3.0.0
// (ProtocolV30): HOLDER, a seeder's hint; 3.2.0 adds PROGRESS, the
// client's count of the chunks it holds. A server serves all three IDs
// (Register); a client proposes 3.2.0, then 3.1.0, then 3.0.0
// (Protocols), and takes what the server picks. A stream of an older
// version carries only that version's frames: no PROGRESS on a 3.1.0
// stream, neither PROGRESS nor HOLDER on a 3.0.0 one, and a node that only
// knows an older version interoperates. A compatible addition gets a new
// minor version, negotiated this way. An incompatible change
// gets a new major version: 3.0.0
// signs records with a kind (STREAMED, expiring, or VERIFIED) in a new
// signing domain and record encoding, so no 2.0.0 record, signed before
// the seeder checked the digest and valid for ever, is accepted; 2.0.0 cut
// blobs into 1 MiB chunks (1.0.0: 4 MiB; a chunk relays a hop four times
// sooner) and lets a server answer out of order (upload slots).
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
// (0x21-0x7e). They are not trusted for anything but that: a seeder fetches
// only from the upstreams in its own configuration and answers an OPEN that
// names another registry with ERROR(NOT_FOUND), without connecting to it.
// A seeder also bounds the origin fetches OPENs may start, in total and per
// peer (ERROR(BUSY) past them), and answers NOT_FOUND for a while for a
// digest the origin just did not have or served wrong.
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
// evicted, or its STREAMED record expired) is answered with
// ERROR(UNAVAILABLE, i).
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
// HOLDER (0x08, server -> client, any time after HAVE, 3.1.0 streams and
// later),
// cap 2194 bytes:
//
//	u8  P, P bytes peer ID (1..MaxHolderIDLen = 128; a valid multihash ID)
//	u8  N, 0..MaxHolderAddrs (8) addresses, each:
//	    u16 L, L bytes binary multiaddr (1..MaxHolderAddrLen = 256)
//
// Names a peer that began to hold the stream's blob, with addresses to
// reach it. A seeder sends it (ServerOptions.Holders) when it wrote a
// client's first CHUNK of a blob: it names that client, once per stream, to
// up to DefaultHolderFanout (16) other 3.1.0 streams of that blob, picked
// at random, never to the client's own. The named peer may still be
// receiving that chunk when its name arrives. A HOLDER is a hint, not a
// claim about any chunk: the peer named is as untrusted as any DHT
// provider. A server whose mailbox for a stream is full (16 HOLDERs not yet
// written) drops new ones. A client takes HOLDER only from a server it
// trusts to name holders (ClientOptions.Holders: a trusted seeder) on a
// 3.1.0 stream; from anyone else it is ErrUnexpectedType, a protocol
// violation that resets the stream.
//
// PROGRESS (0x09, client -> server, any time after HAVE, 3.2.0 streams
// only), body exactly 4 bytes: u32 held, 0..Count.
//
// How many chunks of the blob the client holds; it sends a new one when
// the count changed, before its next REQUEST. A count above the blob's
// chunks is a protocol violation (reset); on an older stream the frame is
// ErrUnexpectedType. A node's server weighs it in its upload order (see
// Upload order, ServerOptions.ProgressWeight); a seeder's ignores it. It
// is a claim the server cannot check, so it can only make a client wait
// longer: a client that sent none counts as holding nothing, and one that
// lies low is served as one that holds nothing, within its fair share.
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
//	PROGRESS n           ------------>  (3.2.0, when it changed)
//	CANCEL j             ------------>
//	                     <------------  CHUNK i | ERROR(code, i)
//	                     <------------  HOLDER   (3.1.0, a seeder, any time)
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
// Upload order. Answers need not follow the order of the REQUESTs: a
// server bounds the CHUNKs it sends at once across all its streams (upload
// slots: a node's default 4, a seeder's 2, plus 2 that only a chunk not
// sent yet may take) and, when a slot frees, answers first the queued
// request for the chunk it has sent the fewest times, less one per 10
// seconds the request has waited (oldest first among equals): a seeder
// sends fresh chunks before repeats, and a repeat is delayed, never
// starved. A node's server adds, per stream, ProgressWeight (default 10)
// copies times the share of the blob the client's last PROGRESS says it
// holds (in 1/1024 of a copy, rounded down), so among equals the
// client furthest behind is sent to first. A client matches answers by
// index.
//
// Slots are shared fairly between peers: while other peers wait for a slot,
// a peer that holds its fair share (the slots divided by the peers holding
// or waiting for one, rounded up) waits too; a peer alone may use every
// slot. A slot is for sending, not for waiting on a reader: see Deadlines.
//
// The client half-closes its side when it has nothing more to request; the
// server then answers what is queued and closes. ERROR(-1) after HAVE means
// the server gave up on the blob; it is the stream's last frame (answers
// still queued are dropped, not sent after it) and the server closes the
// stream after it.
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
//     as idle. Both read deadlines are absolute per frame: a peer that sends
//     a frame a byte at a time is reset as if it sent nothing.
//   - Each frame must be written within WriteTimeout (5 s) plus, for a
//     CHUNK, its payload's length at MinWriteRate (1 MiB/s): 6 s for a
//     1 MiB chunk, 69 s for a 64 MiB one. Past it the stream is reset. An
//     honest reader that is slower than that (less than 1 MiB/s for one
//     chunk) is too slow to relay anything anyway; operators on slower
//     links lower MinWriteRate.
//   - A CHUNK is written in 128 KiB pieces. A piece that makes no progress
//     for StallTimeout (1 s) gives its upload slot to other streams: the
//     write waits "parked" for the reader, and takes a slot again (ahead
//     of new answers) before its next piece. A parked write keeps its chunk
//     buffer, so parking is bounded: at most one parked write per slot per
//     peer and 8 per slot in all (2 and 16 with the default 2 slots); a
//     write that stalls with no room to park is reset at once. A peer with
//     its cap of parked writes gets no new slot until one moves, and a peer
//     whose stalled write was reset gets none for 15 s. So a reader that
//     stops reading holds a slot for at most a second.
//
// # Server limits (LimitOptions; one Limits shared by a host's streams)
//
//   - at most MaxPeerStreams (128) streams per peer and MaxStreams (4096)
//     in all, counted from the moment a stream opens: a stream over either
//     cap is answered ERROR(BUSY, -1) before its OPEN is read, then closed;
//   - at most MaxPeerRequests (256) REQUESTs queued by one peer over all
//     its streams (besides MaxQueued per stream): a REQUEST past it is
//     answered ERROR(BUSY, index) at once, without an upload slot, and is
//     not queued. An honest client keeps a few requests in flight per peer
//     and never meets it.
//
// Every refusal and reset on the server's initiative is counted in
// shoal_chunk_server_rejections_total{reason}: too_many_streams,
// too_many_streams_total, too_many_requests, slow_reader (a write deadline
// passed, or a stall with no room to park), open_timeout, idle,
// bad_request (a protocol violation).
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
// caps, write serialization, reset and close) is Serve/Handler on the server
// (server.go, serverwrite.go; the request queue in queue.go, upload slots in
// uploads.go, caps in limits.go), over the Blobs and Blob interfaces that
// the store or the seeder implement (Blobs.Open's context names the asking
// peer: RemotePeer), and Dial/NewSession/Session on the client (NewSession
// runs over any Stream, e.g. a net.Pipe in tests). The client checks each
// CHUNK's header before its payload (see Client rules) but does not verify
// chunk contents: the
// caller does, with VerifyChunk and its trust set, before a byte is stored,
// served or handed on. Package chunktest holds an in-memory Blobs and the
// conformance suite every Blobs implementation must pass.
package chunk
