package lab

import (
	"flag"
	"fmt"
)

// RolloutFlags are the flags shoal-bench and shoal-sim share, so the two
// take a rollout's shape the same way: the node count, the image, the
// links (as tc writes rates) and the results directory.
type RolloutFlags struct {
	Nodes      *int
	ImageSize  *int64
	Layers     *int
	NodeRate   *string
	OriginRate *string
	Out        *string
}

// AddRolloutFlags defines the shared flags on fs; note is added to the
// help of the three a scenario may default.
func AddRolloutFlags(fs *flag.FlagSet, note string) RolloutFlags {
	return RolloutFlags{
		Nodes:      fs.Int("nodes", 20, "node hosts"+note),
		ImageSize:  fs.Int64("image-size", 512<<20, "bytes of layers in the image"+note),
		Layers:     fs.Int("layers", 4, "layers in the image"+note),
		NodeRate:   fs.String("node-rate", "100mbit", "each node's link, both directions, as tc writes rates"),
		OriginRate: fs.String("origin-rate", "100mbit", "the origin's (and the seeder's) link, both directions"),
		Out:        fs.String("out", "", "results directory (results.json, results.md, *.png)"),
	}
}

// Rates parses the two link rates.
func (f RolloutFlags) Rates() (node, origin Rate, err error) {
	if node, err = ParseRate(*f.NodeRate); err != nil {
		return node, origin, fmt.Errorf("--node-rate: %w", err)
	}
	if origin, err = ParseRate(*f.OriginRate); err != nil {
		return node, origin, fmt.Errorf("--origin-rate: %w", err)
	}
	return node, origin, nil
}
