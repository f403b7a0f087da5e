package scheduler

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

// TestMaintenanceHostTakesNothing: a host in maintenance is rejected with
// its own reason, in Schedule, Explain and Fits; what runs there stays and
// still takes room.
func TestMaintenanceHostTakesNothing(t *testing.T) {
	c := MakeCluster(MakeNode("h1").Maintenance(), MakeNode("h2").CPUs(2)).
		Run("h1", MakeWorkload("old")).
		Pending(MakeWorkload("a"), MakeWorkload("b"), MakeWorkload("c"))
	plan := c.Schedule()
	if got := where(plan); !reflect.DeepEqual(got, map[string]string{"a": "h2", "b": "h2"}) {
		t.Fatalf("placements %v", got)
	}
	if why := reasons(plan)["c"]; why != "no host fits: maintenance (1 host), cpu (1 host)" {
		t.Errorf("reason for c: %q", why)
	}
	ex := Explain(c.State(), "c")
	if ex.Hosts[0].Host != "h1" || ex.Hosts[0].Feasible || ex.Hosts[0].Reason != ReasonMaintenance {
		t.Errorf("explain h1: %+v", ex.Hosts[0])
	}
	tr := NewTracker(c.State())
	w := MakeWorkload("d").Obj()
	if ok, why := tr.Fits("h1", &w); ok || why != ReasonMaintenance {
		t.Errorf("Fits on h1 = %v %q", ok, why)
	}
	if cpus, _, _ := tr.Free("h1"); cpus != 7 {
		t.Errorf("h1 free cpus %d, want 7: the workload there still takes room", cpus)
	}
	// Preemption does not make room on a host in maintenance either.
	c2 := MakeCluster(MakeNode("h1").CPUs(1).Maintenance()).
		Run("h1", MakeWorkload("low")).
		Pending(MakeWorkload("high").Priority(900)).
		Settings(func(s *api.Settings) { s.Preemption = true })
	if p := c2.Schedule(); len(p.Placements)+len(p.Preemptions) != 0 {
		t.Errorf("preempted on a host in maintenance: %+v", p)
	}
}

// TestMaintenanceIsNoFailoverSurvivor: admission control does not count on
// a host in maintenance to take restarts.
func TestMaintenanceIsNoFailoverSurvivor(t *testing.T) {
	build := func(maint bool) *ClusterWrapper {
		h3 := MakeNode("h3").CPUs(4)
		if maint {
			h3.Maintenance()
		}
		return MakeCluster(MakeNode("h1").CPUs(4), MakeNode("h2").CPUs(4), h3).
			Run("h1", MakeWorkload("a").CPUs(3)).
			Pending(MakeWorkload("new").CPUs(3)).
			Settings(func(s *api.Settings) { s.TolerateHostFailures = 1 })
	}
	if p := build(false).Schedule(); len(p.Placements) != 1 {
		t.Fatalf("without maintenance: %+v", p)
	}
	// With h3 in maintenance only h2 takes restarts when h1 (the largest,
	// by name) fails: it cannot take both a and new, wherever new goes.
	p := build(true).Schedule()
	if len(p.Placements) != 0 || !strings.Contains(reasons(p)["new"], "too little room to survive") {
		t.Fatalf("with h3 in maintenance: %+v", p)
	}
}

func drainCluster() *ClusterWrapper {
	return MakeCluster(
		MakeNode("h1").Label("rack", "r1"),
		MakeNode("h2").CPUs(4).Label("rack", "r2"),
		MakeNode("h3").CPUs(4).Label("rack", "r1"),
	).
		Run("h1",
			MakeWorkload("db-1").AntiAffinity("db").Priority(500).Created(1),
			MakeWorkload("web-1").CPUs(2).Created(2),
			MakeWorkload("web-2").CPUs(2).Created(3),
			MakeWorkload("pinned").Require("rack=r1", "disk=nvme").Priority(100).Created(4),
		).
		Run("h2", MakeWorkload("db-2").AntiAffinity("db").Priority(500).Created(0))
}

func TestPlanDrain(t *testing.T) {
	st := drainCluster().State()
	res, err := PlanDrain(st, "h1", New(Options{}), whatIfNow, DrainOptions{Batch: 2})
	if err != nil {
		t.Fatal(err)
	}
	// Highest priority first; db-1 may not join db-2 on h2; then binpack
	// (ties to the first host by name).
	want := []DrainMove{
		{Batch: 1, Workload: "db-1", Priority: 500, To: "h3"},
		{Batch: 1, Workload: "web-1", Priority: 0, To: "h2"},
		{Batch: 2, Workload: "web-2", Priority: 0, To: "h3"},
	}
	if !reflect.DeepEqual(res.Moves, want) {
		t.Errorf("moves\n got %+v\nwant %+v", res.Moves, want)
	}
	// pinned was in batch 1 with db-1: it fits nowhere else, so it stays
	// and web-1 took its place in the batch.
	if len(res.Stuck) != 1 || res.Stuck[0].Workload != "pinned" ||
		res.Stuck[0].Reason != "no host fits: maintenance (1 host), label disk=nvme (1 host), label rack=r1 (1 host)" {
		t.Errorf("stuck %+v", res.Stuck)
	}
	if res.Batches() != 2 {
		t.Errorf("batches %d", res.Batches())
	}
	// The state is not changed.
	if st.Allocations["db-1"].Host != "h1" || st.Nodes[0].Maintenance || len(st.Displaced) != 0 {
		t.Errorf("PlanDrain changed its input")
	}

	// One batch at a time, as the leader asks.
	one, _ := PlanDrain(st, "h1", nil, whatIfNow, DrainOptions{Batch: 2, MaxBatches: 1})
	if !reflect.DeepEqual(one.Moves, want[:2]) {
		t.Errorf("first batch: %+v", one.Moves)
	}
	if _, err := PlanDrain(st, "h9", nil, whatIfNow, DrainOptions{}); !errors.Is(err, ErrUnknownHost) {
		t.Errorf("unknown host: %v", err)
	}
}

// TestPlanDrainAntiAffinityStuck: a group with a member on every host
// leaves the drained host's member where it is.
func TestPlanDrainAntiAffinityStuck(t *testing.T) {
	st := MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3")).
		Run("h1", MakeWorkload("g1").AntiAffinity("g"), MakeWorkload("free")).
		Run("h2", MakeWorkload("g2").AntiAffinity("g")).
		Run("h3", MakeWorkload("g3").AntiAffinity("g")).
		State()
	res, err := PlanDrain(st, "h1", nil, whatIfNow, DrainOptions{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Moves) != 1 || res.Moves[0].Workload != "free" {
		t.Errorf("moves %+v", res.Moves)
	}
	if len(res.Stuck) != 1 || res.Stuck[0].Workload != "g1" || !strings.Contains(res.Stuck[0].Reason, "anti-affinity group g (2 hosts)") {
		t.Errorf("stuck %+v", res.Stuck)
	}
}

// TestPlanDrainPreempts: with preemption on, a high-priority workload may
// make room by stopping a lower-priority one elsewhere, as the leader would.
func TestPlanDrainPreempts(t *testing.T) {
	st := MakeCluster(MakeNode("h1").CPUs(2), MakeNode("h2").CPUs(2)).
		Run("h1", MakeWorkload("vip").CPUs(2).Priority(900)).
		Run("h2", MakeWorkload("batch").CPUs(2)).
		Settings(func(s *api.Settings) { s.Preemption = true }).
		State()
	res, err := PlanDrain(st, "h1", nil, whatIfNow, DrainOptions{Batch: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Moves) != 1 || res.Moves[0].To != "h2" || len(res.Preemptions) != 1 || res.Preemptions[0].Workload != "batch" {
		t.Errorf("plan %+v", res)
	}
}
