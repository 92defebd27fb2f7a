package lab

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// haNotes (nearest-rank median) reads the nodes' failover lines and the relaying seeder's origin
// stream from real log lines of the shapes the daemon and the seeder write.
func TestHANotes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	kill := time.Date(2026, 12, 1, 23, 46, 3, 148e6, time.UTC)
	n1 := write("h1.log",
		`{"level":"info","ts":"2026-12-01T23:46:04.580Z","logger":"daemon.swarm","msg":"seeder failover","after":1.5,"first_chunk_at":"2026-12-01T23:46:04.648Z"}`,
		`not json`)
	n2 := write("h2.log", `{"level":"info","ts":"2026-12-01T23:46:05.887Z","logger":"daemon.swarm","msg":"seeder failover","after":2.5,"first_chunk_at":"2026-12-01T23:46:05.648Z"}`)
	relay := write("seeder3.log",
		`{"level":"info","ts":"2026-12-01T23:46:03.898Z","logger":"seeder.relay","msg":"the owning seeder is gone: fetching the chunks no peer holds from the origin","from_chunk":30,"chunks":128}`,
		`{"level":"info","ts":"2026-12-01T23:46:13.648Z","logger":"seeder.relay","msg":"the origin stream ended: asking the peers for the chunks below it","from_chunk":30}`)
	idle := write("seeder.log", `{"level":"info","ts":"2026-12-01T23:46:03.212Z","logger":"seeder.seeders","msg":"seeder liveness changed"}`)
	l := &Lab{ha: &haLab{ids: []string{"a", "b", "c"}, owner: 1, layer: "sha256:x", kill: kill,
		procs: []*proc{{stderr: idle}, {stderr: filepath.Join(dir, "gone.log")}, {stderr: relay}}}}
	notes := l.haNotes([]*nodeProc{{log: n1}, {log: n2}, {log: filepath.Join(dir, "missing.log")}})
	want := []string{
		"seeder-failover: seeder 3 fetched chunks 30- from the origin, from 0.75 s to 10.50 s after the kill",
		"seeder-failover: 2 failovers; from the lost seeder's last chunk to the next seeder's first: median 1.50 s, max 2.50 s (1.50, 2.50 s)",
		"seeder-failover: first chunk from the next seeder after the kill: median 1.50 s, max 2.50 s (1.50, 2.50 s)",
	}
	for _, w := range want {
		if !slices.Contains(notes, w) {
			t.Errorf("notes lack %q:\n%s", w, strings.Join(notes, "\n"))
		}
	}
	if !strings.Contains(notes[0], "seeder 2 of 3") {
		t.Errorf("first note %q does not name the killed seeder", notes[0])
	}
}

// zap writes "+0100", not "+01:00": the notes must still read it.
func TestParseLogTimeZones(t *testing.T) {
	for _, s := range []string{"2026-12-02T01:02:03.456Z", "2026-12-02T02:02:03.456+0100", "2026-12-02T01:02:03.456789Z"} {
		got, err := parseLogTime(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if want := time.Date(2026, 12, 2, 1, 2, 3, 0, time.UTC); !got.Truncate(time.Second).Equal(want) {
			t.Fatalf("%s = %v, want %v", s, got.UTC(), want)
		}
	}
}
