package scheduler

import (
	"fmt"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Builders in the manner of kube-scheduler's testing/wrappers.go.

type NodeWrapper struct{ n NodeInfo }

// MakeNode starts a ready host with 8 CPUs and 16GiB.
func MakeNode(name string) *NodeWrapper {
	return &NodeWrapper{n: NodeInfo{Node: api.Node{Name: name, CPUs: 8, Memory: 16 * api.GiB}, Ready: true}}
}

func (b *NodeWrapper) CPUs(n int) *NodeWrapper { b.n.Node.CPUs = n; return b }
func (b *NodeWrapper) Mem(s string) *NodeWrapper {
	b.n.Node.Memory = size(s)
	return b
}
func (b *NodeWrapper) Label(k, v string) *NodeWrapper {
	if b.n.Node.Labels == nil {
		b.n.Node.Labels = map[string]string{}
	}
	b.n.Node.Labels[k] = v
	return b
}
func (b *NodeWrapper) NotReady() *NodeWrapper { b.n.Ready = false; return b }
func (b *NodeWrapper) Maintenance() *NodeWrapper {
	b.n.Maintenance = true
	return b
}
func (b *NodeWrapper) Obj() NodeInfo { return b.n }

type WorkloadWrapper struct{ w api.Workload }

// MakeWorkload starts a VM with 1 CPU and 1GiB, priority 0.
func MakeWorkload(name string) *WorkloadWrapper {
	return &WorkloadWrapper{w: api.Workload{Schema: api.SchemaVersion, WorkloadSpec: api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: 1, Memory: api.GiB}}}
}

func (b *WorkloadWrapper) CPUs(n int) *WorkloadWrapper     { b.w.CPUs = n; return b }
func (b *WorkloadWrapper) Mem(s string) *WorkloadWrapper   { b.w.Memory = size(s); return b }
func (b *WorkloadWrapper) Priority(p int) *WorkloadWrapper { b.w.Priority = p; return b }
func (b *WorkloadWrapper) Require(r ...string) *WorkloadWrapper {
	b.w.Require = append(b.w.Require, r...)
	return b
}
func (b *WorkloadWrapper) Prefer(p ...string) *WorkloadWrapper {
	b.w.Prefer = append(b.w.Prefer, p...)
	return b
}
func (b *WorkloadWrapper) AntiAffinity(g string) *WorkloadWrapper { b.w.AntiAffinity = g; return b }
func (b *WorkloadWrapper) SpreadBy(k string) *WorkloadWrapper     { b.w.SpreadBy = k; return b }
func (b *WorkloadWrapper) Created(s int) *WorkloadWrapper {
	b.w.CreatedAt = time.Unix(1700000000+int64(s), 0).UTC()
	return b
}
func (b *WorkloadWrapper) Obj() api.Workload { return b.w }

func size(s string) api.ByteSize {
	v, err := api.ParseByteSize(s)
	if err != nil {
		panic(err)
	}
	return v
}

// ClusterWrapper builds a State: hosts, workloads running on them, and
// pending workloads.
type ClusterWrapper struct {
	st      State
	pending []api.Workload
}

func MakeCluster(nodes ...*NodeWrapper) *ClusterWrapper {
	c := &ClusterWrapper{st: State{Revision: 1, Allocations: map[string]api.Allocation{}, Workloads: map[string]api.Workload{}, Settings: api.DefaultSettings()}}
	for _, n := range nodes {
		c.st.Nodes = append(c.st.Nodes, n.Obj())
	}
	return c
}

// Run places w on host.
func (c *ClusterWrapper) Run(host string, ws ...*WorkloadWrapper) *ClusterWrapper {
	for _, b := range ws {
		w := b.Obj()
		c.st.Workloads[w.Name] = w
		c.st.Allocations[w.Name] = api.Allocation{Schema: api.SchemaVersion, Workload: w.Name, Host: host, CPUs: w.CPUs, Memory: w.Memory}
	}
	return c
}

// Pending adds workloads waiting to be placed.
func (c *ClusterWrapper) Pending(ws ...*WorkloadWrapper) *ClusterWrapper {
	for _, b := range ws {
		w := b.Obj()
		c.st.Workloads[w.Name] = w
		c.pending = append(c.pending, w)
	}
	return c
}

func (c *ClusterWrapper) Settings(f func(*api.Settings)) *ClusterWrapper {
	f(&c.st.Settings)
	return c
}

func (c *ClusterWrapper) Displaced(names ...string) *ClusterWrapper {
	if c.st.Displaced == nil {
		c.st.Displaced = map[string]bool{}
	}
	for _, n := range names {
		c.st.Displaced[n] = true
	}
	return c
}

func (c *ClusterWrapper) State() *State { return &c.st }

// Schedule runs the default engine on the cluster's pending workloads.
func (c *ClusterWrapper) Schedule() Plan {
	return New(Options{}).Schedule(&c.st, c.pending, time.Time{})
}

// where maps workload to host for a plan's placements.
func where(p Plan) map[string]string {
	m := map[string]string{}
	for _, pl := range p.Placements {
		m[pl.Workload] = pl.Host
	}
	return m
}

func reasons(p Plan) map[string]string {
	m := map[string]string{}
	for _, u := range p.Unplaced {
		m[u.Workload] = u.Reason
	}
	return m
}

func hosts(prefix string, n int, f func(i int, b *NodeWrapper)) []*NodeWrapper {
	var out []*NodeWrapper
	for i := range n {
		b := MakeNode(fmt.Sprintf("%s%d", prefix, i+1))
		if f != nil {
			f(i, b)
		}
		out = append(out, b)
	}
	return out
}
