package upstream

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/authn/kubernetes"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
)

// The pull-secrets source: a directory of mounted Kubernetes image pull
// Secrets, used the way the kubelet uses a pod's imagePullSecrets
// (go-containerregistry's Kubernetes keychain, built from the files
// without an API server: hostname globs such as *.gcr.io, path-scoped
// entries, the most specific entry first, the first Secret first).
//
// Layout of --pull-secrets-dir DIR (names in sorted order):
//
//	DIR/<secret>/.dockerconfigjson   a kubernetes.io/dockerconfigjson Secret mounted at DIR/<secret>
//	DIR/<secret>/.dockercfg          a kubernetes.io/dockercfg Secret mounted the same way
//	DIR/<name>                       a file holding a .dockerconfigjson (a projected item)
//	DIR/.dockerconfigjson            one Secret mounted at DIR itself
//
// Entries starting with ".." (the kubelet's atomic-update internals) and
// other dot files are skipped. Changes (a Secret updated in place, one
// added or removed) are picked up within a second.

// Bounds on a pull secrets directory.
const (
	maxPullSecrets = 256
)

type pullSecrets struct {
	dir  string
	ring *watched[authn.Keychain]
	// bad reports a Secret that cannot be used (the others still are).
	bad func(string, error)
}

func openPullSecrets(dir string, onBad func(string, error)) (*pullSecrets, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: --pull-secrets-dir: %w", ErrBadCredentials, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%w: --pull-secrets-dir %s is not a directory", ErrBadCredentials, dir)
	}
	p := &pullSecrets{dir: dir, bad: onBad}
	p.ring = newWatched(dir, p.stamp, p.load, onBad)
	if _, err := p.ring.get(); err != nil {
		return nil, err
	}
	return p, nil
}

// secretFile is one Secret's file in the directory.
type secretFile struct {
	path string
	kind corev1.SecretType
}

// files lists the Secrets' files, sorted, at most maxPullSecrets.
func (p *pullSecrets) files() []secretFile {
	var out []secretFile
	if _, err := os.Stat(filepath.Join(p.dir, corev1.DockerConfigJsonKey)); err == nil {
		out = append(out, secretFile{filepath.Join(p.dir, corev1.DockerConfigJsonKey), corev1.SecretTypeDockerConfigJson})
	}
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return out
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		if len(out) >= maxPullSecrets {
			break
		}
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		path := filepath.Join(p.dir, n)
		fi, err := os.Stat(path) // through the kubelet's symlinks
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			if fi.Mode().IsRegular() {
				out = append(out, secretFile{path, corev1.SecretTypeDockerConfigJson})
			}
			continue
		}
		for _, k := range []struct {
			key  string
			kind corev1.SecretType
		}{{corev1.DockerConfigJsonKey, corev1.SecretTypeDockerConfigJson}, {corev1.DockerConfigKey, corev1.SecretTypeDockercfg}} {
			if fi, err := os.Stat(filepath.Join(path, k.key)); err == nil && fi.Mode().IsRegular() {
				out = append(out, secretFile{filepath.Join(path, k.key), k.kind})
			}
		}
	}
	return out
}

func (p *pullSecrets) stamp() string {
	var b strings.Builder
	for _, f := range p.files() {
		b.WriteString(f.path)
		b.WriteByte('=')
		b.WriteString(statStamp(f.path))
		b.WriteByte(';')
	}
	return b.String()
}

// load builds the keychain from every usable Secret; one that cannot be
// read or parsed is reported and left out.
func (p *pullSecrets) load() (authn.Keychain, error) {
	var secrets []corev1.Secret
	for _, f := range p.files() {
		s, err := secretFromFile(f)
		if err != nil {
			if p.bad != nil {
				p.bad(f.path, err)
			}
			continue
		}
		secrets = append(secrets, s)
	}
	kc, err := kubernetes.NewFromPullSecrets(context.Background(), secrets)
	if err != nil {
		return nil, fmt.Errorf("%w: pull secrets in %s: %w", ErrBadCredentials, p.dir, err)
	}
	return kc, nil
}

// secretFromFile reads one Secret's file and checks it parses on its own.
func secretFromFile(f secretFile) (corev1.Secret, error) {
	b, err := readCredentialFile(f.path)
	if err != nil {
		return corev1.Secret{}, err
	}
	key := corev1.DockerConfigJsonKey
	if f.kind == corev1.SecretTypeDockercfg {
		key = corev1.DockerConfigKey
	}
	s := corev1.Secret{Type: f.kind, Data: map[string][]byte{key: b}}
	if _, err := kubernetes.NewFromPullSecrets(context.Background(), []corev1.Secret{s}); err != nil {
		// The JSON decoder's message names a position, never a value.
		return corev1.Secret{}, fmt.Errorf("%w: pull secret %s: %w", ErrBadCredentials, f.path, err)
	}
	return s, nil
}

// lookup returns the Secrets' credentials for repo at the registry name.
func (p *pullSecrets) lookup(registry, repo string) authn.AuthConfig {
	kc, err := p.ring.get()
	if err != nil || kc == nil {
		return authn.AuthConfig{}
	}
	for _, host := range secretHosts(registry) {
		a, err := kc.Resolve(resource{registry: host, repo: repo})
		if err != nil || a == authn.Anonymous {
			continue
		}
		cfg, err := a.Authorization()
		if err == nil && cfg != nil && *cfg != (authn.AuthConfig{}) {
			return *cfg
		}
	}
	return authn.AuthConfig{}
}

// secretHosts are the hosts a Secret may key a registry by: Docker Hub's
// several names, else the name itself.
func secretHosts(registry string) []string {
	if isDockerHub(registry) {
		return []string{name.DefaultRegistry, DockerHub}
	}
	return []string{registry}
}

// resource is an authn.Resource: a repository at a registry host, spelt
// as given.
type resource struct{ registry, repo string }

func (r resource) String() string      { return r.registry + "/" + r.repo }
func (r resource) RegistryStr() string { return r.registry }
