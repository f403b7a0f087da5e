package main

import (
	"fmt"
	"os"

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
		}},
	}
}
