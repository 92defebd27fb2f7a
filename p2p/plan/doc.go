// Package plan is shoal's scheduler as a pure state machine: the decisions
// of a blob's fetch (which chunk to ask of which source, when to give up
// on a request, when to duplicate one, when to load a seeder), of a
// seeder's rationing of its announcements, and of the fallback to the
// origin, without goroutines, I/O or a clock of its own. The daemon
// (p2p/swarm) drives it over real sessions; the simulator (bench/sim)
// drives the same Blob, Ration and Stall for every simulated node (its
// serving queue applies Slots' rule with its own chunk-indexed queue, as
// Slots.Grant scans every waiter).
//
// A Blob is one blob's fetch on one node, from the moment its size is
// trusted. Its owner feeds it events and carries out the actions it
// returns:
//
//   - events: AddSource (a session's HAVE was admitted), Have (a
//     HAVE_UPDATE), Refused (a chunk ERROR), Release (a request ended
//     without a chunk), Remove (the session is gone), Landed (a verified
//     chunk), and the settings SetWanted (chunks Range readers wait for),
//     SetOtherLoad (requests this node's other blobs keep at a source),
//     SetPeersPending (the first lookup or dials still run) and SetSkip;
//   - calls that return actions: Schedule (new requests, the cancels of
//     seeder requests a peer took over and of requests withdrawn for Range
//     readers), Landed (the cancels of duplicates), Expire (overdue
//     requests), CancelAll;
//   - actions: Request (ask Src for Chunk) and Cancel (withdraw it). The
//     Blob counts an action as done when it returns it; a Request the
//     owner could not send is undone by Remove of its source.
//
// Every method that depends on time takes now: the Blob never reads a
// clock. Per-chunk counts (holders that are not seeders, requests in
// flight, those at seeders) are kept as the events come, so one pick is a
// single scan over the chunks, whatever the number of sources.
//
// Ration is a seeder's per-blob rationing (super-seeding) and every node's
// upload order; Slots is a server's choice of which waiting answer gets a
// free upload slot (fair share across peers); Stall is the verdict on a
// fetch that may be stalled (keep waiting, look for sources again, or go to
// the origin).
//
// None of the types is safe for concurrent use: the owner serializes the
// calls.
package plan
