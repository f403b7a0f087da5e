package server

import (
	"context"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// healthSeen is, per workload, the health its hosts last reported, as the
// leader saw it in its watch.
type healthSeen map[string]seenHealth

type seenHealth struct {
	// last is the last reported health: starting, healthy or unhealthy.
	last string
	// bad: the last healthy or unhealthy report was unhealthy.
	bad bool
}

// healthEvents writes an "unhealthy" event each time a host reports a
// workload unhealthy (again after a restart, too), and a "healthy" event
// when a workload that was unhealthy passes its check again (on any host:
// after a move too). It reads the status writes of one watch response in
// their order, so that a report that lasts only until the restart that
// follows it is seen as well. "unknown" and no health change nothing. A
// new leader starts from what it sees: an unhealthy workload's first
// report to it gets an event, a healthy one's does not. A failed write is
// logged; the evaluation that follows notices a lost leadership.
func (l *leader) healthEvents(ctx context.Context, evs []clusterstore.Event) {
	if l.health == nil {
		l.health = healthSeen{}
	}
	now := l.now()
	var ops []clusterstore.Op
	for _, ev := range evs {
		key := ev.KV.Key
		switch {
		case ev.Type == clusterstore.EventDelete && strings.HasPrefix(key, clusterstore.WorkloadsPrefix):
			delete(l.health, strings.TrimPrefix(key, clusterstore.WorkloadsPrefix))
		case ev.Type == clusterstore.EventPut && strings.HasPrefix(key, clusterstore.StatusPrefix):
			var st api.WorkloadStatus
			if err := clusterstore.Decode(ev.KV, &st); err != nil {
				continue
			}
			seen := l.health[st.Workload]
			switch {
			case st.Health == api.HealthUnhealthy && seen.last != api.HealthUnhealthy:
				ops = append(ops, eventOp(now, 500+len(ops), "unhealthy", st.Host, st.Workload, "health check failed: "+st.HealthDetail))
			case st.Health == api.HealthHealthy && seen.last != api.HealthHealthy && seen.bad:
				ops = append(ops, eventOp(now, 500+len(ops), "healthy", st.Host, st.Workload, "health check passes again"))
			}
			switch st.Health {
			case api.HealthStarting:
				seen.last = st.Health
			case api.HealthHealthy, api.HealthUnhealthy:
				seen.last, seen.bad = st.Health, st.Health == api.HealthUnhealthy
			default:
				continue
			}
			l.health[st.Workload] = seen
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), max(l.cfg.MaxTxnOps-1, 1))
		if _, err := l.commit(ctx, nil, ops[:n]); err != nil {
			l.log.Warn("writing health events failed", "err", err)
			return
		}
		ops = ops[n:]
	}
}
