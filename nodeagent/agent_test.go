package nodeagent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
)

// The agent against the real libvirt test driver and the in-memory store:
// allocations in, domains and status reports out.

func newDriver(t *testing.T, host string) *libvirt.Driver {
	t.Helper()
	xml := filepath.Join(t.TempDir(), "host.xml")
	if err := libvirt.WriteTestHostXML(xml, 4, 8*api.GiB); err != nil {
		t.Fatal(err)
	}
	d, err := libvirt.New(libvirt.Config{URI: "test://" + xml, Host: host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func runAgent(t *testing.T, st clusterstore.Store, d drivers.Driver, host string) (*Agent, context.CancelFunc) {
	t.Helper()
	return runAgentWith(t, Config{Host: host, Labels: map[string]string{"rack": "r1"}, Store: st, Driver: d, SessionTTL: 2 * time.Second, Resync: 100 * time.Millisecond})
}

// runAgentWith runs an agent (logging nowhere unless cfg says) until the
// test ends or cancel is called.
func runAgentWith(t *testing.T, cfg Config) (*Agent, context.CancelFunc) {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a, cancel
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func put(t *testing.T, st clusterstore.Store, key string, v any) int64 {
	t.Helper()
	_, rev, err := st.Txn(context.Background(), nil, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(v))})
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

func status(t *testing.T, st clusterstore.Store, host, name string) (api.WorkloadStatus, bool) {
	t.Helper()
	kv, ok, _, err := st.Get(context.Background(), clusterstore.StatusKey(host, name))
	if err != nil || !ok {
		return api.WorkloadStatus{}, false
	}
	var s api.WorkloadStatus
	if err := clusterstore.Decode(kv, &s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

func TestAgentRunsAllocatedWorkloads(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	runAgent(t, st, d, "h1")
	ctx := context.Background()

	waitFor(t, "registration and heartbeat", func() bool {
		_, ok1, _, _ := st.Get(ctx, clusterstore.NodeKey("h1"))
		_, ok2, _, _ := st.Get(ctx, clusterstore.HeartbeatKey("h1"))
		return ok1 && ok2
	})
	kv, _, _, _ := st.Get(ctx, clusterstore.NodeKey("h1"))
	var n api.Node
	_ = clusterstore.Decode(kv, &n)
	if n.CPUs != 4 || n.Memory != 8*api.GiB || n.Labels["rack"] != "r1" || n.Driver != "libvirt" {
		t.Fatalf("registration: %+v", n)
	}

	spec := api.WorkloadSpec{Name: "web1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}
	put(t, st, clusterstore.WorkloadKey("web1"), api.Workload{Schema: 1, WorkloadSpec: spec})
	epoch := put(t, st, clusterstore.AllocationKey("web1"), api.Allocation{Schema: 1, Workload: "web1", Host: "h1", CPUs: 1, Memory: 256 * api.MiB})
	// An allocation for another host is none of our business.
	put(t, st, clusterstore.WorkloadKey("other"), api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "other", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}})
	put(t, st, clusterstore.AllocationKey("other"), api.Allocation{Schema: 1, Workload: "other", Host: "h2"})

	waitFor(t, "web1 running", func() bool {
		s, ok := status(t, st, "h1", "web1")
		return ok && s.State == api.StateRunning && s.Epoch == epoch
	})
	got, err := d.Inspect(ctx, "web1")
	if err != nil || got.State != drivers.TaskRunning || got.Epoch != epoch {
		t.Fatalf("driver says %+v, %v", got, err)
	}
	if _, err := d.Inspect(ctx, "other"); err == nil {
		t.Fatal("agent started a workload allocated to another host")
	}

	// A domain that stops behind our back is started again.
	if err := d.Stop(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web1 restarted", func() bool {
		s, err := d.Inspect(ctx, "web1")
		return err == nil && s.State == drivers.TaskRunning
	})

	// Removing the allocation stops and removes the domain and the report.
	if _, _, err := st.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.AllocationKey("web1"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web1 removed", func() bool {
		_, err := d.Inspect(ctx, "web1")
		_, reported := status(t, st, "h1", "web1")
		return err != nil && !reported
	})
}

// A domain left from an allocation that no longer exists (e.g. deleted while
// the agent was down) is removed at start-up.
func TestAgentRemovesLeftovers(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	ctx := context.Background()
	if err := d.Start(ctx, drivers.Task{Workload: "stale", Epoch: 7, Spec: api.WorkloadSpec{Name: "stale", Kind: api.KindVM, CPUs: 1, Memory: 128 * api.MiB}}); err != nil {
		t.Fatal(err)
	}
	runAgent(t, st, d, "h1")
	waitFor(t, "stale removed", func() bool {
		_, err := d.Inspect(ctx, "stale")
		return err != nil
	})
}

// Losing the heartbeat lease kills every workload (self-fencing).
func TestAgentSelfFencesOnLeaseLoss(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	runAgent(t, st, d, "h1")
	ctx := context.Background()
	put(t, st, clusterstore.WorkloadKey("web1"), api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "web1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}})
	put(t, st, clusterstore.AllocationKey("web1"), api.Allocation{Schema: 1, Workload: "web1", Host: "h1"})
	waitFor(t, "web1 running", func() bool {
		s, ok := status(t, st, "h1", "web1")
		return ok && s.State == api.StateRunning
	})
	before, err := d.Inspect(ctx, "web1")
	if err != nil || before.ID == "" {
		t.Fatalf("inspect: %+v %v", before, err)
	}
	kv, _, _, _ := st.Get(ctx, clusterstore.HeartbeatKey("h1"))
	var hb api.Heartbeat
	_ = clusterstore.Decode(kv, &hb)
	// Revoke the lease behind the agent's back, as etcd does when it expires.
	if err := st.Revoke(ctx, clusterstore.LeaseID(hb.Lease)); err != nil {
		t.Fatal(err)
	}
	// The agent kills web1, then re-registers with a new lease and, since
	// the allocation still names it, starts web1 again.
	waitFor(t, "a new heartbeat lease", func() bool {
		kv, ok, _, _ := st.Get(ctx, clusterstore.HeartbeatKey("h1"))
		var hb2 api.Heartbeat
		return ok && clusterstore.Decode(kv, &hb2) == nil && hb2.Lease != hb.Lease
	})
	waitFor(t, "web1 running again", func() bool {
		s, ok := status(t, st, "h1", "web1")
		return ok && s.State == api.StateRunning
	})
	// A new domain: the old one was destroyed, not left running.
	after, err := d.Inspect(ctx, "web1")
	if err != nil || after.ID == before.ID {
		t.Fatalf("web1 was not killed by self-fencing: before %+v after %+v (%v)", before, after, err)
	}
}

// The watchdog is fed while the lease is healthy and no longer once the
// agent has fenced itself: the hardware then resets the host.
func TestWatchdogStopsWhenSelfFencing(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	wd := filepath.Join(t.TempDir(), "watchdog")
	if err := os.WriteFile(wd, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	block := &blockingStore{Store: st}
	runAgentWith(t, Config{Host: "h1", Store: block, Driver: d, SessionTTL: 2 * time.Second, Resync: 100 * time.Millisecond, WatchdogDevice: wd})
	size := func() int64 { fi, _ := os.Stat(wd); return fi.Size() }
	waitFor(t, "the watchdog fed", func() bool { return size() > 5 })
	put(t, st, clusterstore.WorkloadKey("web1"), api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "web1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}})
	put(t, st, clusterstore.AllocationKey("web1"), api.Allocation{Schema: 1, Workload: "web1", Host: "h1"})
	waitFor(t, "web1 running", func() bool {
		s, err := d.Inspect(context.Background(), "web1")
		return err == nil && s.State == drivers.TaskRunning
	})
	// Cut keepalives: the agent self-fences after 1.2s and stops feeding.
	block.cut.Store(true)
	waitFor(t, "self-fence", func() bool {
		before := size()
		time.Sleep(300 * time.Millisecond)
		return size() == before
	})
	before := size()
	time.Sleep(500 * time.Millisecond)
	if size() != before {
		t.Fatal("watchdog still fed after self-fencing")
	}
	// Self-fencing on T_self (the lease itself was never revoked) killed web1.
	if _, err := d.Inspect(context.Background(), "web1"); err == nil {
		t.Fatal("web1 still defined after self-fencing")
	}
}

// blockingStore makes keepalives hang while cut, as a partition does.
type blockingStore struct {
	clusterstore.Store
	cut atomic.Bool
}

func (b *blockingStore) KeepAliveOnce(ctx context.Context, id clusterstore.LeaseID) (time.Duration, error) {
	if b.cut.Load() {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return b.Store.KeepAliveOnce(ctx, id)
}

func (b *blockingStore) Grant(ctx context.Context, ttl time.Duration) (clusterstore.LeaseID, error) {
	if b.cut.Load() {
		<-ctx.Done()
		return 0, ctx.Err()
	}
	return b.Store.Grant(ctx, ttl)
}
