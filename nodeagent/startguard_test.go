package nodeagent

import (
	"context"
	"io"
	"log/slog"
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
	a, err := New(Config{Host: "h1", Store: block, Driver: d, SessionTTL: 2 * time.Second, Resync: 100 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = a.Run(rctx); close(done) }()
	defer func() { cancel(); <-done }()
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
