// Package main is the command shoal-bench.
//
// Command shoal-bench runs shoal's bulk-rollout lab on network namespaces
// (see package bench/lab): real shoal daemons, a real seeder and a real
// distribution registry on shaped links, the same scenario in the modes
// shoal, direct and one-peer, and results.json, results.md and PNG plots;
// with --scenario faults, fault scenarios beside the same rollout without
// them (--faults, --fault-at, --restart-after, --flap-for).
// It needs root. It is its own binary: the production shoal binary does
// not carry it.
//
//	go run ./bench/cmd/shoal-bench --scenario cold-rollout --nodes 20 \
//	  --image-size 536870912 --layers 4 --node-rate 100mbit --origin-rate 100mbit \
//	  --modes shoal,direct,one-peer --out bench-results
//	go run ./bench/cmd/shoal-bench --scenario smoke --out /tmp/smoke
//	go run ./bench/cmd/shoal-bench --scenario faults --faults kill-nodes,liar-garbage \
//	  --nodes 4 --image-size 25165824 --layers 2 --node-rate 20mbit --origin-rate 20mbit --out /tmp/faults
//	go run ./bench/cmd/shoal-bench --cleanup-stale
package main
