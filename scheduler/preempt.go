package scheduler

import (
	"sort"

	"github.com/bulwarkhq/bulwark/api"
)

// Preemption: when no host fits a workload, stopping strictly
// lower-priority workloads on one host may make room. Of all hosts where
// some set of victims would do, the engine takes the best set: fewest
// victims, then the lowest highest-priority among them, then the lowest sum
// of priorities, then the fewest CPUs and bytes freed, then the first host
// by name. Workloads being deleted and allocations of unknown workloads are
// never victims. Members of the workload's anti-affinity group on the host
// must be victims themselves, so they must be lower-priority too.

// preemptionBudget bounds the victim sets tried exactly on one host; past
// it a greedy choice is taken (valid, possibly not the smallest).
const preemptionBudget = 4096

type victimSet struct {
	host    int
	victims []int32
	maxPrio int32
	sumPrio int64
	cpus    int
	mem     api.ByteSize
}

func (a *victimSet) less(b *victimSet) bool {
	switch {
	case len(a.victims) != len(b.victims):
		return len(a.victims) < len(b.victims)
	case a.maxPrio != b.maxPrio:
		return a.maxPrio < b.maxPrio
	case a.sumPrio != b.sumPrio:
		return a.sumPrio < b.sumPrio
	case a.cpus != b.cpus:
		return a.cpus < b.cpus
	}
	return a.mem < b.mem
}

func (t *Tracker) measure(vs *victimSet) {
	vs.maxPrio, vs.sumPrio, vs.cpus, vs.mem = 0, 0, 0, 0
	for _, ai := range vs.victims {
		a := &t.allocs[ai]
		vs.maxPrio = max(vs.maxPrio, a.prio)
		vs.sumPrio += int64(a.prio)
		vs.cpus += a.cpus
		vs.mem += a.mem
	}
}

// staticOK runs the checkers whose rejection stopping workloads cannot lift.
func (t *Tracker) staticOK(h int, c *candidate) bool {
	for _, ck := range t.checks {
		if p, ok := ck.(interface{ preemptible() bool }); ok && p.preemptible() {
			continue
		}
		if !ck.ok(t, h, c) {
			return false
		}
	}
	return true
}

func (antiAffinityCheck) preemptible() bool { return true }
func (resourceCheck) preemptible() bool     { return true }

// preempt finds the best victim set over all ready hosts.
func (t *Tracker) preempt(c *candidate) (victimSet, bool) {
	var best victimSet
	found := false
	for _, h32 := range t.readyList {
		h := int(h32)
		if !t.staticOK(h, c) {
			continue
		}
		maxVictims := -1
		if found {
			maxVictims = len(best.victims)
		}
		vs, ok := t.victimsOn(h, c, maxVictims)
		if ok && (!found || vs.less(&best)) {
			best, found = vs, true
		}
	}
	return best, found
}

// preemptibleHosts counts the hosts where stopping lower-priority workloads
// would make room for c.
func (t *Tracker) preemptibleHosts(c *candidate) int {
	n := 0
	for _, h32 := range t.readyList {
		h := int(h32)
		if !t.staticOK(h, c) {
			continue
		}
		needCPU, needMem := c.cpus-t.freeCPU[h], c.mem-t.freeMem[h]
		blocked, some := false, false
		for _, ai := range t.onHost[h] {
			a := t.meta(ai)
			lower := a.prio < c.prio && a.flags&allocDeleting == 0
			if c.group >= 0 && a.group == c.group && !lower {
				blocked = true
				break
			}
			if lower {
				needCPU -= a.cpus
				needMem -= a.mem
				some = true
			}
		}
		if !blocked && some && needCPU <= 0 && needMem <= 0 {
			n++
		}
	}
	return n
}

// victimsOn finds the best victim set on host h, if there is one with at
// most maxVictims members (-1: any number; a larger set may come back when
// the exact search gives up).
func (t *Tracker) victimsOn(h int, c *candidate, maxVictims int) (victimSet, bool) {
	var mandatory []int32
	cands := t.cands[:0]
	needCPU, needMem := c.cpus-t.freeCPU[h], c.mem-t.freeMem[h]
	for _, ai := range t.onHost[h] {
		a := t.meta(ai) // resolves: cover and measure read prio directly
		lower := a.prio < c.prio && a.flags&allocDeleting == 0
		if c.group >= 0 && a.group == c.group {
			if !lower {
				return victimSet{}, false
			}
			mandatory = append(mandatory, ai)
			needCPU -= a.cpus
			needMem -= a.mem
			continue
		}
		if lower {
			cands = append(cands, ai)
		}
	}
	t.cands = cands
	maxK := -1
	if maxVictims >= 0 {
		if maxK = maxVictims - len(mandatory); maxK < 0 {
			return victimSet{}, false
		}
	}
	var chosen []int32
	if needCPU > 0 || needMem > 0 {
		var ok bool
		if chosen, ok = t.cover(cands, needCPU, needMem, maxK); !ok {
			return victimSet{}, false
		}
	}
	if len(mandatory)+len(chosen) == 0 {
		return victimSet{}, false // it fits as it is
	}
	vs := victimSet{host: h, victims: append(mandatory, chosen...)}
	sort.Slice(vs.victims, func(i, j int) bool { return t.allocs[vs.victims[i]].name < t.allocs[vs.victims[j]].name })
	t.measure(&vs)
	return vs, true
}

// cover picks the best subset of cands that frees at least needCPU and
// needMem: the fewest members, then as victimSet.less orders them. It tries
// subsets by increasing size, exactly up to preemptionBudget of them, then
// greedily. With maxK >= 0 it looks for covers of at most maxK members.
func (t *Tracker) cover(cands []int32, needCPU int, needMem api.ByteSize, maxK int) ([]int32, bool) {
	var allCPU int
	var allMem api.ByteSize
	for _, ai := range cands {
		allCPU += t.allocs[ai].cpus
		allMem += t.allocs[ai].mem
	}
	if allCPU < needCPU || allMem < needMem {
		return nil, false
	}
	// Enumerate in a fixed order so that the answer is deterministic.
	sort.Slice(cands, func(i, j int) bool {
		a, b := &t.allocs[cands[i]], &t.allocs[cands[j]]
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		return a.name < b.name
	})
	m := len(cands)
	k0 := max(t.minCount(cands, int64(needCPU), func(a *allocation) int64 { return int64(a.cpus) }),
		t.minCount(cands, int64(needMem), func(a *allocation) int64 { return int64(a.mem) }), 1)
	kMax := m
	if maxK >= 0 {
		if kMax = min(m, maxK); k0 > kMax {
			return nil, false
		}
	}

	budget := preemptionBudget
	idx := make([]int, m)
	var best victimSet
	found := false
	for k := k0; k <= kMax && budget > 0; k++ {
		for i := 0; i < k; i++ {
			idx[i] = i
		}
		for budget > 0 {
			budget--
			var cpus int
			var mem api.ByteSize
			for _, i := range idx[:k] {
				cpus += t.allocs[cands[i]].cpus
				mem += t.allocs[cands[i]].mem
			}
			if cpus >= needCPU && mem >= needMem {
				vs := victimSet{victims: make([]int32, k)}
				for j, i := range idx[:k] {
					vs.victims[j] = cands[i]
				}
				t.measure(&vs)
				if !found || vs.less(&best) {
					best, found = vs, true
				}
			}
			if !nextCombination(idx[:k], m) {
				break
			}
		}
		if found {
			return best.victims, true
		}
	}
	if budget > 0 {
		return nil, false // no cover of at most kMax members
	}
	return t.greedyCover(cands, needCPU, needMem), true
}

// minCount is how many of cands at least are needed to reach need in one
// dimension: a lower bound on the size of any cover.
func (t *Tracker) minCount(cands []int32, need int64, size func(*allocation) int64) int {
	if need <= 0 {
		return 0
	}
	sizes := make([]int64, len(cands))
	for i, ai := range cands {
		sizes[i] = size(&t.allocs[ai])
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] > sizes[j] })
	var sum int64
	for i, s := range sizes {
		sum += s
		if sum >= need {
			return i + 1
		}
	}
	return len(sizes)
}

// nextCombination advances idx to the next k-subset of 0..m-1 in
// lexicographic order, reporting false after the last.
func nextCombination(idx []int, m int) bool {
	k := len(idx)
	i := k - 1
	for i >= 0 && idx[i] == m-k+i {
		i--
	}
	if i < 0 {
		return false
	}
	idx[i]++
	for j := i + 1; j < k; j++ {
		idx[j] = idx[j-1] + 1
	}
	return true
}

// greedyCover takes the lowest-priority candidates (larger first among
// equals) until there is room, then gives back, highest priority first,
// every one not needed. cands already cover the need.
func (t *Tracker) greedyCover(cands []int32, needCPU int, needMem api.ByteSize) []int32 {
	order := append([]int32(nil), cands...)
	sort.SliceStable(order, func(i, j int) bool {
		a, b := &t.allocs[order[i]], &t.allocs[order[j]]
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		if a.cpus != b.cpus {
			return a.cpus > b.cpus
		}
		return a.mem > b.mem
	})
	var chosen []int32
	var cpus int
	var mem api.ByteSize
	for _, ai := range order {
		if cpus >= needCPU && mem >= needMem {
			break
		}
		chosen = append(chosen, ai)
		cpus += t.allocs[ai].cpus
		mem += t.allocs[ai].mem
	}
	for i := len(chosen) - 1; i >= 0; i-- {
		a := &t.allocs[chosen[i]]
		if cpus-a.cpus >= needCPU && mem-a.mem >= needMem {
			cpus -= a.cpus
			mem -= a.mem
			chosen = append(chosen[:i], chosen[i+1:]...)
		}
	}
	return chosen
}
