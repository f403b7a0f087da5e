// Package nodeagent runs on every host: it registers the host, keeps its
// heartbeat lease, runs what is allocated to it through a driver, reports
// status and fences itself when it loses the cluster.
package nodeagent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/network"
)

// Config configures an agent.
type Config struct {
	Host   string
	Labels map[string]string
	Store  clusterstore.Store
	Driver drivers.Driver
	// SessionTTL is the heartbeat lease TTL (T).
	SessionTTL time.Duration
	// SelfFenceAfter (T_self < T) is how long after the send time of its
	// last acknowledged keepalive the agent kills every workload it runs
	// (default 0.6 T). See docs/failover.md for the inequality.
	SelfFenceAfter time.Duration
	// Resync is how often the agent compares allocations with what runs,
	// even without a change in the store.
	Resync time.Duration
	// StopTimeout bounds a graceful stop before the workload is destroyed.
	StopTimeout time.Duration
	// UnhealthyStopDelay is how long a workload found unhealthy keeps
	// running before its host stops it (to restart it): the unhealthy report
	// reaches the store first, so that a service's load balancer takes it
	// out of its pool before its connections are refused. Default 2s;
	// negative: stop at once.
	UnhealthyStopDelay time.Duration
	// HTTPListen, if set, is where the agent serves its own API (tasks,
	// logs, volume checks, metrics; see http.go).
	HTTPListen string
	// HTTPTLS, if set, serves that API over HTTPS with this configuration
	// (its certificate: the host's agent certificate unless configured
	// otherwise), and the agent registers an https:// AgentURL. Nil: plain
	// HTTP, which cmd/bulwarkd allows only on a loopback address or with
	// http_insecure.
	HTTPTLS *tls.Config
	// WatchdogDevice, if set, is a hardware watchdog (/dev/watchdog) the
	// agent feeds while its lease is healthy and stops feeding when it
	// fences itself, so that a host whose agent hangs is reset by its
	// hardware. It is never disarmed (no magic close): an agent that stops
	// for longer than the watchdog's timeout resets its host, which is what
	// makes the cluster's watchdog fencing safe.
	WatchdogDevice string
	// OnReady, if set, is called once the host is registered and holds its
	// first heartbeat lease (systemd readiness).
	OnReady func()
	// Netns is the named network namespace that holds this host's
	// interfaces (floating IPs go there); empty: the agent's own. Simulated
	// hosts in `bulwarkd dev --netns` each have one.
	Netns string
	// Networks maps the networks this host is attached to onto its
	// interfaces ("public" -> "eth1"): floating IPs of a network go only to
	// hosts on it.
	Networks map[string]string
	// CPUs and Memory override the driver's fingerprint when set.
	CPUs   int
	Memory api.ByteSize
	Log    *slog.Logger
	now    func() time.Time
}

// Agent is one host's agent.
type Agent struct {
	cfg Config
	log *slog.Logger
	// reported caches the last status written per workload, so unchanged
	// state is not rewritten every resync.
	reported map[string]api.WorkloadStatus
	// gap times the stretches without a heartbeat lease (see gapFence).
	gap gapClock
	// draining: workloads due to stop, waiting for load balancers (see
	// poolDraining), by name.
	draining map[string]*poolDrain
	// restarts tracks local restart backoff per workload.
	restarts map[string]*restartState
	// mu guards reported and restarts, which parallel starts share.
	mu      sync.Mutex
	metrics *metrics
	// watchdog is the open watchdog device, if one is configured.
	watchdog       *os.File
	watchdogWarned bool
	// token is the bearer token of the agent's HTTP API, published in the
	// store at registration.
	token string
	// net is this host's network (nil: floating IPs unavailable here).
	net *network.Host
	// shared holds volume leases and floating IPs (guarded by mu);
	// publish the published ports of the workloads wanted here.
	shared  sharedState
	publish map[string][]api.Publish
	// health runs the workloads' health checks (health.go).
	health *healthChecks
}

type restartState struct {
	epoch    int64
	restarts int
	next     time.Time
	// lastErr is why the last start failed ("" if it did not).
	lastErr string
}

// New checks the configuration.
func New(cfg Config) (*Agent, error) {
	if err := api.ValidateName("host", cfg.Host); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := api.ValidateLabels(cfg.Labels); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	for n, iface := range cfg.Networks {
		if err := api.ValidateName("network", n); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
		if err := api.ValidateBridgeName(iface); err != nil {
			return nil, fmt.Errorf("agent: network %s: interface: %w", n, err)
		}
	}
	if cfg.Store == nil || cfg.Driver == nil {
		return nil, errors.New("agent: store and driver are required")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 3 * time.Second
	}
	if cfg.SessionTTL < time.Second {
		return nil, fmt.Errorf("agent: session TTL %s is under 1s", cfg.SessionTTL)
	}
	if cfg.SelfFenceAfter == 0 {
		cfg.SelfFenceAfter = cfg.SessionTTL * 6 / 10
	}
	if cfg.SelfFenceAfter >= cfg.SessionTTL || cfg.SelfFenceAfter < cfg.SessionTTL/3 {
		return nil, fmt.Errorf("agent: self-fence time %s must be under the session TTL %s and over a third of it (the keepalive interval)", cfg.SelfFenceAfter, cfg.SessionTTL)
	}
	if cfg.Resync == 0 {
		cfg.Resync = 2 * time.Second
	}
	if cfg.StopTimeout == 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.UnhealthyStopDelay == 0 {
		cfg.UnhealthyStopDelay = DefaultUnhealthyStopDelay
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return &Agent{cfg: cfg, log: cfg.Log.With("host", cfg.Host), metrics: newMetrics(),
		shared: sharedState{leases: map[string]heldLeases{}, vips: map[string]heldVIP{}}, publish: map[string][]api.Publish{}, health: newHealthChecks()}, nil
}

// Run registers the host and serves it until ctx ends. Losing the heartbeat
// session fences the host (every workload is killed) and starts over.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.openNetwork(); err != nil {
		return err
	}
	if a.net != nil {
		defer a.net.Close()
	}
	ln, err := a.listen()
	if err != nil {
		return err
	}
	agentURL := ""
	if ln != nil {
		agentURL = "http://" + ln.Addr().String()
		if a.cfg.HTTPTLS != nil {
			agentURL = "https://" + ln.Addr().String()
		}
		if a.token, err = clusterstore.NewAgentToken(); err != nil {
			return err
		}
		go a.serveHTTP(ctx, ln)
	}
	// Between heartbeat sessions, and before the first, nothing renews a
	// lease: the host's workloads die unless a new lease is held within
	// T_self of the last acknowledged keepalive. This process does not
	// know when an earlier run last renewed one (it may have lost the
	// cluster just before it stopped, leaving workloads running), so its
	// own start counts as that.
	a.gap.down(time.Now().Add(a.cfg.SelfFenceAfter), false)
	go a.gapFence(ctx)
	// An agent that gives up before it ever held a lease leaves nothing
	// running behind it.
	ranSession := false
	defer func() {
		if !ranSession && ctx.Err() == nil {
			a.selfFence("the agent stops before it ever held a heartbeat lease")
		}
	}()
	for backoff := 200 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
		err := a.register(ctx, agentURL)
		var re retryableError
		if err == nil || !errors.As(err, &re) {
			if err != nil {
				return err
			}
			break
		}
		a.log.Error("cannot register; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		lastAck, held, err := a.serveSession(ctx)
		ranSession = ranSession || held
		if held {
			// Self-fenced already when the lease was lost or not renewed
			// in time; otherwise (a watch failed) the clock runs from the
			// last acknowledged keepalive.
			a.gap.down(lastAck.Add(a.cfg.SelfFenceAfter), errors.Is(err, clusterstore.ErrSessionDone))
		}
		if ctx.Err() != nil {
			return nil
		}
		a.log.Error("heartbeat session ended", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

func (a *Agent) register(ctx context.Context, agentURL string) error {
	fp, err := a.cfg.Driver.Fingerprint(ctx)
	if err != nil {
		return fmt.Errorf("agent: fingerprint %s driver: %w", a.cfg.Driver.Name(), err)
	}
	n := api.Node{
		Schema: api.SchemaVersion, Name: a.cfg.Host, Labels: a.cfg.Labels,
		CPUs: fp.CPUs, Memory: fp.Memory, Driver: a.cfg.Driver.Name(), Kinds: a.cfg.Driver.Kinds(), Detail: fp.Detail,
		AgentURL: agentURL, LeaseTTL: api.Duration(a.cfg.SessionTTL), SelfFenceAfter: api.Duration(a.cfg.SelfFenceAfter), RegisteredAt: a.cfg.now().UTC(),
	}
	if n.Interfaces, n.Networks, err = a.hostNetworks(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.cfg.CPUs > 0 {
		n.CPUs = a.cfg.CPUs
	}
	if a.cfg.Memory > 0 {
		n.Memory = a.cfg.Memory
	}
	if err := n.Validate(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	key := clusterstore.NodeKey(a.cfg.Host)
	ops := []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(n))}
	if a.token != "" {
		ops = append(ops, clusterstore.Put(clusterstore.AgentTokenKey(a.cfg.Host), []byte(a.token)))
	}
	if _, _, err := a.cfg.Store.Txn(ctx, nil, ops); err != nil {
		return retryableError{fmt.Errorf("agent: register %s: %w", a.cfg.Host, err)}
	}
	a.log.Info("registered", "cpus", n.CPUs, "memory", n.Memory.String(), "driver", n.Driver, "detail", n.Detail)
	return nil
}

// retryableError is a failure to reach the store: tried again.
type retryableError struct{ error }

func (e retryableError) Unwrap() error { return e.error }

// gapClock is whether a heartbeat session is up and, while none is, by
// when one must be (its predecessor's last acknowledged keepalive plus
// T_self), and whether the workloads were killed already.
type gapClock struct {
	mu       sync.Mutex
	up       bool
	deadline time.Time
	fenced   bool
}

func (g *gapClock) down(deadline time.Time, fenced bool) {
	g.mu.Lock()
	g.up, g.deadline, g.fenced = false, deadline, fenced
	g.mu.Unlock()
}

func (g *gapClock) markUp() {
	g.mu.Lock()
	g.up = true
	g.mu.Unlock()
}

// due says whether the gap has run past its deadline with the workloads
// still alive, and marks them killed.
func (g *gapClock) due(now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.up || g.fenced || now.Before(g.deadline) {
		return false
	}
	g.fenced = true
	return true
}

// gapFence kills every local workload when no heartbeat lease is held
// T_self after the last acknowledged keepalive (or the process start):
// between sessions the session's own self-fence check does not run.
func (a *Agent) gapFence(ctx context.Context) {
	t := time.NewTicker(max(a.cfg.SelfFenceAfter/20, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if a.gap.due(time.Now()) {
				a.selfFence(fmt.Sprintf("no heartbeat lease for %s (between sessions, or since the agent started)", a.cfg.SelfFenceAfter))
			}
		}
	}
}

// serveSession holds one heartbeat session and reconciles until it is lost.
// held says a session's heartbeat went in, and lastAck is then the send
// time of its last acknowledged keepalive.
func (a *Agent) serveSession(ctx context.Context) (lastAck time.Time, held bool, err error) {
	sess, err := clusterstore.NewSession(ctx, a.cfg.Store, a.cfg.SessionTTL, clusterstore.WithKeepAliveObserver(a.metrics.keepAlive))
	if err != nil {
		return time.Time{}, false, fmt.Errorf("session: %w", err)
	}
	// On the way out the lease is left to expire, not revoked: an agent
	// restarted within T takes over its host's heartbeat (and, from the
	// driver, its running workloads) without the cluster noticing; one
	// that stays away longer is a lost host and is fenced.
	defer sess.Orphan()
	a.reported = map[string]api.WorkloadStatus{}
	a.restarts = map[string]*restartState{}

	hb := api.Heartbeat{Schema: api.SchemaVersion, Host: a.cfg.Host, Lease: int64(sess.Lease()), Started: a.cfg.now().UTC()}
	hbOp := clusterstore.PutWithLease(clusterstore.HeartbeatKey(a.cfg.Host), clusterstore.Encode(hb), sess.Lease())
	// The heartbeat goes in only while the host has no fence record. The
	// leader's watchdog fencing writes its record only while the heartbeat
	// is missing: so either the cluster counts this host as alive, or the
	// agent knows it was fenced — never both.
	unfenced, rev, err := a.cfg.Store.Txn(ctx, []clusterstore.Cond{clusterstore.Missing(clusterstore.FencingKey(a.cfg.Host))}, []clusterstore.Op{hbOp})
	if err != nil {
		return time.Time{}, false, fmt.Errorf("heartbeat: %w", err)
	}
	if !unfenced {
		// Show the host as up (an operator powered it on) but run nothing
		// until the fence record is cleared.
		if _, rev, err = a.cfg.Store.Txn(ctx, nil, []clusterstore.Op{hbOp}); err != nil {
			return time.Time{}, false, fmt.Errorf("heartbeat: %w", err)
		}
		a.log.Warn("this host is fenced: running nothing until an operator clears it (bulwarkctl node clear)")
		// It was powered off (or confirmed off) and its workloads
		// restarted elsewhere: whatever still runs here goes at once.
		a.selfFence("this host has a fence record")
	}
	a.log.Info("heartbeat lease held", "lease", int64(sess.Lease()), "ttl", a.cfg.SessionTTL, "self_fence_after", a.cfg.SelfFenceAfter)
	a.gap.markUp()
	held = true
	defer func() { lastAck = sess.LastAck() }()
	if a.cfg.OnReady != nil {
		a.cfg.OnReady()
		a.cfg.OnReady = nil // once per process
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := a.cfg.Store.Watch(wctx, clusterstore.AllocationsPrefix, rev+1)
	fch := a.cfg.Store.Watch(wctx, clusterstore.FencingKey(a.cfg.Host), rev+1)
	// Floating IP records change when a service's pool or anchor does,
	// and a claim freed by a fence record may be ours to take: follow
	// both at once rather than at the next resync.
	vch := a.cfg.Store.Watch(wctx, clusterstore.VIPsPrefix, rev+1)
	cch := a.cfg.Store.Watch(wctx, clusterstore.VIPClaimsPrefix, rev+1)
	tick := time.NewTicker(a.cfg.Resync)
	defer tick.Stop()
	// Self-fencing is measured on our own monotonic clock from the send time
	// of the last acknowledged keepalive, independently of the keepalive
	// loop, which may be blocked on a dead connection.
	selfFence := time.NewTicker(max(a.cfg.SelfFenceAfter/20, 10*time.Millisecond))
	defer selfFence.Stop()
	// On-storage leases are renewed beside the loop, so that a slow store
	// cannot delay noticing a newer holder.
	go func() {
		t := time.NewTicker(leaseRenewEvery)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				a.renewLeases(wctx)
			}
		}
	}()
	healthy := func() bool { return time.Since(sess.LastAck()) <= a.cfg.SelfFenceAfter }
	for {
		if err := a.reconcile(ctx, sess); err != nil {
			a.log.Warn("reconcile failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, true, nil
		case <-sess.Done():
			a.selfFence("heartbeat lease lost")
			return time.Time{}, true, clusterstore.ErrSessionDone
		case <-selfFence.C:
			if healthy() {
				a.feedWatchdog()
			}
			if age := time.Since(sess.LastAck()); age > a.cfg.SelfFenceAfter {
				sess.Orphan()
				a.selfFence(fmt.Sprintf("no acknowledged keepalive for %s (self-fence after %s)", age.Round(time.Millisecond), a.cfg.SelfFenceAfter))
				return time.Time{}, true, clusterstore.ErrSessionDone
			}
			continue
		case resp, ok := <-wch:
			if !ok || resp.Err != nil {
				return time.Time{}, true, fmt.Errorf("watch allocations: %v", resp.Err)
			}
		case resp, ok := <-fch:
			if !ok || resp.Err != nil {
				return time.Time{}, true, fmt.Errorf("watch fence record: %v", resp.Err)
			}
		case resp, ok := <-vch:
			if !ok || resp.Err != nil {
				return time.Time{}, true, fmt.Errorf("watch floating IPs: %v", resp.Err)
			}
		case resp, ok := <-cch:
			if !ok || resp.Err != nil {
				return time.Time{}, true, fmt.Errorf("watch floating IP claims: %v", resp.Err)
			}
		case <-tick.C:
		case <-a.health.wake:
		}
	}
}

// selfFence kills every workload this host runs: the cluster may restart
// them elsewhere once our lease has expired.
func (a *Agent) selfFence(why string) {
	a.metrics.selfFences.Inc()
	a.log.Error("SELF-FENCING: dropping floating IPs and killing every workload on this host", "why", why)
	// Addresses first: they are what clients reach, and they go in
	// microseconds.
	a.dropAllVIPs()
	KillAll(a.cfg.Driver, a.log)
}

// KillAll destroys every workload the driver runs on this host: what an
// agent does when it fences itself. bulwarkd agent also calls it when it
// cannot reach etcd at all at start (the cluster may count the host as
// lost; an earlier run may have left workloads running).
func KillAll(d drivers.Driver, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tasks, err := d.List(ctx)
	if err != nil {
		log.Error("self-fence: list workloads", "err", err)
	}
	for _, t := range tasks {
		if err := d.Destroy(ctx, t.Workload); err != nil {
			log.Error("self-fence: destroy", "workload", t.Workload, "err", err)
		} else {
			log.Warn("self-fence: destroyed", "workload", t.Workload, "epoch", t.Epoch)
		}
	}
}

type desired struct {
	alloc api.Allocation
	spec  api.WorkloadSpec
	// volumes are every volume of the cluster, by name.
	volumes map[string]api.Volume
}

// reconcile makes the driver run exactly what is allocated to this host.
func (a *Agent) reconcile(ctx context.Context, sess *clusterstore.Session) error {
	allocs, rev, err := a.cfg.Store.List(ctx, clusterstore.AllocationsPrefix, 0)
	if err != nil {
		return fmt.Errorf("list allocations: %w", err)
	}
	_, fenced, _, err := a.cfg.Store.Get(ctx, clusterstore.FencingKey(a.cfg.Host))
	if err != nil {
		return fmt.Errorf("read fence record: %w", err)
	}
	if fenced {
		allocs = nil // a fenced host runs nothing: everything it has goes
	}
	wls, _, err := a.cfg.Store.List(ctx, clusterstore.WorkloadsPrefix, rev)
	if err != nil {
		return fmt.Errorf("list workloads: %w", err)
	}
	cs, err := readShared(ctx, a.cfg.Store, rev)
	if err != nil {
		return err
	}
	specs := make(map[string]api.Workload, len(wls))
	for _, kv := range wls {
		var w api.Workload
		if err := clusterstore.Decode(kv, &w); err != nil {
			a.log.Warn("skipping unreadable workload", "err", err)
			continue
		}
		specs[w.Name] = w
	}
	want := map[string]desired{}
	for _, kv := range allocs {
		al, err := clusterstore.DecodeAllocation(kv)
		if err != nil {
			a.log.Warn("skipping unreadable allocation", "err", err)
			continue
		}
		if al.Host != a.cfg.Host {
			continue
		}
		w, ok := specs[al.Workload]
		if !ok {
			continue // the leader removes orphaned allocations
		}
		want[al.Workload] = desired{alloc: al, spec: w.WorkloadSpec, volumes: cs.volumes}
	}
	a.mu.Lock()
	clear(a.publish)
	for name, d := range want {
		if len(d.spec.Publish) > 0 {
			a.publish[name] = d.spec.Publish
		}
	}
	a.mu.Unlock()
	running, err := a.cfg.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list %s workloads: %w", a.cfg.Driver.Name(), err)
	}
	have := make(map[string]drivers.Status, len(running))
	for _, s := range running {
		have[s.Workload] = s
	}

	// Stop what is no longer ours first: it frees resources.
	var gone []string
	for name, cur := range have {
		// Not ours any more, or ours at another epoch (an old instance:
		// it goes first, and releases its claims, before the new one).
		if d, ok := want[name]; !ok || cur.Epoch != d.alloc.Epoch {
			gone = append(gone, name)
		}
	}
	sort.Strings(gone)
	a.forgetDrains(gone)
	for _, name := range gone {
		if a.poolDraining(cs, name) {
			// Reported stopping, with this session's lease: the leader
			// places it elsewhere only once no host reports it, and
			// the pool drops it at once.
			a.report(ctx, sess, name, have[name].Epoch, api.StateStopping, "draining: waiting for load balancers to take it out of their pools")
			continue
		}
		if a.remove(ctx, sess, name, have[name].Epoch) {
			a.releaseVolumes(ctx, cs, name, have[name].Epoch)
			delete(have, name)
		}
	}
	a.releaseLeftovers(ctx, cs, want, have)
	// Clear reports for workloads that are neither wanted nor present.
	for name := range a.reported {
		_, wanted := want[name]
		_, present := have[name]
		if !wanted && !present {
			a.deleteStatus(ctx, name)
		}
	}

	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	// Start in parallel (bounded): after a failover a host takes over many
	// workloads at once, and each start waits on its runtime.
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func(d desired, cur drivers.Status) {
			defer wg.Done()
			defer func() { <-sem }()
			a.ensure(ctx, sess, d, cur)
		}(want[name], have[name])
	}
	wg.Wait()
	a.mu.Lock()
	a.metrics.setStates(a.reported)
	runningHere := map[string]int64{}
	for name, st := range a.reported {
		if d, ok := want[name]; ok && st.State == api.StateRunning && st.Epoch == d.alloc.Epoch {
			runningHere[name] = st.Epoch
		}
	}
	a.mu.Unlock()
	allocatedHere := make(map[string]int64, len(want))
	for name, d := range want {
		allocatedHere[name] = d.alloc.Epoch
	}
	a.syncVIPs(ctx, cs, runningHere, allocatedHere)
	a.syncHealth(ctx, want, runningHere)
	return nil
}

// ensure makes one allocated workload run at its allocation's epoch,
// following its restart policy: a workload that stopped on its own (or
// failed to start, or failed its health check) is restarted with backoff
// up to api.RestartLimit times; then the host gives up and says so, and
// the leader reschedules it.
func (a *Agent) ensure(ctx context.Context, sess *clusterstore.Session, d desired, cur drivers.Status) {
	name, epoch := d.alloc.Workload, d.alloc.Epoch
	if cur.Workload != "" && cur.Epoch == epoch && cur.State == drivers.TaskRunning && !a.stopUnhealthy(ctx, d) {
		a.reportRunning(ctx, sess, d, cur.ID)
		return
	}
	now := a.cfg.now()
	a.mu.Lock()
	rs := a.restarts[name]
	if rs == nil || rs.epoch != epoch {
		rs = &restartState{epoch: epoch}
		a.restarts[name] = rs
	}
	a.mu.Unlock()
	if rs.lastErr != "" || cur.Workload != "" && cur.Epoch == epoch {
		// It ran (or tried to) at this epoch and is not running.
		state, detail := api.StateFailed, rs.lastErr
		if rs.lastErr == "" {
			detail = orDefault(cur.Detail, string(cur.State))
			if cur.State == drivers.TaskStopped {
				state = api.StateStopped
			}
		}
		policy := d.spec.Restart
		if policy == "" {
			policy = api.RestartAlways
		}
		switch {
		case policy == api.RestartNever, policy == api.RestartOnFailure && state == api.StateStopped:
			a.report(ctx, sess, name, epoch, state, fmt.Sprintf("%s; not restarted (restart policy %s)", detail, policy))
			return
		case rs.restarts >= api.RestartLimit:
			a.reportStatus(ctx, sess, api.WorkloadStatus{Workload: name, Epoch: epoch, State: api.StateFailed, GaveUp: true,
				Reason: fmt.Sprintf("gave up after %d restarts on %s: %s", rs.restarts, a.cfg.Host, detail)})
			return
		case now.Before(rs.next):
			a.report(ctx, sess, name, epoch, state, fmt.Sprintf("%s; restart %d of %d after backoff", detail, rs.restarts+1, api.RestartLimit))
			return
		}
		rs.restarts++
		a.metrics.restarts.Inc()
		a.log.Warn("restarting", "workload", name, "epoch", epoch, "restart", rs.restarts, "after", detail)
	}
	// Volumes first: the lock in the store, then the lease on the storage.
	task := drivers.Task{Workload: name, Epoch: epoch, Spec: d.spec}
	if wait, err := a.holdVolumes(ctx, d, &task); err != nil || wait != "" {
		if err != nil {
			rs.lastErr = err.Error()
			rs.next = now.Add(time.Second << min(rs.restarts, 6))
			a.report(ctx, sess, name, epoch, api.StateFailed, err.Error())
		} else {
			a.report(ctx, sess, name, epoch, api.StateStarting, wait)
		}
		return
	}
	// Backoff before the next restart: 1s, 2s, 4s...
	rs.next = now.Add(time.Second << min(rs.restarts, 6))
	rs.lastErr = ""
	if !a.reportStarting(ctx, sess, name, epoch) {
		return
	}
	a.resetHealth(d)
	if err := a.cfg.Driver.Start(ctx, task); err != nil {
		a.log.Error("start failed", "workload", name, "epoch", epoch, "err", err)
		rs.lastErr = err.Error()
		a.report(ctx, sess, name, epoch, api.StateFailed, err.Error())
		return
	}
	st, err := a.cfg.Driver.Inspect(ctx, name)
	switch {
	case err != nil:
		rs.lastErr = "inspect after start: " + err.Error()
		a.report(ctx, sess, name, epoch, api.StateFailed, rs.lastErr)
	case st.State == drivers.TaskRunning:
		a.log.Info("started", "workload", name, "epoch", epoch)
		a.reportRunning(ctx, sess, d, st.ID)
	default:
		a.report(ctx, sess, name, epoch, api.StateFailed, fmt.Sprintf("not running after start: %s %s", st.State, st.Detail))
	}
}

// remove stops and destroys a workload that is no longer allocated here.
// It reports whether the workload is confirmed gone.
func (a *Agent) remove(ctx context.Context, sess *clusterstore.Session, name string, epoch int64) bool {
	a.report(ctx, sess, name, epoch, api.StateStopping, "")
	sctx, cancel := context.WithTimeout(ctx, a.cfg.StopTimeout)
	if err := a.cfg.Driver.Stop(sctx, name); err != nil && !errors.Is(err, drivers.ErrNotFound) {
		a.log.Warn("graceful stop failed; destroying", "workload", name, "err", err)
	}
	cancel()
	if err := a.cfg.Driver.Destroy(ctx, name); err != nil && !errors.Is(err, drivers.ErrNotFound) {
		a.log.Error("destroy failed", "workload", name, "err", err)
		a.report(ctx, sess, name, epoch, api.StateFailed, "destroy: "+err.Error())
		return false
	}
	a.log.Info("removed", "workload", name, "epoch", epoch)
	a.deleteStatus(ctx, name)
	a.mu.Lock()
	delete(a.restarts, name)
	a.mu.Unlock()
	return true
}

// openNetwork opens this host's network (its own, or the named netns).
// Without a configured netns or network, a failure only disables floating
// IPs here.
func (a *Agent) openNetwork() error {
	h, err := network.Open(a.cfg.Netns)
	if err != nil {
		if a.cfg.Netns != "" || len(a.cfg.Networks) > 0 {
			return fmt.Errorf("agent: %w", err)
		}
		a.log.Warn("no access to this host's network: floating IPs cannot go here", "err", err)
		return nil
	}
	a.net = h
	return nil
}

func (a *Agent) report(ctx context.Context, sess *clusterstore.Session, name string, epoch int64, state api.State, reason string) {
	a.reportStatus(ctx, sess, api.WorkloadStatus{Workload: name, Epoch: epoch, State: state, Reason: reason})
}

// reportStatus writes a workload's status, bound to the session's lease,
// unless it is what was last written.
func (a *Agent) reportStatus(ctx context.Context, sess *clusterstore.Session, st api.WorkloadStatus) {
	name := st.Workload
	a.fillHealth(&st)
	a.mu.Lock()
	old, ok := a.reported[name]
	a.mu.Unlock()
	if ok && old.Epoch == st.Epoch && old.State == st.State && old.Reason == st.Reason && old.GaveUp == st.GaveUp &&
		old.Health == st.Health && old.HealthDetail == st.HealthDetail && sameRuntime(old.Runtime, st.Runtime) {
		return
	}
	st.Schema, st.Host, st.UpdatedAt = api.SchemaVersion, a.cfg.Host, a.cfg.now().UTC()
	key := clusterstore.StatusKey(a.cfg.Host, name)
	if _, _, err := a.cfg.Store.Txn(ctx, nil, []clusterstore.Op{clusterstore.PutWithLease(key, clusterstore.Encode(st), sess.Lease())}); err != nil {
		a.log.Warn("report status failed", "workload", name, "err", err)
		return
	}
	a.mu.Lock()
	a.reported[name] = st
	a.mu.Unlock()
}

// reportStarting writes the "starting" status before a start, in one
// transaction with the check that the allocation still exists at this
// epoch, and reports whether it did: only then may the workload start.
// Whatever the leader does next sees the status (it moves or re-places a
// workload only once no host reports it), while an allocation deleted
// after our last read fails the check and nothing starts: without it, a
// stale read could start a workload the leader has already placed
// elsewhere.
func (a *Agent) reportStarting(ctx context.Context, sess *clusterstore.Session, name string, epoch int64) bool {
	st := api.WorkloadStatus{Schema: api.SchemaVersion, Workload: name, Epoch: epoch, State: api.StateStarting, Host: a.cfg.Host, UpdatedAt: a.cfg.now().UTC()}
	a.fillHealth(&st)
	done, _, err := a.cfg.Store.Txn(ctx, []clusterstore.Cond{clusterstore.CreateRevisionIs(clusterstore.AllocationKey(name), epoch)},
		[]clusterstore.Op{clusterstore.PutWithLease(clusterstore.StatusKey(a.cfg.Host, name), clusterstore.Encode(st), sess.Lease())})
	switch {
	case err != nil:
		a.log.Warn("not starting: report status failed", "workload", name, "epoch", epoch, "err", err)
		return false
	case !done:
		a.log.Info("not starting: the allocation changed since it was read", "workload", name, "epoch", epoch)
		return false
	}
	a.mu.Lock()
	a.reported[name] = st
	a.mu.Unlock()
	return true
}

// reportRunning reports a running workload with the driver's own record of
// the instance (domain UUID, container ID), versioned with the status.
func (a *Agent) reportRunning(ctx context.Context, sess *clusterstore.Session, d desired, id string) {
	drv := a.cfg.Driver.Name()
	if set, ok := a.cfg.Driver.(drivers.Set); ok {
		if k, err := set.For(d.spec.Kind); err == nil {
			drv = k.Name()
		}
	}
	a.reportStatus(ctx, sess, api.WorkloadStatus{Workload: d.alloc.Workload, Epoch: d.alloc.Epoch, State: api.StateRunning,
		Runtime: &api.RuntimeRef{Driver: drv, ID: id}})
}

func sameRuntime(a, b *api.RuntimeRef) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (a *Agent) deleteStatus(ctx context.Context, name string) {
	if _, _, err := a.cfg.Store.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.StatusKey(a.cfg.Host, name))}); err != nil {
		a.log.Warn("delete status failed", "workload", name, "err", err)
		return
	}
	a.mu.Lock()
	delete(a.reported, name)
	a.mu.Unlock()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
