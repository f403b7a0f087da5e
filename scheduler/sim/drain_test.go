package sim

import (
	"context"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
	"github.com/bulwarkhq/bulwark/server"
)

// runsOnce fails if a workload is reported running (or starting, or
// stopping) by two hosts at once, or by a host it is not placed on while
// another host also runs it.
func runsOnce(s *Sim) func() error {
	return func() error {
		snap, _, err := clusterstore.ReadSnapshot(context.Background(), s.store)
		if err != nil {
			return err
		}
		where := map[string][]string{}
		for host, byName := range snap.Statuses {
			for name, st := range byName {
				switch st.Value.State {
				case api.StateRunning, api.StateStarting, api.StateStopping:
					where[name] = append(where[name], host)
				}
			}
		}
		for name, hosts := range where {
			if len(hosts) > 1 {
				sort.Strings(hosts)
				return fmt.Errorf("INVARIANT: %s runs on %v at once", name, hosts)
			}
		}
		return nil
	}
}

// TestDrainMatchesPlan: seeded random clusters with simulated agents (some
// slow to stop), preemption, anti-affinity and label constraints. The plan
// `node drain` shows first must be what the leader then does: every
// workload it moves ends on the host the plan named, every one it leaves
// is still on the drained host; no workload ever runs on two hosts; the
// drain is reported complete only when the host runs nothing.
func TestDrainMatchesPlan(t *testing.T) {
	for seed := int64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			s, err := New(scheduler.New(scheduler.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.onRound = runsOnce(s)
			hosts := 3 + rng.Intn(4)
			lines := []string{"agents on"}
			for i := 0; i < hosts; i++ {
				lines = append(lines, fmt.Sprintf("host add h%d cpus=%d mem=%dGiB rack=r%d", i, 2+rng.Intn(8), 2+rng.Intn(8), rng.Intn(3)))
			}
			if rng.Intn(3) == 0 {
				lines = append(lines, "settings preemption=true")
			}
			for i := 0; i < 6+rng.Intn(10); i++ {
				l := fmt.Sprintf("vm w%d cpus=%d mem=%dMiB prio=%d", i, 1+rng.Intn(3), 256*(1+rng.Intn(8)), rng.Intn(4)*100)
				if rng.Intn(3) == 0 {
					l += fmt.Sprintf(" anti=g%d", rng.Intn(2))
				}
				if rng.Intn(4) == 0 {
					l += fmt.Sprintf(" require=rack!=r%d", rng.Intn(3))
				}
				lines = append(lines, l)
			}
			if out, err := s.Run(strings.Join(lines, "\n")); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			st, _ := s.State()
			count := map[string]int{}
			for _, a := range st.Allocations {
				count[a.Host]++
			}
			host := ""
			for h, n := range count {
				if host == "" || n > count[host] || n == count[host] && h < host {
					host = h
				}
			}
			if host == "" {
				t.Skip("nothing placed")
			}
			batch := 1 + rng.Intn(3)
			plan, err := scheduler.PlanDrain(st, host, s.sched, s.now, scheduler.DrainOptions{Batch: batch})
			if err != nil {
				t.Fatal(err)
			}
			slow := rng.Intn(2) == 0
			script := []string{}
			if slow {
				script = append(script, "agent slow "+host)
			}
			script = append(script, fmt.Sprintf("drain %s batch=%d", host, batch))
			if slow {
				script = append(script, "advance 10s", "agent ok "+host)
			}
			if out, err := s.Run(strings.Join(script, "\n")); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			after, _ := s.State()
			snap, _, _ := clusterstore.ReadSnapshot(context.Background(), s.store)
			ds, ok := server.DrainProgress(snap, host)
			if !ok {
				t.Fatal("no drain")
			}
			preempted := map[string]bool{}
			for _, p := range plan.Preemptions {
				preempted[p.Workload] = true
			}
			for _, m := range plan.Moves {
				if a, ok := after.Allocations[m.Workload]; !ok || a.Host != m.To {
					t.Errorf("plan moved %s to %s (batch %d); it is on %q\nlog:\n%s", m.Workload, m.To, m.Batch, a.Host, s.out.String())
				}
			}
			for _, x := range plan.Stuck {
				if a := after.Allocations[x.Workload]; a.Host != host {
					t.Errorf("plan left %s on %s (%s); it is on %q", x.Workload, host, x.Reason, a.Host)
				}
			}
			if len(ds.Moves) != len(plan.Moves) || ds.Batches != plan.Batches() {
				t.Errorf("drain made %d moves in %d batches, plan said %d in %d", len(ds.Moves), ds.Batches, len(plan.Moves), plan.Batches())
			}
			left := 0
			for name, a := range after.Allocations {
				if a.Host == host {
					left++
					if !preempted[name] && !contains(plan.StuckNames(), name) {
						t.Errorf("%s is still on %s but the plan moved it", name, host)
					}
				}
			}
			wantState := api.DrainComplete
			if left > 0 {
				wantState = api.DrainIncomplete
			}
			if ds.State != wantState || (wantState == api.DrainComplete) != (len(ds.Reporting) == 0 && ds.Remaining == 0) {
				t.Errorf("drain %s with %d left and reporting %v, want %s: %s", ds.State, left, ds.Reporting, wantState, ds.Message)
			}
			if v := Violations(after); len(v) > 0 {
				t.Errorf("violations %v", v)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
