package server

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// rescheduleBackoff is the wait before the n-th reschedule (n from 1):
// 5s, 10s, 20s...
func rescheduleBackoff(n int) time.Duration { return 5 * time.Second << min(max(n-1, 0), 6) }

// reschedule moves workloads whose host gave up on them (it restarted them
// api.RestartLimit times) back to pending, to be placed on another host
// after a backoff, at most api.RescheduleLimit times. The host is alive and
// says the workload is not running, so no fencing is needed: the agent's
// report at the allocation's epoch is the proof, and the deletion is
// guarded by that report and the allocation being unchanged.
func (l *leader) reschedule(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	var names []string
	for name := range snap.Allocations {
		names = append(names, name)
	}
	sort.Strings(names)
	changed := false
	for _, name := range names {
		a := snap.Allocations[name]
		st, ok := snap.Statuses[a.Value.Host][name]
		if !ok || !st.Value.GaveUp || st.Value.Epoch != a.Value.Epoch || st.Value.State != api.StateFailed {
			continue
		}
		if a.Value.Reschedules >= api.RescheduleLimit {
			continue // stays failed; workloadView says why
		}
		n := a.Value.Reschedules + 1
		p := api.PendingReason{Schema: api.SchemaVersion, Workload: name, At: now.UTC(), Displaced: true,
			Reschedules: n, AvoidHost: a.Value.Host, NotBefore: now.Add(rescheduleBackoff(n)).UTC(),
			Reason: fmt.Sprintf("rescheduling (%d of %d) after %s", n, api.RescheduleLimit, st.Value.Reason)}
		statusKey := clusterstore.StatusKey(a.Value.Host, name)
		ok, err := l.commit(ctx,
			[]clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.AllocationKey(name), a.ModRevision), clusterstore.ModRevisionIs(statusKey, st.ModRevision)},
			[]clusterstore.Op{
				clusterstore.Delete(clusterstore.AllocationKey(name)),
				clusterstore.Put(clusterstore.PendingKey(name), clusterstore.Encode(p)),
				eventOp(now, 400, "rescheduling", a.Value.Host, name, p.Reason),
			})
		if err != nil {
			return changed, err
		}
		if ok {
			l.log.Warn("rescheduling", "workload", name, "from", a.Value.Host, "attempt", n)
			changed = true
		}
	}
	return changed, nil
}
