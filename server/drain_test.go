package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// world is a store, a leader's evaluator and an API handler on a fake
// clock, with hosts whose "agents" the test plays.
type world struct {
	t      *testing.T
	ctx    context.Context
	mu     sync.Mutex
	now    time.Time
	st     *memory.Store
	ev     *Evaluator
	ts     *httptest.Server
	leases map[string]clusterstore.LeaseID
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, ctx: context.Background(), now: time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC), leases: map[string]clusterstore.LeaseID{}}
	w.st = memory.New(memory.WithClock(w.clock))
	t.Cleanup(func() { w.st.Close() })
	ev, err := NewEvaluator(Config{Name: "t", Store: w.st, Log: quietLog()}, clusterstore.Missing(clusterstore.Prefix+"never"), w.clock)
	if err != nil {
		t.Fatal(err)
	}
	w.ev = ev
	// The handler on the fake clock, with the routes these tests use.
	h := &Handler{store: w.st, log: quietLog(), now: w.clock, sched: scheduler.New(scheduler.Options{})}
	h.fence.defaults()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/nodes/{name}", h.getNode)
	h.routeMaintenance(mux)
	w.ts = httptest.NewServer(mux)
	t.Cleanup(w.ts.Close)
	return w
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
	w.settle()
}

func (w *world) txn(ops ...clusterstore.Op) {
	w.t.Helper()
	if _, _, err := w.st.Txn(w.ctx, nil, ops); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) host(name string, cpus int) {
	w.t.Helper()
	id, err := w.st.Grant(w.ctx, time.Hour)
	if err != nil {
		w.t.Fatal(err)
	}
	w.leases[name] = id
	n := api.Node{Schema: api.SchemaVersion, Name: name, CPUs: cpus, Memory: 16 * api.GiB}
	hb := api.Heartbeat{Schema: api.SchemaVersion, Host: name, Lease: int64(id)}
	w.txn(clusterstore.Put(clusterstore.NodeKey(name), clusterstore.Encode(n)),
		clusterstore.PutWithLease(clusterstore.HeartbeatKey(name), clusterstore.Encode(hb), id))
}

func (w *world) vm(name string, cpus int) {
	w.t.Helper()
	wl := api.Workload{Schema: api.SchemaVersion, WorkloadSpec: api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: cpus, Memory: 256 * api.MiB}, CreatedAt: w.clock()}
	w.txn(clusterstore.Put(clusterstore.WorkloadKey(name), clusterstore.Encode(wl)))
}

func (w *world) snap() *clusterstore.Snapshot {
	w.t.Helper()
	s, _, err := clusterstore.ReadSnapshot(w.ctx, w.st)
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// agents plays every host's agent: what is allocated to it runs (at its
// epoch), unless the test set another report; what is not is stopped.
func (w *world) agents(keep map[string]api.WorkloadStatus) {
	w.t.Helper()
	s := w.snap()
	var ops []clusterstore.Op
	for host, lease := range w.leases {
		for name, a := range s.Allocations {
			if a.Value.Host != host {
				continue
			}
			st := api.WorkloadStatus{Schema: api.SchemaVersion, Workload: name, Host: host, Epoch: a.Value.Epoch, State: api.StateRunning, UpdatedAt: w.clock()}
			if k, ok := keep[name]; ok && k.Epoch == a.Value.Epoch {
				continue
			}
			if old, ok := s.Statuses[host][name]; ok && old.Value.Epoch == st.Epoch && old.Value.State == st.State {
				continue
			}
			ops = append(ops, clusterstore.PutWithLease(clusterstore.StatusKey(host, name), clusterstore.Encode(st), lease))
		}
		for name := range s.Statuses[host] {
			if a, ok := s.Allocations[name]; !ok || a.Value.Host != host {
				ops = append(ops, clusterstore.Delete(clusterstore.StatusKey(host, name)))
			}
		}
	}
	if len(ops) > 0 {
		w.txn(ops...)
	}
}

// report writes one host's report of a workload, as its agent would.
func (w *world) report(host string, st api.WorkloadStatus) {
	w.t.Helper()
	st.Schema, st.Host = api.SchemaVersion, host
	w.txn(clusterstore.PutWithLease(clusterstore.StatusKey(host, st.Workload), clusterstore.Encode(st), w.leases[host]))
}

// settle evaluates until nothing changes, the test's agents reporting in
// between (without touching reports the test wrote for failing workloads).
func (w *world) settle() {
	w.t.Helper()
	for i := 0; i < 100; i++ {
		_, _, before, _ := w.st.Get(w.ctx, "/probe")
		if _, err := w.ev.Evaluate(w.ctx); err != nil {
			w.t.Fatal(err)
		}
		w.agents(w.failing())
		if _, _, after, _ := w.st.Get(w.ctx, "/probe"); after == before {
			return
		}
	}
	w.t.Fatal("the leader does not settle")
}

// failing are the reports of given-up workloads at their current epoch.
func (w *world) failing() map[string]api.WorkloadStatus {
	out := map[string]api.WorkloadStatus{}
	s := w.snap()
	for _, byName := range s.Statuses {
		for name, st := range byName {
			if st.Value.GaveUp {
				out[name] = st.Value
			}
		}
	}
	return out
}

func (w *world) events(typ string) []api.Event {
	w.t.Helper()
	kvs, _, err := w.st.List(w.ctx, clusterstore.EventsPrefix, 0)
	if err != nil {
		w.t.Fatal(err)
	}
	var out []api.Event
	for _, kv := range kvs {
		var e api.Event
		if clusterstore.Decode(kv, &e) == nil && e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}

func (w *world) call(method, path, body string, out any) int {
	w.t.Helper()
	code, b := do(w.t, method, w.ts.URL+path, body)
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			w.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	if code >= 300 && out != nil {
		w.t.Logf("%s %s: %d %s", method, path, code, b)
	}
	return code
}

// setReschedules stands in for a history of reschedules.
func (w *world) setReschedules(name string, n int) {
	w.t.Helper()
	s := w.snap()
	a := s.Allocations[name].Value
	a.Reschedules = n
	w.txn(clusterstore.Put(clusterstore.AllocationKey(name), clusterstore.Encode(a)))
}

// TestFailureCountExpires: a workload's reschedule count expires once it
// has run failure_timeout (10m by default) since its last start, on the
// leader's clock; with failure_timeout 0 it never does.
func TestFailureCountExpires(t *testing.T) {
	w := newWorld(t)
	w.host("h1", 4)
	w.vm("w", 1)
	w.settle()
	w.setReschedules("w", 2)
	started := w.snap().Statuses["h1"]["w"].Value.UpdatedAt
	w.advance(10*time.Minute - time.Second)
	if n := w.snap().Allocations["w"].Value.Reschedules; n != 2 {
		t.Fatalf("reschedules %d after 9m59s, want 2", n)
	}
	epoch := w.snap().Allocations["w"].Value.Epoch
	w.advance(time.Second)
	a := w.snap().Allocations["w"].Value
	if a.Reschedules != 0 || a.Epoch != epoch {
		t.Fatalf("after 10m: %+v (epoch was %d): the count must expire, the placement stay", a, epoch)
	}
	evs := w.events("failures-expired")
	if len(evs) != 1 || evs[0].Workload != "w" || !strings.Contains(evs[0].Message, "failure count 2 expired") {
		t.Fatalf("events %+v", evs)
	}
	if w.clock().Sub(started) != 10*time.Minute {
		t.Fatalf("clock %v", w.clock().Sub(started))
	}

	// failure_timeout 0: never.
	w.txn(clusterstore.Put(clusterstore.SettingsKey, clusterstore.Encode(api.Settings{Schema: 1, Strategy: api.StrategyBinpack})))
	w.setReschedules("w", 1)
	w.advance(24 * time.Hour)
	if n := w.snap().Allocations["w"].Value.Reschedules; n != 1 {
		t.Fatalf("reschedules %d with failure_timeout 0, want 1", n)
	}
}

// TestGaveUpIsRetriedAfterFailureTimeout: a workload at the reschedule
// limit stays failed; failure_timeout after its host gave up, the count
// expires and it is rescheduled to another host.
func TestGaveUpIsRetriedAfterFailureTimeout(t *testing.T) {
	w := newWorld(t)
	w.host("h1", 4)
	w.vm("w", 1)
	w.settle()
	w.host("h2", 4)
	w.setReschedules("w", api.RescheduleLimit)
	a := w.snap().Allocations["w"].Value
	w.report("h1", api.WorkloadStatus{Workload: "w", Epoch: a.Epoch, State: api.StateFailed, GaveUp: true, Reason: "gave up after 3 restarts", UpdatedAt: w.clock()})
	w.advance(5 * time.Minute)
	v := workloadView(w.snap(), w.snap().Workloads["w"].Value)
	if v.Host != "h1" || v.State != api.StateFailed || !strings.Contains(v.Reason, "bulwarkctl workload reset w") {
		t.Fatalf("at the limit: %+v", v)
	}
	w.advance(5 * time.Minute)
	if evs := w.events("failures-expired"); len(evs) != 1 || !strings.Contains(evs[0].Message, "gave up on it") {
		t.Fatalf("events %+v", evs)
	}
	w.advance(5 * time.Second) // the reschedule backoff
	s := w.snap()
	if a := s.Allocations["w"].Value; a.Host != "h2" || a.Reschedules != 1 {
		t.Fatalf("after the timeout: %+v", a)
	}
}

// TestResetWorkload: POST /v1/workloads/{name}/reset asks the leader, waits
// for it, and a workload that gave up is placed again.
func TestResetWorkload(t *testing.T) {
	w := newWorld(t)
	w.host("h1", 4)
	w.host("h2", 4)
	w.vm("w", 1)
	w.settle()
	w.setReschedules("w", api.RescheduleLimit)
	a := w.snap().Allocations["w"].Value
	w.report(a.Host, api.WorkloadStatus{Workload: "w", Epoch: a.Epoch, State: api.StateFailed, GaveUp: true, Reason: "gave up", UpdatedAt: w.clock()})
	w.settle()

	// No leader: the request waits.
	defer func(d time.Duration) { resetWait = d }(resetWait)
	resetWait = 100 * time.Millisecond
	var res api.ResetResult
	if code := w.call("POST", "/v1/workloads/w/reset", "", &res); code != 200 || res.Applied || res.Before != 3 || !strings.Contains(res.Message, "waits for the leader") {
		t.Fatalf("without a leader: %d %+v", code, res)
	}
	// With one evaluating meanwhile, it is applied before the answer.
	resetWait = 5 * time.Second
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				_, _ = w.ev.Evaluate(w.ctx)
			}
		}
	}()
	code := w.call("POST", "/v1/workloads/w/reset?by=alice", "", &res)
	close(stop)
	<-done
	if code != 200 || !res.Applied || res.Before != 3 || !strings.Contains(res.Message, "placed again") {
		t.Fatalf("reset: %d %+v", code, res)
	}
	if evs := w.events("failures-reset"); len(evs) == 0 || !strings.Contains(evs[len(evs)-1].Message, "failure count 3 cleared by alice") {
		t.Fatalf("events %+v", evs)
	}
	w.advance(5 * time.Second)
	s := w.snap()
	if na := s.Allocations["w"].Value; na.Host == a.Host || na.Reschedules != 1 {
		t.Fatalf("after reset: %+v (was on %s)", na, a.Host)
	}
	if len(s.Resets) != 0 {
		t.Fatalf("reset requests left: %v", s.Resets)
	}
	if code := w.call("POST", "/v1/workloads/nope/reset", "", nil); code != 404 {
		t.Fatalf("unknown workload: %d", code)
	}
}

// TestMaintenanceAPI: on and off are idempotent, recorded with who asked,
// shown in the node view, and written to the events; the scheduler places
// nothing new on the host.
func TestMaintenanceAPI(t *testing.T) {
	w := newWorld(t)
	w.host("h1", 4)
	var res api.MaintenanceResult
	if code := w.call("PUT", "/v1/nodes/h1/maintenance", `{"reason":"DIMM B2","by":"alice@laptop"}`, &res); code != 200 || !res.Changed || res.Maintenance.By != "alice@laptop" || res.Maintenance.Reason != "DIMM B2" {
		t.Fatalf("on: %d %+v", code, res)
	}
	if code := w.call("PUT", "/v1/nodes/h1/maintenance", `{}`, &res); code != 200 || res.Changed || res.Maintenance.Reason != "DIMM B2" {
		t.Fatalf("on again: %d %+v", code, res)
	}
	var n api.NodeView
	w.call("GET", "/v1/nodes/h1", "", &n)
	if n.Maintenance == nil || n.Maintenance.Reason != "DIMM B2" || !n.Maintenance.Since.Equal(w.clock()) {
		t.Fatalf("node view: %+v", n.Maintenance)
	}
	w.vm("new", 1)
	w.settle()
	if v := workloadView(w.snap(), w.snap().Workloads["new"].Value); v.State != api.StatePending || !strings.Contains(v.Reason, "maintenance (1 host)") {
		t.Fatalf("new workload: %+v", v)
	}
	if code := w.call("DELETE", "/v1/nodes/h1/maintenance?by=bob", "", &res); code != 200 || !res.Changed {
		t.Fatalf("off: %d %+v", code, res)
	}
	w.settle()
	if a, ok := w.snap().Allocations["new"]; !ok || a.Value.Host != "h1" {
		t.Fatalf("after maintenance off: %+v", a)
	}
	if code := w.call("DELETE", "/v1/nodes/h1/maintenance", "", &res); code != 200 || res.Changed {
		t.Fatalf("off again: %d %+v", code, res)
	}
	on, off := w.events("maintenance-on"), w.events("maintenance-off")
	if len(on) != 1 || !strings.Contains(on[0].Message, "(DIMM B2); by alice@laptop") || len(off) != 1 || !strings.Contains(off[0].Message, "by bob") {
		t.Fatalf("events on %+v off %+v", on, off)
	}
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/nodes/nope/maintenance", ""},
		{"DELETE", "/v1/nodes/nope/maintenance", ""},
		{"GET", "/v1/nodes/nope/drain", ""},
		{"GET", "/v1/nodes/nope/drain/plan", ""},
		{"POST", "/v1/nodes/nope/drain", ""},
	} {
		if code := w.call(tc.method, tc.path, tc.body, nil); code != http.StatusNotFound {
			t.Errorf("%s %s: %d, want 404", tc.method, tc.path, code)
		}
	}
	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/nodes/h1/maintenance", `{"colour":"red"}`},
		{"PUT", "/v1/nodes/h1/maintenance", `{"reason":"` + strings.Repeat("x", 300) + `"}`},
		{"POST", "/v1/nodes/h1/drain", `{"batch":0,"timeout":"-1s"}`},
		{"POST", "/v1/nodes/h1/drain", `{"batch":1000}`},
		{"GET", "/v1/nodes/h1/drain/plan?batch=x", ""},
	} {
		before := storeRev(t, w.st)
		if code := w.call(tc.method, tc.path, tc.body, nil); code != http.StatusBadRequest {
			t.Errorf("%s %s %s: %d, want 400", tc.method, tc.path, tc.body, code)
		}
		if storeRev(t, w.st) != before {
			t.Errorf("%s %s changed the store", tc.method, tc.path)
		}
	}
}

// TestDrainAPI: the plan, the start (once), the progress, and a host that
// is not ready is refused.
func TestDrainAPI(t *testing.T) {
	w := newWorld(t)
	w.host("h1", 4)
	w.vm("a", 2)
	w.vm("b", 1)
	w.settle()
	w.host("h2", 2)
	var plan api.DrainPlan
	if code := w.call("GET", "/v1/nodes/h1/drain/plan?batch=2", "", &plan); code != 200 {
		t.Fatalf("plan: %d", code)
	}
	if len(plan.Moves) != 1 || plan.Moves[0].Workload != "a" || plan.Moves[0].To != "h2" ||
		len(plan.Stuck) != 1 || plan.Stuck[0].Workload != "b" || !strings.Contains(plan.Stuck[0].Reason, "cpu (1 host)") {
		t.Fatalf("plan %+v", plan)
	}
	if w.snap().Maintenance["h1"].Value.Host != "" {
		t.Fatal("the plan changed something")
	}
	var ds api.DrainStatus
	if code := w.call("GET", "/v1/nodes/h1/drain", "", nil); code != 404 {
		t.Fatalf("no drain yet: %d", code)
	}
	if code := w.call("POST", "/v1/nodes/h1/drain", `{"batch":2,"timeout":"10m","by":"alice"}`, &ds); code != http.StatusAccepted || ds.State != api.DrainRunning || ds.Batch != 2 {
		t.Fatalf("start: %d %+v", code, ds)
	}
	if code := w.call("POST", "/v1/nodes/h1/drain", `{}`, nil); code != http.StatusConflict {
		t.Fatalf("second start: %d", code)
	}
	w.settle()
	w.call("GET", "/v1/nodes/h1/drain", "", &ds)
	if ds.State != api.DrainIncomplete || len(ds.Moves) != 1 || ds.Moves[0].Phase != api.DrainMoved || ds.Moves[0].Now != "h2" ||
		ds.Remaining != 1 || len(ds.Stuck) != 1 || !strings.Contains(ds.Message, "1 moved; 1 could not move: b") {
		t.Fatalf("progress %+v", ds)
	}
	var n api.NodeView
	w.call("GET", "/v1/nodes/h1", "", &n)
	if n.Maintenance == nil || n.Maintenance.Drain == nil || n.Maintenance.Drain.State != api.DrainIncomplete {
		t.Fatalf("node view %+v", n.Maintenance)
	}
	// A finished drain may be started again, in the same maintenance.
	if code := w.call("POST", "/v1/nodes/h1/drain", `{}`, &ds); code != http.StatusAccepted {
		t.Fatalf("drain again: %d", code)
	}
	// A host without its heartbeat is not drained.
	if err := w.st.Revoke(w.ctx, w.leases["h2"]); err != nil {
		t.Fatal(err)
	}
	if code := w.call("POST", "/v1/nodes/h2/drain", `{}`, nil); code != http.StatusConflict {
		t.Fatalf("drain of a down host: %d", code)
	}
}

// TestLostWhileStoppingWaitsForFence: a workload taken from a live host
// (drained, preempted) is not started elsewhere if that host loses its
// lease before it reported the stop — only once the host is fenced.
func TestLostWhileStoppingWaitsForFence(t *testing.T) {
	w := newWorld(t)
	w.host("h1", 4)
	w.vm("w", 1)
	w.settle()
	w.host("h2", 4)
	a := w.snap().Allocations["w"]
	if a.Value.Host != "h1" {
		t.Fatalf("w on %s", a.Value.Host)
	}
	p := api.PendingReason{Schema: api.SchemaVersion, Workload: "w", Reason: "drain of h1", At: w.clock(), Displaced: true, StoppingOn: "h1"}
	w.txn(clusterstore.Delete(clusterstore.AllocationKey("w")), clusterstore.Put(clusterstore.PendingKey("w"), clusterstore.Encode(p)))
	// h1 dies before its agent stopped w: its status goes with its lease.
	if err := w.st.Revoke(w.ctx, w.leases["h1"]); err != nil {
		t.Fatal(err)
	}
	delete(w.leases, "h1")
	w.advance(time.Minute)
	s := w.snap()
	if al, ok := s.Allocations["w"]; ok {
		t.Fatalf("w was placed on %s while h1 was lost and not fenced", al.Value.Host)
	}
	if r := s.Pending["w"].Value.Reason; !strings.Contains(r, "waiting for h1 to be fenced") {
		t.Fatalf("pending reason %q", r)
	}
	rec := api.FenceRecord{Schema: api.SchemaVersion, Host: "h1", Device: "operator", Action: "confirmed off", PowerState: "Off", Confirmed: w.clock()}
	w.txn(clusterstore.Put(clusterstore.FencingKey("h1"), clusterstore.Encode(rec)))
	w.settle()
	if al, ok := w.snap().Allocations["w"]; !ok || al.Value.Host != "h2" {
		t.Fatalf("after the fence record: %+v %v", al.Value, ok)
	}
}
