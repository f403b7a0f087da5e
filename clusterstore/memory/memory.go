// Package memory is an in-memory, multi-version implementation of
// clusterstore.Store for deterministic tests and single-process tools.
//
// It follows etcd's semantics wherever a caller could tell the difference:
// revisions start at 1 and grow by one per write transaction that changed
// something; a key's create revision is its fencing token; a value comparison
// on a missing key fails; a transaction that writes one key twice is refused;
// leases delete their keys in one revision when they end. Time comes from an
// injectable clock so that lease expiry can be driven by a test.
package memory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/clusterstore"
)

// DefaultMaxTxnOps is the default limit on conditions and on operations in
// one transaction; it matches the limit Bulwark configures on etcd.
const DefaultMaxTxnOps = 16384

// expiryInterval is how often the background goroutine checks leases when the
// store runs on the real clock. It bounds how late an expired lease's keys
// disappear, much like etcd's own lessor loop does.
const expiryInterval = 10 * time.Millisecond

// ErrClosed is returned by every method after Close.
var ErrClosed = errors.New("memory store closed")

// errDuplicateKey mirrors etcd's refusal of a transaction that writes one
// key twice (two puts, or a put and a delete covering it).
var errDuplicateKey = errors.New("duplicate key in transaction")

// errEmptyKey mirrors etcd's refusal of empty keys.
var errEmptyKey = errors.New("empty key")

// Option configures a Store.
type Option func(*config)

type config struct {
	clock     func() time.Time
	maxTxnOps int
}

// WithClock makes the store read time from clock instead of time.Now. With a
// custom clock no background goroutine expires leases: the test advances its
// clock and calls ExpireLeases.
func WithClock(clock func() time.Time) Option {
	return func(c *config) { c.clock = clock }
}

// WithMaxTxnOps sets the most conditions, and the most operations, one
// transaction may carry (default DefaultMaxTxnOps).
func WithMaxTxnOps(n int) Option {
	return func(c *config) { c.maxTxnOps = n }
}

// version is one state of a key: a value, or a tombstone left by a delete.
type version struct {
	kv      clusterstore.KeyValue // kv.ModRevision is the revision of this state
	deleted bool
}

// history is every retained state of one key, oldest first.
type history struct {
	versions []version
}

// at returns the key's state at revision rev, if it existed then.
func (h *history) at(rev int64) (clusterstore.KeyValue, bool) {
	// First version written after rev; the one before it is current at rev.
	i := sort.Search(len(h.versions), func(i int) bool { return h.versions[i].kv.ModRevision > rev })
	if i == 0 {
		return clusterstore.KeyValue{}, false
	}
	v := h.versions[i-1]
	if v.deleted {
		return clusterstore.KeyValue{}, false
	}
	return v.kv, true
}

// latest returns the key's current state.
func (h *history) latest() (clusterstore.KeyValue, bool) {
	if len(h.versions) == 0 {
		return clusterstore.KeyValue{}, false
	}
	v := h.versions[len(h.versions)-1]
	if v.deleted {
		return clusterstore.KeyValue{}, false
	}
	return v.kv, true
}

// logEntry is the events of one revision, kept for watches that start in the
// past.
type logEntry struct {
	rev    int64
	events []clusterstore.Event
}

type lease struct {
	id       clusterstore.LeaseID
	ttl      time.Duration
	deadline time.Time
	keys     map[string]struct{}
}

// Store is the in-memory clusterstore.Store. Create it with New.
type Store struct {
	clock     func() time.Time
	maxTxnOps int

	mu        sync.Mutex
	closed    bool
	rev       int64 // current revision
	compacted int64 // revisions below this are gone (0: none compacted)
	keys      map[string]*history
	sorted    []string // every key in keys, sorted, for prefix scans
	log       []logEntry
	leases    map[clusterstore.LeaseID]*lease
	nextLease clusterstore.LeaseID
	watchers  map[*watcher]struct{}

	stop chan struct{}
	wg   sync.WaitGroup
}

var _ clusterstore.Store = (*Store)(nil)

// New returns an empty store at revision 1, like a fresh etcd.
func New(opts ...Option) *Store {
	cfg := config{maxTxnOps: DefaultMaxTxnOps}
	for _, o := range opts {
		o(&cfg)
	}
	s := &Store{
		clock:     cfg.clock,
		maxTxnOps: cfg.maxTxnOps,
		rev:       1,
		keys:      make(map[string]*history),
		leases:    make(map[clusterstore.LeaseID]*lease),
		watchers:  make(map[*watcher]struct{}),
		stop:      make(chan struct{}),
	}
	if s.clock == nil {
		s.clock = time.Now
		s.wg.Add(1)
		go s.expireLoop()
	}
	return s
}

func (s *Store) expireLoop() {
	defer s.wg.Done()
	t := time.NewTicker(expiryInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.ExpireLeases()
		}
	}
}

// ExpireLeases ends every lease whose deadline the clock has passed, deleting
// its keys (one revision per lease, as etcd does). Tests on a fake clock call
// it after advancing the clock; on the real clock a goroutine calls it.
func (s *Store) ExpireLeases() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	now := s.clock()
	var expired []*lease
	for _, l := range s.leases {
		if !now.Before(l.deadline) {
			expired = append(expired, l)
		}
	}
	// Lease IDs grow with time, so this order is the order they were granted:
	// deterministic revisions for tests.
	sort.Slice(expired, func(i, j int) bool { return expired[i].id < expired[j].id })
	for _, l := range expired {
		s.revokeLocked(l)
	}
}

// Compact discards history before rev: reads and watches below rev then fail
// with clusterstore.ErrCompacted. The state at rev itself stays readable.
func (s *Store) Compact(rev int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if rev > s.rev {
		return fmt.Errorf("compact %d (current %d): %w", rev, s.rev, clusterstore.ErrFutureRevision)
	}
	if rev <= s.compacted {
		return fmt.Errorf("compact %d (compacted %d): %w", rev, s.compacted, clusterstore.ErrCompacted)
	}
	s.compacted = rev

	kept := s.sorted[:0]
	for _, k := range s.sorted {
		h := s.keys[k]
		// Keep the newest version at or before rev (the state at rev) and
		// everything after it; drop it too if it is a tombstone.
		i := sort.Search(len(h.versions), func(i int) bool { return h.versions[i].kv.ModRevision > rev })
		if i > 0 {
			base := i - 1
			if h.versions[base].deleted {
				base = i
			}
			h.versions = append([]version(nil), h.versions[base:]...)
		}
		if len(h.versions) == 0 {
			delete(s.keys, k)
			continue
		}
		kept = append(kept, k)
	}
	s.sorted = kept

	i := sort.Search(len(s.log), func(i int) bool { return s.log[i].rev >= rev })
	s.log = append([]logEntry(nil), s.log[i:]...)
	return nil
}

// Close stops lease expiry and ends every watch with ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for w := range s.watchers {
		w.fail(ErrClosed)
	}
	s.watchers = nil
	s.mu.Unlock()
	close(s.stop)
	s.wg.Wait()
	return nil
}

// Get implements clusterstore.Store.
func (s *Store) Get(ctx context.Context, key string) (clusterstore.KeyValue, bool, int64, error) {
	if err := ctx.Err(); err != nil {
		return clusterstore.KeyValue{}, false, 0, fmt.Errorf("get %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return clusterstore.KeyValue{}, false, 0, fmt.Errorf("get %q: %w", key, ErrClosed)
	}
	h, ok := s.keys[key]
	if !ok {
		return clusterstore.KeyValue{}, false, s.rev, nil
	}
	kv, ok := h.latest()
	return cloneKV(kv), ok, s.rev, nil
}

// List implements clusterstore.Store.
func (s *Store) List(ctx context.Context, prefix string, rev int64) ([]clusterstore.KeyValue, int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("list %q: %w", prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, fmt.Errorf("list %q: %w", prefix, ErrClosed)
	}
	switch {
	case rev == 0:
		rev = s.rev
	case rev > s.rev:
		return nil, 0, fmt.Errorf("list %q at %d (current %d): %w", prefix, rev, s.rev, clusterstore.ErrFutureRevision)
	case rev < s.compacted:
		return nil, 0, fmt.Errorf("list %q at %d (compacted %d): %w", prefix, rev, s.compacted, clusterstore.ErrCompacted)
	}
	var kvs []clusterstore.KeyValue
	for i := sort.SearchStrings(s.sorted, prefix); i < len(s.sorted) && strings.HasPrefix(s.sorted[i], prefix); i++ {
		if kv, ok := s.keys[s.sorted[i]].at(rev); ok {
			kvs = append(kvs, cloneKV(kv))
		}
	}
	return kvs, rev, nil
}

// Txn implements clusterstore.Store.
func (s *Store) Txn(ctx context.Context, conds []clusterstore.Cond, ops []clusterstore.Op) (bool, int64, error) {
	if err := ctx.Err(); err != nil {
		return false, 0, fmt.Errorf("txn: %w", err)
	}
	if len(conds) > s.maxTxnOps || len(ops) > s.maxTxnOps {
		return false, 0, fmt.Errorf("txn with %d conditions and %d operations (limit %d): %w",
			len(conds), len(ops), s.maxTxnOps, clusterstore.ErrTooManyOps)
	}
	if err := checkTxn(conds, ops); err != nil {
		return false, 0, fmt.Errorf("txn: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, 0, fmt.Errorf("txn: %w", ErrClosed)
	}
	for _, c := range conds {
		if !s.holdsLocked(c) {
			return false, s.rev, nil
		}
	}
	// etcd checks leases only on the branch it takes, after the comparison.
	for _, op := range ops {
		if op.Type == clusterstore.OpPut && op.Lease != 0 {
			if _, ok := s.leases[op.Lease]; !ok {
				return false, 0, fmt.Errorf("txn: put %q with lease %x: %w", op.Key, op.Lease, clusterstore.ErrLeaseNotFound)
			}
		}
	}

	rev := s.rev + 1
	var events []clusterstore.Event
	for _, op := range ops {
		switch op.Type {
		case clusterstore.OpPut:
			events = append(events, s.putLocked(op, rev))
		case clusterstore.OpDelete:
			if ev, ok := s.deleteLocked(op.Key, rev); ok {
				events = append(events, ev)
			}
		case clusterstore.OpDeletePrefix:
			// Collect first: deleting does not change s.sorted, but keep
			// the scan independent of the mutation anyway.
			var victims []string
			for i := sort.SearchStrings(s.sorted, op.Key); i < len(s.sorted) && strings.HasPrefix(s.sorted[i], op.Key); i++ {
				victims = append(victims, s.sorted[i])
			}
			for _, k := range victims {
				if ev, ok := s.deleteLocked(k, rev); ok {
					events = append(events, ev)
				}
			}
		}
	}
	s.commitLocked(rev, events)
	return true, s.rev, nil
}

// checkTxn refuses what etcd refuses before looking at the data: empty keys,
// unknown op types, and a key written twice.
func checkTxn(conds []clusterstore.Cond, ops []clusterstore.Op) error {
	for _, c := range conds {
		if c.Key == "" {
			return fmt.Errorf("condition: %w", errEmptyKey)
		}
	}
	puts := make(map[string]struct{})
	var delKeys, delPrefixes []string
	for _, op := range ops {
		switch op.Type {
		case clusterstore.OpPut:
			if op.Key == "" {
				return fmt.Errorf("put: %w", errEmptyKey)
			}
			if _, dup := puts[op.Key]; dup {
				return fmt.Errorf("put %q: %w", op.Key, errDuplicateKey)
			}
			puts[op.Key] = struct{}{}
		case clusterstore.OpDelete:
			if op.Key == "" {
				return fmt.Errorf("delete: %w", errEmptyKey)
			}
			delKeys = append(delKeys, op.Key)
		case clusterstore.OpDeletePrefix:
			// An empty prefix is every key, as in etcd's WithPrefix("").
			delPrefixes = append(delPrefixes, op.Key)
		default:
			return fmt.Errorf("op %q: unknown type %d", op.Key, op.Type)
		}
	}
	for _, k := range delKeys {
		if _, dup := puts[k]; dup {
			return fmt.Errorf("put and delete %q: %w", k, errDuplicateKey)
		}
	}
	for _, p := range delPrefixes {
		for k := range puts {
			if strings.HasPrefix(k, p) {
				return fmt.Errorf("put %q under deleted prefix %q: %w", k, p, errDuplicateKey)
			}
		}
	}
	return nil
}

func (s *Store) holdsLocked(c clusterstore.Cond) bool {
	var kv clusterstore.KeyValue
	var ok bool
	if h := s.keys[c.Key]; h != nil {
		kv, ok = h.latest()
	}
	var r int
	switch c.Target {
	case clusterstore.TargetCreateRevision:
		r = cmpInt(kv.CreateRevision, c.Rev)
	case clusterstore.TargetModRevision:
		r = cmpInt(kv.ModRevision, c.Rev)
	case clusterstore.TargetValue:
		// As in etcd: there is no value to compare on a missing key, so
		// every value comparison fails, NotEqual included.
		if !ok {
			return false
		}
		r = bytes.Compare(kv.Value, c.Value)
	default:
		return false
	}
	switch c.Cmp {
	case clusterstore.Equal:
		return r == 0
	case clusterstore.NotEqual:
		return r != 0
	case clusterstore.Greater:
		return r > 0
	case clusterstore.Less:
		return r < 0
	default:
		return false
	}
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	default:
		return 0
	}
}

func (s *Store) putLocked(op clusterstore.Op, rev int64) clusterstore.Event {
	h := s.keys[op.Key]
	if h == nil {
		h = &history{}
		s.keys[op.Key] = h
		i := sort.SearchStrings(s.sorted, op.Key)
		s.sorted = append(s.sorted, "")
		copy(s.sorted[i+1:], s.sorted[i:])
		s.sorted[i] = op.Key
	}
	prev, existed := h.latest()
	kv := clusterstore.KeyValue{
		Key:            op.Key,
		Value:          bytes.Clone(op.Value),
		CreateRevision: rev,
		ModRevision:    rev,
		Version:        1,
		Lease:          op.Lease,
	}
	if existed {
		kv.CreateRevision = prev.CreateRevision
		kv.Version = prev.Version + 1
		if prev.Lease != 0 && prev.Lease != op.Lease {
			if l := s.leases[prev.Lease]; l != nil {
				delete(l.keys, op.Key)
			}
		}
	}
	if kv.Value == nil {
		kv.Value = []byte{}
	}
	if op.Lease != 0 {
		s.leases[op.Lease].keys[op.Key] = struct{}{}
	}
	h.versions = append(h.versions, version{kv: kv})
	return clusterstore.Event{Type: clusterstore.EventPut, KV: kv}
}

// deleteLocked tombstones key at rev. ok is false if it did not exist.
func (s *Store) deleteLocked(key string, rev int64) (clusterstore.Event, bool) {
	h := s.keys[key]
	if h == nil {
		return clusterstore.Event{}, false
	}
	prev, existed := h.latest()
	if !existed {
		return clusterstore.Event{}, false
	}
	if prev.Lease != 0 {
		if l := s.leases[prev.Lease]; l != nil {
			delete(l.keys, key)
		}
	}
	tomb := clusterstore.KeyValue{Key: key, ModRevision: rev}
	h.versions = append(h.versions, version{kv: tomb, deleted: true})
	return clusterstore.Event{Type: clusterstore.EventDelete, KV: tomb}, true
}

// commitLocked makes rev current if events changed anything, and hands the
// events to watchers. Like etcd, a write that changed nothing (deleting a
// missing key) does not create a revision.
func (s *Store) commitLocked(rev int64, events []clusterstore.Event) {
	if len(events) == 0 {
		return
	}
	s.rev = rev
	s.log = append(s.log, logEntry{rev: rev, events: events})
	for w := range s.watchers {
		w.offer(rev, events)
	}
}

func (s *Store) revokeLocked(l *lease) {
	delete(s.leases, l.id)
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rev := s.rev + 1
	var events []clusterstore.Event
	for _, k := range keys {
		if ev, ok := s.deleteLocked(k, rev); ok {
			events = append(events, ev)
		}
	}
	s.commitLocked(rev, events)
}

// Grant implements clusterstore.Store. The TTL is kept exactly (etcd rounds
// up to whole seconds and to its minimum; this store does not).
func (s *Store) Grant(ctx context.Context, ttl time.Duration) (clusterstore.LeaseID, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("grant: %w", err)
	}
	if ttl <= 0 {
		return 0, fmt.Errorf("grant: ttl %v must be positive", ttl)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("grant: %w", ErrClosed)
	}
	s.nextLease++
	l := &lease{id: s.nextLease, ttl: ttl, deadline: s.clock().Add(ttl), keys: make(map[string]struct{})}
	s.leases[l.id] = l
	return l.id, nil
}

// KeepAliveOnce implements clusterstore.Store.
func (s *Store) KeepAliveOnce(ctx context.Context, id clusterstore.LeaseID) (time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("keepalive %x: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, fmt.Errorf("keepalive %x: %w", id, ErrClosed)
	}
	l, ok := s.leases[id]
	// A lease past its deadline is dead even if the expiry loop has not run
	// yet; renewing it would resurrect a lease others may have seen expire.
	now := s.clock()
	if ok && !now.Before(l.deadline) {
		s.revokeLocked(l)
		ok = false
	}
	if !ok {
		return 0, fmt.Errorf("keepalive %x: %w", id, clusterstore.ErrLeaseNotFound)
	}
	l.deadline = now.Add(l.ttl)
	return l.ttl, nil
}

// Revoke implements clusterstore.Store.
func (s *Store) Revoke(ctx context.Context, id clusterstore.LeaseID) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("revoke %x: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("revoke %x: %w", id, ErrClosed)
	}
	l, ok := s.leases[id]
	if !ok {
		return fmt.Errorf("revoke %x: %w", id, clusterstore.ErrLeaseNotFound)
	}
	s.revokeLocked(l)
	return nil
}

// Watch implements clusterstore.Store. Each watcher has its own unbounded
// queue, so a slow reader costs memory but never delays a Txn.
func (s *Store) Watch(ctx context.Context, prefix string, fromRev int64) <-chan clusterstore.WatchResponse {
	w := &watcher{
		prefix: prefix,
		out:    make(chan clusterstore.WatchResponse),
		wake:   make(chan struct{}, 1),
	}
	s.mu.Lock()
	switch {
	case s.closed:
		w.fail(ErrClosed)
	case fromRev != 0 && fromRev < s.compacted:
		w.fail(fmt.Errorf("watch %q from %d (compacted %d): %w", prefix, fromRev, s.compacted, clusterstore.ErrCompacted))
	default:
		if fromRev == 0 {
			fromRev = s.rev + 1
		}
		w.from = fromRev
		i := sort.Search(len(s.log), func(i int) bool { return s.log[i].rev >= fromRev })
		for _, e := range s.log[i:] {
			w.offer(e.rev, e.events)
		}
		s.watchers[w] = struct{}{}
	}
	s.mu.Unlock()

	go func() {
		defer close(w.out)
		w.run(ctx)
		s.mu.Lock()
		if s.watchers != nil {
			delete(s.watchers, w)
		}
		s.mu.Unlock()
	}()
	return w.out
}

// watcher buffers responses for one Watch call between the store (which
// must never block on it) and the reader.
type watcher struct {
	prefix string
	from   int64 // first revision to deliver
	out    chan clusterstore.WatchResponse
	wake   chan struct{} // capacity 1: "the queue changed"

	mu    sync.Mutex
	queue []clusterstore.WatchResponse
	done  bool // a terminal (Err) response is queued; accept nothing more
}

// offer queues the events of one revision that fall under the prefix.
// Called with the store's lock held; it only takes the watcher's own lock.
func (w *watcher) offer(rev int64, events []clusterstore.Event) {
	if rev < w.from {
		return
	}
	var mine []clusterstore.Event
	for _, ev := range events {
		if strings.HasPrefix(ev.KV.Key, w.prefix) {
			ev.KV = cloneKV(ev.KV) // readers own what they receive
			mine = append(mine, ev)
		}
	}
	if len(mine) == 0 {
		return
	}
	w.push(clusterstore.WatchResponse{Revision: rev, Events: mine})
}

func (w *watcher) fail(err error) {
	w.push(clusterstore.WatchResponse{Err: err})
}

func (w *watcher) push(r clusterstore.WatchResponse) {
	w.mu.Lock()
	if !w.done {
		w.queue = append(w.queue, r)
		w.done = r.Err != nil
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run delivers queued responses until ctx ends or a terminal one was sent.
func (w *watcher) run(ctx context.Context) {
	for {
		w.mu.Lock()
		var next clusterstore.WatchResponse
		have := len(w.queue) > 0
		if have {
			next = w.queue[0]
			w.queue[0] = clusterstore.WatchResponse{} // let the GC have it
			w.queue = w.queue[1:]
		}
		w.mu.Unlock()

		if !have {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		select {
		case <-ctx.Done():
			return
		case w.out <- next:
		}
		if next.Err != nil {
			return
		}
	}
}

func cloneKV(kv clusterstore.KeyValue) clusterstore.KeyValue {
	if kv.Value != nil {
		kv.Value = bytes.Clone(kv.Value)
	}
	return kv
}
