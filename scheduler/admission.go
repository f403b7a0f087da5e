package scheduler

import (
	"fmt"
	"sort"

	"github.com/bulwarkhq/bulwark/api"
)

// Admission control keeps room to fail over. With TolerateHostFailures = N,
// a new workload is placed only if the cluster could still restart every
// placed workload after losing its N largest hosts.
//
// The test is a simulation, and it looks at resources only: take the N
// largest ready hosts by allocatable capacity (CPUs, then memory, then name)
// away, and place every workload they hold, largest first (CPUs, then
// memory), on the first surviving ready host, by name, with enough free CPU
// and memory (first-fit decreasing). Label constraints and anti-affinity are
// not simulated, so the reservation is an estimate: it can be too small
// when constraints pin workloads, and first-fit decreasing can miss packings
// that exist. Allocations on hosts that are not ready are left to the
// failover that is already due for them. Hosts in maintenance may be lost
// but take nothing in the simulation. Workloads already placed are never
// evicted by admission control; displaced ones (State.Displaced) are not
// held back by it.

// simItem is one workload to restart in the simulation.
type simItem struct {
	cpus int
	mem  api.ByteSize
	name string
}

// initLost picks the N largest ready hosts, once per tracker.
func (t *Tracker) initLost() {
	if t.lostReady {
		return
	}
	t.lostReady = true
	n := t.settings.TolerateHostFailures
	t.lost = make([]bool, len(t.nodes))
	byCap := append([]int32(nil), t.readyList...)
	sort.SliceStable(byCap, func(i, j int) bool {
		a, b := byCap[i], byCap[j]
		if t.capCPU[a] != t.capCPU[b] {
			return t.capCPU[a] > t.capCPU[b]
		}
		if t.capMem[a] != t.capMem[b] {
			return t.capMem[a] > t.capMem[b]
		}
		return a < b
	})
	n = min(max(n, 0), len(byCap))
	t.lostList = byCap[:n]
	for _, h := range t.lostList {
		t.lost[h] = true
	}
	for _, h := range t.readyList {
		// A host in maintenance takes no restarts: it is no survivor.
		if !t.lost[h] && !t.maint[h] {
			t.survivors = append(t.survivors, h)
		}
	}
	t.simCPU = make([]int, len(t.nodes))
	t.simMem = make([]api.ByteSize, len(t.nodes))
}

// admits reports whether placing c on host h, after stopping victims (all
// on h), leaves room to restart everything after losing the N largest
// hosts.
func (t *Tracker) admits(h int, c *candidate, victims []int32) bool {
	if t.settings.TolerateHostFailures <= 0 {
		return true
	}
	t.initLost()
	isVictim := func(ai int32) bool {
		for _, v := range victims {
			if v == ai {
				return true
			}
		}
		return false
	}
	items := t.items[:0]
	for _, lh := range t.lostList {
		for _, ai := range t.onHost[lh] {
			if !isVictim(ai) {
				a := &t.allocs[ai]
				items = append(items, simItem{cpus: a.cpus, mem: a.mem, name: a.name})
			}
		}
	}
	if t.lost[h] {
		items = append(items, simItem{cpus: c.cpus, mem: c.mem, name: c.name})
	}
	t.items = items
	if len(items) == 0 {
		return true
	}
	sort.Slice(items, func(i, j int) bool {
		a, b := &items[i], &items[j]
		if a.cpus != b.cpus {
			return a.cpus > b.cpus
		}
		if a.mem != b.mem {
			return a.mem > b.mem
		}
		return a.name < b.name
	})

	// simCPU/simMem hold changes to the survivors' free resources; touched
	// lists the hosts to reset afterwards.
	touched := t.touched[:0]
	defer func() {
		for _, s := range touched {
			t.simCPU[s], t.simMem[s] = 0, 0
		}
		t.touched = touched[:0]
	}()
	if !t.lost[h] {
		t.simCPU[h] -= c.cpus
		t.simMem[h] -= c.mem
		for _, ai := range victims {
			t.simCPU[h] += t.allocs[ai].cpus
			t.simMem[h] += t.allocs[ai].mem
		}
		touched = append(touched, int32(h))
	}
	for i := range items {
		it := &items[i]
		placed := false
		for _, s := range t.survivors {
			if it.cpus <= t.freeCPU[s]+t.simCPU[s] && it.mem <= t.freeMem[s]+t.simMem[s] {
				if t.simCPU[s] == 0 && t.simMem[s] == 0 {
					touched = append(touched, s)
				}
				t.simCPU[s] -= it.cpus
				t.simMem[s] -= it.mem
				placed = true
				break
			}
		}
		if !placed {
			return false
		}
	}
	return true
}

func (t *Tracker) admissionReason() string {
	n := t.settings.TolerateHostFailures
	return fmt.Sprintf("would leave too little room to survive %s", plural(n, "host failure", "host failures"))
}
