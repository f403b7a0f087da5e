package server

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
)

func TestHealthEvents(t *testing.T) {
	ctx := context.Background()
	mem := memory.New()
	t.Cleanup(func() { mem.Close() })
	leaderKey := clusterstore.Prefix + "election/test"
	if _, _, err := mem.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(leaderKey, []byte("me"))}); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	l := &leader{cfg: Config{Store: mem, MaxTxnOps: 3}, log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		guard: clusterstore.Exists(leaderKey), now: func() time.Time { now = now.Add(time.Second); return now }}
	status := func(host, name, health, detail string) clusterstore.Event {
		st := api.WorkloadStatus{Schema: 1, Workload: name, Host: host, Epoch: 7, State: api.StateRunning, Health: health, HealthDetail: detail}
		return clusterstore.Event{Type: clusterstore.EventPut, KV: clusterstore.KeyValue{Key: clusterstore.StatusKey(host, name), Value: clusterstore.Encode(st)}}
	}
	events := func() []string {
		t.Helper()
		kvs, _, err := mem.List(ctx, clusterstore.EventsPrefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, kv := range kvs {
			var e api.Event
			if err := clusterstore.Decode(kv, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, e.Type+" "+e.Host+" "+e.Workload+": "+e.Message)
		}
		return out
	}
	expect := func(want ...string) {
		t.Helper()
		if got := events(); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// Healthy at first sight: nothing; starting, unknown, none: nothing.
	l.healthEvents(ctx, []clusterstore.Event{
		status("h1", "web", api.HealthStarting, ""), status("h1", "web", api.HealthHealthy, ""),
		status("h1", "db", api.HealthUnknown, "check unsupported"), status("h1", "job", "", ""),
	})
	expect()
	// Healthy -> unhealthy -> (restart: starting) -> healthy, in one
	// response; a repeated report changes nothing.
	l.healthEvents(ctx, []clusterstore.Event{
		status("h1", "web", api.HealthHealthy, "check failed (1 of 2 in a row): refused"),
		status("h1", "web", api.HealthUnhealthy, "2 checks failed in a row, the last: refused"),
		status("h1", "web", api.HealthUnhealthy, "2 checks failed in a row, the last: refused"),
		status("h1", "web", api.HealthStarting, ""),
	})
	l.healthEvents(ctx, []clusterstore.Event{status("h2", "web", api.HealthHealthy, "")})
	expect(
		"unhealthy h1 web: health check failed: 2 checks failed in a row, the last: refused",
		"healthy h2 web: health check passes again",
	)
	// Unhealthy again after a restart that never passed: another event.
	l.healthEvents(ctx, []clusterstore.Event{status("h2", "web", api.HealthUnhealthy, "refused")})
	l.healthEvents(ctx, []clusterstore.Event{status("h2", "web", api.HealthStarting, ""), status("h2", "web", api.HealthUnhealthy, "timeout")})
	l.healthEvents(ctx, []clusterstore.Event{status("h2", "web", api.HealthStarting, ""), status("h2", "web", api.HealthHealthy, "")})
	expect(
		"unhealthy h1 web: health check failed: 2 checks failed in a row, the last: refused",
		"healthy h2 web: health check passes again",
		"unhealthy h2 web: health check failed: refused",
		"unhealthy h2 web: health check failed: timeout",
		"healthy h2 web: health check passes again",
	)
	// Unhealthy at first sight gets its event; a deleted workload is
	// forgotten; non-status keys are ignored.
	l.healthEvents(ctx, []clusterstore.Event{
		status("h3", "api", api.HealthUnhealthy, "exit code 1"),
		{Type: clusterstore.EventDelete, KV: clusterstore.KeyValue{Key: clusterstore.WorkloadKey("web")}},
		{Type: clusterstore.EventPut, KV: clusterstore.KeyValue{Key: clusterstore.WorkloadKey("x"), Value: []byte("{}")}},
	})
	if _, ok := l.health["web"]; ok {
		t.Error("deleted workload still remembered")
	}
	expect(
		"unhealthy h1 web: health check failed: 2 checks failed in a row, the last: refused",
		"healthy h2 web: health check passes again",
		"unhealthy h2 web: health check failed: refused",
		"unhealthy h2 web: health check failed: timeout",
		"healthy h2 web: health check passes again",
		"unhealthy h3 api: health check failed: exit code 1",
	)
	// Many at once are written in transactions under the op limit.
	var evs []clusterstore.Event
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		evs = append(evs, status("h1", n, api.HealthUnhealthy, "down"))
	}
	l.healthEvents(ctx, evs)
	if n := len(events()); n != 11 {
		t.Errorf("%d events, want 11", n)
	}
	// Without leadership nothing is written.
	if _, _, err := mem.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(leaderKey)}); err != nil {
		t.Fatal(err)
	}
	l.healthEvents(ctx, []clusterstore.Event{status("h1", "z", api.HealthUnhealthy, "down")})
	if n := len(events()); n != 11 {
		t.Errorf("%d events after losing leadership, want 11", n)
	}
}

func TestWorkloadViewHealth(t *testing.T) {
	snap := &clusterstore.Snapshot{
		Allocations: map[string]clusterstore.Versioned[api.Allocation]{"web": {Value: api.Allocation{Workload: "web", Host: "h1", Epoch: 7}}},
		Statuses: map[string]map[string]clusterstore.Versioned[api.WorkloadStatus]{
			"h1": {"web": {Value: api.WorkloadStatus{Workload: "web", Host: "h1", Epoch: 7, State: api.StateRunning, Health: api.HealthUnhealthy, HealthDetail: "refused"}}},
			"h0": {"web": {Value: api.WorkloadStatus{Workload: "web", Host: "h0", Epoch: 3, State: api.StateStopping, Health: api.HealthHealthy}}},
		},
		Heartbeats: map[string]clusterstore.Versioned[api.Heartbeat]{"h1": {}},
	}
	w := api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "web", Kind: api.KindContainer}}
	v := workloadView(snap, w)
	if v.Health != api.HealthUnhealthy || v.HealthDetail != "refused" {
		t.Errorf("view: %q %q", v.Health, v.HealthDetail)
	}
	// A report of another epoch says nothing about this one's health.
	snap.Allocations["web"] = clusterstore.Versioned[api.Allocation]{Value: api.Allocation{Workload: "web", Host: "h1", Epoch: 9}}
	if v := workloadView(snap, w); v.Health != "" || v.HealthDetail != "" {
		t.Errorf("view of a new epoch: %q %q", v.Health, v.HealthDetail)
	}
}
