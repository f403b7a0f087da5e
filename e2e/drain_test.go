package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// fetchTasks is agentTasks for a goroutine: it returns the error instead
// of failing the test.
func fetchTasks(apiURL, host string) ([]api.Task, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(apiURL + "/v1/nodes/" + host + "/tasks")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("tasks of %s: HTTP %d", host, resp.StatusCode)
	}
	var tasks []api.Task
	err = json.NewDecoder(resp.Body).Decode(&tasks)
	return tasks, err
}

// twiceWatch asks every host's agent, over and over until stopped, what
// its driver really runs, and records every moment a workload runs on two
// hosts at once.
type twiceWatch struct {
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	twice  []string
	rounds int
	errs   int
}

func watchTwice(apiURL string, hosts []string) *twiceWatch {
	w := &twiceWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			default:
			}
			where := map[string][]string{}
			ok := true
			for _, h := range hosts {
				tasks, err := fetchTasks(apiURL, h)
				if err != nil {
					ok = false
					break
				}
				for _, tk := range tasks {
					if tk.State == "running" {
						where[tk.Workload] = append(where[tk.Workload], fmt.Sprintf("%s@%d", h, tk.Epoch))
					}
				}
			}
			w.mu.Lock()
			if ok {
				w.rounds++
			} else {
				w.errs++
			}
			for name, on := range where {
				if len(on) > 1 {
					w.twice = append(w.twice, fmt.Sprintf("%s on %v", name, on))
				}
			}
			w.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return w
}

func (w *twiceWatch) end(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("checked every host's task list %d times during the drain (%d failed reads)", w.rounds, w.errs)
	if len(w.twice) > 0 {
		t.Errorf("a workload ran on two hosts at once: %v", w.twice)
	}
	if w.rounds == 0 {
		t.Error("the task lists were never read")
	}
}

func placedOn(t *testing.T, apiURL string) map[string]string {
	t.Helper()
	var wls []api.WorkloadView
	ctlJSON(t, apiURL, &wls, "workload", "list")
	m := map[string]string{}
	for _, w := range wls {
		m[w.Name] = w.Host
	}
	return m
}

func allRunning(t *testing.T, apiURL string) bool {
	t.Helper()
	var wls []api.WorkloadView
	ctlJSON(t, apiURL, &wls, "workload", "list")
	for _, w := range wls {
		if w.State != api.StateRunning {
			return false
		}
	}
	return true
}

func runningOn(t *testing.T, apiURL, host string) []string {
	t.Helper()
	var names []string
	for _, tk := range agentTasks(t, apiURL, host) {
		if tk.State == "running" {
			names = append(names, tk.Workload)
		}
	}
	sort.Strings(names)
	return names
}

func mustCtl(t *testing.T, apiURL string, args ...string) string {
	t.Helper()
	out, errOut, code := ctl(t, apiURL, args...)
	if code != 0 {
		t.Fatalf("bulwarkctl %v: exit %d\n%s%s", args, code, out, errOut)
	}
	return out
}

// TestDrainDevCluster: a dev cluster of 3 hosts (host-2 alone in rack r2);
// the busiest host runs an anti-affinity member, three web VMs and one VM
// that may run only in rack r2. `node drain --yes` shows the plan, moves
// the four that can move in batches of 2 while every host's task list is
// watched (no workload ever runs on two hosts), reports the one it could
// not move, and fails; the host then runs only that one. Once it is gone a
// second drain empties the host and succeeds; undrain lets workloads back.
func TestDrainDevCluster(t *testing.T) {
	apiURL, _, _ := startDev(t, 3)
	mustCtl(t, apiURL, "vm", "create", "r2-only", "--require", "rack=r2")
	for _, n := range []string{"db-1", "db-2"} {
		mustCtl(t, apiURL, "vm", "create", n, "--anti-affinity", "db", "--prefer", "rack=r2:100", "--priority", "500", "--cpus", "2", "--memory", "1GiB")
	}
	for _, n := range []string{"web-1", "web-2", "web-3"} {
		mustCtl(t, apiURL, "vm", "create", n, "--prefer", "rack=r2:100", "--memory", "512MiB")
	}
	eventually(t, "every VM running", 20*time.Second, func() bool { return allRunning(t, apiURL) })

	var nodes []api.NodeView
	ctlJSON(t, apiURL, &nodes, "node", "list")
	busiest := nodes[0]
	for _, n := range nodes {
		if n.Workloads > busiest.Workloads {
			busiest = n
		}
	}
	host := busiest.Name
	before := placedOn(t, apiURL)
	if host != "host-2" || before["r2-only"] != host || before["db-1"] != host || busiest.Workloads != 5 {
		t.Fatalf("setup: busiest %s (%d workloads), placements %v", host, busiest.Workloads, before)
	}
	dbOther := before["db-2"]

	watch := watchTwice(apiURL, []string{"host-1", "host-2", "host-3"})
	began := time.Now()
	out, errOut, code := ctl(t, apiURL, "node", "drain", host, "--yes", "--batch", "2", "--timeout", "2m")
	took := time.Since(began)
	watch.end(t)
	t.Logf("node drain %s took %s, exit %d\nstdout:\n%s\nstderr:\n%s", host, took.Round(time.Millisecond), code, out, errOut)
	if code == 0 {
		t.Errorf("drain exit 0 with a workload left on %s", host)
	}
	plan := out[:strings.Index(out, "Drain of ")]
	for _, want := range []string{
		"Drain plan for host-2 (batches of 2): 4 workloads move in 2 batches, 1 stays",
		"BATCH   WORKLOAD   PRIORITY   TO",
		"STAYS ON host-2",
		"r2-only",
		"no host fits: label rack=r2 (2 hosts), maintenance (1 host)",
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	// db-1 moves first (priority 500), and not to db-2's host.
	if !strings.Contains(plan, "1       db-1       500        ") || strings.Contains(plan, "db-1       500        "+dbOther) {
		t.Errorf("plan for db-1 (db-2 is on %s):\n%s", dbOther, plan)
	}
	for _, want := range []string{"host-2 is now in maintenance", "drain of host-2 started: 4 workloads to move, batches of 2",
		"batch 1  db-1", "batch 2  web-", "moved: running on host-"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("progress lacks %q", want)
		}
	}
	for _, want := range []string{"Drain of host-2: INCOMPLETE after", "MOVED   BATCH   TO", "COULD NOT MOVE", "r2-only",
		"host-2 stays in maintenance with 1 workload on it; undo with: bulwarkctl node undrain host-2"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if !strings.Contains(errOut, "error: the drain of host-2 ended incomplete") {
		t.Errorf("error line missing")
	}

	after := placedOn(t, apiURL)
	for name, was := range before {
		now := after[name]
		switch {
		case name == "r2-only" && now != host:
			t.Errorf("r2-only moved to %q: it fits nowhere else and must stay", now)
		case name != "r2-only" && was == host && (now == host || now == ""):
			t.Errorf("%s still on %q", name, now)
		case was != host && now != was:
			t.Errorf("%s moved from %s to %s though it was not on the drained host", name, was, now)
		}
	}
	if after["db-1"] == after["db-2"] {
		t.Errorf("db-1 and db-2 (anti-affinity) both on %s", after["db-1"])
	}
	eventually(t, "everything running after the drain", 10*time.Second, func() bool { return allRunning(t, apiURL) })
	if got := runningOn(t, apiURL, host); strings.Join(got, ",") != "r2-only" {
		t.Errorf("%s runs %v, want only r2-only", host, got)
	}
	var n api.NodeView
	ctlJSON(t, apiURL, &n, "node", "show", host)
	if n.Maintenance == nil || n.Maintenance.Drain == nil || n.Maintenance.Drain.State != api.DrainIncomplete || len(n.Maintenance.Drain.Moves) != 4 {
		t.Errorf("node show: %+v", n.Maintenance)
	}
	if list, _, _ := ctl(t, apiURL, "node", "list"); !strings.Contains(list, "host-2   ready,maintenance") {
		t.Errorf("node list:\n%s", list)
	}
	var evs []api.Event
	ctlJSON(t, apiURL, &evs, "events", "--host", host)
	types := map[string]int{}
	for _, e := range evs {
		types[e.Type]++
	}
	if types["maintenance-on"] != 1 || types["drain-started"] != 1 || types["moving"] != 4 || types["moved"] != 4 || types["drain-incomplete"] != 1 {
		t.Errorf("events %v", types)
	}

	// A second drain while none runs, once r2-only is gone: complete.
	mustCtl(t, apiURL, "workload", "delete", "r2-only", "--wait")
	out, errOut, code = ctl(t, apiURL, "node", "drain", host, "--yes")
	if code != 0 || !strings.Contains(out, "Drain of host-2: COMPLETE") || !strings.Contains(out, "host-2 runs nothing now and stays in maintenance") {
		t.Errorf("second drain: exit %d\n%s%s", code, out, errOut)
	}
	if got := agentTasks(t, apiURL, host); len(got) != 0 {
		t.Errorf("%s still runs %v after a complete drain", host, got)
	}
	if list, _, _ := ctl(t, apiURL, "node", "list"); !strings.Contains(list, "host-2   ready,drained") {
		t.Errorf("node list:\n%s", list)
	}

	// Undrain: r2 workloads may go there again.
	if out := mustCtl(t, apiURL, "node", "undrain", host); !strings.Contains(out, "host-2 is out of maintenance") {
		t.Errorf("undrain: %s", out)
	}
	mustCtl(t, apiURL, "vm", "create", "r2-again", "--require", "rack=r2")
	eventually(t, "r2-again running on host-2", 10*time.Second, func() bool {
		var w api.WorkloadView
		ctlJSON(t, apiURL, &w, "workload", "show", "r2-again")
		return w.State == api.StateRunning && w.Host == host
	})
	if out := mustCtl(t, apiURL, "workload", "reset", "web-1"); !strings.Contains(out, "web-1: nothing to clear") {
		t.Errorf("workload reset: %s", out)
	}
}

// TestMaintenanceDevCluster: a host in maintenance takes no new VM, even
// one that prefers it, and explain says why; what runs there stays;
// maintenance off lets it take work again. Each step is an event.
func TestMaintenanceDevCluster(t *testing.T) {
	apiURL, _, _ := startDev(t, 3)
	mustCtl(t, apiURL, "vm", "create", "old", "--require", "rack=r2")
	eventually(t, "old running", 20*time.Second, func() bool { return allRunning(t, apiURL) })
	out := mustCtl(t, apiURL, "node", "maintenance", "on", "host-2", "--reason", "replace DIMM B2")
	if !strings.Contains(out, "host-2 is in maintenance: nothing new is placed there") {
		t.Errorf("maintenance on: %s", out)
	}
	for i := 1; i <= 4; i++ {
		mustCtl(t, apiURL, "vm", "create", fmt.Sprintf("new-%d", i), "--prefer", "rack=r2:100")
	}
	mustCtl(t, apiURL, "vm", "create", "r2-new", "--require", "rack=r2")
	eventually(t, "the new VMs placed", 20*time.Second, func() bool {
		p := placedOn(t, apiURL)
		for i := 1; i <= 4; i++ {
			if p[fmt.Sprintf("new-%d", i)] == "" {
				return false
			}
		}
		return true
	})
	p := placedOn(t, apiURL)
	for name, h := range p {
		if h == "host-2" && name != "old" {
			t.Errorf("%s was placed on host-2, which is in maintenance", name)
		}
	}
	if p["old"] != "host-2" {
		t.Errorf("old moved to %q: maintenance moves nothing", p["old"])
	}
	var w api.WorkloadView
	ctlJSON(t, apiURL, &w, "workload", "show", "r2-new")
	if w.State != api.StatePending || !strings.Contains(w.Reason, "maintenance (1 host)") {
		t.Errorf("r2-new: %s %q", w.State, w.Reason)
	}
	ex, _, _ := ctl(t, apiURL, "explain", "new-1")
	if !strings.Contains(ex, "host-2   rejected") || !strings.Contains(ex, "host is in maintenance") {
		t.Errorf("explain new-1:\n%s", ex)
	}
	if got := runningOn(t, apiURL, "host-2"); strings.Join(got, ",") != "old" {
		t.Errorf("host-2 runs %v", got)
	}
	y, _, code := ctl(t, apiURL, "node", "show", "host-2", "-o", "yaml")
	if code != 0 || !strings.Contains(y, "maintenance:\n") || !strings.Contains(y, "reason: replace DIMM B2\n") {
		t.Errorf("node show -o yaml:\n%s", y)
	}
	if list, _, _ := ctl(t, apiURL, "node", "list"); !strings.Contains(list, "host-2   ready,maintenance") {
		t.Errorf("node list:\n%s", list)
	}

	mustCtl(t, apiURL, "node", "maintenance", "off", "host-2")
	eventually(t, "r2-new placed on host-2 after maintenance off", 10*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "r2-new")
		return w.State == api.StateRunning && w.Host == "host-2"
	})
	var evs []api.Event
	ctlJSON(t, apiURL, &evs, "events", "--host", "host-2")
	var got []string
	for _, e := range evs {
		if strings.HasPrefix(e.Type, "maintenance-") {
			got = append(got, e.Type+": "+e.Message)
		}
	}
	if len(got) != 2 || !strings.Contains(got[0], "maintenance-on: in maintenance: nothing new is placed here (replace DIMM B2); by ") || !strings.HasPrefix(got[1], "maintenance-off") {
		t.Errorf("events %v", got)
	}
}
