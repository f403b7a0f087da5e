package nodeagent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
)

// TestStartNeedsTheAllocation: the "starting" report that precedes every
// start is written only while the allocation exists at the epoch the agent
// read; after a move (allocation deleted, or placed again at a new epoch)
// nothing is written and the caller does not start the workload.
func TestStartNeedsTheAllocation(t *testing.T) {
	st := memory.New()
	defer st.Close()
	ctx := context.Background()
	d := newFakeDriver(api.KindVM)
	a, err := New(Config{Host: "h1", Store: st, Driver: d, SessionTTL: 2 * time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	a.reported = map[string]api.WorkloadStatus{} // as Run sets it up
	sess, err := clusterstore.NewSession(ctx, st, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	spec := api.WorkloadSpec{Name: "w", Kind: api.KindVM, CPUs: 1, Memory: 64 * api.MiB}
	epoch := allocate(t, st, spec)
	if !a.reportStarting(ctx, sess, "w", epoch) {
		t.Fatal("refused while the allocation exists at its epoch")
	}
	if s, ok := status(t, st, "h1", "w"); !ok || s.State != api.StateStarting || s.Epoch != epoch {
		t.Fatalf("status %+v %v", s, ok)
	}
	// Moved: deleted, then placed again (a new epoch).
	if _, _, err := st.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.AllocationKey("w")), clusterstore.Delete(clusterstore.StatusKey("h1", "w"))}); err != nil {
		t.Fatal(err)
	}
	if a.reportStarting(ctx, sess, "w", epoch) {
		t.Fatal("accepted after the allocation was deleted")
	}
	newEpoch := allocate(t, st, spec)
	if a.reportStarting(ctx, sess, "w", epoch) {
		t.Fatalf("accepted at epoch %d while the allocation is at %d", epoch, newEpoch)
	}
	if s, ok := status(t, st, "h1", "w"); ok {
		t.Fatalf("a refused start wrote a status: %+v", s)
	}
	if starts, _ := d.counts("w"); starts != 0 {
		t.Fatalf("driver started it %d times", starts)
	}
}

// TestAgentStartingCutOffFencesItself: a new agent process finds a
// workload an earlier run left (the host may already count as lost) and
// cannot get a heartbeat lease: it kills the workload after T_self.
func TestAgentStartingCutOffFencesItself(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	ctx := context.Background()
	if err := d.Start(ctx, drivers.Task{Workload: "left", Epoch: 7, Spec: api.WorkloadSpec{Name: "left", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}}); err != nil {
		t.Fatal(err)
	}
	block := &blockingStore{Store: st}
	block.cut.Store(true)
	runAgentWith(t, Config{Host: "h1", Store: block, Driver: d, SessionTTL: 2 * time.Second, Resync: 100 * time.Millisecond})
	waitFor(t, "the leftover workload killed", func() bool {
		_, err := d.Inspect(ctx, "left")
		return err != nil
	})
}

// TestPoolDrainingWait: a planned stop waits while a pool lists the copy,
// then poolDrainGrace more, never more than poolDrainMax in all.
func TestPoolDrainingWait(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var d poolDrain
	steps := []struct {
		at     time.Duration
		inPool bool
		wait   bool
	}{
		{0, true, true},
		{500 * time.Millisecond, true, true},
		{time.Second, false, true},                        // left the pool: grace starts
		{time.Second + 900*time.Millisecond, false, true}, // within the grace
		{2 * time.Second, false, false},                   // grace over
	}
	for _, s := range steps {
		if got := poolDrainingWait(&d, s.inPool, at(s.at)); got != s.wait {
			t.Fatalf("at %s in pool %v: wait %v, want %v", s.at, s.inPool, got, s.wait)
		}
	}
	var stuck poolDrain
	if !poolDrainingWait(&stuck, true, at(0)) || !poolDrainingWait(&stuck, true, at(poolDrainMax-time.Millisecond)) || poolDrainingWait(&stuck, true, at(poolDrainMax)) {
		t.Fatal("a copy a pool never lets go of must stop after poolDrainMax")
	}
}

// TestAgentFencesItselfBetweenSessions: a watch fails (as when the agent's
// etcd member loses its leader) and the store then answers nothing: the
// session ends without its own self-fence check, and no new lease can be
// had. The workloads must still die T_self after the last acknowledged
// keepalive.
func TestAgentFencesItselfBetweenSessions(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	store := &watchCutStore{blockingStore: blockingStore{Store: st}, cutCh: make(chan struct{})}
	runAgentWith(t, Config{Host: "h1", Store: store, Driver: d, SessionTTL: 2 * time.Second, Resync: 100 * time.Millisecond})
	put(t, st, clusterstore.WorkloadKey("web1"), api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "web1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}})
	put(t, st, clusterstore.AllocationKey("web1"), api.Allocation{Schema: 1, Workload: "web1", Host: "h1"})
	waitFor(t, "web1 running", func() bool {
		s, err := d.Inspect(context.Background(), "web1")
		return err == nil && s.State == drivers.TaskRunning
	})
	// Keepalives and grants hang from now on, and every watch fails.
	store.cut.Store(true)
	close(store.cutCh)
	waitFor(t, "web1 killed between sessions", func() bool {
		_, err := d.Inspect(context.Background(), "web1")
		return err != nil
	})
}

// watchCutStore is a blockingStore whose watches fail once cutCh closes.
type watchCutStore struct {
	blockingStore
	cutCh chan struct{}
}

func (w *watchCutStore) Watch(ctx context.Context, prefix string, fromRev int64) <-chan clusterstore.WatchResponse {
	in := w.blockingStore.Store.Watch(ctx, prefix, fromRev)
	out := make(chan clusterstore.WatchResponse)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case <-w.cutCh:
				select {
				case out <- clusterstore.WatchResponse{Err: errors.New("etcdserver: no leader")}:
				case <-ctx.Done():
				}
				return
			case r, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- r:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// TestPlannedStopDrainsFromPool: a workload moved off this host while a
// load balancer's pool still lists it keeps running, reported stopping
// (so that the leader neither places it elsewhere nor keeps it in the
// pool), and stops once the pool has let go of it.
func TestPlannedStopDrainsFromPool(t *testing.T) {
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	runAgent(t, st, d, "h1")
	ctx := context.Background()
	put(t, st, clusterstore.WorkloadKey("web-1"), api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "web-1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}})
	put(t, st, clusterstore.AllocationKey("web-1"), api.Allocation{Schema: 1, Workload: "web-1", Host: "h1"})
	waitFor(t, "web-1 running", func() bool {
		s, ok := status(t, st, "h1", "web-1")
		return ok && s.State == api.StateRunning
	})
	vip := func(backends ...api.Backend) {
		put(t, st, clusterstore.VIPKey("192.0.2.80"), api.VIP{Schema: 1, VIPSpec: api.VIPSpec{Address: "192.0.2.80/24", Network: "lan", Workload: "web-2"},
			Service: "web", Pool: &api.Pool{Ports: []api.ServicePort{{Port: 80, TargetPort: 8080, Proto: "tcp"}}, Backends: backends}})
	}
	vip(api.Backend{Workload: "web-1", Host: "h1", Address: "192.0.2.11"})
	if _, _, err := st.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.AllocationKey("web-1"))}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "web-1 reported stopping while draining", func() bool {
		s, ok := status(t, st, "h1", "web-1")
		return ok && s.State == api.StateStopping && strings.Contains(s.Reason, "draining")
	})
	if _, err := d.Inspect(ctx, "web-1"); err != nil {
		t.Fatalf("web-1 stopped while a pool still lists it: %v", err)
	}
	vip() // the leader took it out of the pool
	waitFor(t, "web-1 stopped and its status gone", func() bool {
		_, err := d.Inspect(ctx, "web-1")
		_, ok := status(t, st, "h1", "web-1")
		return err != nil && !ok
	})
}
