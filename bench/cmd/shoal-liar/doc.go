// Package main is the command shoal-liar.
//
// Command shoal-liar is the bench lab's lying peer: the trust harness's
// hostile peer (internal/harness/hostile) as a process, a member of the
// lab's private network (its PSK), that announces every blob it is told
// and answers every chunk request with bad bytes. With --mode garbage it
// sends random bytes under records signed by its own untrusted key; with
// --mode bitflip it relays the seeder's chunks with their true signed
// records but one bit flipped, as a peer whose store rotted would. On
// SIGTERM it writes what it served, per victim, as JSON to --stats.
//
// It is a test helper (internal/layout), run by shoal-bench's fault
// scenarios inside a lab namespace; nothing ships it.
//
//	shoal-liar --listen /ip4/10.213.0.4/tcp/5052 --psk-file swarm.key \
//	  --bootstrap /ip4/10.213.0.3/tcp/5052/p2p/<seeder> --seeder <seeder> \
//	  --mode garbage --provide sha256:... --victim /ip4/10.213.1.1/tcp/5052/p2p/<id> --stats liar.json
package main
