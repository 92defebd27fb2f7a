package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "shoal:", err)
		}
		os.Exit(1)
	}
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"daemon", "run the node daemon: the registry shim over the content store", runDaemon},
		{"seeder", "run a seeder beside the origin registry: pulls each blob once, signs chunks, seeds the swarm", runSeeder},
		{"preheat", "ask a seeder to pull every blob of an image before a rollout", runPreheat},
		{"id", "print the peer ID of a data directory (creating its identity key if needed)", runID},
		{"psk", "write a new private network key (libp2p swarm key) for --psk-file", runPSK},
		{"containerd-config", "write containerd hosts.toml files that use the shoal mirror", runContainerdConfig},
		{"host-dir", "create a host directory owned by the daemon's user (an init container's job, as root with CAP_CHOWN)", runHostDir},
		{"docker-config", "print the Docker Engine daemon.json fragment for the mirror", runDockerConfig},
		{"registries-conf", "print the containers registries.conf fragment (podman, CRI-O, skopeo)", runRegistriesConf},
		{"demo", "start a local demo cluster (origin + daemon) and pull an image through it", runDemo},
		{"version", "print the version", runVersion},
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	usage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func usage(w io.Writer) {
	_, _ = fmt.Fprintln(w, "usage: shoal <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		_, _ = fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
	}
	_, _ = fmt.Fprintln(w, "\nEvery flag can also be set as SHOAL_<FLAG> (e.g. SHOAL_DATA_DIR) or in a YAML file given with --config; flags win.")
}
