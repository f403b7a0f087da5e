// Package storetest is the contract every clusterstore.Store backend must
// meet: one suite, run against the in-memory store and real etcd, so that the
// deterministic tests built on memory mean something for production.
//
// Keys live under clusterstore.Prefix, so a backend shared between subtests
// can be cleaned by deleting that prefix. Tests never assume that revisions
// are consecutive across calls (on a shared etcd, an old lease may still
// expire), only their order and what one call guarantees.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/clusterstore"
)

// DefaultMaxTxnOps is the per-transaction limit both backends default to;
// the suite checks it is enforced exactly.
const DefaultMaxTxnOps = 16384

// testTimeout bounds every subtest: nothing here waits without a deadline.
const testTimeout = 45 * time.Second

// eventTimeout is how long to wait for something the store should do
// promptly (a watch event, a lease expiry after its TTL).
const eventTimeout = 15 * time.Second

// shortTTL is the lease TTL of tests that wait for expiry. etcd counts in
// whole seconds and raises anything shorter than its minimum (2 s by
// default); the suite only ever waits "until it happens", with a deadline.
const shortTTL = time.Second

// longTTL is for leases that must not expire during a test.
const longTTL = 30 * time.Second

// Run runs the contract suite. newStore is called once per subtest and must
// return a store whose keys under clusterstore.Prefix are empty, with the
// default transaction limit; it registers its own cleanup.
func Run(t *testing.T, newStore func(t *testing.T) clusterstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s clusterstore.Store)
	}{
		{"PutGetDelete", testPutGetDelete},
		{"TxnGuards", testTxnGuards},
		{"TxnAtomic", testTxnAtomic},
		{"TxnRefusesDuplicateKeys", testTxnDuplicateKeys},
		{"TooManyOps", testTooManyOps},
		{"List", testList},
		{"DeletePrefix", testDeletePrefix},
		{"WatchReplayThenLive", testWatchReplayThenLive},
		{"WatchFromNow", testWatchFromNow},
		{"WatchTxnIsOneResponse", testWatchTxnOneResponse},
		{"WatchCancel", testWatchCancel},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"LeaseRevoke", testLeaseRevoke},
		{"LeaseExpiry", testLeaseExpiry},
		{"LeaseRebindOnPut", testLeaseRebind},
		{"SessionKeepsAliveThenOrphan", testSessionOrphan},
		{"SessionCloseRevokes", testSessionClose},
		{"SessionLostOnRevoke", testSessionLostOnRevoke},
		{"SessionLostWithoutAck", testSessionLostWithoutAck},
		{"ElectionNoLeader", testElectionNoLeader},
		{"ElectionFailover", testElectionFailover},
		{"ElectionQueueOrder", testElectionQueueOrder},
		{"ElectionCampaignCancel", testElectionCampaignCancel},
		{"ElectionSessionEndsWhileWaiting", testElectionSessionEnds},
	}
	tests = append(tests, claimTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// --- helpers ---------------------------------------------------------------

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// key returns a key private to the suite.
func key(parts ...string) string {
	return clusterstore.Prefix + "storetest/" + strings.Join(parts, "/")
}

func mustTxn(t *testing.T, ctx context.Context, s clusterstore.Store, conds []clusterstore.Cond, ops ...clusterstore.Op) (bool, int64) {
	t.Helper()
	ok, rev, err := s.Txn(ctx, conds, ops)
	if err != nil {
		t.Fatalf("txn: %v", err)
	}
	return ok, rev
}

func mustPut(t *testing.T, ctx context.Context, s clusterstore.Store, k, v string) int64 {
	t.Helper()
	ok, rev := mustTxn(t, ctx, s, nil, clusterstore.Put(k, []byte(v)))
	if !ok {
		t.Fatalf("unconditional put %q did not succeed", k)
	}
	return rev
}

func mustGet(t *testing.T, ctx context.Context, s clusterstore.Store, k string) (clusterstore.KeyValue, bool) {
	t.Helper()
	kv, ok, _, err := s.Get(ctx, k)
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return kv, ok
}

func currentRev(t *testing.T, ctx context.Context, s clusterstore.Store) int64 {
	t.Helper()
	_, _, rev, err := s.Get(ctx, key("no-such-key"))
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	return rev
}

func wantValue(t *testing.T, ctx context.Context, s clusterstore.Store, k, want string) clusterstore.KeyValue {
	t.Helper()
	kv, ok := mustGet(t, ctx, s, k)
	if !ok {
		t.Fatalf("%q missing, want %q", k, want)
	}
	if string(kv.Value) != want {
		t.Fatalf("%q = %q, want %q", k, kv.Value, want)
	}
	return kv
}

func wantMissing(t *testing.T, ctx context.Context, s clusterstore.Store, k string) {
	t.Helper()
	if kv, ok := mustGet(t, ctx, s, k); ok {
		t.Fatalf("%q exists (%q at %d), want missing", k, kv.Value, kv.ModRevision)
	}
}

// nextResponse waits for one watch response.
func nextResponse(t *testing.T, ch <-chan clusterstore.WatchResponse) clusterstore.WatchResponse {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		if r.Err != nil {
			t.Fatalf("watch error: %v", r.Err)
		}
		return r
	case <-time.After(eventTimeout):
		t.Fatalf("no watch response within %v", eventTimeout)
	}
	panic("unreachable")
}

// nextEvents collects n events, checking that each response holds events
// of its own revision only and that revisions increase.
func nextEvents(t *testing.T, ch <-chan clusterstore.WatchResponse, n int) []clusterstore.Event {
	t.Helper()
	var evs []clusterstore.Event
	var last int64
	for len(evs) < n {
		r := nextResponse(t, ch)
		if r.Revision <= last {
			t.Fatalf("watch revision %d after %d", r.Revision, last)
		}
		last = r.Revision
		for _, ev := range r.Events {
			if ev.KV.ModRevision != r.Revision {
				t.Fatalf("event %q at %d in response for revision %d", ev.KV.Key, ev.KV.ModRevision, r.Revision)
			}
		}
		evs = append(evs, r.Events...)
	}
	if len(evs) != n {
		t.Fatalf("got %d events, want %d: %v", len(evs), n, evs)
	}
	return evs
}

func wantEvent(t *testing.T, ev clusterstore.Event, typ clusterstore.EventType, k, v string) {
	t.Helper()
	if ev.Type != typ || ev.KV.Key != k || (typ == clusterstore.EventPut && string(ev.KV.Value) != v) {
		t.Fatalf("event %v %q=%q, want %v %q=%q", ev.Type, ev.KV.Key, ev.KV.Value, typ, k, v)
	}
}

// waitDeleted waits until a watch on k (started at fromRev) reports its
// deletion, and returns the revision of the delete.
func waitDeleted(t *testing.T, ch <-chan clusterstore.WatchResponse, k string) int64 {
	t.Helper()
	deadline := time.After(eventTimeout)
	for {
		select {
		case r, ok := <-ch:
			if !ok || r.Err != nil {
				t.Fatalf("watch for delete of %q ended: %v", k, r.Err)
			}
			for _, ev := range r.Events {
				if ev.Type == clusterstore.EventDelete && ev.KV.Key == k {
					return r.Revision
				}
			}
		case <-deadline:
			t.Fatalf("%q not deleted within %v", k, eventTimeout)
		}
	}
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(eventTimeout):
		t.Fatalf("%s not closed within %v", what, eventTimeout)
	}
}

// --- key-value and transactions -------------------------------------------

func testPutGetDelete(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("pgd")

	_, ok, rev0, err := s.Get(ctx, k)
	if err != nil || ok || rev0 <= 0 {
		t.Fatalf("get missing: ok=%v rev=%d err=%v, want ok=false rev>0", ok, rev0, err)
	}

	rev1 := mustPut(t, ctx, s, k, "v1")
	if rev1 <= rev0 {
		t.Fatalf("put revision %d not after %d", rev1, rev0)
	}
	kv, ok, rev, err := s.Get(ctx, k)
	if err != nil || !ok {
		t.Fatalf("get after put: ok=%v err=%v", ok, err)
	}
	if rev < rev1 {
		t.Fatalf("get revision %d before put revision %d", rev, rev1)
	}
	want := clusterstore.KeyValue{Key: k, Value: []byte("v1"), CreateRevision: rev1, ModRevision: rev1, Version: 1}
	if !kvEqual(kv, want) {
		t.Fatalf("get = %+v, want %+v", kv, want)
	}

	rev2 := mustPut(t, ctx, s, k, "v2")
	kv = wantValue(t, ctx, s, k, "v2")
	if kv.CreateRevision != rev1 || kv.ModRevision != rev2 || kv.Version != 2 {
		t.Fatalf("after update: create %d mod %d version %d, want %d %d 2", kv.CreateRevision, kv.ModRevision, kv.Version, rev1, rev2)
	}

	ok, rev3 := mustTxn(t, ctx, s, nil, clusterstore.Delete(k))
	if !ok || rev3 <= rev2 {
		t.Fatalf("delete: ok=%v rev=%d (after %d)", ok, rev3, rev2)
	}
	wantMissing(t, ctx, s, k)

	// Deleting a missing key succeeds and, as in etcd, writes no revision.
	ok, rev4 := mustTxn(t, ctx, s, nil, clusterstore.Delete(k))
	if !ok {
		t.Fatal("delete of missing key did not succeed")
	}
	if cur := currentRev(t, ctx, s); rev4 != cur {
		t.Fatalf("delete of missing key returned revision %d, store is at %d", rev4, cur)
	}

	// Re-creating starts a new life: new create revision, version 1. This
	// is what makes create revisions usable as fencing tokens.
	rev5 := mustPut(t, ctx, s, k, "v3")
	kv = wantValue(t, ctx, s, k, "v3")
	if kv.CreateRevision != rev5 || kv.Version != 1 || rev5 <= rev3 {
		t.Fatalf("re-created: create %d version %d, want %d 1", kv.CreateRevision, kv.Version, rev5)
	}

	// An empty value is a value.
	e := key("pgd-empty")
	mustPut(t, ctx, s, e, "")
	if kv, ok := mustGet(t, ctx, s, e); !ok || len(kv.Value) != 0 {
		t.Fatalf("empty value: ok=%v value=%q", ok, kv.Value)
	}
}

func kvEqual(a, b clusterstore.KeyValue) bool {
	return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && a.Version == b.Version && a.Lease == b.Lease
}

func testTxnGuards(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	present, absent := key("guard", "present"), key("guard", "absent")
	create := mustPut(t, ctx, s, present, "v0")
	mod := mustPut(t, ctx, s, present, "v1")

	valueCond := func(k string, cmp clusterstore.Comparison, v string) clusterstore.Cond {
		return clusterstore.Cond{Key: k, Target: clusterstore.TargetValue, Cmp: cmp, Value: []byte(v)}
	}
	revCond := func(k string, target clusterstore.Target, cmp clusterstore.Comparison, rev int64) clusterstore.Cond {
		return clusterstore.Cond{Key: k, Target: target, Cmp: cmp, Rev: rev}
	}
	cases := []struct {
		name  string
		conds []clusterstore.Cond
		want  bool
	}{
		{"no conditions", nil, true},
		{"Missing(absent)", []clusterstore.Cond{clusterstore.Missing(absent)}, true},
		{"Missing(present)", []clusterstore.Cond{clusterstore.Missing(present)}, false},
		{"Exists(present)", []clusterstore.Cond{clusterstore.Exists(present)}, true},
		{"Exists(absent)", []clusterstore.Cond{clusterstore.Exists(absent)}, false},
		{"ModRevisionIs(present, mod)", []clusterstore.Cond{clusterstore.ModRevisionIs(present, mod)}, true},
		{"ModRevisionIs(present, create)", []clusterstore.Cond{clusterstore.ModRevisionIs(present, create)}, false},
		{"ModRevisionIs(absent, 0)", []clusterstore.Cond{clusterstore.ModRevisionIs(absent, 0)}, true},
		{"ModRevisionIs(present, 0)", []clusterstore.Cond{clusterstore.ModRevisionIs(present, 0)}, false},
		{"CreateRevisionIs(present, create)", []clusterstore.Cond{clusterstore.CreateRevisionIs(present, create)}, true},
		{"CreateRevisionIs(present, mod)", []clusterstore.Cond{clusterstore.CreateRevisionIs(present, mod)}, false},
		{"CreateRevisionIs(absent, 0)", []clusterstore.Cond{clusterstore.CreateRevisionIs(absent, 0)}, true},
		{"mod > create", []clusterstore.Cond{revCond(present, clusterstore.TargetModRevision, clusterstore.Greater, create)}, true},
		{"mod < mod", []clusterstore.Cond{revCond(present, clusterstore.TargetModRevision, clusterstore.Less, mod)}, false},
		{"mod != create", []clusterstore.Cond{revCond(present, clusterstore.TargetModRevision, clusterstore.NotEqual, create)}, true},
		{"value == v1", []clusterstore.Cond{valueCond(present, clusterstore.Equal, "v1")}, true},
		{"value == v0", []clusterstore.Cond{valueCond(present, clusterstore.Equal, "v0")}, false},
		{"value != v0", []clusterstore.Cond{valueCond(present, clusterstore.NotEqual, "v0")}, true},
		{"value != v1", []clusterstore.Cond{valueCond(present, clusterstore.NotEqual, "v1")}, false},
		// etcd: a value comparison on a missing key always fails.
		{"absent value == empty", []clusterstore.Cond{valueCond(absent, clusterstore.Equal, "")}, false},
		{"absent value != x", []clusterstore.Cond{valueCond(absent, clusterstore.NotEqual, "x")}, false},
		{"all hold", []clusterstore.Cond{clusterstore.Exists(present), clusterstore.Missing(absent), clusterstore.ModRevisionIs(present, mod)}, true},
		{"one fails", []clusterstore.Cond{clusterstore.Exists(present), clusterstore.Exists(absent), clusterstore.ModRevisionIs(present, mod)}, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := key("guard", "out", fmt.Sprint(i))
			before := currentRev(t, ctx, s)
			ok, rev := mustTxn(t, ctx, s, tc.conds, clusterstore.Put(out, []byte("written")))
			if ok != tc.want {
				t.Fatalf("succeeded = %v, want %v", ok, tc.want)
			}
			if !ok {
				// A failed guard changes nothing, not even the revision.
				if rev != before {
					t.Fatalf("failed txn returned revision %d, store was at %d", rev, before)
				}
				wantMissing(t, ctx, s, out)
				if kv := wantValue(t, ctx, s, present, "v1"); kv.ModRevision != mod {
					t.Fatalf("failed txn touched %q: mod %d, want %d", present, kv.ModRevision, mod)
				}
				return
			}
			if kv := wantValue(t, ctx, s, out, "written"); kv.ModRevision != rev {
				t.Fatalf("written at %d, txn returned %d", kv.ModRevision, rev)
			}
		})
	}
}

func testTxnAtomic(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	a, b, c := key("atomic", "a"), key("atomic", "b"), key("atomic", "c")
	mustPut(t, ctx, s, c, "c0")

	ok, rev := mustTxn(t, ctx, s, []clusterstore.Cond{clusterstore.Exists(c)},
		clusterstore.Put(a, []byte("a1")), clusterstore.Put(b, []byte("b1")), clusterstore.Delete(c))
	if !ok {
		t.Fatal("txn did not succeed")
	}
	for _, k := range []string{a, b} {
		if kv, _ := mustGet(t, ctx, s, k); kv.ModRevision != rev {
			t.Fatalf("%q written at %d, txn at %d: ops of one txn share one revision", k, kv.ModRevision, rev)
		}
	}
	wantMissing(t, ctx, s, c)
	kvs, _, err := s.List(ctx, key("atomic")+"/", rev-1)
	if err != nil {
		t.Fatalf("list before txn: %v", err)
	}
	if len(kvs) != 1 || kvs[0].Key != c {
		t.Fatalf("state before txn = %v, want only %q", kvs, c)
	}

	// A failed guard applies none of many ops.
	ok, _ = mustTxn(t, ctx, s, []clusterstore.Cond{clusterstore.Exists(c)},
		clusterstore.Put(key("atomic", "x"), nil), clusterstore.Put(key("atomic", "y"), nil), clusterstore.Delete(a))
	if ok {
		t.Fatal("txn guarded on a deleted key succeeded")
	}
	wantMissing(t, ctx, s, key("atomic", "x"))
	wantMissing(t, ctx, s, key("atomic", "y"))
	wantValue(t, ctx, s, a, "a1")

	// A txn that errors (a put on a lease that does not exist) applies
	// nothing either.
	lease, err := s.Grant(ctx, longTTL)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	if err := s.Revoke(ctx, lease); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	before := currentRev(t, ctx, s)
	_, _, err = s.Txn(ctx, nil, []clusterstore.Op{
		clusterstore.Put(key("atomic", "z"), []byte("z")),
		clusterstore.PutWithLease(key("atomic", "leased"), []byte("l"), lease),
	})
	if !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("put with revoked lease: err = %v, want ErrLeaseNotFound", err)
	}
	wantMissing(t, ctx, s, key("atomic", "z"))
	if cur := currentRev(t, ctx, s); cur != before {
		t.Fatalf("failed txn moved revision %d -> %d", before, cur)
	}
}

func testTxnDuplicateKeys(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("dup", "k")
	mustPut(t, ctx, s, k, "orig")
	cases := map[string][]clusterstore.Op{
		"put twice":            {clusterstore.Put(k, []byte("1")), clusterstore.Put(k, []byte("2"))},
		"put and delete":       {clusterstore.Put(k, []byte("1")), clusterstore.Delete(k)},
		"delete and put":       {clusterstore.Delete(k), clusterstore.Put(k, []byte("1"))},
		"put under del prefix": {clusterstore.DeletePrefix(key("dup") + "/"), clusterstore.Put(k, []byte("1"))},
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			if _, _, err := s.Txn(ctx, nil, ops); err == nil {
				t.Fatal("txn writing one key twice was accepted")
			}
			wantValue(t, ctx, s, k, "orig")
		})
	}
	// Deleting a key twice is not ambiguous and is allowed.
	if ok, _ := mustTxn(t, ctx, s, nil, clusterstore.Delete(k), clusterstore.DeletePrefix(key("dup")+"/")); !ok {
		t.Fatal("double delete did not succeed")
	}
	wantMissing(t, ctx, s, k)
}

func testTooManyOps(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	prefix := key("many") + "/"
	ops := make([]clusterstore.Op, DefaultMaxTxnOps+1)
	for i := range ops {
		ops[i] = clusterstore.Put(fmt.Sprintf("%s%05d", prefix, i), []byte("x"))
	}
	if _, _, err := s.Txn(ctx, nil, ops); !errors.Is(err, clusterstore.ErrTooManyOps) {
		t.Fatalf("%d ops: err = %v, want ErrTooManyOps", len(ops), err)
	}
	wantMissing(t, ctx, s, prefix+"00000")

	conds := make([]clusterstore.Cond, DefaultMaxTxnOps+1)
	for i := range conds {
		conds[i] = clusterstore.Missing(prefix + "c")
	}
	if _, _, err := s.Txn(ctx, conds, nil); !errors.Is(err, clusterstore.ErrTooManyOps) {
		t.Fatalf("%d conditions: err = %v, want ErrTooManyOps", len(conds), err)
	}

	// Exactly the limit is fine: one plan commit may be this large.
	ok, rev := mustTxn(t, ctx, s, nil, ops[:DefaultMaxTxnOps]...)
	if !ok {
		t.Fatal("txn at the limit did not succeed")
	}
	kvs, _, err := s.List(ctx, prefix, rev)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(kvs) != DefaultMaxTxnOps {
		t.Fatalf("listed %d keys, want %d", len(kvs), DefaultMaxTxnOps)
	}
}

func testList(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	dir := key("list") + "/"
	for _, k := range []string{"b", "a", "c"} {
		mustPut(t, ctx, s, dir+k, k+"1")
	}
	// A sibling whose name extends the prefix's last segment is not listed.
	mustPut(t, ctx, s, key("list2", "x"), "x")

	kvs, at1, err := s.List(ctx, dir, 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := listed(kvs); got != "a=a1 b=b1 c=c1" {
		t.Fatalf("list = %s", got)
	}
	if cur := currentRev(t, ctx, s); at1 <= 0 || at1 > cur {
		t.Fatalf("list read at %d, store at %d", at1, cur)
	}

	mustPut(t, ctx, s, dir+"a", "a2")
	mustTxn(t, ctx, s, nil, clusterstore.Delete(dir+"b"))
	mustPut(t, ctx, s, dir+"d", "d1")

	old, atOld, err := s.List(ctx, dir, at1)
	if err != nil {
		t.Fatalf("list at %d: %v", at1, err)
	}
	if atOld != at1 {
		t.Fatalf("list at %d reports revision %d", at1, atOld)
	}
	if got := listed(old); got != "a=a1 b=b1 c=c1" {
		t.Fatalf("snapshot at %d = %s", at1, got)
	}
	now, atNow, err := s.List(ctx, dir, 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := listed(now); got != "a=a2 c=c1 d=d1" {
		t.Fatalf("list now = %s", got)
	}
	if atNow <= at1 {
		t.Fatalf("list now at %d, not after %d", atNow, at1)
	}
	// Snapshot reads of two prefixes at one revision agree with each other.
	sib, _, err := s.List(ctx, key("list2")+"/", at1)
	if err != nil || listed(sib) != "x=x" {
		t.Fatalf("sibling at %d = %s, %v", at1, listed(sib), err)
	}

	empty, _, err := s.List(ctx, key("list-empty")+"/", 0)
	if err != nil || len(empty) != 0 {
		t.Fatalf("empty list = %v, %v", empty, err)
	}
	if _, _, err := s.List(ctx, dir, atNow+1000); !errors.Is(err, clusterstore.ErrFutureRevision) {
		t.Fatalf("list in the future: err = %v, want ErrFutureRevision", err)
	}
}

// listed renders kvs as "name=value ..." with names relative to their parent.
func listed(kvs []clusterstore.KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		name := kv.Key[strings.LastIndex(kv.Key, "/")+1:]
		parts = append(parts, name+"="+string(kv.Value))
	}
	return strings.Join(parts, " ")
}

func testDeletePrefix(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	dir := key("dp") + "/"
	for _, k := range []string{dir + "a", dir + "b", dir + "sub/c", key("dpx")} {
		mustPut(t, ctx, s, k, "v")
	}
	from := currentRev(t, ctx, s) + 1
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, key(""), from)

	ok, rev := mustTxn(t, ctx, s, nil, clusterstore.DeletePrefix(dir))
	if !ok {
		t.Fatal("delete prefix did not succeed")
	}
	kvs, _, err := s.List(ctx, key(""), 0)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if got := listed(kvs); got != "dpx=v" {
		t.Fatalf("after delete prefix: %s", got)
	}
	r := nextResponse(t, ch)
	if r.Revision != rev || len(r.Events) != 3 {
		t.Fatalf("watch got %d events at %d, want 3 at %d", len(r.Events), r.Revision, rev)
	}
	for i, k := range []string{dir + "a", dir + "b", dir + "sub/c"} {
		wantEvent(t, r.Events[i], clusterstore.EventDelete, k, "")
	}
}

// --- watches ---------------------------------------------------------------

func testWatchReplayThenLive(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	dir := key("watch") + "/"
	k1, k2, k3 := dir+"k1", dir+"k2", dir+"k3"
	r1 := mustPut(t, ctx, s, k1, "1")
	mustPut(t, ctx, s, key("other"), "o") // outside the prefix
	r2 := mustPut(t, ctx, s, k2, "2")
	_, r3 := mustTxn(t, ctx, s, nil, clusterstore.Delete(k1))

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, dir, r1)

	evs := nextEvents(t, ch, 3)
	wantEvent(t, evs[0], clusterstore.EventPut, k1, "1")
	wantEvent(t, evs[1], clusterstore.EventPut, k2, "2")
	wantEvent(t, evs[2], clusterstore.EventDelete, k1, "")
	if evs[0].KV.ModRevision != r1 || evs[1].KV.ModRevision != r2 || evs[2].KV.ModRevision != r3 {
		t.Fatalf("replayed revisions %d %d %d, want %d %d %d",
			evs[0].KV.ModRevision, evs[1].KV.ModRevision, evs[2].KV.ModRevision, r1, r2, r3)
	}
	if evs[0].KV.CreateRevision != r1 || evs[0].KV.Version != 1 {
		t.Fatalf("replayed put carries create %d version %d", evs[0].KV.CreateRevision, evs[0].KV.Version)
	}

	// Live: a write outside the prefix is not delivered, the next one is.
	mustPut(t, ctx, s, key("other"), "o2")
	r4 := mustPut(t, ctx, s, k3, "3")
	evs = nextEvents(t, ch, 1)
	wantEvent(t, evs[0], clusterstore.EventPut, k3, "3")
	if evs[0].KV.ModRevision != r4 {
		t.Fatalf("live event at %d, want %d", evs[0].KV.ModRevision, r4)
	}
	_, r5 := mustTxn(t, ctx, s, nil, clusterstore.Delete(k2))
	evs = nextEvents(t, ch, 1)
	wantEvent(t, evs[0], clusterstore.EventDelete, k2, "")
	if evs[0].KV.ModRevision != r5 {
		t.Fatalf("live delete at %d, want %d", evs[0].KV.ModRevision, r5)
	}
}

func testWatchFromNow(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	dir := key("now") + "/"
	mustPut(t, ctx, s, dir+"before", "b")

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, dir, 0)
	// Written right after Watch returns: must be seen, the earlier one not.
	rev := mustPut(t, ctx, s, dir+"after", "a")
	evs := nextEvents(t, ch, 1)
	wantEvent(t, evs[0], clusterstore.EventPut, dir+"after", "a")
	if evs[0].KV.ModRevision != rev {
		t.Fatalf("event at %d, want %d", evs[0].KV.ModRevision, rev)
	}
}

func testWatchTxnOneResponse(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	dir := key("wtxn") + "/"
	mustPut(t, ctx, s, dir+"gone", "g")
	from := currentRev(t, ctx, s) + 1
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, dir, from)

	_, rev := mustTxn(t, ctx, s, nil,
		clusterstore.Put(dir+"x", []byte("x")), clusterstore.Delete(dir+"gone"), clusterstore.Put(dir+"y", []byte("y")))
	r := nextResponse(t, ch)
	if r.Revision != rev || len(r.Events) != 3 {
		t.Fatalf("response at %d with %d events, want 3 at %d", r.Revision, len(r.Events), rev)
	}
	wantEvent(t, r.Events[0], clusterstore.EventPut, dir+"x", "x")
	wantEvent(t, r.Events[1], clusterstore.EventDelete, dir+"gone", "")
	wantEvent(t, r.Events[2], clusterstore.EventPut, dir+"y", "y")
}

func testWatchCancel(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	wctx, cancel := context.WithCancel(ctx)
	ch := s.Watch(wctx, key("cancel")+"/", 0)
	cancel()
	deadline := time.After(eventTimeout)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel not closed within %v of cancel", eventTimeout)
		}
	}
}

func testConcurrentCAS(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("counter")
	const workers, each = 4, 20
	var wg sync.WaitGroup
	var conflicts atomic.Int64
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < each; {
				kv, _, _, err := s.Get(ctx, k)
				if err != nil {
					errs <- err
					return
				}
				var n int
				if len(kv.Value) > 0 {
					fmt.Sscan(string(kv.Value), &n)
				}
				ok, _, err := s.Txn(ctx, []clusterstore.Cond{clusterstore.ModRevisionIs(k, kv.ModRevision)},
					[]clusterstore.Op{clusterstore.Put(k, []byte(fmt.Sprint(n+1)))})
				if err != nil {
					errs <- err
					return
				}
				if ok {
					done++
				} else {
					conflicts.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("worker: %v", err)
	}
	wantValue(t, ctx, s, k, fmt.Sprint(workers*each))
	t.Logf("%d conflicts retried", conflicts.Load())
}

// --- leases ----------------------------------------------------------------

func testLeaseRevoke(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k, plain := key("lease", "revoke"), key("lease", "plain")
	id, err := s.Grant(ctx, longTTL)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	ttl, err := s.KeepAliveOnce(ctx, id)
	if err != nil || ttl < longTTL {
		t.Fatalf("keepalive: ttl %v err %v, want >= %v", ttl, err, longTTL)
	}
	mustTxn(t, ctx, s, nil, clusterstore.PutWithLease(k, []byte("v"), id), clusterstore.Put(plain, []byte("p")))
	if kv := wantValue(t, ctx, s, k, "v"); kv.Lease != id {
		t.Fatalf("key lease %x, want %x", kv.Lease, id)
	}

	from := currentRev(t, ctx, s) + 1
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, key("lease")+"/", from)

	if err := s.Revoke(ctx, id); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	// Revoke is synchronous: the key is gone when it returns.
	wantMissing(t, ctx, s, k)
	wantValue(t, ctx, s, plain, "p")
	waitDeleted(t, ch, k)

	if _, err := s.KeepAliveOnce(ctx, id); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("keepalive of revoked lease: err = %v, want ErrLeaseNotFound", err)
	}
	if err := s.Revoke(ctx, id); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("second revoke: err = %v, want ErrLeaseNotFound", err)
	}
	if _, _, err := s.Txn(ctx, nil, []clusterstore.Op{clusterstore.PutWithLease(k, nil, id)}); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("put with revoked lease: err = %v, want ErrLeaseNotFound", err)
	}
}

func testLeaseExpiry(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("lease", "expire")
	id, err := s.Grant(ctx, shortTTL)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	ok, rev := mustTxn(t, ctx, s, nil, clusterstore.PutWithLease(k, []byte("v"), id))
	if !ok {
		t.Fatal("put did not succeed")
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, k, rev+1)
	waitDeleted(t, ch, k)
	wantMissing(t, ctx, s, k)
	if _, err := s.KeepAliveOnce(ctx, id); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("keepalive of expired lease: err = %v, want ErrLeaseNotFound", err)
	}
}

// testLeaseRebind: the last put decides a key's lease, as in etcd; a key
// re-put without a lease outlives the lease it was first bound to.
func testLeaseRebind(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("lease", "rebind")
	id, err := s.Grant(ctx, longTTL)
	if err != nil {
		t.Fatalf("grant: %v", err)
	}
	mustTxn(t, ctx, s, nil, clusterstore.PutWithLease(k, []byte("leased"), id))
	mustPut(t, ctx, s, k, "free")
	if err := s.Revoke(ctx, id); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if kv := wantValue(t, ctx, s, k, "free"); kv.Lease != 0 {
		t.Fatalf("key still bound to lease %x", kv.Lease)
	}
}

// --- sessions --------------------------------------------------------------

func newSession(t *testing.T, ctx context.Context, s clusterstore.Store, ttl time.Duration) *clusterstore.Session {
	t.Helper()
	sess, err := clusterstore.NewSession(ctx, s, ttl)
	if err != nil {
		t.Fatalf("new session: %v", err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	return sess
}

func testSessionOrphan(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("session", "orphan")
	// Two seconds, not shortTTL: every renewal must land within the TTL
	// for the session not to presume itself lost, and a loaded CI machine
	// running -race should not make that flaky.
	const ttl = 2 * shortTTL
	start := time.Now()
	sess := newSession(t, ctx, s, ttl)
	if sess.TTL() != ttl || sess.Lease() == 0 {
		t.Fatalf("session ttl %v lease %x", sess.TTL(), sess.Lease())
	}
	if sess.LastAck().Before(start) {
		t.Fatalf("LastAck %v before the session was asked for", sess.LastAck())
	}
	_, rev := mustTxn(t, ctx, s, nil, clusterstore.PutWithLease(k, []byte("alive"), sess.Lease()))

	// Outlive the lease's TTL: only the keepalives keep the key.
	select {
	case <-sess.Done():
		t.Fatal("session ended while its store was reachable")
	case <-time.After(ttl + ttl/2):
	}
	wantValue(t, ctx, s, k, "alive")
	if ack := sess.LastAck(); !ack.After(start) {
		t.Fatal("LastAck did not advance")
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := s.Watch(wctx, k, rev+1)
	sess.Orphan()
	waitClosed(t, "Done after Orphan", sess.Done())
	// Not revoked: the key stays until the lease expires by itself.
	waitDeleted(t, ch, k)
	if _, err := s.KeepAliveOnce(ctx, sess.Lease()); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("keepalive after expiry: err = %v, want ErrLeaseNotFound", err)
	}
}

func testSessionClose(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := key("session", "close")
	sess := newSession(t, ctx, s, longTTL)
	mustTxn(t, ctx, s, nil, clusterstore.PutWithLease(k, []byte("v"), sess.Lease()))
	if err := sess.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	waitClosed(t, "Done after Close", sess.Done())
	wantMissing(t, ctx, s, k) // revoked, not left to expire
	if err := sess.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.KeepAliveOnce(ctx, sess.Lease()); !errors.Is(err, clusterstore.ErrLeaseNotFound) {
		t.Fatalf("keepalive after close: err = %v, want ErrLeaseNotFound", err)
	}
}

func testSessionLostOnRevoke(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	sess := newSession(t, ctx, s, shortTTL)
	if err := s.Revoke(ctx, sess.Lease()); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	waitClosed(t, "Done after the lease was revoked behind the session's back", sess.Done())
}

// cutOff passes everything through but can make keepalives hang, as for an
// agent cut off from the store.
type cutOff struct {
	clusterstore.Store
	cut atomic.Bool
}

func (c *cutOff) KeepAliveOnce(ctx context.Context, id clusterstore.LeaseID) (time.Duration, error) {
	if c.cut.Load() {
		<-ctx.Done()
		return 0, fmt.Errorf("keepalive %x: %w", id, ctx.Err())
	}
	return c.Store.KeepAliveOnce(ctx, id)
}

func testSessionLostWithoutAck(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	c := &cutOff{Store: s}
	sess := newSession(t, ctx, c, shortTTL)
	c.cut.Store(true)
	waitClosed(t, "Done without acknowledged keepalives", sess.Done())
	// Done means "presumed lost": it must never come before a full TTL has
	// passed since the send time of the last acknowledged keepalive.
	if since := time.Since(sess.LastAck()); since < shortTTL {
		t.Fatalf("Done %v after the last ack, before the TTL %v", since, shortTTL)
	}
}

// --- election --------------------------------------------------------------

func testElectionNoLeader(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	sess := newSession(t, ctx, s, longTTL)
	e := clusterstore.NewElection(s, sess, "none")
	if _, err := e.Leader(ctx); !errors.Is(err, clusterstore.ErrNoLeader) {
		t.Fatalf("leader: err = %v, want ErrNoLeader", err)
	}
	if e.Key() != "" {
		t.Fatalf("key before campaign: %q", e.Key())
	}
	// A guard taken before winning must not hold.
	if ok, _ := mustTxn(t, ctx, s, []clusterstore.Cond{e.Guard()}, clusterstore.Put(key("election", "w"), nil)); ok {
		t.Fatal("guard of a non-candidate held")
	}
	if err := e.Resign(ctx); err != nil {
		t.Fatalf("resign without campaign: %v", err)
	}
}

func campaignAsync(ctx context.Context, e *clusterstore.Election, value string) <-chan error {
	done := make(chan error, 1)
	go func() { done <- e.Campaign(ctx, value) }()
	return done
}

// waitCandidates waits until n keys are registered in election name.
func waitCandidates(t *testing.T, ctx context.Context, s clusterstore.Store, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(eventTimeout)
	for {
		kvs, _, err := s.List(ctx, clusterstore.ElectionPrefix+name+"/", 0)
		if err != nil {
			t.Fatalf("list candidates: %v", err)
		}
		if len(kvs) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d candidates registered, want %d", len(kvs), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantStillWaiting(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("campaign returned (%v) while another candidate leads", err)
	case <-time.After(200 * time.Millisecond):
	}
}

func wantCampaignResult(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(eventTimeout):
		t.Fatalf("campaign still blocked after %v", eventTimeout)
	}
	return nil
}

func wantLeader(t *testing.T, ctx context.Context, e *clusterstore.Election, want string) {
	t.Helper()
	got, err := e.Leader(ctx)
	if err != nil || got != want {
		t.Fatalf("leader = %q, %v; want %q", got, err, want)
	}
}

func guardedWrite(t *testing.T, ctx context.Context, s clusterstore.Store, guard clusterstore.Cond, v string) bool {
	t.Helper()
	ok, _ := mustTxn(t, ctx, s, []clusterstore.Cond{guard}, clusterstore.Put(key("election", "state"), []byte(v)))
	return ok
}

func testElectionFailover(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	sa, sb := newSession(t, ctx, s, longTTL), newSession(t, ctx, s, longTTL)
	ea, eb := clusterstore.NewElection(s, sa, "failover"), clusterstore.NewElection(s, sb, "failover")

	if err := ea.Campaign(ctx, "a"); err != nil {
		t.Fatalf("campaign a: %v", err)
	}
	if !strings.HasPrefix(ea.Key(), clusterstore.ElectionPrefix+"failover/") {
		t.Fatalf("key %q not under the election prefix", ea.Key())
	}
	wantLeader(t, ctx, eb, "a")
	bDone := campaignAsync(ctx, eb, "b")
	waitCandidates(t, ctx, s, "failover", 2)
	wantStillWaiting(t, bDone)

	guardA := ea.Guard()
	if !guardedWrite(t, ctx, s, guardA, "by a") {
		t.Fatal("leader's guarded write failed")
	}
	if guardedWrite(t, ctx, s, eb.Guard(), "by waiting b") {
		t.Fatal("waiting candidate's guarded write succeeded")
	}

	// The leader's session ends: b takes over, and a's old guard is dead
	// even though a's process might still try to use it.
	if err := sa.Close(); err != nil {
		t.Fatalf("close a: %v", err)
	}
	if err := wantCampaignResult(t, bDone); err != nil {
		t.Fatalf("campaign b: %v", err)
	}
	wantLeader(t, ctx, eb, "b")
	if guardedWrite(t, ctx, s, guardA, "by deposed a") {
		t.Fatal("deposed leader's guarded write succeeded")
	}
	if !guardedWrite(t, ctx, s, eb.Guard(), "by b") {
		t.Fatal("new leader's guarded write failed")
	}
	wantValue(t, ctx, s, key("election", "state"), "by b")

	if err := eb.Resign(ctx); err != nil {
		t.Fatalf("resign b: %v", err)
	}
	if _, err := eb.Leader(ctx); !errors.Is(err, clusterstore.ErrNoLeader) {
		t.Fatalf("leader after everyone left: %v, want ErrNoLeader", err)
	}
	if guardedWrite(t, ctx, s, eb.Guard(), "after resign") {
		t.Fatal("guard held after resign")
	}
}

func testElectionQueueOrder(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	const name = "queue"
	sa, sb, sc := newSession(t, ctx, s, longTTL), newSession(t, ctx, s, longTTL), newSession(t, ctx, s, longTTL)
	ea, eb, ec := clusterstore.NewElection(s, sa, name), clusterstore.NewElection(s, sb, name), clusterstore.NewElection(s, sc, name)

	if err := ea.Campaign(ctx, "a"); err != nil {
		t.Fatalf("campaign a: %v", err)
	}
	bctx, bcancel := context.WithCancel(ctx)
	defer bcancel()
	bDone := campaignAsync(bctx, eb, "b")
	waitCandidates(t, ctx, s, name, 2)
	cDone := campaignAsync(ctx, ec, "c")
	waitCandidates(t, ctx, s, name, 3)

	// b gives up: c, which waited on b, must move on to waiting on a.
	bcancel()
	if err := wantCampaignResult(t, bDone); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled campaign b: %v, want context.Canceled", err)
	}
	waitCandidates(t, ctx, s, name, 2)
	wantStillWaiting(t, cDone)
	wantLeader(t, ctx, ec, "a")

	if err := ea.Resign(ctx); err != nil {
		t.Fatalf("resign a: %v", err)
	}
	if err := wantCampaignResult(t, cDone); err != nil {
		t.Fatalf("campaign c: %v", err)
	}
	wantLeader(t, ctx, ea, "c")

	// a campaigns again and queues behind c.
	aDone := campaignAsync(ctx, ea, "a2")
	waitCandidates(t, ctx, s, name, 2)
	wantStillWaiting(t, aDone)
	if err := ec.Resign(ctx); err != nil {
		t.Fatalf("resign c: %v", err)
	}
	if err := wantCampaignResult(t, aDone); err != nil {
		t.Fatalf("campaign a again: %v", err)
	}
	wantLeader(t, ctx, ec, "a2")
}

func testElectionCampaignCancel(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	const name = "cancel"
	sa, sb := newSession(t, ctx, s, longTTL), newSession(t, ctx, s, longTTL)
	ea, eb := clusterstore.NewElection(s, sa, name), clusterstore.NewElection(s, sb, name)
	if err := ea.Campaign(ctx, "a"); err != nil {
		t.Fatalf("campaign a: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := eb.Campaign(tctx, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("campaign with expiring context: %v, want DeadlineExceeded", err)
	}
	// The abandoned candidacy is removed, not left to win later.
	waitCandidates(t, ctx, s, name, 1)
	wantLeader(t, ctx, eb, "a")
	if guardedWrite(t, ctx, s, eb.Guard(), "b") {
		t.Fatal("guard of a cancelled candidate held")
	}
}

func testElectionSessionEnds(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	const name = "sessend"
	sa, sb := newSession(t, ctx, s, longTTL), newSession(t, ctx, s, longTTL)
	ea, eb := clusterstore.NewElection(s, sa, name), clusterstore.NewElection(s, sb, name)
	if err := ea.Campaign(ctx, "a"); err != nil {
		t.Fatalf("campaign a: %v", err)
	}
	bDone := campaignAsync(ctx, eb, "b")
	waitCandidates(t, ctx, s, name, 2)
	sb.Orphan()
	if err := wantCampaignResult(t, bDone); !errors.Is(err, clusterstore.ErrSessionDone) {
		t.Fatalf("campaign after session end: %v, want ErrSessionDone", err)
	}
	if err := eb.Campaign(ctx, "b"); !errors.Is(err, clusterstore.ErrSessionDone) {
		t.Fatalf("campaign on an ended session: %v, want ErrSessionDone", err)
	}
	wantLeader(t, ctx, ea, "a")
}
