package api

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Maintenance and drains: an operator takes a host out of service. In
// maintenance nothing new is placed on the host and nothing is moved off it;
// a drain also moves what it runs elsewhere, in batches, and keeps its
// progress in the same record.

// Maintenance is a host's maintenance record, stored at
// /bulwark/v1/maintenance/<host>. The API writes it (maintenance on, drain
// start); the leader updates Drain as it moves workloads. Deleting it (maintenance
// off, undrain) lets the scheduler use the host again and ends a drain that
// is under way: moves already started finish, no new ones start.
type Maintenance struct {
	Schema int    `json:"schema"`
	Host   string `json:"host"`
	// Reason is the operator's note, e.g. "replace DIMM B2".
	Reason string `json:"reason,omitempty"`
	// By says who asked: the user and machine bulwarkctl ran as, or the
	// client's address.
	By    string    `json:"by,omitempty"`
	Since time.Time `json:"since"`
	// Drain is set once a drain of the host was started.
	Drain *Drain `json:"drain,omitempty"`
}

// DrainState is where a drain stands.
type DrainState string

const (
	// DrainRunning: the leader is moving workloads off the host.
	DrainRunning DrainState = "draining"
	// DrainComplete: every workload of the host runs elsewhere and nothing
	// is left on the host (its agent reports nothing).
	DrainComplete DrainState = "complete"
	// DrainIncomplete: nothing is moving any more, but some workloads are
	// still on the host (they fit nowhere else) or did not start elsewhere.
	DrainIncomplete DrainState = "incomplete"
	// DrainTimedOut: the deadline passed with moves still under way.
	DrainTimedOut DrainState = "timed-out"
)

// Done reports whether the drain has ended, well or not.
func (s DrainState) Done() bool { return s != DrainRunning && s != "" }

// Drain is the state of a drain, kept in the host's Maintenance record.
type Drain struct {
	State DrainState `json:"state"`
	// Batch is how many workloads move at once.
	Batch    int       `json:"batch"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	Finished time.Time `json:"finished,omitzero"`
	// Batches counts the batches started so far.
	Batches int `json:"batches"`
	// Moves are the workloads the leader moved off the host, in order.
	Moves []DrainMove `json:"moves,omitempty"`
	// Stuck are the workloads the leader's last plan could not move: they
	// stay on the host.
	Stuck []DrainStuck `json:"stuck,omitempty"`
	// Message sums up how the drain ended.
	Message string `json:"message,omitempty"`
}

// DrainMove is one workload moved off a drained host.
type DrainMove struct {
	Workload string `json:"workload"`
	Priority int    `json:"priority"`
	Batch    int    `json:"batch"`
	// Epoch is the workload's allocation epoch on the drained host.
	Epoch int64 `json:"epoch"`
	// Planned is the host the scheduler chose when the move started.
	Planned string    `json:"planned,omitempty"`
	Started time.Time `json:"started"`
	// Outcome is set once the move has settled: DrainMoved, DrainNotPlaced,
	// DrainFailed or DrainDeleted. Empty while it is under way.
	Outcome string `json:"outcome,omitempty"`
	// Host is where it ended up (with Outcome).
	Host string `json:"host,omitempty"`
	// Reason explains an outcome other than moved.
	Reason string `json:"reason,omitempty"`
}

// Outcomes of a move, and the phases of one under way.
const (
	DrainMoved     = "moved"      // runs elsewhere, stopped on the drained host
	DrainNotPlaced = "not-placed" // stopped on the drained host, placed nowhere
	DrainFailed    = "failed"     // placed elsewhere, did not start there
	DrainDeleted   = "deleted"    // deleted while it moved

	PhaseStopping = "stopping" // the drained host has not stopped it yet
	PhaseWaiting  = "waiting"  // stopped there, waiting to be placed
	PhaseStarting = "starting" // placed elsewhere, not running yet
)

// DrainStuck is a workload a drain cannot move, and why.
type DrainStuck struct {
	Workload string `json:"workload"`
	Priority int    `json:"priority"`
	Reason   string `json:"reason"`
}

// MaintenanceRequest is the body of PUT /v1/nodes/{name}/maintenance.
type MaintenanceRequest struct {
	Reason string `json:"reason,omitempty"`
	By     string `json:"by,omitempty"`
}

// MaintenanceResult is the answer of PUT and DELETE
// /v1/nodes/{name}/maintenance.
type MaintenanceResult struct {
	Node string `json:"node"`
	// Changed: the host was not in maintenance (PUT) or was (DELETE).
	Changed bool `json:"changed"`
	// Maintenance is the record now (PUT) or the one removed (DELETE).
	Maintenance *Maintenance `json:"maintenance,omitempty"`
}

// DrainRequest is the body of POST /v1/nodes/{name}/drain.
type DrainRequest struct {
	// Batch is how many workloads move at once (default 1).
	Batch int `json:"batch,omitempty"`
	// Timeout bounds the whole drain (default DefaultDrainTimeout).
	Timeout Duration `json:"timeout,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	By      string   `json:"by,omitempty"`
}

// Drain limits.
const (
	DefaultDrainBatch   = 1
	MaxDrainBatch       = 256
	DefaultDrainTimeout = 30 * time.Minute
	MaxDrainTimeout     = 7 * 24 * time.Hour
	maxNoteLen          = 256
)

// Validate checks a maintenance request.
func (r *MaintenanceRequest) Validate() error {
	return validateNotes(r.Reason, r.By)
}

// Normalize fills in the defaults of a drain request.
func (r *DrainRequest) Normalize() {
	if r.Batch == 0 {
		r.Batch = DefaultDrainBatch
	}
	if r.Timeout == 0 {
		r.Timeout = Duration(DefaultDrainTimeout)
	}
}

// Validate checks a drain request (after Normalize).
func (r *DrainRequest) Validate() error {
	var errs []error
	if r.Batch < 1 || r.Batch > MaxDrainBatch {
		errs = append(errs, fmt.Errorf("batch must be from 1 to %d, got %d", MaxDrainBatch, r.Batch))
	}
	if r.Timeout < Duration(time.Second) || time.Duration(r.Timeout) > MaxDrainTimeout {
		errs = append(errs, fmt.Errorf("timeout must be from 1s to %s, got %s", MaxDrainTimeout, r.Timeout))
	}
	if err := validateNotes(r.Reason, r.By); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func validateNotes(reason, by string) error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"reason", reason}, {"by", by}} {
		if utf8.RuneCountInString(f.v) > maxNoteLen {
			errs = append(errs, fmt.Errorf("%s is longer than %d characters", f.name, maxNoteLen))
		}
		if !utf8.ValidString(f.v) {
			errs = append(errs, fmt.Errorf("%s is not valid UTF-8", f.name))
		}
	}
	return errors.Join(errs...)
}

// DrainPlan is the answer of GET /v1/nodes/{name}/drain/plan: what a drain
// of the host would do now, computed by the scheduler from live state,
// changing nothing.
type DrainPlan struct {
	Host  string `json:"host"`
	Batch int    `json:"batch"`
	// Moves are the workloads that would move, in the order they would
	// (higher priority first), each with its batch and target host.
	Moves []DrainPlanMove `json:"moves"`
	// Preempted are workloads on other hosts that would be stopped to make
	// room (with preemption on).
	Preempted []WhatIfPreemption `json:"preempted,omitempty"`
	// Stuck are the workloads that would stay on the host, and why.
	Stuck []DrainStuck `json:"stuck"`
	// Notes are caveats (the host is not ready, a drain is under way).
	Notes []string `json:"notes,omitempty"`
}

// DrainPlanMove is one workload a drain would move.
type DrainPlanMove struct {
	Batch    int    `json:"batch"`
	Workload string `json:"workload"`
	Priority int    `json:"priority"`
	To       string `json:"to"`
}

// DrainStatus is the answer of GET /v1/nodes/{name}/drain (and of POST):
// the drain record with each move's phase as it stands now.
type DrainStatus struct {
	Host     string     `json:"host"`
	State    DrainState `json:"state"`
	Batch    int        `json:"batch"`
	Started  time.Time  `json:"started"`
	Deadline time.Time  `json:"deadline"`
	Finished time.Time  `json:"finished,omitzero"`
	Batches  int        `json:"batches"`
	// Moves are the moves so far, with the live phase of those under way.
	Moves []DrainMoveStatus `json:"moves"`
	// Stuck are the workloads the drain could not move.
	Stuck   []DrainStuck `json:"stuck"`
	Message string       `json:"message,omitempty"`
	// Remaining counts the workloads still placed on the host.
	Remaining int `json:"remaining"`
	// Reporting lists the workloads the host's agent still reports (it
	// has not stopped them yet, or they stay there).
	Reporting []string `json:"reporting,omitempty"`
}

// DrainMoveStatus is a DrainMove with its live phase.
type DrainMoveStatus struct {
	DrainMove
	// Phase is the outcome once settled, else stopping, waiting or starting.
	Phase string `json:"phase"`
	// Now is the host it is placed on now, if any.
	Now string `json:"now,omitempty"`
	// Detail explains the phase (the pending reason, the agent's report).
	Detail string `json:"detail,omitempty"`
}

// ResetRequest asks the leader to clear a workload's failure count (its
// reschedules), stored at /bulwark/v1/resets/<workload> by
// POST /v1/workloads/{name}/reset; the leader applies and removes it.
type ResetRequest struct {
	Schema   int       `json:"schema"`
	Workload string    `json:"workload"`
	By       string    `json:"by,omitempty"`
	At       time.Time `json:"at"`
}

// ResetResult is the answer of POST /v1/workloads/{name}/reset.
type ResetResult struct {
	Workload string `json:"workload"`
	// Applied: the leader cleared the count before the answer; otherwise
	// the request waits for it.
	Applied bool `json:"applied"`
	// Before is the count when the request was made.
	Before int `json:"before"`
	// Message says what happens next, e.g. that it will be placed again.
	Message string       `json:"message"`
	View    WorkloadView `json:"workload_view"`
}
