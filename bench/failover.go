package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
	"github.com/bulwarkhq/bulwark/devcluster"
)

// FailoverConfig sizes the failover benchmark and the chaos run.
type FailoverConfig struct {
	Hosts      int
	Workloads  int
	Rounds     int
	BMCLatency time.Duration
	SessionTTL time.Duration
	// Faults to inject, in turn (failover) or at random (chaos).
	Faults []string
	Seed   int64
	// Timeout bounds one round's recovery.
	Timeout time.Duration
	// Driver is the dev cluster's driver (devcluster.DriverTest,
	// DriverContainerd or DriverQEMU, whose workloads outlive their agent).
	Driver string
	// VIP adds a container with a floating IP and a published port, on
	// hosts that are network namespaces; each round then faults its host
	// and reports the outage a client saw (needs root and containerd).
	VIP     bool
	DataDir string
	Out     io.Writer
	Log     *slog.Logger
}

func (c *FailoverConfig) defaults() error {
	if c.Hosts < 2 {
		return errors.New("--hosts must be at least 2: failover needs somewhere to go")
	}
	if c.Workloads < 1 || c.Rounds < 1 {
		return errors.New("--workloads and --rounds must be at least 1")
	}
	if len(c.Faults) == 0 {
		c.Faults = []string{devcluster.FaultCrash}
	}
	for _, f := range c.Faults {
		switch f {
		case devcluster.FaultCrash, devcluster.FaultHang, devcluster.FaultPartition:
		default:
			return fmt.Errorf("fault %q: use crash, hang or partition", f)
		}
	}
	if c.Timeout == 0 {
		c.Timeout = 60 * time.Second
	}
	if c.VIP && c.Driver != devcluster.DriverContainerd {
		return errors.New("--vip needs --driver containerd (a real process must answer at the floating IP)")
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return nil
}

// rig is a dev cluster with workloads, a client and an invariant checker.
type rig struct {
	cl    *devcluster.Cluster
	api   *client.Client
	check *devcluster.Checker
	names []string
	cfg   FailoverConfig
	// Totals over the run.
	doubleRuns map[string]bool
	lost       map[string]bool
	// probe watches the floating IP (VIP only).
	probe   *vipProbe
	outages []time.Duration
}

func newRig(ctx context.Context, cfg FailoverConfig) (*rig, func(), error) {
	dir := cfg.DataDir
	cleanup := func() {}
	if dir == "" {
		d, err := os.MkdirTemp("", "bulwark-failover-")
		if err != nil {
			return nil, nil, err
		}
		dir = d
		cleanup = func() { os.RemoveAll(d) }
	}
	// Free ports are picked, closed, then bound: another process may take
	// one in between, so a start that lost that race is tried again.
	var cl *devcluster.Cluster
	var err error
	for attempt := 1; ; attempt++ {
		var ports []int
		if ports, err = freePorts(2); err != nil {
			cleanup()
			return nil, nil, err
		}
		cl, err = devcluster.Start(ctx, devcluster.Config{
			Hosts: cfg.Hosts, DataDir: dir, APIAddr: fmt.Sprintf("127.0.0.1:%d", ports[0]), EtcdPort: ports[1],
			SessionTTL: cfg.SessionTTL, BMCLatency: cfg.BMCLatency, Driver: cfg.Driver, Netns: cfg.VIP, Log: cfg.Log,
		})
		if err == nil || attempt == 3 || !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
		if rmErr := os.RemoveAll(filepath.Join(dir, "etcd")); rmErr != nil {
			break
		}
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	r := &rig{cl: cl, api: client.New(cl.APIURL(), nil), check: cl.NewChecker(), cfg: cfg, doubleRuns: map[string]bool{}, lost: map[string]bool{}}
	r.api.SetToken(cl.AdminToken())
	done := func() { cl.Stop(); cleanup() }
	for i := 0; i < cfg.Workloads; i++ {
		name := fmt.Sprintf("vm-%03d", i)
		spec := api.WorkloadSpec{Name: name, Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, Priority: (i % 3) * 100}
		if cfg.Driver == devcluster.DriverContainerd {
			spec.Name = fmt.Sprintf("ctr-%03d", i)
			spec.Kind, spec.Memory = api.KindContainer, 64*api.MiB
			spec.Image = "oci-archive:" + cl.BusyboxArchive()
			spec.Command = []string{"sleep", "100000"}
		}
		if cfg.Driver == devcluster.DriverQEMU {
			// Real guests, software-emulated: small, booting the dev
			// cluster's kernel and busybox initramfs.
			spec.Memory = 128 * api.MiB
			spec.VM = &api.VMSpec{Kernel: cl.GuestKernel(), Initrd: cl.GuestInitrd(), Cmdline: devcluster.GuestCmdline}
		}
		name = spec.Name
		if _, err := r.api.CreateWorkload(ctx, spec); err != nil {
			done()
			return nil, nil, err
		}
		r.names = append(r.names, name)
	}
	if cfg.VIP {
		if err := r.addVIPWorkload(ctx); err != nil {
			done()
			return nil, nil, err
		}
	}
	if err := r.waitAllRunning(ctx, nil, 60*time.Second); err != nil {
		done()
		return nil, nil, err
	}
	if cfg.VIP {
		if r.probe, err = startVIPProbe(cl); err != nil {
			done()
			return nil, nil, err
		}
		stop := done
		done = func() { r.probe.close(); stop() }
		if _, err := r.probe.waitServed(ctx, time.Time{}, 30*time.Second); err != nil {
			done()
			return nil, nil, err
		}
	}
	return r, done, nil
}

func freePorts(n int) ([]int, error) {
	var out []int
	for i := 0; i < n; i++ {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// observe reads the truth once and adds any double run to the totals.
func (r *rig) observe(ctx context.Context) (devcluster.Truth, error) {
	t, err := r.check.Truth(ctx)
	if err != nil {
		return t, err
	}
	for _, d := range t.DoubleRuns() {
		if !r.doubleRuns[d] {
			fmt.Fprintf(r.cfg.Out, "DOUBLE RUN: %s\n", d)
		}
		r.doubleRuns[d] = true
	}
	return t, nil
}

// waitAllRunning waits until every workload runs on exactly one host, none
// of them in avoid; it returns when done or after timeout.
func (r *rig) waitAllRunning(ctx context.Context, avoid map[string]bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		t, err := r.observe(ctx)
		if err == nil {
			missing := 0
			for _, n := range r.names {
				hosts := t.Running[n]
				if len(hosts) != 1 || avoid[hosts[0]] {
					missing++
				}
			}
			if missing == 0 {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%d workloads not running after %s", missing, timeout)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// hostsOf lists, for the current truth, which workloads each host runs.
func (r *rig) hostsOf(ctx context.Context) (map[string][]string, error) {
	t, err := r.observe(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for w, hosts := range t.Running {
		for _, h := range hosts {
			out[h] = append(out[h], w)
		}
	}
	return out, nil
}

// restore heals a fenced host: fault undone, powered on, cleared, ready.
func (r *rig) restore(ctx context.Context, host string) error {
	if err := r.cl.Fault(host, devcluster.FaultHeal); err != nil {
		return err
	}
	if _, err := r.api.PowerOnNode(ctx, host); err != nil {
		return fmt.Errorf("power on %s: %w", host, err)
	}
	if _, err := r.api.ClearNode(ctx, host); err != nil {
		return fmt.Errorf("clear %s: %w", host, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n, err := r.api.GetNode(ctx, host); err == nil && n.State == api.NodeReady {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready again after 30s", host)
}

// round injects one fault into the busiest host and measures the time until
// every workload it ran is running elsewhere.
func (r *rig) round(ctx context.Context, fault string) (time.Duration, string, int, error) {
	byHost, err := r.hostsOf(ctx)
	if err != nil {
		return 0, "", 0, err
	}
	victim, most := "", -1
	for _, h := range r.cl.HostNames() {
		if len(byHost[h]) > most {
			victim, most = h, len(byHost[h])
		}
	}
	if r.probe != nil {
		// The host of the floating IP's workload: the address must move.
		for h, ws := range byHost {
			for _, w := range ws {
				if w == benchWorkload {
					victim, most = h, len(ws)
				}
			}
		}
	}
	start := time.Now()
	if err := r.cl.Fault(victim, fault); err != nil {
		return 0, victim, most, err
	}
	if err := r.waitAllRunning(ctx, map[string]bool{victim: true}, r.cfg.Timeout); err != nil {
		return time.Since(start), victim, most, err
	}
	took := time.Since(start)
	if r.probe != nil {
		served, err := r.probe.waitServed(ctx, start, r.cfg.Timeout)
		if err != nil {
			return took, victim, most, err
		}
		r.outages = append(r.outages, served.Sub(start))
	}
	return took, victim, most, r.restore(ctx, victim)
}

// Failover runs the failover benchmark and prints its figures; the last
// line is failover_p50_s=X failover_max_s=Y double_runs=Z lost=L.
func Failover(ctx context.Context, cfg FailoverConfig) error {
	if err := cfg.defaults(); err != nil {
		return fmt.Errorf("bench failover: %w", err)
	}
	out := cfg.Out
	fmt.Fprintf(out, "bench failover: %d hosts, %d workloads, %d rounds, faults %s, BMC latency %s, lease TTL %s, driver %s\n",
		cfg.Hosts, cfg.Workloads, cfg.Rounds, strings.Join(cfg.Faults, ","), cfg.BMCLatency, cfg.SessionTTL, orTest(cfg.Driver))
	r, done, err := newRig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("bench failover: %w", err)
	}
	defer done()
	var times []time.Duration
	for i := 0; i < cfg.Rounds; i++ {
		fault := cfg.Faults[i%len(cfg.Faults)]
		took, victim, n, err := r.round(ctx, fault)
		if err != nil {
			fmt.Fprintf(out, "round %d: %s of %s: %v\n", i+1, fault, victim, err)
			r.lost[fmt.Sprintf("round %d", i+1)] = true
			continue
		}
		times = append(times, took)
		extra := ""
		if len(r.outages) > 0 && r.probe != nil {
			extra = fmt.Sprintf("; client outage at %s %.2fs", benchVIP, r.outages[len(r.outages)-1].Seconds())
		}
		fmt.Fprintf(out, "round %d: %-9s %s (%d workloads) recovered in %.2fs%s\n", i+1, fault, victim, n, took.Seconds(), extra)
	}
	return report(out, times, r)
}

func report(out io.Writer, times []time.Duration, r *rig) error {
	if r.probe != nil {
		o := append([]time.Duration(nil), r.outages...)
		sort.Slice(o, func(i, j int) bool { return o[i] < o[j] })
		p50, worst := 0.0, 0.0
		if len(o) > 0 {
			p50, worst = o[len(o)/2].Seconds(), o[len(o)-1].Seconds()
		}
		r.probe.mu.Lock()
		twice, samples := r.probe.twice, r.probe.samples
		r.probe.mu.Unlock()
		fmt.Fprintf(out, "vip_outage_p50_s=%.2f vip_outage_max_s=%.2f vip_samples=%d vip_on_two_hosts=%d\n", p50, worst, samples, twice)
		if twice > 0 {
			r.doubleRuns["floating IP "+benchVIP] = true
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	p50, worst := 0.0, 0.0
	if len(times) > 0 {
		p50 = times[len(times)/2].Seconds()
		worst = times[len(times)-1].Seconds()
	}
	fmt.Fprintf(out, "failover_p50_s=%.2f failover_max_s=%.2f double_runs=%d lost=%d\n", p50, worst, len(r.doubleRuns), len(r.lost))
	if len(r.doubleRuns) > 0 || len(r.lost) > 0 {
		return fmt.Errorf("invariant broken: %d double runs, %d lost", len(r.doubleRuns), len(r.lost))
	}
	return nil
}

// Chaos injects seeded random faults (crash, hang, partition, and a BMC
// outage during some of them), one at a time, checks that no workload ever
// runs on two hosts and that all of them run again after each fault, and
// prints totals.
func Chaos(ctx context.Context, cfg FailoverConfig) error {
	if len(cfg.Faults) == 0 {
		cfg.Faults = []string{devcluster.FaultCrash, devcluster.FaultHang, devcluster.FaultPartition}
	}
	if err := cfg.defaults(); err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	out := cfg.Out
	rng := rand.New(rand.NewSource(cfg.Seed))
	fmt.Fprintf(out, "chaos: seed %d, %d hosts, %d workloads, %d faults, driver %s\n", cfg.Seed, cfg.Hosts, cfg.Workloads, cfg.Rounds, orTest(cfg.Driver))
	r, done, err := newRig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("chaos: %w", err)
	}
	defer done()
	counts := map[string]int{}
	var times []time.Duration
	for i := 0; i < cfg.Rounds; i++ {
		fault := cfg.Faults[rng.Intn(len(cfg.Faults))]
		bmcOutage := rng.Intn(4) == 0
		name := fault
		if bmcOutage {
			name += "+bmc-down"
		}
		counts[name]++
		byHost, err := r.hostsOf(ctx)
		if err != nil {
			return err
		}
		// Mostly the busiest host (where a fault matters), sometimes any.
		hosts := r.cl.HostNames()
		victim := hosts[rng.Intn(len(hosts))]
		if rng.Intn(4) != 0 {
			for _, h := range hosts {
				if len(byHost[h]) > len(byHost[victim]) {
					victim = h
				}
			}
		}
		start := time.Now()
		if bmcOutage {
			_ = r.cl.Fault(victim, devcluster.FaultBMCDown)
		}
		if err := r.cl.Fault(victim, fault); err != nil {
			return err
		}
		if bmcOutage {
			// Fencing cannot succeed: nothing may restart elsewhere.
			// Watch for a while, then let the BMC answer again.
			wait := time.Duration(2+rng.Intn(3)) * time.Second
			for end := time.Now().Add(wait); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
				if _, err := r.observe(ctx); err != nil {
					return err
				}
			}
			if err := r.cl.Fault(victim, devcluster.FaultHeal); err != nil {
				return err
			}
			if fault != devcluster.FaultCrash {
				// A healed hang or partition lets the agent carry on; the
				// leader fences it anyway: it was lost.
				_ = r.cl.Fault(victim, fault)
			}
		}
		if err := r.waitAllRunning(ctx, map[string]bool{victim: len(byHost[victim]) > 0}, cfg.Timeout); err != nil {
			fmt.Fprintf(out, "fault %d: %s of %s: %v\n", i+1, name, victim, err)
			for _, n := range r.names {
				r.lost[n] = true
			}
			break
		}
		took := time.Since(start)
		if len(byHost[victim]) > 0 {
			times = append(times, took)
		}
		fmt.Fprintf(out, "fault %d: %-20s %s (%d workloads) settled in %.2fs\n", i+1, name, victim, len(byHost[victim]), took.Seconds())
		if err := r.restore(ctx, victim); err != nil {
			// A host with nothing on it may not have been fenced.
			if n, gerr := r.api.GetNode(ctx, victim); gerr != nil || n.State != api.NodeReady {
				fmt.Fprintf(out, "restore %s: %v\n", victim, err)
			}
		}
	}
	var kinds []string
	for k, n := range counts {
		kinds = append(kinds, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(kinds)
	fmt.Fprintf(out, "faults: %s\n", strings.Join(kinds, " "))
	return report(out, times, r)
}

func orTest(driver string) string {
	if driver == "" {
		return devcluster.DriverTest
	}
	return driver
}
