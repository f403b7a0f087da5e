package scheduler

import (
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

func tolerate(n int) func(*api.Settings) {
	return func(s *api.Settings) { s.TolerateHostFailures = n }
}

func TestAdmissionControl(t *testing.T) {
	// Two hosts half full: a third half cannot survive losing either host.
	two := func() *ClusterWrapper {
		return MakeCluster(MakeNode("h1"), MakeNode("h2")).
			Run("h1", MakeWorkload("a").CPUs(4)).
			Run("h2", MakeWorkload("b").CPUs(4))
	}
	tests := []struct {
		name    string
		cluster *ClusterWrapper
		host    string
		reason  string
	}{
		{"N=0 allows", two().Settings(tolerate(0)).Pending(MakeWorkload("w").CPUs(4)), "h1", ""},
		{"N=1 refuses", two().Settings(tolerate(1)).Pending(MakeWorkload("w").CPUs(4)), "", "would leave too little room to survive 1 host failure"},
		{"N=1 admits what still fits", two().Settings(tolerate(1)).Pending(MakeWorkload("w").CPUs(0).Mem("1GiB")), "h1", ""},
		{"N=2", MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3")).Settings(tolerate(2)).Run("h1", MakeWorkload("a").CPUs(4)).Run("h2", MakeWorkload("b").CPUs(4)).Pending(MakeWorkload("w").CPUs(4)),
			"", "would leave too little room to survive 2 host failures"},
		{"N=1 with room", MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3")).Settings(tolerate(1)).
			Run("h1", MakeWorkload("a").CPUs(4)).Run("h2", MakeWorkload("b").CPUs(4)).Pending(MakeWorkload("w").CPUs(4)), "h1", ""},
		{"displaced workloads are not held back", two().Settings(tolerate(1)).Displaced("w").Pending(MakeWorkload("w").CPUs(4)), "h1", ""},
		{"the hosts lost are the largest", MakeCluster(MakeNode("big").CPUs(32), MakeNode("s1").CPUs(8)).Settings(tolerate(1)).
			Run("big", MakeWorkload("a").CPUs(8)).Pending(MakeWorkload("w").CPUs(1)), "", "would leave too little room to survive 1 host failure"},
		// The best host (s1, preferred) is refused; the best of the lost
		// hosts is not: the simulation packs w where it leaves room.
		{"other kind of host", MakeCluster(MakeNode("l").CPUs(16).Mem("32GiB"), MakeNode("s1").Label("tag", "s1"), MakeNode("s2")).Settings(tolerate(1)).
			Run("l", MakeWorkload("x").CPUs(4)).Run("s1", MakeWorkload("y").CPUs(4)).Run("s2", MakeWorkload("z").CPUs(6)).
			Pending(MakeWorkload("w").CPUs(2).Prefer("tag=s1")), "l", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cluster.Schedule()
			if got := where(p)["w"]; got != tc.host {
				t.Fatalf("placed on %q, want %q; plan %+v", got, tc.host, p)
			}
			if tc.host == "" && reasons(p)["w"] != tc.reason {
				t.Fatalf("reason %q, want %q", reasons(p)["w"], tc.reason)
			}
			if len(p.Preemptions) != 0 {
				t.Fatalf("admission control must not evict: %+v", p.Preemptions)
			}
		})
	}
}

func TestAdmissionControlWithPreemption(t *testing.T) {
	// Stopping low makes room on h1, but the cluster could not then survive
	// losing a host; nothing is stopped.
	c := MakeCluster(MakeNode("h1"), MakeNode("h2")).Settings(tolerate(1)).Settings(preemptOn).
		Run("h1", MakeWorkload("low").CPUs(8).Priority(1)).
		Run("h2", MakeWorkload("b").CPUs(8).Priority(900)).
		Pending(MakeWorkload("w").CPUs(8).Priority(500))
	p := c.Schedule()
	if len(p.Placements)+len(p.Preemptions) != 0 || reasons(p)["w"] != "would leave too little room to survive 1 host failure" {
		t.Fatalf("plan %+v", p)
	}
	// Displaced, it preempts.
	p = c.Displaced("w").Schedule()
	if where(p)["w"] != "h1" || len(p.Preemptions) != 1 {
		t.Fatalf("plan %+v", p)
	}
}
