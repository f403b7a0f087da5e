package clusterstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// revokeTimeout bounds the best-effort revoke in Session.Close: a process
// shutting down must not hang on an unreachable store, and the lease expires
// by itself anyway.
const revokeTimeout = 2 * time.Second

// Session is a lease kept alive by this process: the liveness of whatever
// keys are bound to it (a heartbeat, a leadership key).
//
// Unlike etcd's concurrency.Session, it renews with KeepAliveOnce on its own
// schedule and records the send time of every acknowledged renewal, so that
// the holder can measure, on its own monotonic clock, how long it may still
// assume the lease is alive (LastAck + TTL). The lease may in fact live longer
// (etcd rounds TTLs up and extends them on leader change); Done errs on the
// side of "lost", which is the safe side for self-fencing.
type Session struct {
	store Store
	id    LeaseID
	ttl   time.Duration

	done     chan struct{}
	doneOnce sync.Once

	// stopCtx aborts an in-flight keepalive when the session is closed.
	stopCtx  context.Context
	stopFn   context.CancelFunc
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu      sync.Mutex
	lastAck time.Time
	closed  bool

	observe func(latency time.Duration, err error)
}

// SessionOption adjusts a session.
type SessionOption func(*Session)

// WithKeepAliveObserver is told the round-trip time (or the error) of every
// keepalive, e.g. for a lease renew latency metric.
func WithKeepAliveObserver(f func(latency time.Duration, err error)) SessionOption {
	return func(s *Session) { s.observe = f }
}

// NewSession grants a lease of ttl and keeps it alive, renewing every ttl/3,
// until Close, Orphan, or the lease is lost.
func NewSession(ctx context.Context, s Store, ttl time.Duration, opts ...SessionOption) (*Session, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("new session: ttl %v must be positive", ttl)
	}
	// The grant's send time is the first "acknowledged keepalive": the lease
	// cannot have started its TTL before we asked for it.
	sent := time.Now()
	id, err := s.Grant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	stopCtx, stopFn := context.WithCancel(context.Background())
	sess := &Session{
		store:   s,
		id:      id,
		ttl:     ttl,
		done:    make(chan struct{}),
		stopCtx: stopCtx,
		stopFn:  stopFn,
		lastAck: sent,
	}
	for _, o := range opts {
		o(sess)
	}
	sess.wg.Add(1)
	go sess.keepAlive()
	return sess, nil
}

// Lease is the session's lease, to bind keys to it with PutWithLease.
func (s *Session) Lease() LeaseID { return s.id }

// TTL is the lease TTL the session asked for.
func (s *Session) TTL() time.Duration { return s.ttl }

// Done is closed when the lease is known or presumed lost (the store said
// it is gone, or no renewal was acknowledged within TTL of its send time), or
// after Close or Orphan. Anything done "as the holder" must stop then.
func (s *Session) Done() <-chan struct{} { return s.done }

// LastAck is the send time (monotonic) of the last acknowledged renewal, or
// of the grant. The lease is alive at least until LastAck + TTL as far as
// this process can know, and no longer.
func (s *Session) LastAck() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastAck
}

func (s *Session) ack(sent time.Time) {
	s.mu.Lock()
	if sent.After(s.lastAck) {
		s.lastAck = sent
	}
	s.mu.Unlock()
}

func (s *Session) markDone() { s.doneOnce.Do(func() { close(s.done) }) }

// stopKeepAlive stops the renewal goroutine and waits for it.
func (s *Session) stopKeepAlive() {
	s.stopOnce.Do(s.stopFn)
	s.wg.Wait()
}

func (s *Session) keepAlive() {
	defer s.wg.Done()
	defer s.markDone()

	interval := s.ttl / 3
	// After a failed renewal retry sooner, so that one lost packet does not
	// eat a third of the TTL, but without spinning.
	retry := max(s.ttl/10, time.Millisecond)
	wait := interval
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		deadline := s.LastAck().Add(s.ttl)
		if d := time.Until(deadline); d < wait {
			wait = d
		}
		if wait <= 0 {
			return // presumed lost
		}
		timer.Reset(wait)
		select {
		case <-s.stopCtx.Done():
			return
		case <-timer.C:
		}
		if !time.Now().Before(deadline) {
			return
		}

		sent := time.Now()
		// Waiting past the deadline is pointless: by then we must assume
		// the lease is gone whatever the answer.
		ctx, cancel := context.WithDeadline(s.stopCtx, deadline)
		_, err := s.store.KeepAliveOnce(ctx, s.id)
		cancel()
		if s.observe != nil {
			s.observe(time.Since(sent), err)
		}
		switch {
		case err == nil:
			s.ack(sent)
			wait = interval
		case errors.Is(err, ErrLeaseNotFound):
			return
		default:
			wait = retry
		}
	}
}

// Close stops renewing and revokes the lease so that its keys go at once
// rather than after the TTL. The revoke is best effort: if it fails the lease
// still expires. It returns the revoke error, if any other than the lease
// already being gone.
func (s *Session) Close() error {
	s.mu.Lock()
	already := s.closed
	s.closed = true
	s.mu.Unlock()
	s.stopKeepAlive()
	s.markDone()
	if already {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), revokeTimeout)
	defer cancel()
	if err := s.store.Revoke(ctx, s.id); err != nil && !errors.Is(err, ErrLeaseNotFound) {
		return fmt.Errorf("close session %x: %w", s.id, err)
	}
	return nil
}

// Orphan stops renewing without revoking, so the lease ends by expiry as if
// this process had crashed or been cut off.
func (s *Session) Orphan() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stopKeepAlive()
	s.markDone()
}
