package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// Rebalancing.
//
// GET /v1/rebalance answers scheduler.PlanRebalance on live state, changing
// nothing. POST /v1/rebalance stores a run (/bulwark/v1/rebalance) with
// the moves of the plan the operator reviewed, if the plan computed now is
// still exactly that; the leader then carries the run out, one move at a
// time, and with auto_rebalance on starts runs itself, at most every
// auto_rebalance_interval.
//
// A move is made the way a drain makes one: the leader checks it again on
// the current state (scheduler.CheckRebalanceMove), then deletes the
// allocation and leaves the workload pending and displaced, with the host
// still stopping it recorded (StoppingOn), in one transaction guarded by
// leadership, the run record, the allocation and both hosts' registration
// and heartbeat. The plan applier holds the workload while any host still
// reports it; once the old host's agent has stopped it, the leader places
// it on the planned host, after the same check the applier makes
// (scheduler.Verify), guarded as the applier guards a placement. If it no
// longer fits there, it is left to the scheduler like any pending workload
// (the move then says why). The next move starts when this one has
// settled (movePhase, as for a drain): running on its new host, or failed.

// routeRebalance registers the rebalance routes.
func (h *Handler) routeRebalance(m mux) {
	m.HandleFunc("GET /v1/rebalance", h.getRebalance)
	m.HandleFunc("POST /v1/rebalance", h.postRebalance)
}

// rebalanceReason is the pending reason of a workload being moved: it
// starts with drainReasonPrefix, so movePhase takes it for a move.
func rebalanceReason(from, to string) string {
	return fmt.Sprintf("%s%s to %s (rebalance)", drainReasonPrefix, from, to)
}

// readRebalance reads the run record; ok is false if there is none.
func readRebalance(ctx context.Context, store clusterstore.Store) (clusterstore.Versioned[api.Rebalance], bool, error) {
	kv, ok, _, err := store.Get(ctx, clusterstore.RebalanceKey)
	if err != nil || !ok {
		return clusterstore.Versioned[api.Rebalance]{}, false, err
	}
	var r api.Rebalance
	if err := clusterstore.Decode(kv, &r); err != nil {
		return clusterstore.Versioned[api.Rebalance]{}, false, err
	}
	return clusterstore.Versioned[api.Rebalance]{Value: r, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}, true, nil
}

// rebalanceGuard keeps a write to the run record from racing another.
func rebalanceGuard(rec clusterstore.Versioned[api.Rebalance], found bool) clusterstore.Cond {
	if !found {
		return clusterstore.Missing(clusterstore.RebalanceKey)
	}
	return clusterstore.ModRevisionIs(clusterstore.RebalanceKey, rec.ModRevision)
}

// runningWorkloads names the workloads whose host reports them running at
// their allocation's epoch: only those are moved.
func runningWorkloads(snap *clusterstore.Snapshot) map[string]bool {
	out := map[string]bool{}
	for name, a := range snap.Allocations {
		if st, ok := snap.Statuses[a.Value.Host][name]; ok && st.Value.Epoch == a.Value.Epoch && st.Value.State == api.StateRunning {
			out[name] = true
		}
	}
	return out
}

// RebalancePlanOf is the answer of GET /v1/rebalance (without Run).
func RebalancePlanOf(snap *clusterstore.Snapshot) (api.RebalancePlan, error) {
	res, err := scheduler.PlanRebalance(SchedulerState(snap), scheduler.RebalanceOptions{Running: runningWorkloads(snap)})
	if err != nil {
		return api.RebalancePlan{}, err
	}
	p := api.RebalancePlan{Revision: snap.Revision, Threshold: res.Threshold, Spread: res.Spread, SpreadAfter: res.SpreadAfter,
		Moves: []api.RebalanceMove{}, Hosts: []api.RebalanceHost{}, Summary: res.Summary}
	for _, m := range res.Moves {
		p.Moves = append(p.Moves, api.RebalanceMove{Workload: m.Workload, Priority: m.Priority, CPUs: m.CPUs, Memory: m.Memory, From: m.From, To: m.To, Why: m.Why})
	}
	for _, hl := range res.Hosts {
		p.Hosts = append(p.Hosts, api.RebalanceHost{Host: hl.Host, Load: hl.Load, LoadAfter: hl.LoadAfter, CPUs: hl.CPUs, CPUsUsed: hl.CPUsUsed,
			Memory: hl.Memory, MemoryUsed: hl.MemoryUsed, InService: hl.InService, Note: hl.Note})
	}
	if drainsUnderWay(snap) {
		p.Notes = append(p.Notes, "a drain is under way: rebalancing waits until it has ended")
	}
	return p, nil
}

func (h *Handler) getRebalance(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.Query()) > 0 {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "GET /v1/rebalance takes no parameters: the threshold is the rebalance_threshold setting")
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	p, err := RebalancePlanOf(snap)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
		return
	}
	rec, found, err := readRebalance(r.Context(), h.store)
	if err != nil {
		h.storeError(w, "read rebalance", err)
		return
	}
	if found && rec.Value.State != "" {
		run := rec.Value
		p.Run = &run
		if run.State == api.RebalanceRunning {
			p.Notes = append(p.Notes, fmt.Sprintf("a rebalance is under way (started %s): this plan is for the cluster as it is now", run.Started.Format(time.RFC3339)))
		}
	}
	writeJSON(w, http.StatusOK, p)
}

// samePlan reports whether two move lists are the same moves in the same
// order; if not, it says how they differ.
func samePlan(want, got []api.RebalanceMove) (bool, string) {
	list := func(ms []api.RebalanceMove) string {
		if len(ms) == 0 {
			return "no moves"
		}
		var s []string
		for _, m := range ms {
			s = append(s, fmt.Sprintf("%s %s->%s", m.Workload, m.From, m.To))
		}
		return strings.Join(s, ", ")
	}
	if len(want) == len(got) {
		same := true
		for i := range want {
			if want[i].Workload != got[i].Workload || want[i].From != got[i].From || want[i].To != got[i].To {
				same = false
				break
			}
		}
		if same {
			return true, ""
		}
	}
	return false, fmt.Sprintf("you reviewed %s; the plan is now %s", list(want), list(got))
}

// postRebalance answers POST /v1/rebalance: it starts a run of the plan
// the operator reviewed, if that is still the plan. 202 with the run; 409
// if the plan changed, a rebalance or a drain is under way; 200 with
// nothing stored if the plan is (still) empty.
func (h *Handler) postRebalance(w http.ResponseWriter, r *http.Request) {
	var req api.RebalanceRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid rebalance request: "+err.Error()+` (send {"revision": N, "moves": [...]} from GET /v1/rebalance)`)
		return
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid rebalance request: "+strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	if req.Revision > snap.Revision {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, fmt.Sprintf("invalid rebalance request: revision %d is ahead of the cluster's (%d): send the revision of the plan from GET /v1/rebalance", req.Revision, snap.Revision))
		return
	}
	rec, found, err := readRebalance(r.Context(), h.store)
	if err != nil {
		h.storeError(w, "read rebalance", err)
		return
	}
	if found && rec.Value.State == api.RebalanceRunning {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("a rebalance is already under way (started %s by %s); follow it with GET /v1/rebalance", rec.Value.Started.Format(time.RFC3339), rebalanceBy(rec.Value)))
		return
	}
	if drainsUnderWay(snap) {
		writeError(w, http.StatusConflict, api.CodeConflict, "a drain is under way: rebalance once it has ended (bulwarkctl node list shows it)")
		return
	}
	plan, err := RebalancePlanOf(snap)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
		return
	}
	// The plan the operator reviewed must be the plan now: the moves they
	// saw, or, without them, the plan at their revision, which we can
	// only know if nothing changed since.
	if req.Moves != nil {
		if same, diff := samePlan(req.Moves, plan.Moves); !same {
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("the rebalance plan changed since revision %d (%s); nothing was moved: review it again (GET /v1/rebalance)", req.Revision, diff))
			return
		}
	} else if req.Revision != snap.Revision {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("the cluster changed since revision %d (it is at %d) and the request does not say which moves you reviewed; nothing was moved: send the moves from GET /v1/rebalance with the revision, or review the plan again", req.Revision, snap.Revision))
		return
	}
	by := requester(r, req.By)
	now := h.now().UTC()
	if len(plan.Moves) == 0 {
		writeJSON(w, http.StatusOK, api.Rebalance{Schema: api.SchemaVersion, State: api.RebalanceComplete, By: by, Revision: req.Revision,
			Threshold: plan.Threshold, Started: now, Finished: now, Moves: []api.RebalanceMove{}, Message: "nothing to move: " + plan.Summary})
		return
	}
	run := newRun(snap, plan, by, false, now)
	run.Revision = req.Revision
	run.LastAuto = rec.Value.LastAuto
	conds := []clusterstore.Cond{rebalanceGuard(rec, found)}
	ops := []clusterstore.Op{clusterstore.Put(clusterstore.RebalanceKey, clusterstore.Encode(run)),
		eventOp(now, 0, "rebalance-started", "", "", fmt.Sprintf("rebalance started by %s: %s", orUnknown(by), plan.Summary))}
	done, _, err := h.store.Txn(r.Context(), conds, ops)
	if err != nil {
		h.storeError(w, "start rebalance", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, "another rebalance started meanwhile; nothing was moved: follow it with GET /v1/rebalance")
		return
	}
	h.log.Warn("rebalance started", "by", by, "moves", len(run.Moves))
	writeJSON(w, http.StatusAccepted, run)
}

func rebalanceBy(r api.Rebalance) string {
	if r.Auto {
		return "the leader (auto_rebalance)"
	}
	return orUnknown(r.By)
}

// newRun is a run of plan's moves, each with the workload's epoch now.
func newRun(snap *clusterstore.Snapshot, plan api.RebalancePlan, by string, auto bool, now time.Time) api.Rebalance {
	run := api.Rebalance{Schema: api.SchemaVersion, State: api.RebalanceRunning, Auto: auto, By: by, Revision: plan.Revision,
		Threshold: plan.Threshold, Started: now}
	for _, m := range plan.Moves {
		m.Epoch = snap.Allocations[m.Workload].Value.Epoch
		run.Moves = append(run.Moves, m)
	}
	return run
}

// rebalance is the leader's part: it advances the run under way, or with
// auto_rebalance on starts one when the interval has passed. It returns
// true when it wrote something the evaluation depends on.
func (l *leader) rebalance(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	rec, found, err := readRebalance(ctx, l.cfg.Store)
	if err != nil {
		// An unreadable run record must not stop placement and failover:
		// rebalancing waits until it is readable (or deleted).
		l.log.Warn("rebalance: cannot read the run record; not rebalancing", "err", err)
		return false, nil
	}
	if found && rec.Value.State == api.RebalanceRunning {
		return l.rebalanceStep(ctx, snap, rec, now)
	}
	s := snap.Settings
	if !s.AutoRebalance {
		return false, nil
	}
	interval := time.Duration(s.AutoRebalanceInterval)
	if interval < api.MinAutoRebalanceInterval {
		interval = api.DefaultAutoRebalanceInterval
	}
	last := rec.Value.LastAuto
	if !last.IsZero() && now.Before(last.Add(interval)) {
		return false, nil
	}
	if drainsUnderWay(snap) {
		return false, nil // check again once the drain has ended
	}
	plan, err := RebalancePlanOf(snap)
	if err != nil {
		return false, err
	}
	next := rec.Value
	next.Schema, next.LastAuto = api.SchemaVersion, now.UTC()
	ops := []clusterstore.Op{}
	if len(plan.Moves) > 0 {
		next = newRun(snap, plan, "", true, now.UTC())
		next.LastAuto = now.UTC()
		ops = append(ops, eventOp(now, 600, "rebalance-started", "", "", "automatic rebalance (auto_rebalance): "+plan.Summary))
		l.log.Info("automatic rebalance", "moves", len(plan.Moves), "summary", plan.Summary)
	}
	ops = append(ops, clusterstore.Put(clusterstore.RebalanceKey, clusterstore.Encode(next)))
	ok, err := l.commit(ctx, []clusterstore.Cond{rebalanceGuard(rec, found)}, ops)
	if err != nil || !ok {
		return !ok, err
	}
	// Only a new run changes what the evaluation does next.
	return len(plan.Moves) > 0, nil
}

// rebalanceStep settles the move under way, places it once its old host
// has stopped it, or starts the next one, or ends the run.
func (l *leader) rebalanceStep(ctx context.Context, snap *clusterstore.Snapshot, rec clusterstore.Versioned[api.Rebalance], now time.Time) (bool, error) {
	run := rec.Value
	run.Moves = append([]api.RebalanceMove(nil), run.Moves...)
	conds := []clusterstore.Cond{rebalanceGuard(rec, true)}
	var ops []clusterstore.Op
	seq := 0
	event := func(typ, host, workload, msg string) {
		seq++
		ops = append(ops, eventOp(now, 600+seq, typ, host, workload, msg))
	}
	commit := func() (bool, error) {
		ops = append(ops, clusterstore.Put(clusterstore.RebalanceKey, clusterstore.Encode(run)))
		_, err := l.commit(ctx, conds, ops)
		return true, err
	}
	for i := range run.Moves {
		mv := &run.Moves[i]
		if mv.Outcome != "" || mv.Started.IsZero() {
			continue
		}
		// The move under way.
		ph := movePhase(snap, mv.From, api.DrainMove{Workload: mv.Workload, Epoch: mv.Epoch})
		if ph.settled {
			mv.Outcome, mv.Host, mv.Reason = ph.phase, ph.now, ph.detail
			if ph.phase == api.DrainMoved {
				event("moved", mv.From, mv.Workload, fmt.Sprintf("rebalance: moved off %s: stopped there, running on %s", mv.From, ph.now))
			} else {
				event("move-failed", mv.From, mv.Workload, fmt.Sprintf("rebalance: moving off %s: %s: %s", mv.From, ph.phase, ph.detail))
			}
			return commit()
		}
		if ph.phase == api.PhaseWaiting && mv.Handoff == "" {
			return l.rebalancePlace(ctx, snap, rec, &run, mv, now)
		}
		return false, nil // stopping or starting: wait
	}
	// The next move, checked again on the cluster as it is now.
	for i := range run.Moves {
		mv := &run.Moves[i]
		if mv.Outcome != "" || !mv.Started.IsZero() {
			continue
		}
		why := ""
		switch {
		case drainsUnderWay(snap):
			why = "a drain started"
		default:
			if err := scheduler.CheckRebalanceMove(SchedulerState(snap), runningWorkloads(snap), mv.Workload, mv.From, mv.To); err != nil {
				why = err.Error()
			} else if a := snap.Allocations[mv.Workload]; a.Value.Epoch != mv.Epoch {
				why = fmt.Sprintf("%s was restarted meanwhile (epoch %d, planned at %d)", mv.Workload, a.Value.Epoch, mv.Epoch)
			}
		}
		if why != "" {
			// The cluster is not the one planned for: stop here.
			for j := i; j < len(run.Moves); j++ {
				run.Moves[j].Outcome, run.Moves[j].Reason = api.RebalanceSkipped, "not started: "+why
			}
			l.finishRebalance(&run, now, event, "the cluster changed: "+why)
			return commit()
		}
		a := snap.Allocations[mv.Workload]
		hbFrom, ok1 := snap.Heartbeats[mv.From]
		hbTo, ok2 := snap.Heartbeats[mv.To]
		if !ok1 || !ok2 {
			return false, nil
		}
		conds = append(conds,
			clusterstore.ModRevisionIs(clusterstore.AllocationKey(mv.Workload), a.ModRevision),
			clusterstore.ModRevisionIs(clusterstore.NodeKey(mv.From), snap.Nodes[mv.From].ModRevision),
			clusterstore.ModRevisionIs(clusterstore.HeartbeatKey(mv.From), hbFrom.ModRevision),
			clusterstore.ModRevisionIs(clusterstore.NodeKey(mv.To), snap.Nodes[mv.To].ModRevision),
			clusterstore.ModRevisionIs(clusterstore.HeartbeatKey(mv.To), hbTo.ModRevision))
		p := api.PendingReason{Schema: api.SchemaVersion, Workload: mv.Workload, Reason: rebalanceReason(mv.From, mv.To), At: now.UTC(),
			Displaced: true, Reschedules: a.Value.Reschedules, StoppingOn: mv.From}
		ops = append(ops, clusterstore.Delete(clusterstore.AllocationKey(mv.Workload)),
			clusterstore.Put(clusterstore.PendingKey(mv.Workload), clusterstore.Encode(p)))
		mv.Started = now.UTC()
		event("moving", mv.From, mv.Workload, fmt.Sprintf("rebalance: stopping it on %s (epoch %d), then starting it on %s: %s", mv.From, a.Value.Epoch, mv.To, mv.Why))
		l.log.Info("rebalance: moving", "workload", mv.Workload, "from", mv.From, "to", mv.To)
		return commit()
	}
	l.finishRebalance(&run, now, event, "")
	return commit()
}

// finishRebalance ends a run: complete if every move moved.
func (l *leader) finishRebalance(run *api.Rebalance, now time.Time, event func(typ, host, workload, msg string), why string) {
	moved, other := 0, []string{}
	for _, m := range run.Moves {
		if m.Outcome == api.DrainMoved {
			moved++
		} else {
			other = append(other, fmt.Sprintf("%s (%s)", m.Workload, m.Outcome))
		}
	}
	run.State, run.Finished = api.RebalanceComplete, now.UTC()
	msg := fmt.Sprintf("%d of %d moved", moved, len(run.Moves))
	if len(other) > 0 {
		run.State = api.RebalanceIncomplete
		msg += "; not moved: " + strings.Join(other, ", ")
	}
	if why != "" {
		msg = why + "; " + msg
	}
	run.Message = msg
	event("rebalance-"+string(run.State), "", "", "rebalance "+string(run.State)+": "+msg)
	l.log.Warn("rebalance ended", "state", run.State, "message", msg)
}

// rebalancePlace places a moved workload, now stopped on its old host, on
// the host the run planned; if it does not fit there any more it is left
// to the scheduler (the move records why).
func (l *leader) rebalancePlace(ctx context.Context, snap *clusterstore.Snapshot, rec clusterstore.Versioned[api.Rebalance], run *api.Rebalance, mv *api.RebalanceMove, now time.Time) (bool, error) {
	name := mv.Workload
	w, ok := snap.Workloads[name]
	if !ok || w.Value.Deleting {
		return false, nil // movePhase settles it
	}
	// The plan applier's holds, which keep a workload from running twice.
	if host := reportingHost(snap, name); host != "" {
		return false, nil
	}
	if host := unconfirmedStop(snap, name); host != "" {
		return false, nil
	}
	hand := func(why string) (bool, error) {
		mv.Handoff = why
		ok, err := l.commit(ctx, []clusterstore.Cond{rebalanceGuard(rec, true)}, []clusterstore.Op{
			clusterstore.Put(clusterstore.RebalanceKey, clusterstore.Encode(*run)),
			eventOp(now, 601, "move-failed", mv.From, name, fmt.Sprintf("rebalance: %s stopped on %s but cannot start on %s: %s; the scheduler places it", name, mv.From, mv.To, why)),
		})
		return true, errOr(ok, err)
	}
	hb, alive := snap.Heartbeats[mv.To]
	if !alive || !hostReady(snap, mv.To) {
		return hand(mv.To + " is not ready")
	}
	if _, maint := snap.Maintenance[mv.To]; maint {
		return hand(mv.To + " is in maintenance")
	}
	st := SchedulerState(snap)
	p := scheduler.Placement{Workload: name, Host: mv.To, CPUs: w.Value.CPUs, Memory: w.Value.Memory}
	if err := scheduler.Verify(st, scheduler.Plan{Placements: []scheduler.Placement{p}}); err != nil {
		return hand(err.Error())
	}
	a := api.Allocation{Schema: api.SchemaVersion, Workload: name, Host: mv.To, CPUs: p.CPUs, Memory: p.Memory, CreatedAt: now.UTC()}
	ops := []clusterstore.Op{}
	if pr, ok := snap.Pending[name]; ok {
		a.Reschedules = pr.Value.Reschedules
		ops = append(ops, clusterstore.Delete(clusterstore.PendingKey(name)))
	}
	ops = append(ops, clusterstore.Put(clusterstore.AllocationKey(name), clusterstore.Encode(a)),
		eventOp(now, 602, "placed", mv.To, name, fmt.Sprintf("placed on %s (rebalance: moved from %s)", mv.To, mv.From)))
	conds := []clusterstore.Cond{
		rebalanceGuard(rec, true),
		clusterstore.ModRevisionIs(clusterstore.WorkloadKey(name), w.ModRevision),
		clusterstore.Missing(clusterstore.AllocationKey(name)),
		clusterstore.ModRevisionIs(clusterstore.NodeKey(mv.To), snap.Nodes[mv.To].ModRevision),
		clusterstore.ModRevisionIs(clusterstore.HeartbeatKey(mv.To), hb.ModRevision),
	}
	ok, err := l.commit(ctx, conds, ops)
	if err == nil && ok {
		l.log.Info("rebalance: placed", "workload", name, "host", mv.To)
	}
	return true, errOr(ok, err)
}

// errOr passes err on; a commit that lost a race is no error (the caller
// re-evaluates on fresh state).
func errOr(_ bool, err error) error { return err }
