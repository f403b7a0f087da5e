package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
)

// rebalanceAPI serves the rebalance and settings routes on w's store and
// clock.
func rebalanceAPI(w *world) string {
	h := &Handler{store: w.st, log: quietLog(), now: w.clock}
	mux := &routedMux{ServeMux: http.NewServeMux()}
	h.routeRebalance(mux)
	mux.HandleFunc("PUT /v1/settings", h.putSettings)
	ts := httptest.NewServer(mux)
	w.t.Cleanup(ts.Close)
	return ts.URL
}

func (w *world) rcall(base, method, path, body string, out any) (int, string) {
	w.t.Helper()
	code, b := do(w.t, method, base+path, body)
	if out != nil && code < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			w.t.Fatalf("%s %s: %v\n%s", method, path, err, b)
		}
	}
	return code, string(b)
}

// hostsOf maps each workload to its host.
func hostsOf(w *world) map[string]string {
	out := map[string]string{}
	for name, a := range w.snap().Allocations {
		out[name] = a.Value.Host
	}
	return out
}

func perHost(m map[string]string) map[string]int {
	out := map[string]int{}
	for _, h := range m {
		out[h]++
	}
	return out
}

// unbalanced: four 2-CPU VMs on h1 (the only host when they were created),
// then an empty h2 joins.
func unbalanced(t *testing.T) (*world, string) {
	w := newWorld(t)
	w.host("h1", 8)
	for i := range 4 {
		w.vm(fmt.Sprintf("v%d", i), 2)
	}
	w.settle()
	w.host("h2", 8)
	w.settle()
	return w, rebalanceAPI(w)
}

func planBody(p api.RebalancePlan) string {
	b, _ := json.Marshal(api.RebalanceRequest{Revision: p.Revision, Moves: p.Moves, By: "alice"})
	return string(b)
}

func TestRebalanceAPI(t *testing.T) {
	w, base := unbalanced(t)
	var p api.RebalancePlan
	if code, body := w.rcall(base, "GET", "/v1/rebalance", "", &p); code != 200 {
		t.Fatalf("plan: %d %s", code, body)
	}
	// h1 at 100% (8 of 8 CPUs), h2 empty: two moves make it 50/50.
	if p.Spread != 100 || p.SpreadAfter != 0 || len(p.Moves) != 2 || p.Revision == 0 || p.Threshold != api.DefaultRebalanceThreshold {
		t.Fatalf("plan %+v", p)
	}
	for _, m := range p.Moves {
		if m.From != "h1" || m.To != "h2" || m.Why == "" {
			t.Fatalf("move %+v", m)
		}
	}
	if code, _ := w.rcall(base, "GET", "/v1/rebalance?threshold=5", "", nil); code != 400 {
		t.Fatalf("parameters: %d", code)
	}

	// Bad input and stale plans change nothing.
	before := storeRev(t, w.st)
	other := p
	other.Moves = append([]api.RebalanceMove{}, p.Moves...)
	other.Moves[0].To = "h1"
	for _, tc := range []struct {
		body string
		code int
		msg  string
	}{
		{`not json`, 400, "invalid rebalance request"},
		{`{"revision":1,"colour":"red"}`, 400, "unknown field"},
		{`{}`, 400, "revision must be"},
		{`{"revision":-3}`, 400, "revision must be"},
		{`{"revision":1,"moves":[{"workload":"Bad Name","from":"h1","to":"h2"}]}`, 400, "DNS label"},
		{fmt.Sprintf(`{"revision":%d}`, p.Revision+1000), 400, "ahead of the cluster"},
		{planBody(other), 409, "the rebalance plan changed"},
		{fmt.Sprintf(`{"revision":%d,"moves":[]}`, p.Revision), 409, "the rebalance plan changed"},
		{fmt.Sprintf(`{"revision":%d}`, p.Revision-1), 409, "the cluster changed since revision"},
	} {
		code, body := w.rcall(base, "POST", "/v1/rebalance", tc.body, nil)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("%s: %d %s", tc.body, code, body)
		}
	}
	if after := storeRev(t, w.st); after != before {
		t.Fatalf("refused requests changed the store: %d -> %d", before, after)
	}

	// The plan as reviewed: accepted, then carried out by the leader.
	var run api.Rebalance
	if code, body := w.rcall(base, "POST", "/v1/rebalance", planBody(p), &run); code != http.StatusAccepted || run.State != api.RebalanceRunning || run.By != "alice" || len(run.Moves) != 2 {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, body := w.rcall(base, "POST", "/v1/rebalance", planBody(p), nil); code != 409 || !strings.Contains(body, "already under way") {
		t.Fatalf("second start: %d %s", code, body)
	}
	w.settle()
	if got := perHost(hostsOf(w)); got["h1"] != 2 || got["h2"] != 2 {
		t.Fatalf("after the run: %v", got)
	}
	var after api.RebalancePlan
	w.rcall(base, "GET", "/v1/rebalance", "", &after)
	if len(after.Moves) != 0 || after.Run == nil || after.Run.State != api.RebalanceComplete || after.Spread != 0 || !strings.Contains(after.Summary, "balanced") {
		t.Fatalf("after: %+v run %+v", after, after.Run)
	}
	for _, m := range after.Run.Moves {
		if m.Outcome != api.DrainMoved || m.Host != "h2" || m.Started.IsZero() {
			t.Fatalf("move %+v", m)
		}
	}
	if n := len(w.events("moved")); n != 2 {
		t.Fatalf("%d moved events", n)
	}
	if n := len(w.events("rebalance-complete")); n != 1 {
		t.Fatalf("%d complete events", n)
	}
	// Each moved workload got a new epoch on h2 and its status on h1 went
	// first (the test agents stop what is not allocated to them).
	s := w.snap()
	for _, m := range after.Run.Moves {
		a := s.Allocations[m.Workload].Value
		if a.Epoch <= m.Epoch || a.Host != "h2" {
			t.Fatalf("%s: %+v (epoch before %d)", m.Workload, a, m.Epoch)
		}
		if _, there := s.Statuses["h1"][m.Workload]; there {
			t.Fatalf("%s still reported on h1", m.Workload)
		}
	}
	// An empty plan, confirmed: nothing to do, nothing stored.
	rev := storeRev(t, w.st)
	if code, body := w.rcall(base, "POST", "/v1/rebalance", planBody(after), &run); code != 200 || !strings.Contains(run.Message, "nothing to move") || storeRev(t, w.st) != rev {
		t.Fatalf("empty: %d %s", code, body)
	}
}

// The cluster changes between the operator's confirmation and the move:
// the leader checks each move again and stops the run.
func TestRebalanceRunStopsWhenTheClusterChanged(t *testing.T) {
	w, base := unbalanced(t)
	var p api.RebalancePlan
	w.rcall(base, "GET", "/v1/rebalance", "", &p)
	if code, body := w.rcall(base, "POST", "/v1/rebalance", planBody(p), nil); code != 202 {
		t.Fatalf("start: %d %s", code, body)
	}
	conds, ops, _ := MaintenanceOn("h2", "disk swap", "bob", w.clock())
	if ok, _, err := w.st.Txn(w.ctx, conds, ops); err != nil || !ok {
		t.Fatal(ok, err)
	}
	w.settle()
	if got := perHost(hostsOf(w)); got["h1"] != 4 {
		t.Fatalf("moved anyway: %v", got)
	}
	rec, _, err := readRebalance(w.ctx, w.st)
	if err != nil || rec.Value.State != api.RebalanceIncomplete || !strings.Contains(rec.Value.Message, "h2 is in maintenance") {
		t.Fatalf("run %+v %v", rec.Value, err)
	}
	for _, m := range rec.Value.Moves {
		if m.Outcome != api.RebalanceSkipped {
			t.Fatalf("move %+v", m)
		}
	}
}

// auto_rebalance: the leader runs the plan at most every interval, on its
// own clock, and a new leader keeps to the interval the last one started.
func TestAutoRebalance(t *testing.T) {
	w, base := unbalanced(t)
	if code, body := w.rcall(base, "PUT", "/v1/settings", `{"strategy":"binpack","auto_rebalance":true,"auto_rebalance_interval":"10m"}`, nil); code != 200 {
		t.Fatalf("settings: %d %s", code, body)
	}
	w.settle()
	if got := perHost(hostsOf(w)); got["h1"] != 2 || got["h2"] != 2 {
		t.Fatalf("first automatic run: %v", got)
	}
	rec, _, _ := readRebalance(w.ctx, w.st)
	first := rec.Value.LastAuto
	if !rec.Value.Auto || rec.Value.State != api.RebalanceComplete || !first.Equal(w.clock()) {
		t.Fatalf("run %+v", rec.Value)
	}
	if n := len(w.events("rebalance-started")); n != 1 {
		t.Fatalf("%d rebalance-started events", n)
	}

	// An empty h3 joins: unbalanced again, but the interval has not passed.
	w.host("h3", 8)
	w.advance(9 * time.Minute)
	if got := perHost(hostsOf(w)); got["h3"] != 0 {
		t.Fatalf("ran before the interval: %v", got)
	}
	// A new leader (a fresh evaluator) keeps to the stored time.
	ev, err := NewEvaluator(Config{Name: "t2", Store: w.st, Log: quietLog()}, clusterstore.Missing(clusterstore.Prefix+"never"), w.clock)
	if err != nil {
		t.Fatal(err)
	}
	w.ev = ev
	w.advance(59 * time.Second)
	if got := perHost(hostsOf(w)); got["h3"] != 0 {
		t.Fatalf("the new leader ran before the interval: %v", got)
	}
	w.advance(time.Second)
	if got := perHost(hostsOf(w)); got["h3"] == 0 {
		t.Fatalf("no automatic run after the interval: %v", got)
	}
	rec, _, _ = readRebalance(w.ctx, w.st)
	if !rec.Value.LastAuto.Equal(first.Add(10 * time.Minute)) {
		t.Fatalf("last auto %s, first %s", rec.Value.LastAuto, first)
	}
	// Balanced now: later checks only record their time.
	n := len(w.events("rebalance-started"))
	w.advance(10 * time.Minute)
	if len(w.events("rebalance-started")) != n {
		t.Fatal("a balanced cluster was rebalanced")
	}
	rec, _, _ = readRebalance(w.ctx, w.st)
	if !rec.Value.LastAuto.Equal(w.clock()) {
		t.Fatalf("check not recorded: %s", rec.Value.LastAuto)
	}

	// Off: nothing more happens.
	w.rcall(base, "PUT", "/v1/settings", `{"strategy":"binpack"}`, nil)
	w.host("h4", 8)
	w.advance(time.Hour)
	if got := perHost(hostsOf(w)); got["h4"] != 0 {
		t.Fatalf("auto off, but moved: %v", got)
	}
}

func TestRebalanceSettingsBadInputChangesNothing(t *testing.T) {
	st, ts := newAPI(t)
	before := storeRev(t, st)
	for _, b := range []string{
		`{"strategy":"binpack","rebalance_threshold":0}`,
		`{"strategy":"binpack","rebalance_threshold":101}`,
		`{"strategy":"binpack","rebalance_threshold":-5}`,
		`{"strategy":"binpack","auto_rebalance":true,"auto_rebalance_interval":"30s"}`,
		`{"strategy":"binpack","auto_rebalance_interval":"0s"}`,
		`{"strategy":"binpack","auto_rebalance_interval":"1000h"}`,
		`{"strategy":"binpack","auto_rebalance_interval":"soon"}`,
	} {
		code, body := do(t, "PUT", ts.URL+"/v1/settings", b)
		if code != http.StatusBadRequest || !strings.Contains(string(body), "rebalance") && !strings.Contains(string(body), "soon") {
			t.Errorf("%s: %d %s", b, code, body)
		}
	}
	if after := storeRev(t, st); after != before {
		t.Fatalf("store changed: %d -> %d", before, after)
	}
	code, body := do(t, "PUT", ts.URL+"/v1/settings", `{"strategy":"binpack","rebalance_threshold":35,"auto_rebalance":true,"auto_rebalance_interval":"1m"}`)
	var got api.Settings
	if err := json.Unmarshal(body, &got); err != nil || code != 200 || got.RebalanceThreshold != 35 || !got.AutoRebalance || time.Duration(got.AutoRebalanceInterval) != time.Minute {
		t.Fatalf("%d %s", code, body)
	}
	// Settings stored before rebalancing existed read with the defaults.
	if _, _, err := st.Txn(context.Background(), nil, []clusterstore.Op{clusterstore.Put(clusterstore.SettingsKey, []byte(`{"schema":1,"strategy":"spread","failure_timeout":"10m0s"}`))}); err != nil {
		t.Fatal(err)
	}
	_, body = do(t, "GET", ts.URL+"/v1/settings", "")
	got = api.Settings{}
	_ = json.Unmarshal(body, &got)
	if got.RebalanceThreshold != api.DefaultRebalanceThreshold || time.Duration(got.AutoRebalanceInterval) != api.DefaultAutoRebalanceInterval || got.AutoRebalance {
		t.Fatalf("old record: %+v", got)
	}
}

func TestRebalanceNeedsAdmin(t *testing.T) {
	st := memory.New()
	defer st.Close()
	ctx := context.Background()
	viewer, _, err := clusterstore.CreateToken(ctx, st, "dash", api.RoleViewer, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	base := startAuthServer(t, st, nil)
	send := func(method, body string) int {
		req, _ := http.NewRequest(method, base+"/v1/rebalance", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := send("GET", ""); c != 200 {
		t.Fatalf("viewer GET: %d", c)
	}
	rev := storeRev(t, st)
	if c := send("POST", fmt.Sprintf(`{"revision":%d}`, rev)); c != http.StatusForbidden {
		t.Fatalf("viewer POST: %d", c)
	}
	if _, found, _ := readRebalance(ctx, st); found {
		t.Fatal("a refused request stored a run")
	}
}
