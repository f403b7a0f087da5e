package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// DrainMove is a workload a drain moves off its host.
type DrainMove struct {
	// Batch is the 1-based batch it moves in.
	Batch    int
	Workload string
	Priority int
	// To is the host the engine places it on.
	To string
}

// DrainStuck is a workload a drain leaves on its host: it fits nowhere else.
type DrainStuck struct {
	Workload string
	Priority int
	Reason   string
}

// DrainResult is the answer of PlanDrain.
type DrainResult struct {
	Host string
	// Moves in the order they happen: batch by batch, and in each batch in
	// the engine's placement order.
	Moves []DrainMove
	// Preemptions are workloads on other hosts stopped to make room (with
	// preemption on).
	Preemptions []Preemption
	// Stuck are the workloads that stay, in the order they were tried.
	Stuck []DrainStuck
}

// DrainOptions tune PlanDrain.
type DrainOptions struct {
	// Batch is how many workloads move at once (at least 1).
	Batch int
	// MaxBatches stops the plan after that many batches (0: all). The
	// leader asks for one batch at a time; a preview asks for all.
	MaxBatches int
}

// PlanDrain says how a drain of host would move its workloads now,
// changing nothing. It works on a copy of st with host in maintenance (so
// nothing goes back there), takes the host's workloads in placement order
// (higher priority first, then older, then by name) a batch at a time, and
// for each batch does what the leader does once it moves them: removes
// their allocations, makes them pending and displaced (admission control
// does not hold them back) and replays the leader's evaluations over every
// pending workload with sched, as WhatIf does. A workload of the batch that
// would not be placed is taken out of it and stays on the host (it is
// Stuck, with the engine's reason), and the batch is tried again without
// it, filled up with the next workload: a drain never stops a workload
// that has nowhere to go.
//
// The answer is what the leader would do on this state; later changes
// (new workloads, hosts coming and going) can change it. Workloads being
// deleted are not moved. sched nil means the engine with default options.
func PlanDrain(st *State, host string, sched Scheduler, now time.Time, opts DrainOptions) (DrainResult, error) {
	if sched == nil {
		sched = Engine{}
	}
	res := DrainResult{Host: host}
	batch := max(opts.Batch, 1)
	work := copyState(st)
	found := false
	for i := range work.Nodes {
		if work.Nodes[i].Node.Name == host {
			work.Nodes[i].Maintenance = true
			found = true
		}
	}
	if !found {
		return res, fmt.Errorf("%w %q", ErrUnknownHost, host)
	}
	var cands []api.Workload
	for name, a := range work.Allocations {
		if a.Host != host {
			continue
		}
		if w, ok := work.Workloads[name]; ok && !w.Deleting {
			cands = append(cands, w)
		}
	}
	SortPending(cands)

	queue := cands
	for len(queue) > 0 {
		if opts.MaxBatches > 0 && res.Batches() >= opts.MaxBatches {
			break
		}
		var chunk []api.Workload
		for {
			// Fill the batch up, in order: a workload that stays makes room
			// for the next one.
			for len(chunk) < batch && len(queue) > 0 {
				chunk, queue = append(chunk, queue[0]), queue[1:]
			}
			if len(chunk) == 0 {
				break
			}
			try := copyState(work)
			from := map[string]string{}
			reason := map[string]string{}
			for _, w := range chunk {
				delete(try.Allocations, w.Name)
				try.Displaced[w.Name] = true
				from[w.Name] = host
			}
			var step WhatIfResult
			whatIfPlace(try, sched, now, &step, from, reason)
			var kept []api.Workload
			for _, w := range chunk {
				if _, placed := try.Allocations[w.Name]; placed {
					kept = append(kept, w)
					continue
				}
				why := reason[w.Name]
				if why == "" {
					why = "not placed"
				}
				res.Stuck = append(res.Stuck, DrainStuck{Workload: w.Name, Priority: w.Priority, Reason: why})
			}
			if len(kept) < len(chunk) {
				// Try the batch again without the ones that stay: they
				// must not be stopped.
				chunk = kept
				continue
			}
			n := res.Batches() + 1
			in := make(map[string]bool, len(chunk))
			for _, w := range chunk {
				in[w.Name] = true
			}
			for _, m := range step.Restarts {
				if in[m.Workload] {
					res.Moves = append(res.Moves, DrainMove{Batch: n, Workload: m.Workload, Priority: m.Priority, To: m.To})
				}
			}
			res.Preemptions = append(res.Preemptions, step.Preemptions...)
			work = try
			break
		}
	}
	return res, nil
}

// Batches returns the number of batches of a plan.
func (r *DrainResult) Batches() int {
	if len(r.Moves) == 0 {
		return 0
	}
	return r.Moves[len(r.Moves)-1].Batch
}

// StuckNames lists the stuck workloads, sorted.
func (r *DrainResult) StuckNames() []string {
	out := make([]string, len(r.Stuck))
	for i, s := range r.Stuck {
		out[i] = s.Workload
	}
	sort.Strings(out)
	return out
}
