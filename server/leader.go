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
	trigger()
	tick := time.NewTicker(l.cfg.Resync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case resp, ok := <-wch:
			if !ok || resp.Err != nil {
				return fmt.Errorf("leader: watch ended: %v", resp.Err)
			}
			if relevant(resp.Events) {
				trigger()
			}
		case <-tick.C:
			trigger()
		case <-kick:
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
		for _, p := range []string{clusterstore.WorkloadsPrefix, clusterstore.NodesPrefix, clusterstore.HeartbeatsPrefix, clusterstore.AllocationsPrefix, clusterstore.StatusPrefix} {
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
	snap, bad, err := clusterstore.ReadSnapshot(ctx, l.cfg.Store)
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
	return l.place(ctx, snap, now)
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
		ok, err := l.commit(ctx, []clusterstore.Cond{clusterstore.ModRevisionIs(key, w.ModRevision), clusterstore.Missing(clusterstore.AllocationKey(name))},
			[]clusterstore.Op{clusterstore.Delete(key), clusterstore.Delete(clusterstore.PendingKey(name))})
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

func reportingHost(snap *clusterstore.Snapshot, workload string) string {
	for host, byName := range snap.Statuses {
		if _, ok := byName[workload]; ok {
			return host
		}
	}
	return ""
}

// schedulerState converts a snapshot into the scheduler's input.
func schedulerState(snap *clusterstore.Snapshot) *scheduler.State {
	st := &scheduler.State{Revision: snap.Revision, Allocations: make(map[string]api.Allocation, len(snap.Allocations))}
	for name, n := range snap.Nodes {
		_, ready := snap.Heartbeats[name]
		st.Nodes = append(st.Nodes, scheduler.NodeInfo{Node: n.Value, Ready: ready, ModRevision: n.ModRevision})
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Node.Name < st.Nodes[j].Node.Name })
	for name, a := range snap.Allocations {
		st.Allocations[name] = a.Value
	}
	return st
}

// place asks the scheduler for a plan and commits it in one transaction,
// guarded by leadership, by every workload's record, by the allocation keys
// being free, and by each target host's registration and heartbeat.
func (l *leader) place(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	var pending []api.Workload
	for name, w := range snap.Workloads {
		if _, placed := snap.Allocations[name]; !placed && !w.Value.Deleting {
			pending = append(pending, w.Value)
		}
	}
	if len(pending) == 0 {
		return false, nil
	}
	st := schedulerState(snap)
	plan := l.cfg.Scheduler.Schedule(st, pending, now)

	// Re-check with the same Fits the engine uses: a plan that would
	// overcommit a host is a bug, and we refuse to write it.
	nodes := make(map[string]scheduler.NodeInfo, len(st.Nodes))
	for _, n := range st.Nodes {
		nodes[n.Node.Name] = n
	}
	used := scheduler.UsageByHost(st.Allocations)
	var conds []clusterstore.Cond
	var ops []clusterstore.Op
	guarded := map[string]bool{}
	for _, p := range plan.Placements {
		n, ok := nodes[p.Host]
		if !ok {
			return false, fmt.Errorf("plan places %s on unknown host %s", p.Workload, p.Host)
		}
		if fits, why := scheduler.Fits(n, used[p.Host], p.CPUs, p.Memory); !fits {
			return false, fmt.Errorf("plan places %s on %s but it does not fit: %s", p.Workload, p.Host, why)
		}
		u := used[p.Host]
		u.CPUs += p.CPUs
		u.Memory += p.Memory
		u.Count++
		used[p.Host] = u
		w := snap.Workloads[p.Workload]
		conds = append(conds,
			clusterstore.ModRevisionIs(clusterstore.WorkloadKey(p.Workload), w.ModRevision),
			clusterstore.Missing(clusterstore.AllocationKey(p.Workload)))
		if !guarded[p.Host] {
			guarded[p.Host] = true
			hb := snap.Heartbeats[p.Host]
			conds = append(conds,
				clusterstore.ModRevisionIs(clusterstore.NodeKey(p.Host), n.ModRevision),
				clusterstore.ModRevisionIs(clusterstore.HeartbeatKey(p.Host), hb.ModRevision))
		}
		a := api.Allocation{Schema: api.SchemaVersion, Workload: p.Workload, Host: p.Host, CPUs: p.CPUs, Memory: p.Memory, CreatedAt: now.UTC()}
		ops = append(ops, clusterstore.Put(clusterstore.AllocationKey(p.Workload), clusterstore.Encode(a)), clusterstore.Delete(clusterstore.PendingKey(p.Workload)))
	}
	for _, u := range plan.Unplaced {
		rec := api.PendingReason{Schema: api.SchemaVersion, Workload: u.Workload, Reason: u.Reason, At: now.UTC()}
		if old, ok := snap.Pending[u.Workload]; ok && old.Value.Reason == u.Reason {
			continue // unchanged: don't write
		}
		ops = append(ops, clusterstore.Put(clusterstore.PendingKey(u.Workload), clusterstore.Encode(rec)))
		l.log.Info("workload pending", "workload", u.Workload, "reason", u.Reason)
	}
	if len(ops) == 0 {
		return false, nil
	}
	ok, err := l.commit(ctx, conds, ops)
	if err != nil {
		return false, err
	}
	if !ok {
		l.log.Info("plan lost a race; re-evaluating", "placements", len(plan.Placements))
		return true, nil
	}
	for _, p := range plan.Placements {
		l.log.Info("placed", "workload", p.Workload, "host", p.Host)
	}
	return false, nil
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
