package upstream

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// DefaultTimeout bounds waiting for an upstream answer (connect, headers, a
// stalled body) when no timeout is configured. The flag default and every
// constructor use it.
const DefaultTimeout = 15 * time.Second

// Settings are the upstream part of the daemon's and the seeder's
// configuration.
type Settings struct {
	// Upstreams maps registry names to base URLs, as NAME=URL pairs.
	Upstreams []string
	// AllowPatterns are registry name patterns (*.example.com) fetched
	// from https://NAME without a mapping of their own. None by default:
	// an unmapped name is refused.
	AllowPatterns []string
	// DefaultUpstream is the registry name for requests that name none; it
	// must be mapped or allowed ("": such requests are refused).
	DefaultUpstream string
	// DockerConfig is a docker config.json with upstream credentials
	// (auths, credHelpers, credsStore, identity tokens).
	DockerConfig string
	// PullSecretsDir is a directory of mounted kubernetes.io/dockerconfigjson
	// Secrets (see the pull-secrets source in auth_pullsecrets.go).
	PullSecretsDir string
	// Credentials choose the credential sources per upstream, as
	// NAME=SOURCE pairs (ParseCredentialChoice); unnamed upstreams use
	// docker-config, then pull-secrets.
	Credentials []string
	// CredentialTTL is how long a credential helper's answer is reused
	// (0: DefaultCredentialTTL).
	CredentialTTL time.Duration
	// HelperTimeout bounds one credential helper call (0:
	// DefaultHelperTimeout).
	HelperTimeout time.Duration
	// CAFile is an extra PEM CA bundle trusted for https upstreams.
	CAFile string
	// Timeout bounds waiting for an upstream answer (0: DefaultTimeout).
	Timeout time.Duration
}

// Open builds the upstream client the settings describe.
func (s Settings) Open(log *zap.Logger, reg prometheus.Registerer) (*Client, error) {
	return Open(s.Upstreams, s.AllowPatterns, s.DefaultUpstream, s.CredentialConfig(), Config{CAFile: s.CAFile, Timeout: s.Timeout}, log, reg)
}

// CredentialConfig is the credential part of the settings.
func (s Settings) CredentialConfig() CredentialConfig {
	return CredentialConfig{
		DockerConfig: s.DockerConfig, PullSecretsDir: s.PullSecretsDir, Choices: s.Credentials,
		TTL: s.CredentialTTL, HelperTimeout: s.HelperTimeout,
	}
}
