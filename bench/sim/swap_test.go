package sim

import "testing"

// The first holders of a rollout must not keep every node's sessions:
// with the daemon's rules (swapping, early lookups) every
// node of a 100-node rollout sends chunks; with the rules before them,
// some nodes hold chunks all along and send nothing (15 of 100 here).
func TestEveryHolderUploads(t *testing.T) {
	for _, tt := range []struct {
		idea string
		ok   bool
	}{{"baseline", true}, {"noswap+noearly", false}} {
		t.Run(tt.idea, func(t *testing.T) {
			c := small(t, 100)
			c.ImageBytes, c.Layers = 256<<20, 4
			c.NodeRate, c.OriginRate = rate(t, "1gbit"), rate(t, "1gbit")
			if err := ApplyIdea(&c, tt.idea); err != nil {
				t.Fatal(err)
			}
			res, st := run(t, c)
			least, idle := res.NodesList[0].UploadedBytes, 0
			for _, n := range res.NodesList {
				least = min(least, n.UploadedBytes)
				if n.UploadedBytes == 0 {
					idle++
				}
			}
			t.Logf("%s: all complete %.1f s, %d swaps, least upload %d MiB, %d nodes sent nothing", tt.idea, res.AllCompleteS, st.Swaps, least>>20, idle)
			if tt.ok && idle > 0 {
				t.Fatalf("%d nodes sent nothing", idle)
			}
			if !tt.ok && idle == 0 {
				t.Fatal("without the rules every node sent: the test shows nothing")
			}
		})
	}
}
