package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// TestRebalanceThroughCLI: a host back from maintenance is empty while the
// others are full; `bulwarkctl rebalance --dry-run` shows moves onto it and
// changes nothing, `bulwarkctl rebalance --yes` carries them out (stop
// there, start here), after which the plan is empty and every workload
// runs exactly once.
func TestRebalanceThroughCLI(t *testing.T) {
	apiURL, _, _ := startDev(t, 3)
	if _, errOut, code := ctl(t, apiURL, "node", "maintenance", "on", "host-3", "--reason", "test"); code != 0 {
		t.Fatal(errOut)
	}
	for i := 1; i <= 6; i++ {
		if _, errOut, code := ctl(t, apiURL, "vm", "create", fmt.Sprintf("vm-%d", i), "--cpus", "2", "--memory", "512MiB"); code != 0 {
			t.Fatal(errOut)
		}
	}
	var ws []api.WorkloadView
	eventually(t, "6 VMs running on host-1 and host-2", 30*time.Second, func() bool {
		ctlJSON(t, apiURL, &ws, "workload", "list")
		n := 0
		for _, w := range ws {
			if w.State == api.StateRunning && w.Host != "host-3" {
				n++
			}
		}
		return n == 6
	})
	if _, errOut, code := ctl(t, apiURL, "node", "maintenance", "off", "host-3"); code != 0 {
		t.Fatal(errOut)
	}
	// Bad input first: nothing is sent.
	if _, errOut, code := ctl(t, apiURL, "settings", "set", "--rebalance-threshold", "0"); code == 0 || !strings.Contains(errOut, "rebalance") {
		t.Errorf("threshold 0: exit %d %s", code, errOut)
	}
	rev := revision(t, apiURL)
	var plan api.RebalancePlan
	ctlJSON(t, apiURL, &plan, "rebalance", "--dry-run")
	if len(plan.Moves) == 0 {
		t.Fatalf("no moves planned onto the empty host: %+v", plan)
	}
	for _, m := range plan.Moves {
		if m.To != "host-3" {
			t.Errorf("move %+v does not go to the empty host", m)
		}
	}
	if r := revision(t, apiURL); r != rev {
		t.Fatalf("--dry-run changed the store: revision %d -> %d", rev, r)
	}
	out, errOut, code := ctl(t, apiURL, "rebalance", "--yes", "--timeout", "90s")
	if code != 0 {
		t.Fatalf("rebalance: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("bulwarkctl rebalance --yes:\n%s", out)
	ctlJSON(t, apiURL, &ws, "workload", "list")
	on := map[string]int{}
	for _, w := range ws {
		if w.State != api.StateRunning {
			t.Errorf("%s is %s after the rebalance", w.Name, w.State)
		}
		on[w.Host]++
	}
	if on["host-3"] != len(plan.Moves) {
		t.Errorf("after the rebalance host-3 runs %d workloads, want the %d moved: %v", on["host-3"], len(plan.Moves), on)
	}
	ctlJSON(t, apiURL, &plan, "rebalance", "--dry-run")
	if len(plan.Moves) != 0 {
		t.Errorf("a second plan still moves: %+v", plan.Moves)
	}
}
