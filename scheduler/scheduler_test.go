package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

func node(name string, cpus int, mem api.ByteSize, ready bool) NodeInfo {
	return NodeInfo{Node: api.Node{Name: name, CPUs: cpus, Memory: mem}, Ready: ready}
}

func wl(name string, cpus int, mem api.ByteSize, prio int) api.Workload {
	return api.Workload{WorkloadSpec: api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: cpus, Memory: mem, Priority: prio}}
}

func TestFits(t *testing.T) {
	n := node("h1", 4, 8*api.GiB, true)
	if ok, why := Fits(n, Usage{CPUs: 2, Memory: 4 * api.GiB}, 2, 4*api.GiB); !ok {
		t.Fatalf("exact fit rejected: %s", why)
	}
	ok, why := Fits(n, Usage{CPUs: 2}, 4, api.GiB)
	if ok || why != "cpu: needs 4, 2 free" {
		t.Fatalf("cpu: %v %q", ok, why)
	}
	ok, why = Fits(n, Usage{Memory: 7 * api.GiB}, 1, 2*api.GiB)
	if ok || why != "memory: needs 2GiB, 1GiB free" {
		t.Fatalf("memory: %v %q", ok, why)
	}
	if ok, why := Fits(node("h2", 4, 8*api.GiB, false), Usage{}, 1, api.GiB); ok || why != "host is not ready" {
		t.Fatalf("not ready: %v %q", ok, why)
	}
}

func TestFirstFit(t *testing.T) {
	st := &State{
		Nodes:       []NodeInfo{node("h2", 4, 8*api.GiB, true), node("h1", 2, 4*api.GiB, true), node("h3", 64, 64*api.GiB, false)},
		Allocations: map[string]api.Allocation{"old": {Workload: "old", Host: "h1", CPUs: 1, Memory: api.GiB}},
	}
	pending := []api.Workload{wl("a", 1, api.GiB, 0), wl("b", 4, api.GiB, 10), wl("huge", 100, api.GiB, 0), wl("c", 2, api.GiB, 0)}
	plan := FirstFit{}.Schedule(st, pending, time.Time{})
	got := map[string]string{}
	for _, p := range plan.Placements {
		got[p.Workload] = p.Host
	}
	// b (priority 10) goes first and takes all of h2; a fits beside "old" on h1; c has no room left.
	want := map[string]string{"b": "h2", "a": "h1"}
	if len(got) != len(want) || got["a"] != "h1" || got["b"] != "h2" {
		t.Fatalf("placements = %v, want %v", got, want)
	}
	reasons := map[string]string{}
	for _, u := range plan.Unplaced {
		reasons[u.Workload] = u.Reason
	}
	if !strings.HasPrefix(reasons["huge"], "larger than every host") {
		t.Errorf("huge: %q", reasons["huge"])
	}
	if !strings.Contains(reasons["c"], "h1: cpu: needs 2, 0 free") || !strings.Contains(reasons["c"], "h3: host is not ready") {
		t.Errorf("c: %q", reasons["c"])
	}
	if r := (FirstFit{}).Schedule(&State{}, []api.Workload{wl("x", 1, api.GiB, 0)}, time.Time{}); r.Unplaced[0].Reason != "no hosts are registered" {
		t.Errorf("no hosts: %q", r.Unplaced[0].Reason)
	}
}
