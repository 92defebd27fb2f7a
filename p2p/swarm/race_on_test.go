//go:build race

package swarm_test

// raceEnabled: the race detector slows libp2p's stream stack several-fold,
// so scale tests shrink and timeouts grow under it.
const raceEnabled = true
