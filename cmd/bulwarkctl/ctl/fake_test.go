package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// fakeAPI is an in-memory implementation of the Bulwark HTTP API contract,
// good enough to drive the CLI: strict JSON decoding and validation on
// create, 409 for a taken name, 202 "stopping" on delete, api.Error bodies.
type fakeAPI struct {
	t   *testing.T
	url string
	srv *httptest.Server
	// rejectCreate, if set, makes every create fail with 400 and this message.
	rejectCreate string

	mu        sync.Mutex
	nodes     map[string]api.NodeView
	workloads map[string]api.WorkloadView
	requests  []string // "METHOD /path"
	created   []api.WorkloadSpec
	// goneAfter is how many GETs a deleted workload survives; < 0: forever.
	goneAfter int
	gets      map[string]int
	// settings are served by GET /v1/settings and replaced by PUT.
	settings api.Settings
	// settingsExtra, if set, is added to the GET /v1/settings answer as if
	// the server knew a setting the CLI does not (a newer server).
	settingsExtra map[string]any
	settingsPuts  []string // raw PUT /v1/settings bodies
	// explanations are the canned answers of GET /v1/workloads/{name}/explain;
	// a workload without one gets a plain "pending" explanation.
	explanations map[string]api.Explanation
	// noExplain makes the explain endpoint answer like a server that
	// predates it.
	noExplain bool

	// fenceDevices are the hosts that have a fence device; fenced the hosts
	// with a fence record. A node whose State is ready holds its
	// heartbeat lease.
	fenceDevices map[string]bool
	fenced       map[string]bool
	// powerOnFails makes every fence device fail to power a host on.
	powerOnFails bool
	// dev makes the server a `bulwarkd dev` cluster: it serves /v1/dev/fault.
	dev    bool
	faults []string // "host fault" of each accepted fault request

	// logs are the chunks GET /v1/workloads/{name}/logs sends, one write
	// and flush each; a workload without an entry is "not placed on any
	// host" (404). Before each chunk after the first the handler waits for
	// a value on logsPause, if set. With ?follow=true and logsHold the
	// stream then stays open until the client goes away.
	logs      map[string][]string
	logsPause chan struct{}
	logsHold  bool
	// agentDown makes the logs and tasks endpoints answer as when the
	// agent of the host does not answer (502).
	agentDown bool
	// services, if not nil, are served by GET /v1/services (nil: 404, as
	// from a server without services).
	services []api.ServiceView

	// events are served by GET /v1/events, filtered by host, workload,
	// type and limit (since is recorded, not applied). With follow=true
	// the handler then sends every event put on eventsFeed, and ends the
	// stream with eventsTail (a raw line) if set, else holds it open
	// until the client goes away or eventsFeed is closed.
	events     []api.Event
	eventsFeed chan api.Event
	eventsTail string

	// whatIfs are the answers of GET /v1/whatif?fail=..., by the fail
	// value (404 for any other); whatIfReport answers GET /v1/whatif.
	whatIfs      map[string]api.WhatIf
	whatIfReport api.WhatIfReport

	// volumes and vips (by address without prefix) are served as the
	// server does (see sharedRoutes); tasks are the task lists of the
	// hosts' agents, by host.
	volumes map[string]api.VolumeView
	vips    map[string]api.VIPView
	tasks   map[string][]api.Task
	// bodies are the request bodies, one per entry of requests.
	bodies []string
	// maint serves maintenance, drains and resets (maintenance_test.go).
	maint fakeMaintenance
}

var testTime = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{
		t:         t,
		nodes:     map[string]api.NodeView{},
		workloads: map[string]api.WorkloadView{},
		gets:      map[string]int{},
		goneAfter: 2,
		settings:  api.DefaultSettings(),

		explanations: map[string]api.Explanation{},
		fenceDevices: map[string]bool{},
		fenced:       map[string]bool{},
		logs:         map[string][]string{},
		volumes:      map[string]api.VolumeView{},
		vips:         map[string]api.VIPView{},
		tasks:        map[string][]api.Task{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, 200, api.Health{Status: "ok", Server: "fake", Leader: "fake", IsLeader: true})
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.services == nil {
			f.reply(w, 404, api.Error{Message: "no such endpoint", Code: api.CodeNotFound})
			return
		}
		f.reply(w, 200, f.services)
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []api.NodeView{}
		for _, n := range f.nodes {
			out = append(out, n)
		}
		f.reply(w, 200, out)
	})
	mux.HandleFunc("GET /v1/nodes/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, ok := f.nodes[r.PathValue("name")]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "node %q not found", r.PathValue("name"))
			return
		}
		f.reply(w, 200, n)
	})
	mux.HandleFunc("GET /v1/workloads", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []api.WorkloadView{}
		for _, wl := range f.workloads {
			out = append(out, wl)
		}
		f.reply(w, 200, out)
	})
	mux.HandleFunc("GET /v1/workloads/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		wl, ok := f.workloads[name]
		if ok && wl.Deleting && f.goneAfter >= 0 {
			f.gets[name]++
			if f.gets[name] > f.goneAfter {
				delete(f.workloads, name)
				ok = false
			}
		}
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "workload %q not found", name)
			return
		}
		f.reply(w, 200, wl)
	})
	mux.HandleFunc("POST /v1/workloads", func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		var spec api.WorkloadSpec
		if f.rejectCreate != "" {
			f.fail(w, 400, api.CodeInvalid, "%s", f.rejectCreate)
			return
		}
		if err := dec.Decode(&spec); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%v", err)
			return
		}
		if err := spec.Validate(); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%v", err)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.workloads[spec.Name]; ok {
			f.fail(w, 409, api.CodeConflict, "workload %q already exists", spec.Name)
			return
		}
		if !f.sharedGuards(w, spec) {
			return
		}
		f.created = append(f.created, spec)
		wl := api.WorkloadView{
			Workload: api.Workload{Schema: api.SchemaVersion, WorkloadSpec: spec, CreatedAt: testTime},
			State:    api.StatePending,
			Reason:   "waiting for the scheduler",
		}
		f.workloads[spec.Name] = wl
		f.reply(w, 201, wl)
	})
	mux.HandleFunc("DELETE /v1/workloads/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		wl, ok := f.workloads[name]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "workload %q not found", name)
			return
		}
		wl.Deleting, wl.State = true, api.StateStopping
		f.workloads[name] = wl
		f.reply(w, 202, wl)
	})
	mux.HandleFunc("GET /v1/allocations", func(w http.ResponseWriter, r *http.Request) {
		f.reply(w, 200, []api.Allocation{})
	})
	mux.HandleFunc("GET /v1/workloads/{name}/explain", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		if f.noExplain {
			f.fail(w, 404, api.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
			return
		}
		if e, ok := f.explanations[name]; ok {
			f.reply(w, 200, e)
			return
		}
		wl, ok := f.workloads[name]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "workload %q not found", name)
			return
		}
		f.reply(w, 200, api.Explanation{Workload: name, State: wl.State, Host: wl.Host, Summary: "pending: no nodes", Hosts: []api.HostVerdict{}})
	})
	mux.HandleFunc("GET /v1/settings", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.settingsExtra == nil {
			f.reply(w, 200, f.settings)
			return
		}
		var m map[string]any
		b, _ := json.Marshal(f.settings)
		_ = json.Unmarshal(b, &m)
		for k, v := range f.settingsExtra {
			m[k] = v
		}
		f.reply(w, 200, m)
	})
	mux.HandleFunc("PUT /v1/settings", func(w http.ResponseWriter, r *http.Request) {
		// As the server: the body is the whole set, fields left out get
		// their defaults, unknown fields are refused.
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		defer f.mu.Unlock()
		f.settingsPuts = append(f.settingsPuts, string(body))
		st := api.DefaultSettings()
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&st); err != nil {
			f.fail(w, 400, api.CodeInvalid, "invalid settings: %v", err)
			return
		}
		st.Schema = api.SchemaVersion
		if err := st.Validate(); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
			return
		}
		f.settings = st
		f.reply(w, 200, st)
	})
	mux.HandleFunc("GET /v1/workloads/{name}/logs", f.serveLogs)
	f.fencingRoutes(mux)
	f.sharedRoutes(mux)
	mux.HandleFunc("GET /v1/events", f.serveEvents)
	mux.HandleFunc("GET /v1/whatif", f.serveWhatIf)
	f.maintenanceRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		f.fail(w, 404, api.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := r.Method + " " + r.URL.Path
		if r.URL.RawQuery != "" {
			req += "?" + r.URL.RawQuery
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		f.mu.Lock()
		f.requests = append(f.requests, req)
		f.bodies = append(f.bodies, string(body))
		f.mu.Unlock()
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.url, f.srv = srv.URL, srv
	return f
}

func (f *fakeAPI) reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Errorf("fake API: encoding reply: %v", err)
	}
}

func (f *fakeAPI) fail(w http.ResponseWriter, status int, code, format string, args ...any) {
	f.reply(w, status, api.Error{Message: fmt.Sprintf(format, args...), Code: code})
}

func (f *fakeAPI) addNode(n api.NodeView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodes[n.Name] = n
}

func (f *fakeAPI) addWorkload(w api.WorkloadView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.workloads[w.Name] = w
}

func (f *fakeAPI) setSettings(st api.Settings) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settings = st
}

func (f *fakeAPI) currentSettings() api.Settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.settings
}

func (f *fakeAPI) settingsPutBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.settingsPuts...)
}

func (f *fakeAPI) addExplanation(e api.Explanation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.explanations[e.Workload] = e
}

func (f *fakeAPI) requestLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func (f *fakeAPI) createdSpecs() []api.WorkloadSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.WorkloadSpec(nil), f.created...)
}

// result is what one in-process run of bulwarkctl produced.
type result struct {
	stdout, stderr string
	err            error
}

// runCLI runs bulwarkctl in-process against f (if not nil, via --api) with
// stdin as standard input.
func runCLI(t *testing.T, f *fakeAPI, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	app := NewApp(&out, &errb)
	app.Reader = strings.NewReader(stdin)
	full := []string{"bulwarkctl"}
	if f != nil {
		full = append(full, "--api", f.url)
	}
	full = append(full, args...)
	err := app.Run(full)
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

func (r result) mustSucceed(t *testing.T) result {
	t.Helper()
	if r.err != nil {
		t.Fatalf("unexpected error: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	return r
}

// fencingRoutes serves fence, clear, power-on and the dev cluster's fault
// injection, as the server does.
func (f *fakeAPI) fencingRoutes(mux *http.ServeMux) {
	// node answers 404 for an unknown node; call with f.mu held.
	node := func(w http.ResponseWriter, r *http.Request) (api.NodeView, bool) {
		n, ok := f.nodes[r.PathValue("name")]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "node %q not found", r.PathValue("name"))
		}
		return n, ok
	}
	mux.HandleFunc("POST /v1/nodes/{name}/fence", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, ok := node(w, r)
		if !ok {
			return
		}
		if r.URL.Query().Get("confirm-off") == "true" {
			if n.State == api.NodeReady || f.fenced[n.Name] {
				f.fail(w, 409, api.CodeConflict, "node %q still holds its heartbeat lease or is already fenced: it cannot be confirmed off", n.Name)
				return
			}
			f.fenced[n.Name] = true
			f.reply(w, 200, api.FenceRecord{Schema: api.SchemaVersion, Host: n.Name, Device: "operator", Action: "confirmed off by an operator",
				PowerState: "Off (operator)", Started: testTime, Confirmed: testTime})
			return
		}
		if !f.fenceDevices[n.Name] {
			f.fail(w, 409, api.CodeConflict, "node %q has no fence device; if it is powered off, confirm it with `bulwarkctl node fence %s --confirm-off`", n.Name, n.Name)
			return
		}
		f.reply(w, 202, api.FenceRequest{Schema: api.SchemaVersion, Host: n.Name, At: testTime})
	})
	mux.HandleFunc("POST /v1/nodes/{name}/clear", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, ok := node(w, r)
		if !ok {
			return
		}
		delete(f.fenced, n.Name)
		f.reply(w, 200, map[string]string{"node": n.Name, "status": "cleared"})
	})
	mux.HandleFunc("POST /v1/nodes/{name}/power-on", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		n, ok := node(w, r)
		if !ok {
			return
		}
		switch {
		case !f.fenceDevices[n.Name]:
			f.fail(w, 409, api.CodeConflict, "node %q has no fence device to power it on with", n.Name)
		case f.powerOnFails:
			f.fail(w, 502, api.CodeUnavailable, "power on %s failed on every device: [%s-bmc: connection refused]", n.Name, n.Name)
		default:
			f.reply(w, 200, map[string]string{"node": n.Name, "status": "powered on", "device": n.Name + "-bmc", "at": testTime.Format(time.RFC3339)})
		}
	})
	mux.HandleFunc("POST /v1/dev/fault", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.dev {
			f.fail(w, 404, api.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
			return
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		var req struct{ Host, Fault string }
		if err := dec.Decode(&req); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%v", err)
			return
		}
		if _, ok := f.nodes[req.Host]; !ok {
			f.fail(w, 404, api.CodeNotFound, "node %q not found", req.Host)
			return
		}
		switch req.Fault {
		case "crash", "hang", "partition", "bmc-down", "heal":
		default:
			f.fail(w, 400, api.CodeInvalid, "unknown fault %q", req.Fault)
			return
		}
		f.faults = append(f.faults, req.Host+" "+req.Fault)
		f.reply(w, 200, map[string]string{"host": req.Host, "fault": req.Fault, "status": "injected"})
	})
}

func (f *fakeAPI) addFenceDevice(host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fenceDevices[host] = true
}

func (f *fakeAPI) isFenced(host string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fenced[host]
}

func (f *fakeAPI) setFenced(host string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fenced[host] = true
}

func (f *fakeAPI) injectedFaults() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.faults...)
}

// serveLogs streams the canned output of a workload as the server proxies
// it from the agent: text/plain, flushed per chunk.
func (f *fakeAPI) serveLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	f.mu.Lock()
	chunks, placed := f.logs[name]
	pause, hold, agentDown := f.logsPause, f.logsHold, f.agentDown
	f.mu.Unlock()
	if !placed {
		f.fail(w, 404, api.CodeNotFound, "workload %q is not placed on any host, so it has no output", name)
		return
	}
	if agentDown {
		f.fail(w, 502, api.CodeUnavailable, "the agent of node-a did not answer: dial tcp 10.0.0.1:7371: connect: connection refused")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(200)
	for i, c := range chunks {
		if i > 0 && pause != nil {
			select {
			case <-pause:
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, c)
		w.(http.Flusher).Flush()
	}
	if hold && r.URL.Query().Get("follow") == "true" {
		<-r.Context().Done()
	}
}

func (f *fakeAPI) setLogs(name string, chunks ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[name] = chunks
}

// serveEvents answers GET /v1/events as the server does: the newest
// matching events, oldest first; with follow=true as NDJSON, then those
// fed on eventsFeed.
func (f *fakeAPI) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 200
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > 10000 {
			f.fail(w, 400, api.CodeInvalid, "invalid limit %q: want a whole number from 1 to 10000", q.Get("limit"))
			return
		}
		limit = n
	}
	match := func(e api.Event) bool {
		return (q.Get("host") == "" || e.Host == q.Get("host")) && (q.Get("workload") == "" || e.Workload == q.Get("workload")) &&
			(q.Get("type") == "" || e.Type == q.Get("type"))
	}
	f.mu.Lock()
	out := []api.Event{}
	for _, e := range f.events {
		if match(e) {
			out = append(out, e)
		}
	}
	feed, tail := f.eventsFeed, f.eventsTail
	f.mu.Unlock()
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	if q.Get("follow") != "true" {
		f.reply(w, 200, out)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	for _, e := range out {
		_ = enc.Encode(e)
	}
	w.(http.Flusher).Flush()
	for feed != nil {
		select {
		case <-r.Context().Done():
			return
		case e, ok := <-feed:
			if !ok {
				feed = nil
				break
			}
			if match(e) {
				_ = enc.Encode(e)
				w.(http.Flusher).Flush()
			}
		}
	}
	if tail != "" {
		_, _ = io.WriteString(w, tail)
		return
	}
	<-r.Context().Done()
}

func (f *fakeAPI) setEvents(evs ...api.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = evs
}

// sharedRoutes serves volumes, floating IPs and the hosts' task lists as
// the server does (server/shared.go, server/agentproxy.go), without the
// checks on the hosts: every path is usable and every host can hold every
// address.
func (f *fakeAPI) sharedRoutes(mux *http.ServeMux) {
	// volumeView fills in the users; call with f.mu held.
	volumeView := func(v api.VolumeView) api.VolumeView {
		v.Users = nil
		for name, wl := range f.workloads {
			if slices.Contains(wl.Volumes, v.Name) {
				v.Users = append(v.Users, name)
			}
		}
		sort.Strings(v.Users)
		return v
	}
	mux.HandleFunc("GET /v1/volumes", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []api.VolumeView{}
		for _, v := range f.volumes {
			out = append(out, volumeView(v))
		}
		f.reply(w, 200, out)
	})
	mux.HandleFunc("POST /v1/volumes", func(w http.ResponseWriter, r *http.Request) {
		var spec api.VolumeSpec
		if !f.decode(w, r, &spec) {
			return
		}
		spec.Normalize()
		if err := spec.Validate(); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.volumes[spec.Name]; ok {
			f.fail(w, 409, api.CodeConflict, "volume %q already exists", spec.Name)
			return
		}
		for _, v := range f.volumes {
			if v.Path == spec.Path {
				f.fail(w, 409, api.CodeConflict, "path %s is already volume %s", spec.Path, v.Name)
				return
			}
		}
		v := api.VolumeView{Volume: api.Volume{Schema: api.SchemaVersion, VolumeSpec: spec, CreatedAt: testTime}}
		f.volumes[spec.Name] = v
		f.reply(w, 201, v)
	})
	mux.HandleFunc("GET /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		v, ok := f.volumes[r.PathValue("name")]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "volume %q not found", r.PathValue("name"))
			return
		}
		f.reply(w, 200, volumeView(v))
	})
	mux.HandleFunc("DELETE /v1/volumes/{name}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		v, ok := f.volumes[name]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "volume %q not found", name)
			return
		}
		v = volumeView(v)
		if h := v.Holder; h != nil {
			f.fail(w, 409, api.CodeConflict, "volume %s is held by %s on %s (epoch %d); delete or move that workload first", name, h.Workload, h.Host, h.Epoch)
			return
		}
		if len(v.Users) > 0 {
			f.fail(w, 409, api.CodeConflict, "volume %s is attached to %s; delete those workloads first", name, strings.Join(v.Users, ", "))
			return
		}
		delete(f.volumes, name)
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("GET /v1/vips", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := []api.VIPView{}
		for _, v := range f.vips {
			out = append(out, v)
		}
		f.reply(w, 200, out)
	})
	mux.HandleFunc("POST /v1/vips", func(w http.ResponseWriter, r *http.Request) {
		var spec api.VIPSpec
		if !f.decode(w, r, &spec) {
			return
		}
		if err := spec.Validate(); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%s", strings.ReplaceAll(err.Error(), "\n", "; "))
			return
		}
		p, _ := api.ParseVIPPrefix(spec.Address)
		spec.Address = p.String()
		f.mu.Lock()
		defer f.mu.Unlock()
		addr := p.Addr().String()
		if old, ok := f.vips[addr]; ok {
			f.fail(w, 409, api.CodeConflict, "floating IP %s already exists (%s)", addr, old.Address)
			return
		}
		if spec.Workload != "" {
			if _, ok := f.workloads[spec.Workload]; !ok {
				f.fail(w, 404, api.CodeNotFound, "workload %q not found", spec.Workload)
				return
			}
		}
		v := api.VIPView{VIP: api.VIP{Schema: api.SchemaVersion, VIPSpec: spec, CreatedAt: testTime}}
		f.vips[addr] = v
		f.reply(w, 201, v)
	})
	// vip answers 400 or 404 for a bad or unknown {addr}; call with f.mu held.
	vip := func(w http.ResponseWriter, r *http.Request) (string, api.VIPView, bool) {
		raw, _, _ := strings.Cut(r.PathValue("addr"), "/")
		a, err := netip.ParseAddr(raw)
		if err != nil {
			f.fail(w, 400, api.CodeInvalid, "%q is not an IP address", r.PathValue("addr"))
			return "", api.VIPView{}, false
		}
		v, ok := f.vips[a.String()]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "floating IP %s not found", a)
		}
		return a.String(), v, ok
	}
	mux.HandleFunc("GET /v1/vips/{addr}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, v, ok := vip(w, r); ok {
			f.reply(w, 200, v)
		}
	})
	mux.HandleFunc("POST /v1/vips/{addr}/attach", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Workload string `json:"workload"`
		}
		if !f.decode(w, r, &req) {
			return
		}
		if err := api.ValidateName("workload", req.Workload); err != nil {
			f.fail(w, 400, api.CodeInvalid, "%v", err)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		addr, v, ok := vip(w, r)
		if !ok {
			return
		}
		switch {
		case v.Workload == req.Workload:
		case v.Workload != "":
			f.fail(w, 409, api.CodeConflict, "floating IP %s is already attached to %s (detach it first: bulwarkctl vip detach %s)", v.Address, v.Workload, addr)
			return
		default:
			if _, ok := f.workloads[req.Workload]; !ok {
				f.fail(w, 404, api.CodeNotFound, "workload %q not found", req.Workload)
				return
			}
			v.Workload = req.Workload
			f.vips[addr] = v
		}
		f.reply(w, 200, v)
	})
	mux.HandleFunc("POST /v1/vips/{addr}/detach", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		addr, v, ok := vip(w, r)
		if !ok {
			return
		}
		v.Workload = ""
		f.vips[addr] = v
		f.reply(w, 200, v)
	})
	mux.HandleFunc("DELETE /v1/vips/{addr}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		addr, v, ok := vip(w, r)
		switch {
		case !ok:
			return
		case v.Workload != "":
			f.fail(w, 409, api.CodeConflict, "floating IP %s is attached to %s; detach it first (bulwarkctl vip detach %s)", addr, v.Workload, addr)
			return
		case v.Holder != nil:
			f.fail(w, 409, api.CodeConflict, "floating IP %s is still held by %s on %s; wait until it is released", addr, v.Holder.Workload, v.Holder.Host)
			return
		}
		delete(f.vips, addr)
		w.WriteHeader(http.StatusNoContent)
	})

	mux.HandleFunc("GET /v1/nodes/{name}/tasks", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name := r.PathValue("name")
		switch _, ok := f.nodes[name]; {
		case !ok:
			f.fail(w, 404, api.CodeNotFound, "host %q is not registered", name)
		case f.agentDown:
			f.fail(w, 502, api.CodeUnavailable, "the agent of %s did not answer: dial tcp 10.0.0.1:7371: connect: connection refused", name)
		default:
			out := f.tasks[name]
			if out == nil {
				out = []api.Task{}
			}
			f.reply(w, 200, out)
		}
	})
}

// sharedGuards checks a new workload's volumes and floating IPs as the
// server does and attaches the floating IPs to it; call with f.mu held.
func (f *fakeAPI) sharedGuards(w http.ResponseWriter, spec api.WorkloadSpec) bool {
	for _, name := range spec.Volumes {
		if _, ok := f.volumes[name]; !ok {
			f.fail(w, 400, api.CodeInvalid, "volume %s does not exist (create it with: bulwarkctl volume create %s --path PATH)", name, name)
			return false
		}
	}
	for _, addr := range spec.VIPs {
		v, ok := f.vips[addr]
		if !ok {
			f.fail(w, 400, api.CodeInvalid, "floating IP %s does not exist (create it with: bulwarkctl vip create %s/PREFIX --interface IFACE)", addr, addr)
			return false
		}
		if v.Workload != "" && v.Workload != spec.Name {
			f.fail(w, 409, api.CodeConflict, "floating IP %s is already attached to %s", addr, v.Workload)
			return false
		}
	}
	for _, addr := range spec.VIPs {
		v := f.vips[addr]
		v.Workload = spec.Name
		f.vips[addr] = v
	}
	return true
}

// decode reads a JSON body strictly, as the server does, answering 400 if
// it cannot.
func (f *fakeAPI) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		f.fail(w, 400, api.CodeInvalid, "invalid request: %v", err)
		return false
	}
	return true
}

func (f *fakeAPI) addVolume(v api.VolumeView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.volumes[v.Name] = v
}

func (f *fakeAPI) addVIP(v api.VIPView) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, err := netip.ParsePrefix(v.Address)
	if err != nil {
		f.t.Fatalf("fake API: VIP address %q: %v", v.Address, err)
	}
	f.vips[p.Addr().String()] = v
}

func (f *fakeAPI) getVIP(addr string) (api.VIPView, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vips[addr]
	return v, ok
}

func (f *fakeAPI) hasVolume(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.volumes[name]
	return ok
}

func (f *fakeAPI) setTasks(host string, tasks ...api.Task) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks[host] = tasks
}

// requestBodies returns the body of each request, in order.
func (f *fakeAPI) requestBodies() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bodies...)
}
