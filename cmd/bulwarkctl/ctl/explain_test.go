package ctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

// placedExplanation is deliberately unsorted: the CLI orders the hosts.
var placedExplanation = api.Explanation{
	Workload: "web-1",
	State:    api.StateRunning,
	Host:     "node-b",
	Summary:  "placed on node-b (score 87)",
	Hosts: []api.HostVerdict{
		{Host: "node-z", Feasible: false, Reason: "needs 2 CPUs, 1 free"},
		{Host: "node-d", Feasible: true, Score: 90.5},
		{Host: "node-c", Feasible: true, Score: 40, Reason: "prefers disk=ssd: no"},
		{Host: "node-a", Feasible: false, Reason: "fails rack in (r1,r2):\n label rack=r3"},
		{Host: "node-b", Feasible: true, Score: 87, Chosen: true},
		{Host: "node-e", Feasible: true, Score: 40},
	},
}

func TestExplain(t *testing.T) {
	f := newFakeAPI(t)
	f.addExplanation(placedExplanation)

	t.Run("table", func(t *testing.T) {
		for _, args := range [][]string{{"explain", "web-1"}, {"explain", "-o", "table", "web-1"}, {"-o", "table", "explain", "web-1"}} {
			r := runCLI(t, f, "", args...).mustSucceed(t)
			want := []string{
				"web-1: placed on node-b (score 87)",
				"HOST VERDICT SCORE REASON",
				"node-b accepted (chosen) 87 -",
				"node-d accepted 90.5 -",
				"node-c accepted 40 prefers disk=ssd: no",
				"node-e accepted 40 -",
				"node-a rejected - fails rack in (r1,r2): label rack=r3",
				"node-z rejected - needs 2 CPUs, 1 free",
			}
			if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
				t.Errorf("%v: got\n%s\nwant\n%s", args, strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "", "explain", "web-1", "-o", "json").mustSucceed(t)
		var got api.Explanation
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not one JSON explanation: %v\n%s", err, r.stdout)
		}
		if got.Workload != "web-1" || got.Host != "node-b" || got.State != api.StateRunning || got.Summary != placedExplanation.Summary || len(got.Hosts) != 6 {
			t.Errorf("got %+v", got)
		}
		var order []string
		for _, h := range got.Hosts {
			order = append(order, h.Host)
		}
		if want := []string{"node-b", "node-d", "node-c", "node-e", "node-a", "node-z"}; !reflect.DeepEqual(order, want) {
			t.Errorf("host order %v, want %v", order, want)
		}
		var raw map[string]any
		_ = json.Unmarshal([]byte(r.stdout), &raw)
		for _, k := range []string{"workload", "state", "host", "summary", "hosts"} {
			if _, ok := raw[k]; !ok {
				t.Errorf("json lacks %q: %s", k, r.stdout)
			}
		}
	})
	t.Run("pending", func(t *testing.T) {
		f.addExplanation(api.Explanation{
			Workload: "db-1", State: api.StatePending,
			Summary: "pending: no host has 8 free CPUs",
			Hosts: []api.HostVerdict{
				{Host: "node-b", Reason: "needs 8 CPUs, 4 free"},
				{Host: "node-a", Reason: "down"},
			},
		})
		r := runCLI(t, f, "", "explain", "db-1").mustSucceed(t)
		want := []string{
			"db-1: pending: no host has 8 free CPUs",
			"HOST VERDICT SCORE REASON",
			"node-a rejected - down",
			"node-b rejected - needs 8 CPUs, 4 free",
		}
		if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	t.Run("no hosts", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(db1) // no canned explanation: the fake's default has no hosts
		r := runCLI(t, f, "", "explain", "db-1").mustSucceed(t)
		if strings.TrimSpace(r.stdout) != "db-1: pending: no nodes" || !strings.Contains(r.stderr, "no hosts were considered") {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
		r = runCLI(t, f, "", "explain", "db-1", "-o", "json").mustSucceed(t)
		if !strings.Contains(r.stdout, `"hosts": []`) {
			t.Errorf("json without an empty hosts list:\n%s", r.stdout)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := runCLI(t, f, "", "explain", "nope")
		if r.err == nil || !strings.Contains(r.err.Error(), `workload "nope" not found (list them with: bulwarkctl workload list)`) {
			t.Errorf("error %v", r.err)
		}
		if reqs := f.requestLog(); reqs[len(reqs)-1] != "GET /v1/workloads/nope/explain" {
			t.Errorf("last request %q", reqs[len(reqs)-1])
		}
	})
	t.Run("server without explain", func(t *testing.T) {
		old := newFakeAPI(t)
		old.noExplain = true
		old.addWorkload(web1)
		r := runCLI(t, old, "", "explain", "web-1")
		if r.err == nil || !strings.Contains(r.err.Error(), "does not offer this request; it is probably older than this bulwarkctl, upgrade it") {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestExplanationHeader(t *testing.T) {
	tests := []struct {
		e    api.Explanation
		want string
	}{
		{api.Explanation{Workload: "web-1", Summary: "placed on node-b (score 87)"}, "web-1: placed on node-b (score 87)"},
		{api.Explanation{Workload: "web-1", Summary: "web-1: placed on node-b"}, "web-1: placed on node-b"},
		{api.Explanation{Workload: "web-1", Summary: "pending:\n  no room"}, "web-1: pending: no room"},
		{api.Explanation{Workload: "web-1", State: api.StateRunning, Host: "node-b"}, "web-1: running on node-b"},
		{api.Explanation{Workload: "web-1", State: api.StatePending}, "web-1: pending"},
		{api.Explanation{Workload: "web-1"}, "web-1: the server gave no summary"},
	}
	for _, tt := range tests {
		if got := explanationHeader(&tt.e); got != tt.want {
			t.Errorf("explanationHeader(%+v) = %q, want %q", tt.e, got, tt.want)
		}
	}
}

func TestFormatScore(t *testing.T) {
	for in, want := range map[float64]string{87: "87", 87.5: "87.5", 1.0 / 3: "0.33", 0.004: "0", -0.001: "0", 99.999: "100", -2.5: "-2.5"} {
		if got := formatScore(in); got != want {
			t.Errorf("formatScore(%v) = %q, want %q", in, got, want)
		}
	}
}
