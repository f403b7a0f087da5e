package drivers

import (
	"context"
	"sync"
)

// KeyedMutex serialises a driver's operations per workload without holding
// up the others; waiting respects the caller's context. Lock returns the
// unlock function.
type KeyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{}
	refs int
}

func (k *KeyedMutex) Lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyLock)
	}
	l := k.m[key]
	if l == nil {
		l = &keyLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
	unlock := func() { <-l.ch; release() }
	// Take a free lock even with a done context: Destroy after a deadline
	// must still be able to run.
	select {
	case l.ch <- struct{}{}:
		return unlock, nil
	default:
	}
	select {
	case l.ch <- struct{}{}:
		return unlock, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
