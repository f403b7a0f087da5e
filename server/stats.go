package server

import (
	"sync"
	"time"
)

// PlanReport describes one evaluation the leader committed.
type PlanReport struct {
	Placed       int
	Unplaced     int
	Preempted    int
	Transactions int
	// Took is the whole evaluation; Read, Schedule and Commit its phases.
	Took, Read, Schedule, Commit time.Duration
}

// PlanStats adds up PlanReports; its Record method fits Config.OnPlan.
type PlanStats struct {
	mu    sync.Mutex
	evals int
	txns  int
	took  time.Duration
	last  PlanReport
}

// Record adds one report.
func (s *PlanStats) Record(r PlanReport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evals++
	s.txns += r.Transactions
	s.took += r.Took
	s.last = r
}

// Last returns the most recent report.
func (s *PlanStats) Last() PlanReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Snapshot returns evaluations, transactions and time spent so far.
func (s *PlanStats) Snapshot() (evals, txns int, took time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.evals, s.txns, s.took
}
