package server

import (
	"context"
	"fmt"
	"net/http"
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
	if changed, err := l.applyResets(ctx, snap, now); err != nil || changed {
		return changed, err
	}
	if changed, err := l.expireFailures(ctx, snap, now); err != nil || changed {
		return changed, err
	}
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

// quietSince says since when a placed workload has had no failure, from
// its host's report at the allocation's epoch: running since its last
// (re)start, or given up on (it does not run, so it fails no more). ok is
// false while it starts, restarts or has no report.
func quietSince(snap *clusterstore.Snapshot, a api.Allocation) (since time.Time, gaveUp, ok bool) {
	st, found := snap.Statuses[a.Host][a.Workload]
	if !found || st.Value.Epoch != a.Epoch {
		return time.Time{}, false, false
	}
	switch s := st.Value; {
	case s.State == api.StateRunning:
		return s.UpdatedAt, false, true
	case s.State == api.StateFailed && s.GaveUp:
		return s.UpdatedAt, true, true
	}
	return time.Time{}, false, false
}

// expireFailures clears the reschedule count of workloads that have been
// quiet for the failure_timeout setting (Pacemaker's failure-timeout, on
// by default here): running without a failure that long, or given up on
// that long ago — such a workload is then rescheduled again. Guarded by
// the allocation and the host's report being the ones read.
func (l *leader) expireFailures(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	timeout := time.Duration(snap.Settings.FailureTimeout)
	if timeout <= 0 {
		return false, nil
	}
	var names []string
	for name, a := range snap.Allocations {
		if a.Value.Reschedules > 0 {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	changed := false
	for i, name := range names {
		a := snap.Allocations[name]
		since, gaveUp, ok := quietSince(snap, a.Value)
		if !ok || now.Sub(since) < timeout {
			continue
		}
		na := a.Value
		na.Reschedules = 0
		msg := fmt.Sprintf("failure count %d expired: running on %s without a failure for %s (failure_timeout)", a.Value.Reschedules, a.Value.Host, now.Sub(since).Round(time.Second))
		if gaveUp {
			msg = fmt.Sprintf("failure count %d expired: %s gave up on it %s ago (failure_timeout); it is placed again", a.Value.Reschedules, a.Value.Host, now.Sub(since).Round(time.Second))
		}
		st := snap.Statuses[a.Value.Host][name]
		ok, err := l.commit(ctx,
			[]clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.AllocationKey(name), a.ModRevision), clusterstore.ModRevisionIs(clusterstore.StatusKey(a.Value.Host, name), st.ModRevision)},
			[]clusterstore.Op{clusterstore.Put(clusterstore.AllocationKey(name), clusterstore.Encode(na)), eventOp(now, 420+i, "failures-expired", a.Value.Host, name, msg)})
		if err != nil {
			return changed, err
		}
		if ok {
			l.log.Info("failure count expired", "workload", name, "count", a.Value.Reschedules)
			changed = true
		}
	}
	return changed, nil
}

// applyResets carries out operators' requests to clear failure counts
// (POST /v1/workloads/{name}/reset): the count goes to 0 in the allocation
// or pending record, with the backoff and the host to avoid; a workload
// whose host gave up on it is then rescheduled. The request goes in the
// same transaction.
func (l *leader) applyResets(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	var names []string
	for name := range snap.Resets {
		names = append(names, name)
	}
	sort.Strings(names)
	changed := false
	for i, name := range names {
		req := snap.Resets[name]
		rkey := clusterstore.ResetKey(name)
		conds := []clusterstore.Cond{clusterstore.ModRevisionIs(rkey, req.ModRevision)}
		ops := []clusterstore.Op{clusterstore.Delete(rkey)}
		before := 0
		if a, ok := snap.Allocations[name]; ok {
			before = a.Value.Reschedules
			conds = append(conds, clusterstore.ModRevisionIs(clusterstore.AllocationKey(name), a.ModRevision))
			if a.Value.Reschedules != 0 {
				na := a.Value
				na.Reschedules = 0
				ops = append(ops, clusterstore.Put(clusterstore.AllocationKey(name), clusterstore.Encode(na)))
			}
		}
		if p, ok := snap.Pending[name]; ok {
			before = max(before, p.Value.Reschedules)
			conds = append(conds, clusterstore.ModRevisionIs(clusterstore.PendingKey(name), p.ModRevision))
			if np := p.Value; np.Reschedules != 0 || !np.NotBefore.IsZero() || np.AvoidHost != "" {
				np.Reschedules, np.NotBefore, np.AvoidHost = 0, time.Time{}, ""
				ops = append(ops, clusterstore.Put(clusterstore.PendingKey(name), clusterstore.Encode(np)))
			}
		}
		if _, exists := snap.Workloads[name]; exists {
			by := ""
			if req.Value.By != "" {
				by = " by " + req.Value.By
			}
			ops = append(ops, eventOp(now, 440+i, "failures-reset", "", name, fmt.Sprintf("failure count %d cleared%s", before, by)))
		}
		ok, err := l.commit(ctx, conds, ops)
		if err != nil {
			return changed, err
		}
		if ok {
			l.log.Info("failure count reset", "workload", name, "count", before)
			changed = true
		}
	}
	return changed, nil
}

// resetWait is how long POST /v1/workloads/{name}/reset waits for the
// leader to apply the request before it answers.
var resetWait = 5 * time.Second

// resetWorkload answers POST /v1/workloads/{name}/reset: it asks the
// leader to clear the workload's failure count, waits (briefly) until it
// has, and says what happens next.
func (h *Handler) resetWorkload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := api.ValidateName("workload", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	wl, found := snap.Workloads[name]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %q not found", name))
		return
	}
	if wl.Value.Deleting {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("workload %q is being deleted", name))
		return
	}
	res := api.ResetResult{Workload: name}
	gaveUp := false
	if a, ok := snap.Allocations[name]; ok {
		res.Before = a.Value.Reschedules
		_, gaveUp, _ = quietSince(snap, a.Value)
	} else if p, ok := snap.Pending[name]; ok {
		res.Before = p.Value.Reschedules
	}
	now := h.now().UTC()
	req := api.ResetRequest{Schema: api.SchemaVersion, Workload: name, By: requester(r, r.URL.Query().Get("by")), At: now}
	key := clusterstore.ResetKey(name)
	if _, _, err := h.store.Txn(r.Context(), []clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.WorkloadKey(name), wl.ModRevision)},
		[]clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(req))}); err != nil {
		h.storeError(w, "reset workload", err)
		return
	}
	deadline := time.Now().Add(resetWait)
	for time.Now().Before(deadline) {
		_, pending, _, err := h.store.Get(r.Context(), key)
		if err != nil {
			h.storeError(w, "reset workload", err)
			return
		}
		if !pending {
			res.Applied = true
			break
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
	if snap, ok = h.snapshot(w, r); !ok {
		return
	}
	if wl, found = snap.Workloads[name]; found {
		res.View = workloadView(snap, wl.Value)
	}
	switch {
	case !res.Applied:
		res.Message = "the reset waits for the leader (is there one? see bulwarkctl status); it is applied when the leader next evaluates"
	case gaveUp:
		res.Message = fmt.Sprintf("failure count %d cleared; its host gave up on it, so it is placed again on another host after a short backoff", res.Before)
	case res.Before == 0:
		res.Message = "nothing to clear: it had no failures counted"
	default:
		res.Message = fmt.Sprintf("failure count %d cleared", res.Before)
	}
	h.log.Info("workload reset", "workload", name, "applied", res.Applied, "before", res.Before)
	writeJSON(w, http.StatusOK, res)
}
