package sim

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/scheduler"
)

var update = flag.Bool("update", false, "rewrite the golden logs in testdata/")

// TestScenarios replays every testdata/*.script and compares the log with
// the .golden file beside it (regenerate with: go test ./scheduler/sim -update).
func TestScenarios(t *testing.T) {
	scripts, err := filepath.Glob("testdata/*.script")
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, path := range scripts {
		name := strings.TrimSuffix(filepath.Base(path), ".script")
		t.Run(name, func(t *testing.T) {
			script, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s, err := New(scheduler.New(scheduler.Options{}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.Run(string(script))
			if err != nil {
				t.Fatalf("%v\nlog so far:\n%s", err, got)
			}
			if strings.Contains(got, "VIOLATION") {
				t.Errorf("invariant violated:\n%s", got)
			}
			golden := strings.TrimSuffix(path, ".script") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("log differs from %s (run with -update after reviewing):\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestRandomScriptsKeepInvariants replays seeded random scenarios through
// the real leader code and checks the invariants after every step.
func TestRandomScriptsKeepInvariants(t *testing.T) {
	for seed := int64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewSource(seed))
		s, err := New(scheduler.New(scheduler.Options{}))
		if err != nil {
			t.Fatal(err)
		}
		hosts := 2 + rng.Intn(6)
		var lines []string
		for i := 0; i < hosts; i++ {
			lines = append(lines, fmt.Sprintf("host add h%d cpus=%d mem=%dGiB rack=r%d", i, 2+rng.Intn(8), 2+rng.Intn(8), rng.Intn(3)))
		}
		if rng.Intn(2) == 0 {
			lines = append(lines, "settings preemption=true")
		}
		if rng.Intn(3) == 0 {
			lines = append(lines, "settings strategy=spread tolerate=1")
		}
		for i := 0; i < 40; i++ {
			switch r := rng.Intn(10); {
			case r < 6:
				l := fmt.Sprintf("vm w%d cpus=%d mem=%dMiB prio=%d", i, 1+rng.Intn(3), 256*(1+rng.Intn(8)), rng.Intn(4)*100)
				if rng.Intn(3) == 0 {
					l += fmt.Sprintf(" anti=g%d", rng.Intn(2))
				}
				if rng.Intn(4) == 0 {
					l += fmt.Sprintf(" require=rack!=r%d", rng.Intn(3))
				}
				lines = append(lines, l)
			case r < 8 && i > 0:
				lines = append(lines, fmt.Sprintf("host down h%d", rng.Intn(hosts)))
				lines = append(lines, fmt.Sprintf("host up h%d", rng.Intn(hosts)))
			default:
				lines = append(lines, fmt.Sprintf("host label h%d rack=r%d", rng.Intn(hosts), rng.Intn(3)))
			}
		}
		for _, l := range lines {
			if err := s.Exec(l); err != nil {
				// Creating a workload twice or similar is fine to skip.
				continue
			}
			st, err := s.State()
			if err != nil {
				t.Fatal(err)
			}
			// Label changes may strand placed workloads on hosts that no
			// longer match; the scheduler never moves running workloads, so
			// only check capacity and anti-affinity there.
			for _, v := range Violations(st) {
				if !strings.Contains(v, " breaks ") {
					t.Fatalf("seed %d after %q: %s", seed, l, v)
				}
			}
		}
		s.Close()
	}
}
