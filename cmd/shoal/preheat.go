package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/shoal-dev/shoal/deploy/settings"
	"github.com/shoal-dev/shoal/seeder"
)

// webhookFlags declares the seeder's preheat and push-webhook flags; it
// returns the secret file's flag (read after parsing).
func webhookFlags(fs *flag.FlagSet, cfg *seeder.Config) *string {
	fs.IntVar(&cfg.PreheatNodes, "preheat-nodes", seeder.DefaultPreheatNodes, "nodes a preheat fills at once (each through its swarm client), so a preheat does not saturate the seeder's link")
	fs.StringVar(&cfg.Webhook.Addr, "webhook-addr", "", "listen address of the push webhooks (distribution notifications, Harbor webhook, Harbor's Kraken-style preheat provider); empty: off")
	secret := fs.String("webhook-secret-file", "", "file whose content (trimmed) every webhook request must send as its Authorization header (required unless --webhook-addr is on loopback)")
	fs.Var((*settings.Repeated)(&cfg.Webhook.Repos), "webhook-repo", "preheat pushes to repositories matching this path.Match pattern (e.g. team/*); repeatable (default: all)")
	fs.Var((*settings.Repeated)(&cfg.Webhook.Tags), "webhook-tag", "preheat pushes of tags matching this pattern (e.g. v*); repeatable (default: all, and pushes by digest)")
	fs.StringVar(&cfg.Webhook.Scope, "webhook-scope", "all", "preheat scope of a pushed image: seeder, all, PERCENT% or node=ID,...")
	fs.StringVar(&cfg.Webhook.Registry, "webhook-registry", "", "registry name (one of --upstream) for every event (default: the host the event names)")
	return secret
}

// readSecret reads the webhook secret file, if one is named.
func readSecret(path string, into *string) error {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--webhook-secret-file: %w", err)
	}
	if *into = strings.TrimSpace(string(b)); *into == "" {
		return errors.New("--webhook-secret-file: the file is empty")
	}
	return nil
}

func runPreheat(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("shoal preheat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("seeder", "http://127.0.0.1:5061", "the seeder's admin API")
	platform := fs.String("platform", "all", "all, or os/arch[/variant]: which platforms of an index to pull")
	scope := fs.String("scope", "seeder", "which stores to fill: seeder, all (every node the seeder knows), PERCENT% of them, or node=ID,...")
	concurrency := fs.Int("concurrency", 0, "nodes filled at once (0: the seeder's --preheat-nodes; never more)")
	// Flags may follow the reference too.
	var ref string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		if ref != "" {
			return fmt.Errorf("one image reference at a time (got %q and %q)", ref, fs.Arg(0))
		}
		ref, args = fs.Arg(0), fs.Args()[1:]
	}
	if ref == "" {
		return errors.New("usage: shoal preheat --seeder URL REF [--scope seeder|all|PERCENT%|node=ID,...] [--platform all|os/arch]")
	}
	if _, err := seeder.ParseScope(*scope); err != nil {
		return err
	}
	body, _ := json.Marshal(seeder.PreheatRequest{Ref: ref, Platform: *platform, Scope: *scope, Concurrency: *concurrency})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(*url, "/")+"/v1/preheat", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("preheat: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("preheat: seeder answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20) // the final line carries every node's row
	var last seeder.ScopeProgress
	phase := ""
	for sc.Scan() {
		var p seeder.ScopeProgress
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil {
			return fmt.Errorf("preheat: bad progress line %q: %w", sc.Text(), err)
		}
		if phase != "" && p.Phase != phase {
			_, _ = fmt.Fprintln(stdout) // the seeder's bar stays on screen
		}
		phase, last = p.Phase, p
		_, _ = fmt.Fprintf(stdout, "\r%s   ", seeder.ProgressLine(ref, p))
	}
	_, _ = fmt.Fprintln(stdout)
	if err := sc.Err(); err != nil {
		return fmt.Errorf("preheat: %w", err)
	}
	if last.Done || last.Error != "" {
		_, _ = fmt.Fprintln(stdout)
		_ = seeder.WriteTable(stdout, last)
	}
	if last.Error != "" {
		return fmt.Errorf("preheat failed: %s", last.Error)
	}
	if !last.Done {
		return errors.New("preheat: the seeder stopped before the end")
	}
	return nil
}
