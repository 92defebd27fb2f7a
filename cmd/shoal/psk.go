package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/shoal-dev/shoal/p2p/host"
)

// runPSK writes a new private network key in the libp2p swarm key format
// (the format --psk-file reads).
func runPSK(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal psk", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "file to write the key to, mode 0600 (\"-\": standard output)")
	force := fs.Bool("force", false, "replace an existing file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return errors.New("usage: shoal psk --out FILE [--force]")
	}
	if *out == "-" {
		return host.GeneratePSK(stdout)
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, flags, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists (a network key is shared by every member: keep it, or pass --force to replace it)", *out)
	}
	if err != nil {
		return err
	}
	if err := host.GeneratePSK(f); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stderr, "wrote a new network key to %s; give every daemon and seeder --psk-file %s\n", *out, *out)
	return nil
}
