// Package oci holds the pieces of the OCI distribution API that every part of
// shoal's registry shim agrees on: the one error type written to clients,
// and strict parsers for repository names, references, digests and byte
// ranges. Parsers never panic and reject anything that could escape a data
// directory or confuse a cache key.
package oci
