package ctl

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// serveWhatIf answers GET /v1/whatif from f.whatIfs and f.whatIfReport.
func (f *fakeAPI) serveWhatIf(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := r.URL.Query()
	if !q.Has("fail") {
		f.reply(w, 200, f.whatIfReport)
		return
	}
	ans, ok := f.whatIfs[q.Get("fail")]
	if !ok {
		f.fail(w, 404, api.CodeNotFound, "node %q not found", strings.Split(q.Get("fail"), ",")[0])
		return
	}
	f.reply(w, 200, ans)
}

var (
	whatIfA = api.WhatIf{
		Failed: []string{"node-a"},
		Restarts: []api.WhatIfMove{
			{Order: 1, Workload: "db-1", Priority: 500, From: "node-a", To: "node-b"},
			{Order: 2, Workload: "web-1", Priority: 10, From: "node-a", To: "node-c"},
		},
		Unplaced:         []api.WhatIfUnplaced{{Workload: "batch-1", Priority: 0, From: "node-a", Reason: "no host fits:\n cpu (2 hosts)"}},
		ExpectedRecovery: api.Duration(5 * time.Second),
		Notes:            []string{"node-a has no fence device: its workloads restart only after an operator confirms it is off"},
	}
	whatIfB = api.WhatIf{
		Failed:           []string{"node-b"},
		Restarts:         []api.WhatIfMove{{Order: 1, Workload: "cache-1", Priority: 50, From: "node-b", To: "node-c"}},
		Unplaced:         []api.WhatIfUnplaced{},
		ExpectedRecovery: api.Duration(5 * time.Second),
		Safe:             true,
	}
)

func newWhatIfFake(t *testing.T) *fakeAPI {
	f := newFakeAPI(t)
	f.whatIfs = map[string]api.WhatIf{"node-a": whatIfA, "node-b": whatIfB}
	f.whatIfReport = api.WhatIfReport{Scenarios: []api.WhatIf{whatIfA, whatIfB}, UnsafeHosts: []string{"node-a"}}
	return f
}

func TestWhatIfFail(t *testing.T) {
	f := newWhatIfFake(t)
	t.Run("table", func(t *testing.T) {
		r := runCLI(t, f, "", "whatif", "fail", "node-a").mustSucceed(t)
		want := []string{
			"If node-a fails: UNSAFE, 2 workloads restart, 1 would not; expected recovery 5s (estimate)",
			"ORDER WORKLOAD PRIORITY FROM TO",
			"1 db-1 500 node-a node-b",
			"2 web-1 10 node-a node-c",
			"",
			"WOULD NOT RESTART PRIORITY FROM REASON",
			"batch-1 0 node-a no host fits: cpu (2 hosts)",
			"note: node-a has no fence device: its workloads restart only after an operator confirms it is off",
		}
		if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if reqs := f.requestLog(); reqs[len(reqs)-1] != "GET /v1/whatif?fail=node-a" {
			t.Errorf("request %q", reqs[len(reqs)-1])
		}
	})
	t.Run("safe", func(t *testing.T) {
		r := runCLI(t, f, "", "whatif", "fail", "node-b").mustSucceed(t)
		if !strings.HasPrefix(r.stdout, "If node-b fails: SAFE, 1 workload restart, 0 would not; expected recovery 5s (estimate)\n") || strings.Contains(r.stdout, "WOULD NOT") {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "", "whatif", "fail", "node-a", "-o", "json").mustSucceed(t)
		var got api.WhatIf
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || !reflect.DeepEqual(got, whatIfA) {
			t.Errorf("%v\n%s", err, r.stdout)
		}
	})
	t.Run("several hosts", func(t *testing.T) {
		f.whatIfs["node-a,node-b"] = api.WhatIf{Failed: []string{"node-a", "node-b"}, ExpectedRecovery: api.Duration(5 * time.Second), Safe: true}
		r := runCLI(t, f, "", "whatif", "fail", "node-a", "node-b").mustSucceed(t)
		if strings.TrimSpace(r.stdout) != "If node-a, node-b fail: nothing runs there, nothing would move" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("unknown host", func(t *testing.T) {
		r := runCLI(t, f, "", "whatif", "fail", "nope")
		if r.err == nil || r.err.Error() != `node "nope" not found (list them with: bulwarkctl node list)` {
			t.Errorf("error %v", r.err)
		}
	})
	t.Run("bad input sends nothing", func(t *testing.T) {
		before := len(f.requestLog())
		for args, want := range map[string]string{
			"whatif fail":        "missing HOST after fail",
			"whatif node-a":      `unknown argument "node-a"`,
			"whatif fail Node_A": "invalid host",
		} {
			r := runCLI(t, f, "", strings.Fields(args)...)
			if r.err == nil || !strings.Contains(r.err.Error(), want) {
				t.Errorf("%s: error %v, want %q", args, r.err, want)
			}
		}
		if after := len(f.requestLog()); after != before {
			t.Errorf("%d requests sent", after-before)
		}
	})
}

func TestWhatIfEach(t *testing.T) {
	f := newWhatIfFake(t)
	r := runCLI(t, f, "", "whatif").mustSucceed(t)
	want := []string{
		"HOST VERDICT RESTART LOST RECOVERY",
		"node-a UNSAFE 2 1 5s",
		"node-b SAFE 1 0 5s",
		"unsafe to lose (1 of 2): node-a (see: bulwarkctl whatif fail node-a)",
	}
	if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if reqs := f.requestLog(); reqs[len(reqs)-1] != "GET /v1/whatif" {
		t.Errorf("request %q", reqs[len(reqs)-1])
	}
	r = runCLI(t, f, "", "-o", "json", "whatif").mustSucceed(t)
	var rep api.WhatIfReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || len(rep.Scenarios) != 2 || !reflect.DeepEqual(rep.UnsafeHosts, []string{"node-a"}) {
		t.Errorf("%v\n%s", err, r.stdout)
	}

	f.whatIfReport = api.WhatIfReport{Scenarios: []api.WhatIf{whatIfB}}
	r = runCLI(t, f, "", "whatif").mustSucceed(t)
	if !strings.Contains(r.stdout, "every host can be lost: all 1 host's workloads would restart elsewhere (N+1 holds)") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	r = runCLI(t, f, "", "whatif", "-o", "json").mustSucceed(t)
	if !strings.Contains(r.stdout, `"unsafe_hosts": []`) {
		t.Errorf("json without an empty unsafe_hosts list:\n%s", r.stdout)
	}
	f.whatIfReport = api.WhatIfReport{}
	r = runCLI(t, f, "", "whatif").mustSucceed(t)
	if strings.TrimSpace(r.stdout) != "no ready host runs anything: nothing to check" {
		t.Errorf("stdout %q", r.stdout)
	}
}
