package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// recorder is an httptest handler that answers from a route table and
// records what it was sent.
type recorder struct {
	mu     sync.Mutex
	routes map[string]func(w http.ResponseWriter, body []byte)
	got    []string // "METHOD PATH"
	query  []string // the raw query of each request
	bodies [][]byte
	hdrs   []http.Header
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	key := req.Method + " " + req.URL.EscapedPath()
	r.mu.Lock()
	r.got = append(r.got, key)
	r.query = append(r.query, req.URL.RawQuery)
	r.bodies = append(r.bodies, body)
	r.hdrs = append(r.hdrs, req.Header.Clone())
	h := r.routes[key]
	r.mu.Unlock()
	if h == nil {
		writeJSON(w, http.StatusNotFound, api.Error{Message: "no route " + key, Code: api.CodeNotFound})
		return
	}
	h(w, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func reply(status int, v any) func(http.ResponseWriter, []byte) {
	return func(w http.ResponseWriter, _ []byte) { writeJSON(w, status, v) }
}

func newTestClient(t *testing.T, routes map[string]func(http.ResponseWriter, []byte)) (*Client, *recorder) {
	t.Helper()
	rec := &recorder{routes: routes}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return New(srv.URL, nil), rec
}

var (
	nodeA = api.NodeView{Node: api.Node{Name: "node-a", CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady, CPUsUsed: 2, MemoryUsed: 1536 * api.MiB, Workloads: 1}
	web   = api.WorkloadView{
		Workload: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "web", Kind: api.KindVM, CPUs: 2, Memory: api.GiB}},
		State:    api.StateRunning, Host: "node-a", Epoch: 7,
	}
)

var (
	explanation = api.Explanation{Workload: "web", State: api.StateRunning, Host: "node-a", Summary: "placed on node-a (score 87)",
		Hosts: []api.HostVerdict{{Host: "node-a", Feasible: true, Score: 87, Chosen: true}, {Host: "node-b", Reason: "down"}}}
	spread = api.Settings{Schema: api.SchemaVersion, Strategy: api.StrategySpread, Preemption: true, TolerateHostFailures: 1, ReservedCPUs: 2, ReservedMemory: 4 * api.GiB}
)

func ptr[T any](v T) *T { return &v }

func TestMethodsDecodeResponses(t *testing.T) {
	ctx := context.Background()
	stopping := web
	stopping.State = api.StateStopping
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/health":                reply(200, api.Health{Status: "ok", Server: "s1", Leader: "s1", IsLeader: true, Revision: 3}),
		"GET /v1/nodes":                 reply(200, []api.NodeView{nodeA}),
		"GET /v1/nodes/node-a":          reply(200, nodeA),
		"GET /v1/workloads":             reply(200, []api.WorkloadView{web}),
		"GET /v1/workloads/web":         reply(200, web),
		"POST /v1/workloads":            reply(201, web),
		"DELETE /v1/workloads/web":      reply(202, stopping),
		"GET /v1/allocations":           reply(200, []api.Allocation{{Workload: "web", Host: "node-a", CPUs: 2, Memory: api.GiB, Epoch: 7}}),
		"GET /v1/workloads/web/explain": reply(200, explanation),
		"GET /v1/settings":              reply(200, api.DefaultSettings()),
		"PUT /v1/settings":              reply(200, spread),
	})

	tests := []struct {
		name  string
		call  func() (any, error)
		route string
		want  any
	}{
		{"health", func() (any, error) { return c.Health(ctx) }, "GET /v1/health",
			&api.Health{Status: "ok", Server: "s1", Leader: "s1", IsLeader: true, Revision: 3}},
		{"list nodes", func() (any, error) { return c.ListNodes(ctx) }, "GET /v1/nodes", []api.NodeView{nodeA}},
		{"get node", func() (any, error) { return c.GetNode(ctx, "node-a") }, "GET /v1/nodes/node-a", &nodeA},
		{"list workloads", func() (any, error) { return c.ListWorkloads(ctx) }, "GET /v1/workloads", []api.WorkloadView{web}},
		{"get workload", func() (any, error) { return c.GetWorkload(ctx, "web") }, "GET /v1/workloads/web", &web},
		{"create workload", func() (any, error) { return c.CreateWorkload(ctx, web.WorkloadSpec) }, "POST /v1/workloads", &web},
		{"delete workload", func() (any, error) { return c.DeleteWorkload(ctx, "web") }, "DELETE /v1/workloads/web", &stopping},
		{"list allocations", func() (any, error) { return c.ListAllocations(ctx) }, "GET /v1/allocations",
			[]api.Allocation{{Workload: "web", Host: "node-a", CPUs: 2, Memory: api.GiB, Epoch: 7}}},
		{"explain", func() (any, error) { return c.Explain(ctx, "web") }, "GET /v1/workloads/web/explain", &explanation},
		{"get settings", func() (any, error) { return c.GetSettings(ctx) }, "GET /v1/settings", ptr(api.DefaultSettings())},
		{"put settings", func() (any, error) { return c.PutSettings(ctx, spread) }, "PUT /v1/settings", &spread},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.call()
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
			rec.mu.Lock()
			last := rec.got[len(rec.got)-1]
			rec.mu.Unlock()
			if last != tt.route {
				t.Errorf("request %q, want %q", last, tt.route)
			}
		})
	}
}

func TestCreateWorkloadSendsSpecAsJSON(t *testing.T) {
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"POST /v1/workloads": reply(201, web),
	})
	spec := api.WorkloadSpec{Name: "web", Kind: api.KindVM, CPUs: 2, Memory: 256 * api.MiB, Labels: map[string]string{"tier": "front"}}
	if _, err := c.CreateWorkload(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	if ct := rec.hdrs[0].Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	dec := json.NewDecoder(strings.NewReader(string(rec.bodies[0])))
	dec.DisallowUnknownFields() // the server is strict too
	var got api.WorkloadSpec
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("server-side decode: %v (body %s)", err, rec.bodies[0])
	}
	if !reflect.DeepEqual(got, spec) {
		t.Errorf("sent %+v, want %+v", got, spec)
	}
	if !strings.Contains(string(rec.bodies[0]), `"memory":"256MiB"`) {
		t.Errorf("memory not sent as a size string: %s", rec.bodies[0])
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name       string
		handler    func(http.ResponseWriter, []byte)
		wantStatus int
		wantCode   string
		wantMsg    string
		notFound   bool
		conflict   bool
	}{
		{"not found", reply(404, api.Error{Message: `workload "web" not found`, Code: api.CodeNotFound}),
			404, api.CodeNotFound, `workload "web" not found (HTTP 404, not_found)`, true, false},
		{"conflict", reply(409, api.Error{Message: `workload "web" already exists`, Code: api.CodeConflict}),
			409, api.CodeConflict, `workload "web" already exists (HTTP 409, conflict)`, false, true},
		{"invalid", reply(400, api.Error{Message: "cpus must be ...", Code: api.CodeInvalid}),
			400, api.CodeInvalid, "cpus must be ... (HTTP 400, invalid_argument)", false, false},
		{"too large", reply(413, api.Error{Message: "body too large", Code: api.CodeTooLarge}),
			413, api.CodeTooLarge, "body too large (HTTP 413, too_large)", false, false},
		{"unavailable, not JSON", func(w http.ResponseWriter, _ []byte) {
			w.WriteHeader(503)
			_, _ = io.WriteString(w, "<html>bad gateway</html>\n")
		}, 503, api.CodeUnavailable, "<html>bad gateway</html> (HTTP 503, unavailable)", false, false},
		{"internal, empty body", func(w http.ResponseWriter, _ []byte) { w.WriteHeader(500) },
			500, api.CodeInternal, "Internal Server Error (HTTP 500, internal)", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){"GET /v1/workloads/web": tt.handler})
			_, err := c.GetWorkload(context.Background(), "web")
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is not an *APIError", err, err)
			}
			if ae.Status != tt.wantStatus || ae.Code != tt.wantCode || err.Error() != tt.wantMsg {
				t.Errorf("got status %d code %q msg %q; want %d %q %q", ae.Status, ae.Code, err.Error(), tt.wantStatus, tt.wantCode, tt.wantMsg)
			}
			var body *api.Error
			if !errors.As(err, &body) || body.Code != tt.wantCode {
				t.Errorf("errors.As(*api.Error) = %v, %+v", errors.As(err, &body), body)
			}
			if IsNotFound(err) != tt.notFound || IsConflict(err) != tt.conflict {
				t.Errorf("IsNotFound=%v IsConflict=%v", IsNotFound(err), IsConflict(err))
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there any more

	c := New(url, nil)
	_, err := c.ListNodes(context.Background())
	var ue *UnreachableError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v (%T) is not an *UnreachableError", err, err)
	}
	for _, want := range []string{"cannot reach the Bulwark API at " + url, "bulwarkd dev", "--api", "BULWARK_API"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestCancelledContextIsNotUnreachable(t *testing.T) {
	c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){"GET /v1/nodes": reply(200, []api.NodeView{})})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.ListNodes(ctx)
	var ue *UnreachableError
	if !errors.Is(err, context.Canceled) || errors.As(err, &ue) {
		t.Fatalf("got %v (%T), want context.Canceled and no unreachable hint", err, err)
	}
}

func TestEmptyNameSendsNothing(t *testing.T) {
	c, rec := newTestClient(t, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"GetNode":        func() error { _, err := c.GetNode(ctx, ""); return err },
		"GetWorkload":    func() error { _, err := c.GetWorkload(ctx, ""); return err },
		"DeleteWorkload": func() error { _, err := c.DeleteWorkload(ctx, ""); return err },
		"Explain":        func() error { _, err := c.Explain(ctx, ""); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || !strings.Contains(err.Error(), "name is empty") {
			t.Errorf("%s: error %v, want 'name is empty'", name, err)
		}
	}
	if len(rec.got) != 0 {
		t.Errorf("requests were sent: %v", rec.got)
	}
}

func TestNamesArePathEscaped(t *testing.T) {
	c, rec := newTestClient(t, nil)
	_, _ = c.GetWorkload(context.Background(), "a/../b")
	_, _ = c.Explain(context.Background(), "a/b")
	if want := []string{"GET /v1/workloads/a%2F..%2Fb", "GET /v1/workloads/a%2Fb/explain"}; !reflect.DeepEqual(rec.got, want) {
		t.Errorf("requests %v, want %v", rec.got, want)
	}
}

func TestPutSettingsSendsTheWholeSet(t *testing.T) {
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"PUT /v1/settings": reply(200, api.DefaultSettings()),
	})
	// Zero values too: a field left out would be reset by the server anyway,
	// but the body should say what the caller means.
	if _, err := c.PutSettings(context.Background(), api.DefaultSettings()); err != nil {
		t.Fatal(err)
	}
	if ct := rec.hdrs[0].Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var sent map[string]any
	if err := json.Unmarshal(rec.bodies[0], &sent); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"schema": 1.0, "strategy": "binpack", "preemption": false, "tolerate_host_failures": 0.0, "reserved_cpus": 0.0, "reserved_memory": "0B", "failure_timeout": "10m0s",
		"rebalance_threshold": 20.0, "auto_rebalance_interval": "10m0s"}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("sent %v, want %v", sent, want)
	}
	dec := json.NewDecoder(strings.NewReader(string(rec.bodies[0])))
	dec.DisallowUnknownFields() // the server is strict
	var st api.Settings
	if err := dec.Decode(&st); err != nil || st != api.DefaultSettings() {
		t.Errorf("server-side decode: %v %+v", err, st)
	}
}

func TestUpdateSettings(t *testing.T) {
	ctx := context.Background()
	t.Run("changes and writes back", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"GET /v1/settings": reply(200, spread),
			"PUT /v1/settings": func(w http.ResponseWriter, body []byte) {
				var st api.Settings
				_ = json.Unmarshal(body, &st)
				writeJSON(w, 200, st)
			},
		})
		before, after, err := c.UpdateSettings(ctx, func(s *api.Settings) error {
			s.ReservedCPUs = 8
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := spread
		want.ReservedCPUs = 8
		if *before != spread || *after != want {
			t.Errorf("before %+v after %+v", before, after)
		}
		if !reflect.DeepEqual(rec.got, []string{"GET /v1/settings", "PUT /v1/settings"}) {
			t.Errorf("requests %v", rec.got)
		}
	})
	t.Run("change fails", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){"GET /v1/settings": reply(200, spread)})
		boom := errors.New("boom")
		before, after, err := c.UpdateSettings(ctx, func(s *api.Settings) error { return boom })
		if !errors.Is(err, boom) || *before != spread || after != nil {
			t.Errorf("got %v %v %v", before, after, err)
		}
		if len(rec.got) != 1 {
			t.Errorf("requests %v", rec.got)
		}
	})
	t.Run("unknown field is not reset", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"GET /v1/settings": func(w http.ResponseWriter, _ []byte) {
				_, _ = io.WriteString(w, `{"schema":1,"strategy":"spread","preemption":false,"tolerate_host_failures":0,"reserved_cpus":0,"reserved_memory":"0B","max_moves":3}`)
			},
		})
		called := false
		_, _, err := c.UpdateSettings(ctx, func(s *api.Settings) error { called = true; return nil })
		if err == nil || !strings.Contains(err.Error(), `setting this client does not know ("max_moves")`) || called {
			t.Errorf("error %v, change called %v", err, called)
		}
		if len(rec.got) != 1 {
			t.Errorf("requests %v", rec.got)
		}
		// GetSettings is lenient: showing works with a newer server.
		if st, err := c.GetSettings(ctx); err != nil || st.Strategy != api.StrategySpread {
			t.Errorf("GetSettings: %+v %v", st, err)
		}
	})
	t.Run("server error", func(t *testing.T) {
		c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"GET /v1/settings": reply(200, spread),
			"PUT /v1/settings": reply(400, api.Error{Message: "invalid settings", Code: api.CodeInvalid}),
		})
		_, after, err := c.UpdateSettings(ctx, func(*api.Settings) error { return nil })
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 400 || after != nil {
			t.Errorf("got %v %v", after, err)
		}
	})
}

func TestBadBaseURL(t *testing.T) {
	for _, base := range []string{"", "ftp://x", "http://"} {
		_, err := New(base, nil).ListNodes(context.Background())
		if err == nil || !(strings.Contains(err.Error(), "API URL")) {
			t.Errorf("base %q: error %v", base, err)
		}
	}
}

func TestNormalizeBase(t *testing.T) {
	tests := map[string]string{
		"http://127.0.0.1:7370/":  "http://127.0.0.1:7370",
		"127.0.0.1:7370":          "http://127.0.0.1:7370",
		" https://bw.example/x/ ": "https://bw.example/x",
	}
	for in, want := range tests {
		if got := New(in, nil).BaseURL(); got != want {
			t.Errorf("New(%q).BaseURL() = %q, want %q", in, got, want)
		}
	}
}

func TestDefaultHTTPClientHasTimeouts(t *testing.T) {
	c := New("http://x", nil)
	if c.hc.Timeout <= 0 {
		t.Errorf("no overall timeout")
	}
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.ResponseHeaderTimeout <= 0 || tr.TLSHandshakeTimeout <= 0 {
		t.Errorf("transport lacks timeouts: %+v", c.hc.Transport)
	}
	if c.stream.Timeout != 0 || c.stream.Transport != c.hc.Transport {
		t.Errorf("the streaming client must share the transport and have no overall timeout: %+v", c.stream)
	}
	custom := &http.Client{Timeout: time.Minute}
	cc := New("http://x", custom)
	if cc.hc != custom {
		t.Errorf("given *http.Client not used")
	}
	if cc.stream == custom || cc.stream.Timeout != 0 || custom.Timeout != time.Minute {
		t.Errorf("streaming client: %+v; given client: %+v", cc.stream, custom)
	}
}

func TestResponseSizeIsLimited(t *testing.T) {
	if _, err := readLimited(strings.NewReader("12345"), 4); err == nil {
		t.Errorf("5 bytes with limit 4: no error")
	}
	if b, err := readLimited(strings.NewReader("1234"), 4); err != nil || string(b) != "1234" {
		t.Errorf("4 bytes with limit 4: %q, %v", b, err)
	}
	// A huge error body is cut, not read whole.
	c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/nodes": func(w http.ResponseWriter, _ []byte) {
			w.WriteHeader(500)
			_, _ = io.WriteString(w, strings.Repeat("x", 1<<20))
		},
	})
	_, err := c.ListNodes(context.Background())
	if err == nil || len(err.Error()) > 300 {
		t.Errorf("error not shortened: %d bytes", len(err.Error()))
	}
}

func TestMalformedSuccessBody(t *testing.T) {
	c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/nodes": func(w http.ResponseWriter, _ []byte) { _, _ = io.WriteString(w, "{not json") },
	})
	_, err := c.ListNodes(context.Background())
	if err == nil || !strings.Contains(err.Error(), "decoding response to GET /v1/nodes") {
		t.Errorf("error %v", err)
	}
}
