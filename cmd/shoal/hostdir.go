package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"strconv"
	"strings"

	"github.com/shoal-dev/shoal/deploy/hostdir"
)

func runHostDir(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal host-dir", flag.ContinueOnError)
	fs.SetOutput(stderr)
	owner := fs.String("owner", "65532:65532", "UID:GID to own each directory")
	mode := fs.String("mode", "0700", "mode of a directory that changes owner (octal)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("usage: shoal host-dir [--owner UID:GID] [--mode 0700] DIR [DIR ...]")
	}
	u, g, ok := strings.Cut(*owner, ":")
	uid, uerr := strconv.Atoi(u)
	gid, gerr := strconv.Atoi(g)
	if !ok || uerr != nil || gerr != nil || uid < 0 || gid < 0 {
		return fmt.Errorf("--owner %q: want UID:GID (numbers)", *owner)
	}
	perm, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || perm > 0o777 {
		return fmt.Errorf("--mode %q: want an octal permission such as 0700", *mode)
	}
	for _, d := range fs.Args() {
		if err := hostdir.Prepare(d, uid, gid, iofs.FileMode(perm)); err != nil {
			return err
		}
		_, _ = fmt.Fprintf(stdout, "%s: owned by %d:%d\n", d, uid, gid)
	}
	return nil
}
