package devcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/fencing"
)

// Truth is what runs where, as the hosts' drivers report it — not what
// Bulwark's own records say.
type Truth struct {
	// Running maps each workload to the hosts whose driver runs it.
	Running map[string][]string
	// Stale lists hosts that did not answer and whose power is on: their
	// last answer stands for them (a frozen host may still run its domains).
	Stale []string
}

// Checker reads the truth from every simulated host and remembers each
// host's last answer, so that a host that stops answering while powered on
// is assumed to still run what it ran: the invariant errs on the side of
// reporting a double run, never of missing one.
type Checker struct {
	c    *Cluster
	hc   *http.Client
	mu   sync.Mutex
	last map[string][]api.Task
}

// NewChecker builds a checker for the cluster.
func (c *Cluster) NewChecker() *Checker {
	return &Checker{c: c, hc: &http.Client{Timeout: 500 * time.Millisecond}, last: map[string][]api.Task{}}
}

// Truth asks every host's agent for its driver's task list.
func (k *Checker) Truth(ctx context.Context) (Truth, error) {
	snap, _, err := clusterstore.ReadSnapshot(ctx, k.c.store)
	if err != nil {
		return Truth{}, err
	}
	t := Truth{Running: map[string][]string{}}
	for _, name := range k.c.HostNames() {
		h, _ := k.c.Host(name)
		var tasks []api.Task
		switch {
		case h.BMC.Power() == fencing.Off:
			// Powered off: nothing runs, whatever it said last.
			tasks = nil
		case h.ctr != nil:
			// Containers outlive their agent: ask containerd itself.
			st, err := h.ctr.List(ctx)
			if err != nil {
				return t, fmt.Errorf("%s containers: %w", name, err)
			}
			for _, s := range st {
				tasks = append(tasks, api.Task{Workload: s.Workload, Epoch: s.Epoch, State: string(s.State)})
			}
		case h.vms != nil:
			// So do guests: ask libvirtd itself.
			st, err := h.vms.List(ctx)
			if err != nil {
				return t, fmt.Errorf("%s guests: %w", name, err)
			}
			for _, s := range st {
				tasks = append(tasks, api.Task{Workload: s.Workload, Epoch: s.Epoch, State: string(s.State)})
			}
		default:
			n, ok := snap.Nodes[name]
			fresh, err := k.ask(ctx, name, n.Value.AgentURL)
			k.mu.Lock()
			if ok && err == nil {
				k.last[name] = fresh
				tasks = fresh
			} else {
				tasks = k.last[name]
				if len(tasks) > 0 {
					t.Stale = append(t.Stale, name)
				}
			}
			k.mu.Unlock()
		}
		if h.BMC.Power() == fencing.Off {
			k.mu.Lock()
			delete(k.last, name)
			k.mu.Unlock()
		}
		for _, tk := range tasks {
			if tk.State == "running" {
				t.Running[tk.Workload] = append(t.Running[tk.Workload], name)
			}
		}
	}
	for _, hosts := range t.Running {
		sort.Strings(hosts)
	}
	return t, nil
}

func (k *Checker) ask(ctx context.Context, host, url string) ([]api.Task, error) {
	if url == "" {
		return nil, fmt.Errorf("no agent URL")
	}
	token, err := clusterstore.AgentToken(ctx, k.c.store, host)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/tasks", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := k.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent answered %d", resp.StatusCode)
	}
	var tasks []api.Task
	return tasks, json.NewDecoder(resp.Body).Decode(&tasks)
}

// DoubleRuns lists the workloads that run on more than one host.
func (t Truth) DoubleRuns() []string {
	var out []string
	for w, hosts := range t.Running {
		if len(hosts) > 1 {
			out = append(out, fmt.Sprintf("%s on %v", w, hosts))
		}
	}
	sort.Strings(out)
	return out
}
