// Package main is the command shoal-sim.
//
// shoal-sim simulates a rollout of one image to many nodes with the
// simulator of bench/sim and writes results.json and results.md in the
// lab's form (bench/lab), so a simulated and a measured run compare field
// by field:
//
//	go run ./bench/cmd/shoal-sim --nodes 1000 --image-size 1073741824 --layers 4 \
//	    --node-rate 1gbit --origin-rate 1gbit --out bench-results/sim/n1000
//
// --compare LAB_DIR_OR_JSON runs the simulator at a lab result's
// parameters and prints the simulated and the measured all-complete time
// and origin and seeder egress with the relative error. --sweep runs the
// N sweep and the churn run of make sim-full and writes the plots.
package main
