package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/server"
)

// Maintenance, drains and simulated agents. The records are built by the
// same server functions the API handlers commit.

func (s *Sim) maintenance(args []string) error {
	if len(args) != 2 || args[0] != "on" && args[0] != "off" {
		return fmt.Errorf("usage: maintenance on|off HOST")
	}
	host := args[1]
	if args[0] == "on" {
		conds, ops, _ := server.MaintenanceOn(host, "", "sim", s.now)
		ok, _, err := s.store.Txn(s.ctx, conds, ops)
		if err == nil && !ok {
			s.logf("  already in maintenance")
		}
		return err
	}
	kv, ok, _, err := s.store.Get(s.ctx, clusterstore.MaintenanceKey(host))
	if err != nil || !ok {
		if err == nil {
			s.logf("  not in maintenance")
		}
		return err
	}
	var m api.Maintenance
	if err := clusterstore.Decode(kv, &m); err != nil {
		return err
	}
	conds, ops := server.MaintenanceOff(clusterstore.Versioned[api.Maintenance]{Value: m, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}, "sim", s.now)
	_, _, err = s.store.Txn(s.ctx, conds, ops)
	return err
}

// drainArgs reads HOST [batch=N] [timeout=D].
func drainArgs(args []string) (string, api.DrainRequest, error) {
	var req api.DrainRequest
	if len(args) < 1 {
		return "", req, fmt.Errorf("usage: drain HOST [batch=N] [timeout=DURATION]")
	}
	for _, kv := range args[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "batch":
			n, err := strconv.Atoi(v)
			if err != nil {
				return "", req, err
			}
			req.Batch = n
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil {
				return "", req, err
			}
			req.Timeout = api.Duration(d)
		default:
			return "", req, fmt.Errorf("unknown drain option %q", k)
		}
	}
	req.Normalize()
	return args[0], req, nil
}

func (s *Sim) drain(args []string) error {
	host, req, err := drainArgs(args)
	if err != nil {
		return err
	}
	snap, _, err := clusterstore.ReadSnapshot(s.ctx, s.store)
	if err != nil {
		return err
	}
	conds, ops, _, _, err := server.DrainStart(snap, host, req, "sim", s.now)
	if err != nil {
		s.logf("  refused: %v", err)
		return nil
	}
	ok, _, err := s.store.Txn(s.ctx, conds, ops)
	if err == nil && !ok {
		s.logf("  refused: maintenance changed meanwhile")
	}
	return err
}

func (s *Sim) drainPlan(args []string) error {
	host, req, err := drainArgs(args)
	if err != nil {
		return err
	}
	snap, _, err := clusterstore.ReadSnapshot(s.ctx, s.store)
	if err != nil {
		return err
	}
	plan, err := server.DrainPlanOf(snap, host, req.Batch, s.sched, s.now)
	if err != nil {
		return err
	}
	for _, m := range plan.Moves {
		s.logf("  batch %d: %s (priority %d) -> %s", m.Batch, m.Workload, m.Priority, m.To)
	}
	for _, p := range plan.Preempted {
		s.logf("  would stop %s on %s for %s", p.Workload, p.Host, p.By)
	}
	for _, x := range plan.Stuck {
		s.logf("  stays: %s (priority %d): %s", x.Workload, x.Priority, x.Reason)
	}
	for _, n := range plan.Notes {
		s.logf("  note: %s", n)
	}
	return nil
}

func (s *Sim) drainStatus(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: drain-status HOST")
	}
	snap, _, err := clusterstore.ReadSnapshot(s.ctx, s.store)
	if err != nil {
		return err
	}
	ds, ok := server.DrainProgress(snap, args[0])
	if !ok {
		s.logf("  no drain")
		return nil
	}
	s.logf("  %s: %d batches, %d placed there, reporting %v", ds.State, ds.Batches, ds.Remaining, ds.Reporting)
	for _, m := range ds.Moves {
		line := fmt.Sprintf("  batch %d: %s %s", m.Batch, m.Workload, m.Phase)
		if m.Now != "" {
			line += " on " + m.Now
		}
		if m.Detail != "" {
			line += ": " + m.Detail
		}
		s.logf("%s", line)
	}
	for _, x := range ds.Stuck {
		s.logf("  stuck: %s: %s", x.Workload, x.Reason)
	}
	if ds.Message != "" {
		s.logf("  %s", ds.Message)
	}
	return nil
}

func (s *Sim) agent(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: agent slow|ok HOST | agent fail NAME")
	}
	switch args[0] {
	case "slow":
		s.slow[args[1]] = true
	case "ok":
		delete(s.slow, args[1])
	case "fail":
		kv, ok, _, err := s.store.Get(s.ctx, clusterstore.AllocationKey(args[1]))
		if err != nil || !ok {
			return fmt.Errorf("%s is not placed", args[1])
		}
		s.failing[args[1]] = kv.CreateRevision
	default:
		return fmt.Errorf("usage: agent slow|ok HOST | agent fail NAME")
	}
	return nil
}

// agentsStep is every simulated agent's reconcile: report what is allocated
// to its host as running (or, for a failing workload at the epoch it fails
// at, given up on), and stop what is not — at once, or, on a slow host,
// not at all (it keeps reporting "stopping"). Reports are bound to the
// host's lease, as real ones are.
func (s *Sim) agentsStep() error {
	if !s.agents {
		return nil
	}
	snap, _, err := clusterstore.ReadSnapshot(s.ctx, s.store)
	if err != nil {
		return err
	}
	hosts := make([]string, 0, len(s.leases))
	for h := range s.leases {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	var ops []clusterstore.Op
	for _, host := range hosts {
		lease := s.leases[host]
		_, fenced := snap.Fencing[host]
		want := map[string]api.WorkloadStatus{}
		for name, a := range snap.Allocations {
			if a.Value.Host != host || fenced {
				continue
			}
			st := api.WorkloadStatus{Schema: api.SchemaVersion, Workload: name, Host: host, Epoch: a.Value.Epoch, State: api.StateRunning, UpdatedAt: s.now}
			if s.failing[name] == a.Value.Epoch {
				st.State, st.GaveUp, st.Reason = api.StateFailed, true, fmt.Sprintf("gave up after %d restarts on %s: exit 1", api.RestartLimit, host)
			}
			want[name] = st
		}
		have := snap.Statuses[host]
		for name, st := range want {
			if old, ok := have[name]; ok && old.Value.Epoch == st.Epoch && old.Value.State == st.State && old.Value.GaveUp == st.GaveUp {
				continue
			}
			ops = append(ops, clusterstore.PutWithLease(clusterstore.StatusKey(host, name), clusterstore.Encode(st), lease))
		}
		for name, old := range have {
			if _, ok := want[name]; ok {
				continue
			}
			if !s.slow[host] {
				ops = append(ops, clusterstore.Delete(clusterstore.StatusKey(host, name)))
				continue
			}
			if old.Value.State != api.StateStopping {
				st := old.Value
				st.State, st.UpdatedAt = api.StateStopping, s.now
				ops = append(ops, clusterstore.PutWithLease(clusterstore.StatusKey(host, name), clusterstore.Encode(st), lease))
			}
		}
	}
	if len(ops) == 0 {
		return nil
	}
	return s.put(ops...)
}
