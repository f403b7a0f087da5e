package scheduler

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

func sharedState() *State {
	node := func(name string, nets ...api.HostNetwork) NodeInfo {
		return NodeInfo{Ready: true, Node: api.Node{Name: name, CPUs: 8, Memory: 16 * api.GiB, Kinds: []api.Kind{api.KindVM, api.KindContainer},
			Networks: nets, Interfaces: []string{"eth0"}}}
	}
	pub := api.HostNetwork{Name: "public", Interface: "eth1", Subnets: []string{"192.0.2.11/24"}}
	return &State{
		Revision:    10,
		Nodes:       []NodeInfo{node("h1"), node("h2", pub), node("h3", pub)},
		Allocations: map[string]api.Allocation{},
		Workloads:   map[string]api.Workload{},
		Volumes: map[string]api.Volume{
			"data": {VolumeSpec: api.VolumeSpec{Name: "data", Path: "/srv/data.img", Mode: api.VolumeExclusive}},
			"iso":  {VolumeSpec: api.VolumeSpec{Name: "iso", Path: "/srv/iso.img", Mode: api.VolumeSharedRead}},
		},
		VolumeLocks: map[string]api.Claim{},
		VIPs:        map[string]api.VIP{},
	}
}

func vmWith(name string, vols ...string) api.Workload {
	return api.Workload{WorkloadSpec: api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: 1, Memory: api.GiB, Volumes: vols}}
}

func TestExclusiveVolumeOneHolder(t *testing.T) {
	st := sharedState()
	a, b, c := vmWith("a", "data"), vmWith("b", "data"), vmWith("c", "iso")
	d := vmWith("d", "iso")
	for _, w := range []api.Workload{a, b, c, d} {
		st.Workloads[w.Name] = w
	}
	plan := New(Options{}).Schedule(st, []api.Workload{a, b, c, d}, time.Time{})
	if len(plan.Placements) != 3 || len(plan.Unplaced) != 1 || plan.Unplaced[0].Workload != "b" {
		t.Fatalf("plan: %+v", plan)
	}
	var hostA string
	for _, p := range plan.Placements {
		if p.Workload == "a" {
			hostA = p.Host
		}
	}
	if want := "volume data held by a on " + hostA; plan.Unplaced[0].Reason != want {
		t.Fatalf("reason %q, want %q", plan.Unplaced[0].Reason, want)
	}
	if err := Verify(st, Plan{Placements: []Placement{{Workload: "a", Host: "h1", CPUs: 1, Memory: api.GiB}, {Workload: "b", Host: "h2", CPUs: 1, Memory: api.GiB}}}); err == nil || !strings.Contains(err.Error(), "volume data held by a") {
		t.Fatalf("verify let two holders through: %v", err)
	}
}

func TestVolumeLockHolderStillStopping(t *testing.T) {
	st := sharedState()
	// a moved away (no allocation), but its old host still holds the lock.
	st.VolumeLocks["data"] = api.Claim{Resource: "data", Workload: "a", Host: "h3", Epoch: 5}
	b := vmWith("b", "data")
	st.Workloads["b"] = b
	plan := New(Options{}).Schedule(st, []api.Workload{b}, time.Time{})
	if len(plan.Unplaced) != 1 || plan.Unplaced[0].Reason != "volume data held by a on h3" {
		t.Fatalf("plan: %+v", plan)
	}
	// The lock's own workload may be placed again (recovery after fencing).
	a := vmWith("a", "data")
	st.Workloads["a"] = a
	plan = New(Options{}).Schedule(st, []api.Workload{a}, time.Time{})
	if len(plan.Placements) != 1 {
		t.Fatalf("plan: %+v", plan)
	}
	missing := vmWith("m", "nope")
	st.Workloads["m"] = missing
	plan = New(Options{}).Schedule(st, []api.Workload{missing}, time.Time{})
	if len(plan.Unplaced) != 1 || plan.Unplaced[0].Reason != "volume nope does not exist" {
		t.Fatalf("plan: %+v", plan)
	}
}

func TestVIPNeedsNetwork(t *testing.T) {
	st := sharedState()
	w := vmWith("web")
	w.Kind = api.KindContainer
	st.Workloads["web"] = w
	st.VIPs["192.0.2.10"] = api.VIP{VIPSpec: api.VIPSpec{Address: "192.0.2.10/24", Network: "public", Workload: "web"}}
	plan := New(Options{}).Schedule(st, []api.Workload{w}, time.Time{})
	if len(plan.Placements) != 1 || plan.Placements[0].Host == "h1" {
		t.Fatalf("plan: %+v", plan)
	}
	ex := Explain(st, "web")
	for _, v := range ex.Hosts {
		if v.Host == "h1" && (v.Feasible || !strings.Contains(v.Reason, "not on network public")) {
			t.Fatalf("h1 verdict: %+v", v)
		}
	}
	// By interface: every host has eth0, none has eth9.
	st.VIPs["192.0.2.10"] = api.VIP{VIPSpec: api.VIPSpec{Address: "192.0.2.10/24", Interface: "eth9", Workload: "web"}}
	plan = New(Options{}).Schedule(st, []api.Workload{w}, time.Time{})
	if len(plan.Unplaced) != 1 || !strings.Contains(plan.Unplaced[0].Reason, "no interface eth9") {
		t.Fatalf("plan: %+v", plan)
	}
}
