package chunk

import "errors"

// Sentinel errors; every error the package returns wraps one of them (or is
// a transport or context error), so callers match with errors.Is.
var (
	// ErrTooLarge: the blob exceeds chunkset.MaxBlobSize.
	ErrTooLarge = errors.New("blob too large for chunking")
	// ErrBadGeometry: a chunk size that is not chunkset.Size(blob size), or a
	// negative blob size.
	ErrBadGeometry = errors.New("bad chunk geometry")
	// ErrBadRecord: a chunk record with an invalid digest, geometry or index,
	// or a signed record that does not decode.
	ErrBadRecord = errors.New("bad chunk record")
	// ErrUntrustedSigner: the record's signer is not in the trust set.
	ErrUntrustedSigner = errors.New("untrusted chunk signer")
	// ErrBadSignature: the signature does not verify, or the signer's peer
	// ID does not embed its public key.
	ErrBadSignature = errors.New("bad chunk signature")
	// ErrChunkMismatch: chunk bytes or a record that do not match what they
	// claim or what was asked.
	ErrChunkMismatch = errors.New("chunk does not match its record")

	// ErrFrameTooLarge: a frame longer than its type's cap.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrUnknownType: a frame type this version does not define.
	ErrUnknownType = errors.New("unknown frame type")
	// ErrUnexpectedType: a frame type that may not arrive here and now.
	ErrUnexpectedType = errors.New("unexpected frame type")
	// ErrMalformed: a frame body (or a message to be written) that does not
	// follow its layout.
	ErrMalformed = errors.New("malformed frame")
	// ErrProtocol: the peer broke the message flow (e.g. a CHUNK for an
	// index never requested, a full request queue).
	ErrProtocol = errors.New("chunk protocol violation")
	// ErrPipelineFull: Session.Request with MaxInFlight requests unanswered.
	ErrPipelineFull = errors.New("too many chunk requests in flight")
	// ErrClosed: the session was closed or reset.
	ErrClosed = errors.New("chunk session closed")
	// ErrUnrequested: a CHUNK or ERROR for a chunk with no request
	// outstanding (it also wraps ErrProtocol).
	ErrUnrequested = errors.New("answer to no outstanding request")
	// ErrUnconfirmed: Session.Request with a request already in flight
	// before the blob's size was confirmed (Session.Confirm).
	ErrUnconfirmed = errors.New("blob size not confirmed")
	// ErrStalled: a session with requests in flight received no answer
	// within its answer deadline (ClientOptions.MinRate, Slack).
	ErrStalled = errors.New("no chunk answer in time")

	// ErrNotFound is ERROR code NOT_FOUND: the blob is unknown.
	ErrNotFound = errors.New("blob not found")
	// ErrUnavailable is ERROR code UNAVAILABLE: not held yet, or the origin
	// is failing.
	ErrUnavailable = errors.New("chunk unavailable")
	// ErrBusy is ERROR code BUSY: the server is overloaded.
	ErrBusy = errors.New("server busy")
	// ErrBadRequest is ERROR code BAD_REQUEST: a protocol violation.
	ErrBadRequest = errors.New("bad request")
	// ErrInternal is ERROR code INTERNAL.
	ErrInternal = errors.New("internal server error")
)
