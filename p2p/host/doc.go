// Package host builds the libp2p host of a shoal node or seeder.
//
// # Identity
//
// A node's identity is an Ed25519 key kept at <data-dir>/identity.key
// (libp2p's protobuf key encoding, mode 0600). [LoadOrCreateIdentity] creates
// it on first start and returns the same key on every later start, so a
// node's peer ID is stable across restarts. The file is written to a
// temporary name, synced and then hard-linked into place, so a crash never
// leaves a truncated key and two processes racing on an empty directory
// agree on one key. [PeerIDFromDataDir] lets a deployment learn a seeder's
// peer ID before the seeder ever runs (`shoal id --data-dir`).
//
// # Private network
//
// An optional pre-shared key puts the host in a libp2p private network
// (pnet): every connection is encrypted with the key before the security
// handshake, so a host without the key cannot even complete a handshake. The
// key file is the standard libp2p swarm key format ([LoadPSK], [GeneratePSK]):
//
//	/key/swarm/psk/1.0.0/
//	/base16/
//	<64 hex digits>
//
// QUIC cannot run inside a pnet, so a host with a PSK listens and dials on
// TCP only; without a PSK it also listens on QUIC v1.
//
// # Host
//
// [New] builds a host with TCP (plus QUIC without a PSK), libp2p's default
// security (TLS 1.3 first, Noise as the fallback) and muxer (yamux), a connection manager with the
// configured watermarks and a resource manager whose limits are libp2p's
// auto-scaled defaults raised where shoal needs more: at least 256 streams
// per peer and protocol (the chunk protocol keeps up to 64 requests in
// flight to one peer), 128 MiB of yamux stream windows per peer, and a
// system connection limit above the connection manager's high watermark.
// The system-wide memory limit stays auto-scaled (1/8 of RAM): on a small
// machine it caps the total number of open streams, which is backpressure,
// not an error, for the protocols on top.
// There is no relay, no NAT port mapping, no mDNS, and libp2p's own
// Prometheus metrics are off (shoal's metrics are registered explicitly on
// an injected registerer, see [RegisterMetrics]).
package host
