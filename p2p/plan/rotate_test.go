package plan

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/chunkset"
)

func TestSlowest(t *testing.T) {
	now := time.Unix(1000, 0)
	all := func(n int) *chunkset.Set {
		s := chunkset.New(n)
		for i := range n {
			s.Set(i)
		}
		return s
	}
	// A blob of 8 chunks, chunk 0 held: fast and slow peers hold all of
	// it, a seeder too, and idle holds only chunk 0.
	setup := func() (*Blob, map[string]*Source) {
		held := chunkset.New(8)
		held.Set(0)
		b := NewBlob(Config{}, 8, 1<<20, held, nil, now)
		only0 := chunkset.New(8)
		only0.Set(0)
		srcs := map[string]*Source{
			"seeder": b.AddSource(true, all(8)),
			"fast":   b.AddSource(false, all(8)),
			"slow":   b.AddSource(false, all(8)),
			"idle":   b.AddSource(false, only0),
		}
		srcs["seeder"].rate = 1
		srcs["fast"].rate = 100e6
		srcs["slow"].rate = 1e6
		return b, srcs
	}
	tests := []struct {
		name string
		old  []string // the sources old enough
		drop []string // removed before the call
		want string   // "": none
	}{
		{"useless first", []string{"fast", "slow", "idle", "seeder"}, nil, "idle"},
		{"then the slowest", []string{"fast", "slow", "seeder"}, nil, "slow"},
		{"not a new session", []string{"fast", "seeder"}, nil, "fast"},
		{"never a seeder", []string{"seeder"}, nil, ""},
		{"not a removed one", []string{"fast", "slow"}, []string{"slow"}, "fast"},
		{"none old enough", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, srcs := setup()
			for _, d := range tt.drop {
				b.Remove(srcs[d])
			}
			old := map[*Source]bool{}
			for _, n := range tt.old {
				old[srcs[n]] = true
			}
			got := b.Slowest(func(s *Source) bool { return old[s] })
			want := srcs[tt.want]
			if got != want {
				name := ""
				for k, v := range srcs {
					if v == got {
						name = k
					}
				}
				t.Fatalf("Slowest = %q, want %q", name, tt.want)
			}
		})
	}
}

func TestSlowestCountsNoDeliveryAsZero(t *testing.T) {
	b := NewBlob(Config{}, 4, 1<<20, nil, nil, time.Unix(0, 0))
	full := chunkset.New(4)
	for i := range 4 {
		full.Set(i)
	}
	measured := b.AddSource(false, full.Clone())
	measured.rate = 1
	silent := b.AddSource(false, full.Clone())
	if got := b.Slowest(func(*Source) bool { return true }); got != silent {
		t.Fatal("a source that never delivered is not the slowest")
	}
}

func TestDry(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBlob(Config{}, 4, 1<<20, nil, nil, now)
	if !b.Dry() {
		t.Fatal("no source: not dry")
	}
	some := chunkset.New(4)
	some.Set(2)
	s := b.AddSource(true, some)
	if b.Dry() {
		t.Fatal("a seeder holds chunk 2: dry")
	}
	acts := b.Schedule(now)
	if len(acts) != 1 || acts[0].Chunk != 2 {
		t.Fatalf("actions %v", acts)
	}
	b.Landed(s, 2, 1<<20, now.Add(time.Second))
	if !b.Dry() {
		t.Fatal("chunk 2 landed, nothing else held anywhere: not dry")
	}
	b.Have(s, 0)
	if b.Dry() {
		t.Fatal("the seeder announced chunk 0: dry")
	}
}
