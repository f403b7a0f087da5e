package ui

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// fakeSource is a Source whose cluster the test edits.
type fakeSource struct {
	mu        sync.Mutex
	health    api.Health
	nodes     []api.NodeView
	workloads []api.WorkloadView
	services  []api.ServiceView
	events    []api.Event
	// nodesErr, if set, fails Nodes (the store is unreachable).
	nodesErr error
	// calls counts the calls of each method.
	calls map[string]int
}

func newFake(st State) *fakeSource {
	f := &fakeSource{calls: map[string]int{}}
	f.set(func(s *State) { *s = st })
	return f
}

// set edits the cluster under the lock.
func (f *fakeSource) set(edit func(s *State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := State{Health: f.health, Nodes: f.nodes, Workloads: f.workloads, Services: f.services, Events: f.events}
	edit(&st)
	f.health, f.nodes, f.workloads, f.services, f.events = st.Health, st.Nodes, st.Workloads, st.Services, st.Events
}

func (f *fakeSource) bump(edit func(s *State)) {
	f.set(func(s *State) {
		s.Health.Revision++
		if edit != nil {
			edit(s)
		}
	})
}

func (f *fakeSource) failNodes(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nodesErr = err
}

func (f *fakeSource) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

func (f *fakeSource) Health(ctx context.Context) (api.Health, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Health"]++
	return f.health, ctx.Err()
}

func (f *fakeSource) Nodes(ctx context.Context) ([]api.NodeView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Nodes"]++
	if f.nodesErr != nil {
		return nil, f.nodesErr
	}
	return slices.Clone(f.nodes), ctx.Err()
}

func (f *fakeSource) Workloads(ctx context.Context) ([]api.WorkloadView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Workloads"]++
	return slices.Clone(f.workloads), ctx.Err()
}

func (f *fakeSource) Services(ctx context.Context) ([]api.ServiceView, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Services"]++
	return slices.Clone(f.services), ctx.Err()
}

func (f *fakeSource) Events(ctx context.Context, limit int) ([]api.Event, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["Events"]++
	if limit <= 0 {
		return nil, errors.New("fake: limit must be positive")
	}
	evs := f.events
	if len(evs) > limit {
		evs = evs[len(evs)-limit:]
	}
	return slices.Clone(evs), ctx.Err()
}

// Builders for the fixtures.

func host(name string, cpus, cpusUsed int, mem, memUsed api.ByteSize, workloads int) api.NodeView {
	return api.NodeView{
		Node:    api.Node{Schema: api.SchemaVersion, Name: name, CPUs: cpus, Memory: mem, Driver: "libvirt", Detail: "QEMU 7.2 / libvirt 9.0"},
		State:   api.NodeReady,
		Fencing: "ok", CPUsUsed: cpusUsed, MemoryUsed: memUsed, Workloads: workloads,
	}
}

func labelled(n api.NodeView, kv ...string) api.NodeView {
	n.Labels = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Labels[kv[i]] = kv[i+1]
	}
	return n
}

func workload(name string, kind api.Kind, cpus int, mem api.ByteSize, state api.State, host string, epoch int64, reason string) api.WorkloadView {
	return api.WorkloadView{
		Workload: api.Workload{Schema: api.SchemaVersion, WorkloadSpec: api.WorkloadSpec{Name: name, Kind: kind, CPUs: cpus, Memory: mem}},
		State:    state, Host: host, Epoch: epoch, Reason: reason,
	}
}

// service is a service of replicas copies whose members are the given
// instances; running counts those running and not being deleted, as the
// server does.
func service(name string, replicas int, members ...api.ServiceMember) api.ServiceView {
	v := api.ServiceView{
		Service: api.Service{Schema: api.SchemaVersion, ServiceSpec: api.ServiceSpec{Name: name, Replicas: replicas, AntiAffinity: api.AntiAffinityAuto}},
		Members: []string{},
	}
	for _, m := range members {
		v.Members = append(v.Members, m.Name)
		if m.State == api.StateRunning && !m.Deleting {
			v.Running++
		}
	}
	v.Instances = members
	return v
}

// balanced gives a service a load-balanced VIP held by holder ("" for
// none), with the members in pool taking its connections.
func balanced(v api.ServiceView, vip, holder string, ports []api.ServicePort, pool ...string) api.ServiceView {
	v.VIP, v.Ports, v.VIPHolder = vip, ports, holder
	v.Pool = &api.Pool{Ports: ports, Backends: []api.Backend{}}
	for _, name := range pool {
		for i := range v.Instances {
			if v.Instances[i].Name == name {
				v.Instances[i].InPool = true
				if v.Anchor == "" {
					v.Anchor = name
				}
				v.Pool.Backends = append(v.Pool.Backends, api.Backend{Workload: name, Host: v.Instances[i].Host})
			}
		}
	}
	return v
}

func member(name string, state api.State, host, health string) api.ServiceMember {
	return api.ServiceMember{Name: name, State: state, Host: host, Health: health}
}

func tcp(port, target int) api.ServicePort {
	return api.ServicePort{Port: port, TargetPort: target, Proto: "tcp"}
}

var t0 = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

func event(after time.Duration, typ, host, workload, msg string) api.Event {
	return api.Event{Schema: api.SchemaVersion, Time: t0.Add(after), Type: typ, Host: host, Workload: workload, Message: msg}
}

// smallCluster is the fixture of the logic tests.
func smallCluster() State {
	return State{
		Health: api.Health{Status: "ok", Server: "s1", Leader: "s1", IsLeader: true, Revision: 1},
		Nodes:  []api.NodeView{host("host-1", 8, 2, 16*api.GiB, 2*api.GiB, 1)},
		Workloads: []api.WorkloadView{
			workload("web", api.KindVM, 2, 2*api.GiB, api.StateRunning, "host-1", 7, ""),
		},
		Events: []api.Event{event(0, "placed", "host-1", "web", "placed on host-1 (score 80)")},
	}
}

// realisticCluster is what the screenshot in docs/dashboard.png shows: three
// hosts in two racks, VMs and containers, one workload that does not fit,
// and two services, one of them behind a load-balanced VIP.
func realisticCluster() State {
	h1 := labelled(host("host-1", 16, 11, 64*api.GiB, 37*api.GiB, 4), "rack", "r1")
	h2 := labelled(host("host-2", 16, 7, 64*api.GiB, 14*api.GiB, 3), "rack", "r2")
	h3 := labelled(host("host-3", 8, 5, 32*api.GiB, 17*api.GiB, 2), "rack", "r1", "disk", "ssd")
	h3.Fencing = "none"
	return State{
		Health: api.Health{Status: "ok", Server: "bulwark-1", Leader: "bulwark-1", IsLeader: true, Revision: 18342},
		Nodes:  []api.NodeView{h1, h2, h3},
		Workloads: []api.WorkloadView{
			workload("analytics", api.KindVM, 24, 96*api.GiB, api.StatePending, "", 0, "larger than every host: needs 24 cpus and 96GiB memory (at most 16 cpus and 64GiB allocatable)"),
			workload("cache", api.KindContainer, 1, 2*api.GiB, api.StateRunning, "host-2", 18210, ""),
			workload("db-primary", api.KindVM, 4, 16*api.GiB, api.StateRunning, "host-1", 17950, ""),
			workload("db-replica", api.KindVM, 4, 16*api.GiB, api.StateRunning, "host-3", 17952, ""),
			workload("ingest", api.KindContainer, 2, 4*api.GiB, api.StateStarting, "host-2", 18339, "waiting for host host-2 to start it"),
			workload("metrics", api.KindContainer, 2, 4*api.GiB, api.StateRunning, "host-1", 18011, ""),
			workload("web-1", api.KindVM, 4, 8*api.GiB, api.StateRunning, "host-2", 18102, ""),
			workload("web-2", api.KindVM, 4, 16*api.GiB, api.StateRunning, "host-1", 18104, ""),
			workload("worker-1", api.KindContainer, 1, api.GiB, api.StateRunning, "host-3", 18290, ""),
			workload("worker-2", api.KindContainer, 1, api.GiB, api.StateRunning, "host-1", 18291, ""),
		},
		Services: []api.ServiceView{
			service("worker", 2,
				member("worker-1", api.StateRunning, "host-3", api.HealthHealthy),
				member("worker-2", api.StateRunning, "host-1", api.HealthStarting)),
			balanced(service("web", 2,
				member("web-1", api.StateRunning, "host-2", api.HealthHealthy),
				member("web-2", api.StateRunning, "host-1", api.HealthHealthy)),
				"10.0.0.100", "host-2", []api.ServicePort{tcp(80, 8080), tcp(443, 8443)}, "web-1", "web-2"),
		},
		Events: []api.Event{
			event(0, "host-ready", "host-3", "", "host-3 is ready again (heartbeat back)"),
			event(4*time.Second, "placed", "host-3", "db-replica", "placed on host-3 (score 71)"),
			event(95*time.Second, "placed", "host-2", "web-1", "placed on host-2 (score 84)"),
			event(97*time.Second, "placed", "host-1", "web-2", "placed on host-1 (score 66)"),
			event(312*time.Second, "placed", "host-2", "cache", "placed on host-2 (score 90)"),
			event(740*time.Second, "fenceable", "host-1", "", "fence devices answer again"),
			event(1203*time.Second, "placed", "host-2", "ingest", "placed on host-2 (score 78)"),
		},
	}
}
