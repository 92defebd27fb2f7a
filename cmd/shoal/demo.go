package main

import (
	"context"
	"flag"
	"io"

	"github.com/shoal-dev/shoal/deploy/demo"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	size := fs.Int64("image-size", 256<<20, "bytes of layer data in the generated image")
	layers := fs.Int("layers", 4, "number of layers")
	nodes := fs.Int("nodes", 4, "number of shoal daemons pulling at once")
	dir := fs.String("dir", "", "work directory (a temporary one, removed at the end, when empty)")
	logLevel := fs.String("log-level", "error", "log level of the in-process daemons (logs go to stderr)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}
	return demo.Run(ctx, demo.Options{ImageBytes: *size, Layers: *layers, Nodes: *nodes, Dir: *dir, Log: log}, stdout)
}
