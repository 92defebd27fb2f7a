// Package main is the command shoal.
//
// Command shoal is the peer-to-peer container-image distribution daemon.
//
//	shoal daemon            run the node daemon (registry shim + store + swarm)
//	shoal seeder            run a seeder beside the origin registry
//	shoal preheat           ask a seeder to pull an image before a rollout
//	shoal id                print a data directory's peer ID
//	shoal containerd-config write containerd hosts.toml files for the mirror
//	shoal docker-config     print a Docker daemon.json fragment
//	shoal registries-conf   print a containers registries.conf fragment
//	shoal demo              run a local demo cluster and pull through it
//	shoal version           print the version
//
// main only wires: flags, environment and config file into structs, then
// run(ctx) of the component, under signal handling.
package main
