package server

import (
	"fmt"
	"sort"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// nodeViews derives what `node list` shows from a snapshot.
func nodeViews(snap *clusterstore.Snapshot) []api.NodeView {
	allocs := make(map[string]api.Allocation, len(snap.Allocations))
	for name, a := range snap.Allocations {
		allocs[name] = a.Value
	}
	used := scheduler.UsageByHost(allocs)
	out := make([]api.NodeView, 0, len(snap.Nodes))
	for name, n := range snap.Nodes {
		v := api.NodeView{Node: n.Value}
		v.State, v.Reason = nodeState(snap, name)
		v.Fencing = fenceHealthText(snap, name)
		u := used[name]
		v.CPUsUsed, v.MemoryUsed, v.Workloads = u.CPUs, u.Memory, u.Count
		if m, ok := snap.Maintenance[name]; ok {
			mv := m.Value
			v.Maintenance = &mv
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// workloadView derives a workload's user-facing state: the agent's report
// when it is for the current allocation epoch, otherwise what we can tell.
func workloadView(snap *clusterstore.Snapshot, w api.Workload) api.WorkloadView {
	v := api.WorkloadView{Workload: w}
	a, placed := snap.Allocations[w.Name]
	if placed {
		v.Host, v.Epoch, v.Reschedules = a.Value.Host, a.Value.Epoch, a.Value.Reschedules
	} else if p, ok := snap.Pending[w.Name]; ok {
		v.Reschedules = p.Value.Reschedules
	}
	// A status for this workload on any host means something may still run.
	var st *api.WorkloadStatus
	for _, byName := range snap.Statuses {
		if s, ok := byName[w.Name]; ok {
			if st == nil || (placed && s.Value.Host == v.Host) {
				sv := s.Value
				st = &sv
			}
		}
	}
	switch {
	case w.Deleting:
		v.State = api.StateStopped
		if placed || st != nil {
			v.State, v.Reason = api.StateStopping, "deleting"
		}
	case !placed:
		v.State, v.Reason = api.StatePending, "waiting for the scheduler"
		if p, ok := snap.Pending[w.Name]; ok {
			v.Reason = p.Value.Reason
		}
	case st != nil && st.Host == v.Host && st.Epoch == v.Epoch:
		v.State, v.Reason = st.State, st.Reason
		v.Health, v.HealthDetail, v.Runtime = st.Health, st.HealthDetail, st.Runtime
		if st.GaveUp && a.Value.Reschedules >= api.RescheduleLimit {
			again := "try again with"
			if ft := snap.Settings.FailureTimeout; ft > 0 {
				again = fmt.Sprintf("it is tried again %s after it gave up (failure_timeout), or now with", ft)
			}
			v.Reason += fmt.Sprintf("; reschedule limit (%d) reached: %s: bulwarkctl workload reset %s", api.RescheduleLimit, again, w.Name)
		}
	default:
		if _, alive := snap.Heartbeats[v.Host]; !alive {
			v.State, v.Reason = api.StatePending, "host "+v.Host+" is not ready (no heartbeat)"
		} else {
			v.State, v.Reason = api.StateStarting, "waiting for host "+v.Host+" to start it"
		}
	}
	return v
}

func workloadViews(snap *clusterstore.Snapshot) []api.WorkloadView {
	out := make([]api.WorkloadView, 0, len(snap.Workloads))
	for _, w := range snap.Workloads {
		out = append(out, workloadView(snap, w.Value))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// nodeState is what `node list` shows: the fence record and the failure
// detector's stored state win over the heartbeat.
func nodeState(snap *clusterstore.Snapshot, host string) (api.NodeState, string) {
	_, alive := snap.Heartbeats[host]
	hs, hasState := snap.HostStates[host]
	if rec, fenced := snap.Fencing[host]; fenced {
		st := api.NodeFenced
		if hasState && hs.Value.State == api.NodeRecovered {
			st = api.NodeRecovered
		}
		why := fmt.Sprintf("fenced by %s at %s (power %s); clear with `bulwarkctl node clear %s` once repaired",
			rec.Value.Device, rec.Value.Confirmed.Format(time.RFC3339), rec.Value.PowerState, host)
		return st, why
	}
	if hasState && hs.Value.State != api.NodeReady {
		return hs.Value.State, hs.Value.Reason
	}
	if alive {
		return api.NodeReady, ""
	}
	return api.NodeDown, "no heartbeat"
}

func fenceHealthText(snap *clusterstore.Snapshot, host string) string {
	fh, ok := snap.FenceHealth[host]
	switch {
	case !ok:
		return ""
	case fh.Value.Devices == 0:
		return "none"
	case fh.Value.OK:
		return "ok"
	}
	return "unfenceable: " + fh.Value.Error
}
