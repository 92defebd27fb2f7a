// Package lab is shoal's bulk-rollout benchmark lab: a star of Linux network
// namespaces (a hub with a bridge, one host per node, an origin host running
// a real distribution registry, a seeder host), every link shaped in both
// directions with tc tbf, one real `shoal daemon` process per node, and a
// real go-containerregistry client pulling through each node's shim.
// Every namespace runs TCP with one congestion control (Config.TCPCongestion,
// shoal-bench --tcp-cc, default cubic, Linux's default), named in the
// results: this machine's host default is bbr, and BBR on these links (a
// round trip of about 10 us, a tbf queue) stalled shoal's one flow from the
// seeder to a node for seconds in some runs (docs/ARCHITECTURE.md). A
// namespace may only pick an algorithm the host allows
// (net.ipv4.tcp_allowed_congestion_control, often just "reno bbr" where bbr
// is the default): the lab adds the one it uses to that list for the run
// and puts the list back when it tears the star down.
//
// It runs the same scenario in several modes on identical settings (shoal's
// swarm, direct pulls from the origin, one peer per blob) and writes
// results.json, results.md and PNG plots beside the physical limit of the
// links.
//
// The scenario "faults" (faults.go) runs shoal mode with one fault each
// (daemons killed and restarted, a lying peer, the seeder killed, the
// origin and the seeder cut off, links flapping, a daemon restarted, a full
// disk), each beside the same rollout without the fault in the same
// invocation, and adds a faults table and per-node plots (fault-*.png).
// Corrupt bytes are measured: every client hashes every blob it reads, and
// every complete blob of every store is hashed after each run. The lying
// peer is the trust harness's hostile peer as a process (bench/cmd/shoal-liar)
// in its own namespace (lia, 10.213.0.4), a member of the PSK network.
//
// The pure parts (rates, results, percentiles, ideal times, plots) need
// nothing; the lab itself needs root, ip, tc and docker-registry. The lab is
// driven by bench/cmd/shoal-bench, its own binary: the production shoal
// binary does not carry it.
//
// Addresses: everything lives in namespaces named shoalb-<pid>-* (hub, org,
// sdr, lia, h1..hN), on 10.213.0.0/16: origin 10.213.0.2, seeder 10.213.0.3
// (its own host, shaped at the origin's rate), the fault scenarios' lying
// peer 10.213.0.4 (shaped at the node rate), node i at
// 10.213.(1+(i-1)/250).(1+(i-1)%250). Nothing is added to the root
// namespace; helpers that talk to a daemon run inside its namespace
// (ip netns exec), the image is pushed over the origin namespace's loopback.
package lab
