package server

import (
	"context"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// healthSeen is the health (healthy or unhealthy) that hosts last
// reported for each workload, as the leader saw it in its watch.
type healthSeen map[string]string

// healthEvents writes an "unhealthy" event when a host reports a workload
// unhealthy, and a "healthy" event when a workload that was unhealthy is
// reported healthy again (on any host: after a move too). It reads the
// status writes of one watch response in their order, so that a report
// that lasts only until the restart that follows it is seen as well.
// "starting", "unknown" and no health change nothing. A new leader starts
// from what it sees: an unhealthy workload's first report to it gets an
// event, a healthy one's does not. A failed write is logged; the
// evaluation that follows notices a lost leadership.
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
			if st.Health != api.HealthHealthy && st.Health != api.HealthUnhealthy {
				continue
			}
			prev, known := l.health[st.Workload]
			if prev == st.Health {
				continue
			}
			l.health[st.Workload] = st.Health
			switch {
			case st.Health == api.HealthUnhealthy:
				ops = append(ops, eventOp(now, 500+len(ops), "unhealthy", st.Host, st.Workload, "health check failed: "+st.HealthDetail))
			case known:
				ops = append(ops, eventOp(now, 500+len(ops), "healthy", st.Host, st.Workload, "health check passes again"))
			}
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
