// Package failure is the leader's failure detector: a pure state machine
// that takes what the store says about each host and the current time, and
// returns each host's state, the transitions to record as events, and the
// actions the leader must take (fence, recover). No I/O, no clock reads.
//
// States: ready → suspect → lost → fencing → fenced → recovered.
//
//   - ready: the host holds its heartbeat lease.
//   - suspect: the lease is gone (etcd expired it: the only "host lost" signal
//     acted on); waiting out SuspectGrace in case it was a blip.
//   - lost: the host must be fenced before anything it ran may restart.
//   - fencing: a fence device is powering it off.
//   - fenced: power-off confirmed and the fence record stored (or, when the
//     operator allowed watchdog fencing, the watchdog window has elapsed).
//   - recovered: none of its workloads is allocated to it any more.
//
// A fenced or recovered host stays so until an operator clears it (the fence
// record is deleted) — a host that was powered off is not trusted again on
// its own. Nothing here ever lets a workload restart without a fence record.
package failure

import (
	"fmt"
	"sort"
	"time"
)

// State is one host's failure state.
type State string

const (
	Ready     State = "ready"
	Suspect   State = "suspect"
	Lost      State = "lost"
	Fencing   State = "fencing"
	Fenced    State = "fenced"
	Recovered State = "recovered"
)

// Config holds the timing the detector works with.
type Config struct {
	// SuspectGrace is how long a host without lease stays suspect before it
	// is lost. The lease TTL already absorbs short blips, so 0 is sane.
	SuspectGrace time.Duration
	// WatchdogFencing lets a host without a working fence device count as
	// fenced once WatchdogWait has passed since it was found without lease.
	WatchdogFencing bool
	// WatchdogWait must be at least T + T_self + the watchdog timeout.
	WatchdogWait time.Duration
}

// Observation is what the store says about one host now.
type Observation struct {
	Host string
	// Alive: the heartbeat key (bound to the host's lease) exists.
	Alive bool
	// FenceRecord: a fence record for the host is stored.
	FenceRecord bool
	// Fencing: the leader is running a fence operation for it right now.
	Fencing bool
	// Fenceable: at least one fence device is configured for the host.
	Fenceable bool
	// Allocations: how many workloads are still allocated to the host.
	Allocations int
	// FenceRequested: an operator asked to fence the host (`node fence`),
	// alive or not.
	FenceRequested bool
}

// Host is the detector's memory of one host.
type Host struct {
	State State
	// Since is when the host entered State.
	Since time.Time
	// LeaseLostAt is when the host was first seen without lease in the
	// current failure (zero while ready).
	LeaseLostAt time.Time
	// Reason says, for an operator, why the host is in this state.
	Reason string
}

// ActionKind is what the leader must do.
type ActionKind string

const (
	// ActFence: power the host off through its fence devices, confirm, and
	// store the fence record.
	ActFence ActionKind = "fence"
	// ActWatchdogFence: store a watchdog fence record (the window elapsed).
	ActWatchdogFence ActionKind = "watchdog-fence"
	// ActRecover: move the host's allocations back to pending (guarded by
	// the fence record) so the scheduler restarts them elsewhere.
	ActRecover ActionKind = "recover"
)

// Action is one thing the leader must do.
type Action struct {
	Kind ActionKind
	Host string
}

// Transition is a state change, to be recorded as an event.
type Transition struct {
	Host     string
	From, To State
	Reason   string
	At       time.Time
}

// Step advances every host to now. prev is the previous result (nil at
// start, e.g. on a new leader, which only delays decisions). It returns
// the new states, the transitions and the actions to take, sorted by host.
func Step(cfg Config, prev map[string]Host, obs []Observation, now time.Time) (map[string]Host, []Transition, []Action) {
	next := make(map[string]Host, len(obs))
	var trans []Transition
	var acts []Action
	sort.Slice(obs, func(i, j int) bool { return obs[i].Host < obs[j].Host })
	for _, o := range obs {
		h, known := prev[o.Host]
		if !known {
			// A new leader starts from what the store shows, and from now:
			// waits can only get longer, never shorter.
			h = Host{State: Ready, Since: now}
			if !o.Alive {
				h = Host{State: Suspect, Since: now, LeaseLostAt: now}
			}
			if o.FenceRecord {
				h = Host{State: Fenced, Since: now}
			}
		}
		n := step(cfg, h, o, now)
		if n.State != h.State || !known && n.State != Ready {
			n.Since = now
			from := h.State
			if !known {
				from = ""
			}
			trans = append(trans, Transition{Host: o.Host, From: from, To: n.State, Reason: n.Reason, At: now})
		} else {
			n.Since = h.Since
		}
		next[o.Host] = n
		switch {
		case n.State == Lost && o.Fenceable && !o.Fencing:
			acts = append(acts, Action{Kind: ActFence, Host: o.Host})
		case n.State == Lost && !o.Fenceable && cfg.WatchdogFencing && !now.Before(n.LeaseLostAt.Add(cfg.WatchdogWait)):
			acts = append(acts, Action{Kind: ActWatchdogFence, Host: o.Host})
		case n.State == Fenced && o.Allocations > 0:
			acts = append(acts, Action{Kind: ActRecover, Host: o.Host})
		}
	}
	return next, trans, acts
}

func step(cfg Config, h Host, o Observation, now time.Time) Host {
	// A fence record settles it, whatever else is seen: the host was
	// powered off (or its watchdog window passed) and stays out until an
	// operator clears it.
	if o.FenceRecord {
		if o.Allocations == 0 {
			return Host{State: Recovered, LeaseLostAt: h.LeaseLostAt, Reason: "fenced; its workloads were moved; clear it with `bulwarkctl node clear` once repaired"}
		}
		return Host{State: Fenced, LeaseLostAt: h.LeaseLostAt, Reason: fmt.Sprintf("fenced; recovering %d workloads", o.Allocations)}
	}
	if o.Fencing {
		return Host{State: Fencing, LeaseLostAt: h.LeaseLostAt, Reason: "powering off through its fence devices"}
	}
	switch h.State {
	case Fenced, Recovered:
		// The record was cleared by an operator.
		if o.Alive {
			return Host{State: Ready, Reason: "cleared by an operator"}
		}
		return Host{State: Suspect, LeaseLostAt: now, Reason: "cleared by an operator; no heartbeat yet"}
	case Lost, Fencing:
		// Once lost, a host with a fence device is fenced even if it
		// comes back: it may still run what it ran, and only a confirmed
		// power-off makes restarting elsewhere safe. Its own workloads
		// stay allocated to it meanwhile, so nothing runs twice.
		// A host without one that is back (its heartbeat was written
		// while it had no fence record) evidently was not reset by a
		// watchdog: it is simply ready again, and keeps its workloads.
		if o.Alive && !o.Fenceable && !o.FenceRequested {
			return Host{State: Ready, Reason: "back before it could be fenced"}
		}
		return lostHost(cfg, h, o, now)
	}
	if o.FenceRequested {
		lostAt := h.LeaseLostAt
		if lostAt.IsZero() {
			lostAt = now
		}
		n := lostHost(cfg, Host{LeaseLostAt: lostAt}, o, now)
		n.Reason = "an operator asked to fence it; " + n.Reason
		return n
	}
	if o.Alive {
		return Host{State: Ready}
	}
	lostAt := h.LeaseLostAt
	if h.State == Ready || lostAt.IsZero() {
		lostAt = now
	}
	if o.Allocations == 0 {
		// Nothing to protect: no need to fence a host that runs nothing;
		// it simply is not ready.
		return Host{State: Suspect, LeaseLostAt: lostAt, Reason: "no heartbeat; runs nothing, so no fencing needed"}
	}
	if now.Sub(lostAt) < cfg.SuspectGrace {
		return Host{State: Suspect, LeaseLostAt: lostAt, Reason: "heartbeat lease expired; waiting out the suspect grace"}
	}
	return lostHost(cfg, Host{LeaseLostAt: lostAt}, o, now)
}

func lostHost(cfg Config, h Host, o Observation, now time.Time) Host {
	n := Host{State: Lost, LeaseLostAt: h.LeaseLostAt}
	switch {
	case o.Fenceable:
		n.Reason = "heartbeat lost; fencing"
	case cfg.WatchdogFencing:
		left := h.LeaseLostAt.Add(cfg.WatchdogWait).Sub(now)
		n.Reason = fmt.Sprintf("heartbeat lost; no fence device; watchdog fencing in %s", max(left, 0).Round(time.Second))
	default:
		n.Reason = "heartbeat lost; no working fence device and watchdog fencing is off: its workloads wait until an operator fences it (`bulwarkctl node fence`)"
	}
	return n
}
