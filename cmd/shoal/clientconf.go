package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/shoal-dev/shoal/deploy/clientconf"
	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/internal/upstream"
)

func runContainerdConfig(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal containerd-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var registries, upstreams settings.Repeated
	fs.Var(&registries, "registry", "registry name as image references spell it (docker.io, ghcr.io, 127.0.0.1:5000); repeatable")
	mirror := fs.String("mirror", "http://127.0.0.1:5050", "URL of the shoal registry shim")
	dir := fs.String("dir", "/etc/containerd/certs.d", "containerd hosts directory (config_path) to write")
	hostDir := fs.String("host-dir", "", "the hosts directory as containerd names it, for --check-containerd-config (default --dir; differs when --dir is a mount of it)")
	check := fs.String("check-containerd-config", "", "containerd config.toml whose registry config_path must name --host-dir; checked before anything is written")
	restore := fs.Bool("restore", false, "undo an earlier run instead: put back the hosts.toml files that were there before (or remove shoal's), then exit")
	restoreOnExit := fs.Bool("restore-on-exit", false, "write nothing; wait for SIGTERM or SIGINT, then --restore (a sidecar beside the daemon)")
	def := fs.Bool("default", false, "also write _default/hosts.toml (every registry without its own file)")
	dial := fs.Duration("dial-timeout", 2*time.Second, "how long containerd waits to connect to the mirror before it falls back")
	fs.Var(&upstreams, "upstream", "NAME=URL: the server for registry NAME (same mapping as the daemon); repeatable")
	fs.String("config", "", "YAML config file (keys are flag names)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if len(registries) == 0 && !*def {
		return errors.New("name at least one --registry (or --default)")
	}
	mapping, err := upstream.NewMapping(upstreams, "")
	if err != nil {
		return err
	}
	h := clientconf.Hosts{
		Registries: registries, Mirror: *mirror, Dir: *dir, Default: *def, DialTimeout: *dial,
		// server is where containerd goes when the mirror fails: the
		// mapped URL, else the registry's own (https://NAME).
		Server: func(name string) (string, error) {
			u, err := mapping.URL(name)
			if errors.Is(err, upstream.ErrUnknownRegistry) {
				u, err = upstream.ConventionalURL(name)
			}
			if err != nil {
				return "", err
			}
			return u.String(), nil
		},
	}
	if *restore || *restoreOnExit {
		return restoreHosts(ctx, h, *restoreOnExit, stdout)
	}
	if *check != "" {
		if *hostDir == "" {
			*hostDir = *dir
		}
		if err := clientconf.CheckConfigPath(*check, *hostDir); err != nil {
			return err
		}
	}
	paths, err := h.Write()
	if err != nil {
		return err
	}
	for _, p := range paths {
		_, _ = fmt.Fprintln(stdout, "wrote", p)
	}
	return nil
}

// restoreHosts undoes h.Write, at once or (wait) when ctx ends.
func restoreHosts(ctx context.Context, h clientconf.Hosts, wait bool, stdout io.Writer) error {
	if wait {
		_, _ = fmt.Fprintln(stdout, "will restore", h.Dir, "at exit")
		<-ctx.Done()
	}
	paths, err := h.Restore()
	for _, p := range paths {
		_, _ = fmt.Fprintln(stdout, "restored", p)
	}
	return err
}

func runDockerConfig(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal docker-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	mirror := fs.String("mirror", "http://127.0.0.1:5050", "URL of the shoal registry shim")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := clientconf.DockerDaemonJSON(*mirror)
	if err != nil {
		return err
	}
	_, err = stdout.Write(append(b, '\n'))
	return err
}

func runRegistriesConf(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal registries-conf", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var registries settings.Repeated
	fs.Var(&registries, "registry", "registry name to mirror; repeatable (default docker.io)")
	mirror := fs.String("mirror", "http://127.0.0.1:5050", "URL of the shoal registry shim")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(registries) == 0 {
		registries = settings.Repeated{"docker.io"}
	}
	b, err := clientconf.RegistriesConf(registries, *mirror)
	if err != nil {
		return err
	}
	_, err = stdout.Write(b)
	return err
}
