package etcd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/storetest"
)

// One embedded member serves the whole package: it starts in about a second,
// and each test gets a clean namespace from resetNamespace instead.
var (
	member *Embedded
	admin  *clientv3.Client
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "bulwark-etcd-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	member, err = StartEmbedded(EmbeddedConfig{Dir: dir})
	if err != nil {
		// Embedded etcd has no outside prerequisite: failing to start it is
		// a real failure, not a reason to skip.
		fmt.Fprintln(os.Stderr, "etcd tests:", err)
		return 1
	}
	defer member.Close()
	admin, err = clientv3.New(clientv3.Config{Endpoints: member.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcd tests: admin client:", err)
		return 1
	}
	defer admin.Close()
	return m.Run()
}

// resetNamespace deletes every Bulwark key and revokes every lease, so that
// a test starts from an empty store (revisions keep growing; the contract
// suite relies only on their order).
func resetNamespace(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leases, err := admin.Leases(ctx)
	if err != nil {
		t.Fatalf("list leases: %v", err)
	}
	for _, l := range leases.Leases {
		if _, err := admin.Revoke(ctx, l.ID); err != nil && !errors.Is(translate(err), clusterstore.ErrLeaseNotFound) {
			t.Fatalf("revoke lease %x: %v", l.ID, err)
		}
	}
	if _, err := admin.Delete(ctx, "/bulwark/", clientv3.WithPrefix()); err != nil {
		t.Fatalf("clear namespace: %v", err)
	}
}

func dial(t *testing.T) clusterstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Dial(ctx, member.Endpoints(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) clusterstore.Store {
		resetNamespace(t)
		return dial(t)
	})
}

func TestCompactionMapsToErrCompacted(t *testing.T) {
	resetNamespace(t)
	s := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	k := clusterstore.Prefix + "compact/k"
	_, r1, err := s.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(k, []byte("1"))})
	if err != nil {
		t.Fatal(err)
	}
	_, r2, err := s.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(k, []byte("2"))})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctx, r2, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("compact: %v", err)
	}
	if _, _, err := s.List(ctx, clusterstore.Prefix, r1); !errors.Is(err, clusterstore.ErrCompacted) {
		t.Fatalf("list below compaction: %v, want ErrCompacted", err)
	}
	select {
	case r, ok := <-s.Watch(ctx, clusterstore.Prefix, r1):
		if !ok || !errors.Is(r.Err, clusterstore.ErrCompacted) {
			t.Fatalf("watch below compaction: %+v (open %v), want ErrCompacted", r, ok)
		}
	case <-ctx.Done():
		t.Fatal("no response from a watch below compaction")
	}
}

// etcd counts TTLs in whole seconds and raises short ones to its minimum.
func TestGrantRoundsUp(t *testing.T) {
	resetNamespace(t)
	s := dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := s.Grant(ctx, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := s.KeepAliveOnce(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ttl < 2*time.Second {
		t.Fatalf("ttl %v, want at least 2s", ttl)
	}
	t.Logf("asked 1.5s, granted %v", ttl)
}

// New leaves the client to its owner.
func TestNewDoesNotOwnClient(t *testing.T) {
	s := New(admin)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, _, err := s.Get(ctx, clusterstore.Prefix+"x"); err != nil {
		t.Fatalf("get after Close of a borrowed client: %v", err)
	}
}

func TestDialUnreachable(t *testing.T) {
	port, err := FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = Dial(ctx, []string{fmt.Sprintf("http://127.0.0.1:%d", port)}, 300*time.Millisecond)
	if err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}

func TestStartEmbeddedValidates(t *testing.T) {
	cases := map[string]EmbeddedConfig{
		"no dir":       {},
		"port zero":    {Dir: t.TempDir(), ClientURL: "http://127.0.0.1:0"},
		"no port":      {Dir: t.TempDir(), PeerURL: "http://127.0.0.1"},
		"https":        {Dir: t.TempDir(), ClientURL: "https://127.0.0.1:2379"},
		"bad url":      {Dir: t.TempDir(), ClientURL: "http://[::1"},
		"client taken": {Dir: t.TempDir(), ClientURL: member.Endpoints()[0]},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			e, err := StartEmbedded(cfg)
			if err == nil {
				e.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), "embedded etcd") {
				t.Fatalf("error lacks context: %v", err)
			}
		})
	}
}
