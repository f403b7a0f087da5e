package scheduler

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

// applyMoves makes a plan's moves on a copy of st, checking each with the
// engine's own checkers first, as the leader does.
func applyMoves(t *testing.T, st *State, moves []RebalanceMove) *State {
	t.Helper()
	out := copyState(st)
	for _, m := range moves {
		if err := CheckRebalanceMove(out, nil, m.Workload, m.From, m.To); err != nil {
			t.Fatalf("move %s %s -> %s: %v", m.Workload, m.From, m.To, err)
		}
		a := out.Allocations[m.Workload]
		a.Host = m.To
		out.Allocations[m.Workload] = a
	}
	return out
}

func plan(t *testing.T, st *State, opts RebalanceOptions) RebalanceResult {
	t.Helper()
	res, err := PlanRebalance(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func moveList(r RebalanceResult) string {
	var s []string
	for _, m := range r.Moves {
		s = append(s, fmt.Sprintf("%s:%s>%s", m.Workload, m.From, m.To))
	}
	return strings.Join(s, " ")
}

// checkIdempotent: once the moves are made, a new plan is empty.
func checkIdempotent(t *testing.T, st *State, r RebalanceResult) *State {
	t.Helper()
	after := applyMoves(t, st, r.Moves)
	if again := plan(t, after, RebalanceOptions{Threshold: r.Threshold}); len(again.Moves) != 0 {
		t.Fatalf("a second plan after %s is not empty: %s (%s)", moveList(r), moveList(again), again.Summary)
	}
	return after
}

// Scenario: a host joins empty; the moves spread the load onto it.
func TestRebalanceHostJoinsEmpty(t *testing.T) {
	c := MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3"))
	for i := range 6 {
		c.Run("h1", MakeWorkload(fmt.Sprintf("a%d", i)))
		c.Run("h2", MakeWorkload(fmt.Sprintf("b%d", i)))
	}
	st := c.State()
	r := plan(t, st, RebalanceOptions{Threshold: 20})
	// h1 and h2 are 75% loaded (6 of 8 CPUs), h3 empty: spread 75.
	if r.Spread != 75 || r.SpreadAfter > 20 || len(r.Moves) == 0 {
		t.Fatalf("plan: spread %v -> %v, %s: %s", r.Spread, r.SpreadAfter, moveList(r), r.Summary)
	}
	for _, m := range r.Moves {
		if m.To != "h3" {
			t.Fatalf("a move goes to %s, not the new host: %s", m.To, moveList(r))
		}
		if !strings.Contains(m.Why, "spread") || !strings.Contains(m.Why, "h3") {
			t.Fatalf("why: %q", m.Why)
		}
	}
	// Deterministic: the same plan every time.
	for range 5 {
		if again := plan(t, st, RebalanceOptions{Threshold: 20}); !reflect.DeepEqual(again, r) {
			t.Fatalf("plans differ:\n%s\n%s", moveList(r), moveList(again))
		}
	}
	checkIdempotent(t, st, r)
}

// Scenario: a host leaves maintenance (it was empty while in maintenance,
// and is not counted then).
func TestRebalanceHostLeavesMaintenance(t *testing.T) {
	build := func(maint bool) *State {
		h3 := MakeNode("h3")
		if maint {
			h3.Maintenance()
		}
		c := MakeCluster(MakeNode("h1"), MakeNode("h2"), h3)
		c.Run("h1", MakeWorkload("a1").CPUs(4), MakeWorkload("a2").CPUs(2))
		c.Run("h2", MakeWorkload("b1").CPUs(4), MakeWorkload("b2").CPUs(2))
		return c.State()
	}
	r := plan(t, build(true), RebalanceOptions{})
	if len(r.Moves) != 0 || r.Spread != 0 || !strings.Contains(r.Summary, "balanced") {
		t.Fatalf("in maintenance, h3 does not count: %s %s", moveList(r), r.Summary)
	}
	if r.Hosts[2].InService || !strings.Contains(r.Hosts[2].Note, "maintenance") {
		t.Fatalf("h3: %+v", r.Hosts[2])
	}
	st := build(false)
	r = plan(t, st, RebalanceOptions{})
	// Smallest first: the 2-CPU workloads go to h3.
	if got := moveList(r); got != "a2:h1>h3 b2:h2>h3" {
		t.Fatalf("moves %q (%s)", got, r.Summary)
	}
	checkIdempotent(t, st, r)
}

func TestRebalanceRespectsConstraintsAndAntiAffinity(t *testing.T) {
	c := MakeCluster(MakeNode("h1").Label("rack", "r1"), MakeNode("h2").Label("rack", "r2"), MakeNode("h3").Label("rack", "r1"))
	c.Run("h1",
		MakeWorkload("pinned").CPUs(2).Require("rack=r1"),
		MakeWorkload("db-1").CPUs(2).AntiAffinity("db"),
		MakeWorkload("web").CPUs(2).Require("rack=r1"))
	c.Run("h3", MakeWorkload("db-2").CPUs(1).AntiAffinity("db"))
	st := c.State()
	r := plan(t, st, RebalanceOptions{Threshold: 10})
	for _, m := range r.Moves {
		switch {
		case m.Workload == "db-1" && m.To == "h3":
			t.Fatalf("anti-affinity broken: %s", moveList(r))
		case (m.Workload == "pinned" || m.Workload == "web") && m.To == "h2":
			t.Fatalf("constraint broken: %s", moveList(r))
		}
	}
	if len(r.Moves) == 0 {
		t.Fatalf("no move: %s", r.Summary)
	}
	checkIdempotent(t, st, r)

	// Nothing may move: the only workload is pinned to its rack.
	c = MakeCluster(MakeNode("h1").Label("rack", "r1"), MakeNode("h2").Label("rack", "r2"))
	c.Run("h1", MakeWorkload("pinned").CPUs(8).Require("rack=r1"))
	r = plan(t, c.State(), RebalanceOptions{})
	if len(r.Moves) != 0 || !strings.Contains(r.Summary, "no move helps") {
		t.Fatalf("%s: %s", moveList(r), r.Summary)
	}
}

func TestRebalanceThreshold(t *testing.T) {
	c := MakeCluster(MakeNode("h1"), MakeNode("h2"))
	for i := range 6 {
		c.Run("h1", MakeWorkload(fmt.Sprintf("w%d", i)))
	}
	st := c.State() // 75% against 0%
	for _, tc := range []struct {
		threshold, moves int
	}{{100, 0}, {75, 0}, {74, 1}, {50, 1}, {30, 2}, {1, 3}} {
		r := plan(t, st, RebalanceOptions{Threshold: tc.threshold})
		if len(r.Moves) != tc.moves {
			t.Errorf("threshold %d: %d moves, want %d: %s (%s)", tc.threshold, len(r.Moves), tc.moves, moveList(r), r.Summary)
		}
		if tc.moves > 0 && r.SpreadAfter > float64(tc.threshold) && tc.threshold > 0 {
			t.Errorf("threshold %d: spread after %v", tc.threshold, r.SpreadAfter)
		}
		checkIdempotent(t, st, r)
	}
	// The threshold comes from the settings by default.
	c.Settings(func(s *api.Settings) { s.RebalanceThreshold = 50 })
	if r := plan(t, c.State(), RebalanceOptions{}); r.Threshold != 50 || len(r.Moves) != 1 {
		t.Fatalf("settings threshold: %d, %s", r.Threshold, moveList(r))
	}
	for _, bad := range []int{-1, 101} {
		if _, err := PlanRebalance(st, RebalanceOptions{Threshold: bad}); err == nil {
			t.Errorf("threshold %d accepted", bad)
		}
	}
}

func TestRebalanceBalancedClusterHasNothingToDo(t *testing.T) {
	c := MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3"))
	c.Run("h1", MakeWorkload("a").CPUs(3))
	c.Run("h2", MakeWorkload("b").CPUs(2))
	c.Run("h3", MakeWorkload("c").CPUs(3))
	r := plan(t, c.State(), RebalanceOptions{})
	if len(r.Moves) != 0 || !strings.Contains(r.Summary, "balanced") || r.Spread != 12.5 {
		t.Fatalf("%s: %s (spread %v)", moveList(r), r.Summary, r.Spread)
	}
	// One host: nothing to balance.
	r = plan(t, MakeCluster(MakeNode("h1")).Run("h1", MakeWorkload("a")).State(), RebalanceOptions{})
	if len(r.Moves) != 0 || !strings.Contains(r.Summary, "1 host is in service") {
		t.Fatalf("%s", r.Summary)
	}
}

// Low priority and small workloads move first; workloads not running,
// being deleted, or on hosts out of service stay.
func TestRebalancePrefersLowPrioritySmallAndRunning(t *testing.T) {
	c := MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3").NotReady())
	c.Run("h1",
		MakeWorkload("big").CPUs(3),
		MakeWorkload("small").CPUs(1),
		MakeWorkload("vip").CPUs(1).Priority(500),
		MakeWorkload("starting").CPUs(1))
	c.Run("h3", MakeWorkload("elsewhere"))
	st := c.State()
	running := map[string]bool{"big": true, "small": true, "vip": true, "elsewhere": true}
	r := plan(t, st, RebalanceOptions{Threshold: 30, Running: running})
	if got := moveList(r); got != "small:h1>h2 big:h1>h2" {
		t.Fatalf("moves %q: %s", got, r.Summary)
	}
	for _, m := range r.Moves {
		if m.To == "h3" || m.Workload == "starting" || m.Workload == "vip" {
			t.Fatalf("bad move %+v", m)
		}
	}
	w := st.Workloads["small"]
	w.Deleting = true
	st.Workloads["small"] = w
	if got := moveList(plan(t, st, RebalanceOptions{Threshold: 30, Running: running})); strings.Contains(got, "small") {
		t.Fatalf("a workload being deleted moves: %s", got)
	}
}

// Never to a host that ends up more loaded than the source was: a host
// with one large workload and an empty small host stay as they are.
func TestRebalanceNeverOverloadsTheTarget(t *testing.T) {
	c := MakeCluster(MakeNode("big").CPUs(16), MakeNode("small").CPUs(4))
	c.Run("big", MakeWorkload("w").CPUs(8))
	r := plan(t, c.State(), RebalanceOptions{Threshold: 10})
	// big is 50% loaded; on small, w (8 CPUs) would not even fit, and a
	// 4-CPU host at 100% would be more loaded than 50%.
	if len(r.Moves) != 0 {
		t.Fatalf("%s", moveList(r))
	}
	c = MakeCluster(MakeNode("big").CPUs(16), MakeNode("small").CPUs(4))
	c.Run("big", MakeWorkload("w1").CPUs(3), MakeWorkload("w2").CPUs(5))
	r = plan(t, c.State(), RebalanceOptions{Threshold: 10})
	for _, m := range r.Moves {
		if m.ToAfter >= m.FromLoad {
			t.Fatalf("target more loaded than the source was: %+v", m)
		}
	}
}

func TestRebalanceMaxMoves(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(64).Mem("256GiB"), MakeNode("h2").CPUs(64).Mem("256GiB"))
	for i := range 60 {
		c.Run("h1", MakeWorkload(fmt.Sprintf("w%02d", i)))
	}
	r := plan(t, c.State(), RebalanceOptions{Threshold: 1, MaxMoves: 5})
	if len(r.Moves) != 5 || !strings.Contains(r.Summary, "stops at 5 moves") {
		t.Fatalf("%d moves: %s", len(r.Moves), r.Summary)
	}
	if r := plan(t, c.State(), RebalanceOptions{Threshold: 1}); len(r.Moves) != DefaultRebalanceMaxMoves {
		t.Fatalf("default bound: %d moves", len(r.Moves))
	}
}

// Random clusters: every plan is valid move by move (the engine's checks),
// never raises the spread, respects anti-affinity and constraints, and is
// idempotent unless it stopped at its move bound.
func TestRebalanceRandomClusters(t *testing.T) {
	for seed := range 60 {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		nh := 2 + rng.IntN(6)
		var nodes []*NodeWrapper
		for i := range nh {
			n := MakeNode(fmt.Sprintf("h%d", i+1)).CPUs(4+4*rng.IntN(4)).Mem(fmt.Sprintf("%dGiB", 8+8*rng.IntN(3))).Label("rack", fmt.Sprintf("r%d", rng.IntN(2)))
			switch rng.IntN(10) {
			case 0:
				n.Maintenance()
			case 1:
				n.NotReady()
			}
			nodes = append(nodes, n)
		}
		c := MakeCluster(nodes...)
		// Place workloads first-fit on random hosts (as an unbalanced
		// history would), through a tracker so that they fit.
		for i := range 6 + rng.IntN(30) {
			w := MakeWorkload(fmt.Sprintf("w%d", i)).CPUs(1 + rng.IntN(3)).Mem(fmt.Sprintf("%dMiB", 256*(1+rng.IntN(8)))).Priority(rng.IntN(3) * 100)
			switch rng.IntN(6) {
			case 0:
				w.AntiAffinity(fmt.Sprintf("g%d", rng.IntN(2)))
			case 1:
				w.Require(fmt.Sprintf("rack=r%d", rng.IntN(2)))
			}
			obj := w.Obj()
			tr := NewTracker(c.State())
			skew := rng.IntN(2) // half the clusters pile onto the first hosts
			for k := range nh {
				h := fmt.Sprintf("h%d", (k+skew*rng.IntN(nh))%nh+1)
				if ok, _ := tr.Fits(h, &obj); ok {
					c.Run(h, w)
					break
				}
			}
		}
		st := c.State()
		threshold := 5 + rng.IntN(40)
		r := plan(t, st, RebalanceOptions{Threshold: threshold})
		if r.SpreadAfter > r.Spread+1e-6 {
			t.Fatalf("seed %d: spread rose %v -> %v", seed, r.Spread, r.SpreadAfter)
		}
		after := applyMoves(t, st, r.Moves)
		if err := Verify(after, Plan{}); err != nil {
			t.Fatal(err)
		}
		tr := NewTracker(after)
		for h := range tr.nodes {
			if tr.freeCPU[h] < 0 || tr.freeMem[h] < 0 {
				t.Fatalf("seed %d: %s overcommitted", seed, tr.nodes[h].Node.Name)
			}
		}
		groups := map[string]bool{}
		for name, a := range after.Allocations {
			w := after.Workloads[name]
			if w.AntiAffinity != "" {
				k := w.AntiAffinity + "@" + a.Host
				if groups[k] && st.Allocations[name].Host != a.Host {
					t.Fatalf("seed %d: anti-affinity %s broken by a move", seed, k)
				}
				groups[k] = true
			}
		}
		if len(r.Moves) < DefaultRebalanceMaxMoves {
			if again := plan(t, after, RebalanceOptions{Threshold: threshold}); len(again.Moves) != 0 {
				t.Fatalf("seed %d: not idempotent: %s then %s", seed, moveList(r), moveList(again))
			}
		}
	}
}

// A workload a floating IP follows is moved only after the others.
func TestRebalanceMovesFloatingIPHoldersLast(t *testing.T) {
	c := MakeCluster(MakeNode("h1"), MakeNode("h2"))
	for i := range 4 {
		c.Run("h1", MakeWorkload(fmt.Sprintf("a%d", i)))
	}
	st := c.State()
	st.VIPs = map[string]api.VIP{"192.0.2.80": {VIPSpec: api.VIPSpec{Address: "192.0.2.80/24", Interface: "eth0", Workload: "a0"}}}
	for name, n := range st.Nodes {
		n.Node.Interfaces = []string{"eth0"}
		st.Nodes[name] = n
	}
	r := plan(t, st, RebalanceOptions{Threshold: 20})
	if len(r.Moves) == 0 {
		t.Fatalf("no moves: %s", r.Summary)
	}
	for _, m := range r.Moves {
		if m.Workload == "a0" {
			t.Fatalf("moved a0, which a floating IP follows, while others could go: %s", moveList(r))
		}
	}
}
