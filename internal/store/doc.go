// Package store is shoal's content-addressed blob store on disk.
//
// Layout under the data directory (the daemon owns it; a lock file keeps a
// second process out):
//
//	blobs/<alg>/<hex>      complete content, verified against its digest
//	meta/<alg>/<hex>       media type of content that needs one (manifests)
//	partial/<alg>/<hex>    bytes of a download in progress (a prefix)
//	partial/<alg>/<hex>.size  the expected total size of that download
//	tmp/                   scratch files, removed on open
//
// A blob becomes complete only by an atomic rename after its digest matched
// and the file was synced, so a crash or a kill never leaves a corrupt entry
// under blobs/. A partial download survives a restart: the next fetch of the
// same digest re-hashes the prefix it finds and resumes after it.
//
// A blob is cut into chunks by chunkset's geometry (chunkset.Size), the one
// every node and seeder uses: a partial blob records which chunks are on
// disk (a chunkset.Set) and, in its chunk log, the signed records that make
// them servable to peers (ChunkView) before the whole blob is there.
//
// Concurrent fetches of one missing digest share a single Download; every
// caller gets a Stream that follows the bytes as they land on disk, so the
// first bytes reach clients long before the blob is complete and memory
// stays flat whatever the blob size. The last byte of a blob is held back
// from streams until the whole digest has been verified: a client can never
// receive a corrupt blob as complete. A range other than the whole blob is
// answered only from verified bytes: chunks whose record the store's
// RecordCheck accepts (a trusted seeder's VERIFIED record), or the blob once
// its digest matched.
//
// What downloads may spend is bounded (limits.go, quota.go): a cap on
// downloads in flight (ErrBusy past it), a grace period after which a
// download no Stream holds any more is stopped (ErrAbandoned), no partial
// file left behind by a download that failed or stopped without a whole
// chunk, old partials deleted at Open, and a byte quota that counts
// complete content and partial downloads (a download reserves its whole
// size before writing; ErrQuotaExceeded when it cannot fit).
package store
