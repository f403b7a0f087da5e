package sim

import (
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/scheduler"
)

// placements maps every placed workload to its host.
func placements(st *scheduler.State) map[string]string {
	m := make(map[string]string, len(st.Allocations))
	for name, a := range st.Allocations {
		m[name] = a.Host
	}
	return m
}

// predicted is what the cluster's placements will be after the failure, if
// the what-if answer is right: every allocation off the failed hosts and
// not preempted stays, and each restart is placed where it said.
func predicted(st *scheduler.State, r scheduler.WhatIfResult) map[string]string {
	down := map[string]bool{}
	for _, h := range r.Failed {
		down[h] = true
	}
	m := map[string]string{}
	for name, a := range st.Allocations {
		if !down[a.Host] {
			m[name] = a.Host
		}
	}
	for _, p := range r.Preemptions {
		delete(m, p.Workload)
	}
	for _, mv := range r.Restarts {
		m[mv.Workload] = mv.To
	}
	return m
}

// checkWhatIf predicts the failure of host from the simulation's live state,
// then fails it for real (lease lost, fenced through its device, workloads
// recovered by the leader) and compares.
func checkWhatIf(t *testing.T, s *Sim, host string) scheduler.WhatIfResult {
	t.Helper()
	st, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	r, err := scheduler.WhatIf(st, []string{host}, s.sched, s.now, scheduler.WhatIfOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Exec("host down " + host); err != nil {
		t.Fatal(err)
	}
	after, err := s.State()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := placements(after), predicted(st, r); !reflect.DeepEqual(got, want) {
		t.Errorf("host down %s: placements differ from the what-if answer\n got %v\nwant %v\nanswer %+v\nlog:\n%s", host, got, want, r, s.out.String())
	}
	for _, u := range r.Unplaced {
		if _, placed := after.Allocations[u.Workload]; placed {
			t.Errorf("host down %s: %s predicted unplaced (%s) but placed", host, u.Workload, u.Reason)
		}
	}
	return r
}

// TestWhatIfMatchesFailover: hosts with fence devices, workloads of several
// priorities, one tight host. The answer for h1 must be exactly what the
// leader then does when h1 dies.
func TestWhatIfMatchesFailover(t *testing.T) {
	s, err := New(scheduler.New(scheduler.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	script := `
host add h1 cpus=8 mem=16GiB ttl=4s self=2s
fencedev add h1 h1-bmc
vm db cpus=2 mem=2GiB prio=500
vm api cpus=2 mem=2GiB prio=100
vm web cpus=2 mem=1GiB prio=100
vm batch cpus=1 mem=1GiB prio=10
vm tiny cpus=1 mem=512MiB
host add h2 cpus=4 mem=8GiB
fencedev add h2 h2-bmc
vm cache cpus=2 mem=2GiB prio=50
host add h3 cpus=2 mem=2GiB
fencedev add h3 h3-bmc
vm side cpus=1 mem=1GiB prio=5
check
`
	if out, err := s.Run(script); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	st, _ := s.State()
	if got := placements(st); got["db"] != "h1" || got["tiny"] != "h1" || got["cache"] != "h2" || got["side"] != "h2" {
		t.Fatalf("setup placed %v", got)
	}
	r := checkWhatIf(t, s, "h1")
	// Binpack put side on h2, leaving it 1 CPU; tight h3 has 2 CPUs and
	// 2GiB. db (priority 500) takes h3, batch the last CPU of h2; api
	// and web (priority 100) and tiny find no room.
	var order []string
	for _, m := range r.Restarts {
		order = append(order, fmt.Sprintf("%d %s %s->%s", m.Order, m.Workload, m.From, m.To))
	}
	want := []string{"1 db h1->h3", "2 batch h1->h2"}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("restarts %v, want %v", order, want)
	}
	var lost []string
	for _, u := range r.Unplaced {
		lost = append(lost, u.Workload)
		if u.Reason == "" || u.From != "h1" {
			t.Errorf("unplaced %+v", u)
		}
	}
	if !reflect.DeepEqual(lost, []string{"api", "web", "tiny"}) {
		t.Errorf("unplaced %v", lost)
	}
	if r.Safe() || r.ExpectedRecovery.Seconds() != 6 {
		t.Errorf("safe %v, expected recovery %v", r.Safe(), r.ExpectedRecovery)
	}
	if v := Violations(st); len(v) > 0 {
		t.Errorf("violations %v", v)
	}
}

// TestWhatIfMatchesFailoverRandom: seeded random clusters, some with
// preemption or admission control; every host that runs something is
// predicted and then failed, one after another. (Across the seeds this
// covers restarts, unplaced workloads, preemptions, and a pending workload
// that admission control lets in once the host is gone.)
func TestWhatIfMatchesFailoverRandom(t *testing.T) {
	for seed := int64(1); seed <= 25; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewSource(seed))
			s, err := New(scheduler.New(scheduler.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			hosts := 3 + rng.Intn(5)
			var lines []string
			for i := 0; i < hosts; i++ {
				lines = append(lines, fmt.Sprintf("host add h%d cpus=%d mem=%dGiB rack=r%d", i, 2+rng.Intn(8), 2+rng.Intn(8), rng.Intn(3)),
					fmt.Sprintf("fencedev add h%d h%d-bmc", i, i))
			}
			switch rng.Intn(3) {
			case 0:
				lines = append(lines, "settings preemption=true")
			case 1:
				lines = append(lines, "settings strategy=spread tolerate=1")
			}
			for i := 0; i < 25; i++ {
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
			for round := 0; round < 2; round++ {
				st, _ := s.State()
				var busy []string
				for _, a := range st.Allocations {
					busy = append(busy, a.Host)
				}
				if len(busy) == 0 {
					return
				}
				sort.Strings(busy)
				checkWhatIf(t, s, busy[rng.Intn(len(busy))])
			}
		})
	}
}
