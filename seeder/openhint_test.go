package seeder_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/internal/oci"
	"github.com/shoal-dev/shoal/p2p/chunk"
)

// TestSeederIgnoresUnconfiguredRegistryHint: a peer's OPEN names the
// registry to fetch a missing blob from. The seeder fetches only from its
// own configured upstreams: an OPEN naming any other registry fails
// without a dial and leaves nothing in partial/.
func TestSeederIgnoresUnconfiguredRegistryHint(t *testing.T) {
	origin := startOrigin(t)
	hole := harness.StartBlackhole(t)
	s := startSeeder(t, origin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := newClientHost(t)
	if err := client.Connect(ctx, s.Info); err != nil {
		t.Fatal(err)
	}
	for i, reg := range []string{hole.Addr(), "localhost:" + strings.Split(hole.Addr(), ":")[1]} {
		dg, _ := oci.ParseDigest("sha256:" + strings.Repeat(string(rune('a'+i)), 64))
		octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
		sess, err := chunk.Dial(octx, client, s.ID(), chunk.Open{Digest: dg, Registry: reg, Repo: "evil/app"}, chunk.ClientOptions{})
		ocancel()
		if err == nil {
			_ = sess.Close()
			t.Errorf("OPEN with registry %q: a session, want a refusal", reg)
		}
	}
	if n := hole.Accepts(); n != 0 {
		t.Fatalf("the seeder dialed the registry a peer named %d times", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		_ = filepath.WalkDir(filepath.Join(s.Dir, "partial"), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				left = append(left, p)
			}
			return nil
		})
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("refused OPENs left files in partial/: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
