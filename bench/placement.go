// Package bench holds the end-to-end benchmarks behind `bulwarkd bench`.
// They print figures; nothing here asserts a time.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/server"
)

// PlacementConfig sizes the placement benchmark.
type PlacementConfig struct {
	Hosts      int
	Workloads  int
	HostCPUs   int
	HostMemory api.ByteSize
	Seed       int64
	// DataDir holds the embedded etcd (a temp dir when empty).
	DataDir string
	Out     io.Writer
	Log     *slog.Logger
}

// Placement measures end-to-end placement: an embedded etcd, a leader,
// Hosts registered hosts (no agents) and Workloads workloads written to the
// store first; timed from the start of scheduling until every allocation is
// committed to etcd.
func Placement(ctx context.Context, cfg PlacementConfig) error {
	if cfg.Hosts < 1 || cfg.Workloads < 1 {
		return fmt.Errorf("bench placement: --hosts and --workloads must be at least 1")
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	dir := cfg.DataDir
	if dir == "" {
		d, err := os.MkdirTemp("", "bulwark-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	out := cfg.Out
	fmt.Fprintf(out, "bench placement: %d hosts (%d cpus, %s each), %d workloads, seed %d, GOMAXPROCS %d\n",
		cfg.Hosts, cfg.HostCPUs, cfg.HostMemory.Human(), cfg.Workloads, cfg.Seed, runtime.GOMAXPROCS(0))

	t0 := time.Now()
	emb, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{Dir: dir, Name: "bench"})
	if err != nil {
		return fmt.Errorf("bench placement: embedded etcd: %w", err)
	}
	defer emb.Close()
	store, err := etcdstore.Dial(ctx, emb.Endpoints(), 5*time.Second)
	if err != nil {
		return err
	}
	defer store.Close()
	fmt.Fprintf(out, "embedded etcd ready in %s\n", time.Since(t0).Round(time.Millisecond))

	// Hosts: registrations plus heartbeats bound to one long session.
	sess, err := clusterstore.NewSession(ctx, store, 60*time.Second)
	if err != nil {
		return err
	}
	defer sess.Close()
	t1 := time.Now()
	var ops []clusterstore.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, _, err := store.Txn(ctx, nil, ops)
		ops = ops[:0]
		return err
	}
	for i := 0; i < cfg.Hosts; i++ {
		name := fmt.Sprintf("host-%05d", i)
		n := api.Node{Schema: api.SchemaVersion, Name: name, CPUs: cfg.HostCPUs, Memory: cfg.HostMemory,
			Labels: map[string]string{"rack": fmt.Sprintf("r%d", i%20)}}
		hb := api.Heartbeat{Schema: api.SchemaVersion, Host: name, Lease: int64(sess.Lease())}
		ops = append(ops, clusterstore.Put(clusterstore.NodeKey(name), clusterstore.Encode(n)),
			clusterstore.PutWithLease(clusterstore.HeartbeatKey(name), clusterstore.Encode(hb), sess.Lease()))
		if len(ops) >= 1000 {
			if err := flush(); err != nil {
				return fmt.Errorf("register hosts: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("register hosts: %w", err)
	}
	rng := rand.New(rand.NewSource(cfg.Seed))
	created := time.Now().UTC()
	for i := 0; i < cfg.Workloads; i++ {
		w := api.Workload{Schema: api.SchemaVersion, CreatedAt: created, WorkloadSpec: api.WorkloadSpec{
			Name: fmt.Sprintf("w-%06d", i), Kind: api.KindVM,
			CPUs: 1 + rng.Intn(2), Memory: api.ByteSize(1+rng.Intn(4)) * 256 * api.MiB, Priority: rng.Intn(3) * 100,
		}}
		ops = append(ops, clusterstore.Put(clusterstore.WorkloadKey(w.Name), clusterstore.Encode(w)))
		if len(ops) >= 1000 {
			if err := flush(); err != nil {
				return fmt.Errorf("write workloads: %w", err)
			}
		}
	}
	if err := flush(); err != nil {
		return fmt.Errorf("write workloads: %w", err)
	}
	_, _, rev, err := store.Get(ctx, clusterstore.Prefix+"bench")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "wrote %d hosts and %d workloads in %s\n", cfg.Hosts, cfg.Workloads, time.Since(t1).Round(time.Millisecond))

	// Count committed allocations through a watch on etcd itself.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wch := store.Watch(wctx, clusterstore.AllocationsPrefix, rev+1)

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var stats server.PlanStats
	srv, err := server.New(server.Config{Name: "bench", Listener: ln, Store: store, SessionTTL: 10 * time.Second, Resync: time.Minute, Log: cfg.Log, OnPlan: stats.Record})
	if err != nil {
		return err
	}
	if path := os.Getenv("BULWARK_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	defer func() { stop(); <-done }()

	placed := 0
	deadline := time.After(15 * time.Minute)
	for placed < cfg.Workloads {
		select {
		case resp, ok := <-wch:
			if !ok || resp.Err != nil {
				return fmt.Errorf("bench placement: watch: %v", resp.Err)
			}
			for _, ev := range resp.Events {
				if ev.Type == clusterstore.EventPut && ev.KV.CreateRevision == ev.KV.ModRevision {
					placed++
				}
			}
		case <-deadline:
			return fmt.Errorf("bench placement: only %d of %d placed after 15 minutes", placed, cfg.Workloads)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	elapsed := time.Since(start)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	// The leader reports its plan just after its last commit; give it a moment.
	evals, txns, planTime := stats.Snapshot()
	for i := 0; i < 100 && evals == 0; i++ {
		time.Sleep(10 * time.Millisecond)
		evals, txns, planTime = stats.Snapshot()
	}
	fmt.Fprintf(out, "placed %d workloads in %s (%d evaluations, %d transactions, %s in evaluations)\n",
		placed, elapsed.Round(time.Millisecond), evals, txns, planTime.Round(time.Millisecond))
	if last := stats.Last(); last.Placed > 0 {
		fmt.Fprintf(out, "largest evaluation phases: read snapshot %s, schedule %s, verify+commit %s\n",
			last.Read.Round(time.Millisecond), last.Schedule.Round(time.Millisecond), last.Commit.Round(time.Millisecond))
	}
	fmt.Fprintf(out, "process RSS %s (peak %s), Go heap in use %s; includes the embedded etcd member\n",
		procStatus("VmRSS"), procStatus("VmHWM"), api.ByteSize(after.HeapInuse).Human())
	fmt.Fprintf(out, "placements_per_second=%d\n", int(float64(placed)/elapsed.Seconds()))
	return nil
}

// procStatus reads one field of /proc/self/status, e.g. "VmRSS".
func procStatus(field string) string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "n/a"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "n/a"
}
