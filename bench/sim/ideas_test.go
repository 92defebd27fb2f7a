package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// The baseline idea and a traced run are the daemon's behaviour: the same
// results, byte for byte, as a plain run.
func TestBaselineIdeaIsTheDefault(t *testing.T) {
	plain, _ := run(t, small(t, 12))
	c := small(t, 12)
	if err := ApplyIdea(&c, "baseline"); err != nil {
		t.Fatal(err)
	}
	c.TraceEvery = time.Second
	traced, st := run(t, c)
	ja, _ := json.Marshal(plain)
	jb, _ := json.Marshal(traced)
	if !bytes.Equal(ja, jb) {
		t.Fatalf("baseline differs from the default:\n%s\n%s", ja, jb)
	}
	if len(st.Trace) == 0 || st.Trace[len(st.Trace)-1].Done > 12 {
		t.Fatalf("trace: %+v", st.Trace)
	}
	var seeder int64
	for _, p := range st.Trace {
		seeder += p.SeederBytes
	}
	if seeder == 0 || seeder > plain.SeederEgressBytes {
		t.Fatalf("traced seeder bytes %d of %d", seeder, plain.SeederEgressBytes)
	}
}

// Every idea finishes the rollout, with every byte from the origin once.
func TestIdeasFinish(t *testing.T) {
	for _, idea := range []string{"trickle", "sources16", "rotate", "trickle+rotate"} {
		c := small(t, 16)
		if err := ApplyIdea(&c, idea); err != nil {
			t.Fatal(err)
		}
		res, _ := run(t, c)
		if res.FailedNodes != 0 || res.OriginEgressBytes < res.ImageBytes || res.OriginEgressBytes > res.ImageBytes*102/100 {
			t.Errorf("%s: failed %d, origin %d of %d", idea, res.FailedNodes, res.OriginEgressBytes, res.ImageBytes)
		}
	}
	c := small(t, 2)
	if err := ApplyIdea(&c, "trickle+nope"); !errors.Is(err, ErrConfig) {
		t.Fatalf("unknown idea: %v", err)
	}
}

func TestCompareIdeasTable(t *testing.T) {
	var out bytes.Buffer
	if err := CompareIdeas(small(t, 1), []string{"baseline", "trickle"}, []int{4}, []uint64{1, 2}, &out); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n| 4 |"); got != 4 {
		t.Fatalf("%d rows:\n%s", got, out.String())
	}
}
