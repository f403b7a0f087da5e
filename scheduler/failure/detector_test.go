package failure

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type run struct {
	t     *testing.T
	cfg   Config
	hosts map[string]Host
	now   time.Time
}

func (r *run) step(o Observation) (Host, []Transition, []Action) {
	r.t.Helper()
	var tr []Transition
	var acts []Action
	r.hosts, tr, acts = Step(r.cfg, r.hosts, []Observation{o}, r.now)
	return r.hosts[o.Host], tr, acts
}

func (r *run) advance(d time.Duration) { r.now = r.now.Add(d) }

func want(t *testing.T, h Host, s State, acts []Action, act ActionKind) {
	t.Helper()
	if h.State != s {
		t.Fatalf("state %s, want %s (%s)", h.State, s, h.Reason)
	}
	got := ActionKind("")
	if len(acts) == 1 {
		got = acts[0].Kind
	} else if len(acts) > 1 {
		t.Fatalf("several actions: %v", acts)
	}
	if got != act {
		t.Fatalf("action %q, want %q", got, act)
	}
}

func TestCrashFenceRecover(t *testing.T) {
	r := &run{t: t, cfg: Config{SuspectGrace: time.Second}, now: t0}
	h, tr, acts := r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 2})
	want(t, h, Ready, acts, "")
	if len(tr) != 0 {
		t.Fatalf("ready at start is no transition: %v", tr)
	}
	// Lease expired: suspect for the grace, then lost and fenced.
	h, tr, acts = r.step(Observation{Host: "h1", Fenceable: true, Allocations: 2})
	want(t, h, Suspect, acts, "")
	if len(tr) != 1 || tr[0].From != Ready || tr[0].To != Suspect {
		t.Fatalf("transitions: %v", tr)
	}
	r.advance(999 * time.Millisecond)
	h, _, acts = r.step(Observation{Host: "h1", Fenceable: true, Allocations: 2})
	want(t, h, Suspect, acts, "")
	r.advance(time.Millisecond)
	h, _, acts = r.step(Observation{Host: "h1", Fenceable: true, Allocations: 2})
	want(t, h, Lost, acts, ActFence)
	h, _, acts = r.step(Observation{Host: "h1", Fenceable: true, Fencing: true, Allocations: 2})
	want(t, h, Fencing, acts, "")
	// Fence record stored: recover; then recovered once nothing is allocated there.
	h, _, acts = r.step(Observation{Host: "h1", Fenceable: true, FenceRecord: true, Allocations: 2})
	want(t, h, Fenced, acts, ActRecover)
	h, _, acts = r.step(Observation{Host: "h1", Fenceable: true, FenceRecord: true})
	want(t, h, Recovered, acts, "")
	// Powered back on: still recovered until an operator clears it.
	h, _, acts = r.step(Observation{Host: "h1", Alive: true, Fenceable: true, FenceRecord: true})
	want(t, h, Recovered, acts, "")
	h, _, acts = r.step(Observation{Host: "h1", Alive: true, Fenceable: true})
	want(t, h, Ready, acts, "")
}

func TestBlipWithinGraceIsForgiven(t *testing.T) {
	r := &run{t: t, cfg: Config{SuspectGrace: 2 * time.Second}, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1})
	r.step(Observation{Host: "h1", Fenceable: true, Allocations: 1})
	r.advance(time.Second)
	h, tr, acts := r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1})
	want(t, h, Ready, acts, "")
	if len(tr) != 1 || tr[0].To != Ready {
		t.Fatalf("transitions: %v", tr)
	}
}

// Once lost, a host that comes back is still fenced: it may still run what
// it ran.
func TestLostHostComingBackIsStillFenced(t *testing.T) {
	r := &run{t: t, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1})
	h, _, acts := r.step(Observation{Host: "h1", Fenceable: true, Allocations: 1})
	want(t, h, Lost, acts, ActFence)
	h, _, acts = r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1})
	want(t, h, Lost, acts, ActFence)
}

func TestFenceFailureRetries(t *testing.T) {
	r := &run{t: t, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1})
	r.step(Observation{Host: "h1", Fenceable: true, Allocations: 1})
	h, _, acts := r.step(Observation{Host: "h1", Fenceable: true, Fencing: true, Allocations: 1})
	want(t, h, Fencing, acts, "")
	// Every device failed: back to lost, fence again (the leader paces retries).
	h, _, acts = r.step(Observation{Host: "h1", Fenceable: true, Allocations: 1})
	want(t, h, Lost, acts, ActFence)
}

func TestNoFenceDeviceWaitsWithReason(t *testing.T) {
	r := &run{t: t, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Allocations: 1})
	for i := 0; i < 5; i++ {
		r.advance(time.Hour)
		h, _, acts := r.step(Observation{Host: "h1", Allocations: 1})
		want(t, h, Lost, acts, "")
		if !strings.Contains(h.Reason, "no working fence device") {
			t.Fatalf("reason: %q", h.Reason)
		}
	}
}

func TestWatchdogFencingWaitsTheWindow(t *testing.T) {
	r := &run{t: t, cfg: Config{WatchdogFencing: true, WatchdogWait: 20 * time.Second}, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Allocations: 1})
	h, _, acts := r.step(Observation{Host: "h1", Allocations: 1})
	want(t, h, Lost, acts, "")
	r.advance(19 * time.Second)
	h, _, acts = r.step(Observation{Host: "h1", Allocations: 1})
	want(t, h, Lost, acts, "")
	if !strings.Contains(h.Reason, "watchdog fencing in 1s") {
		t.Fatalf("reason: %q", h.Reason)
	}
	r.advance(time.Second)
	h, _, acts = r.step(Observation{Host: "h1", Allocations: 1})
	want(t, h, Lost, acts, ActWatchdogFence)
}

// A new leader (no memory) starts every wait from its own now.
func TestNewLeaderOnlyDelays(t *testing.T) {
	cfg := Config{WatchdogFencing: true, WatchdogWait: 10 * time.Second}
	hosts, tr, acts := Step(cfg, nil, []Observation{{Host: "h1", Allocations: 1}}, t0)
	if hosts["h1"].State != Lost || len(acts) != 0 || len(tr) != 1 {
		t.Fatalf("%v %v %v", hosts, tr, acts)
	}
	_, _, acts = Step(cfg, hosts, []Observation{{Host: "h1", Allocations: 1}}, t0.Add(9*time.Second))
	if len(acts) != 0 {
		t.Fatalf("watchdog fence too early: %v", acts)
	}
	hosts, _, _ = Step(cfg, nil, []Observation{{Host: "h1", FenceRecord: true, Allocations: 1}}, t0)
	if hosts["h1"].State != Fenced {
		t.Fatalf("fence record on start: %v", hosts)
	}
}

func TestHostRunningNothingIsNotFenced(t *testing.T) {
	r := &run{t: t, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Fenceable: true})
	h, _, acts := r.step(Observation{Host: "h1", Fenceable: true})
	want(t, h, Suspect, acts, "")
}

func TestOperatorFenceRequest(t *testing.T) {
	r := &run{t: t, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1})
	h, _, acts := r.step(Observation{Host: "h1", Alive: true, Fenceable: true, Allocations: 1, FenceRequested: true})
	want(t, h, Lost, acts, ActFence)
	if !strings.HasPrefix(h.Reason, "an operator asked") {
		t.Fatalf("reason %q", h.Reason)
	}
}

// Property: no action ever recovers a host without a fence record, whatever
// the sequence of observations.
func TestNeverRecoverWithoutFenceRecord(t *testing.T) {
	cfg := Config{SuspectGrace: time.Second, WatchdogFencing: true, WatchdogWait: 5 * time.Second}
	var hosts map[string]Host
	now := t0
	seed := uint32(7)
	rnd := func(n uint32) uint32 { seed = seed*1664525 + 1013904223; return (seed >> 8) % n }
	for i := 0; i < 20000; i++ {
		o := Observation{Host: "h1", Alive: rnd(3) == 0, FenceRecord: rnd(4) == 0, Fencing: rnd(5) == 0,
			Fenceable: rnd(2) == 0, Allocations: int(rnd(3)), FenceRequested: rnd(10) == 0}
		now = now.Add(time.Duration(rnd(3000)) * time.Millisecond)
		var acts []Action
		hosts, _, acts = Step(cfg, hosts, []Observation{o}, now)
		for _, a := range acts {
			if a.Kind == ActRecover && !o.FenceRecord {
				t.Fatalf("step %d: recover without a fence record: %+v", i, o)
			}
			if a.Kind == ActWatchdogFence && (o.Fenceable || !cfg.WatchdogFencing) {
				t.Fatalf("step %d: watchdog fence for a fenceable host: %+v", i, o)
			}
		}
	}
}

// Without a fence device, a lost host that comes back keeps its workloads.
func TestUnfenceableHostComingBackIsReady(t *testing.T) {
	r := &run{t: t, cfg: Config{WatchdogFencing: true, WatchdogWait: time.Minute}, now: t0}
	r.step(Observation{Host: "h1", Alive: true, Allocations: 1})
	h, _, acts := r.step(Observation{Host: "h1", Allocations: 1})
	want(t, h, Lost, acts, "")
	r.advance(10 * time.Second)
	h, _, acts = r.step(Observation{Host: "h1", Alive: true, Allocations: 1})
	want(t, h, Ready, acts, "")
}
