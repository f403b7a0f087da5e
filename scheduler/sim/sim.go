// Package sim replays scripted cluster scenarios deterministically: hosts
// come and go, workloads are created and deleted, settings change, and the
// leader's real evaluation code (server.Evaluator, the scheduler, the plan
// applier) runs against the in-memory store with a fake clock. Each step
// logs what changed, so a scenario's log can be checked against a golden file.
//
// Script lines (one command each, '#' starts a comment):
//
//	host add NAME cpus=N mem=SIZE [label=value ...]
//	host remove NAME          # deregister and drop its heartbeat
//	host down NAME            # heartbeat lease lost; stays registered
//	host up NAME              # heartbeat back
//	host confirm-off NAME     # an operator declares it powered off
//	host clear NAME           # an operator lets a fenced host back in
//	host label NAME k=v ...   # set labels (k= removes one)
//	settings key=value ...    # strategy, preemption, tolerate, reserve-cpus, reserve-mem
//	vm NAME cpus=N mem=SIZE [prio=N] [require=EXPR]... [prefer=EXPR]... [anti=GROUP] [spread=LABEL] [image=REF]
//	                          (image= makes it a container)
//	delete NAME
//	advance DURATION
//	explain NAME
//	check                     # invariants: capacity, constraints, anti-affinity
//	fencedev add HOST NAME    # a fence device for HOST (levels in order added)
//	fencedev fail|ok NAME     # the device fails every operation / works
//	leader restart            # a new leader: the detector's memory is gone
//	leader stop|start         # no leader for a while, then a new one
//	maintenance on|off HOST   # what `bulwarkctl node maintenance` writes
//	drain HOST [batch=N] [timeout=D]  # what `bulwarkctl node drain --yes` starts
//	drain-plan HOST [batch=N] # the plan `node drain` shows first (changes nothing)
//	drain-status HOST         # the drain's progress, as GET /v1/nodes/HOST/drain
//	reset NAME                # what `bulwarkctl workload reset` asks for
//	agents on|off             # simulated agents: each host reports what is
//	                          # allocated to it running and stops the rest
//	agent slow|ok HOST        # a slow agent keeps reporting "stopping"
//	agent fail NAME           # NAME's host gives up on it (restart limit)
//
// Host timing for watchdog fencing: host add ... ttl=3s self=2s.
// Settings also take watchdog=true, watchdog-timeout=DURATION and
// failure-timeout=DURATION.
//
// Values with spaces are quoted: require="rack in (r1,r2)".
package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/scheduler"
	"github.com/bulwarkhq/bulwark/server"
)

// Explainer is implemented by schedulers that can explain a decision.
type Explainer interface {
	Explain(st *scheduler.State, name string) api.Explanation
}

// Sim is one scenario's world.
type Sim struct {
	ctx     context.Context
	devices map[string][]*device // by host, in level order
	stopped bool                 // no leader: nothing is evaluated
	byName  map[string]*device
	now     time.Time
	store   *memory.Store
	eval    *server.Evaluator
	sched   scheduler.Scheduler
	leases  map[string]clusterstore.LeaseID
	out     strings.Builder
	prev    *clusterstore.Snapshot
	seq     int
	// Simulated agents (agents on): hosts that are slow to stop, and the
	// epoch each failing workload fails at.
	agents  bool
	slow    map[string]bool
	failing map[string]int64
	// onRound, if set, is called after every evaluation and agent round
	// (tests check invariants there).
	onRound func() error
}

// Epoch is the simulated clock's start.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// New builds a simulation around a scheduler.
func New(sched scheduler.Scheduler) (*Sim, error) {
	s := &Sim{ctx: context.Background(), now: Epoch, sched: sched, leases: map[string]clusterstore.LeaseID{},
		devices: map[string][]*device{}, byName: map[string]*device{}, slow: map[string]bool{}, failing: map[string]int64{}}
	s.store = memory.New(memory.WithClock(func() time.Time { return s.now }))
	if err := s.newLeader(); err != nil {
		return nil, err
	}
	s.prev, _, _ = clusterstore.ReadSnapshot(s.ctx, s.store)
	return s, nil
}

// newLeader builds a fresh evaluator, as a newly elected leader would be.
func (s *Sim) newLeader() error {
	ev, err := server.NewEvaluator(server.Config{
		Name: "sim", Store: s.store, Scheduler: s.sched,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Fencing: server.FencingConfig{
			Devices: func(host string) []fencing.Device {
				var out []fencing.Device
				for _, d := range s.devices[host] {
					out = append(out, d)
				}
				return out
			},
			Synchronous: true, RetryInterval: 5 * time.Second,
		},
	}, clusterstore.Missing(clusterstore.Prefix+"sim-never-set"), func() time.Time { return s.now })
	if err != nil {
		return err
	}
	s.eval = ev
	return nil
}

// device is a fence device under the script's control. Powering a host off
// takes its heartbeat away, as a real power cut would.
type device struct {
	s      *Sim
	name   string
	host   string
	broken bool
}

func (d *device) Name() string { return d.name }

func (d *device) PowerState(context.Context) (fencing.PowerState, error) {
	if d.broken {
		return fencing.Unknown, fmt.Errorf("%s: %w", d.name, fencing.ErrUnreachable)
	}
	if _, on := d.s.leases[d.host]; on {
		return fencing.On, nil
	}
	return fencing.Off, nil
}

func (d *device) PowerOff(context.Context) (fencing.Evidence, error) {
	if d.broken {
		return fencing.Evidence{}, fmt.Errorf("%s: %w", d.name, fencing.ErrUnreachable)
	}
	_ = d.s.down(d.host)
	return fencing.Evidence{Device: d.name, Action: "ForceOff", PowerState: string(fencing.Off), Started: d.s.now, Confirmed: d.s.now, Attempts: 1}, nil
}

func (d *device) PowerOn(context.Context) error {
	if d.broken {
		return fmt.Errorf("%s: %w", d.name, fencing.ErrUnreachable)
	}
	return d.s.heartbeat(d.host)
}

func (d *device) Check(context.Context) error {
	if d.broken {
		return fmt.Errorf("%s: %w", d.name, fencing.ErrUnreachable)
	}
	return nil
}

func (s *Sim) fencedev(args []string) error {
	switch {
	case len(args) == 3 && args[0] == "add":
		d := &device{s: s, name: args[2], host: args[1]}
		s.devices[d.host] = append(s.devices[d.host], d)
		s.byName[d.name] = d
		return nil
	case len(args) == 2 && (args[0] == "fail" || args[0] == "ok"):
		d, ok := s.byName[args[1]]
		if !ok {
			return fmt.Errorf("no fence device %q", args[1])
		}
		d.broken = args[0] == "fail"
		return nil
	}
	return fmt.Errorf("usage: fencedev add HOST NAME | fencedev fail|ok NAME")
}

// Close releases the store.
func (s *Sim) Close() { s.store.Close() }

// Store exposes the simulated store (for property checks).
func (s *Sim) Store() clusterstore.Store { return s.store }

// Run executes a script and returns the log.
func (s *Sim) Run(script string) (string, error) {
	for i, line := range strings.Split(script, "\n") {
		line = strings.TrimSpace(line)
		if c := strings.Index(line, "#"); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line == "" {
			continue
		}
		s.logf("> %s", line)
		if err := s.Exec(line); err != nil {
			return s.out.String(), fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
	}
	return s.out.String(), nil
}

func (s *Sim) logf(format string, args ...any) {
	fmt.Fprintf(&s.out, format+"\n", args...)
}

// Exec runs one command, then lets the leader settle and logs what changed.
func (s *Sim) Exec(line string) error {
	f, err := splitFields(line)
	if err != nil {
		return err
	}
	if len(f) == 0 {
		return nil
	}
	switch f[0] {
	case "host":
		err = s.host(f[1:])
	case "settings":
		err = s.settings(f[1:])
	case "vm":
		err = s.vm(f[1:])
	case "delete":
		err = s.delete(f[1:])
	case "advance":
		if len(f) != 2 {
			return fmt.Errorf("usage: advance DURATION")
		}
		d, perr := time.ParseDuration(f[1])
		if perr != nil {
			return perr
		}
		s.now = s.now.Add(d)
		s.store.ExpireLeases()
	case "fencedev":
		err = s.fencedev(f[1:])
	case "leader":
		if len(f) != 2 {
			return fmt.Errorf("usage: leader restart|stop|start")
		}
		switch f[1] {
		case "stop":
			s.stopped = true
		case "start", "restart":
			s.stopped = false
			err = s.newLeader()
		default:
			return fmt.Errorf("usage: leader restart|stop|start")
		}
	case "maintenance":
		err = s.maintenance(f[1:])
	case "drain":
		err = s.drain(f[1:])
	case "drain-plan":
		return s.drainPlan(f[1:])
	case "drain-status":
		return s.drainStatus(f[1:])
	case "reset":
		if len(f) != 2 {
			return fmt.Errorf("usage: reset NAME")
		}
		req := api.ResetRequest{Schema: api.SchemaVersion, Workload: f[1], By: "sim", At: s.now}
		err = s.put(clusterstore.Put(clusterstore.ResetKey(f[1]), clusterstore.Encode(req)))
	case "agents":
		if len(f) != 2 || f[1] != "on" && f[1] != "off" {
			return fmt.Errorf("usage: agents on|off")
		}
		s.agents = f[1] == "on"
	case "agent":
		err = s.agent(f[1:])
	case "explain":
		return s.explain(f[1:])
	case "check":
		return s.check()
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	if err != nil {
		return err
	}
	return s.settle()
}

// settle runs evaluations until nothing changes (bounded), then logs the diff.
func (s *Sim) settle() error {
	rounds := 20
	if s.agents {
		rounds = 200 // a drain takes several rounds per batch
	}
	for i := 0; i < rounds && !s.stopped; i++ {
		_, before, err := s.store.List(s.ctx, clusterstore.Prefix, 0)
		if err != nil {
			return err
		}
		if _, err := s.eval.Evaluate(s.ctx); err != nil {
			return fmt.Errorf("evaluate: %w", err)
		}
		if err := s.agentsStep(); err != nil {
			return fmt.Errorf("agents: %w", err)
		}
		if s.onRound != nil {
			if err := s.onRound(); err != nil {
				return err
			}
		}
		_, after, _ := s.store.List(s.ctx, clusterstore.Prefix, 0)
		if after == before {
			break
		}
	}
	snap, _, err := clusterstore.ReadSnapshot(s.ctx, s.store)
	if err != nil {
		return err
	}
	s.diff(s.prev, snap)
	s.prev = snap
	return nil
}

func (s *Sim) diff(a, b *clusterstore.Snapshot) {
	var lines []string
	for name, al := range b.Allocations {
		old, ok := a.Allocations[name]
		if !ok || old.CreateRevision != al.CreateRevision {
			lines = append(lines, fmt.Sprintf("place %s -> %s", name, al.Value.Host))
		}
	}
	for name, al := range a.Allocations {
		if nw, ok := b.Allocations[name]; !ok || nw.CreateRevision != al.CreateRevision {
			lines = append(lines, fmt.Sprintf("unplace %s from %s", name, al.Value.Host))
		}
	}
	for name, p := range b.Pending {
		if old, ok := a.Pending[name]; !ok || old.Value.Reason != p.Value.Reason {
			lines = append(lines, fmt.Sprintf("pending %s: %s", name, p.Value.Reason))
		}
	}
	for name := range a.Workloads {
		if _, ok := b.Workloads[name]; !ok {
			lines = append(lines, fmt.Sprintf("removed %s", name))
		}
	}
	sort.Strings(lines)
	// Events (preemptions, host states, fencing) in the order they were written.
	evs, _, _ := s.store.List(s.ctx, clusterstore.EventsPrefix, 0)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].ModRevision < evs[j].ModRevision })
	for _, kv := range evs {
		if kv.ModRevision <= a.Revision {
			continue
		}
		var e api.Event
		if clusterstore.Decode(kv, &e) == nil {
			subject := e.Host
			if e.Workload != "" {
				subject = e.Workload
			}
			lines = append(lines, fmt.Sprintf("event %s %s: %s", e.Type, subject, e.Message))
		}
	}
	for _, l := range lines {
		s.logf("  %s", l)
	}
}

func (s *Sim) put(ops ...clusterstore.Op) error {
	_, _, err := s.store.Txn(s.ctx, nil, ops)
	return err
}

func (s *Sim) host(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: host add|remove|down|up|label NAME [ARGS]")
	}
	verb, name, rest := args[0], args[1], args[2:]
	switch verb {
	case "add":
		n := api.Node{Schema: api.SchemaVersion, Name: name, Labels: map[string]string{}}
		for _, kv := range rest {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "cpus":
				n.CPUs, _ = strconv.Atoi(v)
			case "mem":
				m, err := api.ParseByteSize(v)
				if err != nil {
					return err
				}
				n.Memory = m
			case "kinds":
				for _, k := range strings.Split(v, ",") {
					n.Kinds = append(n.Kinds, api.Kind(k))
				}
			case "ttl", "self":
				d, err := time.ParseDuration(v)
				if err != nil {
					return err
				}
				if k == "ttl" {
					n.LeaseTTL = api.Duration(d)
				} else {
					n.SelfFenceAfter = api.Duration(d)
				}
			default:
				n.Labels[k] = v
			}
		}
		if err := n.Validate(); err != nil {
			return err
		}
		if err := s.put(clusterstore.Put(clusterstore.NodeKey(name), clusterstore.Encode(n))); err != nil {
			return err
		}
		return s.heartbeat(name)
	case "remove":
		if err := s.down(name); err != nil {
			return err
		}
		return s.put(clusterstore.Delete(clusterstore.NodeKey(name)))
	case "down":
		return s.down(name)
	case "confirm-off":
		// What `bulwarkctl node fence --confirm-off` writes: refused
		// while the host holds its heartbeat.
		rec := api.FenceRecord{Schema: api.SchemaVersion, Host: name, Device: "operator", Action: "confirmed off by an operator", PowerState: "Off (operator)", Started: s.now, Confirmed: s.now}
		ok, _, err := s.store.Txn(s.ctx, []clusterstore.Cond{clusterstore.Missing(clusterstore.HeartbeatKey(name)), clusterstore.Missing(clusterstore.FencingKey(name))},
			[]clusterstore.Op{clusterstore.Put(clusterstore.FencingKey(name), clusterstore.Encode(rec))})
		if err == nil && !ok {
			s.logf("  refused: %s holds its heartbeat or is fenced", name)
		}
		return err
	case "clear":
		return s.put(clusterstore.Delete(clusterstore.FencingKey(name)), clusterstore.Delete(clusterstore.HostStateKey(name)))
	case "up":
		return s.heartbeat(name)
	case "label":
		kv, ok, _, err := s.store.Get(s.ctx, clusterstore.NodeKey(name))
		if err != nil || !ok {
			return fmt.Errorf("no host %s", name)
		}
		var n api.Node
		if err := clusterstore.Decode(kv, &n); err != nil {
			return err
		}
		if n.Labels == nil {
			n.Labels = map[string]string{}
		}
		for _, l := range rest {
			k, v, _ := strings.Cut(l, "=")
			if v == "" {
				delete(n.Labels, k)
			} else {
				n.Labels[k] = v
			}
		}
		return s.put(clusterstore.Put(clusterstore.NodeKey(name), clusterstore.Encode(n)))
	}
	return fmt.Errorf("unknown host command %q", verb)
}

func (s *Sim) heartbeat(name string) error {
	if _, ok := s.leases[name]; ok {
		return nil
	}
	// Leases end only when the script says so (host down), not by time.
	id, err := s.store.Grant(s.ctx, 100000*time.Hour)
	if err != nil {
		return err
	}
	s.leases[name] = id
	hb := api.Heartbeat{Schema: api.SchemaVersion, Host: name, Lease: int64(id)}
	return s.put(clusterstore.PutWithLease(clusterstore.HeartbeatKey(name), clusterstore.Encode(hb), id))
}

func (s *Sim) down(name string) error {
	id, ok := s.leases[name]
	if !ok {
		return nil
	}
	delete(s.leases, name)
	return s.store.Revoke(s.ctx, id)
}

func (s *Sim) settings(args []string) error {
	st := s.prev.Settings
	for _, kv := range args {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "strategy":
			st.Strategy = api.Strategy(v)
		case "preemption":
			st.Preemption = v == "true" || v == "on"
		case "tolerate":
			st.TolerateHostFailures, _ = strconv.Atoi(v)
		case "watchdog":
			st.WatchdogFencing = v == "true" || v == "on"
		case "watchdog-timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			st.WatchdogTimeout = api.Duration(d)
		case "failure-timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			st.FailureTimeout = api.Duration(d)
		case "reserve-cpus":
			st.ReservedCPUs, _ = strconv.Atoi(v)
		case "reserve-mem":
			m, err := api.ParseByteSize(v)
			if err != nil {
				return err
			}
			st.ReservedMemory = m
		default:
			return fmt.Errorf("unknown setting %q", k)
		}
	}
	st.Schema = api.SchemaVersion
	if err := st.Validate(); err != nil {
		return err
	}
	return s.put(clusterstore.Put(clusterstore.SettingsKey, clusterstore.Encode(st)))
}

func (s *Sim) vm(args []string) error {
	if len(args) < 1 {
		return fmt.Errorf("usage: vm NAME cpus=N mem=SIZE [FIELD=VALUE]")
	}
	spec := api.WorkloadSpec{Name: args[0], Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}
	for _, kv := range args[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "image":
			spec.Kind, spec.Image = api.KindContainer, v
		case "cpus":
			spec.CPUs, _ = strconv.Atoi(v)
		case "mem":
			m, err := api.ParseByteSize(v)
			if err != nil {
				return err
			}
			spec.Memory = m
		case "prio":
			spec.Priority, _ = strconv.Atoi(v)
		case "require":
			spec.Require = append(spec.Require, v)
		case "prefer":
			spec.Prefer = append(spec.Prefer, v)
		case "anti":
			spec.AntiAffinity = v
		case "spread":
			spec.SpreadBy = v
		default:
			return fmt.Errorf("unknown vm field %q", k)
		}
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	s.seq++
	w := api.Workload{Schema: api.SchemaVersion, WorkloadSpec: spec, CreatedAt: s.now.Add(time.Duration(s.seq) * time.Nanosecond)}
	ok, _, err := s.store.Txn(s.ctx, []clusterstore.Cond{clusterstore.Missing(clusterstore.WorkloadKey(spec.Name))},
		[]clusterstore.Op{clusterstore.Put(clusterstore.WorkloadKey(spec.Name), clusterstore.Encode(w))})
	if err == nil && !ok {
		err = fmt.Errorf("workload %s exists", spec.Name)
	}
	return err
}

func (s *Sim) delete(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: delete NAME")
	}
	kv, ok, _, err := s.store.Get(s.ctx, clusterstore.WorkloadKey(args[0]))
	if err != nil || !ok {
		return fmt.Errorf("no workload %s", args[0])
	}
	var w api.Workload
	if err := clusterstore.Decode(kv, &w); err != nil {
		return err
	}
	w.Deleting = true
	return s.put(clusterstore.Put(clusterstore.WorkloadKey(w.Name), clusterstore.Encode(w)))
}

// State is the scheduler's view of the current store.
func (s *Sim) State() (*scheduler.State, error) {
	snap, _, err := clusterstore.ReadSnapshot(s.ctx, s.store)
	if err != nil {
		return nil, err
	}
	return server.SchedulerState(snap), nil
}

func (s *Sim) explain(args []string) error {
	ex, ok := s.sched.(Explainer)
	if !ok || len(args) != 1 {
		return fmt.Errorf("usage: explain NAME (with a scheduler that explains)")
	}
	st, err := s.State()
	if err != nil {
		return err
	}
	e := ex.Explain(st, args[0])
	s.logf("  %s", e.Summary)
	for _, h := range e.Hosts {
		verdict := "rejected"
		if h.Feasible {
			verdict = fmt.Sprintf("accepted score=%.1f", h.Score)
		}
		if h.Chosen {
			verdict += " chosen"
		}
		line := fmt.Sprintf("  %s %s", h.Host, verdict)
		if h.Reason != "" {
			line += ": " + h.Reason
		}
		s.logf("%s", line)
	}
	return nil
}

func (s *Sim) check() error {
	st, err := s.State()
	if err != nil {
		return err
	}
	if v := Violations(st); len(v) > 0 {
		for _, x := range v {
			s.logf("  VIOLATION %s", x)
		}
		return nil
	}
	s.logf("  ok")
	return nil
}

// Violations lists every broken invariant of a state: a host over its
// allocatable capacity, a hard constraint not met, two members of an
// anti-affinity group on one host.
func Violations(st *scheduler.State) []string {
	nodes := map[string]api.Node{}
	for _, n := range st.Nodes {
		nodes[n.Node.Name] = n.Node
	}
	var out []string
	used := scheduler.UsageByHost(st.Allocations)
	for host, u := range used {
		n, ok := nodes[host]
		if !ok {
			continue // deregistered host: its workloads are failover's business
		}
		cpus := n.CPUs - st.Settings.ReservedCPUs
		mem := n.Memory - st.Settings.ReservedMemory
		if u.CPUs > cpus || u.Memory > mem {
			out = append(out, fmt.Sprintf("%s over capacity: %d/%d cpus, %s/%s", host, u.CPUs, cpus, u.Memory, mem))
		}
	}
	groups := map[string]string{}
	for name, a := range st.Allocations {
		w, ok := st.Workloads[name]
		if !ok {
			continue
		}
		p, err := w.ParsePlacement()
		if err != nil {
			continue
		}
		n, registered := nodes[a.Host]
		if !registered {
			continue
		}
		for _, c := range p.Require {
			if !c.Matches(n.Labels) {
				out = append(out, fmt.Sprintf("%s on %s breaks %s", name, a.Host, c))
			}
		}
		if p.AntiAffinity != "" {
			key := p.AntiAffinity + "@" + a.Host
			if other, dup := groups[key]; dup {
				out = append(out, fmt.Sprintf("%s and %s of group %s both on %s", other, name, p.AntiAffinity, a.Host))
			}
			groups[key] = name
		}
	}
	sort.Strings(out)
	return out
}

// splitFields splits on spaces, keeping double-quoted parts together
// (key="a b" becomes key=a b).
func splitFields(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQ, has := false, false
	for _, r := range line {
		switch {
		case r == '"':
			inQ = !inQ
			has = true
		case r == ' ' && !inQ:
			if has {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
			has = true
		}
	}
	if inQ {
		return nil, fmt.Errorf("unclosed quote")
	}
	if has {
		out = append(out, cur.String())
	}
	return out, nil
}
