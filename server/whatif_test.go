package server

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// runOn stores a workload and its allocation on host, as the leader would.
func runOn(t *testing.T, st clusterstore.Store, host, name string, cpus, prio int, created time.Time) {
	t.Helper()
	w := api.Workload{Schema: api.SchemaVersion, WorkloadSpec: api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: cpus, Memory: api.GiB, Priority: prio}, CreatedAt: created}
	a := api.Allocation{Schema: api.SchemaVersion, Workload: name, Host: host, CPUs: cpus, Memory: api.GiB, CreatedAt: created}
	if _, _, err := st.Txn(context.Background(), nil, []clusterstore.Op{
		clusterstore.Put(clusterstore.WorkloadKey(name), clusterstore.Encode(w)),
		clusterstore.Put(clusterstore.AllocationKey(name), clusterstore.Encode(a)),
	}); err != nil {
		t.Fatal(err)
	}
}

func TestWhatIfEndpoint(t *testing.T) {
	st, ts := newAPI(t)
	fakeHost(t, st, "h1", 4, 8*api.GiB)
	fakeHost(t, st, "h2", 4, 8*api.GiB)
	fakeHost(t, st, "h3", 2, 8*api.GiB)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	runOn(t, st, "h1", "web", 2, 10, t0)
	runOn(t, st, "h1", "db", 2, 500, t0.Add(time.Second))
	runOn(t, st, "h2", "cache", 2, 100, t0)
	runOn(t, st, "h3", "batch", 1, 0, t0)
	url := ts.URL + "/v1/whatif"
	before := storeRev(t, st)

	t.Run("one host", func(t *testing.T) {
		code, body := do(t, "GET", url+"?fail=h1", "")
		if code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var got api.WhatIf
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		// db first (priority 500) takes h2's last 2 CPUs; web would need
		// 2 and h3 has 1 free.
		want := []api.WhatIfMove{{Order: 1, Workload: "db", Priority: 500, From: "h1", To: "h2"}}
		if !reflect.DeepEqual(got.Restarts, want) {
			t.Errorf("restarts %+v", got.Restarts)
		}
		if got.Safe || len(got.Unplaced) != 1 || got.Unplaced[0].Workload != "web" || got.Unplaced[0].From != "h1" || !strings.HasPrefix(got.Unplaced[0].Reason, "preemption is off") {
			t.Errorf("unplaced %+v", got)
		}
		if time.Duration(got.ExpectedRecovery) != 5*time.Second {
			t.Errorf("expected recovery %v", got.ExpectedRecovery)
		}
		if len(got.Notes) != 1 || !strings.Contains(got.Notes[0], "h1 has no fence device") {
			t.Errorf("notes %q", got.Notes)
		}
	})
	t.Run("two hosts", func(t *testing.T) {
		for _, q := range []string{"?fail=h1,h3", "?fail=h3&fail=h1", "?fail=h1,%20h3"} {
			code, body := do(t, "GET", url+q, "")
			var got api.WhatIf
			if err := json.Unmarshal(body, &got); err != nil || code != 200 {
				t.Fatalf("%s: %d %s", q, code, body)
			}
			if !reflect.DeepEqual(got.Failed, []string{"h1", "h3"}) || len(got.Restarts) != 1 || len(got.Unplaced) != 2 {
				t.Errorf("%s: %+v", q, got)
			}
		}
	})
	t.Run("n+1", func(t *testing.T) {
		code, body := do(t, "GET", url, "")
		var got api.WhatIfReport
		if err := json.Unmarshal(body, &got); err != nil || code != 200 {
			t.Fatalf("%d %s", code, body)
		}
		var names []string
		for _, s := range got.Scenarios {
			names = append(names, strings.Join(s.Failed, ","))
		}
		if !reflect.DeepEqual(names, []string{"h1", "h2", "h3"}) {
			t.Errorf("scenarios %v", names)
		}
		// h2: cache needs 2 CPUs, h1 has none free and h3 one: unsafe too.
		// h3: batch fits on h2.
		if !reflect.DeepEqual(got.UnsafeHosts, []string{"h1", "h2"}) {
			t.Errorf("unsafe %v\n%s", got.UnsafeHosts, body)
		}
	})
	t.Run("errors", func(t *testing.T) {
		for q, want := range map[string]int{
			"?fail=nope":    404,
			"?fail=h1,nope": 404,
			"?fail=":        400,
			"?fail=h1,,h2":  400,
			"?fail=H1":      400,
			"?fail=h1;rm":   400,
		} {
			code, body := do(t, "GET", url+q, "")
			var e api.Error
			if code != want || json.Unmarshal(body, &e) != nil || e.Message == "" {
				t.Errorf("%s: %d %s, want %d", q, code, body, want)
			}
			if code == 404 && !strings.Contains(e.Message, `node "nope" not found`) {
				t.Errorf("%s: %s", q, e.Message)
			}
		}
		if code, _ := do(t, "POST", url, ""); code != 404 && code != 405 {
			t.Errorf("POST: %d", code)
		}
	})
	if after := storeRev(t, st); after != before {
		t.Errorf("whatif wrote to the store: revision %d -> %d", before, after)
	}
}
