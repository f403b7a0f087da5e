package scheduler

import "fmt"

// Verify replays plan against st with the engine's own checks, the way the
// plan applier must before committing: it removes every preempted
// workload's allocation (checking that it is on the stated host and of
// strictly lower priority than the workload it makes room for), then, in
// order, checks each placement with Tracker.Fits and adds it. It returns
// the first problem found. Admission control is not re-checked: it is a
// policy of the engine, not an invariant of the cluster.
func Verify(st *State, plan Plan) error {
	t := NewTracker(st)
	for _, p := range plan.Preemptions {
		ai, ok := t.lookup(p.Workload)
		if !ok {
			return fmt.Errorf("plan preempts %s, which is not placed", p.Workload)
		}
		if host := t.hostName(t.allocs[ai].host); host != p.Host {
			return fmt.Errorf("plan preempts %s on %s, but it is on %s", p.Workload, p.Host, host)
		}
		by, ok := st.Workloads[p.By]
		if !ok {
			return fmt.Errorf("plan preempts %s for %s, which does not exist", p.Workload, p.By)
		}
		if a := t.meta(ai); a.prio >= int32(by.Priority) || a.flags&allocDeleting != 0 {
			return fmt.Errorf("plan preempts %s for %s, which may not preempt it", p.Workload, p.By)
		}
		t.remove(ai)
	}
	for _, p := range plan.Placements {
		w, ok := st.Workloads[p.Workload]
		if !ok {
			return fmt.Errorf("plan places %s, which does not exist", p.Workload)
		}
		if p.CPUs != w.CPUs || p.Memory != w.Memory {
			return fmt.Errorf("plan places %s with %d cpus and %s, but it needs %d and %s", p.Workload, p.CPUs, p.Memory, w.CPUs, w.Memory)
		}
		if ok, why := t.Fits(p.Host, &w); !ok {
			return fmt.Errorf("plan places %s on %s, but it does not fit: %s", p.Workload, p.Host, why)
		}
		if err := t.Add(p.Host, &w); err != nil {
			return err
		}
	}
	return nil
}
