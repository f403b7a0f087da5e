package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

type leaderState struct {
	mu       sync.Mutex
	name     string
	isLeader bool
}

func (l *leaderState) set(name string, is bool) {
	l.mu.Lock()
	l.name, l.isLeader = name, is
	l.mu.Unlock()
}

func (l *leaderState) get() (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.name, l.isLeader
}

// leader is the work only the elected replica does: turn desired workloads
// into allocations, and tear allocations down for deleted workloads. Every
// write carries the leadership guard, so a replica that lost leadership
// without noticing cannot write.
type leader struct {
	cfg   Config
	log   *slog.Logger
	guard clusterstore.Cond
	now   func() time.Time
	// readTook is how long this evaluation's snapshot read took.
	readTook time.Duration
	// wakeAt is when a backed-off reschedule becomes due (zero: none).
	wakeAt time.Time
	// placeWrote: the last place committed something.
	placeWrote bool
	metrics    *metrics
	fo         *failover
	// health is the workloads' last reported health (health.go).
	health healthSeen
}

func (l *leader) run(ctx context.Context) error {
	if l.now == nil {
		l.now = time.Now
	}
	// Coalesce: any number of changes while an evaluation runs become one
	// more evaluation.
	kick := make(chan struct{}, 1)
	trigger := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	_, _, rev, err := l.cfg.Store.Get(ctx, clusterstore.Prefix+"leader-start")
	if err != nil {
		return fmt.Errorf("leader: read revision: %w", err)
	}
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := l.cfg.Store.Watch(watchCtx, clusterstore.Prefix, rev+1)
	l.fo = newFailover(l.cfg.Fencing, l.cfg.Store, l.log, l.guard, trigger)
	l.fo.metrics = l.metrics
	defer l.fo.wait()
	trigger()
	tick := time.NewTicker(l.cfg.Resync)
	defer tick.Stop()
	// Timed failure transitions (suspect grace, watchdog window, fencing
	// retries) need evaluations even when the store is quiet.
	failTick := time.NewTicker(250 * time.Millisecond)
	defer failTick.Stop()
	// Keep the event history bounded: prune once now, then every minute.
	pruneTick := time.NewTicker(time.Minute)
	defer pruneTick.Stop()
	prune := func() error {
		n, err := pruneEvents(ctx, l.cfg.Store, l.guard, DefaultEventRetention)
		if errors.Is(err, errLostLeadership) {
			return err
		}
		if err != nil {
			l.log.Warn("pruning events failed", "err", err)
		} else if n > 0 {
			l.log.Info("pruned old events", "deleted", n)
		}
		return nil
	}
	if err := prune(); err != nil {
		return err
	}
	// Fence devices are probed at once and then periodically.
	healthCtx, stopHealth := context.WithCancel(ctx)
	var healthWG sync.WaitGroup
	defer func() { stopHealth(); healthWG.Wait() }()
	healthWG.Add(1)
	go func() {
		defer healthWG.Done()
		// Hosts register in the first seconds of a cluster: probe soon
		// after start, then every CheckInterval.
		next := time.After(2 * time.Second)
		t := time.NewTicker(l.fo.cfg.CheckInterval)
		defer t.Stop()
		for {
			l.fo.checkHealth(healthCtx)
			select {
			case <-healthCtx.Done():
				return
			case <-next:
				next = nil
			case <-t.C:
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-wch:
			if !ok || resp.Err != nil {
				return fmt.Errorf("leader: watch ended: %v", resp.Err)
			}
			l.healthEvents(ctx, resp.Events)
			if relevant(resp.Events) {
				trigger()
			}
		case <-tick.C:
			trigger()
		case <-pruneTick.C:
			if err := prune(); err != nil {
				return err
			}
		case <-failTick.C:
			if l.fo.needsTick() || !l.wakeAt.IsZero() && !l.now().Before(l.wakeAt) {
				trigger()
			}
		case <-kick:
			// Let a burst of changes (a script creating 10,000 workloads)
			// gather, so it becomes a few large plans, not many small ones.
			if l.cfg.EvalDelay > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(l.cfg.EvalDelay):
				}
			}
			again, err := l.evaluate(ctx)
			if errors.Is(err, errLostLeadership) {
				return err
			}
			if err != nil {
				l.log.Warn("evaluation failed", "err", err)
			}
			if again || err != nil {
				// A guarded commit lost a race or the store hiccuped:
				// evaluate again after a short pause.
				time.AfterFunc(50*time.Millisecond, trigger)
			}
		}
	}
}

// relevant says whether a change can alter a placement decision. The
// leader's own pending-reason writes are not, which keeps it from looping.
func relevant(evs []clusterstore.Event) bool {
	for _, ev := range evs {
		k := ev.KV.Key
		for _, p := range []string{clusterstore.WorkloadsPrefix, clusterstore.NodesPrefix, clusterstore.HeartbeatsPrefix, clusterstore.AllocationsPrefix,
			clusterstore.StatusPrefix, clusterstore.FencingPrefix, clusterstore.FenceRequestsPrefix, clusterstore.SettingsKey,
			clusterstore.MaintenancePrefix, clusterstore.ResetsPrefix, clusterstore.ServicesPrefix, clusterstore.RebalanceKey} {
			if strings.HasPrefix(k, p) {
				return true
			}
		}
	}
	return false
}

// evaluate reads a snapshot, decides, and commits. It returns again=true
// when a guarded commit failed and the work should be redone on fresh state.
func (l *leader) evaluate(ctx context.Context) (again bool, err error) {
	began := time.Now()
	snap, bad, err := clusterstore.ReadSnapshot(ctx, l.cfg.Store)
	l.readTook = time.Since(began)
	if err != nil {
		return false, err
	}
	for _, e := range bad {
		l.log.Warn("skipping unreadable record", "err", e)
	}
	now := l.now()
	again, err = l.cleanup(ctx, snap)
	if err != nil || again {
		return again, err
	}
	if changed, err := l.services(ctx, snap, now); err != nil || changed {
		return changed, err
	}
	if changed, err := l.reschedule(ctx, snap, now); err != nil || changed {
		return changed, err
	}
	if l.fo != nil {
		changed, err := l.fo.step(ctx, snap, now)
		if err != nil || changed {
			// Recovered allocations: place them from fresh state.
			return changed, err
		}
	}
	if err := l.pools(ctx, snap, now); err != nil {
		return false, err
	}
	if changed, err := l.rebalance(ctx, snap, now); err != nil || changed {
		return changed, err
	}
	if again, err = l.place(ctx, snap, now); err != nil || again || !drainsUnderWay(snap) {
		return again, err
	}
	if l.placeWrote {
		// A drain's next batch is decided on a cluster where what could
		// be placed is placed (as its plan assumes): evaluate again.
		return true, nil
	}
	return l.drain(ctx, snap, now)
}

// cleanup removes allocations of deleted workloads, then the workload records
// once no host reports them any more.
func (l *leader) cleanup(ctx context.Context, snap *clusterstore.Snapshot) (bool, error) {
	again := false
	for name, a := range snap.Allocations {
		w, exists := snap.Workloads[name]
		if exists && !w.Value.Deleting {
			continue
		}
		key := clusterstore.AllocationKey(name)
		ok, err := l.commit(ctx, []clusterstore.Cond{clusterstore.ModRevisionIs(key, a.ModRevision)}, []clusterstore.Op{clusterstore.Delete(key)})
		if err != nil {
			return false, err
		}
		if !ok {
			again = true
			continue
		}
		l.log.Info("allocation removed", "workload", name, "host", a.Value.Host, "epoch", a.Value.Epoch)
	}
	for name, w := range snap.Workloads {
		if !w.Value.Deleting {
			continue
		}
		if _, allocated := snap.Allocations[name]; allocated {
			continue // removed above; the record goes on a later pass
		}
		if host := reportingHost(snap, name); host != "" {
			continue // still being stopped there
		}
		key := clusterstore.WorkloadKey(name)
		conds := []clusterstore.Cond{clusterstore.ModRevisionIs(key, w.ModRevision), clusterstore.Missing(clusterstore.AllocationKey(name))}
		ops := []clusterstore.Op{clusterstore.Delete(key), clusterstore.Delete(clusterstore.PendingKey(name))}
		// Its floating IPs stay defined, detached.
		for addr, v := range snap.VIPs {
			if v.Value.Workload == name {
				rec := v.Value
				rec.Workload = ""
				conds = append(conds, clusterstore.ModRevisionIs(clusterstore.VIPKey(addr), v.ModRevision))
				ops = append(ops, clusterstore.Put(clusterstore.VIPKey(addr), clusterstore.Encode(rec)))
			}
		}
		ok, err := l.commit(ctx, conds, ops)
		if err != nil {
			return false, err
		}
		if !ok {
			again = true
			continue
		}
		l.log.Info("workload deleted", "workload", name)
	}
	return again, nil
}

// unconfirmedStop names the host a workload was taken from while alive, if
// that host has since lost its lease without a fence record: nothing then
// proves the workload stopped there (its status went with the lease).
func unconfirmedStop(snap *clusterstore.Snapshot, workload string) string {
	p, ok := snap.Pending[workload]
	if !ok || p.Value.StoppingOn == "" {
		return ""
	}
	host := p.Value.StoppingOn
	if _, alive := snap.Heartbeats[host]; alive {
		return "" // alive: its reports are the truth (stillRunningOn)
	}
	if _, fenced := snap.Fencing[host]; fenced {
		return ""
	}
	return host
}

// stillRunningOn names a host whose agent still reports the workload as
// running, starting or stopping. Reports are bound to the agent's lease, so
// a dead host reports nothing.
func stillRunningOn(snap *clusterstore.Snapshot, workload string) string {
	for host, byName := range snap.Statuses {
		if s, ok := byName[workload]; ok {
			switch s.Value.State {
			case api.StateRunning, api.StateStarting, api.StateStopping:
				return host
			}
		}
	}
	return ""
}

func reportingHost(snap *clusterstore.Snapshot, workload string) string {
	for host, byName := range snap.Statuses {
		if _, ok := byName[workload]; ok {
			return host
		}
	}
	return ""
}

// hostReady: the host holds its heartbeat lease, has not been fenced, and
// the failure detector has not given up on it. Only ready hosts get work.
func hostReady(snap *clusterstore.Snapshot, host string) bool {
	if _, alive := snap.Heartbeats[host]; !alive {
		return false
	}
	if _, fenced := snap.Fencing[host]; fenced {
		return false
	}
	if _, asked := snap.FenceRequests[host]; asked {
		return false
	}
	if hs, ok := snap.HostStates[host]; ok {
		switch hs.Value.State {
		case api.NodeLost, api.NodeFencing, api.NodeFenced, api.NodeRecovered:
			return false
		}
	}
	return true
}

// SchedulerState converts a snapshot into the scheduler's input.
func SchedulerState(snap *clusterstore.Snapshot) *scheduler.State {
	st := &scheduler.State{
		Revision:    snap.Revision,
		Allocations: make(map[string]api.Allocation, len(snap.Allocations)),
		Workloads:   make(map[string]api.Workload, len(snap.Workloads)),
		Settings:    snap.Settings,
		Displaced:   map[string]bool{},
	}
	for name, n := range snap.Nodes {
		_, maint := snap.Maintenance[name]
		st.Nodes = append(st.Nodes, scheduler.NodeInfo{Node: n.Value, Ready: hostReady(snap, name), Maintenance: maint, ModRevision: n.ModRevision})
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Node.Name < st.Nodes[j].Node.Name })
	for name, a := range snap.Allocations {
		st.Allocations[name] = a.Value
	}
	for name, w := range snap.Workloads {
		st.Workloads[name] = w.Value
	}
	if len(snap.Volumes) > 0 {
		st.Volumes = make(map[string]api.Volume, len(snap.Volumes))
		st.VolumeLocks = make(map[string]api.Claim, len(snap.Locks))
		for name, v := range snap.Volumes {
			st.Volumes[name] = v.Value
		}
		for name, c := range snap.Locks {
			st.VolumeLocks[name] = c.Value
		}
	}
	if len(snap.VIPs) > 0 {
		st.VIPs = make(map[string]api.VIP, len(snap.VIPs))
		for addr, v := range snap.VIPs {
			st.VIPs[addr] = v.Value
		}
	}
	for name, p := range snap.Pending {
		if p.Value.Displaced {
			st.Displaced[name] = true
		}
		if p.Value.AvoidHost != "" {
			if st.Avoid == nil {
				st.Avoid = map[string]string{}
			}
			st.Avoid[name] = p.Value.AvoidHost
		}
	}
	return st
}

// place asks the scheduler for a plan and commits it. Each placement is
// re-checked with the same Fits the engine used; then the plan is committed
// in chunks, each one transaction guarded by leadership, by every workload's
// record, by the allocation keys being free, and by each target host's
// registration and heartbeat. A chunk that loses a race stops the rest:
// the next evaluation starts from fresh state.
func (l *leader) place(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	l.placeWrote = false
	var pending []api.Workload
	var held []scheduler.Unplaced
	l.wakeAt = time.Time{}
	for name, w := range snap.Workloads {
		if _, placed := snap.Allocations[name]; placed || w.Value.Deleting {
			continue
		}
		if host := reportingHost(snap, name); host != "" {
			// Its old host still reports it (running, starting, stopping,
			// or failed — a failed destroy may leave it running): placing
			// it now could run it twice. Agents delete a workload's status
			// only once its destroy is confirmed; a dead host's statuses go
			// with its lease, and then the fence record decides.
			held = append(held, scheduler.Unplaced{Workload: name, Reason: heldReason(host)})
			continue
		}
		if host := unconfirmedStop(snap, name); host != "" {
			held = append(held, scheduler.Unplaced{Workload: name, Reason: fmt.Sprintf("waiting for %s to be fenced: it lost its lease while stopping the workload", host)})
			continue
		}
		if p, ok := snap.Pending[name]; ok && now.Before(p.Value.NotBefore) {
			// Backing off before a reschedule: come back then.
			if l.wakeAt.IsZero() || p.Value.NotBefore.Before(l.wakeAt) {
				l.wakeAt = p.Value.NotBefore
			}
			continue
		}
		pending = append(pending, w.Value)
	}
	if len(pending) == 0 && len(held) == 0 {
		return false, nil
	}
	began := time.Now()
	st := SchedulerState(snap)
	var plan scheduler.Plan
	if len(pending) > 0 {
		plan = l.cfg.Scheduler.Schedule(st, pending, now)
	}
	plan.Unplaced = append(plan.Unplaced, held...)
	scheduled := time.Now()
	// Replay the plan through the same checks the engine used: a plan that
	// would overcommit a host or break a constraint is a bug, and we refuse
	// to write it.
	if err := scheduler.Verify(st, plan); err != nil {
		return false, fmt.Errorf("refusing an invalid plan: %w", err)
	}
	b := newBatcher(l, l.cfg.MaxTxnOps)
	seq := 0
	event := func(typ, host, workload, msg string) clusterstore.Op {
		seq++
		return eventOp(now, 300+seq, typ, host, workload, msg)
	}
	// Preemptions first, each in the same transaction as its event and the
	// victim's pending record (marked displaced, so admission control lets
	// it back in).
	for _, p := range plan.Preemptions {
		a := snap.Allocations[p.Workload]
		key := clusterstore.AllocationKey(p.Workload)
		rec := api.PendingReason{Schema: api.SchemaVersion, Workload: p.Workload, Reason: "preempted: " + p.Reason, At: now.UTC(), Displaced: true, StoppingOn: p.Host}
		conds := []clusterstore.Cond{clusterstore.ModRevisionIs(key, a.ModRevision)}
		ops := []clusterstore.Op{
			clusterstore.Delete(key),
			clusterstore.Put(clusterstore.PendingKey(p.Workload), clusterstore.Encode(rec)),
			event("preempted", p.Host, p.Workload, p.Reason),
		}
		if ok, err := b.add(ctx, "", nil, conds, ops); err != nil || !ok {
			return !ok, err
		}
		l.log.Warn("preempting", "workload", p.Workload, "host", p.Host, "by", p.By, "reason", p.Reason)
	}
	for _, p := range plan.Placements {
		n := snap.Nodes[p.Host]
		w := snap.Workloads[p.Workload]
		conds := []clusterstore.Cond{
			clusterstore.ModRevisionIs(clusterstore.WorkloadKey(p.Workload), w.ModRevision),
			clusterstore.Missing(clusterstore.AllocationKey(p.Workload)),
		}
		a := api.Allocation{Schema: api.SchemaVersion, Workload: p.Workload, Host: p.Host, CPUs: p.CPUs, Memory: p.Memory, CreatedAt: now.UTC()}
		if pr, ok := snap.Pending[p.Workload]; ok {
			a.Reschedules = pr.Value.Reschedules
		}
		ops := []clusterstore.Op{clusterstore.Put(clusterstore.AllocationKey(p.Workload), clusterstore.Encode(a))}
		if _, had := snap.Pending[p.Workload]; had {
			ops = append(ops, clusterstore.Delete(clusterstore.PendingKey(p.Workload)))
		}
		// An event per placement, except for bulk plans (a burst of
		// thousands of creates), which get one summary event below.
		if len(plan.Placements) <= maxPlacementEvents {
			ops = append(ops, event("placed", p.Host, p.Workload, fmt.Sprintf("placed on %s (score %.0f)", p.Host, p.Score)))
		}
		hb := snap.Heartbeats[p.Host]
		hostConds := []clusterstore.Cond{
			clusterstore.ModRevisionIs(clusterstore.NodeKey(p.Host), n.ModRevision),
			clusterstore.ModRevisionIs(clusterstore.HeartbeatKey(p.Host), hb.ModRevision),
		}
		if ok, err := b.add(ctx, p.Host, hostConds, conds, ops); err != nil || !ok {
			return !ok, err
		}
	}
	for _, u := range plan.Unplaced {
		if old, ok := snap.Pending[u.Workload]; ok && old.Value.Reason == u.Reason {
			continue // unchanged: don't write
		}
		rec := api.PendingReason{Schema: api.SchemaVersion, Workload: u.Workload}
		if old, ok := snap.Pending[u.Workload]; ok {
			// Only the reason changes: keep everything a reschedule, a
			// recovery or a move recorded (displaced, backoff, host to
			// avoid, host still stopping it).
			rec = old.Value
		}
		rec.Reason, rec.At = u.Reason, now.UTC()
		w := snap.Workloads[u.Workload]
		conds := []clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.WorkloadKey(u.Workload), w.ModRevision)}
		ops := []clusterstore.Op{clusterstore.Put(clusterstore.PendingKey(u.Workload), clusterstore.Encode(rec))}
		if ok, err := b.add(ctx, "", nil, conds, ops); err != nil || !ok {
			return !ok, err
		}
		l.log.Info("workload pending", "workload", u.Workload, "reason", u.Reason)
	}
	if n := len(plan.Placements); n > maxPlacementEvents {
		if ok, err := b.add(ctx, "", nil, nil, []clusterstore.Op{event("placed", "", "", fmt.Sprintf("placed %d workloads in one plan", n))}); err != nil || !ok {
			return !ok, err
		}
	}
	if ok, err := b.flush(ctx); err != nil || !ok {
		return !ok, err
	}
	l.placeWrote = b.txns > 0
	rep := PlanReport{Placed: len(plan.Placements), Unplaced: len(plan.Unplaced), Preempted: len(plan.Preemptions), Transactions: b.txns,
		Took: time.Since(began) + l.readTook, Read: l.readTook, Schedule: scheduled.Sub(began), Commit: time.Since(scheduled)}
	if len(plan.Placements) <= 20 {
		for _, p := range plan.Placements {
			l.log.Info("placed", "workload", p.Workload, "host", p.Host)
		}
	} else {
		l.log.Info("placed", "workloads", len(plan.Placements), "transactions", b.txns, "read", rep.Read, "schedule", rep.Schedule, "commit", rep.Commit)
	}
	if l.cfg.OnPlan != nil && b.txns > 0 {
		l.cfg.OnPlan(rep)
	}
	return false, nil
}

// batcher packs guarded writes into transactions under the op limit. Host
// guards are added once per transaction for every host it touches.
type batcher struct {
	l     *leader
	max   int
	conds []clusterstore.Cond
	ops   []clusterstore.Op
	hosts map[string]bool
	txns  int
}

func newBatcher(l *leader, max int) *batcher {
	return &batcher{l: l, max: max, hosts: map[string]bool{}}
}

// add queues one item; it commits the current batch first if the item would
// not fit. It returns false if a commit lost a race.
func (b *batcher) add(ctx context.Context, host string, hostConds, conds []clusterstore.Cond, ops []clusterstore.Op) (bool, error) {
	extra := len(conds)
	if host != "" && !b.hosts[host] {
		extra += len(hostConds)
	}
	// +1 leaves room for the leadership guard.
	if len(b.conds)+extra+1 > b.max || len(b.ops)+len(ops) > b.max {
		if ok, err := b.flush(ctx); err != nil || !ok {
			return ok, err
		}
	}
	if host != "" && !b.hosts[host] {
		b.hosts[host] = true
		b.conds = append(b.conds, hostConds...)
	}
	b.conds = append(b.conds, conds...)
	b.ops = append(b.ops, ops...)
	return true, nil
}

func (b *batcher) flush(ctx context.Context) (bool, error) {
	if len(b.ops) == 0 {
		return true, nil
	}
	ok, err := b.l.commit(ctx, b.conds, b.ops)
	b.conds, b.ops, b.hosts = b.conds[:0], b.ops[:0], map[string]bool{}
	if err != nil {
		return false, err
	}
	if !ok {
		b.l.log.Info("plan lost a race; re-evaluating")
		return false, nil
	}
	b.txns++
	return true, nil
}

// commit runs a transaction guarded by leadership.
func (l *leader) commit(ctx context.Context, conds []clusterstore.Cond, ops []clusterstore.Op) (bool, error) {
	conds = append([]clusterstore.Cond{l.guard}, conds...)
	ok, _, err := l.cfg.Store.Txn(ctx, conds, ops)
	if err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	if !ok {
		// Was it leadership we lost? Then stop leading.
		if held, _, err := l.cfg.Store.Txn(ctx, []clusterstore.Cond{l.guard}, nil); err == nil && !held {
			return false, errLostLeadership
		}
	}
	return ok, nil
}

var errLostLeadership = errors.New("leadership lost")

// maxPlacementEvents bounds the per-workload "placed" events of one plan.
const maxPlacementEvents = 100

// Evaluator exposes one evaluation of the leader's loop — read a snapshot,
// decide, commit — so that the deterministic simulation harness can drive
// it step by step with a fake clock, without goroutines or elections.
type Evaluator struct{ l *leader }

// NewEvaluator builds an evaluator that guards its writes with guard and
// reads the time from now.
func NewEvaluator(cfg Config, guard clusterstore.Cond, now func() time.Time) (*Evaluator, error) {
	srv, err := New(cfg) // fills defaults and checks the configuration
	if err != nil {
		return nil, err
	}
	l := &leader{cfg: srv.cfg, log: srv.log, guard: guard, now: now}
	l.fo = newFailover(srv.cfg.Fencing, srv.cfg.Store, srv.log, guard, func() {})
	l.fo.now = now
	return &Evaluator{l: l}, nil
}

// Evaluate runs one evaluation. again reports that a guarded commit lost a
// race and the caller should evaluate again.
func (e *Evaluator) Evaluate(ctx context.Context) (again bool, err error) {
	return e.l.evaluate(ctx)
}
