package host

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/libp2p/go-libp2p/core/pnet"
)

// ErrPSK is wrapped by every error about a pre-shared key file.
var ErrPSK = errors.New("host: invalid swarm key")

const (
	pskHeader = "/key/swarm/psk/1.0.0/"
	pskSize   = 32
	// maxPSKFileSize bounds how much of a swarm key file is read.
	maxPSKFileSize = 4 << 10
)

// LoadPSK reads a libp2p swarm key file (see [ParsePSK]).
func LoadPSK(path string) (pnet.PSK, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPSK, err)
	}
	defer func() { _ = f.Close() }()
	data, err := io.ReadAll(io.LimitReader(f, maxPSKFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrPSK, path, err)
	}
	psk, err := ParsePSK(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return psk, nil
}

// ParsePSK parses the libp2p swarm key format: the line
// "/key/swarm/psk/1.0.0/", an encoding line ("/base16/", "/base64/" or
// "/bin/") and the 32-byte key in that encoding. A text-encoded key may be
// followed by white space; nothing else may follow the key. Whatever it
// accepts, libp2p's own decoder reads as the same key.
func ParsePSK(data []byte) (pnet.PSK, error) {
	if len(data) > maxPSKFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrPSK, maxPSKFileSize)
	}
	header, rest, ok := cutLine(data)
	if !ok || string(header) != pskHeader {
		return nil, fmt.Errorf("%w: first line is not %q", ErrPSK, pskHeader)
	}
	enc, body, ok := cutLine(rest)
	if !ok {
		return nil, fmt.Errorf("%w: missing encoding line", ErrPSK)
	}
	var key []byte
	switch string(enc) {
	case "/base16/":
		b, err := hex.DecodeString(string(bytes.TrimRight(body, " \t\r\n")))
		if err != nil {
			return nil, fmt.Errorf("%w: bad base16 key: %w", ErrPSK, err)
		}
		key = b
	case "/base64/":
		b, err := base64.StdEncoding.DecodeString(string(bytes.TrimRight(body, " \t\r\n")))
		if err != nil {
			return nil, fmt.Errorf("%w: bad base64 key: %w", ErrPSK, err)
		}
		key = b
	case "/bin/":
		key = body
	default:
		return nil, fmt.Errorf("%w: unknown encoding %q", ErrPSK, truncate(enc))
	}
	if len(key) != pskSize {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d", ErrPSK, len(key), pskSize)
	}
	return pnet.PSK(bytes.Clone(key)), nil
}

// GeneratePSK writes a new random swarm key in the base16 format to w.
func GeneratePSK(w io.Writer) error {
	key := make([]byte, pskSize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("host: generate swarm key: %w", err)
	}
	_, err := fmt.Fprintf(w, "%s\n/base16/\n%s\n", pskHeader, hex.EncodeToString(key))
	return err
}

// WritePSKFile writes a new swarm key (see [GeneratePSK]) to a file at path
// created with mode 0600. Without replace an existing file is left alone
// and the error wraps os.ErrExist; with it the file is truncated.
func WritePSKFile(path string, replace bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if replace {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return err
	}
	if err := GeneratePSK(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// cutLine splits off the first line, accepting "\n" or "\r\n" endings.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	line, rest, ok = bytes.Cut(b, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'}), rest, ok
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}
