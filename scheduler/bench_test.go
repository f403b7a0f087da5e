package scheduler

import (
	"fmt"
	"math/rand"
	"runtime"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// benchCluster builds hosts in 40-host racks, perRun running workloads per
// host on average (placed where they fit), and nPending pending ones: a mix
// of plain workloads, label constraints, preferences and spread
// anti-affinity groups.
func benchCluster(rng *rand.Rand, hosts, perRun, nPending int, preempt bool) (*State, []api.Workload) {
	st := &State{
		Revision:    1,
		Allocations: make(map[string]api.Allocation, hosts*perRun),
		Workloads:   make(map[string]api.Workload, hosts*perRun+nPending),
		Settings:    api.Settings{Strategy: api.StrategyBinpack, Preemption: preempt, ReservedCPUs: 1, ReservedMemory: 2 * api.GiB},
	}
	for i := range hosts {
		n := MakeNode(fmt.Sprintf("host-%05d", i)).CPUs([]int{32, 64, 96}[i%3]).Mem([]string{"128GiB", "256GiB", "384GiB"}[i%3]).
			Label("rack", fmt.Sprintf("rack-%03d", i/40)).Label("zone", fmt.Sprintf("z%d", i%3))
		if i%2 == 0 {
			n.Label("ssd", "true")
		}
		if i%97 == 0 {
			n.NotReady()
		}
		st.Nodes = append(st.Nodes, n.Obj())
	}
	mk := func(name string, i int) api.Workload {
		w := MakeWorkload(name).CPUs(1 + rng.Intn(8)).Mem(fmt.Sprintf("%dGiB", 1+rng.Intn(16))).Priority(100 * rng.Intn(5)).Created(i)
		switch i % 5 {
		case 1:
			w.Require("ssd=true")
		case 2:
			w.Prefer("zone=z1:10")
		case 3:
			w.AntiAffinity(fmt.Sprintf("grp-%d", i%200)).SpreadBy("rack")
		}
		return w.Obj()
	}
	free := make([]int, hosts)
	freeMem := make([]api.ByteSize, hosts)
	for i, n := range st.Nodes {
		free[i], freeMem[i] = Allocatable(n.Node, st.Settings)
	}
	for i := range hosts * perRun {
		w := mk(fmt.Sprintf("run-%06d", i), i)
		w.AntiAffinity, w.SpreadBy = "", ""
		h := rng.Intn(hosts)
		if w.CPUs > free[h] || w.Memory > freeMem[h] {
			continue
		}
		free[h] -= w.CPUs
		freeMem[h] -= w.Memory
		st.Workloads[w.Name] = w
		st.Allocations[w.Name] = api.Allocation{Workload: w.Name, Host: st.Nodes[h].Node.Name, CPUs: w.CPUs, Memory: w.Memory}
	}
	pending := make([]api.Workload, 0, nPending)
	for i := range nPending {
		w := mk(fmt.Sprintf("new-%06d", i), i)
		st.Workloads[w.Name] = w
		pending = append(pending, w)
	}
	return st, pending
}

func benchSchedule(b *testing.B, hosts, perRun, nPending int, settings func(*api.Settings)) {
	rng := rand.New(rand.NewSource(1))
	st, pending := benchCluster(rng, hosts, perRun, nPending, false)
	if settings != nil {
		settings(&st.Settings)
	}
	e := New(Options{})
	b.ReportAllocs()
	b.ResetTimer()
	placed := 0
	for b.Loop() {
		p := e.Schedule(st, pending, time.Time{})
		placed += len(p.Placements)
	}
	if placed == 0 {
		b.Fatal("nothing placed")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(placed), "ns/placement")
	b.ReportMetric(float64(placed)/float64(b.N), "placements/op")
}

func BenchmarkSchedule1kHosts(b *testing.B) { benchSchedule(b, 1000, 3, 1000, nil) }

func BenchmarkSchedule10kHosts(b *testing.B) { benchSchedule(b, 10000, 3, 1000, nil) }

// Spread strategy and failover reservation at 10k hosts.
func BenchmarkSchedule10kHostsSpreadTolerate1(b *testing.B) {
	benchSchedule(b, 10000, 3, 1000, func(s *api.Settings) {
		s.Strategy = api.StrategySpread
		s.TolerateHostFailures = 1
	})
}

// One placement into a big cluster: the per-evaluation index costs too.
func BenchmarkSchedule10kHostsOnePending(b *testing.B) { benchSchedule(b, 10000, 3, 1, nil) }

// BenchmarkSchedule50kWorkloads reports memory per workload for one
// evaluation over about 50,000 workloads (about 45,000 running, 5,000
// pending) on 5,500 hosts: B/workload is what the engine allocates during
// Schedule (index, plan and garbage), state-B/workload what the State the
// server hands it holds, plan-B/workload what stays live afterwards.
func BenchmarkSchedule50kWorkloads(b *testing.B) {
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	st, pending := benchCluster(rand.New(rand.NewSource(1)), 5500, 10, 5000, false)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	total := len(st.Allocations) + len(pending)
	stateBytes := float64(ms1.HeapAlloc-ms0.HeapAlloc) / float64(total)
	e := New(Options{})
	var allocated, retained uint64
	placed := 0
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		p := e.Schedule(st, pending, time.Time{})
		runtime.ReadMemStats(&ms1)
		allocated += ms1.TotalAlloc - ms0.TotalAlloc
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		retained += ms1.HeapAlloc - min(ms0.HeapAlloc, ms1.HeapAlloc)
		placed += len(p.Placements)
		runtime.KeepAlive(p)
	}
	runtime.KeepAlive(st)
	b.ReportMetric(float64(allocated)/float64(b.N)/float64(total), "B/workload")
	b.ReportMetric(stateBytes, "state-B/workload")
	b.ReportMetric(float64(retained)/float64(b.N)/float64(total), "plan-B/workload")
	b.ReportMetric(float64(total), "workloads")
	b.ReportMetric(float64(placed)/float64(b.N), "placements/op")
}
