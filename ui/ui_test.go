package ui

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// serve runs h on a loopback test server; returned receives the path of
// every request whose handler has returned.
func serve(t *testing.T, h http.Handler) (url string, returned <-chan string) {
	t.Helper()
	ret := make(chan string, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { ret <- r.URL.Path }()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ret
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	return do(t, http.MethodGet, url, hdr...)
}

func do(t *testing.T, method, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, string(b)
}

func TestPageRendersAndEscapes(t *testing.T) {
	st := smallCluster()
	st.Workloads = append(st.Workloads, workload("api", api.KindContainer, 1, 512*api.MiB, api.StatePending, "", 0, "no host fits: <b>cpu</b> (1 host)"))
	st.Events = append(st.Events, event(time.Second, "fence-failed", "host-1", "", `redfish said <b>"no"</b> & gave up`))
	st.Nodes[0].Labels = map[string]string{"rack": `r1"><script>alert(1)</script>`}
	web := balanced(service("web", 3,
		member("web-1", api.StateRunning, "host-1", api.HealthHealthy),
		member("web-2", api.StateRunning, "host-2", api.HealthUnhealthy),
		member("web-3", api.StateStarting, "host-3", api.HealthStarting),
		api.ServiceMember{Name: "web-4", State: api.StateRunning, Host: "host-3", Health: api.HealthHealthy, Deleting: true}),
		"10.0.0.100", "host-1", []api.ServicePort{tcp(80, 8080), {Port: 53, TargetPort: 5353, Proto: "udp"}}, "web-1")
	batch := service("batch", 2, member("batch-1", api.StateRunning, "host-1", ""))
	batch.Deleting = true
	st.Services = []api.ServiceView{web, batch} // the page sorts them
	url, _ := serve(t, Handler(newFake(st), Options{Title: "Prod <cluster>"}))

	resp, body := get(t, url+"/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	for k, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": contentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Cache-Control":           "no-store",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(contentSecurityPolicy, "default-src 'self'") {
		t.Errorf("CSP %q lacks default-src 'self'", contentSecurityPolicy)
	}
	for _, want := range []string{
		`<tr data-host="host-1" data-state="ready">`,
		`<tr data-workload="web" data-state="running">`,
		`<tr data-workload="api" data-state="pending">`,
		"no host fits: &lt;b&gt;cpu&lt;/b&gt; (1 host)",
		"redfish said &lt;b&gt;&#34;no&#34;&lt;/b&gt; &amp; gave up",
		"Prod &lt;cluster&gt;",
		`rack=r1&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;`,
		`<body data-revision="1">`,
		"2026-03-14 09:26:53", // the event's time, UTC
		"2 / 8",               // host-1's CPUs
		"2GiB / 16GiB",
		"1 CPU · 512MiB",
		// web: 2 of 3 copies run (web-4 is being deleted and counts for
		// nothing), one healthy and one unhealthy, one starting; one of
		// the three in the pool of its VIP, which host-1 holds.
		`<tr data-service="web" data-state="active"><td class="name">web</td>` +
			`<td class="num short" title="running / wanted">2 / 3</td>` +
			`<td class="checks"><span class="chk chk-healthy">1 healthy</span> · <span class="chk chk-unhealthy">1 unhealthy</span> · <span class="chk chk-starting">1 starting</span></td>` +
			`<td class="addr">10.0.0.100:80,53/udp</td><td class="holder">host-1</td><td class="num short">1 of 3</td>` +
			`<td><span class="badge st-active">active</span></td></tr>`,
		// batch: no check, no VIP, being deleted.
		`<tr data-service="batch" data-state="deleting"><td class="name">batch</td>` +
			`<td class="num short" title="running / wanted">1 / 2</td><td class="checks">—</td>` +
			`<td>—</td><td class="holder">—</td><td class="num">—</td>` +
			`<td><span class="badge st-deleting">deleting</span></td></tr>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Between the workloads and the events, sorted by name.
	if w, b, v, e := strings.Index(body, `id="workloads"`), strings.Index(body, `data-service="batch"`), strings.Index(body, `data-service="web"`), strings.Index(body, `id="events"`); !(w < b && b < v && v < e) {
		t.Errorf("page order: workloads %d, batch %d, web %d, events %d", w, b, v, e)
	}
	if strings.Contains(body, "No services.") {
		t.Errorf("page says there are no services")
	}
	for _, bad := range []string{"<b>", "<script>alert", "http://", "https://"} {
		if strings.Contains(body, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
}

func TestPageWithoutServices(t *testing.T) {
	url, _ := serve(t, Handler(newFake(smallCluster()), Options{}))
	resp, body := get(t, url+"/ui/")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d:\n%s", resp.StatusCode, body)
	}
	want := `<tbody id="services-body">
<tr class="empty"><td colspan="7">No services.</td></tr>
</tbody>`
	if !strings.Contains(body, want) {
		t.Errorf("page lacks %q", want)
	}
	if strings.Contains(body, "data-service=") {
		t.Errorf("page shows a service row")
	}
}

func TestServiceCells(t *testing.T) {
	v6 := balanced(service("dns", 2, member("dns-1", api.StateRunning, "host-1", api.HealthUnknown)),
		"fd00::53", "", []api.ServicePort{{Port: 53, TargetPort: 53, Proto: "udp"}, tcp(53, 53)})
	nilPool := v6
	nilPool.Pool = nil
	for _, c := range []struct {
		v                 api.ServiceView
		addr, pool, state string
		health            []healthCount
	}{
		{service("none", 0), "—", "—", "active", nil},
		{v6, "[fd00::53]:53/udp,53", "0 of 2", "active", []healthCount{{api.HealthUnknown, 1}}},
		{nilPool, "[fd00::53]:53/udp,53", "0 of 2", "active", []healthCount{{api.HealthUnknown, 1}}},
	} {
		if got := serviceAddress(c.v); got != c.addr {
			t.Errorf("%s: address %q, want %q", c.v.Name, got, c.addr)
		}
		if got := serviceInPool(c.v); got != c.pool {
			t.Errorf("%s: in pool %q, want %q", c.v.Name, got, c.pool)
		}
		if got := serviceState(c.v); got != c.state {
			t.Errorf("%s: state %q, want %q", c.v.Name, got, c.state)
		}
		if got := serviceHealth(c.v); !slices.Equal(got, c.health) {
			t.Errorf("%s: health %v, want %v", c.v.Name, got, c.health)
		}
	}
}

func TestPageWhenSourceFails(t *testing.T) {
	f := newFake(smallCluster())
	f.failNodes(errors.New("etcd: context deadline exceeded"))
	url, _ := serve(t, Handler(f, Options{}))
	resp, body := get(t, url+"/ui/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
	if !strings.Contains(body, "The cluster state cannot be read: read nodes: etcd: context deadline exceeded") {
		t.Errorf("page does not say why:\n%s", body)
	}
	resp, body = get(t, url+"/ui/state.json")
	var e api.Error
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal([]byte(body), &e) != nil || e.Code != api.CodeUnavailable {
		t.Errorf("state.json: %d %s", resp.StatusCode, body)
	}
}

func TestStateJSON(t *testing.T) {
	st := smallCluster()
	st.Events = nil
	// Out of order: the handler sorts by name.
	st.Nodes = append([]api.NodeView{host("host-2", 4, 0, 8*api.GiB, 0, 0)}, st.Nodes...)
	url, _ := serve(t, Handler(newFake(st), Options{}))
	resp, body := get(t, url+"/ui/state.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("state.json: %d %v\n%s", resp.StatusCode, resp.Header, body)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw) != 5 || raw["health"] == nil || raw["nodes"] == nil || raw["workloads"] == nil || string(raw["services"]) != "[]" || string(raw["events"]) != "[]" {
		t.Fatalf("shape: %s", body)
	}
	var got State
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Health != st.Health || len(got.Nodes) != 2 || got.Nodes[0].Name != "host-1" || got.Nodes[1].Name != "host-2" ||
		len(got.Workloads) != 1 || got.Workloads[0].Name != "web" || got.Workloads[0].Memory != 2*api.GiB || got.Workloads[0].Epoch != 7 {
		t.Fatalf("state: %+v", got)
	}
	var nodes []map[string]any
	if err := json.Unmarshal(raw["nodes"], &nodes); err != nil {
		t.Fatal(err)
	}
	if n := nodes[0]; n["name"] != "host-1" || n["memory_used"] != "2GiB" || n["cpus_used"] != float64(2) || n["state"] != "ready" {
		t.Errorf("node as JSON: %v", n)
	}
}

func TestStateJSONServices(t *testing.T) {
	st := smallCluster()
	st.Services = []api.ServiceView{
		service("worker", 1, member("worker-1", api.StateRunning, "host-1", "")),
		balanced(service("api", 2,
			member("api-1", api.StateRunning, "host-1", api.HealthHealthy),
			member("api-2", api.StatePending, "", "")),
			"10.0.0.100", "host-1", []api.ServicePort{tcp(80, 8080)}, "api-1"),
	}
	url, _ := serve(t, Handler(newFake(st), Options{}))
	_, body := get(t, url+"/ui/state.json")
	var raw struct {
		Services []map[string]any `json:"services"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	if len(raw.Services) != 2 || raw.Services[0]["name"] != "api" || raw.Services[1]["name"] != "worker" {
		t.Fatalf("services, by name: %s", body)
	}
	// The fields the script reads, as the API names them.
	api0 := raw.Services[0]
	for k, want := range map[string]any{"replicas": float64(2), "running": float64(1), "vip": "10.0.0.100", "vip_holder": "host-1"} {
		if api0[k] != want {
			t.Errorf("services[0].%s = %v, want %v", k, api0[k], want)
		}
	}
	var got State
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	s := got.Services[0]
	if len(s.Ports) != 1 || s.Ports[0].Port != 80 || s.Pool == nil || len(s.Pool.Backends) != 1 ||
		len(s.Instances) != 2 || s.Instances[0].Health != api.HealthHealthy || !s.Instances[0].InPool {
		t.Errorf("services[0]: %+v", s)
	}
}

func TestEventsAreBoundedNewestLast(t *testing.T) {
	st := smallCluster()
	st.Events = nil
	for i := range 8 {
		st.Events = append(st.Events, event(time.Duration(i)*time.Second, "placed", "", "", "event "+string(rune('a'+i))))
	}
	url, _ := serve(t, Handler(newFake(st), Options{Events: 3}))
	_, body := get(t, url+"/ui/state.json")
	var got State
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range got.Events {
		msgs = append(msgs, e.Message)
	}
	if strings.Join(msgs, ",") != "event f,event g,event h" {
		t.Errorf("events %v", msgs)
	}
	// The page shows them newest first.
	_, page := get(t, url+"/ui/")
	if h, g, f := strings.Index(page, "event h"), strings.Index(page, "event g"), strings.Index(page, "event f"); h < 0 || !(h < g && g < f) || strings.Contains(page, "event e") {
		t.Errorf("page order: h %d, g %d, f %d", h, g, f)
	}
}

func TestMethodsAndRoutes(t *testing.T) {
	url, _ := serve(t, Handler(newFake(smallCluster()), Options{}))
	for _, p := range []string{"/ui/", "/ui/state.json", "/ui/stream", "/ui/static/dashboard.js"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			resp, _ := do(t, m, url+p)
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d, Allow %q", m, p, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	resp, body := do(t, http.MethodHead, url+"/ui/")
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("HEAD /ui/: %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, url+"/ui?x=1")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/ui/?x=1" {
		t.Errorf("/ui: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/ui/nope", "/ui/static/", "/ui/static/missing.js", "/ui/templates/page.html", "/ui/static/../ui.go", "/elsewhere"} {
		if resp, _ := get(t, url+p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	for name, ctype := range map[string]string{"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8", "favicon.svg": "image/svg+xml"} {
		resp, body := get(t, url+"/ui/static/"+name)
		etag := resp.Header.Get("ETag")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != ctype || etag == "" || body == "" ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", name, resp.StatusCode, resp.Header)
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			if !(name == "favicon.svg" && strings.Count(body, "http://") == 1 && strings.Contains(body, `xmlns="http://www.w3.org/2000/svg"`)) {
				t.Errorf("%s refers to another site", name)
			}
		}
		if resp, _ := get(t, url+"/ui/static/"+name, "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidated: %d, want 304", name, resp.StatusCode)
		}
	}
}

func TestHuman(t *testing.T) {
	for b, want := range map[api.ByteSize]string{
		0:                 "0B",
		1023:              "1023B",
		api.KiB:           "1KiB",
		256 * api.MiB:     "256MiB",
		1536 * api.MiB:    "1.5GiB",
		1280 * api.MiB:    "1.3GiB", // half up, where ByteSize.Human says 1.2GiB
		api.GiB - 1:       "1024MiB",
		64*api.GiB + 1:    "64GiB",
		3 * api.TiB / 2:   "1.5TiB",
		2047 * api.KiB:    "2MiB",
		10*api.GiB - 1024: "10GiB",
	} {
		if got := human(b); got != want {
			t.Errorf("human(%d) = %q, want %q", int64(b), got, want)
		}
	}
}

// sse is one Server-Sent Event, or a comment line (comment set).
type sse struct {
	id, event, data, comment string
}

// openStream follows path on url and delivers its events until stop.
func openStream(t *testing.T, url string, hdr ...string) (events <-chan sse, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	ch := make(chan sse, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sse
		for sc.Scan() {
			line := sc.Text()
			k, v, _ := strings.Cut(line, ": ")
			switch {
			case line == "":
				if ev != (sse{}) {
					ch <- ev
				}
				ev = sse{}
			case strings.HasPrefix(line, ":"):
				ch <- sse{comment: strings.TrimSpace(line[1:])}
			case k == "id":
				ev.id = v
			case k == "event":
				ev.event = v
			case k == "data":
				ev.data = v
			}
		}
	}()
	return ch, func() { cancel(); <-done }
}

func next(t *testing.T, ch <-chan sse, timeout time.Duration) sse {
	t.Helper()
	for {
		select {
		case ev := <-ch:
			if ev.id == "" && ev.event == "" && ev.comment == "" {
				continue // the retry: field
			}
			return ev
		case <-time.After(timeout):
			t.Fatalf("no event within %s", timeout)
			return sse{}
		}
	}
}

func quiet(t *testing.T, ch <-chan sse, d time.Duration) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev.id != "" || ev.event != "" || ev.comment != "" {
			t.Fatalf("unexpected event %+v", ev)
		}
	case <-time.After(d):
	}
}

func stateOf(t *testing.T, ev sse) State {
	t.Helper()
	if ev.event != "state" {
		t.Fatalf("event %+v, want a state", ev)
	}
	var st State
	if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
		t.Fatalf("state event: %v\n%s", err, ev.data)
	}
	return st
}

func TestStreamSendsOnRevisionChange(t *testing.T) {
	f := newFake(smallCluster())
	url, returned := serve(t, newHandler(f, Options{Poll: 10 * time.Millisecond}, time.Hour))
	events, stop := openStream(t, url+"/ui/stream")

	ev := next(t, events, 5*time.Second)
	if st := stateOf(t, ev); ev.id != "1" || st.Health.Revision != 1 || len(st.Workloads) != 1 {
		t.Fatalf("first state: id %s, %+v", ev.id, st)
	}
	quiet(t, events, 100*time.Millisecond) // ten polls, nothing moved

	f.bump(func(s *State) {
		s.Workloads = append(s.Workloads, workload("api", api.KindContainer, 1, api.GiB, api.StatePending, "", 0, "waiting for the scheduler"))
	})
	ev = next(t, events, 5*time.Second)
	if st := stateOf(t, ev); ev.id != "2" || len(st.Workloads) != 2 || st.Workloads[0].Name != "api" {
		t.Fatalf("second state: id %s, %+v", ev.id, st)
	}
	// A new leader at the same revision is news too.
	f.set(func(s *State) { s.Health.Leader = "s2" })
	if st := stateOf(t, next(t, events, 5*time.Second)); st.Health.Leader != "s2" {
		t.Fatalf("leader change: %+v", st.Health)
	}

	stop()
	select {
	case p := <-returned:
		if p != "/ui/stream" {
			t.Fatalf("returned: %s", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream handler still runs after the client went away")
	}
	// And it no longer polls.
	n := f.count("Health")
	time.Sleep(50 * time.Millisecond)
	if m := f.count("Health"); m != n {
		t.Errorf("Health read %d more times after the client went", m-n)
	}
}

func TestStreamStartsAfterTheRevisionShown(t *testing.T) {
	f := newFake(smallCluster())
	url, _ := serve(t, newHandler(f, Options{Poll: 10 * time.Millisecond}, time.Hour))
	for name, open := range map[string]func() (<-chan sse, func()){
		"rev":           func() (<-chan sse, func()) { return openStream(t, url+"/ui/stream?rev=1") },
		"Last-Event-ID": func() (<-chan sse, func()) { return openStream(t, url+"/ui/stream", "Last-Event-ID", "1") },
	} {
		t.Run(name, func(t *testing.T) {
			f.set(func(s *State) { s.Health.Revision = 1 })
			events, stop := open()
			defer stop()
			quiet(t, events, 100*time.Millisecond)
			f.bump(nil)
			if ev := next(t, events, 5*time.Second); ev.id != "2" {
				t.Fatalf("got %+v, want revision 2", ev)
			}
		})
	}
}

func TestStreamHeartbeat(t *testing.T) {
	url, _ := serve(t, newHandler(newFake(smallCluster()), Options{Poll: time.Hour}, 20*time.Millisecond))
	events, stop := openStream(t, url+"/ui/stream?rev=1")
	defer stop()
	for range 2 {
		if ev := next(t, events, 5*time.Second); ev.comment != "heartbeat" {
			t.Fatalf("got %+v, want a heartbeat comment", ev)
		}
	}
}

func TestStreamReportsUnavailableOnce(t *testing.T) {
	f := newFake(smallCluster())
	url, _ := serve(t, newHandler(f, Options{Poll: 10 * time.Millisecond}, time.Hour))
	events, stop := openStream(t, url+"/ui/stream?rev=1")
	defer stop()

	f.failNodes(errors.New("etcd unreachable"))
	f.bump(nil)
	ev := next(t, events, 5*time.Second)
	var e api.Error
	if ev.event != "unavailable" || json.Unmarshal([]byte(ev.data), &e) != nil || e.Code != api.CodeUnavailable || e.Message != "read nodes: etcd unreachable" {
		t.Fatalf("got %+v, want unavailable", ev)
	}
	quiet(t, events, 100*time.Millisecond) // told once, not every poll

	f.failNodes(nil)
	if st := stateOf(t, next(t, events, 5*time.Second)); st.Health.Revision != 2 {
		t.Fatalf("after recovery: %+v", st.Health)
	}
}

func TestStreamsShareOneReadPerRevision(t *testing.T) {
	f := newFake(smallCluster())
	url, _ := serve(t, newHandler(f, Options{Poll: 5 * time.Millisecond}, time.Hour))
	var streams []<-chan sse
	for range 4 {
		events, stop := openStream(t, url+"/ui/stream")
		defer stop()
		streams = append(streams, events)
	}
	for _, events := range streams {
		next(t, events, 5*time.Second)
	}
	f.bump(nil)
	for _, events := range streams {
		if ev := next(t, events, 5*time.Second); ev.id != "2" {
			t.Fatalf("got %+v", ev)
		}
	}
	if n := f.count("Nodes"); n != 2 {
		t.Errorf("4 streams over 2 revisions read the nodes %d times, want 2", n)
	}
}

func TestStreamEndsWhenDone(t *testing.T) {
	done := make(chan struct{})
	url, returned := serve(t, newHandler(newFake(smallCluster()), Options{Poll: 10 * time.Millisecond, Done: done}, time.Hour))
	events, stop := openStream(t, url+"/ui/stream")
	defer stop()
	next(t, events, 5*time.Second)
	close(done)
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream still runs after Done was closed")
	}
}

// TestStreamOutlivesServerTimeouts: bulwarkd's http.Server has read and
// write timeouts; a stream must not be cut by them.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	f := newFake(smallCluster())
	srv := httptest.NewUnstartedServer(newHandler(f, Options{Poll: 10 * time.Millisecond}, time.Hour))
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	events, stop := openStream(t, srv.URL+"/ui/stream")
	defer stop()
	next(t, events, 5*time.Second)
	time.Sleep(time.Second)
	f.bump(nil)
	if ev := next(t, events, 5*time.Second); ev.id != "2" {
		t.Fatalf("got %+v after the server's timeouts", ev)
	}
}
