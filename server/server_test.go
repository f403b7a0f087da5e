package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
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

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newAPI(t *testing.T) (clusterstore.Store, *httptest.Server) {
	t.Helper()
	st := memory.New()
	t.Cleanup(func() { st.Close() })
	h := NewHandler(st, quietLog(), func(context.Context) api.Health { return api.Health{Status: "ok"} }, scheduler.New(scheduler.Options{}), FencingConfig{})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return st, ts
}

func storeRev(t *testing.T, st clusterstore.Store) int64 {
	t.Helper()
	_, _, rev, err := st.Get(context.Background(), "/probe")
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func do(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestWorkloadCRUD(t *testing.T) {
	_, ts := newAPI(t)
	code, body := do(t, "POST", ts.URL+"/v1/workloads", `{"name":"web1","kind":"vm","cpus":1,"memory":"256MiB","labels":{"tier":"web"},"priority":5}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	code, body = do(t, "GET", ts.URL+"/v1/workloads/web1", "")
	var v api.WorkloadView
	if err := json.Unmarshal(body, &v); err != nil || code != 200 {
		t.Fatalf("get: %d %s %v", code, body, err)
	}
	if v.Name != "web1" || v.Kind != api.KindVM || v.State != api.StatePending || v.Host != "" || v.Memory != 256*api.MiB || v.Priority != 5 {
		t.Fatalf("get: %+v", v)
	}
	code, body = do(t, "GET", ts.URL+"/v1/workloads", "")
	var list []api.WorkloadView
	if err := json.Unmarshal(body, &list); err != nil || code != 200 || len(list) != 1 {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body = do(t, "DELETE", ts.URL+"/v1/workloads/web1", ""); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, body)
	}
	// Idempotent while it is being deleted.
	if code, body = do(t, "DELETE", ts.URL+"/v1/workloads/web1", ""); code != http.StatusAccepted {
		t.Fatalf("delete again: %d %s", code, body)
	}
	_, body = do(t, "GET", ts.URL+"/v1/workloads/web1", "")
	_ = json.Unmarshal(body, &v)
	if !v.Deleting || v.State != api.StateStopped {
		t.Fatalf("after delete (no allocation, no leader): %+v", v)
	}
	if code, _ = do(t, "DELETE", ts.URL+"/v1/workloads/nope", ""); code != http.StatusNotFound {
		t.Fatalf("delete missing: %d", code)
	}
	if code, _ = do(t, "GET", ts.URL+"/v1/nodes/nope", ""); code != http.StatusNotFound {
		t.Fatalf("get missing node: %d", code)
	}
	if code, _ = do(t, "GET", ts.URL+"/v2/anything", ""); code != http.StatusNotFound {
		t.Fatalf("unknown route: %d", code)
	}
}

// Bad input gets a clear 4xx error and changes nothing in the store.
func TestCreateBadInputChangesNothing(t *testing.T) {
	st, ts := newAPI(t)
	cases := []struct {
		name, body string
		status     int
		want       string
	}{
		{"uppercase name", `{"name":"Web_1","kind":"vm","cpus":1,"memory":"256MiB"}`, 400, "not a DNS label"},
		{"long name", `{"name":"` + strings.Repeat("a", 64) + `","kind":"vm","cpus":1,"memory":"256MiB"}`, 400, "at most 63"},
		{"empty name", `{"name":"","kind":"vm","cpus":1,"memory":"256MiB"}`, 400, "name is empty"},
		{"zero cpus", `{"name":"a","kind":"vm","cpus":0,"memory":"256MiB"}`, 400, "cpus must be"},
		{"negative cpus", `{"name":"a","kind":"vm","cpus":-1,"memory":"256MiB"}`, 400, "cpus must be"},
		{"fractional cpus", `{"name":"a","kind":"vm","cpus":1.5,"memory":"256MiB"}`, 400, "invalid workload spec"},
		{"small memory", `{"name":"a","kind":"vm","cpus":1,"memory":"10MiB"}`, 400, "at least 64MiB"},
		{"memory unparsable", `{"name":"a","kind":"vm","cpus":1,"memory":"lots"}`, 400, "must start with a number"},
		{"memory bad unit", `{"name":"a","kind":"vm","cpus":1,"memory":"12XB"}`, 400, "unknown unit"},
		{"unknown field", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","colour":"red"}`, 400, "unknown field \"colour\""},
		{"unknown kind", `{"name":"a","kind":"pod","cpus":1,"memory":"256MiB"}`, 400, "kind \"pod\" is unknown"},
		{"priority", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","priority":5000}`, 400, "priority must be"},
		{"bad label", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","labels":{"k":"a b"}}`, 400, "label"},
		{"malformed", `{"name":`, 400, "invalid workload spec"},
		{"two values", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB"} {}`, 400, "more than one"},
		{"bad constraint", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","require":["rack in r1"]}`, 400, "parentheses"},
		{"constraint without operator", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","require":["rack"]}`, 400, "no operator"},
		{"bad preference weight", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","prefer":["disk=ssd:500"]}`, 400, "weight"},
		{"group not a DNS label", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","anti_affinity":"Web_Group"}`, 400, "anti-affinity group name"},
		{"spread-by without group", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","spread_by":"rack"}`, 400, "set anti-affinity too"},
		{"too large", `{"name":"a","kind":"vm","cpus":1,"memory":"256MiB","labels":{"k":"` + strings.Repeat("x", 2<<20) + `"}}`, 413, "over"},
	}
	before := storeRev(t, st)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body := do(t, "POST", ts.URL+"/v1/workloads", tc.body)
			var e api.Error
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %s", body)
			}
			if code != tc.status || !strings.Contains(e.Message, tc.want) || e.Code == "" {
				t.Fatalf("got %d %+v; want %d containing %q", code, e, tc.status, tc.want)
			}
		})
	}
	if after := storeRev(t, st); after != before {
		t.Fatalf("store changed by rejected requests: revision %d -> %d", before, after)
	}
}

func TestCreateConflictChangesNothing(t *testing.T) {
	st, ts := newAPI(t)
	if code, body := do(t, "POST", ts.URL+"/v1/workloads", `{"name":"db","kind":"vm","cpus":2,"memory":"1GiB"}`); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	before := storeRev(t, st)
	code, body := do(t, "POST", ts.URL+"/v1/workloads", `{"name":"db","kind":"vm","cpus":4,"memory":"2GiB"}`)
	if code != http.StatusConflict || !bytes.Contains(body, []byte(`"conflict"`)) || !bytes.Contains(body, []byte("already exists")) {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	if after := storeRev(t, st); after != before {
		t.Fatalf("store changed: %d -> %d", before, after)
	}
	_, body = do(t, "GET", ts.URL+"/v1/workloads/db", "")
	var v api.WorkloadView
	_ = json.Unmarshal(body, &v)
	if v.CPUs != 2 {
		t.Fatalf("original overwritten: %+v", v)
	}
}

// fakeHost registers a host and holds a heartbeat lease, as an agent would.
func fakeHost(t *testing.T, st clusterstore.Store, name string, cpus int, mem api.ByteSize) *clusterstore.Session {
	t.Helper()
	ctx := context.Background()
	n := api.Node{Schema: api.SchemaVersion, Name: name, CPUs: cpus, Memory: mem}
	sess, err := clusterstore.NewSession(ctx, st, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	hb := api.Heartbeat{Schema: api.SchemaVersion, Host: name, Lease: int64(sess.Lease())}
	if _, _, err := st.Txn(ctx, nil, []clusterstore.Op{
		clusterstore.Put(clusterstore.NodeKey(name), clusterstore.Encode(n)),
		clusterstore.PutWithLease(clusterstore.HeartbeatKey(name), clusterstore.Encode(hb), sess.Lease()),
	}); err != nil {
		t.Fatal(err)
	}
	return sess
}

func startServer(t *testing.T, st clusterstore.Store, name string) (*Server, string, context.CancelFunc) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Name: name, Listener: ln, Store: st, SessionTTL: 2 * time.Second, Resync: 200 * time.Millisecond, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv, "http://" + ln.Addr().String(), cancel
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func getView(t *testing.T, url, name string) api.WorkloadView {
	t.Helper()
	code, body := do(t, "GET", url+"/v1/workloads/"+name, "")
	var v api.WorkloadView
	if code == 200 {
		_ = json.Unmarshal(body, &v)
	}
	return v
}

func TestLeaderPlacesAndCleansUp(t *testing.T) {
	st := memory.New()
	defer st.Close()
	fakeHost(t, st, "h1", 2, 4*api.GiB)
	fakeHost(t, st, "h2", 4, 8*api.GiB)
	_, url, _ := startServer(t, st, "s1")

	for _, b := range []string{
		`{"name":"a","kind":"vm","cpus":2,"memory":"1GiB"}`,
		`{"name":"b","kind":"vm","cpus":4,"memory":"1GiB"}`,
		`{"name":"big","kind":"vm","cpus":64,"memory":"1GiB"}`,
	} {
		if code, body := do(t, "POST", url+"/v1/workloads", b); code != 201 {
			t.Fatalf("create: %d %s", code, body)
		}
	}
	waitFor(t, "a and b placed", func() bool {
		return getView(t, url, "a").Host != "" && getView(t, url, "b").Host != ""
	})
	if a, b := getView(t, url, "a"), getView(t, url, "b"); a.Host != "h1" || b.Host != "h2" || a.Epoch == 0 || a.State != api.StateStarting {
		t.Fatalf("placements: a=%+v b=%+v", a, b)
	}
	waitFor(t, "big pending with a reason", func() bool {
		return strings.HasPrefix(getView(t, url, "big").Reason, "larger than every host")
	})
	if v := getView(t, url, "big"); v.State != api.StatePending || v.Host != "" {
		t.Fatalf("big: %+v", v)
	}

	// Nodes show what is used.
	_, body := do(t, "GET", url+"/v1/nodes", "")
	var nodes []api.NodeView
	if err := json.Unmarshal(body, &nodes); err != nil || len(nodes) != 2 {
		t.Fatalf("nodes: %s", body)
	}
	if nodes[0].Name != "h1" || nodes[0].State != api.NodeReady || nodes[0].CPUsUsed != 2 || nodes[0].Workloads != 1 {
		t.Fatalf("h1: %+v", nodes[0])
	}

	// Deleting: the allocation goes, then (no agent reports it) the record.
	do(t, "DELETE", url+"/v1/workloads/a", "")
	waitFor(t, "a gone", func() bool {
		code, _ := do(t, "GET", url+"/v1/workloads/a", "")
		return code == http.StatusNotFound
	})
	kvs, _, _ := st.List(context.Background(), clusterstore.AllocationsPrefix, 0)
	if len(kvs) != 1 {
		t.Fatalf("allocations left: %d", len(kvs))
	}
}

func TestTwoReplicasOneLeader(t *testing.T) {
	st := memory.New()
	defer st.Close()
	fakeHost(t, st, "h1", 8, 16*api.GiB)
	_, url1, stop1 := startServer(t, st, "s1")
	waitFor(t, "s1 leads", func() bool {
		_, body := do(t, "GET", url1+"/v1/health", "")
		var h api.Health
		_ = json.Unmarshal(body, &h)
		return h.IsLeader
	})
	_, url2, _ := startServer(t, st, "s2")
	_, body := do(t, "GET", url2+"/v1/health", "")
	var h api.Health
	_ = json.Unmarshal(body, &h)
	if h.IsLeader || h.Leader != "s1" {
		t.Fatalf("s2 health: %+v", h)
	}
	stop1()
	waitFor(t, "s2 leads", func() bool {
		_, body := do(t, "GET", url2+"/v1/health", "")
		var h api.Health
		_ = json.Unmarshal(body, &h)
		return h.IsLeader
	})
	do(t, "POST", url2+"/v1/workloads", `{"name":"after","kind":"vm","cpus":1,"memory":"256MiB"}`)
	waitFor(t, "placed by s2", func() bool { return getView(t, url2, "after").Host == "h1" })
}

func TestSettingsBadInputChangesNothing(t *testing.T) {
	st, ts := newAPI(t)
	code, body := do(t, "GET", ts.URL+"/v1/settings", "")
	var got api.Settings
	if err := json.Unmarshal(body, &got); err != nil || code != 200 || got.Strategy != api.StrategyBinpack || got.Preemption {
		t.Fatalf("defaults: %d %s", code, body)
	}
	before := storeRev(t, st)
	for _, b := range []string{
		`{"strategy":"roundrobin"}`,
		`{"strategy":"spread","tolerate_host_failures":-1}`,
		`{"strategy":"spread","tolerate_host_failures":17}`,
		`{"strategy":"spread","reserved_cpus":-2}`,
		`{"strategy":"spread","reserved_memory":"lots"}`,
		`{"strategy":"spread","colour":"red"}`,
		`not json`,
	} {
		code, body := do(t, "PUT", ts.URL+"/v1/settings", b)
		if code != http.StatusBadRequest || !bytes.Contains(body, []byte(`"invalid_argument"`)) {
			t.Errorf("%s: %d %s", b, code, body)
		}
	}
	if after := storeRev(t, st); after != before {
		t.Fatalf("store changed by rejected settings: %d -> %d", before, after)
	}
	code, body = do(t, "PUT", ts.URL+"/v1/settings", `{"strategy":"spread","preemption":true,"tolerate_host_failures":1,"reserved_cpus":1,"reserved_memory":"1GiB"}`)
	if code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	_, body = do(t, "GET", ts.URL+"/v1/settings", "")
	_ = json.Unmarshal(body, &got)
	if got.Strategy != api.StrategySpread || !got.Preemption || got.TolerateHostFailures != 1 || got.ReservedMemory != api.GiB {
		t.Fatalf("after put: %+v", got)
	}
}

func TestExplainPlacedAndPending(t *testing.T) {
	st := memory.New()
	defer st.Close()
	fakeHost(t, st, "h1", 4, 8*api.GiB)
	fakeHost(t, st, "h2", 2, 4*api.GiB)
	_, url, _ := startServer(t, st, "s1")
	do(t, "POST", url+"/v1/workloads", `{"name":"a","kind":"vm","cpus":3,"memory":"1GiB"}`)
	do(t, "POST", url+"/v1/workloads", `{"name":"b","kind":"vm","cpus":3,"memory":"1GiB"}`)
	waitFor(t, "a placed, b pending", func() bool {
		return getView(t, url, "a").Host == "h1" && getView(t, url, "b").Reason != "waiting for the scheduler"
	})
	var e api.Explanation
	code, body := do(t, "GET", url+"/v1/workloads/a/explain", "")
	if err := json.Unmarshal(body, &e); err != nil || code != 200 {
		t.Fatalf("explain a: %d %s", code, body)
	}
	if e.Host != "h1" || len(e.Hosts) != 2 || !strings.HasPrefix(e.Summary, "placed on h1") {
		t.Fatalf("explain a: %+v", e)
	}
	_, body = do(t, "GET", url+"/v1/workloads/b/explain", "")
	_ = json.Unmarshal(body, &e)
	if e.State != api.StatePending || !strings.HasPrefix(e.Summary, "pending") {
		t.Fatalf("explain b: %+v", e)
	}
	reasons := map[string]string{}
	for _, h := range e.Hosts {
		reasons[h.Host] = h.Reason
	}
	if reasons["h1"] != "cpu: needs 3, 1 free" || reasons["h2"] != "cpu: needs 3, 2 free" {
		t.Fatalf("explain b reasons: %+v", e.Hosts)
	}
	if code, _ := do(t, "GET", url+"/v1/workloads/nope/explain", ""); code != 404 {
		t.Fatalf("explain missing: %d", code)
	}
}

// A burst of creates becomes a few large plans, not one plan per create.
func TestBurstIsCoalesced(t *testing.T) {
	st := memory.New()
	defer st.Close()
	fakeHost(t, st, "h1", 4096, 64*api.TiB)
	var stats PlanStats
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{Name: "s1", Listener: ln, Store: st, SessionTTL: 2 * time.Second, Log: quietLog(), OnPlan: stats.Record})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + ln.Addr().String()

	const n = 1000
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				body := fmt.Sprintf(`{"name":"w%d","kind":"vm","cpus":1,"memory":"64MiB"}`, i)
				resp, err := http.Post(url+"/v1/workloads", "application/json", strings.NewReader(body))
				if err == nil {
					resp.Body.Close()
				}
			}
		}(g)
	}
	wg.Wait()
	waitFor(t, "all placed", func() bool {
		kvs, _, _ := st.List(context.Background(), clusterstore.AllocationsPrefix, 0)
		return len(kvs) == n
	})
	evals, _, _ := stats.Snapshot()
	t.Logf("%d creates placed in %d evaluations", n, evals)
	if evals > n/5 {
		t.Fatalf("%d creates took %d evaluations: not coalesced", n, evals)
	}
}

// A workload that lost its allocation (preempted) is not placed again while
// its old host still reports it running: that could run it twice.
func TestNotReplacedWhileOldHostRunsIt(t *testing.T) {
	st := memory.New()
	defer st.Close()
	h1 := fakeHost(t, st, "h1", 8, 16*api.GiB)
	fakeHost(t, st, "h2", 8, 16*api.GiB)
	ctx := context.Background()
	w := api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "victim", Kind: api.KindVM, CPUs: 1, Memory: api.GiB}}
	status := api.WorkloadStatus{Schema: 1, Workload: "victim", Host: "h1", Epoch: 1, State: api.StateStopping}
	pending := api.PendingReason{Schema: 1, Workload: "victim", Reason: "preempted", Displaced: true}
	if _, _, err := st.Txn(ctx, nil, []clusterstore.Op{
		clusterstore.Put(clusterstore.WorkloadKey("victim"), clusterstore.Encode(w)),
		clusterstore.Put(clusterstore.PendingKey("victim"), clusterstore.Encode(pending)),
		clusterstore.PutWithLease(clusterstore.StatusKey("h1", "victim"), clusterstore.Encode(status), h1.Lease()),
	}); err != nil {
		t.Fatal(err)
	}
	_, url, _ := startServer(t, st, "s1")
	waitFor(t, "the reason", func() bool { return getView(t, url, "victim").Reason == "waiting for h1 to stop it" })
	if v := getView(t, url, "victim"); v.Host != "" {
		t.Fatalf("placed while h1 still stops it: %+v", v)
	}
	// h1 has stopped it and removed its report: now it may run elsewhere.
	if _, _, err := st.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.StatusKey("h1", "victim"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "placed", func() bool { return getView(t, url, "victim").Host != "" })
}
