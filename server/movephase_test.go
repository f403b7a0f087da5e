package server

import (
	"testing"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// TestMoveWaitsForHealth: a moved workload with a health check counts as
// moved (for drains and rebalances) only once the check passes.
func TestMoveWaitsForHealth(t *testing.T) {
	snap := &clusterstore.Snapshot{
		Workloads:   map[string]clusterstore.Versioned[api.Workload]{"w": {Value: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "w"}}}},
		Allocations: map[string]clusterstore.Versioned[api.Allocation]{"w": {Value: api.Allocation{Workload: "w", Host: "b", Epoch: 9}}},
	}
	for _, c := range []struct {
		health string
		moved  bool
	}{{"", true}, {api.HealthHealthy, true}, {api.HealthUnknown, true}, {api.HealthStarting, false}, {api.HealthUnhealthy, false}} {
		snap.Statuses = map[string]map[string]clusterstore.Versioned[api.WorkloadStatus]{
			"b": {"w": {Value: api.WorkloadStatus{Workload: "w", Host: "b", Epoch: 9, State: api.StateRunning, Health: c.health}}}}
		p := movePhase(snap, "a", api.DrainMove{Workload: "w", Epoch: 3})
		if got := p.settled && p.phase == api.DrainMoved; got != c.moved {
			t.Errorf("health %q: phase %s settled %v, want moved=%v", c.health, p.phase, p.settled, c.moved)
		}
	}
}
