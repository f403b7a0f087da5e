package scheduler

import (
	"fmt"
	"sort"

	"github.com/bulwarkhq/bulwark/api"
)

// Rebalancing evens out the load of the hosts in service by moving running
// workloads, one move at a time, each a stop on its host and a start on
// another (until live migration exists).
//
// A host's load is the larger of its CPU and memory use, in percent of its
// allocatable capacity (capacity minus the host reservation): a host with
// half its CPUs and a quarter of its memory taken is 50% loaded. The spread
// is the most loaded host's load minus the least loaded one's, over the
// hosts in service: ready, not in maintenance, with capacity left after
// the reservation. Hosts out of service neither give nor take workloads.

// DefaultRebalanceMaxMoves bounds a plan when RebalanceOptions.MaxMoves is 0.
const DefaultRebalanceMaxMoves = api.MaxRebalanceMoves

// rebalanceScan bounds the work of one step: the moves considered go from
// one of the rebalanceScan most loaded hosts to one of the rebalanceScan
// least loaded ones.
const rebalanceScan = 16

// eps absorbs floating-point noise in load comparisons.
const eps = 1e-9

// RebalanceOptions tune PlanRebalance.
type RebalanceOptions struct {
	// Threshold is the spread, in percentage points, the plan brings the
	// hosts under (1-100). 0: the settings' RebalanceThreshold, else
	// api.DefaultRebalanceThreshold.
	Threshold int
	// MaxMoves bounds the plan (0: DefaultRebalanceMaxMoves).
	MaxMoves int
	// Running names the workloads that run now: their host reports them
	// running at their allocation's epoch. Only those move. Nil: every
	// placed workload counts as running.
	Running map[string]bool
}

// RebalanceMove moves one workload. Loads are in percent.
type RebalanceMove struct {
	Workload string
	Priority int
	CPUs     int
	Memory   api.ByteSize
	From, To string
	// The loads of both hosts before and after the move.
	FromLoad, FromAfter, ToLoad, ToAfter float64
	// The spread before and after the move.
	Spread, SpreadAfter float64
	Why                 string
}

// HostLoad is one host's load before and after a plan.
type HostLoad struct {
	Host               string
	CPUs, CPUsUsed     int
	Memory, MemoryUsed api.ByteSize
	Load, LoadAfter    float64
	// InService: ready, not in maintenance, with allocatable capacity.
	InService bool
	Note      string
	cpusAfter int
	memAfter  api.ByteSize
}

// RebalanceResult is the answer of PlanRebalance.
type RebalanceResult struct {
	Threshold           int
	Spread, SpreadAfter float64
	// Moves in the order they are to be made: each is checked on the
	// cluster as the moves before it leave it.
	Moves []RebalanceMove
	// Hosts by name.
	Hosts []HostLoad
	// Summary says what the plan does, or why it does nothing.
	Summary string
}

// PlanRebalance says which moves would bring the load spread of the hosts
// in service to at most the threshold, changing nothing. It is greedy:
// each step takes, from the most loaded hosts first, the running workload
// of lowest priority, then smallest, then moved least recently in this
// plan, then by name, and moves it to the least loaded host it fits on,
// if that lowers the spread (or, at equal spread, the sum of the squared
// loads: the loads get more even). A move never makes its target more
// loaded than its source was before the move. Each move is checked with
// the placement engine's own checkers (Tracker.Fits: readiness,
// maintenance, kind, label constraints, floating IPs, anti-affinity,
// resources against allocatable capacity, exclusive volumes) on the
// cluster as the moves before it leave it. Workloads being deleted or not
// running stay where they are, and so does everything on hosts out of
// service.
//
// The plan stops when the spread is at most the threshold, when no move
// helps, or after MaxMoves moves. It is deterministic, and idempotent
// when it does not stop at MaxMoves: once its moves are made, a new plan
// on the resulting cluster is empty. Soft preferences (prefer, spread-by,
// the strategy) are not considered.
func PlanRebalance(st *State, opts RebalanceOptions) (RebalanceResult, error) {
	threshold := opts.Threshold
	if threshold == 0 {
		threshold = st.Settings.RebalanceThreshold
	}
	if threshold == 0 {
		threshold = api.DefaultRebalanceThreshold
	}
	if threshold < 1 || threshold > 100 {
		return RebalanceResult{}, fmt.Errorf("rebalance threshold must be from 1 to 100 percentage points, got %d", threshold)
	}
	maxMoves := opts.MaxMoves
	if maxMoves <= 0 {
		maxMoves = DefaultRebalanceMaxMoves
	}
	res := RebalanceResult{Threshold: threshold}
	t := NewTracker(st)

	// The hosts, and the loads of those in service.
	hosts := make([]HostLoad, len(t.nodes))
	var in []int // indexes into hosts (= tracker indexes) of hosts in service
	for h, ni := range t.nodes {
		hl := HostLoad{Host: ni.Node.Name, CPUs: t.capCPU[h], Memory: t.capMem[h]}
		hl.CPUsUsed, hl.MemoryUsed = t.capCPU[h]-t.freeCPU[h], t.capMem[h]-t.freeMem[h]
		hl.Load = loadOf(hl.CPUsUsed, hl.MemoryUsed, hl.CPUs, hl.Memory)
		switch {
		case !ni.Ready:
			hl.Note = "not ready: neither gives nor takes workloads"
		case ni.Maintenance:
			hl.Note = "in maintenance: neither gives nor takes workloads"
		case hl.CPUs <= 0 || hl.Memory <= 0:
			hl.Note = "no allocatable capacity (the host reservation takes it all)"
		default:
			hl.InService = true
			in = append(in, h)
		}
		hl.cpusAfter, hl.memAfter = hl.CPUsUsed, hl.MemoryUsed
		hosts[h] = hl
	}
	load := func(h int) float64 {
		return loadOf(hosts[h].cpusAfter, hosts[h].memAfter, hosts[h].CPUs, hosts[h].Memory)
	}
	finish := func(summary string) (RebalanceResult, error) {
		res.SpreadAfter = round1(spreadOf(in, load))
		for h := range hosts {
			hosts[h].LoadAfter = round1(load(h))
			hosts[h].Load = round1(hosts[h].Load)
		}
		res.Hosts = hosts
		res.Summary = summary
		return res, nil
	}
	if len(in) < 2 {
		return finish(fmt.Sprintf("nothing to balance: %s in service", plural(len(in), "host is", "hosts are")))
	}
	res.Spread = round1(spreadOf(in, load))

	// The workloads that may move, and where each is now.
	type mover struct {
		w     api.Workload
		host  int
		moved int // the move (1-based) that last moved it; 0: none
	}
	var movers []*mover
	inService := make([]bool, len(hosts))
	for _, h := range in {
		inService[h] = true
	}
	for name, a := range st.Allocations {
		h, ok := t.index[a.Host]
		if !ok || !inService[h] {
			continue
		}
		w, ok := st.Workloads[name]
		if !ok || w.Deleting || opts.Running != nil && !opts.Running[name] {
			continue
		}
		movers = append(movers, &mover{w: w, host: int(h)})
	}
	sort.Slice(movers, func(i, j int) bool { return movers[i].w.Name < movers[j].w.Name })
	// A workload a floating IP follows moves last: the address moves with
	// it, and the connections through it break (a load-balanced service's
	// address follows one of its copies).
	holdsVIP := map[string]bool{}
	for _, v := range st.VIPs {
		if v.Workload != "" {
			holdsVIP[v.Workload] = true
		}
	}

	for len(res.Moves) < maxMoves {
		spread := spreadOf(in, load)
		if spread <= float64(threshold)+eps {
			break
		}
		var sumsq float64
		for _, h := range in {
			sumsq += load(h) * load(h)
		}
		desc := append([]int(nil), in...)
		sort.SliceStable(desc, func(i, j int) bool {
			a, b := load(desc[i]), load(desc[j])
			if a != b {
				return a > b
			}
			return hosts[desc[i]].Host < hosts[desc[j]].Host
		})
		asc := make([]int, len(desc))
		for i := range desc {
			asc[i] = desc[len(desc)-1-i]
		}
		// The spread once src and dst have new loads: the others' extremes
		// are the first of the sorted lists that is neither.
		others := func(src, dst int) (hi, lo float64, ok bool) {
			for _, h := range desc {
				if h != src && h != dst {
					hi, ok = load(h), true
					break
				}
			}
			for _, h := range asc {
				if h != src && h != dst {
					lo = load(h)
					break
				}
			}
			return hi, lo, ok
		}
		var found *RebalanceMove
		var foundMover *mover
	search:
		for si, src := range desc {
			if si >= rebalanceScan {
				break
			}
			srcLoad := load(src)
			var cands []*mover
			for _, m := range movers {
				if m.host == src {
					cands = append(cands, m)
				}
			}
			sort.SliceStable(cands, func(i, j int) bool {
				a, b := cands[i], cands[j]
				if holdsVIP[a.w.Name] != holdsVIP[b.w.Name] {
					return !holdsVIP[a.w.Name]
				}
				if a.w.Priority != b.w.Priority {
					return a.w.Priority < b.w.Priority
				}
				sa, sb := loadOf(a.w.CPUs, a.w.Memory, hosts[src].CPUs, hosts[src].Memory), loadOf(b.w.CPUs, b.w.Memory, hosts[src].CPUs, hosts[src].Memory)
				if sa != sb {
					return sa < sb
				}
				if a.moved != b.moved {
					return a.moved < b.moved
				}
				return a.w.Name < b.w.Name
			})
			for _, m := range cands {
				w := m.w
				if w.CPUs <= 0 && w.Memory <= 0 {
					continue
				}
				for di, dst := range asc {
					if di >= rebalanceScan {
						break
					}
					if dst == src {
						continue
					}
					dstLoad := load(dst)
					if dstLoad >= srcLoad-eps {
						break // the rest are as loaded as the source
					}
					srcAfter := loadOf(hosts[src].cpusAfter-w.CPUs, hosts[src].memAfter-w.Memory, hosts[src].CPUs, hosts[src].Memory)
					dstAfter := loadOf(hosts[dst].cpusAfter+w.CPUs, hosts[dst].memAfter+w.Memory, hosts[dst].CPUs, hosts[dst].Memory)
					if dstAfter >= srcLoad-eps {
						continue // never more loaded than the source was
					}
					hi, lo, ok := others(src, dst)
					newHi, newLo := max(srcAfter, dstAfter), min(srcAfter, dstAfter)
					if ok {
						newHi, newLo = max(newHi, hi), min(newLo, lo)
					}
					newSpread := newHi - newLo
					newSumsq := sumsq - srcLoad*srcLoad - dstLoad*dstLoad + srcAfter*srcAfter + dstAfter*dstAfter
					if !(newSpread < spread-eps || newSpread <= spread+eps && newSumsq < sumsq-eps) {
						continue
					}
					// The engine's own checks, on the cluster as the moves
					// so far leave it.
					t.Remove(w.Name)
					if ok, _ := t.Fits(hosts[dst].Host, &w); !ok {
						_ = t.Add(hosts[src].Host, &w)
						continue
					}
					_ = t.Add(hosts[dst].Host, &w)
					found = &RebalanceMove{Workload: w.Name, Priority: w.Priority, CPUs: w.CPUs, Memory: w.Memory,
						From: hosts[src].Host, To: hosts[dst].Host,
						FromLoad: round1(srcLoad), FromAfter: round1(srcAfter), ToLoad: round1(dstLoad), ToAfter: round1(dstAfter),
						Spread: round1(spread), SpreadAfter: round1(newSpread)}
					foundMover = m
					break search
				}
			}
		}
		if found == nil {
			break
		}
		src, dst := foundMover.host, t.index[found.To]
		hosts[src].cpusAfter -= found.CPUs
		hosts[src].memAfter -= found.Memory
		hosts[dst].cpusAfter += found.CPUs
		hosts[dst].memAfter += found.Memory
		foundMover.host = int(dst)
		foundMover.moved = len(res.Moves) + 1
		found.Why = moveWhy(found, threshold)
		res.Moves = append(res.Moves, *found)
	}

	after := spreadOf(in, load)
	switch {
	case len(res.Moves) == 0 && res.Spread <= float64(threshold)+eps:
		return finish(fmt.Sprintf("balanced: the load spread is %s points, within the threshold of %d", pts(res.Spread), threshold))
	case len(res.Moves) == 0:
		return finish(fmt.Sprintf("no move helps: the load spread is %s points (threshold %d), but no running workload fits on a less loaded host without making it more loaded than its own host was (constraints, anti-affinity, room)", pts(res.Spread), threshold))
	case after <= float64(threshold)+eps:
		return finish(fmt.Sprintf("%s bring the load spread from %s to %s points (threshold %d)", plural(len(res.Moves), "move", "moves"), pts(res.Spread), pts(after), threshold))
	case len(res.Moves) >= maxMoves:
		return finish(fmt.Sprintf("%s bring the load spread from %s to %s points (threshold %d); the plan stops at %d moves: rebalance again afterwards", plural(len(res.Moves), "move", "moves"), pts(res.Spread), pts(after), threshold, maxMoves))
	}
	return finish(fmt.Sprintf("%s bring the load spread from %s to %s points; no further move helps (threshold %d)", plural(len(res.Moves), "move", "moves"), pts(res.Spread), pts(after), threshold))
}

// loadOf is a host's load in percent: the larger of its CPU and memory use.
func loadOf(cpus int, mem api.ByteSize, capCPU int, capMem api.ByteSize) float64 {
	var l float64
	if capCPU > 0 {
		l = float64(cpus) / float64(capCPU)
	}
	if capMem > 0 {
		l = max(l, float64(mem)/float64(capMem))
	}
	return l * 100
}

func spreadOf(in []int, load func(int) float64) float64 {
	if len(in) == 0 {
		return 0
	}
	hi, lo := load(in[0]), load(in[0])
	for _, h := range in[1:] {
		hi, lo = max(hi, load(h)), min(lo, load(h))
	}
	return hi - lo
}

func pts(f float64) string { return fmt.Sprintf("%.0f", f) }

func moveWhy(m *RebalanceMove, threshold int) string {
	s := fmt.Sprintf("%s %s%% -> %s%%, %s %s%% -> %s%%", m.From, pts(m.FromLoad), pts(m.FromAfter), m.To, pts(m.ToLoad), pts(m.ToAfter))
	if m.SpreadAfter < m.Spread-0.05 {
		return s + fmt.Sprintf("; spread %s -> %s points (threshold %d)", pts(m.Spread), pts(m.SpreadAfter), threshold)
	}
	return s + fmt.Sprintf("; spread stays %s points, the loads get more even (threshold %d)", pts(m.Spread), threshold)
}

// CheckRebalanceMove says whether moving workload from one host to
// another is still right on st, as PlanRebalance would check it: the
// workload is placed on from and runs (running nil: counts as running),
// to is in service, the move passes the engine's checkers, and to does
// not become more loaded than from is now. The leader checks each move of
// a rebalance this way before it starts it.
func CheckRebalanceMove(st *State, running map[string]bool, workload, from, to string) error {
	a, ok := st.Allocations[workload]
	if !ok {
		return fmt.Errorf("%s is not placed any more", workload)
	}
	if a.Host != from {
		return fmt.Errorf("%s runs on %s now, not %s", workload, a.Host, from)
	}
	w, ok := st.Workloads[workload]
	if !ok || w.Deleting {
		return fmt.Errorf("%s is being deleted", workload)
	}
	if running != nil && !running[workload] {
		return fmt.Errorf("%s is not running on %s", workload, from)
	}
	t := NewTracker(st)
	fh, ok1 := t.host(from)
	th, ok2 := t.host(to)
	if !ok1 || !ok2 {
		return fmt.Errorf("%s or %s is not registered any more", from, to)
	}
	for _, h := range []int{fh, th} {
		if !t.nodes[h].Ready {
			return fmt.Errorf("%s is not ready", t.nodes[h].Node.Name)
		}
		if t.nodes[h].Maintenance {
			return fmt.Errorf("%s is in maintenance", t.nodes[h].Node.Name)
		}
	}
	fromLoad := loadOf(t.capCPU[fh]-t.freeCPU[fh], t.capMem[fh]-t.freeMem[fh], t.capCPU[fh], t.capMem[fh])
	toAfter := loadOf(t.capCPU[th]-t.freeCPU[th]+w.CPUs, t.capMem[th]-t.freeMem[th]+w.Memory, t.capCPU[th], t.capMem[th])
	if toAfter >= fromLoad-eps {
		return fmt.Errorf("%s would be %s%% loaded, not less than %s is now (%s%%)", to, pts(toAfter), from, pts(fromLoad))
	}
	t.Remove(workload)
	if ok, why := t.Fits(to, &w); !ok {
		return fmt.Errorf("%s does not fit on %s any more: %s", workload, to, why)
	}
	return nil
}
