package scheduler

import (
	"reflect"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

func TestExplainPending(t *testing.T) {
	c := MakeCluster(
		MakeNode("h1").Label("rack", "r1"),
		MakeNode("h2").Label("rack", "r1"),
		MakeNode("h3").Label("rack", "r2"),
		MakeNode("h4").Label("rack", "r1").NotReady(),
		MakeNode("h5").Label("rack", "r1"),
	).Run("h1", MakeWorkload("big").CPUs(6)).
		Run("h5", MakeWorkload("web-1").AntiAffinity("web")).
		Pending(MakeWorkload("web-2").CPUs(4).Mem("8GiB").Require("rack=r1").AntiAffinity("web"))
	got := Explain(c.State(), "web-2")
	want := api.Explanation{
		Workload: "web-2", State: api.StatePending,
		Summary: "pending: would be placed on h2 (score 50)",
		Hosts: []api.HostVerdict{
			{Host: "h1", Reason: "cpu: needs 4, 2 free"},
			{Host: "h2", Feasible: true, Score: 50, Chosen: true},
			{Host: "h3", Reason: "label rack=r1 not met"},
			{Host: "h4", Reason: "host is not ready"},
			{Host: "h5", Reason: "anti-affinity: web-1 of group web already here"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	c.Run("h2", MakeWorkload("other").CPUs(8))
	got = Explain(c.State(), "web-2")
	if want := "pending: no host fits: cpu (2 hosts), not ready (1 host), label rack=r1 (1 host), anti-affinity group web (1 host)"; got.Summary != want {
		t.Fatalf("summary %q\nwant    %q", got.Summary, want)
	}
	for _, v := range got.Hosts {
		if v.Feasible || v.Chosen || v.Reason == "" {
			t.Errorf("verdict %+v", v)
		}
	}
}

func TestExplainPlaced(t *testing.T) {
	c := MakeCluster(MakeNode("h1").Label("rack", "r1"), MakeNode("h2").Label("rack", "r2"), MakeNode("h3").Label("rack", "r1")).
		Run("h1", MakeWorkload("web-1").CPUs(4).Mem("8GiB").AntiAffinity("web")).
		Run("h3", MakeWorkload("web-2").AntiAffinity("web"))
	got := Explain(c.State(), "web-1")
	want := api.Explanation{
		Workload: "web-1", State: api.StateRunning, Host: "h1",
		Summary: "placed on h1 (score 50)",
		Hosts: []api.HostVerdict{
			{Host: "h1", Feasible: true, Score: 50, Chosen: true},
			{Host: "h2", Feasible: true, Score: 50},
			{Host: "h3", Reason: "anti-affinity: web-2 of group web already here"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}

	// The host no longer meets a constraint added since.
	w := c.st.Workloads["web-1"]
	w.Require = []string{"rack=r2"}
	c.st.Workloads["web-1"] = w
	got = Explain(c.State(), "web-1")
	if want := "placed on h1; it would not be placed there now: label rack=r2 not met"; got.Summary != want || !got.Hosts[0].Chosen {
		t.Fatalf("got %+v", got)
	}
}

func TestExplainPreemptionAndAdmission(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(4)).Run("h1", MakeWorkload("low").CPUs(4).Priority(1)).
		Pending(MakeWorkload("w").CPUs(4).Priority(10))
	if got, want := Explain(c.State(), "w").Summary, "pending: preemption is off; 1 host would fit after stopping lower-priority workloads"; got != want {
		t.Fatalf("summary %q", got)
	}
	c.Settings(preemptOn)
	ex := Explain(c.State(), "w")
	if want := "pending: would be placed on h1 after stopping low (priority 1)"; ex.Summary != want || !ex.Hosts[0].Chosen {
		t.Fatalf("got %+v", ex)
	}
	c = MakeCluster(MakeNode("h1"), MakeNode("h2")).Settings(tolerate(1)).
		Run("h1", MakeWorkload("a").CPUs(4)).Run("h2", MakeWorkload("b").CPUs(4)).
		Pending(MakeWorkload("w").CPUs(4))
	ex = Explain(c.State(), "w")
	if want := "pending: would leave too little room to survive 1 host failure"; ex.Summary != want || !ex.Hosts[0].Feasible {
		t.Fatalf("got %+v", ex)
	}
	if ex := Explain(c.State(), "nope"); ex.Summary != "no such workload" {
		t.Fatalf("got %+v", ex)
	}
}
