package clusterstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// ErrClaimHeld: the resource is claimed by another allocation. The error
// is a *HeldError carrying the current holder.
var ErrClaimHeld = errors.New("claimed by another workload")

// ErrStaleEpoch: the allocation the claim is for no longer exists at that
// epoch (the workload moved on); nothing was written.
var ErrStaleEpoch = errors.New("allocation superseded")

// HeldError says who holds a resource.
type HeldError struct{ Holder api.Claim }

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s held by %s on %s (epoch %d)", e.Holder.Resource, e.Holder.Workload, e.Holder.Host, e.Holder.Epoch)
}

func (e *HeldError) Unwrap() error { return ErrClaimHeld }

// SameHolder reports whether two claims are by the same allocation.
func SameHolder(a, b api.Claim) bool {
	return a.Workload == b.Workload && a.Host == b.Host && a.Epoch == b.Epoch
}

// AcquireClaim takes the claim at key for c's allocation (c.Workload at
// c.Epoch on c.Host). It succeeds only while that allocation exists at that
// epoch and nobody else holds the key; taking a claim one already holds is
// a no-op. The claim carries no lease: a holder that dies keeps it until its
// agent releases it or the leader releases it after fencing the host.
func AcquireClaim(ctx context.Context, s Store, key string, c api.Claim, now time.Time) (api.Claim, error) {
	if c.Epoch <= 0 {
		// CreateRevisionIs(key, 0) holds for a missing key: never claim
		// for an allocation that does not exist.
		return api.Claim{}, fmt.Errorf("claim %s for %s at epoch %d: %w", c.Resource, c.Workload, c.Epoch, ErrStaleEpoch)
	}
	for attempt := 0; attempt < 3; attempt++ {
		cur, ok, err := readClaim(ctx, s, key)
		if err != nil {
			return api.Claim{}, err
		}
		if ok {
			if SameHolder(cur.Value, c) {
				// Ours already: still only while the allocation is.
				if err := allocationAt(ctx, s, c); err != nil {
					return api.Claim{}, err
				}
				return cur.Value, nil
			}
			return cur.Value, &HeldError{Holder: cur.Value}
		}
		c.Schema, c.Since = api.SchemaVersion, now.UTC()
		done, _, err := s.Txn(ctx,
			[]Cond{Missing(key), CreateRevisionIs(AllocationKey(c.Workload), c.Epoch)},
			[]Op{Put(key, Encode(c))})
		if err != nil {
			return api.Claim{}, fmt.Errorf("claim %s: %w", c.Resource, err)
		}
		if done {
			return c, nil
		}
		if err := allocationAt(ctx, s, c); err != nil {
			return api.Claim{}, err
		}
		// Someone claimed it between our read and our write: read again.
	}
	return api.Claim{}, fmt.Errorf("claim %s: contended, try again", c.Resource)
}

// allocationAt checks that c's allocation exists at c's epoch.
func allocationAt(ctx context.Context, s Store, c api.Claim) error {
	akv, exists, _, err := s.Get(ctx, AllocationKey(c.Workload))
	if err != nil {
		return err
	}
	if !exists || akv.CreateRevision != c.Epoch {
		return fmt.Errorf("claim %s for %s at epoch %d: %w", c.Resource, c.Workload, c.Epoch, ErrStaleEpoch)
	}
	return nil
}

// ReleaseClaim removes the claim at key if c's allocation holds it; a claim
// held by another allocation, or none, is left alone.
func ReleaseClaim(ctx context.Context, s Store, key string, c api.Claim) error {
	for attempt := 0; attempt < 3; attempt++ {
		cur, ok, err := readClaim(ctx, s, key)
		if err != nil || !ok || !SameHolder(cur.Value, c) {
			return err
		}
		done, _, err := s.Txn(ctx, []Cond{ModRevisionIs(key, cur.ModRevision)}, []Op{Delete(key)})
		if err != nil {
			return fmt.Errorf("release %s: %w", c.Resource, err)
		}
		if done {
			return nil
		}
		// Changed between our read and our delete: look again.
	}
	return fmt.Errorf("release %s: contended, try again", c.Resource)
}

func readClaim(ctx context.Context, s Store, key string) (Versioned[api.Claim], bool, error) {
	kv, ok, _, err := s.Get(ctx, key)
	if err != nil {
		return Versioned[api.Claim]{}, false, fmt.Errorf("read %s: %w", key, err)
	}
	if !ok {
		return Versioned[api.Claim]{}, false, nil
	}
	var c api.Claim
	if err := Decode(kv, &c); err != nil {
		return Versioned[api.Claim]{}, false, err
	}
	return Versioned[api.Claim]{c, kv.CreateRevision, kv.ModRevision}, true, nil
}
