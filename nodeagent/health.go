package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// Health checks. Each running workload with a check has a monitor, whose
// goroutine probes it and feeds the result to a small state machine
// (healthState). The goroutine decides nothing: the reconcile loop acts.
// ensure stops a workload whose monitor says unhealthy and hands it to the
// restart policy as a failed workload (restarts with backoff, then GaveUp,
// then the leader moves it), and every status report carries the health
// (fillHealth). A health change wakes the loop so that this happens at
// once, not at the next resync. Every start of a workload by ensure
// begins a new run (resetHealth): a fresh monitor, grace period first.

// maxProbes bounds the checks in flight on one host.
const maxProbes = 16

// maxHTTPBody is how much of an HTTP check's answer is read.
const maxHTTPBody = 4 * 1024

// checkUnsupportedVM is the detail of a VM's tcp or http check.
const checkUnsupportedVM = "check unsupported for VMs without a known guest address"

type healthChecks struct {
	mu   sync.Mutex
	mons map[string]*monitor
	// wake asks for a reconcile pass: a workload's health changed.
	wake chan struct{}
	// probes is a semaphore over the checks in flight.
	probes chan struct{}
}

func newHealthChecks() *healthChecks {
	return &healthChecks{mons: map[string]*monitor{}, wake: make(chan struct{}, 1), probes: make(chan struct{}, maxProbes)}
}

func (h *healthChecks) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// monitor watches one run of one workload at one epoch.
type monitor struct {
	epoch int64
	// check is the spec's check, to notice a change.
	check api.HealthCheck
	phase monitorPhase
	st    healthState
	// cancel stops the goroutine; nil if there is none (not checking, or
	// the check cannot run here).
	cancel context.CancelFunc
	// unhealthyAt is when the checks last turned unhealthy; drainPoke is
	// set once a pass is scheduled for the end of UnhealthyStopDelay.
	unhealthyAt time.Time
	drainPoke   bool
}

// DefaultUnhealthyStopDelay is Config.UnhealthyStopDelay's default: time
// for the unhealthy report to take the workload out of load-balancer pools
// (measured: under half a second from report to rules on the holder).
const DefaultUnhealthyStopDelay = 2 * time.Second

type monitorPhase int

const (
	// monStarting: ensure is starting the workload; the checks begin once
	// it runs.
	monStarting monitorPhase = iota
	// monChecking: the checks run (or cannot run here: health unknown).
	monChecking
	// monRetired: ensure acted on the unhealthy result; the state stays
	// for the reports until the next start.
	monRetired
)

func (m *monitor) stop() {
	if m.cancel != nil {
		m.cancel()
	}
}

// healthState is the state machine of one monitor. It does no I/O and
// reads no clock: observe gets the outcome of a check and the time.
type healthState struct {
	// check has its defaults filled in.
	check   api.HealthCheck
	started time.Time
	// graceOver: a check passed, or the grace period ended.
	graceOver bool
	// fails counts the failed checks in a row that count.
	fails  int
	health string
	detail string
}

func newHealthState(c api.HealthCheck, started time.Time) healthState {
	return healthState{check: c.WithDefaults(), started: started, health: api.HealthStarting}
}

// observe records one check's outcome at now (err nil: it passed) and
// reports whether the health changed. During the start-up grace failures
// do not count; the first check that passes ends the grace. Failures in a
// row make the workload unhealthy; one pass makes it healthy again.
func (s *healthState) observe(now time.Time, err error) bool {
	before := s.health
	switch {
	case err == nil:
		s.graceOver, s.fails = true, 0
		s.health, s.detail = api.HealthHealthy, ""
	case !s.graceOver && now.Before(s.started.Add(time.Duration(*s.check.Grace))):
		s.detail = "in start-up grace: " + err.Error()
	case s.health == api.HealthUnhealthy:
		// Already unhealthy: keep the detail that said why.
		s.fails++
	default:
		s.graceOver = true
		s.fails++
		switch {
		case s.fails < s.check.Failures:
			s.detail = fmt.Sprintf("check failed (%d of %d in a row): %v", s.fails, s.check.Failures, err)
		case s.fails == 1:
			s.health, s.detail = api.HealthUnhealthy, "check failed: "+err.Error()
		default:
			s.health, s.detail = api.HealthUnhealthy, fmt.Sprintf("%d checks failed in a row, the last: %v", s.fails, err)
		}
	}
	return s.health != before
}

// syncHealth runs a monitor for exactly the workloads with a check that
// this pass left running here (running maps them to their epoch). The
// others' stop; those being started or that ensure acted on stay, without
// checking, while they are wanted here at that epoch.
func (a *Agent) syncHealth(ctx context.Context, want map[string]desired, running map[string]int64) {
	h := a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	for name, m := range h.mons {
		d, wanted := want[name]
		keep := wanted && d.alloc.Epoch == m.epoch && d.spec.Check != nil && reflect.DeepEqual(*d.spec.Check, m.check)
		if keep && m.phase == monChecking {
			keep = running[name] == m.epoch
		}
		if !keep {
			m.stop()
			delete(h.mons, name)
		}
	}
	for name, epoch := range running {
		d, ok := want[name]
		if !ok || d.spec.Check == nil || d.alloc.Epoch != epoch {
			continue
		}
		if m, ok := h.mons[name]; ok && m.phase == monChecking {
			continue
		}
		h.mons[name] = a.startMonitor(ctx, d)
		h.poke() // report its health now
	}
}

// resetHealth begins a new run of the workload: ensure is about to start
// it. Its monitor, if any, stops; with a check, health is "starting" until
// the checks of the new run begin.
func (a *Agent) resetHealth(d desired) {
	h := a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	name := d.alloc.Workload
	if m, ok := h.mons[name]; ok {
		m.stop()
		delete(h.mons, name)
	}
	if d.spec.Check != nil {
		h.mons[name] = &monitor{epoch: d.alloc.Epoch, check: *d.spec.Check, phase: monStarting}
	}
}

// startMonitor begins checking a running workload (a.health.mu held).
func (a *Agent) startMonitor(ctx context.Context, d desired) *monitor {
	c := *d.spec.Check
	m := &monitor{epoch: d.alloc.Epoch, check: c, phase: monChecking, st: newHealthState(c, a.cfg.now())}
	var ex drivers.Execer
	switch {
	case d.spec.Kind != api.KindContainer && c.Type != api.CheckExec:
		m.st.health, m.st.detail = api.HealthUnknown, checkUnsupportedVM
		return m
	case c.Type == api.CheckExec:
		var ok bool
		if ex, ok = a.execer(d.spec.Kind); !ok {
			m.st.health, m.st.detail = api.HealthUnknown, fmt.Sprintf("exec checks unsupported: the %s driver cannot run commands in %ss", a.cfg.Driver.Name(), d.spec.Kind)
			return m
		}
	}
	mctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	go a.watchHealth(mctx, d.alloc.Workload, m, m.st.check, ex)
	return m
}

// execer is the driver that runs commands in workloads of kind, if any.
func (a *Agent) execer(kind api.Kind) (drivers.Execer, bool) {
	d := a.cfg.Driver
	if s, ok := d.(drivers.Set); ok {
		var err error
		if d, err = s.For(kind); err != nil {
			return nil, false
		}
	}
	ex, ok := d.(drivers.Execer)
	return ex, ok
}

// watchHealth checks the workload every interval until ctx ends: the
// first check at once, each next one an interval after the previous one
// ended.
func (a *Agent) watchHealth(ctx context.Context, name string, m *monitor, c api.HealthCheck, ex drivers.Execer) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := a.probe(ctx, name, m.epoch, c, ex)
		if ctx.Err() != nil {
			return
		}
		h := a.health
		h.mu.Lock()
		from := m.st.health
		now := a.cfg.now()
		changed := m.phase == monChecking && m.st.observe(now, err)
		to, detail := m.st.health, m.st.detail
		if changed && to == api.HealthUnhealthy {
			m.unhealthyAt, m.drainPoke = now, false
		}
		h.mu.Unlock()
		if changed {
			log := a.log.Info
			if to == api.HealthUnhealthy {
				log = a.log.Warn
			}
			log("health changed", "workload", name, "epoch", m.epoch, "from", from, "to", to, "detail", detail)
			h.poke()
		}
		t.Reset(time.Duration(c.Interval))
	}
}

// probe runs one check, bounded by its timeout and by maxProbes checks in
// flight on the host. nil: it passed.
func (a *Agent) probe(ctx context.Context, name string, epoch int64, c api.HealthCheck, ex drivers.Execer) error {
	select {
	case a.health.probes <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-a.health.probes }()
	timeout := time.Duration(c.Timeout)
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var what string
	var err error
	switch c.Type {
	case api.CheckTCP:
		addr := net.JoinHostPort(a.checkHost(name, epoch), strconv.Itoa(c.Port))
		what = "tcp " + addr
		var conn net.Conn
		if conn, err = a.dialHost(pctx, "tcp", addr); err == nil {
			conn.Close()
		}
	case api.CheckHTTP:
		url := "http://" + net.JoinHostPort(a.checkHost(name, epoch), strconv.Itoa(c.Port)) + c.Path
		what = "GET " + url
		err = a.probeHTTP(pctx, url)
	case api.CheckExec:
		what = c.Target()
		err = probeExec(pctx, ex, name, c.Command)
	default:
		return fmt.Errorf("unknown check type %q", c.Type)
	}
	if err != nil && ctx.Err() == nil && (pctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded)) {
		return fmt.Errorf("%s: no answer within %s", what, timeout)
	}
	return err
}

// checkHost is the address a container's tcp and http checks connect to:
// one of its floating IPs while this host holds it, else the loopback
// address (containers share the host's network namespace).
func (a *Agent) checkHost(name string, epoch int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var held []netip.Addr
	for _, v := range a.shared.vips {
		if v.workload == name && v.epoch == epoch {
			held = append(held, v.prefix.Addr())
		}
	}
	if len(held) == 0 {
		return "127.0.0.1"
	}
	slices.SortFunc(held, netip.Addr.Compare)
	return held[0].String()
}

// dialHost connects from this host's network namespace (the agent's
// Netns when it has one), where its containers' ports are.
func (a *Agent) dialHost(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if a.net == nil {
		return d.DialContext(ctx, network, addr)
	}
	var conn net.Conn
	err := a.net.Do(func() error {
		c, err := d.DialContext(ctx, network, addr)
		conn = c
		return err
	})
	return conn, err
}

// probeHTTP passes on a 2xx or 3xx answer; redirects are not followed.
func (a *Agent) probeHTTP(ctx context.Context, url string) error {
	client := &http.Client{
		Transport:     &http.Transport{DialContext: a.dialHost, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "bulwark-health-check")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHTTPBody))
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: HTTP %s", url, resp.Status)
	}
	return nil
}

// probeExec passes when the command exits with status 0.
func probeExec(ctx context.Context, ex drivers.Execer, name string, cmd []string) error {
	code, out, err := ex.Exec(ctx, name, cmd)
	if err != nil {
		return err
	}
	if code != 0 {
		if out = lastLine(out, 200); out != "" {
			return fmt.Errorf("exit code %d: %s", code, out)
		}
		return fmt.Errorf("exit code %d", code)
	}
	return nil
}

// lastLine is the last non-empty line of s, cut to max bytes.
func lastLine(s string, max int) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[i+1:])
	}
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// stopUnhealthy stops a running workload that its check found unhealthy
// and records why as its failure, so that ensure goes on to handle it as a
// workload that failed: restarted under its restart policy, with backoff,
// counting toward api.RestartLimit, then given up on. It reports whether
// it did.
func (a *Agent) stopUnhealthy(ctx context.Context, d desired) bool {
	name, epoch := d.alloc.Workload, d.alloc.Epoch
	h := a.health
	h.mu.Lock()
	m := h.mons[name]
	act := m != nil && m.phase == monChecking && m.epoch == epoch && m.st.health == api.HealthUnhealthy
	if act && !m.unhealthyAt.IsZero() {
		// Reported first, stopped a little later: see UnhealthyStopDelay.
		if wait := m.unhealthyAt.Add(a.cfg.UnhealthyStopDelay).Sub(a.cfg.now()); wait > 0 {
			act = false
			if !m.drainPoke {
				m.drainPoke = true
				time.AfterFunc(wait, h.poke)
			}
		}
	}
	var why string
	if act {
		m.stop()
		m.phase, why = monRetired, m.st.detail
	}
	h.mu.Unlock()
	if !act {
		return false
	}
	a.log.Warn("unhealthy: stopping it; its restart policy decides what follows", "workload", name, "epoch", epoch, "detail", why)
	a.mu.Lock()
	rs := a.restarts[name]
	if rs == nil || rs.epoch != epoch {
		rs = &restartState{epoch: epoch}
		a.restarts[name] = rs
	}
	rs.lastErr = "unhealthy: " + why
	a.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, a.cfg.StopTimeout)
	err := a.cfg.Driver.Stop(sctx, name)
	cancel()
	if err != nil && !errors.Is(err, drivers.ErrNotFound) {
		a.log.Warn("stopping the unhealthy workload failed; destroying it", "workload", name, "err", err)
		if err := a.cfg.Driver.Destroy(ctx, name); err != nil && !errors.Is(err, drivers.ErrNotFound) {
			a.log.Error("destroy unhealthy workload", "workload", name, "err", err)
		}
	}
	return true
}

// fillHealth puts the health of the workload's current run into a status
// about to be reported.
func (a *Agent) fillHealth(st *api.WorkloadStatus) {
	h := a.health
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.mons[st.Workload]
	switch {
	case m == nil || m.epoch != st.Epoch:
	case m.phase == monStarting:
		if st.State == api.StateStarting || st.State == api.StateRunning {
			st.Health = api.HealthStarting
		}
	default:
		st.Health, st.HealthDetail = m.st.health, m.st.detail
	}
}
