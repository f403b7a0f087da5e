package scheduler

import (
	"fmt"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
)

// Explain is Engine.Explain with default options.
func Explain(st *State, name string) api.Explanation {
	return Engine{}.Explain(st, name)
}

// Explain says, for every registered host, whether the named workload could
// go there and why not, with the score of each host that could. It always
// evaluates every host (no candidate limit).
//
// A placed workload is evaluated as if it were being placed again, with its
// own allocation removed; its current host is marked Chosen. A pending
// workload is evaluated against the placed workloads only (other pending
// workloads are ignored, though a real evaluation may place higher-priority
// ones first); the host it would get now, if any, is marked Chosen.
//
// State is StatePending, or StateRunning for a placed workload: the engine
// does not know what the agent reports, and the caller may refine it.
func (e Engine) Explain(st *State, name string) api.Explanation {
	ex := api.Explanation{Workload: name, State: api.StatePending}
	w, ok := st.Workloads[name]
	if !ok {
		ex.Summary = "no such workload"
		return ex
	}
	t := NewTracker(st)
	current, placed := int32(-1), false
	if ai, ok := t.lookup(name); ok {
		placed, current = true, t.allocs[ai].host
		ex.State, ex.Host = api.StateRunning, st.Allocations[name].Host
		t.remove(ai)
	}
	isNew := !placed && st.Settings.TolerateHostFailures > 0 && !st.Displaced[name]
	c, err := t.candidate(&w, isNew)
	if err != nil {
		ex.Summary = "invalid placement: " + err.Error()
		return ex
	}
	if isNew {
		t.initLost()
	}
	t.prepare(c)
	ex.Hosts = make([]api.HostVerdict, len(t.nodes))
	ch := newChoice()
	for h, ni := range t.nodes {
		v := api.HostVerdict{Host: ni.Node.Name}
		if ok, _, why := t.check(h, c); ok {
			sc := t.score(h, c)
			v.Feasible, v.Score = true, round1(sc)
			ch.offer(t, h, sc)
		} else {
			v.Reason = why
		}
		ex.Hosts[h] = v
	}

	if placed {
		if current < 0 {
			ex.Summary = fmt.Sprintf("placed on %s, which is not registered", ex.Host)
			return ex
		}
		v := &ex.Hosts[current]
		v.Chosen = true
		if v.Feasible {
			ex.Summary = fmt.Sprintf("placed on %s (score %.0f)", ex.Host, v.Score)
		} else {
			ex.Summary = fmt.Sprintf("placed on %s; it would not be placed there now: %s", ex.Host, v.Reason)
		}
		return ex
	}

	if why := t.volumeConflict(&w); why != "" {
		ex.Summary = "pending: " + why
		return ex
	}
	d := t.finish(c, ch)
	if d.host < 0 {
		ex.Summary = "pending: " + d.reason
		return ex
	}
	v := &ex.Hosts[d.host]
	v.Chosen = true
	if len(d.victims) == 0 {
		ex.Summary = fmt.Sprintf("pending: would be placed on %s (score %.0f)", v.Host, d.score)
		return ex
	}
	names := make([]string, len(d.victims))
	for i, ai := range d.victims {
		a := t.meta(ai)
		names[i] = fmt.Sprintf("%s (priority %d)", a.name, a.prio)
	}
	ex.Summary = fmt.Sprintf("pending: would be placed on %s after stopping %s", v.Host, strings.Join(names, ", "))
	return ex
}
