package host

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	"go.uber.org/zap"
)

// Defaults of [Config].
const (
	DefaultPort     = 5052
	DefaultConnLow  = 256
	DefaultConnHigh = 512
)

// ErrConfig is wrapped by every error about an invalid [Config].
var ErrConfig = errors.New("host: invalid config")

// Resource limits shoal raises above libp2p's defaults (see the package doc).
const (
	minStreamsPerPeerProtocol = 256
	// yamux reserves a 256 KiB receive window per stream from the peer's
	// scope: 128 MiB leaves room for those 256 streams and their growth.
	minPeerMemory = 128 << 20
)

// Config configures [New].
type Config struct {
	// Listen holds the multiaddrs to listen on. Empty means
	// /ip4/0.0.0.0/tcp/5052 and, without a PSK, /ip4/0.0.0.0/udp/5052/quic-v1.
	// With a PSK only TCP addresses are allowed.
	Listen []string
	// PSK, when set, makes the host a member of that private network only.
	PSK pnet.PSK
	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// ConnHigh connections it trims down to ConnLow. Zero means the default.
	ConnLow, ConnHigh int
	// Key is the host's identity (see LoadOrCreateIdentity). Required.
	Key crypto.PrivKey
}

// New builds and starts a libp2p host listening on cfg.Listen. The caller
// owns the host and must Close it.
func New(cfg Config, log *zap.Logger) (host.Host, error) {
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Key == nil {
		return nil, fmt.Errorf("%w: no identity key", ErrConfig)
	}
	if len(cfg.PSK) != 0 && len(cfg.PSK) != pskSize {
		return nil, fmt.Errorf("%w: PSK is %d bytes, want %d", ErrConfig, len(cfg.PSK), pskSize)
	}
	low, high := cfg.ConnLow, cfg.ConnHigh
	if low <= 0 {
		low = DefaultConnLow
	}
	if high <= 0 {
		high = max(DefaultConnHigh, low)
	}
	if low > high {
		return nil, fmt.Errorf("%w: ConnLow %d above ConnHigh %d", ErrConfig, low, high)
	}
	listen, err := listenAddrs(cfg.Listen, len(cfg.PSK) > 0)
	if err != nil {
		return nil, err
	}

	cm, err := connmgr.NewConnManager(low, high)
	if err != nil {
		return nil, fmt.Errorf("%w: connection manager: %w", ErrConfig, err)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits(high)), rcmgr.WithMetricsDisabled())
	if err != nil {
		_ = cm.Close()
		return nil, fmt.Errorf("host: resource manager: %w", err)
	}

	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrs(listen...),
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("shoal"),
	}
	if len(cfg.PSK) > 0 {
		opts = append(opts, libp2p.PrivateNetwork(cfg.PSK))
	} else {
		opts = append(opts, libp2p.Transport(quic.NewTransport))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		// libp2p closes the connection and resource managers on failure.
		return nil, fmt.Errorf("host: start libp2p: %w", err)
	}
	log.Info("libp2p host started",
		zap.String("peer", h.ID().String()),
		zap.Strings("addrs", FullAddrs(h)),
		zap.Bool("private_network", len(cfg.PSK) > 0))
	return h, nil
}

// FullAddrs returns the host's listen multiaddrs with /p2p/<id> appended,
// ready to be given to another node as a bootstrap address.
func FullAddrs(h host.Host) []string {
	p2p, err := ma.NewComponent("p2p", h.ID().String())
	if err != nil {
		return nil
	}
	addrs := h.Addrs()
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.Encapsulate(p2p.Multiaddr()).String())
	}
	return out
}

func listenAddrs(listen []string, private bool) ([]ma.Multiaddr, error) {
	if len(listen) == 0 {
		listen = []string{fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultPort)}
		if !private {
			listen = append(listen, fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultPort))
		}
	}
	out := make([]ma.Multiaddr, 0, len(listen))
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: listen address %q: %w", ErrConfig, s, err)
		}
		_, tcpErr := a.ValueForProtocol(ma.P_TCP)
		_, quicErr := a.ValueForProtocol(ma.P_QUIC_V1)
		switch {
		case tcpErr == nil:
		case quicErr == nil && !private:
		case quicErr == nil:
			return nil, fmt.Errorf("%w: listen address %q: QUIC cannot be used with a private network key", ErrConfig, s)
		default:
			return nil, fmt.Errorf("%w: listen address %q: only TCP and QUIC v1 are supported", ErrConfig, s)
		}
		out = append(out, a)
	}
	return out, nil
}

// limits returns libp2p's auto-scaled default limits, raised to what shoal's
// protocols need. connHigh is the connection manager's high watermark.
func limits(connHigh int) rcmgr.ConcreteLimitConfig {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	scaled := scaling.AutoScale()

	p := scaled.ToPartialLimitConfig()
	raise := func(v *rcmgr.LimitVal, min int) {
		if *v != rcmgr.Unlimited && int(*v) < min {
			*v = rcmgr.LimitVal(min)
		}
	}
	raise64 := func(v *rcmgr.LimitVal64, min int64) {
		if *v != rcmgr.Unlimited64 && int64(*v) < min {
			*v = rcmgr.LimitVal64(min)
		}
	}
	// Leave room above the connection manager's high watermark: it trims
	// lazily, and connections being opened count too.
	for _, r := range []*rcmgr.ResourceLimits{&p.System, &p.AllowlistedSystem} {
		raise(&r.Conns, 2*connHigh)
		raise(&r.ConnsInbound, 2*connHigh)
		raise(&r.ConnsOutbound, 2*connHigh)
	}
	raise(&p.ProtocolPeerDefault.StreamsInbound, minStreamsPerPeerProtocol)
	raise(&p.ProtocolPeerDefault.StreamsOutbound, minStreamsPerPeerProtocol)
	raise(&p.ProtocolPeerDefault.Streams, 2*minStreamsPerPeerProtocol)
	raise(&p.PeerDefault.StreamsInbound, minStreamsPerPeerProtocol)
	raise(&p.PeerDefault.StreamsOutbound, minStreamsPerPeerProtocol)
	raise(&p.PeerDefault.Streams, 2*minStreamsPerPeerProtocol)
	raise64(&p.PeerDefault.Memory, minPeerMemory)
	return p.Build(scaled)
}

// ParseAddrInfos parses /ip4/.../tcp/.../p2p/<id> multiaddrs (bootstrap
// peers, seeders) into peer.AddrInfo values.
func ParseAddrInfos(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	for _, a := range addrs {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			return nil, fmt.Errorf("%w: bad peer multiaddr %q (want /ip4/.../tcp/.../p2p/<id>): %w", ErrConfig, a, err)
		}
		out = append(out, *ai)
	}
	return out, nil
}
