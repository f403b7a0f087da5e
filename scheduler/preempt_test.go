package scheduler

import (
	"fmt"
	"reflect"
	"sort"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

func preemptOn(s *api.Settings) { s.Preemption = true }

func victims(p Plan) []string {
	var v []string
	for _, x := range p.Preemptions {
		v = append(v, x.Workload)
	}
	sort.Strings(v)
	return v
}

func TestPreemptionOffByDefault(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(4), MakeNode("h2").CPUs(4)).
		Run("h1", MakeWorkload("low").CPUs(4).Priority(1)).
		Run("h2", MakeWorkload("same").CPUs(4).Priority(500)).
		Pending(MakeWorkload("w").CPUs(4).Priority(500))
	p := c.Schedule()
	if len(p.Preemptions) != 0 || len(p.Placements) != 0 {
		t.Fatalf("plan %+v", p)
	}
	if got, want := p.Unplaced[0].Reason, "preemption is off; 1 host would fit after stopping lower-priority workloads"; got != want {
		t.Fatalf("reason %q, want %q", got, want)
	}
}

func TestPreemption(t *testing.T) {
	w := func(name string, prio, cpus int) *WorkloadWrapper {
		return MakeWorkload(name).Priority(prio).CPUs(cpus)
	}
	tests := []struct {
		name    string
		cluster *ClusterWrapper
		host    string   // where w goes; "" = unplaced
		victims []string // sorted
		reason  string   // when unplaced
	}{
		{"fewest victims first",
			MakeCluster(MakeNode("h1")).Run("h1", w("a", 1, 1), w("b", 1, 1), w("c", 1, 2), w("d", 5, 4)).Pending(w("w", 10, 4)),
			"h1", []string{"d"}, ""},
		{"then lowest priority",
			MakeCluster(MakeNode("h1")).Run("h1", w("x", 5, 4), w("y", 3, 4)).Pending(w("w", 10, 4)),
			"h1", []string{"y"}, ""},
		{"then least resources",
			MakeCluster(MakeNode("h1")).Run("h1", w("x", 3, 6), w("y", 3, 2)).Pending(w("w", 10, 2)),
			"h1", []string{"y"}, ""},
		{"lowest pair",
			MakeCluster(MakeNode("h1")).Run("h1", w("a", 1, 2), w("b", 4, 2), w("c", 2, 2), w("d", 9, 2)).Pending(w("w", 10, 4)),
			"h1", []string{"a", "c"}, ""},
		{"only strictly lower priority",
			MakeCluster(MakeNode("h1")).Run("h1", w("e", 10, 8)).Pending(w("w", 10, 4)),
			"", nil, "no host fits: cpu (1 host)"},
		{"equal priority stays",
			MakeCluster(MakeNode("h1")).Run("h1", w("e", 10, 4), w("f", 3, 4)).Pending(w("w", 10, 4)),
			"h1", []string{"f"}, ""},
		{"fewer victims on another host",
			MakeCluster(MakeNode("h1"), MakeNode("h2")).Run("h1", w("a", 1, 4), w("b", 1, 4)).Run("h2", w("c", 1, 6), w("d", 9, 2)).Pending(w("w", 10, 6)),
			"h2", []string{"c"}, ""},
		{"lower priority on another host",
			MakeCluster(MakeNode("h1"), MakeNode("h2")).Run("h1", w("a", 5, 8)).Run("h2", w("b", 2, 8)).Pending(w("w", 10, 8)),
			"h2", []string{"b"}, ""},
		{"tie goes to the first host",
			MakeCluster(MakeNode("h2"), MakeNode("h1")).Run("h1", w("a", 2, 8)).Run("h2", w("b", 2, 8)).Pending(w("w", 10, 8)),
			"h1", []string{"a"}, ""},
		{"labels still hold",
			MakeCluster(MakeNode("h1").Label("rack", "r1"), MakeNode("h2").Label("rack", "r2")).Run("h1", w("a", 1, 8)).Run("h2", w("b", 5, 8)).Pending(w("w", 10, 8).Require("rack=r2")),
			"h2", []string{"b"}, ""},
		{"not ready hosts are not used",
			MakeCluster(MakeNode("h1").NotReady(), MakeNode("h2")).Run("h1", w("a", 1, 8)).Run("h2", w("b", 10, 8)).Pending(w("w", 10, 8)),
			"", nil, "no host fits: not ready (1 host), cpu (1 host)"},
		{"anti-affinity member is preempted",
			MakeCluster(MakeNode("h1")).Run("h1", w("web-1", 1, 1).AntiAffinity("web")).Pending(w("web-2", 10, 1).AntiAffinity("web")),
			"h1", []string{"web-1"}, ""},
		{"anti-affinity member of higher priority blocks",
			MakeCluster(MakeNode("h1")).Run("h1", w("web-1", 10, 1).AntiAffinity("web"), w("low", 1, 6)).Pending(w("web-2", 10, 4).AntiAffinity("web")),
			"", nil, "no host fits: anti-affinity group web (1 host)"},
		{"memory",
			MakeCluster(MakeNode("h1")).Run("h1", w("a", 1, 1).Mem("12GiB"), w("b", 1, 4).Mem("4GiB")).Pending(w("w", 10, 1).Mem("10GiB")),
			"h1", []string{"a"}, ""},
		{"not enough even with every lower one gone",
			MakeCluster(MakeNode("h1")).Run("h1", w("a", 1, 2), w("b", 20, 6)).Pending(w("w", 10, 4)),
			"", nil, "no host fits: cpu (1 host)"},
		{"larger than every host: no preemption",
			MakeCluster(MakeNode("h1")).Run("h1", w("a", 1, 8)).Pending(w("w", 10, 9)),
			"", nil, "larger than every host: needs 9 cpus (at most 8 allocatable)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cluster.Settings(preemptOn)
			p := c.Schedule()
			if got := where(p)["w"] + where(p)["web-2"]; got != tc.host {
				t.Fatalf("placed on %q, want %q; plan %+v", got, tc.host, p)
			}
			if got := victims(p); !reflect.DeepEqual(got, tc.victims) {
				t.Fatalf("victims %v, want %v", got, tc.victims)
			}
			if tc.host == "" && p.Unplaced[0].Reason != tc.reason {
				t.Fatalf("reason %q, want %q", p.Unplaced[0].Reason, tc.reason)
			}
			if err := Verify(c.State(), p); err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestPreemptionRecord(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(4)).Settings(preemptOn).
		Run("h1", MakeWorkload("batch").CPUs(4).Priority(100)).
		Pending(MakeWorkload("db").CPUs(2).Priority(500).Created(1), MakeWorkload("db2").CPUs(2).Priority(500).Created(2))
	p := c.Schedule()
	want := []Preemption{{Workload: "batch", Host: "h1", By: "db", Reason: "stopped on h1 to make room for db (priority 500 > 100)"}}
	if !reflect.DeepEqual(p.Preemptions, want) {
		t.Fatalf("preemptions %+v", p.Preemptions)
	}
	// db2 uses the rest of the room; batch is not placed again in this plan.
	if got := where(p); len(got) != 2 || got["db"] != "h1" || got["db2"] != "h1" {
		t.Fatalf("placements %v", got)
	}
}

func TestPreemptionNeverStopsDeletingOrUnknown(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(4), MakeNode("h2").CPUs(4)).Settings(preemptOn).
		Run("h1", MakeWorkload("dying").CPUs(4).Priority(1)).
		Pending(MakeWorkload("w").CPUs(4).Priority(500))
	d := c.st.Workloads["dying"]
	d.Deleting = true
	c.st.Workloads["dying"] = d
	// An allocation whose workload record is gone.
	c.st.Allocations["orphan"] = api.Allocation{Workload: "orphan", Host: "h2", CPUs: 4, Memory: api.GiB}
	p := c.Schedule()
	if len(p.Preemptions) != 0 || len(p.Placements) != 0 {
		t.Fatalf("plan %+v", p)
	}
}

func TestPreemptionManyCandidatesFallsBackToGreedy(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(40).Mem("64GiB")).Settings(preemptOn)
	for i := range 40 {
		c.Run("h1", MakeWorkload(fmt.Sprintf("v%02d", i)).Priority(1+(i*7)%40).Mem("1GiB"))
	}
	c.Pending(MakeWorkload("w").CPUs(20).Priority(100))
	p := c.Schedule()
	if len(p.Preemptions) != 20 {
		t.Fatalf("%d victims", len(p.Preemptions))
	}
	// The 20 lowest priorities, 1..20.
	for _, v := range p.Preemptions {
		var i int
		fmt.Sscanf(v.Workload, "v%d", &i)
		if prio := 1 + (i*7)%40; prio > 20 {
			t.Errorf("victim %s has priority %d", v.Workload, prio)
		}
	}
	if err := Verify(c.State(), p); err != nil {
		t.Fatal(err)
	}
}

func TestNextCombination(t *testing.T) {
	idx := []int{0, 1}
	var got [][2]int
	for {
		got = append(got, [2]int{idx[0], idx[1]})
		if !nextCombination(idx, 4) {
			break
		}
	}
	want := [][2]int{{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
}
