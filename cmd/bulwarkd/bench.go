package main

import (
	"fmt"
	"github.com/bulwarkhq/bulwark/devcluster"
	ctrdaemon "github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/bench"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure Bulwark on this machine (prints figures)",
		Subcommands: []*cli.Command{{
			Name:  "placement",
			Usage: "end-to-end placement throughput: embedded etcd, a leader, H hosts, W workloads",
			Description: "Starts an embedded etcd and a leader, registers H hosts (no agents) and writes W\n" +
				"workloads, then times scheduling from its start until every allocation is committed\n" +
				"to etcd. The last line is placements_per_second=N.\n\n" +
				"Example:\n  bulwarkd bench placement --hosts 1000 --workloads 50000",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "hosts", Value: 1000, Usage: "registered hosts"},
				&cli.IntFlag{Name: "workloads", Value: 50000, Usage: "workloads to place"},
				&cli.IntFlag{Name: "host-cpus", Value: 128, Usage: "CPUs per host"},
				&cli.StringFlag{Name: "host-memory", Value: "512GiB", Usage: "memory per host"},
				&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed for the workload mix"},
			},
			Action: func(c *cli.Context) error {
				mem, err := api.ParseByteSize(c.String("host-memory"))
				if err != nil {
					return fmt.Errorf("--host-memory: %w", err)
				}
				ctx, stop := signalContext()
				defer stop()
				return bench.Placement(ctx, bench.PlacementConfig{
					Hosts: c.Int("hosts"), Workloads: c.Int("workloads"), HostCPUs: c.Int("host-cpus"),
					HostMemory: mem, Seed: c.Int64("seed"), Out: os.Stdout,
				})
			},
		}, {
			Name:  "failover",
			Usage: "failover time: crash (or hang, partition) a host again and again, time each recovery",
			Description: "Starts a dev cluster (embedded etcd, simulated hosts, emulated BMCs), creates W VMs,\n" +
				"then R rounds: inject the fault into the busiest host and time until every VM it ran\n" +
				"runs on another host (read from the hosts' own drivers, which also catch any double\n" +
				"run), then heal, power on and clear it. The last line is\n" +
				"failover_p50_s=X failover_max_s=Y double_runs=Z lost=L.\n\n" +
				"Example:\n  bulwarkd bench failover --hosts 3 --workloads 6 --rounds 5 --fault crash,hang,partition",
			Flags: append(failoverFlags(), &cli.IntFlag{Name: "rounds", Value: 5, Usage: "rounds"}),
			Action: func(c *cli.Context) error {
				cfg, err := failoverConfig(c)
				if err != nil {
					return err
				}
				ctx, stop := signalContext()
				defer stop()
				return bench.Failover(ctx, cfg)
			},
		}, {
			Name:  "chaos",
			Usage: "seeded random faults against a dev cluster, checking that nothing runs twice or is lost",
			Description: "Injects N seeded random faults (crash, hang, partition, some with the host's BMC down\n" +
				"for a while), one at a time, reading the truth from the hosts' drivers throughout; prints\n" +
				"totals and fails if any workload ran on two hosts or did not run again.\n\n" +
				"Example:\n  bulwarkd bench chaos --faults 20 --seed 7",
			Flags: append(failoverFlags(), &cli.IntFlag{Name: "faults", Value: 10, Usage: "how many faults"}),
			Action: func(c *cli.Context) error {
				cfg, err := failoverConfig(c)
				if err != nil {
					return err
				}
				cfg.Rounds = c.Int("faults")
				if !c.IsSet("fault") {
					cfg.Faults = nil
				}
				ctx, stop := signalContext()
				defer stop()
				return bench.Chaos(ctx, cfg)
			},
		}},
	}
}

func failoverFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "hosts", Value: 3, Usage: "simulated hosts"},
		&cli.IntFlag{Name: "workloads", Value: 6, Usage: "VMs to keep running"},
		&cli.DurationFlag{Name: "bmc-latency", Value: time.Second, Usage: "how long each emulated BMC takes to power off"},
		&cli.DurationFlag{Name: "session-ttl", Value: 3 * time.Second, Usage: "agents' heartbeat lease TTL (T)"},
		&cli.StringFlag{Name: "fault", Value: "crash", Usage: "faults, comma-separated: crash, hang, partition"},
		&cli.Int64Flag{Name: "seed", Value: 1, Usage: "seed"},
		&cli.StringFlag{Name: "driver", Value: "auto", Usage: "auto (containerd where it can run, as root: real workloads that outlive their agent; else test), test (libvirt's test driver inside each agent), containerd or qemu"},
		&cli.BoolFlag{Name: "vip", Usage: "also run a container behind a floating IP on hosts that are network namespaces, fault its host each round and report the outage a client saw (root, --driver containerd)"},
	}
}

func failoverConfig(c *cli.Context) (bench.FailoverConfig, error) {
	return bench.FailoverConfig{
		Hosts: c.Int("hosts"), Workloads: c.Int("workloads"), Rounds: c.Int("rounds"),
		BMCLatency: c.Duration("bmc-latency"), SessionTTL: c.Duration("session-ttl"),
		Faults: strings.Split(c.String("fault"), ","), Seed: c.Int64("seed"), Driver: benchDriver(c.String("driver")), Out: os.Stdout, VIP: c.Bool("vip"),
	}, nil
}

// benchDriver resolves "auto": the failover benchmark and the chaos run
// measure workloads that outlive their agent (containerd) where they can.
func benchDriver(d string) string {
	if d != "auto" {
		return d
	}
	if ctrdaemon.Missing() == "" {
		return devcluster.DriverContainerd
	}
	return devcluster.DriverTest
}
