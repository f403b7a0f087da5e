package api

import (
	"errors"
	"fmt"
	"time"
)

// Rebalancing: GET /v1/rebalance says which moves would even out the load
// of the hosts in service; POST /v1/rebalance has the leader carry them
// out, one at a time, each a stop on the old host and a start on the new
// one (as a drain moves workloads).

// Rebalancing defaults and bounds (see Settings).
const (
	DefaultRebalanceThreshold    = 20
	DefaultAutoRebalanceInterval = 10 * time.Minute
	MinAutoRebalanceInterval     = time.Minute
	MaxAutoRebalanceInterval     = 7 * 24 * time.Hour
	// MaxRebalanceMoves bounds the moves of one plan.
	MaxRebalanceMoves = 20
)

// RebalanceMove is one move of a rebalance plan or run.
type RebalanceMove struct {
	Workload string   `json:"workload"`
	Priority int      `json:"priority"`
	CPUs     int      `json:"cpus"`
	Memory   ByteSize `json:"memory"`
	From     string   `json:"from"`
	To       string   `json:"to"`
	// Why explains the move: the loads of both hosts before and after, and
	// the spread.
	Why string `json:"why,omitempty"`

	// In a run: Epoch is the workload's allocation epoch on From when the
	// run was accepted; Started is when it was stopped there.
	Epoch   int64     `json:"epoch,omitempty"`
	Started time.Time `json:"started,omitzero"`
	// Outcome is set once the move has settled: DrainMoved, DrainNotPlaced,
	// DrainFailed, DrainDeleted, or RebalanceSkipped (not started: the
	// cluster changed). Host is where the workload runs then; Reason
	// explains an outcome other than moved.
	Outcome string `json:"outcome,omitempty"`
	Host    string `json:"host,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// Handoff says why the workload could not be started on To once it
	// had stopped: the scheduler then placed it like any pending workload.
	Handoff string `json:"handoff,omitempty"`
}

// RebalanceSkipped is the outcome of a move a run did not start.
const RebalanceSkipped = "skipped"

// RebalanceHost is one host's load in a plan, in percent of its
// allocatable capacity (the larger of CPU and memory).
type RebalanceHost struct {
	Host       string   `json:"host"`
	Load       float64  `json:"load"`
	LoadAfter  float64  `json:"load_after"`
	CPUs       int      `json:"cpus"`
	CPUsUsed   int      `json:"cpus_used"`
	Memory     ByteSize `json:"memory"`
	MemoryUsed ByteSize `json:"memory_used"`
	// InService: ready and not in maintenance. Only such hosts count in
	// the spread and take or give workloads.
	InService bool   `json:"in_service"`
	Note      string `json:"note,omitempty"`
}

// RebalancePlan is the answer of GET /v1/rebalance.
type RebalancePlan struct {
	// Revision is the store revision the plan was computed at.
	Revision  int64 `json:"revision"`
	Threshold int   `json:"threshold"`
	// Spread is the load spread of the hosts in service now, SpreadAfter
	// once the moves are done, in percentage points.
	Spread      float64         `json:"spread"`
	SpreadAfter float64         `json:"spread_after"`
	Moves       []RebalanceMove `json:"moves"`
	Hosts       []RebalanceHost `json:"hosts"`
	// Summary says in one sentence what the plan does, or why nothing.
	Summary string   `json:"summary"`
	Notes   []string `json:"notes,omitempty"`
	// Run is the rebalance under way, or the last one.
	Run *Rebalance `json:"run,omitempty"`
}

// RebalanceRequest is the body of POST /v1/rebalance: the plan the
// operator reviewed. The server carries it out only if the plan it
// computes now is the same: Moves (workload, from, to, in order) if given,
// else the plan at Revision, which must then be the current revision.
type RebalanceRequest struct {
	Revision int64           `json:"revision"`
	Moves    []RebalanceMove `json:"moves,omitempty"`
	By       string          `json:"by,omitempty"`
}

// Validate checks a rebalance request.
func (r *RebalanceRequest) Validate() error {
	var errs []error
	if r.Revision < 1 {
		errs = append(errs, fmt.Errorf("revision must be the revision of the plan you reviewed (GET /v1/rebalance), got %d", r.Revision))
	}
	if len(r.Moves) > MaxRebalanceMoves {
		errs = append(errs, fmt.Errorf("at most %d moves, got %d", MaxRebalanceMoves, len(r.Moves)))
	}
	for i, m := range r.Moves {
		for _, x := range []struct{ what, v string }{{"workload", m.Workload}, {"host", m.From}, {"host", m.To}} {
			if err := ValidateName(x.what, x.v); err != nil {
				errs = append(errs, fmt.Errorf("move %d: %w", i+1, err))
			}
		}
	}
	if len(r.By) > 256 {
		errs = append(errs, errors.New("by: at most 256 characters"))
	}
	return errors.Join(errs...)
}

// RebalanceState is where a rebalance run stands.
type RebalanceState string

const (
	RebalanceRunning    RebalanceState = "running"
	RebalanceComplete   RebalanceState = "complete"
	RebalanceIncomplete RebalanceState = "incomplete"
)

// Rebalance is a rebalance run, stored at /bulwark/v1/rebalance; the
// answer of POST /v1/rebalance. The leader carries it out.
type Rebalance struct {
	Schema int            `json:"schema"`
	State  RebalanceState `json:"state,omitempty"`
	// Auto: started by the leader (auto_rebalance), not an operator.
	Auto      bool            `json:"auto,omitempty"`
	By        string          `json:"by,omitempty"`
	Revision  int64           `json:"revision,omitempty"`
	Threshold int             `json:"threshold,omitempty"`
	Started   time.Time       `json:"started,omitzero"`
	Finished  time.Time       `json:"finished,omitzero"`
	Moves     []RebalanceMove `json:"moves,omitempty"`
	Message   string          `json:"message,omitempty"`
	// LastAuto is when the leader last checked the plan for automatic
	// rebalancing: the next check is AutoRebalanceInterval later, whichever
	// replica leads then.
	LastAuto time.Time `json:"last_auto,omitzero"`
}
