// Package main is the command shoal-image.
//
// Command shoal-image builds the shoal container image (see package
// deploy/image) from prebuilt static binaries, without Docker:
//
//	shoal-image --binary linux/amd64=bin/linux-amd64/shoal --binary linux/arm64=bin/linux-arm64/shoal \
//	    --version v1.2.3 --revision $(git rev-parse HEAD) --out bin/image
//
// It writes OUT/oci (an OCI image layout) and OUT/shoal-image.tar (the same
// as an OCI archive for `ctr images import`) and prints the index digest and
// each platform's size. Every timestamp is --created (Unix seconds; default
// $SOURCE_DATE_EPOCH).
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/deploy/image"
	"github.com/shoal-dev/shoal/deploy/settings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "shoal-image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("shoal-image", flag.ContinueOnError)
	var bins settings.Repeated
	fs.Var(&bins, "binary", "OS/ARCH[/VARIANT]=PATH of a static shoal binary; repeatable (one per platform)")
	ca := fs.String("ca", "/etc/ssl/certs/ca-certificates.crt", "PEM CA bundle copied into the image")
	version := fs.String("version", "", "image version (the org.opencontainers.image.version label and the default tag)")
	revision := fs.String("revision", "", "source revision (org.opencontainers.image.revision)")
	source := fs.String("source", "https://github.com/shoal-dev/shoal", "source URL (org.opencontainers.image.source)")
	repo := fs.String("repo", "ghcr.io/shoal-dev/shoal", "repository the layout names the image by")
	tag := fs.String("tag", "", "tag the layout names the image by (default: --version)")
	created := fs.String("created", os.Getenv("SOURCE_DATE_EPOCH"), "every timestamp in the image, Unix seconds (default $SOURCE_DATE_EPOCH)")
	out := fs.String("out", "bin/image", "output directory (must not exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *created == "" {
		return errors.New("--created (or SOURCE_DATE_EPOCH) is required: a reproducible image has a fixed time")
	}
	secs, err := strconv.ParseInt(*created, 10, 64)
	if err != nil || secs < 0 {
		return fmt.Errorf("--created %q: want Unix seconds", *created)
	}
	cfg := image.Config{CABundle: *ca, Version: *version, Revision: *revision, Source: *source, Created: time.Unix(secs, 0).UTC()}
	for _, b := range bins {
		plat, path, ok := strings.Cut(b, "=")
		parts := strings.Split(plat, "/")
		if !ok || path == "" || len(parts) < 2 || len(parts) > 3 {
			return fmt.Errorf("--binary %q: want OS/ARCH[/VARIANT]=PATH", b)
		}
		bin := image.Binary{OS: parts[0], Arch: parts[1], Path: path}
		if len(parts) == 3 {
			bin.Variant = parts[2]
		}
		cfg.Binaries = append(cfg.Binaries, bin)
	}
	if *tag == "" {
		*tag = *version
	}
	idx, err := image.Build(cfg)
	if err != nil {
		return err
	}
	o, err := image.WriteOutputs(*out, idx, *repo, *tag, cfg.Created)
	if err != nil {
		return err
	}
	fmt.Printf("image %s:%s\nindex %s\nlayout %s\narchive %s\n", *repo, *tag, o.Digest, o.Layout, o.Archive)
	plats := make([]string, 0, len(o.Sizes))
	for p := range o.Sizes {
		plats = append(plats, p)
	}
	sort.Strings(plats)
	for _, p := range plats {
		fmt.Printf("size %s %d bytes (%.1f MiB compressed)\n", p, o.Sizes[p], float64(o.Sizes[p])/(1<<20))
	}
	return nil
}
