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
	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/scheduler/failure"
)

// FencingConfig is how the leader fences lost hosts.
type FencingConfig struct {
	// Devices returns a host's fence devices in level order (nil: none).
	Devices func(host string) []fencing.Device
	// DeviceTimeout bounds one device's power-off, confirmation included.
	DeviceTimeout time.Duration
	// RetryInterval paces new attempts after every device failed.
	RetryInterval time.Duration
	// CheckInterval is how often every host's fence devices are probed.
	CheckInterval time.Duration
	// SuspectGrace: see failure.Config.
	SuspectGrace time.Duration
	// Synchronous runs each fence operation inside the evaluation instead
	// of in the background: for the deterministic simulation harness.
	Synchronous bool
}

func (c *FencingConfig) defaults() {
	if c.DeviceTimeout == 0 {
		c.DeviceTimeout = 20 * time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = 5 * time.Second
	}
	if c.CheckInterval == 0 {
		c.CheckInterval = 30 * time.Second
	}
}

func (c *FencingConfig) devices(host string) []fencing.Device {
	if c.Devices == nil {
		return nil
	}
	return c.Devices(host)
}

// failover is the leader's failure handling: the detector's memory, the
// fence operations in flight, and the I/O that carries out its actions.
type failover struct {
	cfg     FencingConfig
	store   clusterstore.Store
	log     *slog.Logger
	guard   clusterstore.Cond
	trigger func()

	mu       sync.Mutex
	hosts    map[string]failure.Host
	inFlight map[string]bool
	// failedUntil: every device failed; the host counts as unfenceable
	// (so watchdog fencing may apply) until then, when it is tried again.
	failedUntil map[string]time.Time
	wg          sync.WaitGroup
	now         func() time.Time
	metrics     *metrics // nil in the simulation harness
}

func newFailover(cfg FencingConfig, store clusterstore.Store, log *slog.Logger, guard clusterstore.Cond, trigger func()) *failover {
	cfg.defaults()
	return &failover{cfg: cfg, store: store, log: log, guard: guard, trigger: trigger,
		hosts: map[string]failure.Host{}, inFlight: map[string]bool{}, failedUntil: map[string]time.Time{}, now: time.Now}
}

// wait blocks until every fence operation this leader started has ended.
func (f *failover) wait() { f.wg.Wait() }

// needsTick reports whether a timed transition is due soon, so the leader
// must evaluate even without changes in the store.
func (f *failover) needsTick() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.hosts {
		if h.State == failure.Suspect || h.State == failure.Lost {
			return true
		}
	}
	return len(f.failedUntil) > 0
}

// step runs the detector on a snapshot and carries out its actions. It
// returns true when it changed allocations (the caller re-reads state).
func (f *failover) step(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	allocs := map[string][]string{}
	for name, a := range snap.Allocations {
		allocs[a.Value.Host] = append(allocs[a.Value.Host], name)
	}
	// A host that lost its lease while stopping workloads taken from it
	// (preempted, drained) must be fenced before they restart elsewhere,
	// as if it still had them.
	stopping := map[string]int{}
	for name := range snap.Workloads {
		if host := unconfirmedStop(snap, name); host != "" {
			stopping[host]++
		}
	}
	// So must a host that holds volume locks or floating-IP claims: only
	// its fence record releases them.
	for _, claims := range []map[string]clusterstore.Versioned[api.Claim]{snap.Locks, snap.VIPClaims} {
		for _, c := range claims {
			stopping[c.Value.Host]++
		}
	}
	wd := failure.Config{SuspectGrace: f.cfg.SuspectGrace, WatchdogFencing: snap.Settings.WatchdogFencing}

	f.mu.Lock()
	next := map[string]failure.Host{}
	var trans []failure.Transition
	var acts []failure.Action
	for host, n := range snap.Nodes {
		_, alive := snap.Heartbeats[host]
		_, record := snap.Fencing[host]
		_, requested := snap.FenceRequests[host]
		until, failed := f.failedUntil[host]
		if failed && !now.Before(until) {
			delete(f.failedUntil, host)
			failed = false
		}
		o := failure.Observation{
			Host: host, Alive: alive, FenceRecord: record, Fencing: f.inFlight[host],
			Fenceable: len(f.cfg.devices(host)) > 0 && !failed, Allocations: len(allocs[host]) + stopping[host], FenceRequested: requested,
		}
		// The watchdog window is per host: T + T_self + the watchdog's
		// own timeout. An agent that did not say its timing gets the
		// longest we allow.
		c := wd
		c.WatchdogWait = time.Duration(n.Value.LeaseTTL) + time.Duration(n.Value.SelfFenceAfter) + time.Duration(snap.Settings.WatchdogTimeout)
		if n.Value.LeaseTTL == 0 || n.Value.SelfFenceAfter == 0 {
			c.WatchdogWait = 2*time.Minute + time.Duration(snap.Settings.WatchdogTimeout)
		}
		prev := map[string]failure.Host{}
		if h, ok := f.hosts[host]; ok {
			prev[host] = h
		}
		h, t, a := failure.Step(c, prev, []failure.Observation{o}, now)
		next[host] = h[host]
		// Keep the stored state in step with the detector, also after a
		// leader change (a new detector reports no transition for a host
		// it first sees ready).
		if hs, ok := snap.HostStates[host]; len(t) == 0 && (!ok || string(hs.Value.State) != string(h[host].State)) {
			t = []failure.Transition{{Host: host, From: failure.State(hs.Value.State), To: h[host].State, Reason: h[host].Reason, At: now}}
		}
		trans = append(trans, t...)
		acts = append(acts, a...)
	}
	sort.Slice(acts, func(i, j int) bool { return acts[i].Host < acts[j].Host })
	f.hosts = next
	f.mu.Unlock()

	if err := f.record(ctx, snap, trans); err != nil {
		return false, err
	}
	changed := false
	for _, a := range acts {
		switch a.Kind {
		case failure.ActFence:
			f.startFence(a.Host, snap.Revision)
		case failure.ActWatchdogFence:
			rec := api.FenceRecord{Schema: api.SchemaVersion, Host: a.Host, Device: "watchdog", Action: "self-fence window elapsed",
				PowerState: "unknown (watchdog reset assumed)", Started: now.UTC(), Confirmed: now.UTC(), Epoch: snap.Revision}
			// Only while the host is still without heartbeat: an agent
			// that came back wrote its heartbeat only while no fence
			// record existed, so exactly one of the two wins.
			if err := f.storeRecord(ctx, rec, "watchdog window elapsed; host presumed reset by its watchdog",
				clusterstore.Missing(clusterstore.HeartbeatKey(a.Host))); err != nil {
				f.log.Warn("watchdog fence not recorded", "host", a.Host, "err", err)
				continue
			}
			changed = true
		case failure.ActRecover:
			ok, err := f.recover(ctx, snap, a.Host, allocs[a.Host], now)
			if err != nil {
				return false, err
			}
			changed = changed || ok
		}
	}
	released, err := f.releaseFencedClaims(ctx, snap, now)
	if err != nil {
		return false, err
	}
	return changed || released, nil
}

// releaseFencedClaims frees the volume locks and floating-IP claims held by
// hosts that have a fence record: proof that the holder is powered off (or,
// with watchdog fencing, reset). Nothing else ever frees a lost host's
// claims — no timer does.
func (f *failover) releaseFencedClaims(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (bool, error) {
	released := false
	for _, set := range []struct {
		what   string
		claims map[string]clusterstore.Versioned[api.Claim]
		key    func(string) string
	}{{"volume lock", snap.Locks, clusterstore.LockKey}, {"floating IP", snap.VIPClaims, clusterstore.VIPClaimKey}} {
		names := make([]string, 0, len(set.claims))
		for name := range set.claims {
			names = append(names, name)
		}
		sort.Strings(names)
		for i, name := range names {
			c := set.claims[name]
			rec, fenced := snap.Fencing[c.Value.Host]
			if !fenced {
				continue
			}
			key := set.key(name)
			msg := fmt.Sprintf("%s %s released from fenced host %s (held by %s at epoch %d; fence confirmed %s)",
				set.what, name, c.Value.Host, c.Value.Workload, c.Value.Epoch, rec.Value.Confirmed.Format(time.RFC3339Nano))
			done, _, err := f.store.Txn(ctx,
				[]clusterstore.Cond{f.guard, clusterstore.ModRevisionIs(clusterstore.FencingKey(c.Value.Host), rec.ModRevision), clusterstore.ModRevisionIs(key, c.ModRevision)},
				[]clusterstore.Op{clusterstore.Delete(key), eventOp(now, 400+i, "released", c.Value.Host, c.Value.Workload, msg)})
			if err != nil {
				return released, fmt.Errorf("release %s %s: %w", set.what, name, err)
			}
			if done {
				released = true
				f.log.Warn("claim released after fencing", "what", set.what, "name", name, "host", c.Value.Host, "workload", c.Value.Workload, "epoch", c.Value.Epoch)
			}
		}
	}
	return released, nil
}

// record stores each transition as the host's state and an event.
func (f *failover) record(ctx context.Context, snap *clusterstore.Snapshot, trans []failure.Transition) error {
	if len(trans) == 0 {
		return nil
	}
	var ops []clusterstore.Op
	for i, t := range trans {
		st := api.HostState{Schema: api.SchemaVersion, Host: t.Host, State: api.NodeState(t.To), Reason: t.Reason, Since: t.At.UTC()}
		ops = append(ops, clusterstore.Put(clusterstore.HostStateKey(t.Host), clusterstore.Encode(st)))
		msg := fmt.Sprintf("%s -> %s", t.From, t.To)
		if t.From == "" {
			msg = "now " + string(t.To)
		}
		if t.Reason != "" {
			msg += ": " + t.Reason
		}
		ops = append(ops, eventOp(t.At, 100+i, "host-"+string(t.To), t.Host, "", msg))
		level := slog.LevelInfo
		if t.To != failure.Ready {
			level = slog.LevelWarn
		}
		f.log.Log(ctx, level, "host state", "host", t.Host, "from", t.From, "to", t.To, "reason", t.Reason)
	}
	// In chunks: a new leader of a large cluster records every host at once.
	for len(ops) > 0 {
		n := min(len(ops), 4096)
		ok, _, err := f.store.Txn(ctx, []clusterstore.Cond{f.guard}, ops[:n])
		if err != nil {
			return fmt.Errorf("record host states: %w", err)
		}
		if !ok {
			return errLostLeadership
		}
		ops = ops[n:]
	}
	return nil
}

// startFence powers a host off in the background, unless already under way.
func (f *failover) startFence(host string, epoch int64) {
	f.mu.Lock()
	if f.inFlight[host] {
		f.mu.Unlock()
		return
	}
	devs := f.cfg.devices(host)
	f.inFlight[host] = true
	f.mu.Unlock()
	f.wg.Add(1)
	run := func(fn func()) { go fn() }
	if f.cfg.Synchronous {
		run = func(fn func()) { fn() }
	}
	run(func() {
		defer f.wg.Done()
		defer f.trigger()
		defer func() {
			f.mu.Lock()
			delete(f.inFlight, host)
			f.mu.Unlock()
		}()
		// Fencing outlives a lost leadership only as long as the store
		// write is refused: the record write below is guarded.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(len(devs)+1)*f.cfg.DeviceTimeout)
		defer cancel()
		f.log.Warn("fencing host", "host", host, "devices", len(devs))
		began := time.Now()
		ev, err := fencing.FenceHost(ctx, devs, f.cfg.DeviceTimeout)
		if f.metrics != nil {
			result := "ok"
			if err != nil {
				result = "failed"
			}
			f.metrics.fenceAttempts.WithLabelValues(result).Inc()
			f.metrics.fenceSeconds.WithLabelValues(result).Observe(time.Since(began).Seconds())
		}
		if err != nil {
			f.log.Error("fencing failed on every device", "host", host, "err", err, "retry_in", f.cfg.RetryInterval)
			f.mu.Lock()
			f.failedUntil[host] = f.now().Add(f.cfg.RetryInterval)
			f.mu.Unlock()
			_, _, _ = f.store.Txn(ctx, []clusterstore.Cond{f.guard}, []clusterstore.Op{eventOp(f.now(), 0, "fence-failed", host, "", err.Error())})
			return
		}
		rec := ev.Record(host, epoch)
		msg := fmt.Sprintf("powered off by %s (level %d): %s, power state read %s after %s", ev.Device, ev.Level, ev.Action, ev.PowerState, ev.Confirmed.Sub(ev.Started).Round(time.Millisecond))
		if err := f.storeRecord(ctx, rec, msg); err != nil {
			f.log.Error("fenced, but the fence record could not be stored", "host", host, "err", err)
			return
		}
		f.log.Warn("host fenced", "host", host, "device", ev.Device, "power_state", ev.PowerState)
	})
}

// storeRecord writes the fence record — the evidence recovery depends on —
// and its event, if no record is there yet.
func (f *failover) storeRecord(ctx context.Context, rec api.FenceRecord, msg string, extra ...clusterstore.Cond) error {
	key := clusterstore.FencingKey(rec.Host)
	conds := append([]clusterstore.Cond{f.guard, clusterstore.Missing(key)}, extra...)
	ok, _, err := f.store.Txn(ctx, conds, []clusterstore.Op{
		clusterstore.Put(key, clusterstore.Encode(rec)),
		clusterstore.Delete(clusterstore.FenceRequestKey(rec.Host)),
		eventOp(rec.Confirmed, 0, "fenced", rec.Host, "", msg),
	})
	if err != nil {
		return fmt.Errorf("store fence record for %s: %w", rec.Host, err)
	}
	if !ok {
		return errors.New("fence record not stored: leadership lost, a record exists, or the host is back")
	}
	return nil
}

// recover moves the allocations of a fenced host back to pending, each in a
// transaction that holds only while the fence record is the one we saw.
// The scheduler then places them elsewhere, in priority order, each under a
// new epoch (the new allocation key's create revision).
func (f *failover) recover(ctx context.Context, snap *clusterstore.Snapshot, host string, names []string, now time.Time) (bool, error) {
	rec, ok := snap.Fencing[host]
	if !ok {
		return false, nil // never without a fence record
	}
	sort.Strings(names)
	conds := []clusterstore.Cond{f.guard, clusterstore.ModRevisionIs(clusterstore.FencingKey(host), rec.ModRevision)}
	var ops []clusterstore.Op
	for i, name := range names {
		a := snap.Allocations[name]
		conds = append(conds, clusterstore.ModRevisionIs(clusterstore.AllocationKey(name), a.ModRevision))
		p := api.PendingReason{Schema: api.SchemaVersion, Workload: name, Displaced: true, At: now.UTC(),
			Reason: fmt.Sprintf("recovering from fenced host %s", host)}
		ops = append(ops, clusterstore.Delete(clusterstore.AllocationKey(name)),
			clusterstore.Put(clusterstore.PendingKey(name), clusterstore.Encode(p)),
			eventOp(now, 200+i, "recovering", host, name, fmt.Sprintf("%s was on fenced host %s (epoch %d); restarting elsewhere", name, host, a.Value.Epoch)))
	}
	done, _, err := f.store.Txn(ctx, conds, ops)
	if err != nil {
		return false, fmt.Errorf("recover %s: %w", host, err)
	}
	if done {
		f.log.Warn("recovering workloads of fenced host", "host", host, "workloads", len(names))
		f.mu.Lock()
		lost := f.hosts[host].LeaseLostAt
		f.mu.Unlock()
		if f.metrics != nil && !lost.IsZero() {
			f.metrics.failoverSecond.Observe(now.Sub(lost).Seconds())
		}
	}
	return done, nil
}

// eventOp builds the write of one event.
func eventOp(at time.Time, seq int, typ, host, workload, msg string) clusterstore.Op {
	e := api.Event{Schema: api.SchemaVersion, Time: at.UTC(), Type: typ, Host: host, Workload: workload, Message: msg}
	return clusterstore.Put(clusterstore.EventKey(at, seq, typ+"\x00"+host+"\x00"+workload+"\x00"+msg), clusterstore.Encode(e))
}

// checkHealth probes every registered host's fence devices (log in, read
// the power state) and stores the result when it changes, with an event
// when a host becomes unfenceable — so a wrong BMC password is found now,
// not during a failure.
func (f *failover) checkHealth(ctx context.Context) {
	snap, _, err := clusterstore.ReadSnapshot(ctx, f.store)
	if err != nil {
		f.log.Warn("fence health check: read state", "err", err)
		return
	}
	hosts := make([]string, 0, len(snap.Nodes))
	for h := range snap.Nodes {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		devs := f.cfg.devices(host)
		fh := api.FenceHealth{Schema: api.SchemaVersion, Host: host, Devices: len(devs), Checked: time.Now().UTC()}
		if len(devs) > 0 {
			var errs []string
			for _, r := range fencing.Levels(devs).Check(ctx, f.cfg.DeviceTimeout) {
				if r.Err == nil {
					fh.OK = true
					break
				}
				errs = append(errs, r.Err.Error())
			}
			if !fh.OK {
				fh.Error = strings.Join(errs, "; ")
			}
		}
		old, had := snap.FenceHealth[host]
		if had && old.Value.OK == fh.OK && old.Value.Devices == fh.Devices && old.Value.Error == fh.Error {
			continue
		}
		ops := []clusterstore.Op{clusterstore.Put(clusterstore.FenceHealthKey(host), clusterstore.Encode(fh))}
		if !fh.OK && fh.Devices > 0 {
			ops = append(ops, eventOp(fh.Checked, 0, "unfenceable", host, "", "fence devices failed their health check: "+fh.Error))
			f.log.Error("host is unfenceable", "host", host, "err", fh.Error)
		} else if had && !old.Value.OK && fh.OK {
			ops = append(ops, eventOp(fh.Checked, 0, "fenceable", host, "", "fence devices answer again"))
		}
		if _, _, err := f.store.Txn(ctx, []clusterstore.Cond{f.guard}, ops); err != nil {
			f.log.Warn("fence health check: store", "host", host, "err", err)
		}
	}
}
