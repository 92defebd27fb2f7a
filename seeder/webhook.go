package seeder

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/oci"
)

// WebhookConfig configures preheat from a push: the endpoints that take
// distribution's registry notifications, Harbor's webhook and Harbor's
// preheat provider requests (the Kraken driver's API).
type WebhookConfig struct {
	// Addr is the webhook listener's address ("" : off).
	Addr string
	// Secret, when set, must be the exact Authorization header of every
	// request (as distribution's endpoint headers, Harbor's "Auth Header"
	// or its provider credential send it).
	Secret string
	// Repos and Tags are path.Match patterns ("team/*", "v*"); a pushed
	// image is preheated only if its repository matches one of Repos and
	// its tag one of Tags (none: every repository, every tag; a push
	// without a tag passes only when Tags is empty).
	Repos []string
	Tags  []string
	// Scope is the preheat scope of a pushed image (default "all").
	Scope string
	// Registry names the registry of every event, as the seeder's
	// upstreams spell it (default: the host the event names).
	Registry string
}

// Webhook limits.
const (
	// maxWebhookBody caps a webhook request's body.
	maxWebhookBody = 1 << 20
	// maxQueuedPreheats caps preheats waiting to run; past it a webhook
	// is answered 503 (distribution retries later).
	maxQueuedPreheats = 64
)

// ErrBadPattern: a repository or tag pattern path.Match refuses.
var ErrBadPattern = errors.New("seeder: bad webhook pattern")

// ErrWebhookSecret: a webhook listener beyond loopback without a shared
// secret (anyone who reaches it could make every node fetch).
var ErrWebhookSecret = errors.New("seeder: a webhook listener off loopback needs --webhook-secret-file")

// check validates the patterns and the scope, and refuses a listener
// reachable from other hosts without a shared secret.
func (c WebhookConfig) check() error {
	if c.Secret == "" && !loopback(c.Addr) {
		return fmt.Errorf("%w: %s", ErrWebhookSecret, c.Addr)
	}
	for _, p := range append(append([]string{}, c.Repos...), c.Tags...) {
		if _, err := path.Match(p, ""); err != nil {
			return fmt.Errorf("%w: %q: %w", ErrBadPattern, p, err)
		}
	}
	_, err := ParseScope(c.scope())
	return err
}

// loopback reports whether addr (host:port) listens on loopback only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c WebhookConfig) scope() string {
	if c.Scope == "" {
		return "all"
	}
	return c.Scope
}

// Wants says whether a push of repo:tag is to be preheated.
func (c WebhookConfig) Wants(repo, tag string) bool {
	return matchAny(c.Repos, repo, true) && matchAny(c.Tags, tag, tag != "" || len(c.Tags) == 0)
}

func matchAny(patterns []string, s string, empty bool) bool {
	if len(patterns) == 0 {
		return empty
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok && s != "" {
			return true
		}
	}
	return false
}

// Push is one pushed image an event names.
type Push struct {
	Registry, Repo, Tag, Digest string
}

// Ref is the pushed image's reference: by digest when the event has one.
func (p Push) Ref() string {
	if p.Digest != "" {
		return p.Registry + "/" + p.Repo + "@" + p.Digest
	}
	return p.Registry + "/" + p.Repo + ":" + p.Tag
}

// distributionEnvelope is distribution's notification envelope (and the
// body Harbor's Kraken driver posts): the fields shoal reads.
type distributionEnvelope struct {
	Events []struct {
		Action string `json:"action"`
		Target struct {
			MediaType  string `json:"mediaType"`
			Digest     string `json:"digest"`
			Repository string `json:"repository"`
			Tag        string `json:"tag"`
			URL        string `json:"url"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
	} `json:"events"`
}

// manifestTypes are the media types of a pushed image (distribution also
// sends events for every blob pushed; those are not images).
var manifestTypes = map[string]bool{
	string(types.OCIManifestSchema1): true, string(types.OCIImageIndex): true,
	string(types.DockerManifestSchema2): true, string(types.DockerManifestList): true,
}

// ParseDistribution returns the image pushes of a notification envelope.
func ParseDistribution(body []byte) ([]Push, error) {
	var env distributionEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadEvent, err)
	}
	var out []Push
	for _, e := range env.Events {
		t := e.Target
		if e.Action != "push" || !manifestTypes[t.MediaType] {
			continue
		}
		host := e.Request.Host
		if u, err := url.Parse(t.URL); err == nil && u.Host != "" {
			host = u.Host // Harbor's Kraken driver names the registry here
		}
		out = append(out, Push{Registry: host, Repo: t.Repository, Tag: t.Tag, Digest: t.Digest})
	}
	return out, nil
}

// harborEvent is Harbor's webhook payload (the default format): the
// fields shoal reads.
type harborEvent struct {
	Type      string `json:"type"`
	EventData struct {
		Resources []struct {
			Digest      string `json:"digest"`
			Tag         string `json:"tag"`
			ResourceURL string `json:"resource_url"`
		} `json:"resources"`
		Repository struct {
			RepoFullName string `json:"repo_full_name"`
		} `json:"repository"`
	} `json:"event_data"`
}

// ParseHarbor returns the image pushes of a Harbor webhook.
func ParseHarbor(body []byte) ([]Push, error) {
	var ev harborEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadEvent, err)
	}
	if ev.Type != "PUSH_ARTIFACT" {
		return nil, nil
	}
	var out []Push
	for _, r := range ev.EventData.Resources {
		// resource_url is host/repository:tag (or @digest).
		host, _, _ := strings.Cut(r.ResourceURL, "/")
		out = append(out, Push{Registry: host, Repo: ev.EventData.Repository.RepoFullName, Tag: r.Tag, Digest: r.Digest})
	}
	return out, nil
}

var errBadEvent = errors.New("seeder: bad webhook event")

// readBody reads at most limit bytes of r's body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
}

// webhookHandler serves the webhook listener.
func (s *Seeder) webhookHandler() http.Handler {
	c := s.cfg.Webhook
	identity := func(r *http.Request) string {
		if c.Secret != "" && s.authorized(r) {
			return "shared-secret"
		}
		return ""
	}
	mux := http.NewServeMux()
	for route, parse := range map[string]func([]byte) ([]Push, error){
		"POST /v1/webhooks/distribution": ParseDistribution,
		"POST /v1/webhooks/harbor":       ParseHarbor,
		// Harbor's preheat provider, Kraken driver: the same envelope.
		"POST /registry/notifications": ParseDistribution,
	} {
		op := "webhook." + path.Base(route)
		mux.HandleFunc(route, s.audit.audited(op, "webhook", identity, s.checked(func(w http.ResponseWriter, r *http.Request, by Caller) (string, []zap.Field) {
			return s.takePushes(w, r, parse, by)
		})))
	}
	s.dragonflyRoutes(mux, identity)
	// Harbor's provider health check (Kraken driver: any 2xx is healthy).
	mux.HandleFunc("GET /health", s.audit.audited("webhook.health", "webhook", identity, s.checked(func(w http.ResponseWriter, _ *http.Request, _ Caller) (string, []zap.Field) {
		_, _ = w.Write([]byte("ok\n"))
		return "ok", nil
	})))
	return mux
}

// handler is an audited operation: it answers and returns its result word
// and extra audit fields.
type handler func(w http.ResponseWriter, r *http.Request, by Caller) (string, []zap.Field)

// checked answers 401 to a request without the shared secret, else runs h.
func (s *Seeder) checked(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, by Caller) (string, []zap.Field) {
		if !s.authorized(r) {
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return "unauthorized", nil
		}
		return h(w, r, by)
	}
}

// authorized checks the shared secret, in constant time.
func (s *Seeder) authorized(r *http.Request) bool {
	want := s.cfg.Webhook.Secret
	return want == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) == 1
}

// takePushes parses a webhook, filters its pushes and queues their
// preheats; it answers 202 with what it queued.
func (s *Seeder) takePushes(w http.ResponseWriter, r *http.Request, parse func([]byte) ([]Push, error), by Caller) (string, []zap.Field) {
	body, err := readBody(w, r, maxWebhookBody)
	if err != nil {
		http.Error(w, `{"error":"body too large or unreadable"}`, http.StatusRequestEntityTooLarge)
		return "bad_request", []zap.Field{zap.Error(err)}
	}
	pushes, err := parse(body)
	if err != nil {
		http.Error(w, `{"error":"not a notification this endpoint takes"}`, http.StatusBadRequest)
		return "bad_request", []zap.Field{zap.Error(err)}
	}
	c := s.cfg.Webhook
	var queued, ignored []string
	for _, p := range pushes {
		if c.Registry != "" {
			p.Registry = c.Registry
		}
		if p.Registry == "" || !s.gate.configured(p.Registry) || !c.Wants(p.Repo, p.Tag) || oci.ValidateName(p.Repo) != nil {
			ignored = append(ignored, p.Ref())
			continue
		}
		req := PreheatRequest{Ref: p.Ref(), Platform: "all", Scope: c.scope()}
		if !s.enqueue(by, req) {
			w.Header().Set("Retry-After", "30")
			http.Error(w, `{"error":"too many preheats waiting"}`, http.StatusServiceUnavailable)
			return "busy", []zap.Field{zap.Strings("queued", queued)}
		}
		queued = append(queued, req.Ref)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(map[string]any{"queued": queued, "ignored": ignored})
	return "accepted", []zap.Field{zap.Strings("queued", queued), zap.Strings("ignored", ignored)}
}

// queued is a preheat a webhook asked for (with its task, if Harbor's
// Dragonfly driver will ask for its status).
type queued struct {
	by   Caller
	req  PreheatRequest
	task *task
}

// enqueue queues a preheat unless the queue is full; one already waiting
// for the same reference and scope is not queued twice.
func (s *Seeder) enqueue(by Caller, req PreheatRequest) bool { return s.enqueueTask(by, req, nil) }

// enqueueTask is enqueue with a task to keep up to date (a task is always
// queued: its own status is asked for).
func (s *Seeder) enqueueTask(by Caller, req PreheatRequest, t *task) bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if s.waiting[req] && t == nil {
		return true
	}
	select {
	case s.queue <- queued{by: by, req: req, task: t}:
		s.waiting[req] = true
		return true
	default:
		return false
	}
}

// runQueue runs queued preheats one after another until ctx ends.
func (s *Seeder) runQueue(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case q := <-s.queue:
			s.qmu.Lock()
			delete(s.waiting, q.req)
			s.qmu.Unlock()
			if q.task != nil {
				s.tasks.set(q.task, taskRunning, "")
			}
			_, err := s.PreheatScope(ctx, q.by, q.req, func(ScopeProgress) {})
			if q.task != nil {
				if err != nil {
					s.tasks.set(q.task, taskFailed, err.Error())
				} else {
					s.tasks.set(q.task, taskSuccess, "")
				}
			}
		}
	}
}
