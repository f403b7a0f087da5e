package ctl

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// rebalanceFake serves GET and POST /v1/rebalance: the plan, and a run
// that is complete as soon as it is asked about.
type rebalanceFake struct {
	mu       sync.Mutex
	plan     api.RebalancePlan
	conflict bool
	requests []string
	posted   []api.RebalanceRequest
}

func newRebalanceFake(t *testing.T, plan api.RebalancePlan) (*rebalanceFake, *fakeAPI) {
	rf := &rebalanceFake{plan: plan}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/rebalance", func(w http.ResponseWriter, r *http.Request) {
		rf.mu.Lock()
		defer rf.mu.Unlock()
		rf.requests = append(rf.requests, "GET")
		writeTestJSON(w, 200, rf.plan)
	})
	mux.HandleFunc("POST /v1/rebalance", func(w http.ResponseWriter, r *http.Request) {
		rf.mu.Lock()
		defer rf.mu.Unlock()
		rf.requests = append(rf.requests, "POST")
		b, _ := io.ReadAll(r.Body)
		var req api.RebalanceRequest
		if err := json.Unmarshal(b, &req); err != nil {
			writeTestJSON(w, 400, api.Error{Message: err.Error(), Code: api.CodeInvalid})
			return
		}
		rf.posted = append(rf.posted, req)
		if rf.conflict {
			writeTestJSON(w, 409, api.Error{Message: "the rebalance plan changed since revision 7", Code: api.CodeConflict})
			return
		}
		started := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
		run := api.Rebalance{Schema: 1, State: api.RebalanceRunning, By: req.By, Revision: req.Revision, Started: started, Moves: rf.plan.Moves}
		// The leader is quick: the next GET finds it done.
		done := run
		done.State, done.Message = api.RebalanceComplete, "2 of 2 moved"
		done.Moves = nil
		for _, m := range rf.plan.Moves {
			m.Outcome, m.Host = api.DrainMoved, m.To
			done.Moves = append(done.Moves, m)
		}
		rf.plan = api.RebalancePlan{Revision: 9, Threshold: 20, Moves: []api.RebalanceMove{}, Summary: "balanced", Run: &done}
		writeTestJSON(w, 202, run)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return rf, &fakeAPI{t: t, url: srv.URL}
}

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (rf *rebalanceFake) log() string {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	return strings.Join(rf.requests, " ")
}

var twoMoves = api.RebalancePlan{Revision: 7, Threshold: 20, Spread: 100, SpreadAfter: 0, Summary: "2 moves bring the load spread from 100 to 0 points (threshold 20)",
	Moves: []api.RebalanceMove{
		{Workload: "v0", CPUs: 2, Memory: 256 * api.MiB, From: "h1", To: "h2", Why: "h1 100% -> 75%, h2 0% -> 25%; spread 100 -> 50 points (threshold 20)"},
		{Workload: "v1", CPUs: 2, Memory: 256 * api.MiB, From: "h1", To: "h2", Why: "h1 75% -> 50%, h2 25% -> 50%; spread 50 -> 0 points (threshold 20)"},
	},
	Hosts: []api.RebalanceHost{
		{Host: "h1", Load: 100, LoadAfter: 50, CPUs: 8, CPUsUsed: 8, Memory: 16 * api.GiB, MemoryUsed: api.GiB, InService: true},
		{Host: "h2", Load: 0, LoadAfter: 50, CPUs: 8, Memory: 16 * api.GiB, InService: true},
	}}

func TestRebalanceDryRun(t *testing.T) {
	rf, f := newRebalanceFake(t, twoMoves)
	r := runCLI(t, f, "", "rebalance", "--dry-run").mustSucceed(t)
	for _, want := range []string{"revision 7", "2 moves bring the load spread from 100 to 0", "v0", "h1 100% -> 75%", "HOST", "100%", "8/8"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, f, "", "rebalance", "--dry-run", "-o", "json").mustSucceed(t)
	var got api.RebalancePlan
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got.Moves) != 2 || got.Revision != 7 {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	if log := rf.log(); log != "GET GET" {
		t.Fatalf("requests %q", log)
	}
}

func TestRebalanceConfirm(t *testing.T) {
	t.Run("no", func(t *testing.T) {
		rf, f := newRebalanceFake(t, twoMoves)
		r := runCLI(t, f, "n\n", "rebalance")
		if r.err == nil || !strings.Contains(r.err.Error(), "nothing was moved") || !strings.Contains(r.stderr, "Go ahead? [y/N]") {
			t.Fatalf("%v\n%s", r.err, r.stderr)
		}
		if log := rf.log(); log != "GET" {
			t.Fatalf("requests %q", log)
		}
	})
	t.Run("yes", func(t *testing.T) {
		rf, f := newRebalanceFake(t, twoMoves)
		r := runCLI(t, f, "y\n", "rebalance").mustSucceed(t)
		if !strings.Contains(r.stdout, "Rebalance COMPLETE: 2 of 2 moved") || !strings.Contains(r.stderr, "v1") {
			t.Fatalf("stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
		if len(rf.posted) != 1 || rf.posted[0].Revision != 7 || len(rf.posted[0].Moves) != 2 || rf.posted[0].Moves[1].Workload != "v1" {
			t.Fatalf("posted %+v", rf.posted)
		}
	})
	t.Run("--yes, the plan changed", func(t *testing.T) {
		rf, f := newRebalanceFake(t, twoMoves)
		rf.conflict = true
		r := runCLI(t, f, "", "rebalance", "--yes")
		if r.err == nil || !strings.Contains(r.err.Error(), "nothing was moved") || !strings.Contains(r.err.Error(), "plan changed") {
			t.Fatalf("%v", r.err)
		}
	})
	t.Run("balanced: nothing asked, nothing sent", func(t *testing.T) {
		rf, f := newRebalanceFake(t, api.RebalancePlan{Revision: 3, Threshold: 20, Moves: []api.RebalanceMove{}, Summary: "balanced: the load spread is 5 points, within the threshold of 20"})
		r := runCLI(t, f, "", "rebalance").mustSucceed(t)
		if !strings.Contains(r.stdout, "balanced") || strings.Contains(r.stderr, "Go ahead") || rf.log() != "GET" {
			t.Fatalf("%s %s %s", r.stdout, r.stderr, rf.log())
		}
	})
	t.Run("bad input sends nothing", func(t *testing.T) {
		rf, f := newRebalanceFake(t, twoMoves)
		for _, args := range [][]string{{"rebalance", "extra"}, {"rebalance", "--timeout", "0s"}, {"rebalance", "--bogus"}} {
			if r := runCLI(t, f, "", args...); r.err == nil {
				t.Errorf("%v accepted", args)
			}
		}
		if log := rf.log(); log != "" {
			t.Fatalf("requests %q", log)
		}
	})
}
