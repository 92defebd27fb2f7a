package seeder_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/shoal-dev/shoal/internal/harness"
	"github.com/shoal-dev/shoal/seeder"
)

const hookSecret = "Bearer webhook-test-secret"

// hookCluster is a preheat cluster whose seeder serves the webhooks.
func hookCluster(t *testing.T, cfg seeder.WebhookConfig) (*preheatCluster, string) {
	t.Helper()
	core, logs := observer.New(zap.InfoLevel)
	c := harness.NewCluster(t, harness.ClusterOptions{Log: zap.NewNop()})
	cfg.Addr = "127.0.0.1:0"
	s := c.AddSeeder(harness.SeederOptions{Log: zap.New(core).Named("seeder"), Webhook: cfg})
	for range 2 {
		c.AddNode(harness.NodeOptions{})
	}
	img, err := harness.BlobImage(41, 3<<20, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Origin.Push(img, "team/app:v2"); err != nil {
		t.Fatal(err)
	}
	pc := &preheatCluster{c: c, s: s, ref: c.Origin.Host + "/team/app:v2", blobs: imageBlobs(t, img), audit: logs}
	waitConnected(t, pc)
	return pc, "http://" + s.WebhookAddr()
}

func waitConnected(t *testing.T, pc *preheatCluster) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, n := range pc.c.Nodes {
		for !pc.s.ConnectedForTest(n.ID) {
			if time.Now().After(deadline) {
				t.Fatalf("the seeder does not see node %s", n.ID)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func post(t *testing.T, url, auth, body string) (int, string) {
	t.Helper()
	return do(t, http.MethodPost, url, auth, body)
}

// do sends one request with an optional Authorization header and returns
// the status and body.
func do(t *testing.T, method, url, auth, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (pc *preheatCluster) manifestDigest(t *testing.T) string {
	t.Helper()
	resp, err := http.Head(pc.c.Origin.URL() + "/v2/team/app/manifests/v2")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.Header.Get("Docker-Content-Digest")
}

func (pc *preheatCluster) waitHeld(t *testing.T) {
	t.Helper()
	for id, ok := range pc.holds(30 * time.Second) {
		if !ok {
			t.Fatalf("node %s lacks the pushed image", id)
		}
	}
}

// Harbor's webhook (default payload format, as its documentation shows
// it): a PUSH_ARTIFACT event names the repository and each resource's
// digest, tag and resource_url (host/repository:tag).
func TestHarborWebhookPreheats(t *testing.T) {
	pc, hook := hookCluster(t, seeder.WebhookConfig{Secret: hookSecret, Repos: []string{"team/*"}})
	d := pc.manifestDigest(t)
	host := pc.c.Origin.Host
	body := fmt.Sprintf(`{"type":"PUSH_ARTIFACT","occur_at":1700000000,"operator":"admin",
	 "event_data":{"resources":[{"digest":%q,"tag":"v2","resource_url":"%s/team/app:v2"}],
	  "repository":{"date_created":1700000000,"name":"app","namespace":"team","repo_full_name":"team/app","repo_type":"private"}}}`, d, host)
	if code, _ := post(t, hook+"/v1/webhooks/harbor", "", body); code != http.StatusUnauthorized {
		t.Fatalf("without the secret: %d, want 401", code)
	}
	code, answer := post(t, hook+"/v1/webhooks/harbor", hookSecret, body)
	if code != http.StatusAccepted || !strings.Contains(answer, host+"/team/app@"+d) {
		t.Fatalf("Harbor push: %d %s", code, answer)
	}
	pc.waitHeld(t)
	// Other event types are answered and ignored.
	if code, answer := post(t, hook+"/v1/webhooks/harbor", hookSecret, `{"type":"PULL_ARTIFACT","event_data":{}}`); code != http.StatusAccepted || !strings.Contains(answer, `"queued":null`) {
		t.Errorf("PULL_ARTIFACT: %d %s", code, answer)
	}
	if code, _ := post(t, hook+"/v1/webhooks/harbor", hookSecret, `{"type":`); code != http.StatusBadRequest {
		t.Errorf("broken JSON: %d, want 400", code)
	}
}

// Harbor's preheat provider, Kraken driver: Harbor checks GET /health
// (any 2xx is healthy) and preheats with POST /registry/notifications,
// a notification envelope whose one event is a push of the image's
// manifest (schema2 media type, the manifest's URL, the repository and
// tag), with the instance's credential as the Authorization header.
func TestHarborKrakenProvider(t *testing.T) {
	pc, hook := hookCluster(t, seeder.WebhookConfig{Secret: hookSecret})
	for auth, want := range map[string]int{"": http.StatusUnauthorized, "Bearer wrong": http.StatusUnauthorized, hookSecret: http.StatusOK} {
		req, _ := http.NewRequest(http.MethodGet, hook+"/health", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /health with %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
	d := pc.manifestDigest(t)
	body := fmt.Sprintf(`{"events":[{"id":"a1b2c3","timestamp":"2026-12-01T20:00:00Z","action":"push",
	 "target":{"mediaType":%q,"digest":%q,"repository":"team/app","url":"%s/v2/team/app/manifests/%s","tag":"v2"}}]}`,
		types.DockerManifestSchema2, d, pc.c.Origin.URL(), d)
	code, answer := post(t, hook+"/registry/notifications", hookSecret, body)
	if code != http.StatusAccepted || !strings.Contains(answer, "team/app@"+d) {
		t.Fatalf("Kraken-style preheat: %d %s", code, answer)
	}
	pc.waitHeld(t)
	// Each of those requests is one audit line, the preheat one more.
	ops := map[string]int{}
	for _, e := range pc.audit.FilterLoggerName("seeder.audit").All() {
		ops[e.ContextMap()["op"].(string)]++
	}
	if ops["webhook.health"] != 3 || ops["webhook.notifications"] != 1 {
		t.Errorf("audit ops %v", ops)
	}
	deadline := time.Now().Add(10 * time.Second)
	for pc.audit.FilterLoggerName("seeder.audit").FilterField(zap.String("op", "preheat")).Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	lines := pc.audit.FilterLoggerName("seeder.audit").FilterField(zap.String("op", "preheat")).All()
	if len(lines) != 1 || lines[0].ContextMap()["via"] != "webhook" || lines[0].ContextMap()["identity"] != "shared-secret" {
		t.Errorf("preheat audit lines %v", lines)
	}
}

// distribution's envelope: blob pushes, pulls and deletes are not image
// pushes; the patterns filter repositories and tags.
func TestParseDistributionAndFilters(t *testing.T) {
	body := `{"events":[
	 {"action":"push","target":{"mediaType":"application/octet-stream","digest":"sha256:aa","repository":"team/app"},"request":{"host":"reg:5000"}},
	 {"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bb","repository":"team/app","tag":"v1"},"request":{"host":"reg:5000"}},
	 {"action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:cc","repository":"team/app","tag":"v1"},"request":{"host":"reg:5000"}},
	 {"action":"push","target":{"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","digest":"sha256:dd","repository":"x/y"},"request":{"host":"reg:5000"}}]}`
	pushes, err := seeder.ParseDistribution([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(pushes) != 2 || pushes[0].Ref() != "reg:5000/team/app@sha256:bb" || pushes[1].Repo != "x/y" {
		t.Fatalf("pushes %+v", pushes)
	}
	c := seeder.WebhookConfig{Repos: []string{"team/*"}, Tags: []string{"v*"}}
	for _, tc := range []struct {
		repo, tag string
		want      bool
	}{{"team/app", "v1", true}, {"team/app", "latest", false}, {"team/app", "", false}, {"other/app", "v1", false}, {"team/a/b", "v1", false}} {
		if got := c.Wants(tc.repo, tc.tag); got != tc.want {
			t.Errorf("Wants(%s, %s) = %v", tc.repo, tc.tag, got)
		}
	}
	if !(seeder.WebhookConfig{}).Wants("any/thing", "") {
		t.Error("no patterns: every push, also by digest")
	}
}

// FuzzWebhookEvents: the two parsers never panic on any body, and what
// they return names no more images than the body could hold.
func FuzzWebhookEvents(f *testing.F) {
	f.Add([]byte(`{"events":[{"action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"a","digest":"sha256:00","url":"http://h/v2/a/manifests/x"},"request":{"host":"h"}}]}`))
	f.Add([]byte(`{"type":"PUSH_ARTIFACT","event_data":{"resources":[{"resource_url":"h/a:b","tag":"b"}],"repository":{"repo_full_name":"a"}}}`))
	f.Add([]byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, parse := range []func([]byte) ([]seeder.Push, error){seeder.ParseDistribution, seeder.ParseHarbor} {
			pushes, err := parse(body)
			if err != nil && pushes != nil {
				t.Fatal("pushes with an error")
			}
			if len(pushes) > len(body) {
				t.Fatalf("%d pushes from %d bytes", len(pushes), len(body))
			}
			for _, p := range pushes {
				_ = p.Ref()
			}
		}
	})
}

// The admin API: every operation is one audit line with the caller's
// address, the operation, the status, the result and the duration.
func TestAdminAuditLog(t *testing.T) {
	pc := newPreheatCluster(t, 1, 1<<20)
	admin := pc.s.AdminURL
	if code, _ := post(t, admin+"/v1/preheat", "", `{"nope":1}`); code != http.StatusBadRequest {
		t.Fatalf("bad preheat request: %d", code)
	}
	if code, _ := post(t, admin+"/v1/preheat", "", `{"ref":"`+pc.ref+`","scope":"weird"}`); code != http.StatusBadRequest {
		t.Fatalf("bad scope: %d", code)
	}
	resp, err := http.Get(admin + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&st)
	_ = resp.Body.Close()
	if code, out := post(t, admin+"/v1/preheat", "", `{"ref":"`+pc.ref+`","scope":"all"}`); code != http.StatusOK || !strings.Contains(out, `"done":true`) {
		t.Fatalf("preheat: %d %s", code, out)
	}
	lines := pc.audit.FilterLoggerName("seeder.audit").All()
	type want struct {
		op, result string
		status     int64
	}
	var got []want
	for _, e := range lines {
		f := e.ContextMap()
		if !strings.HasPrefix(f["remote"].(string), "127.0.0.1:") || f["via"] != "admin" {
			t.Errorf("audit line %v: want the caller's address and via=admin", f)
		}
		if _, ok := f["duration"]; !ok {
			t.Errorf("audit line %v: no duration", f)
		}
		st, _ := f["status"].(int64)
		got = append(got, want{f["op"].(string), f["result"].(string), st})
	}
	// The preheat's own line (no status) comes before its request's.
	expect := []want{{"preheat", "bad_request", 400}, {"preheat", "bad_request", 400}, {"status", "ok", 200}, {"preheat", "done", 0}, {"preheat", "done", 200}}
	if fmt.Sprint(got) != fmt.Sprint(expect) {
		t.Errorf("audit lines %v, want %v", got, expect)
	}
}

// Harbor's preheat provider, Dragonfly driver: GET /_ping for health,
// POST /preheats with the image (type, url, headers, image, tag, digest)
// answered with {"ID": ...}, then GET /preheats/{ID} polled until its
// Status is SUCCESS or FAILED.
func TestHarborDragonflyProvider(t *testing.T) {
	pc, hook := hookCluster(t, seeder.WebhookConfig{Secret: hookSecret})
	get := func(path, auth string) (int, string) { return do(t, http.MethodGet, hook+path, auth, "") }
	if code, _ := get("/_ping", ""); code != http.StatusUnauthorized {
		t.Errorf("ping without the secret: %d", code)
	}
	if code, _ := get("/_ping", hookSecret); code != http.StatusOK {
		t.Errorf("ping: %d", code)
	}
	d := pc.manifestDigest(t)
	body := fmt.Sprintf(`{"type":"image","url":"%s/v2/team/app/manifests/v2","headers":{"Authorization":"Basic dXNlcjpwYXNz"},
	 "image":"team/app","tag":"v2","digest":%q}`, pc.c.Origin.URL(), d)
	code, answer := post(t, hook+"/preheats", hookSecret, body)
	var created struct{ ID string }
	if err := json.Unmarshal([]byte(answer), &created); code != http.StatusOK || err != nil || created.ID == "" {
		t.Fatalf("POST /preheats: %d %s", code, answer)
	}
	deadline := time.Now().Add(60 * time.Second)
	var st struct{ ID, Status, ErrorMsg, StartTime, FinishTime string }
	for {
		code, answer := get("/preheats/"+created.ID, hookSecret)
		if code != http.StatusOK || json.Unmarshal([]byte(answer), &st) != nil {
			t.Fatalf("GET /preheats/%s: %d %s", created.ID, code, answer)
		}
		if st.Status == "SUCCESS" || st.Status == "FAILED" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Status != "SUCCESS" || st.FinishTime == "" || st.StartTime == "" {
		t.Fatalf("task %+v, want SUCCESS with its times", st)
	}
	pc.waitHeld(t)
	if code, _ := get("/preheats/nope", hookSecret); code != http.StatusNotFound {
		t.Errorf("unknown task: %d", code)
	}
	for name, bad := range map[string]string{
		"not an image":      `{"type":"file","url":"x","image":"team/app","tag":"v2"}`,
		"bad repository":    `{"type":"image","url":"http://h/v2/","image":"../x","tag":"v2"}`,
		"no tag, no digest": `{"type":"image","url":"http://h/v2/","image":"team/app"}`,
	} {
		if code, _ := post(t, hook+"/preheats", hookSecret, bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", name, code)
		}
	}
	if code, _ := post(t, hook+"/preheats", hookSecret, `{"type":"image","url":"http://elsewhere:1/v2/team/app/manifests/v2","image":"team/app","tag":"v2"}`); code != http.StatusForbidden {
		t.Errorf("an unconfigured registry: %d, want 403", code)
	}
}
