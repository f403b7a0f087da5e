package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/bulwarkhq/bulwark/api"
)

// TestMain lets the test binary act as bulwarkctl itself when asked, so
// that a real shell can run the completion scripts against this build.
func TestMain(m *testing.M) {
	if os.Getenv("BULWARKCTL_TEST_AS_CLI") == "1" {
		app := NewApp(os.Stdout, os.Stderr)
		if err := app.Run(append([]string{"bulwarkctl"}, os.Args[1:]...)); err != nil {
			fmt.Fprintf(os.Stderr, "error: %v\n", err)
			os.Exit(ExitError)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeMaintenance is the fake server's maintenance, drain and reset state.
type fakeMaintenance struct {
	records map[string]*api.Maintenance
	plans   map[string]api.DrainPlan
	// steps are the answers of GET /v1/nodes/{name}/drain once a drain
	// started, in turn (the last one repeats).
	steps    map[string][]api.DrainStatus
	running  map[string]bool
	resets   map[string]api.ResetResult
	requests []api.DrainRequest
}

func (f *fakeAPI) maintenanceRoutes(mux *http.ServeMux) {
	m := &f.maint
	m.records, m.plans, m.steps, m.running, m.resets = map[string]*api.Maintenance{}, map[string]api.DrainPlan{}, map[string][]api.DrainStatus{}, map[string]bool{}, map[string]api.ResetResult{}
	node := func(w http.ResponseWriter, r *http.Request) (string, bool) {
		name := r.PathValue("name")
		if _, ok := f.nodes[name]; !ok {
			f.fail(w, 404, api.CodeNotFound, "node %q not found", name)
			return "", false
		}
		return name, true
	}
	mux.HandleFunc("PUT /v1/nodes/{name}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name, ok := node(w, r)
		if !ok {
			return
		}
		var req api.MaintenanceRequest
		if !f.decode(w, r, &req) {
			return
		}
		if cur, ok := m.records[name]; ok {
			f.reply(w, 200, api.MaintenanceResult{Node: name, Maintenance: cur})
			return
		}
		rec := &api.Maintenance{Schema: 1, Host: name, Reason: req.Reason, By: req.By, Since: testTime}
		m.records[name] = rec
		f.reply(w, 200, api.MaintenanceResult{Node: name, Changed: true, Maintenance: rec})
	})
	mux.HandleFunc("DELETE /v1/nodes/{name}/maintenance", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name, ok := node(w, r)
		if !ok {
			return
		}
		cur, had := m.records[name]
		delete(m.records, name)
		delete(m.running, name)
		f.reply(w, 200, api.MaintenanceResult{Node: name, Changed: had, Maintenance: cur})
	})
	mux.HandleFunc("GET /v1/nodes/{name}/drain/plan", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name, ok := node(w, r)
		if !ok {
			return
		}
		p := m.plans[name]
		p.Host, p.Batch = name, 1
		if b := r.URL.Query().Get("batch"); b != "" {
			fmt.Sscan(b, &p.Batch)
		}
		f.reply(w, 200, p)
	})
	mux.HandleFunc("POST /v1/nodes/{name}/drain", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name, ok := node(w, r)
		if !ok {
			return
		}
		var req api.DrainRequest
		if !f.decode(w, r, &req) {
			return
		}
		if m.running[name] {
			f.fail(w, 409, api.CodeConflict, "a drain of %s is already under way", name)
			return
		}
		m.requests = append(m.requests, req)
		m.running[name] = true
		if m.records[name] == nil {
			m.records[name] = &api.Maintenance{Schema: 1, Host: name, Since: testTime}
		}
		f.reply(w, 202, api.DrainStatus{Host: name, State: api.DrainRunning, Batch: req.Batch, Started: testTime, Deadline: testTime.Add(time.Duration(req.Timeout))})
	})
	mux.HandleFunc("GET /v1/nodes/{name}/drain", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		name, ok := node(w, r)
		if !ok {
			return
		}
		steps := m.steps[name]
		if !m.running[name] || len(steps) == 0 {
			f.fail(w, 404, api.CodeNotFound, "node %q has no drain", name)
			return
		}
		st := steps[0]
		if len(steps) > 1 {
			m.steps[name] = steps[1:]
		}
		f.reply(w, 200, st)
	})
	mux.HandleFunc("POST /v1/workloads/{name}/reset", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		res, ok := m.resets[r.PathValue("name")]
		if !ok {
			f.fail(w, 404, api.CodeNotFound, "workload %q not found", r.PathValue("name"))
			return
		}
		f.reply(w, 200, res)
	})
}

var (
	drainPlanB = api.DrainPlan{
		Moves: []api.DrainPlanMove{
			{Batch: 1, Workload: "db-1", Priority: 500, To: "node-c"},
			{Batch: 1, Workload: "web-1", Priority: 10, To: "node-a"},
			{Batch: 2, Workload: "web-2", Priority: 0, To: "node-c"},
		},
		Stuck: []api.DrainStuck{{Workload: "r2-only", Priority: 0, Reason: "no host fits: label rack=r2 (2 hosts), maintenance (1 host)"}},
	}
	moveDB = api.DrainMove{Workload: "db-1", Priority: 500, Batch: 1, Epoch: 7, Planned: "node-c"}
	moveW1 = api.DrainMove{Workload: "web-1", Priority: 10, Batch: 1, Epoch: 8, Planned: "node-a"}
	moveW2 = api.DrainMove{Workload: "web-2", Batch: 2, Epoch: 9, Planned: "node-c"}
)

func moved(m api.DrainMove, host string) api.DrainMoveStatus {
	m.Outcome, m.Host = api.DrainMoved, host
	return api.DrainMoveStatus{DrainMove: m, Phase: api.DrainMoved, Now: host}
}

func inPhase(m api.DrainMove, phase, now string) api.DrainMoveStatus {
	return api.DrainMoveStatus{DrainMove: m, Phase: phase, Now: now}
}

// drainSteps is a drain of node-b as the server reports it, poll by poll.
func drainSteps(final api.DrainState) []api.DrainStatus {
	base := api.DrainStatus{Host: "node-b", State: api.DrainRunning, Batch: 2, Started: testTime, Deadline: testTime.Add(time.Hour), Stuck: []api.DrainStuck{}}
	step := func(batches, remaining int, moves ...api.DrainMoveStatus) api.DrainStatus {
		s := base
		s.Batches, s.Remaining, s.Moves = batches, remaining, moves
		return s
	}
	end := step(2, 1, moved(moveDB, "node-c"), moved(moveW1, "node-a"), moved(moveW2, "node-c"))
	end.State, end.Finished = final, testTime.Add(42*time.Second)
	end.Stuck = drainPlanB.Stuck
	end.Reporting = []string{"r2-only"}
	end.Message = "3 moved; 1 could not move: r2-only (no host fits)"
	if final == api.DrainComplete {
		end.Stuck, end.Reporting, end.Remaining, end.Message = []api.DrainStuck{}, nil, 0, "3 moved; nothing left on the host"
	}
	return []api.DrainStatus{
		step(1, 2, inPhase(moveDB, api.PhaseStopping, ""), inPhase(moveW1, api.PhaseStopping, "")),
		step(1, 2, inPhase(moveDB, api.PhaseStarting, "node-c"), inPhase(moveW1, api.PhaseWaiting, "")),
		step(1, 2, moved(moveDB, "node-c"), moved(moveW1, "node-a")),
		step(2, 1, moved(moveDB, "node-c"), moved(moveW1, "node-a"), inPhase(moveW2, api.PhaseStopping, "")),
		end,
	}
}

func drainFake(t *testing.T, final api.DrainState) *fakeAPI {
	f := newFakeAPI(t)
	for _, n := range []string{"node-a", "node-b", "node-c"} {
		f.addNode(api.NodeView{Node: api.Node{Name: n, CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady})
	}
	f.maint.plans["node-b"] = drainPlanB
	f.maint.steps["node-b"] = drainSteps(final)
	return f
}

func init() { drainPoll = time.Millisecond }

func TestNodeDrain(t *testing.T) {
	t.Run("yes, complete", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		r := runCLI(t, f, "", "node", "drain", "node-b", "--yes", "--batch", "2", "--timeout", "1h", "--reason", "BIOS update").mustSucceed(t)
		want := []string{
			"Drain plan for node-b (batches of 2): 3 workloads move in 2 batches, 1 stays",
			"BATCH WORKLOAD PRIORITY TO",
			"1 db-1 500 node-c",
			"1 web-1 10 node-a",
			"2 web-2 0 node-c",
			"",
			"STAYS ON node-b PRIORITY WHY",
			"r2-only 0 no host fits: label rack=r2 (2 hosts), maintenance (1 host)",
			"",
			"Drain of node-b: COMPLETE after 42s",
			"MOVED BATCH TO",
			"db-1 1 node-c",
			"web-1 1 node-a",
			"web-2 2 node-c",
			"node-b runs nothing now and stays in maintenance; when it is back: bulwarkctl node undrain node-b",
		}
		if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
			t.Errorf("stdout\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, w := range []string{
			"node-b is now in maintenance",
			"drain of node-b started: 3 workloads to move, batches of 2, timeout 1h0m0s",
			"batch 1  db-1                 stopping on its old host",
			"batch 1  db-1                 starting on node-c",
			"batch 1  db-1                 moved: running on node-c",
			"batch 1  web-1                stopped; waiting to be placed",
			"batch 2  web-2                moved: running on node-c",
		} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("progress lacks %q:\n%s", w, r.stderr)
			}
		}
		if strings.Count(r.stderr, "db-1                 moved") != 1 {
			t.Errorf("a phase printed more than once:\n%s", r.stderr)
		}
		reqs := f.requestLog()
		wantReqs := []string{"GET /v1/nodes/node-b/drain", "PUT /v1/nodes/node-b/maintenance", "GET /v1/nodes/node-b/drain/plan?batch=2", "POST /v1/nodes/node-b/drain"}
		if !reflect.DeepEqual(reqs[:4], wantReqs) {
			t.Errorf("requests %v", reqs)
		}
		if dr := f.maint.requests[0]; dr.Batch != 2 || time.Duration(dr.Timeout) != time.Hour || dr.Reason != "BIOS update" || dr.By == "" {
			t.Errorf("drain request %+v", dr)
		}
	})
	t.Run("incomplete fails with the report", func(t *testing.T) {
		f := drainFake(t, api.DrainIncomplete)
		r := runCLI(t, f, "", "node", "drain", "node-b", "--yes", "--batch", "2")
		if r.err == nil || !strings.Contains(r.err.Error(), "the drain of node-b ended incomplete: node-b was not emptied") {
			t.Fatalf("error %v", r.err)
		}
		for _, w := range []string{"Drain of node-b: INCOMPLETE after 42s", "COULD NOT MOVE PRIORITY WHY (it still runs on node-b)",
			"r2-only 0 no host fits: label rack=r2 (2 hosts), maintenance (1 host)", "node-b stays in maintenance with 1 workload on it; undo with: bulwarkctl node undrain node-b"} {
			if !strings.Contains(strings.Join(lines(r.stdout), "\n"), w) {
				t.Errorf("report lacks %q:\n%s", w, r.stdout)
			}
		}
	})
	t.Run("declined: maintenance undone", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		r := runCLI(t, f, "n\n", "node", "drain", "node-b")
		if r.err == nil || !strings.Contains(r.err.Error(), "drain of node-b cancelled (not confirmed): no workload was moved; node-b is out of maintenance again, as it was before") {
			t.Fatalf("error %v", r.err)
		}
		if !strings.Contains(r.stderr, "Drain node-b: move 3 workloads in 2 batches; 1 stays. Go ahead? [y/N]") {
			t.Errorf("question:\n%s", r.stderr)
		}
		if !strings.Contains(r.stdout, "Drain plan for node-b") {
			t.Errorf("the plan was not shown first:\n%s", r.stdout)
		}
		reqs := f.requestLog()
		if !strings.HasPrefix(reqs[len(reqs)-1], "DELETE /v1/nodes/node-b/maintenance?by=") || len(f.maint.requests) != 0 {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("declined: maintenance that was on stays", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		runCLI(t, f, "", "node", "maintenance", "on", "node-b").mustSucceed(t)
		r := runCLI(t, f, "no\n", "node", "drain", "node-b")
		if r.err == nil || !strings.Contains(r.err.Error(), "node-b stays in maintenance, as it was before") {
			t.Fatalf("error %v", r.err)
		}
	})
	t.Run("confirmed with y", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		runCLI(t, f, "y\n", "node", "drain", "node-b").mustSucceed(t)
		if len(f.maint.requests) != 1 || f.maint.requests[0].Batch != 1 {
			t.Errorf("drain requests %+v", f.maint.requests)
		}
	})
	t.Run("no terminal, no --yes: refused, nothing changed", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		pw.Close()
		r := runCLIWith(t, context.Background(), f, pr, "node", "drain", "node-b")
		if r.err == nil || !strings.Contains(r.err.Error(), "standard input is not a terminal, so bulwarkctl cannot show you the plan and ask you to confirm: add --yes to drain node-b without a question (nothing was changed)") {
			t.Fatalf("error %v", r.err)
		}
		for _, req := range f.requestLog() {
			if !strings.HasPrefix(req, "GET ") {
				t.Errorf("request %q made", req)
			}
		}
	})
	t.Run("follows a drain under way", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		f.maint.running["node-b"] = true
		r := runCLI(t, f, "", "node", "drain", "node-b").mustSucceed(t)
		if !strings.Contains(r.stderr, "a drain of node-b is already under way") || len(f.maint.requests) != 0 {
			t.Errorf("stderr %s requests %v", r.stderr, f.requestLog())
		}
		if !strings.Contains(r.stdout, "Drain of node-b: COMPLETE") || strings.Contains(r.stdout, "Drain plan") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})
	t.Run("json and yaml: plan and report in one object", func(t *testing.T) {
		for _, format := range []string{"json", "yaml"} {
			f := drainFake(t, api.DrainComplete)
			r := runCLI(t, f, "", "node", "drain", "node-b", "--yes", "-o", format).mustSucceed(t)
			b := []byte(r.stdout)
			if format == "yaml" {
				var err error
				if b, err = yaml.YAMLToJSON(b); err != nil {
					t.Fatalf("not YAML: %v\n%s", err, r.stdout)
				}
			}
			var out drainOutput
			if err := json.Unmarshal(b, &out); err != nil {
				t.Fatalf("%s: %v\n%s", format, err, r.stdout)
			}
			if out.Plan == nil || len(out.Plan.Moves) != 3 || out.Drain == nil || out.Drain.State != api.DrainComplete || len(out.Drain.Moves) != 3 {
				t.Errorf("%s: %+v", format, out)
			}
		}
	})
	t.Run("bad options send nothing", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		for _, args := range [][]string{
			{"node", "drain"},
			{"node", "drain", "Node_B", "--yes"},
			{"node", "drain", "node-b", "--yes", "--batch", "0"},
			{"node", "drain", "node-b", "--yes", "--timeout", "0s"},
			{"node", "drain", "node-b", "node-c"},
		} {
			if r := runCLI(t, f, "", args...); r.err == nil {
				t.Errorf("%v: no error", args)
			}
		}
		if reqs := f.requestLog(); len(reqs) != 0 {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("unknown node", func(t *testing.T) {
		f := drainFake(t, api.DrainComplete)
		r := runCLI(t, f, "", "node", "drain", "node-x", "--yes")
		if r.err == nil || !strings.Contains(r.err.Error(), `node "node-x" is not registered`) {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestNodeMaintenance(t *testing.T) {
	f := drainFake(t, api.DrainComplete)
	r := runCLI(t, f, "", "node", "maintenance", "on", "node-a", "--reason", "DIMM B2").mustSucceed(t)
	if !strings.Contains(r.stdout, "node-a is in maintenance: nothing new is placed there; what runs there stays (move it off with: bulwarkctl node drain node-a)") {
		t.Errorf("on: %s", r.stdout)
	}
	var req api.MaintenanceRequest
	bodies := f.requestBodies()
	if err := json.Unmarshal([]byte(bodies[len(bodies)-1]), &req); err != nil || req.Reason != "DIMM B2" || req.By == "" {
		t.Errorf("body %s: %v", bodies[len(bodies)-1], err)
	}
	r = runCLI(t, f, "", "node", "maintenance", "on", "node-a").mustSucceed(t)
	if !strings.Contains(r.stdout, "node-a was already in maintenance (since 2025-06-01T12:00:00Z by ") || !strings.Contains(r.stdout, ": DIMM B2); nothing changed") {
		t.Errorf("on again: %s", r.stdout)
	}
	r = runCLI(t, f, "", "node", "maintenance", "off", "node-a", "-o", "yaml").mustSucceed(t)
	if !strings.Contains(r.stdout, "changed: true\n") || !strings.Contains(r.stdout, "reason: DIMM B2\n") || !strings.Contains(r.stdout, "node: node-a\n") {
		t.Errorf("off -o yaml:\n%s", r.stdout)
	}
	r = runCLI(t, f, "", "node", "undrain", "node-a").mustSucceed(t)
	if r.stdout != "node-a was not in maintenance; nothing changed\n" {
		t.Errorf("undrain: %q", r.stdout)
	}
	n := len(f.requestLog())
	for _, args := range [][]string{
		{"node", "maintenance"},
		{"node", "maintenance", "maybe", "node-a"},
		{"node", "maintenance", "on"},
		{"node", "maintenance", "off", "node-a", "--reason", "x"},
		{"node", "maintenance", "on", "node-a", "--reason", strings.Repeat("x", 300)},
	} {
		if r := runCLI(t, f, "", args...); r.err == nil {
			t.Errorf("%v: no error", args)
		}
	}
	if reqs := f.requestLog(); len(reqs) != n {
		t.Errorf("bad input sent %v", reqs[n:])
	}
}

// TestNodeListShowsMaintenance: the state column carries maintenance and
// drains; node show says since when, by whom, and how the drain went.
func TestNodeListShowsMaintenance(t *testing.T) {
	f := newFakeAPI(t)
	f.addNode(api.NodeView{Node: api.Node{Name: "node-a", CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady,
		Maintenance: &api.Maintenance{Host: "node-a", By: "alice@ws", Reason: "DIMM", Since: testTime}})
	f.addNode(api.NodeView{Node: api.Node{Name: "node-b", CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady,
		Maintenance: &api.Maintenance{Host: "node-b", Since: testTime, Drain: &api.Drain{State: api.DrainRunning, Batch: 1, Started: testTime}}})
	f.addNode(api.NodeView{Node: api.Node{Name: "node-c", CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady,
		Maintenance: &api.Maintenance{Host: "node-c", Since: testTime, Drain: &api.Drain{State: api.DrainComplete, Batch: 2, Batches: 1, Started: testTime,
			Moves: []api.DrainMove{{Workload: "x", Outcome: api.DrainMoved}}, Message: "1 moved; nothing left on the host"}}})
	f.addNode(api.NodeView{Node: api.Node{Name: "node-d", CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady})
	r := runCLI(t, f, "", "node", "list").mustSucceed(t)
	got := lines(r.stdout)
	for i, want := range []string{"node-a ready,maintenance", "node-b ready,draining", "node-c ready,drained", "node-d ready -"} {
		if !strings.HasPrefix(got[i+1], want) {
			t.Errorf("row %q, want it to start with %q", got[i+1], want)
		}
	}
	r = runCLI(t, f, "", "node", "show", "node-a").mustSucceed(t)
	if !strings.Contains(r.stdout, "Maintenance:        since 2025-06-01T12:00:00Z by alice@ws: DIMM") {
		t.Errorf("show:\n%s", r.stdout)
	}
	r = runCLI(t, f, "", "node", "show", "node-c").mustSucceed(t)
	if !strings.Contains(r.stdout, "Drain:              complete (started 2025-06-01T12:00:00Z, batches of 2): 1 moved; nothing left on the host") {
		t.Errorf("show:\n%s", r.stdout)
	}
}

func TestWorkloadReset(t *testing.T) {
	f := newFakeAPI(t)
	f.maint.resets["web-1"] = api.ResetResult{Workload: "web-1", Applied: true, Before: 3, Message: "failure count 3 cleared; its host gave up on it, so it is placed again on another host after a short backoff"}
	f.maint.resets["slow"] = api.ResetResult{Workload: "slow", Message: "the reset waits for the leader"}
	r := runCLI(t, f, "", "workload", "reset", "web-1").mustSucceed(t)
	if r.stdout != "web-1: failure count 3 cleared; its host gave up on it, so it is placed again on another host after a short backoff\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	if reqs := f.requestLog(); !strings.HasPrefix(reqs[0], "POST /v1/workloads/web-1/reset?by=") {
		t.Errorf("requests %v", reqs)
	}
	r = runCLI(t, f, "", "workload", "reset", "web-1", "-o", "json").mustSucceed(t)
	var res api.ResetResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Applied || res.Before != 3 {
		t.Errorf("json %s: %v", r.stdout, err)
	}
	if r := runCLI(t, f, "", "workload", "reset", "slow"); r.err == nil || !strings.Contains(r.err.Error(), "not applied yet") {
		t.Errorf("not applied: %v", r.err)
	}
	if r := runCLI(t, f, "", "workload", "reset", "nope"); r.err == nil || !strings.Contains(r.err.Error(), `workload "nope" not found`) {
		t.Errorf("unknown: %v", r.err)
	}
}

// TestOutputYAML: -o yaml prints the same records as -o json, with the same
// field names, wherever -o exists.
func TestOutputYAML(t *testing.T) {
	f := newFakeAPI(t)
	f.addNode(api.NodeView{Node: api.Node{Name: "node-a", CPUs: 8, Memory: 16 * api.GiB}, State: api.NodeReady, CPUsUsed: 2})
	f.addWorkload(api.WorkloadView{Workload: api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "web-1", Kind: api.KindVM, CPUs: 2, Memory: api.GiB}}, State: api.StateRunning, Host: "node-a"})
	f.setEvents(api.Event{Schema: 1, Time: testTime, Type: "placed", Host: "node-a", Workload: "web-1", Message: "placed on node-a"})
	for _, args := range [][]string{
		{"node", "list"}, {"node", "show", "node-a"}, {"workload", "list"}, {"workload", "show", "web-1"},
		{"settings", "show"}, {"events"}, {"explain", "web-1"}, {"status"},
	} {
		y := runCLI(t, f, "", append(args, "-o", "yaml")...).mustSucceed(t)
		j := runCLI(t, f, "", append(args, "-o", "json")...).mustSucceed(t)
		conv, err := yaml.YAMLToJSON([]byte(y.stdout))
		if err != nil {
			t.Errorf("%v -o yaml is not YAML: %v\n%s", args, err, y.stdout)
			continue
		}
		var a, b any
		if err := json.Unmarshal(conv, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(j.stdout), &b); err != nil {
			t.Fatalf("%v -o json: %v", args, err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%v: yaml and json differ\nyaml:\n%s\njson:\n%s", args, y.stdout, j.stdout)
		}
	}
	r := runCLI(t, f, "", "node", "show", "node-a", "-o", "yaml").mustSucceed(t)
	if !strings.Contains(r.stdout, "cpus_used: 2\n") || !strings.Contains(r.stdout, "name: node-a\n") {
		t.Errorf("field names:\n%s", r.stdout)
	}
}

// TestCompletion: the scripts are valid shell, and run by a real bash
// against this very build they complete commands, subcommands and flags.
func TestCompletion(t *testing.T) {
	// urfave/cli reads os.Args to complete, so ask this binary as a CLI.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	asCLI := func(args ...string) string {
		cmd := exec.Command(self, args...)
		cmd.Env = append(os.Environ(), "BULWARKCTL_TEST_AS_CLI=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bulwarkctl %v: %v", args, err)
		}
		return string(out)
	}
	out := asCLI("--generate-bash-completion")
	for _, w := range []string{"node\n", "workload\n", "settings\n", "completion\n", "whatif\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("top-level completion lacks %q:\n%s", w, out)
		}
	}
	out = asCLI("node", "--generate-bash-completion")
	for _, w := range []string{"drain\n", "undrain\n", "maintenance\n", "list\n"} {
		if !strings.Contains(out, w) {
			t.Errorf("node completion lacks %q:\n%s", w, out)
		}
	}
	out = asCLI("node", "drain", "--ba", "--generate-bash-completion")
	if !strings.Contains(out, "--batch\n") {
		t.Errorf("flag completion:\n%s", out)
	}
	bashScript := runCLI(t, nil, "", "completion", "bash").mustSucceed(t).stdout
	zshScript := runCLI(t, nil, "", "completion", "zsh").mustSucceed(t).stdout
	if !strings.HasPrefix(zshScript, "#compdef bulwarkctl\n") || !strings.Contains(zshScript, "compdef _bulwarkctl bulwarkctl") {
		t.Errorf("zsh script:\n%s", zshScript)
	}
	if r := runCLI(t, nil, "", "completion", "fish"); r.err == nil || !strings.Contains(r.err.Error(), `unknown shell "fish"`) {
		t.Errorf("fish: %v", r.err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash here: cannot check the bash script")
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "bulwarkctl.bash")
	if err := os.WriteFile(script, []byte(bashScript), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bash, "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	if zsh, err := exec.LookPath("zsh"); err == nil {
		zs := filepath.Join(dir, "_bulwarkctl")
		_ = os.WriteFile(zs, []byte(zshScript), 0o644)
		if out, err := exec.Command(zsh, "-n", zs).CombinedOutput(); err != nil {
			t.Errorf("zsh -n: %v\n%s", err, out)
		}
	}
	// This test binary is bulwarkctl when BULWARKCTL_TEST_AS_CLI=1 (TestMain).
	prog := filepath.Join(dir, "bulwarkctl")
	if err := os.Symlink(self, prog); err != nil {
		t.Fatal(err)
	}
	check := `source ` + script + `
complete -p bulwarkctl >/dev/null || { echo "not registered"; exit 1; }
for l in "$PROG no" "$PROG node " "$PROG node dr" "$PROG --api http://127.0.0.1:1 node un" "$PROG node drain host-1 --ba" "$PROG wo"; do
  COMP_LINE="$l"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  _bulwarkctl
  echo "$l => ${COMPREPLY[*]}"
done`
	cmd := exec.Command(bash, "-c", check)
	cmd.Env = append(os.Environ(), "BULWARKCTL_TEST_AS_CLI=1", "PROG="+prog)
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, res)
	}
	got := strings.ReplaceAll(string(res), prog, "bulwarkctl")
	for _, w := range []string{
		"bulwarkctl no => node nodes\n",
		"bulwarkctl node  => list ls show get tasks ps maintenance drain undrain fence clear power-on\n",
		"bulwarkctl node dr => drain\n",
		"bulwarkctl --api http://127.0.0.1:1 node un => undrain\n",
		"bulwarkctl node drain host-1 --ba => --batch\n",
		"bulwarkctl wo => workload workloads\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("completion lacks %q:\n%s", w, got)
		}
	}
}
