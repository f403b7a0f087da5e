package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Placement settings of a workload live in WorkloadSpec as the strings a
// user writes ("rack in (r1,r2)", "ssd=true:5"); they are parsed here, once,
// into the structured forms the scheduler uses.

// ConstraintOp is the relation of a hard label constraint.
type ConstraintOp string

const (
	OpEq    ConstraintOp = "="
	OpNotEq ConstraintOp = "!="
	OpIn    ConstraintOp = "in"
	OpNotIn ConstraintOp = "notin"
)

// Constraint is a hard requirement on a host label.
type Constraint struct {
	Key    string
	Op     ConstraintOp
	Values []string
}

// String renders the constraint as a user writes it.
func (c Constraint) String() string {
	switch c.Op {
	case OpIn, OpNotIn:
		return fmt.Sprintf("%s %s (%s)", c.Key, c.Op, strings.Join(c.Values, ","))
	}
	return c.Key + string(c.Op) + c.Values[0]
}

// Matches reports whether a host with these labels satisfies c. A missing
// label never equals anything, so `key!=v` and `key notin (...)` hold for it.
func (c Constraint) Matches(labels map[string]string) bool {
	v, ok := labels[c.Key]
	switch c.Op {
	case OpEq:
		return ok && v == c.Values[0]
	case OpNotEq:
		return !ok || v != c.Values[0]
	case OpIn:
		if !ok {
			return false
		}
		for _, x := range c.Values {
			if x == v {
				return true
			}
		}
		return false
	case OpNotIn:
		for _, x := range c.Values {
			if ok && x == v {
				return false
			}
		}
		return true
	}
	return false
}

// ParseConstraint reads "key=value", "key!=value", "key in (a,b)" or
// "key notin (a,b)".
func ParseConstraint(s string) (Constraint, error) {
	t := strings.TrimSpace(s)
	bad := func(why string) (Constraint, error) {
		return Constraint{}, fmt.Errorf("constraint %q: %s (use key=value, key!=value, 'key in (a,b)' or 'key notin (a,b)')", s, why)
	}
	for _, op := range []ConstraintOp{OpNotIn, OpIn} {
		sep := " " + string(op) + " "
		if k, rest, ok := strings.Cut(t, sep); ok {
			rest = strings.TrimSpace(rest)
			if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
				return bad("the values must be in parentheses")
			}
			var vals []string
			for _, v := range strings.Split(rest[1:len(rest)-1], ",") {
				v = strings.TrimSpace(v)
				if v == "" {
					return bad("empty value in the list")
				}
				vals = append(vals, v)
			}
			c := Constraint{Key: strings.TrimSpace(k), Op: op, Values: vals}
			return c, c.validate(s)
		}
	}
	for _, op := range []ConstraintOp{OpNotEq, OpEq} {
		if k, v, ok := strings.Cut(t, string(op)); ok {
			if strings.ContainsAny(v, "=!") {
				return bad("more than one operator")
			}
			c := Constraint{Key: strings.TrimSpace(k), Op: op, Values: []string{strings.TrimSpace(v)}}
			return c, c.validate(s)
		}
	}
	return bad("no operator")
}

func (c Constraint) validate(src string) error {
	if c.Key == "" || len(c.Key) > 63 || !labelChars(c.Key, true) {
		return fmt.Errorf("constraint %q: label key %q is not valid", src, c.Key)
	}
	if len(c.Values) > 64 {
		return fmt.Errorf("constraint %q: at most 64 values", src)
	}
	for _, v := range c.Values {
		if v == "" || len(v) > 63 || !labelChars(v, false) {
			return fmt.Errorf("constraint %q: value %q is not a valid label value", src, v)
		}
	}
	return nil
}

// Preference is a soft wish for a host label, with a weight from 1 to 100.
type Preference struct {
	Key    string
	Value  string
	Weight int
}

func (p Preference) String() string { return fmt.Sprintf("%s=%s:%d", p.Key, p.Value, p.Weight) }

// ParsePreference reads "key=value" or "key=value:weight" (weight 1-100, default 1).
func ParsePreference(s string) (Preference, error) {
	body, w := s, "1"
	if i := strings.LastIndex(s, ":"); i >= 0 {
		body, w = s[:i], s[i+1:]
	}
	k, v, ok := strings.Cut(body, "=")
	if !ok {
		return Preference{}, fmt.Errorf("preference %q: use key=value or key=value:weight", s)
	}
	weight, err := strconv.Atoi(w)
	if err != nil || weight < 1 || weight > 100 {
		return Preference{}, fmt.Errorf("preference %q: weight must be a whole number from 1 to 100", s)
	}
	if err := ValidateLabels(map[string]string{k: v}); err != nil || v == "" {
		return Preference{}, fmt.Errorf("preference %q: not a valid label key=value", s)
	}
	return Preference{Key: k, Value: v, Weight: weight}, nil
}

// Placement is the parsed form of a spec's placement settings.
type Placement struct {
	Require      []Constraint
	Prefer       []Preference
	AntiAffinity string
	SpreadBy     string
}

// ParsePlacement parses and checks the placement settings of a spec.
func (s *WorkloadSpec) ParsePlacement() (Placement, error) {
	var p Placement
	var errs []error
	if len(s.Require) > 32 || len(s.Prefer) > 32 {
		errs = append(errs, errors.New("at most 32 constraints and 32 preferences"))
	}
	for _, r := range s.Require {
		c, err := ParseConstraint(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Require = append(p.Require, c)
	}
	for _, r := range s.Prefer {
		pr, err := ParsePreference(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Prefer = append(p.Prefer, pr)
	}
	if s.AntiAffinity != "" {
		if err := ValidateName("anti-affinity group", s.AntiAffinity); err != nil {
			errs = append(errs, err)
		}
		p.AntiAffinity = s.AntiAffinity
	}
	if s.SpreadBy != "" {
		if len(s.SpreadBy) > 63 || !labelChars(s.SpreadBy, true) {
			errs = append(errs, fmt.Errorf("spread-by %q is not a valid label key", s.SpreadBy))
		}
		if s.AntiAffinity == "" {
			errs = append(errs, errors.New("spread-by spreads the members of an anti-affinity group: set anti-affinity too"))
		}
		p.SpreadBy = s.SpreadBy
	}
	return p, errors.Join(errs...)
}

// Strategy is how the scheduler chooses among hosts that fit.
type Strategy string

const (
	// StrategyBinpack fills the fullest host that fits (keeps hosts free).
	StrategyBinpack Strategy = "binpack"
	// StrategySpread picks the emptiest host (spreads load).
	StrategySpread Strategy = "spread"
)

// Settings are the cluster-wide scheduling settings, stored at
// /bulwark/v1/settings/cluster and changed with PUT /v1/settings.
type Settings struct {
	Schema   int      `json:"schema"`
	Strategy Strategy `json:"strategy"`
	// Preemption lets a workload that does not fit stop strictly
	// lower-priority workloads to make room.
	Preemption bool `json:"preemption"`
	// TolerateHostFailures is N: a new workload stays pending if placing it
	// would leave the cluster unable to restart everything after losing its
	// N largest hosts.
	TolerateHostFailures int `json:"tolerate_host_failures"`
	// ReservedCPUs and ReservedMemory are kept back on every host for the
	// host itself.
	ReservedCPUs   int      `json:"reserved_cpus"`
	ReservedMemory ByteSize `json:"reserved_memory"`
	// WatchdogFencing (opt-in) lets the workloads of a lost host without a
	// working fence device restart elsewhere once T + T_self +
	// WatchdogTimeout has passed: the host's own watchdog must have reset
	// it by then. Off: such workloads wait for an operator.
	WatchdogFencing bool     `json:"watchdog_fencing,omitempty"`
	WatchdogTimeout Duration `json:"watchdog_timeout,omitempty"`
	// FailureTimeout is the quiet period after which a workload's failure
	// count (its reschedules) expires: it has run that long since its last
	// (re)start, or has waited that long since its host gave up on it. 0:
	// never (clear it with POST /v1/workloads/{name}/reset).
	FailureTimeout Duration `json:"failure_timeout"`
	// RebalanceThreshold is the load spread, in percentage points, that
	// rebalancing tolerates between the most and the least loaded host in
	// service (a host's load is the larger of its CPU and memory use, in
	// percent of its allocatable capacity). 1 to 100; default 20.
	RebalanceThreshold int `json:"rebalance_threshold,omitempty"`
	// AutoRebalance lets the leader carry out the rebalance plan by
	// itself, at most every AutoRebalanceInterval (1m to 168h, default
	// 10m). Off by default: `bulwarkctl rebalance` does it on request.
	// (omitempty: zero is never valid for the threshold and the interval,
	// and a server that predates rebalancing refuses fields it lacks.)
	AutoRebalance         bool     `json:"auto_rebalance,omitempty"`
	AutoRebalanceInterval Duration `json:"auto_rebalance_interval,omitempty"`
}

// DefaultFailureTimeout is the failure_timeout of the default settings.
const DefaultFailureTimeout = 10 * time.Minute

// MaxFailureTimeout bounds failure_timeout.
const MaxFailureTimeout = 30 * 24 * time.Hour

// DefaultSettings are used until an operator changes them.
func DefaultSettings() Settings {
	return Settings{Schema: SchemaVersion, Strategy: StrategyBinpack, FailureTimeout: Duration(DefaultFailureTimeout),
		RebalanceThreshold: DefaultRebalanceThreshold, AutoRebalanceInterval: Duration(DefaultAutoRebalanceInterval)}
}

// Validate checks cluster settings.
func (s *Settings) Validate() error {
	var errs []error
	switch s.Strategy {
	case StrategyBinpack, StrategySpread:
	default:
		errs = append(errs, fmt.Errorf("strategy %q is unknown: use binpack or spread", s.Strategy))
	}
	if s.TolerateHostFailures < 0 || s.TolerateHostFailures > 16 {
		errs = append(errs, fmt.Errorf("tolerate_host_failures must be from 0 to 16, got %d", s.TolerateHostFailures))
	}
	if s.ReservedCPUs < 0 || s.ReservedCPUs > MaxCPUs {
		errs = append(errs, fmt.Errorf("reserved_cpus must be from 0 to %d, got %d", MaxCPUs, s.ReservedCPUs))
	}
	if s.WatchdogTimeout < 0 || time.Duration(s.WatchdogTimeout) > time.Hour {
		errs = append(errs, fmt.Errorf("watchdog_timeout must be from 0 to 1h, got %s", s.WatchdogTimeout))
	}
	if s.WatchdogFencing && s.WatchdogTimeout == 0 {
		errs = append(errs, errors.New("watchdog_fencing needs watchdog_timeout: the hardware watchdog's timeout on the hosts"))
	}
	if s.FailureTimeout < 0 || time.Duration(s.FailureTimeout) > MaxFailureTimeout {
		errs = append(errs, fmt.Errorf("failure_timeout must be from 0 (never) to %s, got %s", MaxFailureTimeout, s.FailureTimeout))
	}
	if s.ReservedMemory < 0 || s.ReservedMemory > MaxMemory {
		errs = append(errs, fmt.Errorf("reserved_memory must be from 0 to %s, got %s", MaxMemory, s.ReservedMemory))
	}
	if s.RebalanceThreshold < 1 || s.RebalanceThreshold > 100 {
		errs = append(errs, fmt.Errorf("rebalance_threshold must be from 1 to 100 (percentage points of load between the most and least loaded host), got %d", s.RebalanceThreshold))
	}
	if iv := time.Duration(s.AutoRebalanceInterval); iv < MinAutoRebalanceInterval || iv > MaxAutoRebalanceInterval {
		errs = append(errs, fmt.Errorf("auto_rebalance_interval must be from %s to %s, got %s", MinAutoRebalanceInterval, MaxAutoRebalanceInterval, s.AutoRebalanceInterval))
	}
	return errors.Join(errs...)
}

// HostVerdict is one host's line of an explanation.
type HostVerdict struct {
	Host     string  `json:"host"`
	Feasible bool    `json:"feasible"`
	Reason   string  `json:"reason,omitempty"`
	Score    float64 `json:"score,omitempty"`
	// Chosen marks the host the workload is (or would be) placed on.
	Chosen bool `json:"chosen,omitempty"`
}

// Explanation is the answer of GET /v1/workloads/{name}/explain.
type Explanation struct {
	Workload string        `json:"workload"`
	State    State         `json:"state"`
	Host     string        `json:"host,omitempty"`
	Summary  string        `json:"summary"`
	Hosts    []HostVerdict `json:"hosts"`
}
