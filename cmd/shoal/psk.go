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
	err := host.WritePSKFile(*out, *force)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists (a network key is shared by every member: keep it, or pass --force to replace it)", *out)
	}
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(stderr, "wrote a new network key to %s; give every daemon and seeder --psk-file %s\n", *out, *out)
	return nil
}
