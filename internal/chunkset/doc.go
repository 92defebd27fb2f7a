// Package chunkset is the chunk geometry shoal cuts every blob by, and the
// one type for a set of chunk indexes.
//
// Every part of shoal that deals in chunks uses both: the content store
// (which chunks of a partial blob are on disk and servable), the chunk
// protocol (the HAVE bitmap on the wire, the indexes a session asked for)
// and the swarm scheduler (what each source holds, what this node holds).
// The package is a leaf so that the store, below p2p in the dependency
// order, and p2p share it.
//
// # Geometry
//
// A blob of S bytes is cut into Count(S, C) chunks of C = Size(S) bytes, the
// last one shorter when C does not divide S. C depends on S alone, so every
// node and seeder cuts a blob the same way: DefaultSize (1 MiB) while that
// gives at most TargetChunks (4096) chunks, else the smallest power-of-two
// multiple of DefaultSize that does, capped at MaxSize (64 MiB). The count
// never exceeds MaxChunks, so the largest blob is MaxBlobSize (64 TiB).
// Chunk i covers bytes [i*C, min((i+1)*C, S)) (Bounds).
//
// # Sets
//
// A Set is a fixed-length set of chunk indexes. Its wire form (Bytes,
// FromBytes) is the HAVE bitmap of the chunk protocol: ceil(Len/8) bytes,
// chunk i is bit 7-(i%8) of byte i/8 (most significant bit first), bits past
// Len zero.
package chunkset
