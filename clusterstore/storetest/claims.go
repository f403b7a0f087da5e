package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// Claims (clusterstore.AcquireClaim / ReleaseClaim): the exclusive holds of
// volumes and floating IPs, each carrying its allocation's epoch.

// claimTests are run by Run with the rest of the contract.
func claimTests() []struct {
	name string
	fn   func(t *testing.T, s clusterstore.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s clusterstore.Store)
	}{
		{"ClaimAcquireIdempotent", testClaimIdempotent},
		{"ClaimHeldByAnother", testClaimHeld},
		{"ClaimReleaseByNonHolderIsNoop", testClaimReleaseNonHolder},
		{"ClaimStaleEpochWritesNothing", testClaimStaleEpoch},
		{"ClaimEpochZeroRefused", testClaimEpochZero},
		{"ClaimNeverTwoHolders", testClaimNeverTwoHolders},
	}
}

// claimTime is the "now" of the claims written here; the store never reads it.
var claimTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// placeAlloc creates workload's allocation on host and returns its epoch
// (the create revision). The allocation must not exist.
func placeAlloc(t *testing.T, ctx context.Context, s clusterstore.Store, workload, host string) int64 {
	t.Helper()
	epoch, err := createAlloc(ctx, s, workload, host)
	if err != nil {
		t.Fatal(err)
	}
	return epoch
}

func createAlloc(ctx context.Context, s clusterstore.Store, workload, host string) (int64, error) {
	k := clusterstore.AllocationKey(workload)
	a := api.Allocation{Schema: api.SchemaVersion, Workload: workload, Host: host, CPUs: 1, CreatedAt: claimTime}
	ok, rev, err := s.Txn(ctx, []clusterstore.Cond{clusterstore.Missing(k)}, []clusterstore.Op{clusterstore.Put(k, clusterstore.Encode(a))})
	if err != nil {
		return 0, fmt.Errorf("create allocation %s: %w", workload, err)
	}
	if !ok {
		return 0, fmt.Errorf("create allocation %s: it exists", workload)
	}
	// Its epoch is what readers derive: the key's create revision.
	kv, found, _, err := s.Get(ctx, k)
	if err != nil || !found {
		return 0, fmt.Errorf("read allocation %s back: found=%v err=%v", workload, found, err)
	}
	got, err := clusterstore.DecodeAllocation(kv)
	if err != nil {
		return 0, err
	}
	if got.Epoch != rev || got.Host != host {
		return 0, fmt.Errorf("allocation %s read back at epoch %d on %s, created at %d on %s", workload, got.Epoch, got.Host, rev, host)
	}
	return rev, nil
}

// moveAlloc deletes workload's allocation and creates it on host: a new
// epoch, as the leader's recovery does.
func moveAlloc(ctx context.Context, s clusterstore.Store, workload, host string) (int64, error) {
	if _, _, err := s.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.AllocationKey(workload))}); err != nil {
		return 0, fmt.Errorf("delete allocation %s: %w", workload, err)
	}
	return createAlloc(ctx, s, workload, host)
}

func readAlloc(ctx context.Context, s clusterstore.Store, workload string) (api.Allocation, bool, error) {
	kv, ok, _, err := s.Get(ctx, clusterstore.AllocationKey(workload))
	if err != nil || !ok {
		return api.Allocation{}, ok, err
	}
	a, err := clusterstore.DecodeAllocation(kv)
	return a, err == nil, err
}

func readClaim(t *testing.T, ctx context.Context, s clusterstore.Store, k string) (api.Claim, clusterstore.KeyValue, bool) {
	t.Helper()
	kv, ok := mustGet(t, ctx, s, k)
	if !ok {
		return api.Claim{}, kv, false
	}
	var c api.Claim
	if err := clusterstore.Decode(kv, &c); err != nil {
		t.Fatalf("decode claim: %v", err)
	}
	return c, kv, true
}

func claimFor(resource, workload, host string, epoch int64) api.Claim {
	return api.Claim{Resource: resource, Workload: workload, Host: host, Epoch: epoch}
}

func testClaimIdempotent(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := clusterstore.LockKey("vol-a")
	epoch := placeAlloc(t, ctx, s, "web", "h1")
	c := claimFor("vol-a", "web", "h1", epoch)

	got, err := clusterstore.AcquireClaim(ctx, s, k, c, claimTime)
	if err != nil {
		t.Fatalf("acquire: %v", err)
	}
	if !clusterstore.SameHolder(got, c) || got.Resource != "vol-a" || got.Schema != api.SchemaVersion || !got.Since.Equal(claimTime) {
		t.Fatalf("acquire returned %+v", got)
	}
	stored, kv, ok := readClaim(t, ctx, s, k)
	if !ok || stored != got {
		t.Fatalf("stored claim %+v (exists %v), want %+v", stored, ok, got)
	}

	// Again, later: the same claim, nothing written.
	rev := currentRev(t, ctx, s)
	again, err := clusterstore.AcquireClaim(ctx, s, k, c, claimTime.Add(time.Hour))
	if err != nil {
		t.Fatalf("acquire again: %v", err)
	}
	if again != got {
		t.Fatalf("acquire again returned %+v, want %+v", again, got)
	}
	if kv2, _ := mustGet(t, ctx, s, k); kv2.ModRevision != kv.ModRevision {
		t.Fatalf("acquiring a held claim rewrote it (mod revision %d -> %d)", kv.ModRevision, kv2.ModRevision)
	}
	if r := currentRev(t, ctx, s); r != rev {
		t.Fatalf("acquiring a held claim moved the store from revision %d to %d", rev, r)
	}

	// Released by its holder it is gone; releasing again is harmless.
	if err := clusterstore.ReleaseClaim(ctx, s, k, c); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, ctx, s, k)
	if err := clusterstore.ReleaseClaim(ctx, s, k, c); err != nil {
		t.Fatalf("release of a free claim: %v", err)
	}
	// And the same allocation may take it again.
	if _, err := clusterstore.AcquireClaim(ctx, s, k, c, claimTime); err != nil {
		t.Fatalf("re-acquire: %v", err)
	}
}

func testClaimHeld(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := clusterstore.LockKey("vol-a")
	e1 := placeAlloc(t, ctx, s, "web", "h1")
	e2 := placeAlloc(t, ctx, s, "db", "h2")
	holder, err := clusterstore.AcquireClaim(ctx, s, k, claimFor("vol-a", "web", "h1", e1), claimTime)
	if err != nil {
		t.Fatal(err)
	}
	_, kv, _ := readClaim(t, ctx, s, k)

	wantHeld := func(c api.Claim) {
		t.Helper()
		cur, err := clusterstore.AcquireClaim(ctx, s, k, c, claimTime)
		var he *clusterstore.HeldError
		if !errors.As(err, &he) || !errors.Is(err, clusterstore.ErrClaimHeld) {
			t.Fatalf("acquire by %+v: %v, want *HeldError", c, err)
		}
		if he.Holder != holder || !clusterstore.SameHolder(cur, holder) {
			t.Fatalf("HeldError names %+v (returned %+v), want %+v", he.Holder, cur, holder)
		}
		for _, want := range []string{"vol-a", "web", "h1", strconv.FormatInt(e1, 10)} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not name %q", err, want)
			}
		}
		if kv2, _ := mustGet(t, ctx, s, k); kv2.ModRevision != kv.ModRevision {
			t.Fatal("a refused acquire rewrote the claim")
		}
	}
	// Another workload's allocation.
	wantHeld(claimFor("vol-a", "db", "h2", e2))

	// The same workload under a new epoch, on another host: it waits for
	// the old holder to release, or for the leader to release it after
	// fencing h1.
	e3, err := moveAlloc(ctx, s, "web", "h3")
	if err != nil {
		t.Fatal(err)
	}
	wantHeld(claimFor("vol-a", "web", "h3", e3))
	// The old holder still holds, and may still release.
	if err := clusterstore.ReleaseClaim(ctx, s, k, holder); err != nil {
		t.Fatal(err)
	}
	got, err := clusterstore.AcquireClaim(ctx, s, k, claimFor("vol-a", "web", "h3", e3), claimTime)
	if err != nil || got.Host != "h3" || got.Epoch != e3 {
		t.Fatalf("acquire after release: %+v %v", got, err)
	}
}

func testClaimReleaseNonHolder(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := clusterstore.LockKey("vol-a")
	e1 := placeAlloc(t, ctx, s, "web", "h1")
	e2 := placeAlloc(t, ctx, s, "db", "h2")
	c := claimFor("vol-a", "web", "h1", e1)
	if _, err := clusterstore.AcquireClaim(ctx, s, k, c, claimTime); err != nil {
		t.Fatal(err)
	}
	_, kv, _ := readClaim(t, ctx, s, k)
	rev := currentRev(t, ctx, s)
	for _, other := range []api.Claim{
		claimFor("vol-a", "db", "h2", e2),  // another allocation
		claimFor("vol-a", "web", "h2", e1), // right epoch, wrong host
		claimFor("vol-a", "web", "h1", e2), // right host, wrong epoch
	} {
		if err := clusterstore.ReleaseClaim(ctx, s, k, other); err != nil {
			t.Fatalf("release by non-holder %+v: %v", other, err)
		}
		if kv2, ok := mustGet(t, ctx, s, k); !ok || kv2.ModRevision != kv.ModRevision {
			t.Fatalf("release by non-holder %+v touched the claim", other)
		}
	}
	if r := currentRev(t, ctx, s); r != rev {
		t.Fatalf("releases by non-holders moved the store from revision %d to %d", rev, r)
	}
	// Releasing a claim that is not there writes nothing either.
	free := clusterstore.LockKey("vol-free")
	if err := clusterstore.ReleaseClaim(ctx, s, free, c); err != nil {
		t.Fatal(err)
	}
	if r := currentRev(t, ctx, s); r != rev {
		t.Fatalf("releasing a free claim moved the store from revision %d to %d", rev, r)
	}
}

func testClaimStaleEpoch(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := clusterstore.LockKey("vol-a")
	old := placeAlloc(t, ctx, s, "web", "h1")
	cur, err := moveAlloc(ctx, s, "web", "h2")
	if err != nil {
		t.Fatal(err)
	}
	wantStale := func(c api.Claim) {
		t.Helper()
		rev := currentRev(t, ctx, s)
		_, err := clusterstore.AcquireClaim(ctx, s, k, c, claimTime)
		if !errors.Is(err, clusterstore.ErrStaleEpoch) {
			t.Fatalf("acquire %+v: %v, want ErrStaleEpoch", c, err)
		}
		wantMissing(t, ctx, s, k)
		if r := currentRev(t, ctx, s); r != rev {
			t.Fatalf("a refused claim moved the store from revision %d to %d", rev, r)
		}
	}
	// The host that ran the old allocation, at its old epoch.
	wantStale(claimFor("vol-a", "web", "h1", old))
	// An epoch that is not the allocation's (another key's revision).
	wantStale(claimFor("vol-a", "web", "h2", cur+1000))
	// A workload without an allocation.
	wantStale(claimFor("vol-a", "gone", "h1", old))
	// The allocation removed (the workload stopped or is being moved).
	if _, _, err := s.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(clusterstore.AllocationKey("web"))}); err != nil {
		t.Fatal(err)
	}
	wantStale(claimFor("vol-a", "web", "h2", cur))
}

// testClaimEpochZero: epoch 0 is no allocation's epoch, and
// CreateRevisionIs(allocation, 0) holds for a missing allocation, so the
// transaction's guard alone would let such a claim in.
func testClaimEpochZero(t *testing.T, s clusterstore.Store) {
	ctx := testContext(t)
	k := clusterstore.LockKey("vol-a")
	rev := currentRev(t, ctx, s)
	_, err := clusterstore.AcquireClaim(ctx, s, k, claimFor("vol-a", "gone", "h1", 0), claimTime)
	if err == nil {
		t.Fatal("AcquireClaim wrote a claim at epoch 0 for a workload without an allocation")
	}
	if !errors.Is(err, clusterstore.ErrStaleEpoch) {
		t.Fatalf("acquire at epoch 0: %v, want ErrStaleEpoch", err)
	}
	wantMissing(t, ctx, s, k)
	if r := currentRev(t, ctx, s); r != rev {
		t.Fatalf("a refused claim at epoch 0 moved the store from revision %d to %d", rev, r)
	}
}

// testClaimNeverTwoHolders models hosts using one exclusive resource while
// a leader moves the workload that needs it between them.
//
// Each host goroutine loops: read the allocation; if it names this host, try
// AcquireClaim at its epoch; on success enter the critical section (use the
// resource): an in-use counter that must never exceed 1, and the claim in
// the store must still be this host's throughout. When the allocation has
// moved away, the host stops using the resource and releases its claim.
//
// The mover plays the leader: it moves the allocation (delete, create: a
// new epoch) to another live host, and then either lets the old host
// release on its own or fences it: marks it dead (it stops using the
// resource, atomically: fencing waits for a power-off to be confirmed)
// and only then deletes its claim. A fenced host comes back later as a new
// process with nothing in memory.
func testClaimNeverTwoHolders(t *testing.T, s clusterstore.Store) {
	ctx, cancel := context.WithTimeout(testContext(t), 20*time.Second)
	defer cancel()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("BULWARK_CLAIMS_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (BULWARK_CLAIMS_SEED to repeat the mover's choices)", seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	const (
		hosts    = 8
		moves    = 300
		budget   = 4 * time.Second // the moves stop early past this
		workload = "web"
		resource = "vol-a"
	)
	k := clusterstore.LockKey(resource)

	type host struct {
		name string
		// mu is held while the host uses the resource and while it is
		// being fenced: fencing completes only once it is not using it.
		mu   sync.Mutex
		dead bool
		// gen counts reboots: work begun before a fence belongs to a
		// process that no longer exists.
		gen atomic.Int64
	}
	hs := make([]*host, hosts)
	for i := range hs {
		hs[i] = &host{name: fmt.Sprintf("h%d", i)}
	}

	var (
		inUse      atomic.Int64
		maxEpoch   atomic.Int64 // highest epoch that has used the resource
		entries    atomic.Int64
		entered    = make(chan struct{}, 1) // a host entered after a move
		held       atomic.Int64
		stale      atomic.Int64
		released   atomic.Int64
		stop       atomic.Bool
		failOnce   sync.Once
		firstError string
	)
	fail := func(format string, args ...any) {
		t.Errorf(format, args...)
		failOnce.Do(func() { firstError = fmt.Sprintf(format, args...) })
		stop.Store(true)
	}

	hostLoop := func(h *host, rng *rand.Rand) {
		var mine *api.Claim // the claim this process holds, as it knows it
		gen := h.gen.Load()
		for !stop.Load() && ctx.Err() == nil {
			if g := h.gen.Load(); g != gen {
				// Fenced and rebooted: a new process knows nothing.
				gen, mine = g, nil
			}
			h.mu.Lock()
			dead := h.dead
			h.mu.Unlock()
			if dead {
				time.Sleep(time.Millisecond)
				continue
			}
			a, ok, err := readAlloc(ctx, s, workload)
			if err != nil {
				if ctx.Err() == nil {
					fail("%s: read allocation: %v", h.name, err)
				}
				return
			}
			if mine != nil && (!ok || a.Host != h.name || a.Epoch != mine.Epoch) {
				// Moved away: stop using (we are not in the critical
				// section), then release.
				if err := clusterstore.ReleaseClaim(ctx, s, k, *mine); err != nil {
					if ctx.Err() == nil {
						fail("%s: release: %v", h.name, err)
					}
					return
				}
				released.Add(1)
				mine = nil
			}
			if !ok || a.Host != h.name {
				time.Sleep(time.Duration(200+rng.IntN(800)) * time.Microsecond)
				continue
			}
			c, err := clusterstore.AcquireClaim(ctx, s, k, claimFor(resource, workload, h.name, a.Epoch), claimTime)
			switch {
			case errors.Is(err, clusterstore.ErrClaimHeld):
				held.Add(1)
				time.Sleep(time.Duration(100+rng.IntN(400)) * time.Microsecond)
				continue
			case errors.Is(err, clusterstore.ErrStaleEpoch):
				stale.Add(1)
				continue
			case err != nil && strings.Contains(err.Error(), "contended"):
				continue
			case err != nil:
				if ctx.Err() == nil {
					fail("%s: acquire at epoch %d: %v", h.name, a.Epoch, err)
				}
				return
			}
			mine = &c

			h.mu.Lock()
			if h.dead || h.gen.Load() != gen {
				// Fenced between the acquire and now: this process
				// is gone, it uses nothing.
				h.mu.Unlock()
				continue
			}
			if n := inUse.Add(1); n > 1 {
				fail("%s entered the critical section at epoch %d while %d others were in it", h.name, c.Epoch, n-1)
			}
			if prev := maxEpoch.Load(); c.Epoch < prev {
				fail("%s used the resource at epoch %d after epoch %d had", h.name, c.Epoch, prev)
			} else {
				maxEpoch.CompareAndSwap(prev, c.Epoch)
			}
			entries.Add(1)
			select {
			case entered <- struct{}{}:
			default:
			}
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
			kv, ok, _, err := s.Get(ctx, k)
			var cur api.Claim
			if err == nil && ok {
				err = clusterstore.Decode(kv, &cur)
			}
			switch {
			case err != nil:
				if ctx.Err() == nil {
					fail("%s: read claim: %v", h.name, err)
				}
			case !ok || !clusterstore.SameHolder(cur, c):
				fail("%s lost its claim (now %+v, present %v) while using the resource at epoch %d", h.name, cur, ok, c.Epoch)
			}
			inUse.Add(-1)
			h.mu.Unlock()
		}
	}

	placeAlloc(t, ctx, s, workload, hs[0].name)
	var wg sync.WaitGroup
	for i, h := range hs {
		r := rand.New(rand.NewPCG(seed, uint64(i)+2))
		wg.Go(func() { hostLoop(h, r) })
	}

	var fences, waitedOut int
	start := time.Now()
	cur := 0
	done := 0
	for ; done < moves && !stop.Load() && time.Since(start) < budget; done++ {
		// Let the current holder use it (briefly) before moving on.
		select {
		case <-entered:
		case <-time.After(20 * time.Millisecond):
			waitedOut++
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		// Fenced hosts come back now and then, as new processes.
		for _, h := range hs {
			h.mu.Lock()
			if h.dead && rng.IntN(4) == 0 {
				h.dead = false
			}
			h.mu.Unlock()
		}
		var live []int
		for i, h := range hs {
			h.mu.Lock()
			if !h.dead && i != cur {
				live = append(live, i)
			}
			h.mu.Unlock()
		}
		if len(live) == 0 {
			continue
		}
		old := hs[cur]
		cur = live[rng.IntN(len(live))]
		// Drain a stale "entered" from before the move.
		select {
		case <-entered:
		default:
		}
		if _, err := moveAlloc(ctx, s, workload, hs[cur].name); err != nil {
			if ctx.Err() == nil {
				fail("move to %s: %v", hs[cur].name, err)
			}
			break
		}
		if rng.IntN(3) != 0 {
			continue // the old host stops and releases on its own
		}
		// Fence the old host: once it is confirmed off (not using the
		// resource; its in-flight work belongs to a dead process), the
		// leader deletes its claim.
		fences++
		old.mu.Lock()
		old.dead = true
		old.gen.Add(1)
		old.mu.Unlock()
		kv, ok, _, err := s.Get(ctx, k)
		if err != nil {
			fail("read claim: %v", err)
			break
		}
		var c api.Claim
		if ok {
			if err := clusterstore.Decode(kv, &c); err != nil {
				fail("decode claim: %v", err)
				break
			}
		}
		if ok && c.Host == old.name {
			if _, _, err := s.Txn(ctx, []clusterstore.Cond{clusterstore.ModRevisionIs(k, kv.ModRevision)},
				[]clusterstore.Op{clusterstore.Delete(k)}); err != nil {
				fail("force-release %s's claim: %v", old.name, err)
				break
			}
		}
	}
	stop.Store(true)
	wg.Wait()
	if ctx.Err() != nil && firstError == "" {
		t.Errorf("the model did not finish within its deadline (%d moves done)", done)
	}
	t.Logf("%d moves in %v (%d fences, %d waits for a holder timed out): %d uses, %d held-by-another, %d stale-epoch refusals, %d releases",
		done, time.Since(start).Round(time.Millisecond), fences, waitedOut, entries.Load(), held.Load(), stale.Load(), released.Load())
	if entries.Load() < int64(done)/4 {
		t.Errorf("only %d uses of the resource in %d moves: the model did not exercise the claims", entries.Load(), done)
	}
}
