package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// Maintenance and drains.
//
// The API writes a host's maintenance record (/bulwark/v1/maintenance/<host>);
// the scheduler then places nothing new there. A drain is a maintenance
// record with a Drain: the leader moves the host's workloads, a batch at a
// time, in the order and to the hosts scheduler.PlanDrain says — the same
// answer GET /v1/nodes/{name}/drain/plan gives beforehand. A move is the
// leader deleting the allocation and leaving the workload pending and
// displaced, in one transaction guarded by leadership, the allocation, the
// maintenance record and the host's heartbeat; the plan applier then holds
// it until the drained host's agent has stopped it (its status is gone) and
// places it elsewhere. The next batch starts when every move of the last
// one has settled. Workloads that fit nowhere else are never moved.

// mux is what the route functions register on.
type mux interface {
	HandleFunc(pattern string, fn func(http.ResponseWriter, *http.Request))
}

// routeMaintenance registers the maintenance, drain and reset routes.
func (h *Handler) routeMaintenance(m mux) {
	m.HandleFunc("GET /v1/nodes/{name}/maintenance", h.getMaintenance)
	m.HandleFunc("PUT /v1/nodes/{name}/maintenance", h.putMaintenance)
	m.HandleFunc("DELETE /v1/nodes/{name}/maintenance", h.deleteMaintenance)
	m.HandleFunc("GET /v1/nodes/{name}/drain", h.getDrain)
	m.HandleFunc("POST /v1/nodes/{name}/drain", h.startDrain)
	m.HandleFunc("GET /v1/nodes/{name}/drain/plan", h.drainPlan)
	m.HandleFunc("POST /v1/workloads/{name}/reset", h.resetWorkload)
}

// drainReasonPrefix starts the pending reason of a workload a drain moves.
const drainReasonPrefix = "moving off "

func drainReason(host string, batch int) string {
	return fmt.Sprintf("%s%s (drain, batch %d)", drainReasonPrefix, host, batch)
}

// heldReason is the pending reason of a workload that an old host still
// runs: the plan applier does not place it until that host stopped it.
func heldReason(host string) string { return "waiting for " + host + " to stop it" }

func isHeldReason(r string) bool {
	return strings.HasPrefix(r, "waiting for ") && strings.HasSuffix(r, " to stop it")
}

// requester names who sent a request: the by field the client sent (the
// user bulwarkctl runs as), else the client's address.
func requester(r *http.Request, by string) string {
	if by != "" {
		return by
	}
	host := r.RemoteAddr
	if i := strings.LastIndex(host, ":"); i > 0 {
		host = host[:i]
	}
	return host
}

// readMaintenance reads a host's record; ok is false if it has none.
func (h *Handler) readMaintenance(ctx context.Context, host string) (clusterstore.Versioned[api.Maintenance], bool, error) {
	kv, ok, _, err := h.store.Get(ctx, clusterstore.MaintenanceKey(host))
	if err != nil || !ok {
		return clusterstore.Versioned[api.Maintenance]{}, false, err
	}
	var m api.Maintenance
	if err := clusterstore.Decode(kv, &m); err != nil {
		return clusterstore.Versioned[api.Maintenance]{}, false, err
	}
	return clusterstore.Versioned[api.Maintenance]{Value: m, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}, true, nil
}

func (h *Handler) getMaintenance(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.nodeExists(w, r, name) {
		return
	}
	m, ok, err := h.readMaintenance(r.Context(), name)
	if err != nil {
		h.storeError(w, "read maintenance", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q is not in maintenance", name))
		return
	}
	writeJSON(w, http.StatusOK, m.Value)
}

// putMaintenance puts a host in maintenance. It is idempotent: a host
// already in maintenance keeps its record (and any drain).
func (h *Handler) putMaintenance(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req api.MaintenanceRequest
	if r.ContentLength != 0 {
		if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
			writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid maintenance request: "+err.Error())
			return
		}
	}
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	if !h.nodeExists(w, r, name) {
		return
	}
	conds, ops, rec := MaintenanceOn(name, req.Reason, requester(r, req.By), h.now())
	ok, _, err := h.store.Txn(r.Context(), conds, ops)
	if err != nil {
		h.storeError(w, "maintenance on", err)
		return
	}
	if !ok {
		cur, found, err := h.readMaintenance(r.Context(), name)
		if err != nil {
			h.storeError(w, "maintenance on", err)
			return
		}
		if found {
			writeJSON(w, http.StatusOK, api.MaintenanceResult{Node: name, Maintenance: &cur.Value})
			return
		}
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("maintenance of %s changed meanwhile; try again", name))
		return
	}
	h.log.Warn("host in maintenance", "host", name, "by", rec.By, "reason", rec.Reason)
	writeJSON(w, http.StatusOK, api.MaintenanceResult{Node: name, Changed: true, Maintenance: &rec})
}

// deleteMaintenance takes a host out of maintenance (also `node undrain`);
// a drain under way stops: moves already started finish, none start.
func (h *Handler) deleteMaintenance(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.nodeExists(w, r, name) {
		return
	}
	for attempt := 0; attempt < 5; attempt++ {
		cur, found, err := h.readMaintenance(r.Context(), name)
		if err != nil {
			h.storeError(w, "maintenance off", err)
			return
		}
		if !found {
			writeJSON(w, http.StatusOK, api.MaintenanceResult{Node: name})
			return
		}
		conds, ops := MaintenanceOff(cur, requester(r, r.URL.Query().Get("by")), h.now())
		ok, _, err := h.store.Txn(r.Context(), conds, ops)
		if err != nil {
			h.storeError(w, "maintenance off", err)
			return
		}
		if ok {
			h.log.Warn("host out of maintenance", "host", name)
			writeJSON(w, http.StatusOK, api.MaintenanceResult{Node: name, Changed: true, Maintenance: &cur.Value})
			return
		}
	}
	writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("maintenance of %s is changing too fast (a drain is moving workloads); try again", name))
}

// drainPlan answers GET /v1/nodes/{name}/drain/plan?batch=N: what a drain
// would do now. It changes nothing.
func (h *Handler) drainPlan(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := api.ValidateName("node", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	batch := api.DefaultDrainBatch
	if v := r.URL.Query().Get("batch"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > api.MaxDrainBatch {
			writeError(w, http.StatusBadRequest, api.CodeInvalid, fmt.Sprintf("batch must be a whole number from 1 to %d, got %q", api.MaxDrainBatch, v))
			return
		}
		batch = n
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	if _, ok := snap.Nodes[name]; !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q not found", name))
		return
	}
	plan, err := DrainPlanOf(snap, name, batch, h.scheduler(), h.now())
	if err != nil {
		writeError(w, http.StatusNotFound, api.CodeNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

func stuckOf(res scheduler.DrainResult) []api.DrainStuck {
	out := []api.DrainStuck{}
	for _, s := range res.Stuck {
		out = append(out, api.DrainStuck{Workload: s.Workload, Priority: s.Priority, Reason: s.Reason})
	}
	return out
}

func (h *Handler) scheduler() scheduler.Scheduler {
	if h.sched == nil {
		return scheduler.New(scheduler.Options{})
	}
	return h.sched
}

// startDrain answers POST /v1/nodes/{name}/drain: it puts the host in
// maintenance (if it is not) and starts a drain, which the leader carries
// out. 409 if a drain is already under way or the host is not ready.
func (h *Handler) startDrain(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	var req api.DrainRequest
	if r.ContentLength != 0 {
		if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
			writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid drain request: "+err.Error())
			return
		}
	}
	req.Normalize()
	if err := req.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	if err := api.ValidateName("node", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	if _, ok := snap.Nodes[name]; !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q not found", name))
		return
	}
	by := requester(r, req.By)
	conds, ops, rec, status, err := DrainStart(snap, name, req, by, h.now())
	if err != nil {
		writeError(w, status, codeFor(status), err.Error())
		return
	}
	done, _, err := h.store.Txn(r.Context(), conds, ops)
	if err != nil {
		h.storeError(w, "start drain", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("maintenance of %s changed meanwhile; try again", name))
		return
	}
	h.log.Warn("drain started", "host", name, "by", by, "batch", req.Batch, "timeout", req.Timeout)
	snap.Maintenance[name] = clusterstore.Versioned[api.Maintenance]{Value: rec}
	writeJSON(w, http.StatusAccepted, drainStatus(snap, name, rec))
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// getDrain answers GET /v1/nodes/{name}/drain: the drain's progress.
func (h *Handler) getDrain(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := api.ValidateName("node", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	if _, ok := snap.Nodes[name]; !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q not found", name))
		return
	}
	m, ok := snap.Maintenance[name]
	if !ok || m.Value.Drain == nil {
		why := "it is not in maintenance"
		if ok {
			why = "it is in maintenance, but no drain was started"
		}
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q has no drain: %s", name, why))
		return
	}
	writeJSON(w, http.StatusOK, drainStatus(snap, name, m.Value))
}

// MaintenanceOn builds the write that puts host in maintenance: the
// record, if there is none, and an event. PUT /v1/nodes/{name}/maintenance
// commits it; so does the simulation harness.
func MaintenanceOn(host, reason, by string, now time.Time) ([]clusterstore.Cond, []clusterstore.Op, api.Maintenance) {
	now = now.UTC()
	rec := api.Maintenance{Schema: api.SchemaVersion, Host: host, Reason: reason, By: by, Since: now}
	key := clusterstore.MaintenanceKey(host)
	msg := "in maintenance: nothing new is placed here"
	if reason != "" {
		msg += " (" + reason + ")"
	}
	return []clusterstore.Cond{clusterstore.Missing(key)}, []clusterstore.Op{
		clusterstore.Put(key, clusterstore.Encode(rec)),
		eventOp(now, 0, "maintenance-on", host, "", msg+"; by "+orUnknown(by)),
	}, rec
}

// MaintenanceOff builds the write that takes a host out of maintenance,
// guarded by the record read.
func MaintenanceOff(cur clusterstore.Versioned[api.Maintenance], by string, now time.Time) ([]clusterstore.Cond, []clusterstore.Op) {
	host := cur.Value.Host
	msg := "out of maintenance: it takes workloads again"
	if d := cur.Value.Drain; d != nil && d.State == api.DrainRunning {
		msg += fmt.Sprintf("; the drain under way stops (%d moved or moving; moves already started finish)", len(d.Moves))
	}
	key := clusterstore.MaintenanceKey(host)
	return []clusterstore.Cond{clusterstore.ModRevisionIs(key, cur.ModRevision)}, []clusterstore.Op{
		clusterstore.Delete(key),
		eventOp(now.UTC(), 0, "maintenance-off", host, "", msg+"; by "+orUnknown(by)),
	}
}

// DrainPlanOf is the answer of GET /v1/nodes/{name}/drain/plan.
func DrainPlanOf(snap *clusterstore.Snapshot, name string, batch int, sched scheduler.Scheduler, now time.Time) (api.DrainPlan, error) {
	res, err := scheduler.PlanDrain(SchedulerState(snap), name, sched, now, scheduler.DrainOptions{Batch: batch})
	if err != nil {
		return api.DrainPlan{}, err
	}
	plan := api.DrainPlan{Host: name, Batch: batch, Moves: []api.DrainPlanMove{}, Stuck: stuckOf(res)}
	for _, m := range res.Moves {
		plan.Moves = append(plan.Moves, api.DrainPlanMove{Batch: m.Batch, Workload: m.Workload, Priority: m.Priority, To: m.To})
	}
	for _, p := range res.Preemptions {
		plan.Preempted = append(plan.Preempted, api.WhatIfPreemption{Workload: p.Workload, Host: p.Host, By: p.By, Reason: p.Reason})
	}
	if st, why := nodeState(snap, name); st != api.NodeReady {
		plan.Notes = append(plan.Notes, fmt.Sprintf("%s is %s (%s): a drain moves workloads only off a ready host", name, st, why))
	}
	if m, ok := snap.Maintenance[name]; ok && m.Value.Drain != nil && m.Value.Drain.State == api.DrainRunning {
		plan.Notes = append(plan.Notes, fmt.Sprintf("a drain of %s is under way (started %s); this plan is for what is left", name, m.Value.Drain.Started.Format(time.RFC3339)))
	}
	return plan, nil
}

// DrainStart builds the write that starts a drain of host: the host goes
// in maintenance (if it is not) with a new Drain, which the leader then
// carries out. It refuses (with the HTTP status to answer) a host that is
// not registered or not ready, or already draining. POST
// /v1/nodes/{name}/drain commits it; so does the simulation harness.
func DrainStart(snap *clusterstore.Snapshot, host string, req api.DrainRequest, by string, now time.Time) ([]clusterstore.Cond, []clusterstore.Op, api.Maintenance, int, error) {
	now = now.UTC()
	req.Normalize()
	if err := req.Validate(); err != nil {
		return nil, nil, api.Maintenance{}, http.StatusBadRequest, err
	}
	if _, ok := snap.Nodes[host]; !ok {
		return nil, nil, api.Maintenance{}, http.StatusNotFound, fmt.Errorf("node %q not found", host)
	}
	if st, why := nodeState(snap, host); st != api.NodeReady {
		return nil, nil, api.Maintenance{}, http.StatusConflict,
			fmt.Errorf("node %q is %s (%s): only a ready host is drained; the workloads of a failed host are restarted elsewhere once it is fenced", host, st, why)
	}
	key := clusterstore.MaintenanceKey(host)
	rec := api.Maintenance{Schema: api.SchemaVersion, Host: host, Reason: req.Reason, By: by, Since: now}
	conds := []clusterstore.Cond{clusterstore.Missing(key)}
	var ops []clusterstore.Op
	if cur, ok := snap.Maintenance[host]; ok {
		if d := cur.Value.Drain; d != nil && d.State == api.DrainRunning {
			return nil, nil, api.Maintenance{}, http.StatusConflict,
				fmt.Errorf("a drain of %s is already under way (started %s by %s, batch %d); follow it with GET /v1/nodes/%s/drain",
					host, d.Started.Format(time.RFC3339), orUnknown(cur.Value.By), d.Batch, host)
		}
		rec = cur.Value
		if req.Reason != "" {
			rec.Reason = req.Reason
		}
		conds = []clusterstore.Cond{clusterstore.ModRevisionIs(key, cur.ModRevision)}
	} else {
		ops = append(ops, eventOp(now, 0, "maintenance-on", host, "", "in maintenance for a drain; by "+orUnknown(by)))
	}
	rec.Drain = &api.Drain{State: api.DrainRunning, Batch: req.Batch, Started: now, Deadline: now.Add(time.Duration(req.Timeout))}
	ops = append(ops, clusterstore.Put(key, clusterstore.Encode(rec)),
		eventOp(now, 1, "drain-started", host, "", fmt.Sprintf("drain started by %s: batches of %d, timeout %s", orUnknown(by), req.Batch, req.Timeout)))
	return conds, ops, rec, 0, nil
}

// DrainProgress is the answer of GET /v1/nodes/{name}/drain; ok is false
// if host has no drain.
func DrainProgress(snap *clusterstore.Snapshot, host string) (api.DrainStatus, bool) {
	m, ok := snap.Maintenance[host]
	if !ok || m.Value.Drain == nil {
		return api.DrainStatus{}, false
	}
	return drainStatus(snap, host, m.Value), true
}

// drainStatus is the drain of a host with every move's phase as the
// snapshot shows it.
func drainStatus(snap *clusterstore.Snapshot, host string, m api.Maintenance) api.DrainStatus {
	d := m.Drain
	out := api.DrainStatus{Host: host, State: d.State, Batch: d.Batch, Started: d.Started, Deadline: d.Deadline, Finished: d.Finished,
		Batches: d.Batches, Moves: []api.DrainMoveStatus{}, Stuck: d.Stuck, Message: d.Message}
	if out.Stuck == nil {
		out.Stuck = []api.DrainStuck{}
	}
	for _, mv := range d.Moves {
		ms := api.DrainMoveStatus{DrainMove: mv, Phase: mv.Outcome}
		ph := movePhase(snap, host, mv)
		ms.Now = ph.now
		if mv.Outcome == "" {
			ms.Phase, ms.Detail = ph.phase, ph.detail
		} else {
			ms.Detail = mv.Reason
		}
		out.Moves = append(out.Moves, ms)
	}
	out.Remaining, out.Reporting = hostLoad(snap, host)
	return out
}

// hostLoad counts the workloads placed on host and lists those its agent
// reports.
func hostLoad(snap *clusterstore.Snapshot, host string) (placed int, reporting []string) {
	for _, a := range snap.Allocations {
		if a.Value.Host == host {
			placed++
		}
	}
	for name := range snap.Statuses[host] {
		reporting = append(reporting, name)
	}
	sort.Strings(reporting)
	return placed, reporting
}

// phase is where one move stands.
type phase struct {
	phase   string // an outcome once settled, else a Phase...
	settled bool
	now     string // the host it is placed on now
	detail  string
}

// movePhase derives a move's phase from the store: the drained host's
// agent must no longer report the workload (whatever its state) before the
// move can be anything but stopping, and it has moved only once another
// host reports it running at its new allocation's epoch.
func movePhase(snap *clusterstore.Snapshot, host string, mv api.DrainMove) phase {
	name := mv.Workload
	a, placed := snap.Allocations[name]
	var p phase
	if placed {
		p.now = a.Value.Host
	}
	if st, there := snap.Statuses[host][name]; there && !(placed && a.Value.Host == host && st.Value.Epoch == a.Value.Epoch) {
		p.phase, p.detail = api.PhaseStopping, fmt.Sprintf("%s reports it %s", host, st.Value.State)
		return p
	}
	w, exists := snap.Workloads[name]
	if !exists || w.Value.Deleting {
		return phase{phase: api.DrainDeleted, settled: true, detail: "deleted while it moved"}
	}
	if !placed {
		pr, ok := snap.Pending[name]
		if !ok || strings.HasPrefix(pr.Value.Reason, drainReasonPrefix) || isHeldReason(pr.Value.Reason) {
			p.phase, p.detail = api.PhaseWaiting, "stopped on "+host+"; waiting to be placed"
			return p
		}
		return phase{phase: api.DrainNotPlaced, settled: true, detail: pr.Value.Reason}
	}
	if a.Value.Host == host {
		// Maintenance was off for a while and it went back.
		return phase{phase: api.DrainFailed, settled: true, now: host, detail: "placed on " + host + " again"}
	}
	st, ok := snap.Statuses[a.Value.Host][name]
	if !ok || st.Value.Epoch != a.Value.Epoch {
		p.phase, p.detail = api.PhaseStarting, "placed on "+a.Value.Host+"; waiting for it to start"
		return p
	}
	switch s := st.Value; {
	case s.State == api.StateRunning && (s.Health == api.HealthStarting || s.Health == api.HealthUnhealthy):
		// Moved only once its check passes: the next move may take
		// another copy of the same service out of its pool.
		p.phase, p.detail = api.PhaseStarting, fmt.Sprintf("running on %s, health %s", a.Value.Host, s.Health)
		return p
	case s.State == api.StateRunning:
		return phase{phase: api.DrainMoved, settled: true, now: a.Value.Host}
	case s.State == api.StateFailed && s.GaveUp, s.State == api.StateStopped:
		return phase{phase: api.DrainFailed, settled: true, now: a.Value.Host, detail: fmt.Sprintf("%s on %s: %s", s.State, a.Value.Host, s.Reason)}
	default:
		p.phase, p.detail = api.PhaseStarting, fmt.Sprintf("%s on %s", s.State, a.Value.Host)
		if s.Reason != "" {
			p.detail += ": " + s.Reason
		}
		return p
	}
}

// drainsUnderWay reports whether some host is being drained.
func drainsUnderWay(snap *clusterstore.Snapshot) bool {
	for _, m := range snap.Maintenance {
		if d := m.Value.Drain; d != nil && d.State == api.DrainRunning {
			return true
		}
	}
	return false
}

// drain advances every drain under way by one step. It returns true when
// it wrote something (the caller re-evaluates on fresh state).
func (l *leader) drain(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	hosts := make([]string, 0, len(snap.Maintenance))
	for host, m := range snap.Maintenance {
		if d := m.Value.Drain; d != nil && d.State == api.DrainRunning {
			hosts = append(hosts, host)
		}
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		changed, err := l.drainStep(ctx, snap, host, now)
		if err != nil || changed {
			return changed, err
		}
	}
	return false, nil
}

// drainStep settles the moves that have settled, then either waits (moves
// under way), ends the drain (deadline, or nothing left to move) or starts
// the next batch.
func (l *leader) drainStep(ctx context.Context, snap *clusterstore.Snapshot, host string, now time.Time) (bool, error) {
	m := snap.Maintenance[host]
	rec := m.Value
	d := *rec.Drain
	d.Moves = append([]api.DrainMove(nil), d.Moves...)
	key := clusterstore.MaintenanceKey(host)
	conds := []clusterstore.Cond{clusterstore.ModRevisionIs(key, m.ModRevision)}
	var ops []clusterstore.Op
	seq := 0
	event := func(typ, workload, msg string) {
		seq++
		ops = append(ops, eventOp(now, 500+seq, typ, host, workload, msg))
	}
	inFlight := 0
	for i := range d.Moves {
		mv := &d.Moves[i]
		if mv.Outcome != "" {
			continue
		}
		ph := movePhase(snap, host, *mv)
		if !ph.settled {
			inFlight++
			continue
		}
		mv.Outcome, mv.Host, mv.Reason = ph.phase, ph.now, ph.detail
		switch ph.phase {
		case api.DrainMoved:
			event("moved", mv.Workload, fmt.Sprintf("moved off %s: stopped there, running on %s", host, ph.now))
		case api.DrainDeleted:
			event("move-failed", mv.Workload, fmt.Sprintf("moving off %s: deleted meanwhile", host))
		default:
			event("move-failed", mv.Workload, fmt.Sprintf("moving off %s: %s: %s", host, ph.phase, ph.detail))
		}
	}
	placed, reporting := hostLoad(snap, host)
	// Workloads the host still reports but that are not placed there any
	// more are being stopped (a move, or an earlier preemption).
	stopping := 0
	for _, name := range reporting {
		if a, ok := snap.Allocations[name]; !ok || a.Value.Host != host {
			stopping++
		}
	}
	// So are workloads another host still runs while they wait to be
	// placed again (preempted by this batch, say): the next batch is
	// planned once they have found their place, as the plan assumed.
	var elsewhere []string
	for name := range snap.Workloads {
		if _, ok := snap.Allocations[name]; !ok {
			if on := stillRunningOn(snap, name); on != "" {
				stopping++
				if on != host {
					elsewhere = append(elsewhere, fmt.Sprintf("%s to stop %s", on, name))
				}
			}
		}
	}
	sort.Strings(elsewhere)
	expired := !now.Before(d.Deadline)
	finish := func(state api.DrainState, msg string) {
		d.State, d.Finished, d.Message = state, now.UTC(), msg
		event("drain-"+string(state), "", msg)
		l.log.Warn("drain ended", "host", host, "state", state, "message", msg)
	}
	switch {
	case inFlight > 0 || stopping > 0 || !hostReady(snap, host):
		// Wait for this batch; a host that is not ready is failover's
		// business. The deadline ends the wait.
		if expired {
			head := "timed out after " + d.Deadline.Sub(d.Started).Round(time.Second).String()
			if !hostReady(snap, host) {
				head += "; " + host + " is not ready"
			}
			if len(elsewhere) > 0 {
				head += "; waiting for " + strings.Join(elsewhere, ", ")
			}
			finish(api.DrainTimedOut, drainSummary(&d, placed, reporting, head))
		}
	default:
		st := SchedulerState(snap)
		res, err := scheduler.PlanDrain(st, host, l.cfg.Scheduler, now, scheduler.DrainOptions{Batch: d.Batch, MaxBatches: 1})
		if err != nil {
			finish(api.DrainIncomplete, drainSummary(&d, placed, reporting, err.Error()))
			break
		}
		d.Stuck = stuckOf(res)
		if len(d.Stuck) == 0 {
			d.Stuck = nil
		}
		if len(res.Moves) == 0 {
			state := api.DrainComplete
			if placed > 0 || len(reporting) > 0 || len(d.Stuck) > 0 {
				state = api.DrainIncomplete
			}
			for _, mv := range d.Moves {
				if mv.Outcome != api.DrainMoved && mv.Outcome != api.DrainDeleted {
					state = api.DrainIncomplete
				}
			}
			finish(state, drainSummary(&d, placed, reporting, ""))
			break
		}
		if expired {
			finish(api.DrainTimedOut, drainSummary(&d, placed, reporting, "timed out after "+d.Deadline.Sub(d.Started).Round(time.Second).String()))
			break
		}
		d.Batches++
		hb, alive := snap.Heartbeats[host]
		if !alive {
			return false, nil
		}
		conds = append(conds,
			clusterstore.ModRevisionIs(clusterstore.NodeKey(host), snap.Nodes[host].ModRevision),
			clusterstore.ModRevisionIs(clusterstore.HeartbeatKey(host), hb.ModRevision))
		for _, mv := range res.Moves {
			a := snap.Allocations[mv.Workload]
			conds = append(conds, clusterstore.ModRevisionIs(clusterstore.AllocationKey(mv.Workload), a.ModRevision))
			p := api.PendingReason{Schema: api.SchemaVersion, Workload: mv.Workload, Reason: drainReason(host, d.Batches), At: now.UTC(),
				Displaced: true, Reschedules: a.Value.Reschedules, StoppingOn: host}
			ops = append(ops, clusterstore.Delete(clusterstore.AllocationKey(mv.Workload)),
				clusterstore.Put(clusterstore.PendingKey(mv.Workload), clusterstore.Encode(p)))
			d.Moves = append(d.Moves, api.DrainMove{Workload: mv.Workload, Priority: mv.Priority, Batch: d.Batches, Epoch: a.Value.Epoch, Planned: mv.To, Started: now.UTC()})
			event("moving", mv.Workload, fmt.Sprintf("drain of %s, batch %d: stopping it there (epoch %d), then starting it on %s", host, d.Batches, a.Value.Epoch, mv.To))
			l.log.Info("drain: moving", "host", host, "workload", mv.Workload, "to", mv.To, "batch", d.Batches)
		}
	}
	if len(ops) == 0 && stuckEqual(d.Stuck, rec.Drain.Stuck) {
		return false, nil
	}
	rec.Drain = &d
	ops = append(ops, clusterstore.Put(key, clusterstore.Encode(rec)))
	if _, err := l.commit(ctx, conds, ops); err != nil {
		return false, err
	}
	return true, nil
}

func stuckEqual(a, b []api.DrainStuck) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// drainSummary is the message a drain ends with: what moved, what could
// not and why, what is still being stopped.
func drainSummary(d *api.Drain, placed int, reporting []string, head string) string {
	var moved, failed, going []string
	for _, mv := range d.Moves {
		switch mv.Outcome {
		case api.DrainMoved:
			moved = append(moved, mv.Workload)
		case api.DrainDeleted:
		case "":
			going = append(going, mv.Workload)
		default:
			failed = append(failed, fmt.Sprintf("%s (%s)", mv.Workload, mv.Reason))
		}
	}
	var parts []string
	if head != "" {
		parts = append(parts, head)
	}
	parts = append(parts, fmt.Sprintf("%d moved", len(moved)))
	if len(failed) > 0 {
		parts = append(parts, fmt.Sprintf("%d moved off but not running elsewhere: %s", len(failed), strings.Join(failed, "; ")))
	}
	if len(d.Stuck) > 0 {
		var s []string
		for _, x := range d.Stuck {
			s = append(s, fmt.Sprintf("%s (%s)", x.Workload, x.Reason))
		}
		parts = append(parts, fmt.Sprintf("%d could not move: %s", len(d.Stuck), strings.Join(s, "; ")))
	}
	if len(going) > 0 {
		parts = append(parts, fmt.Sprintf("%d still moving: %s", len(going), strings.Join(going, ", ")))
	}
	if len(reporting) > 0 {
		parts = append(parts, fmt.Sprintf("the host still reports %s", strings.Join(reporting, ", ")))
	} else if placed == 0 {
		parts = append(parts, "nothing left on the host")
	}
	return strings.Join(parts, "; ")
}
