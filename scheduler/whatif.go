package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Timing defaults of the what-if recovery estimate.
const (
	// DefaultLeaseTTL is the agent lease TTL (T) assumed for a host that
	// did not report its own (api.Node.LeaseTTL).
	DefaultLeaseTTL = 3 * time.Second
	// DefaultFenceAllowance is the time assumed for fencing a lost host
	// through its BMC and recording it: the BMC's answer plus polling.
	DefaultFenceAllowance = 2 * time.Second
)

// whatIfRounds bounds the evaluations WhatIf replays: each round after the
// first places the workloads preempted in the one before.
const whatIfRounds = 16

// ErrUnknownHost is returned by WhatIf for a host that is not registered.
var ErrUnknownHost = errors.New("unknown host")

// WhatIfOptions tune the recovery estimate of WhatIf.
type WhatIfOptions struct {
	// FenceAllowance is added to the lease TTL of the failed host: the time
	// fencing takes. Zero: DefaultFenceAllowance; negative: none.
	FenceAllowance time.Duration
}

// Move is a workload that would be (re)started on a host.
type Move struct {
	// Order is the 1-based position in which the engine places it.
	Order    int
	Workload string
	Priority int
	// From is the host it ran on (a failed host, or the host it was
	// preempted on); "" if it was pending before.
	From string
	To   string
}

// WhatIfUnplaced is a workload that ran before and would not restart.
type WhatIfUnplaced struct {
	Workload string
	Priority int
	From     string
	Reason   string
}

// WhatIfResult is the answer of WhatIf for one failure scenario.
type WhatIfResult struct {
	// Failed are the failed hosts, sorted.
	Failed []string
	// Restarts are the placements, in the order the engine makes them.
	Restarts []Move
	// Preemptions are the running workloads stopped to make room; each
	// appears again in Restarts or Unplaced.
	Preemptions []Preemption
	// Unplaced are the workloads that ran before (on a failed host, or
	// were preempted) and would not restart anywhere, in placement order.
	Unplaced []WhatIfUnplaced
	// ExpectedRecovery is an estimate of the time from the failure to the
	// restarts being placed: the longest lease TTL of the failed hosts
	// (DefaultLeaseTTL if unset) plus the fencing allowance. It leaves out
	// the store's and the agents' own latencies (milliseconds) and the
	// time the workloads take to boot.
	ExpectedRecovery time.Duration
}

// Safe reports whether every workload that ran before would run again.
func (r *WhatIfResult) Safe() bool { return len(r.Unplaced) == 0 }

// WhatIf answers "what if these hosts died now?" from a state, changing
// nothing: it copies the state, marks the failed hosts not ready, deletes
// their allocations and makes those workloads pending and displaced (as
// recovery does once the hosts are fenced), then asks sched for a plan over
// every pending workload, as the leader does. Preempted workloads become
// pending and displaced and are placed by further rounds, as by the
// leader's next evaluations.
//
// The answer is what the leader would do on this state. It can differ from
// what happens later if the state changes first, if a pending workload is
// backing off (the State does not carry that), or, in a cluster with more
// ready hosts than the engine's candidate limit, in the choice between
// equally good hosts (the scan starts at a revision-dependent host).
// sched nil means the engine with default options.
func WhatIf(st *State, failed []string, sched Scheduler, now time.Time, opts WhatIfOptions) (WhatIfResult, error) {
	if sched == nil {
		sched = Engine{}
	}
	var res WhatIfResult
	down := make(map[string]bool, len(failed))
	for _, h := range failed {
		if !down[h] {
			down[h] = true
			res.Failed = append(res.Failed, h)
		}
	}
	sort.Strings(res.Failed)
	if len(res.Failed) == 0 {
		return res, errors.New("what if: no host given")
	}
	work := copyState(st)
	found := 0
	var ttl time.Duration
	for i := range work.Nodes {
		n := &work.Nodes[i]
		if !down[n.Node.Name] {
			continue
		}
		found++
		n.Ready = false
		t := time.Duration(n.Node.LeaseTTL)
		if t <= 0 {
			t = DefaultLeaseTTL
		}
		ttl = max(ttl, t)
	}
	if found != len(res.Failed) {
		registered := make(map[string]bool, len(work.Nodes))
		for _, n := range work.Nodes {
			registered[n.Node.Name] = true
		}
		for _, h := range res.Failed {
			if !registered[h] {
				return WhatIfResult{}, fmt.Errorf("%w %q", ErrUnknownHost, h)
			}
		}
	}
	allowance := opts.FenceAllowance
	if allowance == 0 {
		allowance = DefaultFenceAllowance
	}
	res.ExpectedRecovery = ttl + max(allowance, 0)

	from := map[string]string{}
	reason := map[string]string{}
	// The leader evaluates as soon as the leases are gone, before fencing
	// ends: the hosts are not ready but still hold their allocations. Only
	// admission control can place a pending workload differently then.
	whatIfPlace(work, sched, now, &res, from, reason)

	// Recovery, once fenced: the failed hosts' allocations go; their
	// workloads become pending and displaced. Allocations of deleted
	// workloads just go.
	for name, a := range work.Allocations {
		if !down[a.Host] {
			continue
		}
		delete(work.Allocations, name)
		if w, ok := work.Workloads[name]; ok && !w.Deleting {
			work.Displaced[name] = true
			from[name] = a.Host
		}
	}
	whatIfPlace(work, sched, now, &res, from, reason)

	var lost []api.Workload
	for name := range from {
		if _, placed := work.Allocations[name]; !placed {
			lost = append(lost, work.Workloads[name])
		}
	}
	SortPending(lost)
	for _, w := range lost {
		why := reason[w.Name]
		if why == "" {
			why = "not placed"
		}
		res.Unplaced = append(res.Unplaced, WhatIfUnplaced{Workload: w.Name, Priority: w.Priority, From: from[w.Name], Reason: why})
	}
	return res, nil
}

// whatIfPlace replays the leader's evaluations on work until they change
// nothing more: each schedules every pending workload and applies the plan
// (preempted workloads become pending and displaced). It records the
// restarts and preemptions in res, each moved workload's former host in
// from, and each unplaced workload's last reason in reason.
func whatIfPlace(work *State, sched Scheduler, now time.Time, res *WhatIfResult, from, reason map[string]string) {
	for round := 0; round < whatIfRounds; round++ {
		pending := pendingWorkloads(work)
		if len(pending) == 0 {
			return
		}
		plan := sched.Schedule(work, pending, now)
		for _, p := range plan.Preemptions {
			a, ok := work.Allocations[p.Workload]
			if !ok {
				continue
			}
			delete(work.Allocations, p.Workload)
			work.Displaced[p.Workload] = true
			if _, ok := from[p.Workload]; !ok {
				from[p.Workload] = a.Host
			}
			res.Preemptions = append(res.Preemptions, p)
		}
		for _, p := range plan.Placements {
			work.Allocations[p.Workload] = api.Allocation{Schema: api.SchemaVersion, Workload: p.Workload, Host: p.Host, CPUs: p.CPUs, Memory: p.Memory, CreatedAt: now}
			delete(work.Displaced, p.Workload)
			delete(work.Avoid, p.Workload)
			delete(reason, p.Workload)
			res.Restarts = append(res.Restarts, Move{Order: len(res.Restarts) + 1, Workload: p.Workload,
				Priority: work.Workloads[p.Workload].Priority, From: from[p.Workload], To: p.Host})
		}
		for _, u := range plan.Unplaced {
			reason[u.Workload] = u.Reason
		}
		// Placements only take room: without preemptions, another round
		// would decide the same.
		if len(plan.Preemptions) == 0 {
			return
		}
	}
}

// WhatIfEach answers WhatIf for the failure of each ready host that runs
// something, one host at a time (an N+1 check), in host-name order.
func WhatIfEach(st *State, sched Scheduler, now time.Time, opts WhatIfOptions) []WhatIfResult {
	busy := map[string]bool{}
	for _, a := range st.Allocations {
		busy[a.Host] = true
	}
	var hosts []string
	for _, n := range st.Nodes {
		if n.Ready && busy[n.Node.Name] {
			hosts = append(hosts, n.Node.Name)
		}
	}
	sort.Strings(hosts)
	out := make([]WhatIfResult, 0, len(hosts))
	for _, h := range hosts {
		r, err := WhatIf(st, []string{h}, sched, now, opts)
		if err != nil {
			continue // cannot happen: h is registered
		}
		out = append(out, r)
	}
	return out
}

// pendingWorkloads lists the workloads the leader would hand the scheduler:
// every one without an allocation that is not being deleted, by name.
func pendingWorkloads(st *State) []api.Workload {
	var out []api.Workload
	for name, w := range st.Workloads {
		if _, placed := st.Allocations[name]; placed || w.Deleting {
			continue
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// copyState copies what WhatIf changes: nodes, allocations, displaced and
// avoid. Workloads are shared: they are only read.
func copyState(st *State) *State {
	c := *st
	c.Nodes = append([]NodeInfo(nil), st.Nodes...)
	c.Allocations = make(map[string]api.Allocation, len(st.Allocations))
	for k, v := range st.Allocations {
		c.Allocations[k] = v
	}
	c.Displaced = make(map[string]bool, len(st.Displaced))
	for k, v := range st.Displaced {
		c.Displaced[k] = v
	}
	if st.Avoid != nil {
		c.Avoid = make(map[string]string, len(st.Avoid))
		for k, v := range st.Avoid {
			c.Avoid[k] = v
		}
	}
	return &c
}
