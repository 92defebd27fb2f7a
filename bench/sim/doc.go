// Package sim is a discrete-event simulator of a shoal rollout: one image
// pulled by many nodes through one seeder from one origin, over a network
// model, with the daemon's own scheduler (p2p/plan) deciding for every
// simulated node.
//
// The engine is a heap of timed events on a simulated clock (engine.go);
// ties break by insertion order and every random choice comes from
// generators seeded by Config.Seed, so a seed gives the same result, byte
// for byte. The network (net.go) gives every host an up-link and a
// down-link; a chunk transfer is a flow on its sender's up-link and its
// receiver's down-link, and when a flow starts or ends only the flows on
// those two links get new rates (a local water-fill), not the whole
// network. The receiving side (fetch.go) follows p2p/swarm: every layer at
// once (the shim prefetches a manifest's layers; PullConcurrency with
// NoPrefetch), per layer a session with the seeder (always given a
// slot) and up to MaxSources-1 providers from DHT lookups (a bounded
// random subset of the nodes whose record is published, after
// DHTLatency), re-looked up every second while there is room (doubling to
// 16 s when nothing new turns up), HAVE and HAVE_UPDATE, a provider
// record published with the first verified chunk; a plan.Blob per fetch
// makes every request and cancel. The serving side (serve.go) follows
// p2p/chunk: UploadSlots sends at once, the chunk sent fewest times first,
// a fair share per peer; the seeder pulls each blob from the origin once,
// as a stream, and rations its announcements with a plan.Ration. Churn
// (run.go) takes nodes away mid-rollout: their flows stop, their sessions
// close, their peers' Blobs free the requests and ask elsewhere.
//
// Results come in bench/lab's form (lab.ModeResult), so a simulated run and
// a lab run compare field by field (compare.go). What the model leaves out
// is listed in docs/ARCHITECTURE.md ("The simulator").
package sim
