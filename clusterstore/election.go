package clusterstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// ErrNoLeader: nobody is campaigning in the election.
var ErrNoLeader = errors.New("election has no leader")

// cleanupTimeout bounds the removal of a campaign key after the caller gave
// up; if it fails the key still goes with the session's lease.
const cleanupTimeout = 2 * time.Second

// rewatchBackoff spaces re-reads when a watch keeps failing (compaction, a
// leader change at the store) so a waiter does not spin.
const rewatchBackoff = 50 * time.Millisecond

// Election is leader election over a Store, the way etcd's concurrency
// package does it: each candidate puts ElectionPrefix+name+"/"+hex(lease)
// bound to its session lease; the candidate whose key has the lowest create
// revision leads; the others each wait for the deletion of the key just
// before their own, so a change of leader wakes one waiter, not all of them.
//
// The leader's key create revision is its fencing token: every write made as
// leader must carry Guard(), so that a deposed leader's late writes fail.
type Election struct {
	store  Store
	sess   *Session
	prefix string

	mu      sync.Mutex
	key     string // own key once campaigning, else ""
	rev     int64  // create revision of key
	leading bool   // Campaign returned nil and the key was not resigned since
}

// NewElection returns the election called name, campaigned in with sess.
func NewElection(s Store, sess *Session, name string) *Election {
	return &Election{store: s, sess: sess, prefix: ElectionPrefix + name + "/"}
}

// Key is this candidate's key ("" before Campaign).
func (e *Election) Key() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.key
}

// Guard holds while this candidate's key is the one it created when it won.
// Put it in every Txn made as leader. Before a successful Campaign, and after
// Resign, it never holds. Take it once after Campaign and reuse it: a Guard
// taken as leader keeps failing after the leadership is lost, even if this
// process campaigns and wins again with a new key.
func (e *Election) Guard() Cond {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.leading {
		// A create revision is never negative: this cannot hold. (Guarding
		// with CreateRevisionIs(key, 0) would instead pass for a missing key,
		// and a waiter's own key would pass without it leading.)
		return Cond{Key: e.prefix, Target: TargetCreateRevision, Cmp: Less, Rev: 0}
	}
	return CreateRevisionIs(e.key, e.rev)
}

// Campaign blocks until this session leads the election, with value as the
// leader's value. It returns ErrSessionDone if the session ends first, and
// ctx's error if ctx ends first, after removing its key. (If the store fails
// while the key is being written, the key may remain until the session ends;
// campaigning again with the same session reuses it.)
func (e *Election) Campaign(ctx context.Context, value string) error {
	select {
	case <-e.sess.Done():
		return fmt.Errorf("campaign %s: %w", e.prefix, ErrSessionDone)
	default:
	}
	key := e.prefix + strconv.FormatInt(int64(e.sess.Lease()), 16)
	rev, err := e.register(ctx, key, value)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.key, e.rev, e.leading = key, rev, false
	e.mu.Unlock()

	if err := e.waitPredecessors(ctx, rev); err != nil {
		// Leave no key that would make us leader later with nobody acting
		// on it. ctx may be the reason we stopped, so do not use it.
		cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		_ = e.Resign(cctx)
		cancel()
		return fmt.Errorf("campaign %s: %w", e.prefix, err)
	}

	// The wait can end because our own key went with the lease; leading
	// then would be a lie.
	kv, ok, _, err := e.store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("campaign %s: check own key: %w", e.prefix, err)
	}
	if !ok || kv.CreateRevision != rev {
		e.mu.Lock()
		e.key, e.rev, e.leading = "", 0, false
		e.mu.Unlock()
		return fmt.Errorf("campaign %s: own key gone: %w", e.prefix, ErrSessionDone)
	}
	e.mu.Lock()
	e.leading = e.key == key && e.rev == rev
	e.mu.Unlock()
	return nil
}

// register creates key (or reuses it when this session already has one,
// e.g. a second Campaign) and returns its create revision.
func (e *Election) register(ctx context.Context, key, value string) (int64, error) {
	for {
		ok, rev, err := e.store.Txn(ctx,
			[]Cond{Missing(key)},
			[]Op{PutWithLease(key, []byte(value), e.sess.Lease())})
		if err != nil {
			if errors.Is(err, ErrLeaseNotFound) {
				return 0, fmt.Errorf("campaign %s: %w: %w", e.prefix, ErrSessionDone, err)
			}
			return 0, fmt.Errorf("campaign %s: %w", e.prefix, err)
		}
		if ok {
			return rev, nil
		}
		// Already registered: keep the create revision (our place in the
		// queue) and refresh the value.
		kv, exists, _, err := e.store.Get(ctx, key)
		if err != nil {
			return 0, fmt.Errorf("campaign %s: %w", e.prefix, err)
		}
		if !exists {
			continue // deleted in between; try creating again
		}
		ok, _, err = e.store.Txn(ctx,
			[]Cond{CreateRevisionIs(key, kv.CreateRevision)},
			[]Op{PutWithLease(key, []byte(value), e.sess.Lease())})
		if err != nil {
			if errors.Is(err, ErrLeaseNotFound) {
				return 0, fmt.Errorf("campaign %s: %w: %w", e.prefix, ErrSessionDone, err)
			}
			return 0, fmt.Errorf("campaign %s: %w", e.prefix, err)
		}
		if ok {
			return kv.CreateRevision, nil
		}
	}
}

// waitPredecessors returns when no key under the prefix has a create
// revision lower than rev.
func (e *Election) waitPredecessors(ctx context.Context, rev int64) error {
	for {
		kvs, atRev, err := e.store.List(ctx, e.prefix, 0)
		if err != nil {
			return fmt.Errorf("list candidates: %w", err)
		}
		var pred *KeyValue
		for i := range kvs {
			kv := &kvs[i]
			if kv.CreateRevision < rev && (pred == nil || kv.CreateRevision > pred.CreateRevision) {
				pred = kv
			}
		}
		if pred == nil {
			return nil
		}
		if err := e.waitDelete(ctx, pred.Key, atRev+1); err != nil {
			return err
		}
	}
}

// waitDelete returns when key is deleted at or after fromRev, or when the
// watch breaks (the caller then re-reads, which is always safe).
func (e *Election) waitDelete(ctx context.Context, key string, fromRev int64) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := e.store.Watch(wctx, key, fromRev)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.sess.Done():
			return ErrSessionDone
		case resp, ok := <-ch:
			if !ok || resp.Err != nil {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-e.sess.Done():
					return ErrSessionDone
				case <-time.After(rewatchBackoff):
					return nil
				}
			}
			for _, ev := range resp.Events {
				// The watch is on a prefix: ignore keys that merely start
				// with ours.
				if ev.Type == EventDelete && ev.KV.Key == key {
					return nil
				}
			}
		}
	}
}

// Resign gives up leadership (or the place in the queue) by deleting this
// candidate's key, so that the next candidate leads without waiting for the
// lease to expire.
func (e *Election) Resign(ctx context.Context) error {
	e.mu.Lock()
	key, rev := e.key, e.rev
	e.mu.Unlock()
	if key == "" {
		return nil
	}
	if _, _, err := e.store.Txn(ctx, []Cond{CreateRevisionIs(key, rev)}, []Op{Delete(key)}); err != nil {
		return fmt.Errorf("resign %s: %w", key, err)
	}
	e.mu.Lock()
	if e.key == key && e.rev == rev {
		e.key, e.rev, e.leading = "", 0, false
	}
	e.mu.Unlock()
	return nil
}

// Leader returns the current leader's value, or ErrNoLeader.
func (e *Election) Leader(ctx context.Context) (string, error) {
	kvs, _, err := e.store.List(ctx, e.prefix, 0)
	if err != nil {
		return "", fmt.Errorf("leader %s: %w", e.prefix, err)
	}
	var leader *KeyValue
	for i := range kvs {
		if leader == nil || kvs[i].CreateRevision < leader.CreateRevision {
			leader = &kvs[i]
		}
	}
	if leader == nil {
		return "", fmt.Errorf("leader %s: %w", e.prefix, ErrNoLeader)
	}
	return string(leader.Value), nil
}
