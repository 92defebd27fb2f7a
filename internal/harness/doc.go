// Package harness is shoal's one test harness. Only tests and benchmarks
// import it (internal/layout's TestImportDirections keeps it that way): it starts
// servers, builds binaries and imports the whole node.
//
//   - origin.go: StartOrigin, the embedded origin registry with fault
//     switches (down, stalled, a request hook, one blob delayed with
//     DelayBlob; the referrers API with origin.WithReferrers, or
//     ClusterOptions.Referrers), PushBlob, and the image builders of
//     internal/imagegen.
//   - config.go: NodeConfig and SeederConfig, the one place where tests
//     fill node.Config and seeder.Config, from NodeOptions and
//     SeederOptions (PSK, single source, whole blobs only, ...).
//   - cluster.go: StartSeeder and StartNode (error-returning, for shared
//     benchmark fixtures), NewSeeder and NewNode (stopped with the test),
//     and Cluster: an origin, seeders and daemons over real libp2p hosts
//     on loopback; Cluster.ListFirst puts providers (hostile ones) before
//     every other in what the cluster's peers find.
//   - peer.go: hosts (StartHost, NewHost), stores (OpenStore) and
//     Cluster.AddPeer, a swarm client over a store with the chunk server,
//     found through the cluster's in-memory router (memrouter); Peer.Pull,
//     Peer.PullHashed (no buffering, survives a restarted download) and
//     WriteFallback (a fallback that writes the blob, counting calls).
//   - peershim.go: what a daemon puts in front of a peer's swarm client
//     (PeerOptions.Shim: the registry shim over a store that answers a
//     Range from VERIFIED chunks), a paced chunk server
//     (PeerOptions.ServeRate) and Cluster.PeerHolding (a peer holding a
//     blob with the seeder's VERIFIED records).
//   - shim.go: StartShim, the registry shim alone in front of an origin.
//   - pull.go: PullLayers, an image pulled through a shim with
//     go-containerregistry, every layer read to its end.
//   - authorigin.go: StartAuthOrigin, an origin with access control
//     (Basic credentials, or Bearer tokens from its own token service;
//     private repository prefixes; blobs served only under a repository
//     they were pushed to), for the private-image tests.
//   - credhelper.go: NewCredHelper, a real docker-credential-NAME
//     executable (the program in credhelper/) in a directory of its own,
//     with its answers set by the test and its calls counted per process;
//     PathEnv puts such directories on a child's PATH. AuthOrigin also
//     takes identity tokens (AddIdentityToken), expires tokens
//     (ExpireTokens, SetTokenTTL) and counts blob reads per user (Reads).
//   - blackhole.go: StartBlackhole, a loopback listener that accepts,
//     counts and never answers (an upstream a test expects not to dial).
//   - process.go, shoalproc.go: the real binary, built once per test
//     process (BuildShoal, ShoalBinary), child processes with their output
//     kept (StartProcess), `shoal daemon` and `shoal seeder` processes
//     waited for until ready (StartDaemonProcess, StartSeederProcess,
//     LaunchDaemonProcess) and RunShoal.
//   - metrics.go: metric readers over an in-process registry (Gather, Sum,
//     Value, Count with testutil) or a /metrics page (Scrape, ParseMetrics
//     with expfmt).
//
// Packages the harness imports (node, seeder, registryshim, p2p/...) use it
// from their external test packages (package x_test).
package harness
