package api

// WhatIf is the answer of GET /v1/whatif?fail=HOST[,HOST...]: what the
// scheduler would do if those hosts failed now, computed from live state by
// the same code that places, changing nothing.
type WhatIf struct {
	// Failed are the hosts imagined lost, sorted.
	Failed []string `json:"failed"`
	// Restarts are the placements the leader would make, in its order
	// (priority, then age, then name).
	Restarts []WhatIfMove `json:"restarts"`
	// Preempted are running workloads that would be stopped to make room
	// for higher-priority ones; each appears again in Restarts or Unplaced.
	Preempted []WhatIfPreemption `json:"preempted,omitempty"`
	// Unplaced are workloads that ran before and would not restart.
	Unplaced []WhatIfUnplaced `json:"unplaced"`
	// ExpectedRecovery estimates the time from the failure to the restarts
	// being placed: the host's agent lease TTL plus an allowance for
	// fencing. An estimate: boot time and store latency are left out.
	ExpectedRecovery Duration `json:"expected_recovery"`
	// Safe: every workload that ran before would run again.
	Safe bool `json:"safe"`
	// Notes are caveats, e.g. a host without a fence device.
	Notes []string `json:"notes,omitempty"`
}

// WhatIfMove is one workload (re)started on a host.
type WhatIfMove struct {
	// Order is the 1-based position in which the scheduler places it.
	Order    int    `json:"order"`
	Workload string `json:"workload"`
	Priority int    `json:"priority"`
	// From is the host it ran on; empty if it was pending before.
	From string `json:"from,omitempty"`
	To   string `json:"to"`
}

// WhatIfPreemption is a running workload stopped to make room.
type WhatIfPreemption struct {
	Workload string `json:"workload"`
	Host     string `json:"host"`
	By       string `json:"by"`
	Reason   string `json:"reason"`
}

// WhatIfUnplaced is a workload that would not restart, and why.
type WhatIfUnplaced struct {
	Workload string `json:"workload"`
	Priority int    `json:"priority"`
	From     string `json:"from"`
	Reason   string `json:"reason"`
}

// WhatIfReport is the answer of GET /v1/whatif: an N+1 check, one scenario
// per ready host that runs something, each host failing alone.
type WhatIfReport struct {
	Scenarios []WhatIf `json:"scenarios"`
	// UnsafeHosts are the hosts whose loss leaves some workload without a
	// host, sorted.
	UnsafeHosts []string `json:"unsafe_hosts"`
}
