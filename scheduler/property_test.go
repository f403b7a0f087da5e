package scheduler

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Property tests: random clusters and workloads from a seeded generator,
// checked against invariants written independently of the engine.

type randomCase struct {
	st      *State
	pending []api.Workload
	opts    Options
}

func randomCluster(rng *rand.Rand, preemption bool, tolerate int) randomCase {
	st := &State{
		Revision:    rng.Int63n(1000),
		Allocations: map[string]api.Allocation{},
		Workloads:   map[string]api.Workload{},
		Settings: api.Settings{
			Strategy:             []api.Strategy{"", api.StrategyBinpack, api.StrategySpread}[rng.Intn(3)],
			Preemption:           preemption,
			TolerateHostFailures: tolerate,
			ReservedCPUs:         rng.Intn(2),
			ReservedMemory:       api.ByteSize(rng.Intn(2)) * api.GiB,
		},
	}
	nHosts := 1 + rng.Intn(25)
	for i := range nHosts {
		b := MakeNode(fmt.Sprintf("h%02d", i)).CPUs([]int{2, 4, 8, 16}[rng.Intn(4)]).Mem([]string{"4GiB", "8GiB", "16GiB", "32GiB"}[rng.Intn(4)])
		if r := rng.Intn(4); r > 0 {
			b.Label("rack", fmt.Sprintf("r%d", r))
		}
		if rng.Intn(2) == 0 {
			b.Label("ssd", "true")
		}
		if rng.Intn(10) == 0 {
			b.NotReady()
		}
		st.Nodes = append(st.Nodes, b.Obj())
	}
	rng.Shuffle(len(st.Nodes), func(i, j int) { st.Nodes[i], st.Nodes[j] = st.Nodes[j], st.Nodes[i] })

	requires := []string{"rack=r1", "rack!=r2", "rack in (r1,r3)", "rack notin (r1)", "ssd=true"}
	mk := func(name string) api.Workload {
		w := MakeWorkload(name).CPUs(1 + rng.Intn(6)).Mem(fmt.Sprintf("%dGiB", 1+rng.Intn(8))).
			Priority(100 * rng.Intn(6)).Created(rng.Intn(50))
		if rng.Intn(4) == 0 {
			w.Require(requires[rng.Intn(len(requires))])
		}
		if rng.Intn(4) == 0 {
			w.Prefer(fmt.Sprintf("rack=r%d:%d", 1+rng.Intn(3), 1+rng.Intn(100)))
		}
		if rng.Intn(3) == 0 {
			w.AntiAffinity(fmt.Sprintf("g%d", rng.Intn(3)))
			if rng.Intn(2) == 0 {
				w.SpreadBy("rack")
			}
		}
		return w.Obj()
	}
	// Running workloads, placed where they fit (so that the starting state
	// breaks no invariant).
	tr := NewTracker(st)
	for i := range rng.Intn(40) {
		w := mk(fmt.Sprintf("run%02d", i))
		host := st.Nodes[rng.Intn(len(st.Nodes))].Node.Name
		if ok, _ := tr.Fits(host, &w); !ok {
			continue
		}
		_ = tr.Add(host, &w)
		st.Workloads[w.Name] = w
		st.Allocations[w.Name] = api.Allocation{Workload: w.Name, Host: host, CPUs: w.CPUs, Memory: w.Memory}
	}
	var pending []api.Workload
	for i := range rng.Intn(30) {
		w := mk(fmt.Sprintf("new%02d", i))
		st.Workloads[w.Name] = w
		pending = append(pending, w)
	}
	var opts Options
	if rng.Intn(2) == 0 {
		opts = Options{MinCandidates: 1 + rng.Intn(4), CandidatePercent: 1}
	}
	return randomCase{st: st, pending: pending, opts: opts}
}

// final is the cluster after the plan: allocations by workload name.
func final(st *State, p Plan) map[string]api.Allocation {
	out := map[string]api.Allocation{}
	for k, v := range st.Allocations {
		out[k] = v
	}
	for _, pr := range p.Preemptions {
		delete(out, pr.Workload)
	}
	for _, pl := range p.Placements {
		out[pl.Workload] = api.Allocation{Workload: pl.Workload, Host: pl.Host, CPUs: pl.CPUs, Memory: pl.Memory}
	}
	return out
}

func checkInvariants(t *testing.T, rc randomCase, p Plan) {
	t.Helper()
	st := rc.st
	nodes := map[string]NodeInfo{}
	for _, n := range st.Nodes {
		nodes[n.Node.Name] = n
	}
	if err := Verify(st, p); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	// Every pending workload is accounted for exactly once.
	seen := map[string]int{}
	for _, pl := range p.Placements {
		seen[pl.Workload]++
	}
	for _, u := range p.Unplaced {
		seen[u.Workload]++
	}
	for _, w := range rc.pending {
		if seen[w.Name] != 1 {
			t.Fatalf("%s appears %d times in the plan", w.Name, seen[w.Name])
		}
	}
	fin := final(st, p)
	// No host over its allocatable capacity; no two members of a group on
	// one host.
	cpu, mem := map[string]int{}, map[string]api.ByteSize{}
	groups := map[[2]string]string{}
	for name, a := range fin {
		cpu[a.Host] += a.CPUs
		mem[a.Host] += a.Memory
		if g := st.Workloads[name].AntiAffinity; g != "" {
			if other, dup := groups[[2]string{g, a.Host}]; dup {
				t.Fatalf("%s and %s of group %s both on %s", name, other, g, a.Host)
			}
			groups[[2]string{g, a.Host}] = name
		}
	}
	for h := range cpu {
		n := nodes[h].Node
		if cpu[h] > n.CPUs-st.Settings.ReservedCPUs || mem[h] > n.Memory-st.Settings.ReservedMemory {
			t.Fatalf("%s over capacity: %d cpus, %s used of %d, %s (reserved %d, %s)", h, cpu[h], mem[h], n.CPUs, n.Memory, st.Settings.ReservedCPUs, st.Settings.ReservedMemory)
		}
	}
	// Placements go to ready hosts that meet every constraint.
	for _, pl := range p.Placements {
		n, ok := nodes[pl.Host]
		if !ok || !n.Ready {
			t.Fatalf("%s placed on %s (ready %v)", pl.Workload, pl.Host, n.Ready)
		}
		w := st.Workloads[pl.Workload]
		if _, already := st.Allocations[pl.Workload]; already {
			t.Fatalf("%s was already placed", pl.Workload)
		}
		for _, r := range w.Require {
			c, _ := api.ParseConstraint(r)
			if !c.Matches(n.Node.Labels) {
				t.Fatalf("%s on %s breaks %s", pl.Workload, pl.Host, r)
			}
		}
	}
	// Preemption only when on, only of strictly lower priority, and a
	// victim is not placed again in the same plan.
	placed := where(p)
	for _, pr := range p.Preemptions {
		if !st.Settings.Preemption {
			t.Fatalf("preemption while off: %+v", pr)
		}
		if st.Workloads[pr.Workload].Priority >= st.Workloads[pr.By].Priority {
			t.Fatalf("%s (priority %d) preempted by %s (priority %d)", pr.Workload, st.Workloads[pr.Workload].Priority, pr.By, st.Workloads[pr.By].Priority)
		}
		if placed[pr.By] != pr.Host || placed[pr.Workload] != "" {
			t.Fatalf("preemption %+v but placements %v", pr, placed)
		}
	}
}

// checkNoMissedPreemption: with preemption on, an unplaced workload u could
// not have displaced lower-priority ones anywhere. What u could not touch
// on a host is what it found there with priority >= its own (later
// placements of equal priority excluded).
func checkNoMissedPreemption(t *testing.T, rc randomCase, p Plan) {
	t.Helper()
	st := rc.st
	order := append([]api.Workload(nil), rc.pending...)
	SortPending(order)
	rank := map[string]int{}
	for i, w := range order {
		rank[w.Name] = i
	}
	fin := final(st, p)
	for _, u := range p.Unplaced {
		w := st.Workloads[u.Workload]
		for _, n := range st.Nodes {
			if !n.Ready {
				continue
			}
			ok := true
			for _, r := range w.Require {
				c, _ := api.ParseConstraint(r)
				ok = ok && c.Matches(n.Node.Labels)
			}
			if !ok {
				continue
			}
			cpus, mem := w.CPUs, w.Memory
			blocked, lower := false, false
			for name, a := range fin {
				if a.Host != n.Node.Name {
					continue
				}
				o := st.Workloads[name]
				if r, inPlan := rank[name]; inPlan && r > rank[w.Name] {
					continue
				}
				if o.Priority < w.Priority {
					lower = true
					continue
				}
				cpus += a.CPUs
				mem += a.Memory
				if w.AntiAffinity != "" && o.AntiAffinity == w.AntiAffinity {
					blocked = true
				}
			}
			if lower && !blocked && cpus <= n.Node.CPUs-st.Settings.ReservedCPUs && mem <= n.Node.Memory-st.Settings.ReservedMemory {
				t.Fatalf("%s (priority %d) unplaced (%s) but could preempt on %s", w.Name, w.Priority, u.Reason, n.Node.Name)
			}
		}
	}
}

// checkFailover: with N > 0 and only new workloads, if anything new was
// placed, the final cluster survives losing its N largest ready hosts
// (first-fit decreasing, resources only).
func checkFailover(t *testing.T, rc randomCase, p Plan) {
	t.Helper()
	st := rc.st
	n := st.Settings.TolerateHostFailures
	if n == 0 || len(p.Placements) == 0 {
		return
	}
	type host struct {
		name     string
		cpu      int
		mem      api.ByteSize
		usedCPU  int
		usedMem  api.ByteSize
		holdings []api.Allocation
	}
	var ready []*host
	byName := map[string]*host{}
	for _, ni := range st.Nodes {
		if ni.Ready {
			c, m := Allocatable(ni.Node, st.Settings)
			h := &host{name: ni.Node.Name, cpu: c, mem: m}
			ready = append(ready, h)
			byName[h.name] = h
		}
	}
	for _, a := range final(st, p) {
		if h := byName[a.Host]; h != nil {
			h.usedCPU += a.CPUs
			h.usedMem += a.Memory
			h.holdings = append(h.holdings, a)
		}
	}
	sort.Slice(ready, func(i, j int) bool {
		a, b := ready[i], ready[j]
		if a.cpu != b.cpu {
			return a.cpu > b.cpu
		}
		if a.mem != b.mem {
			return a.mem > b.mem
		}
		return a.name < b.name
	})
	n = min(n, len(ready))
	var items []api.Allocation
	for _, h := range ready[:n] {
		items = append(items, h.holdings...)
	}
	survivors := append([]*host(nil), ready[n:]...)
	sort.Slice(survivors, func(i, j int) bool { return survivors[i].name < survivors[j].name })
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if a.CPUs != b.CPUs {
			return a.CPUs > b.CPUs
		}
		if a.Memory != b.Memory {
			return a.Memory > b.Memory
		}
		return a.Workload < b.Workload
	})
	for _, it := range items {
		ok := false
		for _, s := range survivors {
			if s.usedCPU+it.CPUs <= s.cpu && s.usedMem+it.Memory <= s.mem {
				s.usedCPU += it.CPUs
				s.usedMem += it.Memory
				ok = true
				break
			}
		}
		if !ok {
			t.Fatalf("after the plan, %s could not restart when losing %d hosts", it.Workload, n)
		}
	}
}

// reshuffle returns an equal State with the hosts in another order and the
// maps rebuilt (so iteration order differs).
func reshuffle(rng *rand.Rand, st *State) *State {
	c := *st
	c.Nodes = append([]NodeInfo(nil), st.Nodes...)
	rng.Shuffle(len(c.Nodes), func(i, j int) { c.Nodes[i], c.Nodes[j] = c.Nodes[j], c.Nodes[i] })
	c.Allocations = map[string]api.Allocation{}
	for k, v := range st.Allocations {
		c.Allocations[k] = v
	}
	c.Workloads = map[string]api.Workload{}
	for k, v := range st.Workloads {
		c.Workloads[k] = v
	}
	return &c
}

const propertyRuns = 400

func TestPropertyInvariants(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for i := range propertyRuns {
		preempt := rng.Intn(2) == 0
		tol := 0
		if rng.Intn(3) == 0 {
			tol = 1 + rng.Intn(2)
		}
		rc := randomCluster(rng, preempt, tol)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			before := reshuffle(rng, rc.st)
			e := New(rc.opts)
			p := e.Schedule(rc.st, rc.pending, time.Time{})
			checkInvariants(t, rc, p)
			if preempt && tol == 0 {
				checkNoMissedPreemption(t, rc, p)
			}
			checkFailover(t, rc, p)
			if !reflect.DeepEqual(before.Allocations, rc.st.Allocations) || !reflect.DeepEqual(before.Workloads, rc.st.Workloads) {
				t.Fatal("Schedule modified the state")
			}
			// Determinism: same input (hosts reordered, maps rebuilt), same plan.
			pending := append([]api.Workload(nil), rc.pending...)
			rng.Shuffle(len(pending), func(i, j int) { pending[i], pending[j] = pending[j], pending[i] })
			if p2 := e.Schedule(reshuffle(rng, rc.st), pending, time.Time{}); !reflect.DeepEqual(p, p2) {
				t.Fatalf("not deterministic:\n%+v\n%+v", p, p2)
			}
			// Explain agrees: every placed workload is feasible where it is.
			fin := *rc.st
			fin.Allocations = final(rc.st, p)
			for _, pl := range p.Placements {
				ex := e.Explain(&fin, pl.Workload)
				for _, v := range ex.Hosts {
					if v.Host == pl.Host && (!v.Chosen || !v.Feasible) {
						t.Fatalf("explain %s: %+v", pl.Workload, ex)
					}
				}
			}
		})
	}
}

// TestPropertyLargeWindowed runs the limited scan (candidate window smaller
// than the cluster) on bigger clusters.
func TestPropertyLargeWindowed(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	for i := range 20 {
		st, pending := benchCluster(rng, 300+rng.Intn(300), 2, 200, rng.Intn(2) == 0)
		st.Settings.TolerateHostFailures = rng.Intn(2)
		rc := randomCase{st: st, pending: pending, opts: Options{MinCandidates: 5, CandidatePercent: 1}}
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e := New(rc.opts)
			p := e.Schedule(st, pending, time.Time{})
			checkInvariants(t, rc, p)
			checkFailover(t, rc, p)
			if p2 := e.Schedule(reshuffle(rng, st), pending, time.Time{}); !reflect.DeepEqual(p, p2) {
				t.Fatal("not deterministic")
			}
		})
	}
}
