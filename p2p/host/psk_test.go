package host

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/pnet"
)

func TestPSKFileRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := GeneratePSK(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "swarm.key")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	psk, err := LoadPSK(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file must be the standard format libp2p itself reads.
	ref, err := pnet.DecodeV1PSK(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(psk, ref) || len(psk) != 32 {
		t.Fatalf("LoadPSK = %x, libp2p reads %x", psk, ref)
	}
	var again bytes.Buffer
	if err := GeneratePSK(&again); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("two generated keys are equal")
	}
}

func TestLoadPSKMissingFile(t *testing.T) {
	_, err := LoadPSK(filepath.Join(t.TempDir(), "nope"))
	if !errors.Is(err, ErrPSK) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrPSK wrapping ErrNotExist", err)
	}
}

func TestParsePSK(t *testing.T) {
	key := bytes.Repeat([]byte{0xab}, 32)
	hx := hex.EncodeToString(key)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"base16", "/key/swarm/psk/1.0.0/\n/base16/\n" + hx + "\n", true},
		{"base16 no final newline", "/key/swarm/psk/1.0.0/\n/base16/\n" + hx, true},
		{"base16 upper case", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.ToUpper(hx) + "\n", true},
		{"crlf", "/key/swarm/psk/1.0.0/\r\n/base16/\r\n" + hx + "\r\n", true},
		{"base64", "/key/swarm/psk/1.0.0/\n/base64/\n" + base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"bin", "/key/swarm/psk/1.0.0/\n/bin/\n" + string(key), true},
		{"empty", "", false},
		{"wrong header", "/key/swarm/psk/2.0.0/\n/base16/\n" + hx + "\n", false},
		{"no encoding", "/key/swarm/psk/1.0.0/\n", false},
		{"unknown encoding", "/key/swarm/psk/1.0.0/\n/base32/\n" + hx + "\n", false},
		{"short key", "/key/swarm/psk/1.0.0/\n/base16/\n" + hx[:62] + "\n", false},
		{"long key", "/key/swarm/psk/1.0.0/\n/base16/\n" + hx + "ab\n", false},
		{"not hex", "/key/swarm/psk/1.0.0/\n/base16/\n" + strings.Repeat("zz", 32) + "\n", false},
		{"trailing garbage", "/key/swarm/psk/1.0.0/\n/base16/\n" + hx + "\nextra\n", false},
		{"bin short", "/key/swarm/psk/1.0.0/\n/bin/\n" + string(key[:31]), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			psk, err := ParsePSK([]byte(tt.in))
			if !tt.ok {
				if !errors.Is(err, ErrPSK) {
					t.Fatalf("err = %v, want ErrPSK", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(psk, key) {
				t.Fatalf("key = %x, want %x", psk, key)
			}
		})
	}
}

// FuzzParsePSK checks that the parser never panics, and that whatever it
// accepts is a 32-byte key libp2p's own decoder reads identically.
func FuzzParsePSK(f *testing.F) {
	hx := strings.Repeat("0f", 32)
	f.Add([]byte("/key/swarm/psk/1.0.0/\n/base16/\n" + hx + "\n"))
	f.Add([]byte("/key/swarm/psk/1.0.0/\r\n/base64/\r\n" + base64.StdEncoding.EncodeToString(make([]byte, 32))))
	f.Add([]byte("/key/swarm/psk/1.0.0/\n/bin/\n" + string(make([]byte, 32))))
	f.Add([]byte("/key/swarm/psk/1.0.0/\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		psk, err := ParsePSK(data)
		if err != nil {
			if !errors.Is(err, ErrPSK) {
				t.Fatalf("error %v does not wrap ErrPSK", err)
			}
			return
		}
		if len(psk) != 32 {
			t.Fatalf("accepted a %d-byte key", len(psk))
		}
		ref, err := pnet.DecodeV1PSK(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("ParsePSK accepted what libp2p rejects: %v", err)
		}
		if !bytes.Equal(psk, ref) {
			t.Fatalf("ParsePSK = %x, libp2p reads %x", psk, ref)
		}
	})
}
