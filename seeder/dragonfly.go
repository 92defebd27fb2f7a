package seeder

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/shoal-dev/shoal/internal/oci"
)

// Harbor's Dragonfly driver (the "Dragonfly" provider of Harbor's P2P
// preheat): GET /_ping for health, POST /preheats with the image to
// preheat (answered with a task ID), GET /preheats/{id} for the task's
// status, which Harbor polls until SUCCESS or FAILED. Unlike the Kraken
// driver, Harbor sees the preheat's real end.

// maxTasks bounds the preheat tasks remembered for status queries.
const maxTasks = 1024

// Task states, in the words Harbor's Dragonfly driver reads.
const (
	taskWaiting = "WAITING"
	taskRunning = "RUNNING"
	taskSuccess = "SUCCESS"
	taskFailed  = "FAILED"
)

// dragonflyImage is the body of POST /preheats: the fields shoal reads.
type dragonflyImage struct {
	Type   string `json:"type"`
	URL    string `json:"url"`
	Image  string `json:"image"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
	Scope  string `json:"scope"`
}

// task is one preheat Harbor asked for.
type task struct {
	ID         string `json:"ID"`
	StartTime  string `json:"startTime,omitempty"`
	FinishTime string `json:"finishTime,omitempty"`
	ErrorMsg   string `json:"errorMsg"`
	Status     string `json:"Status"`
}

// tasks remembers the latest maxTasks tasks.
type tasks struct {
	mu    sync.Mutex
	byID  map[string]*task
	order []string
}

func (ts *tasks) add() *task {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var b [12]byte
	_, _ = rand.Read(b[:])
	t := &task{ID: hex.EncodeToString(b[:]), Status: taskWaiting}
	if ts.byID == nil {
		ts.byID = map[string]*task{}
	}
	if len(ts.order) >= maxTasks {
		delete(ts.byID, ts.order[0])
		ts.order = ts.order[1:]
	}
	ts.byID[t.ID] = t
	ts.order = append(ts.order, t.ID)
	return t
}

func (ts *tasks) get(id string) (task, bool) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, ok := ts.byID[id]
	if !ok {
		return task{}, false
	}
	return *t, true
}

// set updates a task's state.
func (ts *tasks) set(t *task, status, errMsg string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	now := time.Now().UTC().Format(time.RFC3339)
	t.Status, t.ErrorMsg = status, errMsg
	switch status {
	case taskRunning:
		t.StartTime = now
	case taskSuccess, taskFailed:
		t.FinishTime = now
	}
}

// dragonflyScope maps Dragonfly's scope words to a shoal scope ("" keeps
// the webhook's).
func dragonflyScope(s string) string {
	switch s {
	case "single_seed_peer":
		return "seeder"
	case "all_peers", "all_seed_peers":
		return "all"
	}
	return ""
}

// dragonflyRoutes adds the Dragonfly driver's endpoints to mux.
func (s *Seeder) dragonflyRoutes(mux *http.ServeMux, identity func(*http.Request) string) {
	mux.HandleFunc("GET /_ping", s.audit.audited("dragonfly.ping", "harbor", identity, s.checked(func(w http.ResponseWriter, _ *http.Request, _ Caller) (string, []zap.Field) {
		_, _ = w.Write([]byte("OK"))
		return "ok", nil
	})))
	mux.HandleFunc("POST /preheats", s.audit.audited("dragonfly.preheat", "harbor", identity, s.checked(s.dragonflyPreheat)))
	mux.HandleFunc("GET /preheats/{id}", s.audit.audited("dragonfly.status", "harbor", identity, s.checked(func(w http.ResponseWriter, r *http.Request, _ Caller) (string, []zap.Field) {
		t, ok := s.tasks.get(r.PathValue("id"))
		if !ok {
			http.Error(w, `{"error":"no such task"}`, http.StatusNotFound)
			return "not_found", nil
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(t)
		return t.Status, []zap.Field{zap.String("task", t.ID)}
	})))
}

func (s *Seeder) dragonflyPreheat(w http.ResponseWriter, r *http.Request, by Caller) (string, []zap.Field) {
	body, err := readBody(w, r, maxWebhookBody)
	var img dragonflyImage
	if err == nil {
		err = json.Unmarshal(body, &img)
	}
	if err != nil || img.Type != "image" || oci.ValidateName(img.Image) != nil || (img.Tag == "" && img.Digest == "") {
		http.Error(w, `{"error":"want {\"type\":\"image\",\"url\":...,\"image\":\"repo\",\"tag\":...,\"digest\":...}"}`, http.StatusBadRequest)
		return "bad_request", nil
	}
	c := s.cfg.Webhook
	p := Push{Repo: img.Image, Tag: img.Tag, Digest: img.Digest}
	if u, err := url.Parse(img.URL); err == nil {
		p.Registry = u.Host
	}
	if c.Registry != "" {
		p.Registry = c.Registry
	}
	if p.Registry == "" || !s.gate.configured(p.Registry) || !c.Wants(p.Repo, p.Tag) {
		http.Error(w, `{"error":"this seeder does not preheat that image (registry or patterns)"}`, http.StatusForbidden)
		return "refused", []zap.Field{zap.String("ref", p.Ref())}
	}
	scope := dragonflyScope(strings.ToLower(img.Scope))
	if scope == "" {
		scope = c.scope()
	}
	t := s.tasks.add()
	req := PreheatRequest{Ref: p.Ref(), Platform: "all", Scope: scope}
	if !s.enqueueTask(by, req, t) {
		s.tasks.set(t, taskFailed, "too many preheats waiting")
		w.Header().Set("Retry-After", "30")
		http.Error(w, `{"error":"too many preheats waiting"}`, http.StatusServiceUnavailable)
		return "busy", nil
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"ID": t.ID})
	return "accepted", []zap.Field{zap.String("ref", req.Ref), zap.String("task", t.ID)}
}
