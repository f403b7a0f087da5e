package scheduler

import (
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

func TestFitsDeprecated(t *testing.T) {
	n := MakeNode("h1").CPUs(4).Mem("8GiB").Obj()
	if ok, why := Fits(n, Usage{CPUs: 2, Memory: 4 * api.GiB}, 2, 4*api.GiB); !ok {
		t.Fatalf("exact fit rejected: %s", why)
	}
	if ok, why := Fits(n, Usage{CPUs: 2}, 4, api.GiB); ok || why != "cpu: needs 4, 2 free" {
		t.Fatalf("cpu: %v %q", ok, why)
	}
	if ok, why := Fits(MakeNode("h2").NotReady().Obj(), Usage{}, 1, api.GiB); ok || why != "host is not ready" {
		t.Fatalf("not ready: %v %q", ok, why)
	}
}

// TestCheckers covers every checker and every reason it gives, through
// Tracker.Fits, the check the plan applier runs.
func TestCheckers(t *testing.T) {
	base := func() *ClusterWrapper {
		return MakeCluster(
			MakeNode("h1").CPUs(4).Mem("8GiB").Label("rack", "r1").Label("ssd", "true"),
			MakeNode("h2").CPUs(4).Mem("8GiB").Label("rack", "r2"),
			MakeNode("h3").CPUs(4).Mem("8GiB"),
			MakeNode("down").NotReady(),
		)
	}
	tests := []struct {
		name    string
		cluster *ClusterWrapper
		host    string
		w       *WorkloadWrapper
		want    string // "" = fits
	}{
		{"fits", base(), "h1", MakeWorkload("w"), ""},
		{"exact fit", base().Run("h1", MakeWorkload("a").CPUs(2).Mem("4GiB")), "h1", MakeWorkload("w").CPUs(2).Mem("4GiB"), ""},
		{"not ready", base(), "down", MakeWorkload("w"), "host is not ready"},
		{"unknown host", base(), "nope", MakeWorkload("w"), "host nope is not registered"},
		{"cpu", base().Run("h1", MakeWorkload("a").CPUs(2)), "h1", MakeWorkload("w").CPUs(4), "cpu: needs 4, 2 free"},
		{"memory", base().Run("h1", MakeWorkload("a").Mem("7GiB")), "h1", MakeWorkload("w").Mem("2GiB"), "memory: needs 2GiB, 1GiB free"},
		{"cpu and memory", base().Run("h1", MakeWorkload("a").CPUs(4).Mem("8GiB")), "h1", MakeWorkload("w"), "cpu: needs 1, 0 free; memory: needs 1GiB, 0B free"},
		{"overcommitted shows 0 free", base().Run("h1", MakeWorkload("a").CPUs(6)), "h1", MakeWorkload("w"), "cpu: needs 1, 0 free"},
		{"reserved cpus", base().Settings(func(s *api.Settings) { s.ReservedCPUs = 2 }).Run("h1", MakeWorkload("a")), "h1", MakeWorkload("w").CPUs(2), "cpu: needs 2, 1 free"},
		{"reserved memory", base().Settings(func(s *api.Settings) { s.ReservedMemory = 6 * api.GiB }), "h1", MakeWorkload("w").Mem("3GiB"), "memory: needs 3GiB, 2GiB free"},
		{"label =", base(), "h2", MakeWorkload("w").Require("rack=r1"), "label rack=r1 not met"},
		{"label = missing", base(), "h3", MakeWorkload("w").Require("rack=r1"), "label rack=r1 not met"},
		{"label = ok", base(), "h1", MakeWorkload("w").Require("rack=r1"), ""},
		{"label !=", base(), "h1", MakeWorkload("w").Require("rack!=r1"), "label rack!=r1 not met"},
		{"label != missing ok", base(), "h3", MakeWorkload("w").Require("rack!=r1"), ""},
		{"label in", base(), "h3", MakeWorkload("w").Require("rack in (r1,r2)"), "label rack in (r1,r2) not met"},
		{"label in ok", base(), "h2", MakeWorkload("w").Require("rack in (r1,r2)"), ""},
		{"label in unknown value", base(), "h2", MakeWorkload("w").Require("rack in (r9)"), "label rack in (r9) not met"},
		{"label notin", base(), "h2", MakeWorkload("w").Require("rack notin (r2,r3)"), "label rack notin (r2,r3) not met"},
		{"label notin missing ok", base(), "h3", MakeWorkload("w").Require("rack notin (r2)"), ""},
		{"first unmet label", base(), "h2", MakeWorkload("w").Require("rack=r2", "ssd=true"), "label ssd=true not met"},
		{"anti-affinity", base().Run("h1", MakeWorkload("web-2").AntiAffinity("web"), MakeWorkload("web-1").AntiAffinity("web")), "h1", MakeWorkload("web-3").AntiAffinity("web"), "anti-affinity: web-1 of group web already here"},
		{"anti-affinity other group", base().Run("h1", MakeWorkload("db-1").AntiAffinity("db")), "h1", MakeWorkload("web-3").AntiAffinity("web"), ""},
		{"already placed", base().Run("h2", MakeWorkload("w")), "h1", MakeWorkload("w"), "w is already placed on h2"},
		{"invalid placement", base(), "h1", MakeWorkload("w").SpreadBy("rack"), "invalid placement: spread-by spreads the members of an anti-affinity group: set anti-affinity too"},
		// The stack's order: ready, labels, anti-affinity, resources.
		{"ready before labels", base(), "down", MakeWorkload("w").Require("rack=r1"), "host is not ready"},
		{"labels before resources", base(), "h2", MakeWorkload("w").CPUs(64).Require("rack=r1"), "label rack=r1 not met"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(tc.cluster.State())
			w := tc.w.Obj()
			ok, why := tr.Fits(tc.host, &w)
			if ok != (tc.want == "") || why != tc.want {
				t.Fatalf("Fits = %v %q, want %q", ok, why, tc.want)
			}
		})
	}
}

// TestLabelMatchAgreesWithAPI checks the compiled constraint against
// api.Constraint.Matches on random labels.
func TestLabelMatchAgreesWithAPI(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	vals := []string{"a", "b", "c"}
	exprs := []string{"k=a", "k!=a", "k in (a,b)", "k notin (a,b)", "k in (z)", "k notin (z)", "k=z", "k!=z"}
	var nodes []*NodeWrapper
	for i := range 40 {
		n := MakeNode(string(rune('a'+i%26)) + strings.Repeat("x", i/26))
		if rng.Intn(4) > 0 {
			n.Label("k", vals[rng.Intn(len(vals))])
		}
		nodes = append(nodes, n)
	}
	tr := NewTracker(MakeCluster(nodes...).State())
	for _, e := range exprs {
		w := MakeWorkload("w").Require(e).Obj()
		c, err := tr.candidate(&w, false)
		if err != nil {
			t.Fatal(err)
		}
		con, _ := api.ParseConstraint(e)
		for h, ni := range tr.nodes {
			if got, want := c.require[0].ok(h), con.Matches(ni.Node.Labels); got != want {
				t.Errorf("%s on %v: compiled %v, api %v", e, ni.Node.Labels, got, want)
			}
		}
	}
}

func TestTrackerAddRemove(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(4).Mem("4GiB"), MakeNode("h2").CPUs(4).Mem("4GiB")).
		Run("h1", MakeWorkload("web-1").CPUs(2).AntiAffinity("web"))
	tr := NewTracker(c.State())
	w := MakeWorkload("web-2").CPUs(2).AntiAffinity("web").Obj()
	if ok, why := tr.Fits("h1", &w); ok || why != "anti-affinity: web-1 of group web already here" {
		t.Fatalf("Fits = %v %q", ok, why)
	}
	if !tr.Remove("web-1") || tr.Remove("web-1") {
		t.Fatal("Remove should succeed once")
	}
	if ok, why := tr.Fits("h1", &w); !ok {
		t.Fatalf("after Remove: %s", why)
	}
	if err := tr.Add("h1", &w); err != nil {
		t.Fatal(err)
	}
	if err := tr.Add("h2", &w); err == nil {
		t.Fatal("Add twice should fail")
	}
	if cpus, mem, _ := tr.Free("h1"); cpus != 2 || mem != 3*api.GiB {
		t.Fatalf("free = %d %s", cpus, mem)
	}
	w3 := MakeWorkload("web-3").AntiAffinity("web").Obj()
	if ok, _ := tr.Fits("h1", &w3); ok {
		t.Fatal("web-3 must not join web-2 on h1")
	}
	if ok, why := tr.Fits("h2", &w3); !ok {
		t.Fatal(why)
	}
	// The State is not modified.
	if len(c.State().Allocations) != 1 || c.State().Allocations["web-1"].Host != "h1" {
		t.Fatal("tracker modified the state")
	}
}

func TestUnplacedReasons(t *testing.T) {
	tests := []struct {
		name    string
		cluster *ClusterWrapper
		want    string
	}{
		{"no hosts", MakeCluster().Pending(MakeWorkload("w")), "no hosts are registered"},
		{"too many cpus", MakeCluster(MakeNode("h1").CPUs(32), MakeNode("h2").CPUs(16)).Pending(MakeWorkload("w").CPUs(64)),
			"larger than every host: needs 64 cpus (at most 32 allocatable)"},
		{"too much memory", MakeCluster(MakeNode("h1").Mem("64GiB")).Pending(MakeWorkload("w").Mem("512GiB")),
			"larger than every host: needs 512GiB memory (at most 64GiB allocatable)"},
		{"both", MakeCluster(MakeNode("h1")).Pending(MakeWorkload("w").CPUs(9).Mem("17GiB")),
			"larger than every host: needs 9 cpus and 17GiB memory (at most 8 cpus and 16GiB allocatable)"},
		{"not on one host", MakeCluster(MakeNode("h1").CPUs(16).Mem("8GiB"), MakeNode("h2").CPUs(8).Mem("16GiB")).Pending(MakeWorkload("w").CPUs(12).Mem("12GiB")),
			"larger than every host: needs 12 cpus and 12GiB memory on one host"},
		{"reservation makes it too large", MakeCluster(MakeNode("h1").CPUs(8)).Settings(func(s *api.Settings) { s.ReservedCPUs = 2 }).Pending(MakeWorkload("w").CPUs(8)),
			"larger than every host: needs 8 cpus (at most 6 allocatable)"},
		{"no host fits", MakeCluster(
			MakeNode("h1").CPUs(4), MakeNode("h2").CPUs(4), MakeNode("h3").CPUs(4), MakeNode("h4").NotReady()).
			Run("h1", MakeWorkload("a").CPUs(3)).Run("h2", MakeWorkload("b").CPUs(3)).Run("h3", MakeWorkload("web-1").AntiAffinity("web")).
			Pending(MakeWorkload("web-2").CPUs(2).AntiAffinity("web")),
			"no host fits: cpu (2 hosts), not ready (1 host), anti-affinity group web (1 host)"},
		{"labels", MakeCluster(MakeNode("h1").Label("rack", "r2"), MakeNode("h2").Label("rack", "r2"), MakeNode("h3").Label("rack", "r1")).
			Run("h3", MakeWorkload("a").CPUs(8).Mem("16GiB")).Pending(MakeWorkload("w").Require("rack=r1")),
			"no host fits: label rack=r1 (2 hosts), cpu and memory (1 host)"},
		{"invalid", MakeCluster(MakeNode("h1")).Pending(MakeWorkload("w").Require("rack")),
			`invalid placement: constraint "rack": no operator (use key=value, key!=value, 'key in (a,b)' or 'key notin (a,b)')`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.cluster.Schedule()
			if len(p.Placements) != 0 || len(p.Unplaced) != 1 {
				t.Fatalf("plan = %+v", p)
			}
			if got := p.Unplaced[0].Reason; got != tc.want {
				t.Fatalf("reason = %q\nwant     %q", got, tc.want)
			}
		})
	}
}

func TestNoFitReasonIsBounded(t *testing.T) {
	c := MakeCluster(
		MakeNode("h1").Label("a", "1").Label("rack", "x"), MakeNode("h2").Label("rack", "x"),
		MakeNode("h3").Label("rack", "r1").Label("b", "1"), MakeNode("h4").Label("rack", "r1").Label("c", "1"),
		MakeNode("h5").Label("rack", "r1").Label("c", "2"), MakeNode("h6").NotReady(),
	).Pending(MakeWorkload("w").Require("rack=r1", "b!=1", "c!=1", "c!=2"))
	got := c.Schedule().Unplaced[0].Reason
	want := "no host fits: label rack=r1 (2 hosts), not ready (1 host), label b!=1 (1 host), label c!=1 (1 host), 1 more reasons"
	if got != want {
		t.Fatalf("reason = %q\nwant     %q", got, want)
	}
}

func TestStrategies(t *testing.T) {
	mk := func(strategy api.Strategy) *ClusterWrapper {
		return MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3")).
			Settings(func(s *api.Settings) { s.Strategy = strategy }).
			Run("h1", MakeWorkload("a").CPUs(2).Mem("4GiB")).
			Run("h3", MakeWorkload("b").CPUs(6).Mem("12GiB")).
			Pending(MakeWorkload("w").CPUs(2).Mem("4GiB"))
	}
	for _, tc := range []struct {
		strategy api.Strategy
		want     string
		score    float64
	}{
		{"", "h3", 100},                  // binpack by default: fills h3 to the brim
		{api.StrategyBinpack, "h3", 100}, //
		{api.StrategySpread, "h2", 75},   // the empty host: 2/8 used after
	} {
		p := mk(tc.strategy).Schedule()
		if len(p.Placements) != 1 || p.Placements[0].Host != tc.want || p.Placements[0].Score != tc.score {
			t.Errorf("%q: placements = %+v, want %s (score %v)", tc.strategy, p.Placements, tc.want, tc.score)
		}
	}
}

func TestBinpackFillsHostsInTurn(t *testing.T) {
	c := MakeCluster(hosts("h", 3, nil)...)
	for i := range 6 {
		c.Pending(MakeWorkload(string(rune('a' + i))).CPUs(4).Mem("8GiB").Created(i))
	}
	got := where(c.Schedule())
	want := map[string]string{"a": "h1", "b": "h1", "c": "h2", "d": "h2", "e": "h3", "f": "h3"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestSpreadStrategyEvensOut(t *testing.T) {
	c := MakeCluster(hosts("h", 3, nil)...).Settings(func(s *api.Settings) { s.Strategy = api.StrategySpread })
	for i := range 6 {
		c.Pending(MakeWorkload(string(rune('a' + i))).CPUs(1).Created(i))
	}
	count := map[string]int{}
	for _, h := range where(c.Schedule()) {
		count[h]++
	}
	if count["h1"] != 2 || count["h2"] != 2 || count["h3"] != 2 {
		t.Fatalf("per host = %v", count)
	}
}

func TestPreferences(t *testing.T) {
	nodes := func() *ClusterWrapper {
		return MakeCluster(
			MakeNode("h1").Label("disk", "hdd").Label("zone", "a"),
			MakeNode("h2").Label("disk", "ssd").Label("zone", "b"),
			MakeNode("h3").Label("disk", "ssd").Label("zone", "a"),
		).Run("h1", MakeWorkload("big").CPUs(6).Mem("12GiB"))
	}
	tests := []struct {
		name   string
		prefer []string
		want   string
	}{
		{"none: binpack picks the full host", nil, "h1"},
		{"preference beats binpack", []string{"disk=ssd"}, "h2"},
		{"all preferences met", []string{"disk=ssd", "zone=a"}, "h3"},
		{"heavier preference wins", []string{"disk=ssd:1", "zone=b:10"}, "h2"},
		{"unknown value changes nothing", []string{"disk=nvme:100"}, "h1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := nodes().Pending(MakeWorkload("w").Prefer(tc.prefer...)).Schedule()
			if got := where(p)["w"]; got != tc.want {
				t.Fatalf("placed on %q, want %s", got, tc.want)
			}
		})
	}
}

func TestSpreadBy(t *testing.T) {
	// Rack r1's hosts are fuller, so binpack alone would stack the group
	// there; spread-by must keep the racks within one member of each other.
	var nodes []*NodeWrapper
	for r := 1; r <= 3; r++ {
		for i := 1; i <= 3; i++ {
			nodes = append(nodes, MakeNode("r"+string(rune('0'+r))+"h"+string(rune('0'+i))).Label("rack", "r"+string(rune('0'+r))))
		}
	}
	for members := 1; members <= 9; members++ {
		c := MakeCluster(nodes...)
		for _, n := range []string{"r1h1", "r1h2", "r1h3"} {
			c.Run(n, MakeWorkload("filler-"+n).CPUs(4))
		}
		for i := range members {
			c.Pending(MakeWorkload("web-" + string(rune('a'+i))).AntiAffinity("web").SpreadBy("rack").Created(i))
		}
		p := c.Schedule()
		if len(p.Placements) != members {
			t.Fatalf("%d members: plan %+v", members, p)
		}
		per := map[string]int{}
		for _, pl := range p.Placements {
			per[pl.Host[:2]]++
		}
		lo, hi := members, 0
		for _, r := range []string{"r1", "r2", "r3"} {
			lo, hi = min(lo, per[r]), max(hi, per[r])
		}
		if hi-lo > 1 {
			t.Errorf("%d members: per rack %v", members, per)
		}
	}

	// Hosts without the label are the last resort, and existing members count.
	c := MakeCluster(MakeNode("a1").Label("rack", "a"), MakeNode("a2").Label("rack", "a"), MakeNode("b1").Label("rack", "b"), MakeNode("x")).
		Run("b1", MakeWorkload("web-1").AntiAffinity("web")).
		Pending(MakeWorkload("web-2").AntiAffinity("web").SpreadBy("rack").Created(1), MakeWorkload("web-3").AntiAffinity("web").SpreadBy("rack").Created(2), MakeWorkload("web-4").AntiAffinity("web").SpreadBy("rack").Created(3))
	got := where(c.Schedule())
	if got["web-2"][:1] != "a" || got["web-3"][:1] != "a" || got["web-4"] != "x" {
		t.Fatalf("got %v", got)
	}
}

func TestPriorityOrdering(t *testing.T) {
	// Room for one: the highest priority wins, then the oldest, then the name.
	tests := []struct {
		name string
		ws   []*WorkloadWrapper
		want string
	}{
		{"priority", []*WorkloadWrapper{MakeWorkload("a").Priority(1).Created(0), MakeWorkload("b").Priority(900).Created(5), MakeWorkload("c").Created(1)}, "b"},
		{"age", []*WorkloadWrapper{MakeWorkload("a").Priority(5).Created(9), MakeWorkload("b").Priority(5).Created(3), MakeWorkload("c").Priority(5).Created(4)}, "b"},
		{"name", []*WorkloadWrapper{MakeWorkload("c").Created(1), MakeWorkload("a").Created(1), MakeWorkload("b").Created(1)}, "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := MakeCluster(MakeNode("h1").CPUs(8)).Pending(tc.ws...)
			for i := range c.pending {
				c.pending[i].CPUs = 8
			}
			p := c.Schedule()
			if len(p.Placements) != 1 || p.Placements[0].Workload != tc.want {
				t.Fatalf("placements %+v, want %s", p.Placements, tc.want)
			}
			if len(p.Unplaced) != 2 || p.Unplaced[0].Reason != "no host fits: cpu (1 host)" {
				t.Fatalf("unplaced %+v", p.Unplaced)
			}
		})
	}
}

func TestScheduleSkips(t *testing.T) {
	c := MakeCluster(MakeNode("h1")).Run("h1", MakeWorkload("placed"))
	w := MakeWorkload("gone").Obj()
	w.Deleting = true
	c.pending = append(c.pending, c.st.Workloads["placed"], w, MakeWorkload("dup").Obj(), MakeWorkload("dup").Obj())
	p := c.Schedule()
	if len(p.Placements) != 1 || p.Placements[0].Workload != "dup" || len(p.Unplaced) != 0 {
		t.Fatalf("plan %+v", p)
	}
}

func TestNotReadyHostsGetNothing(t *testing.T) {
	c := MakeCluster(MakeNode("h1").NotReady(), MakeNode("h2").CPUs(2)).
		Pending(MakeWorkload("a").Created(1), MakeWorkload("b").Created(2), MakeWorkload("c").Created(3))
	p := c.Schedule()
	if got := where(p); len(got) != 2 || got["a"] != "h2" || got["b"] != "h2" {
		t.Fatalf("placements %v", got)
	}
	if r := reasons(p)["c"]; r != "no host fits: not ready (1 host), cpu (1 host)" {
		t.Fatalf("reason %q", r)
	}
}

func TestVerify(t *testing.T) {
	c := MakeCluster(MakeNode("h1").CPUs(4), MakeNode("h2").CPUs(4).Label("rack", "r2")).
		Run("h1", MakeWorkload("low").CPUs(4).Priority(1)).
		Pending(MakeWorkload("w").CPUs(4).Require("rack=r2"))
	st := c.State()
	good := c.Schedule()
	if err := Verify(st, good); err != nil {
		t.Fatalf("engine plan rejected: %v", err)
	}
	bad := []struct {
		plan Plan
		want string
	}{
		{Plan{Placements: []Placement{{Workload: "w", Host: "h1", CPUs: 4, Memory: api.GiB}}}, "plan places w on h1, but it does not fit: label rack=r2 not met"},
		{Plan{Placements: []Placement{{Workload: "w", Host: "h2", CPUs: 1, Memory: api.GiB}}}, "plan places w with 1 cpus and 1GiB, but it needs 4 and 1GiB"},
		{Plan{Placements: []Placement{{Workload: "x", Host: "h2"}}}, "plan places x, which does not exist"},
		{Plan{Preemptions: []Preemption{{Workload: "low", Host: "h2", By: "w"}}}, "plan preempts low on h2, but it is on h1"},
		{Plan{Preemptions: []Preemption{{Workload: "w", Host: "h2", By: "low"}}}, "plan preempts w, which is not placed"},
		{Plan{Preemptions: []Preemption{{Workload: "low", Host: "h1", By: "low"}}}, "plan preempts low for low, which may not preempt it"},
	}
	for _, b := range bad {
		if err := Verify(st, b.plan); err == nil || err.Error() != b.want {
			t.Errorf("Verify = %v, want %q", err, b.want)
		}
	}
}

func TestTrackerLazyIndexes(t *testing.T) {
	c := MakeCluster(MakeNode("h1"), MakeNode("h2"), MakeNode("h3")).
		Run("h1", MakeWorkload("web-1").AntiAffinity("web")).
		Run("gone", MakeWorkload("orphan").CPUs(2)) // on an unregistered host
	tr := NewTracker(c.State())

	// Members added before the group is first checked still count.
	w2 := MakeWorkload("web-2").AntiAffinity("web").Obj()
	if err := tr.Add("h2", &w2); err != nil {
		t.Fatal(err)
	}
	w3 := MakeWorkload("web-3").AntiAffinity("web").Obj()
	for host, want := range map[string]string{
		"h1": "anti-affinity: web-1 of group web already here",
		"h2": "anti-affinity: web-2 of group web already here",
		"h3": "",
	} {
		if ok, why := tr.Fits(host, &w3); ok != (want == "") || why != want {
			t.Errorf("%s: %v %q, want %q", host, ok, why, want)
		}
	}
	// Removal after indexing frees the host; re-adding takes it again.
	if !tr.Remove("web-1") {
		t.Fatal("remove web-1")
	}
	if ok, why := tr.Fits("h1", &w3); !ok {
		t.Fatal(why)
	}
	w1 := c.st.Workloads["web-1"]
	if err := tr.Add("h1", &w1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := tr.Fits("h1", &w3); ok {
		t.Fatal("web-1 is back on h1")
	}
	// A member removed before its group is indexed does not count.
	tr2 := NewTracker(c.State())
	tr2.Remove("web-1")
	if ok, why := tr2.Fits("h1", &w3); !ok {
		t.Fatal(why)
	}
	// Allocations on unregistered hosts are known but take no room.
	o := MakeWorkload("orphan").Obj()
	if ok, why := tr.Fits("h3", &o); ok || why != "orphan is already placed on an unregistered host" {
		t.Fatalf("%v %q", ok, why)
	}
	if !tr.Remove("orphan") || tr.Remove("orphan") {
		t.Fatal("remove orphan once")
	}
	if ok, why := tr.Fits("h3", &o); !ok {
		t.Fatal(why)
	}
}
