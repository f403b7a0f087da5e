package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Options tune the engine. The zero value gives the defaults.
type Options struct {
	// MinCandidates and CandidatePercent bound the work per placement, like
	// kube-scheduler's percentageOfNodesToScore: the scan of ready hosts
	// stops once it has found max(MinCandidates, CandidatePercent% of the
	// ready hosts) feasible ones, and the next placement's scan starts
	// where this one stopped. Defaults: 100 and 5. Smaller clusters are
	// always scanned whole.
	MinCandidates    int
	CandidatePercent int
}

// Engine is the placement engine. It is stateless between calls: a value,
// safe to share.
type Engine struct {
	opts Options
}

// New returns an engine with the given options.
func New(opts Options) *Engine {
	return &Engine{opts: opts}
}

var _ Scheduler = Engine{}

func (e Engine) limit(ready int) int {
	minC, pct := e.opts.MinCandidates, e.opts.CandidatePercent
	if minC <= 0 {
		minC = 100
	}
	if pct <= 0 {
		pct = 5
	}
	return max(minC, ready*pct/100)
}

// Schedule places pending workloads, higher priority first (SortPending
// order), each on the best-scoring host that passes every checker. Pending
// workloads that already have an allocation, are being deleted or are
// listed twice are skipped. now is unused: placement does not depend on the
// time.
func (e Engine) Schedule(st *State, pending []api.Workload, _ time.Time) Plan {
	t := NewTracker(st)
	order := make([]*api.Workload, 0, len(pending))
	for i := range pending {
		order = append(order, &pending[i])
	}
	sort.SliceStable(order, func(i, j int) bool { return placedBefore(order[i], order[j]) })

	var plan Plan
	var start int
	if n := len(t.readyList); n > 0 {
		start = int(uint64(st.Revision) % uint64(n))
	}
	// A workload that found no host fails again for any later one with the
	// same needs while nothing is removed: placements only take room.
	failed := make(map[failKey]string)
	seen := make(map[string]bool, len(order))
	for _, w := range order {
		if seen[w.Name] || w.Deleting {
			continue
		}
		seen[w.Name] = true
		if _, placed := t.lookup(w.Name); placed {
			continue
		}
		isNew := st.Settings.TolerateHostFailures > 0 && !st.Displaced[w.Name]
		key := failKey{cpus: w.CPUs, mem: w.Memory, prio: w.Priority, group: w.AntiAffinity, isNew: isNew}
		if len(w.Require) > 0 {
			key.require = strings.Join(w.Require, "\x00")
		}
		if why := t.volumeConflict(w); why != "" {
			plan.Unplaced = append(plan.Unplaced, Unplaced{Workload: w.Name, Reason: why})
			continue
		}
		c, err := t.candidate(w, isNew)
		if err != nil {
			plan.Unplaced = append(plan.Unplaced, Unplaced{Workload: w.Name, Reason: "invalid placement: " + err.Error()})
			continue
		}
		cacheable := len(c.vips) == 0 // the key does not say which networks
		if why, ok := failed[key]; ok && cacheable {
			plan.Unplaced = append(plan.Unplaced, Unplaced{Workload: w.Name, Reason: why})
			continue
		}
		d := e.decide(t, c, &start)
		if d.host < 0 {
			if cacheable {
				failed[key] = d.reason
			}
			plan.Unplaced = append(plan.Unplaced, Unplaced{Workload: w.Name, Reason: d.reason})
			continue
		}
		host := t.nodes[d.host].Node.Name
		for _, ai := range d.victims {
			v := t.meta(ai)
			plan.Preemptions = append(plan.Preemptions, Preemption{
				Workload: v.name, Host: host, By: w.Name,
				Reason: fmt.Sprintf("stopped on %s to make room for %s (priority %d > %d)", host, w.Name, w.Priority, v.prio),
			})
			t.remove(ai)
		}
		if len(d.victims) > 0 {
			clear(failed)
		}
		t.add(d.host, allocation{name: w.Name, group: c.group, prio: c.prio, cpus: c.cpus, mem: c.mem})
		t.claimVolumes(w, host)
		plan.Placements = append(plan.Placements, Placement{Workload: w.Name, Host: host, CPUs: w.CPUs, Memory: w.Memory, Score: round1(d.score)})
	}
	return plan
}

type failKey struct {
	cpus    int
	mem     api.ByteSize
	prio    int
	require string
	group   string
	isNew   bool
}

// decision is where one workload goes, or why it goes nowhere.
type decision struct {
	host    int // -1: unplaced
	score   float64
	victims []int32 // allocations to stop first, all on host
	reason  string
}

// choice is the best feasible host found so far, split by whether the
// host is one of the N largest that admission control imagines lost:
// when the best host is refused, the best of the other kind may not be.
type choice struct {
	lost, kept     int
	lostSc, keptSc float64
}

func newChoice() choice { return choice{lost: -1, kept: -1} }

func (ch *choice) offer(t *Tracker, h int, sc float64) {
	// Ties go to the lower host index, so the answer does not depend on
	// where the scan started.
	if t.lost != nil && t.lost[h] {
		if ch.lost < 0 || sc > ch.lostSc || sc == ch.lostSc && h < ch.lost {
			ch.lost, ch.lostSc = h, sc
		}
		return
	}
	if ch.kept < 0 || sc > ch.keptSc || sc == ch.keptSc && h < ch.kept {
		ch.kept, ch.keptSc = h, sc
	}
}

// ordered returns the best host first, then the best of the other kind.
func (ch *choice) ordered() (best int, bestSc float64, alt int, altSc float64) {
	if ch.kept < 0 || ch.lost >= 0 && (ch.lostSc > ch.keptSc || ch.lostSc == ch.keptSc && ch.lost < ch.kept) {
		return ch.lost, ch.lostSc, ch.kept, ch.keptSc
	}
	return ch.kept, ch.keptSc, ch.lost, ch.lostSc
}

// decide finds the host for c, scanning ready hosts from *start (which it
// advances) until it has seen enough feasible ones.
func (e Engine) decide(t *Tracker, c *candidate, start *int) decision {
	if c.isNew {
		t.initLost()
	}
	t.prepare(c)
	ch := newChoice()
	n := len(t.readyList)
	limit := e.limit(n)
	found, scanned := 0, 0
	for ; scanned < n && found < limit; scanned++ {
		i := *start + scanned
		if i >= n {
			i -= n
		}
		h := int(t.readyList[i])
		// The resource check first: it is the cheapest and, in a busy
		// cluster, the most selective; the stack repeats it.
		if !resourcesOK(t, h, c) || !t.feasible(h, c) {
			continue
		}
		found++
		ch.offer(t, h, t.score(h, c))
	}
	if n > 0 {
		*start = (*start + scanned) % n
	}
	return t.finish(c, ch)
}

// finish turns the feasible hosts found into a decision: admission control
// on the best ones, or preemption, or the reason nothing fits. Schedule and
// Explain share it.
func (t *Tracker) finish(c *candidate, ch choice) decision {
	best, bestSc, alt, altSc := ch.ordered()
	if best >= 0 {
		if !c.isNew {
			return decision{host: best, score: bestSc}
		}
		if t.admits(best, c, nil) {
			return decision{host: best, score: bestSc}
		}
		if alt >= 0 && t.admits(alt, c, nil) {
			return decision{host: alt, score: altSc}
		}
		return decision{host: -1, reason: t.admissionReason()}
	}
	if len(t.nodes) == 0 {
		return decision{host: -1, reason: "no hosts are registered"}
	}
	if why := t.tooLarge(c); why != "" {
		return decision{host: -1, reason: why}
	}
	if t.settings.Preemption {
		if vs, ok := t.preempt(c); ok {
			if c.isNew && !t.admits(vs.host, c, vs.victims) {
				return decision{host: -1, reason: t.admissionReason()}
			}
			return decision{host: vs.host, score: t.scoreAfter(vs.host, c, vs.victims), victims: vs.victims}
		}
		return decision{host: -1, reason: t.noFitReason(c)}
	}
	if k := t.preemptibleHosts(c); k > 0 {
		return decision{host: -1, reason: fmt.Sprintf("preemption is off; %s would fit after stopping lower-priority workloads", plural(k, "host", "hosts"))}
	}
	return decision{host: -1, reason: t.noFitReason(c)}
}

// scoreAfter scores host h as if the victims were already gone.
func (t *Tracker) scoreAfter(h int, c *candidate, victims []int32) float64 {
	var cpus int
	var mem api.ByteSize
	for _, ai := range victims {
		cpus += t.allocs[ai].cpus
		mem += t.allocs[ai].mem
	}
	t.freeCPU[h] += cpus
	t.freeMem[h] += mem
	sc := t.score(h, c)
	t.freeCPU[h] -= cpus
	t.freeMem[h] -= mem
	return sc
}

// tooLarge says why c fits on no registered host even when empty, or "".
func (t *Tracker) tooLarge(c *candidate) string {
	maxCPU, maxMem := 0, api.ByteSize(0)
	for h := range t.nodes {
		if c.cpus <= t.capCPU[h] && c.mem <= t.capMem[h] {
			return ""
		}
		maxCPU, maxMem = max(maxCPU, t.capCPU[h]), max(maxMem, t.capMem[h])
	}
	switch {
	case c.cpus > maxCPU && c.mem > maxMem:
		return fmt.Sprintf("larger than every host: needs %d cpus and %s memory (at most %d cpus and %s allocatable)", c.cpus, c.mem.Human(), maxCPU, maxMem.Human())
	case c.cpus > maxCPU:
		return fmt.Sprintf("larger than every host: needs %d cpus (at most %d allocatable)", c.cpus, maxCPU)
	case c.mem > maxMem:
		return fmt.Sprintf("larger than every host: needs %s memory (at most %s allocatable)", c.mem.Human(), maxMem.Human())
	}
	return fmt.Sprintf("larger than every host: needs %d cpus and %s memory on one host", c.cpus, c.mem.Human())
}

// maxCategories bounds a summary's length: it is stored and shown in
// `workload show`.
const maxCategories = 4

// noFitReason counts the rejected hosts by what rejected them:
// "no host fits: cpu (2 hosts), anti-affinity group web (1 host)".
func (t *Tracker) noFitReason(c *candidate) string {
	type tally struct {
		rank  int
		cat   string
		count int
	}
	var tallies []tally
	for h := range t.nodes {
		ok, rank, cat, _ := t.checkCategory(h, c)
		if ok {
			continue
		}
		found := false
		for i := range tallies {
			if tallies[i].cat == cat {
				tallies[i].count++
				found = true
				break
			}
		}
		if !found {
			tallies = append(tallies, tally{rank: rank, cat: cat, count: 1})
		}
	}
	sort.Slice(tallies, func(i, j int) bool {
		a, b := tallies[i], tallies[j]
		if a.count != b.count {
			return a.count > b.count
		}
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		return a.cat < b.cat
	})
	var parts []string
	for i, x := range tallies {
		if i == maxCategories {
			parts = append(parts, fmt.Sprintf("%d more reasons", len(tallies)-maxCategories))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s)", x.cat, plural(x.count, "host", "hosts")))
	}
	return "no host fits: " + strings.Join(parts, ", ")
}

func round1(f float64) float64 {
	return float64(int64(f*10+0.5)) / 10
}
