package memory_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/clusterstore/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterstore.Store {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// fakeClock is a settable clock for lease tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newFake(t *testing.T, opts ...memory.Option) (*memory.Store, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := memory.New(append([]memory.Option{memory.WithClock(clock.Now)}, opts...)...)
	t.Cleanup(func() { _ = s.Close() })
	return s, clock
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func put(t *testing.T, s clusterstore.Store, k, v string, lease clusterstore.LeaseID) int64 {
	t.Helper()
	ok, rev, err := s.Txn(ctx(t), nil, []clusterstore.Op{clusterstore.PutWithLease(k, []byte(v), lease)})
	if err != nil || !ok {
		t.Fatalf("put %q: ok=%v err=%v", k, ok, err)
	}
	return rev
}

func exists(t *testing.T, s clusterstore.Store, k string) bool {
	t.Helper()
	_, ok, _, err := s.Get(ctx(t), k)
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return ok
}

func TestFakeClockLeaseExpiry(t *testing.T) {
	s, clock := newFake(t)
	c := ctx(t)
	id, err := s.Grant(c, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k1, k2 := clusterstore.Prefix+"a", clusterstore.Prefix+"b"
	put(t, s, k1, "1", id)
	rev := put(t, s, k2, "2", id)
	ch := s.Watch(c, clusterstore.Prefix, rev+1)

	clock.Advance(4 * time.Second)
	s.ExpireLeases()
	if !exists(t, s, k1) {
		t.Fatal("key gone before its lease expired")
	}
	if ttl, err := s.KeepAliveOnce(c, id); err != nil || ttl != 5*time.Second {
		t.Fatalf("keepalive: %v %v", ttl, err)
	}
	clock.Advance(4 * time.Second) // 8 s after grant, 4 s after renewal
	s.ExpireLeases()
	if !exists(t, s, k1) {
		t.Fatal("renewal did not extend the lease")
	}
	clock.Advance(time.Second)
	s.ExpireLeases()
	if exists(t, s, k1) || exists(t, s, k2) {
		t.Fatal("keys survived their lease")
	}

	// Both keys go in one revision, seen as one watch response.
	select {
	case r := <-ch:
		if r.Err != nil || len(r.Events) != 2 || r.Revision != rev+1 {
			t.Fatalf("watch = %+v, want 2 deletes at %d", r, rev+1)
		}
		for _, ev := range r.Events {
			if ev.Type != clusterstore.EventDelete {
				t.Fatalf("event %+v, want delete", ev)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no watch response for the expiry")
	}
	if _, err := s.KeepAliveOnce(c, id); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("keepalive after expiry: %v", err)
	}
}

// A lease whose deadline passed is dead even before ExpireLeases runs:
// renewing it would resurrect a lease that others may have seen expire.
func TestFakeClockNoResurrection(t *testing.T) {
	s, clock := newFake(t)
	c := ctx(t)
	id, err := s.Grant(c, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := clusterstore.Prefix + "k"
	put(t, s, k, "v", id)
	clock.Advance(time.Second)
	if _, err := s.KeepAliveOnce(c, id); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("keepalive at the deadline: %v, want ErrLeaseNotFound", err)
	}
	if exists(t, s, k) {
		t.Fatal("key of a dead lease still there")
	}
}

// Without ExpireLeases nothing expires on a fake clock: tests decide when.
func TestFakeClockNoBackgroundExpiry(t *testing.T) {
	s, clock := newFake(t)
	c := ctx(t)
	id, err := s.Grant(c, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	k := clusterstore.Prefix + "k"
	put(t, s, k, "v", id)
	clock.Advance(time.Hour)
	time.Sleep(50 * time.Millisecond) // several real-clock expiry intervals
	if !exists(t, s, k) {
		t.Fatal("lease expired without ExpireLeases")
	}
	s.ExpireLeases()
	if exists(t, s, k) {
		t.Fatal("ExpireLeases left an expired lease")
	}
}

func TestMaxTxnOpsOption(t *testing.T) {
	s, _ := newFake(t, memory.WithMaxTxnOps(2))
	c := ctx(t)
	ops := []clusterstore.Op{
		clusterstore.Put(clusterstore.Prefix+"a", nil),
		clusterstore.Put(clusterstore.Prefix+"b", nil),
		clusterstore.Put(clusterstore.Prefix+"c", nil),
	}
	if _, _, err := s.Txn(c, nil, ops); !errors.Is(err, clusterstore.ErrTooManyOps) {
		t.Fatalf("3 ops with limit 2: %v", err)
	}
	if ok, _, err := s.Txn(c, nil, ops[:2]); err != nil || !ok {
		t.Fatalf("2 ops with limit 2: %v %v", ok, err)
	}
}

func TestCompact(t *testing.T) {
	s, _ := newFake(t)
	c := ctx(t)
	k := clusterstore.Prefix + "k"
	r1 := put(t, s, k, "1", 0)
	r2 := put(t, s, k, "2", 0)
	gone := clusterstore.Prefix + "gone"
	put(t, s, gone, "x", 0)
	_, r3, err := s.Txn(c, nil, []clusterstore.Op{clusterstore.Delete(gone)})
	if err != nil {
		t.Fatal(err)
	}
	r4 := put(t, s, k, "4", 0)

	if err := s.Compact(r3); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if _, _, err := s.List(c, clusterstore.Prefix, r1); !errors.Is(err, clusterstore.ErrCompacted) {
		t.Fatalf("list below compaction: %v", err)
	}
	// The state at the compaction revision itself stays readable.
	kvs, _, err := s.List(c, clusterstore.Prefix, r3)
	if err != nil || len(kvs) != 1 || string(kvs[0].Value) != "2" || kvs[0].ModRevision != r2 {
		t.Fatalf("list at compaction revision: %+v %v", kvs, err)
	}
	if kv, ok, _, _ := s.Get(c, k); !ok || string(kv.Value) != "4" || kv.ModRevision != r4 || kv.Version != 3 {
		t.Fatalf("get after compaction: %+v", kv)
	}

	r := <-s.Watch(c, clusterstore.Prefix, r1)
	if !errors.Is(r.Err, clusterstore.ErrCompacted) {
		t.Fatalf("watch below compaction: %+v", r)
	}
	r = <-s.Watch(c, clusterstore.Prefix, r3)
	if r.Err != nil || r.Revision != r3 {
		t.Fatalf("watch from compaction revision: %+v", r)
	}
	if err := s.Compact(r3); !errors.Is(err, clusterstore.ErrCompacted) {
		t.Fatalf("compact twice: %v", err)
	}
	if err := s.Compact(r4 + 1); !errors.Is(err, clusterstore.ErrFutureRevision) {
		t.Fatalf("compact the future: %v", err)
	}
}

// A watcher that never reads must not hold up writers.
func TestSlowWatcherDoesNotBlockTxn(t *testing.T) {
	s, _ := newFake(t)
	c := ctx(t)
	ch := s.Watch(c, clusterstore.Prefix, 0)
	const n = 5000
	done := make(chan error, 1)
	go func() {
		for i := range n {
			op := clusterstore.Put(fmt.Sprintf("%sk%d", clusterstore.Prefix, i), []byte("v"))
			if _, _, err := s.Txn(c, nil, []clusterstore.Op{op}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("writes blocked behind an unread watch")
	}
	var last int64
	for i := range n {
		select {
		case r := <-ch:
			if r.Err != nil || len(r.Events) != 1 || r.Revision <= last {
				t.Fatalf("response %d: %+v after %d", i, r, last)
			}
			last = r.Revision
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of %d responses delivered", i, n)
		}
	}
}

func TestClose(t *testing.T) {
	s := memory.New()
	c := ctx(t)
	ch := s.Watch(c, clusterstore.Prefix, 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, ok := <-ch
	if !ok || !errors.Is(r.Err, memory.ErrClosed) {
		t.Fatalf("watch after close: %+v %v", r, ok)
	}
	if _, ok := <-ch; ok {
		t.Fatal("watch channel open after its error")
	}
	if _, _, err := s.Txn(c, nil, nil); !errors.Is(err, memory.ErrClosed) {
		t.Fatalf("txn after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// Values handed out are copies: a caller mutating one cannot change the store.
func TestValuesAreCopied(t *testing.T) {
	s, _ := newFake(t)
	c := ctx(t)
	k := clusterstore.Prefix + "k"
	v := []byte("orig")
	if _, _, err := s.Txn(c, nil, []clusterstore.Op{clusterstore.Put(k, v)}); err != nil {
		t.Fatal(err)
	}
	v[0] = 'X'
	kv, _, _, _ := s.Get(c, k)
	kv.Value[1] = 'Y'
	kv, _, _, _ = s.Get(c, k)
	if string(kv.Value) != "orig" {
		t.Fatalf("stored value changed to %q", kv.Value)
	}
}
