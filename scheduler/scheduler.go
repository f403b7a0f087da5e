// Package scheduler decides where workloads run. It is pure: it takes a
// snapshot of the cluster and the current time and returns a plan. No I/O, no
// goroutines, no clock reads. The server's plan applier commits the plan and
// re-checks every placement with the same Fits function.
package scheduler

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// NodeInfo is a host as the scheduler sees it.
type NodeInfo struct {
	Node api.Node
	// Ready: the host holds a live heartbeat lease.
	Ready bool
	// ModRevision of the node's registration: the applier guards on it.
	ModRevision int64
}

// State is a consistent snapshot of what placement depends on.
type State struct {
	Revision int64
	Nodes    []NodeInfo
	// Allocations by workload name.
	Allocations map[string]api.Allocation
}

// Placement puts one workload on one host.
type Placement struct {
	Workload string
	Host     string
	CPUs     int
	Memory   api.ByteSize
}

// Unplaced is a workload that could not be placed, with the reason in words.
type Unplaced struct {
	Workload string
	Reason   string
}

// Plan is the scheduler's answer for one evaluation.
type Plan struct {
	Placements []Placement
	Unplaced   []Unplaced
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

// Fits reports whether a workload needing cpus and mem fits on node given
// what is already used there, and if not, why. The applier calls it again
// before committing, so the engine and the applier never disagree.
func Fits(n NodeInfo, used Usage, cpus int, mem api.ByteSize) (bool, string) {
	if !n.Ready {
		return false, "host is not ready"
	}
	var why []string
	if free := n.Node.CPUs - used.CPUs; cpus > free {
		why = append(why, fmt.Sprintf("cpu: needs %d, %d free", cpus, max(free, 0)))
	}
	if free := n.Node.Memory - used.Memory; mem > free {
		why = append(why, fmt.Sprintf("memory: needs %s, %s free", mem.Human(), max(free, 0).Human()))
	}
	if len(why) > 0 {
		return false, strings.Join(why, "; ")
	}
	return true, ""
}

// SortPending orders workloads as they are placed: higher priority first,
// then older first, then by name.
func SortPending(ws []api.Workload) {
	sort.SliceStable(ws, func(i, j int) bool {
		a, b := ws[i], ws[j]
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.Name < b.Name
	})
}

// FirstFit places each workload on the first ready host, by name, with room.
// It is the foundation's placement; the scheduler issue replaces it.
type FirstFit struct{}

// Schedule implements Scheduler.
func (FirstFit) Schedule(st *State, pending []api.Workload, _ time.Time) Plan {
	nodes := append([]NodeInfo(nil), st.Nodes...)
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Node.Name < nodes[j].Node.Name })
	used := UsageByHost(st.Allocations)
	ws := append([]api.Workload(nil), pending...)
	SortPending(ws)

	var plan Plan
	for _, w := range ws {
		var reasons []string
		placed := false
		for _, n := range nodes {
			ok, why := Fits(n, used[n.Node.Name], w.CPUs, w.Memory)
			if !ok {
				reasons = append(reasons, n.Node.Name+": "+why)
				continue
			}
			plan.Placements = append(plan.Placements, Placement{Workload: w.Name, Host: n.Node.Name, CPUs: w.CPUs, Memory: w.Memory})
			u := used[n.Node.Name]
			u.CPUs += w.CPUs
			u.Memory += w.Memory
			u.Count++
			used[n.Node.Name] = u
			placed = true
			break
		}
		if !placed {
			plan.Unplaced = append(plan.Unplaced, Unplaced{Workload: w.Name, Reason: unplacedReason(nodes, w, reasons)})
		}
	}
	return plan
}

func unplacedReason(nodes []NodeInfo, w api.Workload, reasons []string) string {
	if len(nodes) == 0 {
		return "no hosts are registered"
	}
	larger := true
	for _, n := range nodes {
		if w.CPUs <= n.Node.CPUs && w.Memory <= n.Node.Memory {
			larger = false
		}
	}
	if larger {
		return fmt.Sprintf("larger than every host: needs %d cpus and %s memory", w.CPUs, w.Memory.Human())
	}
	return "no host has room: " + strings.Join(reasons, ", ")
}
