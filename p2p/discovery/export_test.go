package discovery

import dht "github.com/libp2p/go-libp2p-kad-dht"

// KadForTest exposes the underlying kad-dht to the external tests, which
// empty its routing table to exercise re-bootstrapping.
func (d *DHT) KadForTest() *dht.IpfsDHT { return d.kad }
