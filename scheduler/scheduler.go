// Package scheduler decides where workloads run. It is pure: it takes a
// snapshot of the cluster (State) and the current time and returns a Plan. No
// I/O, no goroutines, no clock reads, no package-level mutable state.
//
// The engine is a stack of small feasibility checkers (host ready, label
// constraints, anti-affinity, resources) and scorers (binpack or spread,
// preferences, spread-by), in the manner of Nomad's feasible/ package and the
// kube-scheduler framework. Every host a checker rejects gets a reason in
// words; Explain returns them, one verdict per host.
//
// The server's plan applier re-checks a plan with the same checkers before
// committing it: Verify, or by hand with a Tracker (Remove each preempted
// workload, then Fits and Add each placement).
package scheduler

import (
	"fmt"
	"sort"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// NodeInfo is a host as the scheduler sees it.
type NodeInfo struct {
	Node api.Node
	// Ready: the host holds a live heartbeat lease.
	Ready bool
	// Maintenance: an operator took the host out of service. Nothing new
	// is placed on it (the maintenance checker rejects it); what it runs
	// stays and still takes room there.
	Maintenance bool
	// ModRevision of the node's registration: the applier guards on it.
	ModRevision int64
}

// State is a consistent snapshot of what placement depends on. The engine
// never modifies it.
type State struct {
	Revision int64
	// Nodes in any order; the engine orders them by name.
	Nodes []NodeInfo
	// Allocations by workload name.
	Allocations map[string]api.Allocation
	// Workloads by name: every workload, placed or not. The engine reads the
	// priority and anti-affinity group of placed workloads from here; an
	// allocation whose workload is missing still takes up room but is never
	// preempted and belongs to no group.
	Workloads map[string]api.Workload
	// Settings are the cluster-wide scheduling settings. The zero value
	// means binpack, no preemption, no failover reservation and no host
	// reservation.
	Settings api.Settings
	// Displaced names workloads that ran before and lost their allocation
	// (host failure, preemption). Admission control (TolerateHostFailures)
	// holds back only new workloads: the failover reservation exists so that
	// displaced ones can restart. Nil: every pending workload counts as new.
	Displaced map[string]bool
	// Avoid maps a workload to a host it must not be placed on next: the
	// one that just gave up on it.
	Avoid map[string]string
	// Volumes by name, and the locks of exclusive ones (by volume): an
	// exclusive volume goes to one workload at a time.
	Volumes     map[string]api.Volume
	VolumeLocks map[string]api.Claim
	// VIPs by address: a workload with floating IPs goes only to hosts on
	// their networks.
	VIPs map[string]api.VIP
}

// Placement puts one workload on one host. CPUs and Memory are the
// workload's, to be written into the allocation.
type Placement struct {
	Workload string
	Host     string
	CPUs     int
	Memory   api.ByteSize
	// Score is the host's score (0-100) when it was chosen.
	Score float64
}

// Preemption stops a running workload to make room for a higher-priority
// one. The preempted workload loses its allocation: it becomes pending and
// may be placed again by a later evaluation.
type Preemption struct {
	Workload string
	Host     string
	// By is the workload the room is made for.
	By string
	// Reason is a sentence for the event log.
	Reason string
}

// Unplaced is a workload that could not be placed, with the reason in words.
type Unplaced struct {
	Workload string
	Reason   string
}

// Plan is the scheduler's answer for one evaluation. Apply it in this order:
// first remove the allocations of Preemptions, then create Placements.
type Plan struct {
	Placements  []Placement
	Preemptions []Preemption
	Unplaced    []Unplaced
}

// Scheduler places pending workloads. Implementations must be deterministic
// for a given state, pending list and now.
type Scheduler interface {
	Schedule(st *State, pending []api.Workload, now time.Time) Plan
}

// Usage is what the allocations on one host consume.
type Usage struct {
	CPUs   int
	Memory api.ByteSize
	Count  int
}

// UsageByHost adds up the allocations of every host.
func UsageByHost(allocs map[string]api.Allocation) map[string]Usage {
	u := make(map[string]Usage)
	for _, a := range allocs {
		x := u[a.Host]
		x.CPUs += a.CPUs
		x.Memory += a.Memory
		x.Count++
		u[a.Host] = x
	}
	return u
}

// Allocatable is what a host offers to workloads: its capacity minus the
// host reservation of the settings, never below zero.
func Allocatable(n api.Node, s api.Settings) (cpus int, mem api.ByteSize) {
	return max(n.CPUs-s.ReservedCPUs, 0), max(n.Memory-s.ReservedMemory, 0)
}

// Fits reports whether a workload needing cpus and mem fits on node given
// what is already used there, and if not, why.
//
// Deprecated: it knows neither the host reservation nor labels nor
// anti-affinity. Use Tracker.Fits (or Verify), which runs the engine's own
// checkers. Kept until server/leader.go switches over.
func Fits(n NodeInfo, used Usage, cpus int, mem api.ByteSize) (bool, string) {
	if !n.Ready {
		return false, reasonNotReady
	}
	if _, why := resourceReason(n.Node.CPUs-used.CPUs, n.Node.Memory-used.Memory, cpus, mem); why != "" {
		return false, why
	}
	return true, ""
}

// FirstFit is the engine with default options.
//
// Deprecated: use New. Kept so that server.Config's default still builds.
type FirstFit = Engine

// SortPending orders workloads as they are placed: higher priority first,
// then older first, then by name.
func SortPending(ws []api.Workload) {
	sort.SliceStable(ws, func(i, j int) bool { return placedBefore(&ws[i], &ws[j]) })
}

func placedBefore(a, b *api.Workload) bool {
	if a.Priority != b.Priority {
		return a.Priority > b.Priority
	}
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.Before(b.CreatedAt)
	}
	return a.Name < b.Name
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
