package scheduler

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var whatIfNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// orderCluster: h1 runs four workloads of mixed priority and age; h2 has
// room for all of them.
func orderCluster() *ClusterWrapper {
	return MakeCluster(MakeNode("h1"), MakeNode("h2").CPUs(16).Mem("32GiB"), MakeNode("h3").CPUs(1).Mem("1GiB")).
		Run("h1",
			MakeWorkload("d").Priority(10).Created(1),
			MakeWorkload("a").Priority(10).Created(1),
			MakeWorkload("c").Priority(10).Created(0),
			MakeWorkload("b").Priority(500).Created(5),
		).
		Run("h3", MakeWorkload("small").CPUs(1).Mem("1GiB"))
}

func TestWhatIfPlacementOrder(t *testing.T) {
	st := orderCluster().State()
	r, err := WhatIf(st, []string{"h1"}, New(Options{}), whatIfNow, WhatIfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Move{
		{Order: 1, Workload: "b", Priority: 500, From: "h1", To: "h2"},
		{Order: 2, Workload: "c", Priority: 10, From: "h1", To: "h2"},
		{Order: 3, Workload: "a", Priority: 10, From: "h1", To: "h2"},
		{Order: 4, Workload: "d", Priority: 10, From: "h1", To: "h2"},
	}
	if !reflect.DeepEqual(r.Restarts, want) {
		t.Errorf("restarts\n got %+v\nwant %+v", r.Restarts, want)
	}
	if !r.Safe() || len(r.Unplaced) != 0 || len(r.Preemptions) != 0 {
		t.Errorf("not safe: %+v", r)
	}
	if !reflect.DeepEqual(r.Failed, []string{"h1"}) {
		t.Errorf("failed %v", r.Failed)
	}
}

func TestWhatIfUnplacedReasons(t *testing.T) {
	st := MakeCluster(MakeNode("h1"), MakeNode("h2").CPUs(4).Mem("8GiB")).
		Run("h1",
			MakeWorkload("big").CPUs(6).Priority(100),
			MakeWorkload("mid").CPUs(3).Priority(50),
			MakeWorkload("tiny").CPUs(1),
		).
		Run("h2", MakeWorkload("resident").CPUs(1)).
		State()
	r, err := WhatIf(st, []string{"h1"}, nil, whatIfNow, WhatIfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Safe() {
		t.Fatalf("safe, want unplaced: %+v", r)
	}
	got := map[string]string{}
	for _, m := range r.Restarts {
		got[m.Workload] = m.To
	}
	if !reflect.DeepEqual(got, map[string]string{"mid": "h2"}) {
		t.Errorf("restarts %+v", r.Restarts)
	}
	if len(r.Unplaced) != 2 || r.Unplaced[0].Workload != "big" || r.Unplaced[1].Workload != "tiny" {
		t.Fatalf("unplaced %+v", r.Unplaced)
	}
	for _, u := range r.Unplaced {
		if u.From != "h1" || u.Reason == "" {
			t.Errorf("unplaced %+v", u)
		}
	}
	// big is larger than any host that is left; tiny finds h2 full of mid.
	if !strings.Contains(r.Unplaced[0].Reason, "cpu") || !strings.Contains(r.Unplaced[1].Reason, "cpu") {
		t.Errorf("reasons %+v", r.Unplaced)
	}
	// The same plan the engine makes for those pending workloads.
	plan := New(Options{}).Schedule(failedState(st, "h1"), []api.Workload{st.Workloads["big"], st.Workloads["mid"], st.Workloads["tiny"]}, whatIfNow)
	if r.Unplaced[0].Reason != reasons(plan)["big"] || r.Unplaced[1].Reason != reasons(plan)["tiny"] {
		t.Errorf("reasons %+v, engine says %+v", r.Unplaced, plan.Unplaced)
	}
}

// failedState is what recovery leaves: host down, its allocations gone,
// its workloads displaced.
func failedState(st *State, host string) *State {
	c := copyState(st)
	for i := range c.Nodes {
		if c.Nodes[i].Node.Name == host {
			c.Nodes[i].Ready = false
		}
	}
	for name, a := range c.Allocations {
		if a.Host == host {
			delete(c.Allocations, name)
			c.Displaced[name] = true
		}
	}
	return c
}

func TestWhatIfDoesNotMutateInput(t *testing.T) {
	build := func() *State {
		return orderCluster().Settings(func(s *api.Settings) { s.Preemption = true }).
			Displaced("x").Pending(MakeWorkload("waiting").CPUs(64)).State()
	}
	st, pristine := build(), build()
	st.Avoid, pristine.Avoid = map[string]string{"a": "h2"}, map[string]string{"a": "h2"}
	if _, err := WhatIf(st, []string{"h1", "h3"}, nil, whatIfNow, WhatIfOptions{}); err != nil {
		t.Fatal(err)
	}
	WhatIfEach(st, nil, whatIfNow, WhatIfOptions{})
	if !reflect.DeepEqual(st, pristine) {
		t.Errorf("input changed:\n got %+v\nwant %+v", st, pristine)
	}
}

func TestWhatIfPreemptionCascade(t *testing.T) {
	st := MakeCluster(MakeNode("h1").CPUs(2), MakeNode("h2").CPUs(2), MakeNode("h3").CPUs(2)).
		Settings(func(s *api.Settings) { s.Preemption = true }).
		Run("h1", MakeWorkload("high").CPUs(2).Priority(500)).
		Run("h2", MakeWorkload("low").CPUs(2).Priority(10)).
		Run("h3", MakeWorkload("mid").CPUs(2).Priority(100)).
		State()
	r, err := WhatIf(st, []string{"h1"}, nil, whatIfNow, WhatIfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Preemptions) != 1 || r.Preemptions[0].Workload != "low" || r.Preemptions[0].By != "high" || r.Preemptions[0].Host != "h2" {
		t.Fatalf("preemptions %+v", r.Preemptions)
	}
	if want := []Move{{Order: 1, Workload: "high", Priority: 500, From: "h1", To: "h2"}}; !reflect.DeepEqual(r.Restarts, want) {
		t.Errorf("restarts %+v", r.Restarts)
	}
	// low, preempted, is tried again and finds no lower-priority victim.
	if len(r.Unplaced) != 1 || r.Unplaced[0].Workload != "low" || r.Unplaced[0].From != "h2" || r.Unplaced[0].Reason == "" {
		t.Errorf("unplaced %+v", r.Unplaced)
	}
}

func TestWhatIfErrors(t *testing.T) {
	st := orderCluster().State()
	if _, err := WhatIf(st, []string{"h1", "nope"}, nil, whatIfNow, WhatIfOptions{}); !errors.Is(err, ErrUnknownHost) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown host: %v", err)
	}
	if _, err := WhatIf(st, nil, nil, whatIfNow, WhatIfOptions{}); err == nil {
		t.Error("no host: no error")
	}
	// Duplicates count once.
	r, err := WhatIf(st, []string{"h3", "h1", "h3"}, nil, whatIfNow, WhatIfOptions{})
	if err != nil || !reflect.DeepEqual(r.Failed, []string{"h1", "h3"}) || len(r.Restarts) != 5 {
		t.Errorf("%v %+v", err, r)
	}
}

func TestWhatIfExpectedRecovery(t *testing.T) {
	st := orderCluster().State()
	st.Nodes[1].Node.LeaseTTL = api.Duration(5 * time.Second) // h2
	for _, tt := range []struct {
		failed []string
		opts   WhatIfOptions
		want   time.Duration
	}{
		{[]string{"h1"}, WhatIfOptions{}, DefaultLeaseTTL + DefaultFenceAllowance},
		{[]string{"h1"}, WhatIfOptions{FenceAllowance: 10 * time.Second}, 13 * time.Second},
		{[]string{"h1"}, WhatIfOptions{FenceAllowance: -1}, DefaultLeaseTTL},
		{[]string{"h1", "h2"}, WhatIfOptions{}, 7 * time.Second},
	} {
		r, err := WhatIf(st, tt.failed, nil, whatIfNow, tt.opts)
		if err != nil || r.ExpectedRecovery != tt.want {
			t.Errorf("%v %+v: %v %v, want %v", tt.failed, tt.opts, err, r.ExpectedRecovery, tt.want)
		}
	}
}

func TestWhatIfEach(t *testing.T) {
	st := MakeCluster(MakeNode("h1").CPUs(4), MakeNode("h2").CPUs(4), MakeNode("h3").CPUs(4), MakeNode("h4").NotReady(), MakeNode("h5").CPUs(2)).
		Run("h1", MakeWorkload("a").CPUs(3)).
		Run("h2", MakeWorkload("b").CPUs(2)).
		Run("h4", MakeWorkload("stranded")).
		State()
	rs := WhatIfEach(st, nil, whatIfNow, WhatIfOptions{})
	var names []string
	var unsafe []string
	for _, r := range rs {
		names = append(names, r.Failed[0])
		if !r.Safe() {
			unsafe = append(unsafe, r.Failed[0])
		}
	}
	// h3 and h5 run nothing, h4 is not ready.
	if !reflect.DeepEqual(names, []string{"h1", "h2"}) {
		t.Errorf("scenarios %v", names)
	}
	if len(unsafe) != 0 {
		t.Errorf("unsafe %v", unsafe)
	}
	// Fill h3: losing h1 now leaves a without a host of 3 free CPUs.
	st.Workloads["filler"] = MakeWorkload("filler").CPUs(2).Obj()
	st.Allocations["filler"] = api.Allocation{Workload: "filler", Host: "h3", CPUs: 2, Memory: api.GiB}
	unsafe = nil
	for _, r := range WhatIfEach(st, nil, whatIfNow, WhatIfOptions{}) {
		if !r.Safe() {
			unsafe = append(unsafe, r.Failed[0])
		}
	}
	if !reflect.DeepEqual(unsafe, []string{"h1"}) {
		t.Errorf("unsafe %v", unsafe)
	}
}
