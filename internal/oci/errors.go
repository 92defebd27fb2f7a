package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is an OCI distribution error code.
type Code string

// Error codes from the OCI distribution spec (and RANGE_INVALID, which
// distribution/registry uses for bad Range headers).
const (
	CodeBlobUnknown      Code = "BLOB_UNKNOWN"
	CodeDigestInvalid    Code = "DIGEST_INVALID"
	CodeManifestUnknown  Code = "MANIFEST_UNKNOWN"
	CodeManifestInvalid  Code = "MANIFEST_INVALID"
	CodeNameInvalid      Code = "NAME_INVALID"
	CodeNameUnknown      Code = "NAME_UNKNOWN"
	CodeUnauthorized     Code = "UNAUTHORIZED"
	CodeDenied           Code = "DENIED"
	CodeUnsupported      Code = "UNSUPPORTED"
	CodeTooManyRequests  Code = "TOOMANYREQUESTS"
	CodeRangeInvalid     Code = "RANGE_INVALID"
	CodeUnavailable      Code = "UNAVAILABLE"
	CodeInternal         Code = "INTERNAL_ERROR"
	CodeSizeInvalid      Code = "SIZE_INVALID"
	CodeReferenceInvalid Code = "TAG_INVALID"
)

// Error is the single error type the shim sends to HTTP clients: a status,
// an OCI code and a human message. Wrap a cause with %w to keep it for logs;
// the cause is never sent to the client.
type Error struct {
	Status  int
	Code    Code
	Message string
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s (%d): %s: %v", e.Code, e.Status, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s (%d): %s", e.Code, e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// Errorf builds an *Error with a formatted message.
func Errorf(status int, code Code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap builds an *Error that keeps cause for logs and errors.Is.
func Wrap(cause error, status int, code Code, msg string) *Error {
	return &Error{Status: status, Code: code, Message: msg, Cause: cause}
}

// As returns err as an *Error; anything else becomes a 500 INTERNAL_ERROR
// that keeps err as its cause.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(err, http.StatusInternalServerError, CodeInternal, "internal error")
}

type wireError struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

type wireErrors struct {
	Errors []wireError `json:"errors"`
}

// WriteError writes err to w as OCI error JSON with its status. It is the one
// place an error body is produced. For HEAD requests only the headers go out.
func WriteError(w http.ResponseWriter, r *http.Request, err error) *Error {
	e := As(err)
	body, _ := json.Marshal(wireErrors{Errors: []wireError{{Code: e.Code, Message: e.Message}}})
	h := w.Header()
	for _, k := range []string{"Docker-Content-Digest", "Etag", "Accept-Ranges"} {
		h.Del(k)
	}
	if e.Status != http.StatusRequestedRangeNotSatisfiable {
		h.Del("Content-Range")
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.Status)
	if r == nil || r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return e
}

// ParseErrorBody decodes an OCI error body (as an upstream registry sends it)
// and returns its first code and message. ok is false when body is not OCI
// error JSON.
func ParseErrorBody(body []byte) (code Code, msg string, ok bool) {
	var we wireErrors
	if err := json.Unmarshal(body, &we); err != nil || len(we.Errors) == 0 {
		return "", "", false
	}
	return we.Errors[0].Code, we.Errors[0].Message, we.Errors[0].Code != ""
}
