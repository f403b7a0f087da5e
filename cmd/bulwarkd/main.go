// Command bulwarkd is Bulwark's daemon: the API server and scheduler replica,
// the node agent, and the single-machine dev cluster. Wiring only.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/devcluster"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
	"github.com/bulwarkhq/bulwark/nodeagent"
	"github.com/bulwarkhq/bulwark/server"
)

// Set by the Makefile through -ldflags.
var (
	Version = "dev"
	Commit  = "unknown"
	Date    = "unknown"
)

func main() {
	app := &cli.App{
		Name:    "bulwarkd",
		Usage:   "Bulwark daemon: API server, node agent, or a whole dev cluster",
		Version: fmt.Sprintf("%s (commit %s, built %s)", Version, Commit, Date),
		Description: "Bulwark keeps VMs and containers running on a cluster of hosts.\n\n" +
			"Try it on one machine:   bulwarkd dev\n" +
			"In production run `bulwarkd server` on a few machines and `bulwarkd agent` on every host.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error", EnvVars: []string{"BULWARK_LOG_LEVEL"}},
		},
		Commands: []*cli.Command{serverCommand(), agentCommand(), devCommand(), benchCommand()},
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func logger(c *cli.Context) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", c.String("log-level"))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})), nil
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func etcdFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "etcd", Value: cli.NewStringSlice("http://127.0.0.1:2379"), Usage: "etcd client URL (repeat or comma-separate for several members)", EnvVars: []string{"BULWARK_ETCD"}}
}

func sessionTTLFlag() cli.Flag {
	return &cli.DurationFlag{Name: "session-ttl", Value: 5 * time.Second, Usage: "lease TTL: how long a dead process keeps its leadership or heartbeat", EnvVars: []string{"BULWARK_SESSION_TTL"}}
}

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run an API server and scheduler replica",
		Description: "Serves the HTTP API under /v1/ and joins the leader election in etcd; only the\n" +
			"leader places workloads. Run several replicas against one etcd for high availability.\n\n" +
			"Example:\n  bulwarkd server --name s1 --listen 0.0.0.0:7370 --etcd http://10.0.0.1:2379",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "replica name (a DNS label); default: the hostname", EnvVars: []string{"BULWARK_SERVER_NAME"}},
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:7370", Usage: "API listen address", EnvVars: []string{"BULWARK_LISTEN"}},
			etcdFlag(), sessionTTLFlag(),
		},
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			name := c.String("name")
			if name == "" {
				h, _ := os.Hostname()
				name = strings.ToLower(strings.Split(h, ".")[0])
			}
			ctx, stop := signalContext()
			defer stop()
			store, err := etcdstore.Dial(ctx, c.StringSlice("etcd"), 5*time.Second)
			if err != nil {
				return fmt.Errorf("connect to etcd %v: %w", c.StringSlice("etcd"), err)
			}
			defer store.Close()
			srv, err := server.New(server.Config{Name: name, Listen: c.String("listen"), Store: store, SessionTTL: c.Duration("session-ttl"), Log: log})
			if err != nil {
				return err
			}
			return srv.Run(ctx)
		},
	}
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the node agent on this host",
		Description: "Registers this host, keeps its heartbeat lease in etcd and runs the workloads\n" +
			"allocated to it through libvirt. If it loses its lease it kills its workloads.\n\n" +
			"Example:\n  bulwarkd agent --name host-1 --etcd http://10.0.0.1:2379 --label rack=r1",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "host name (a DNS label); default: the hostname", EnvVars: []string{"BULWARK_HOST_NAME"}},
			etcdFlag(), sessionTTLFlag(),
			&cli.StringFlag{Name: "libvirt-uri", Value: "qemu:///system", Usage: "libvirt connection URI (test:///path/host.xml for a simulated hypervisor)", EnvVars: []string{"BULWARK_LIBVIRT_URI"}},
			&cli.StringFlag{Name: "domain-type", Usage: "libvirt domain type: kvm, qemu or test (default: from the URI)", EnvVars: []string{"BULWARK_DOMAIN_TYPE"}},
			&cli.StringSliceFlag{Name: "label", Usage: "host label key=value (repeatable), used by placement constraints"},
			&cli.StringFlag{Name: "http-listen", Usage: "address for the agent's own API (task list), e.g. 127.0.0.1:7371; empty: off", EnvVars: []string{"BULWARK_AGENT_LISTEN"}},
			&cli.IntFlag{Name: "cpus", Usage: "override the CPUs offered to the scheduler (default: what libvirt reports)"},
			&cli.StringFlag{Name: "memory", Usage: "override the memory offered to the scheduler, e.g. 64GiB"},
		},
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			name := c.String("name")
			if name == "" {
				h, _ := os.Hostname()
				name = strings.ToLower(strings.Split(h, ".")[0])
			}
			labels := map[string]string{}
			for _, l := range c.StringSlice("label") {
				k, v, err := api.ParseLabel(l)
				if err != nil {
					return fmt.Errorf("--label: %w", err)
				}
				labels[k] = v
			}
			var mem api.ByteSize
			if s := c.String("memory"); s != "" {
				if mem, err = api.ParseByteSize(s); err != nil {
					return fmt.Errorf("--memory: %w", err)
				}
			}
			ctx, stop := signalContext()
			defer stop()
			drv, err := libvirt.New(libvirt.Config{URI: c.String("libvirt-uri"), Host: name, DomainType: c.String("domain-type")})
			if err != nil {
				return fmt.Errorf("libvirt %s: %w", c.String("libvirt-uri"), err)
			}
			defer drv.Close()
			store, err := etcdstore.Dial(ctx, c.StringSlice("etcd"), 5*time.Second)
			if err != nil {
				return fmt.Errorf("connect to etcd %v: %w", c.StringSlice("etcd"), err)
			}
			defer store.Close()
			ag, err := nodeagent.New(nodeagent.Config{Host: name, Labels: labels, Store: store, Driver: drv, SessionTTL: c.Duration("session-ttl"), HTTPListen: c.String("http-listen"), CPUs: c.Int("cpus"), Memory: mem, Log: log})
			if err != nil {
				return err
			}
			return ag.Run(ctx)
		},
	}
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:  "dev",
		Usage: "run a whole cluster on this machine (embedded etcd, one server, simulated hosts)",
		Description: "Starts an embedded etcd, one API server and N simulated hosts. Each host is its own\n" +
			"`bulwarkd agent` process with a private simulated hypervisor (libvirt's test driver),\n" +
			"so no root and no KVM are needed. Ctrl-C stops everything it started.\n\n" +
			"Example:\n  bulwarkd dev --hosts 3\n  # in another shell:\n  bulwarkctl node list",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "hosts", Value: 3, Usage: "number of simulated hosts (1-64)"},
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), Usage: "where etcd data and host logs go"},
			&cli.StringFlag{Name: "api-addr", Value: "127.0.0.1:7370", Usage: "API listen address"},
			&cli.IntFlag{Name: "etcd-port", Value: 7379, Usage: "embedded etcd client port on 127.0.0.1 (the peer port is the next one)"},
			&cli.IntFlag{Name: "host-cpus", Value: 8, Usage: "CPUs of each simulated host"},
			&cli.StringFlag{Name: "host-memory", Value: "16GiB", Usage: "memory of each simulated host"},
			sessionTTLFlag(),
		},
		Action: func(c *cli.Context) error {
			log, err := logger(c)
			if err != nil {
				return err
			}
			mem, err := api.ParseByteSize(c.String("host-memory"))
			if err != nil {
				return fmt.Errorf("--host-memory: %w", err)
			}
			ctx, stop := signalContext()
			defer stop()
			cl, err := devcluster.Start(ctx, devcluster.Config{
				Hosts: c.Int("hosts"), DataDir: c.String("data-dir"), APIAddr: c.String("api-addr"),
				EtcdPort: c.Int("etcd-port"), HostCPUs: c.Int("host-cpus"), HostMemory: mem,
				SessionTTL: c.Duration("session-ttl"), Log: log,
			})
			if err != nil {
				return err
			}
			printTour(cl, c.String("data-dir"))
			<-ctx.Done()
			fmt.Fprintln(os.Stderr, "\nstopping the dev cluster...")
			cl.Stop()
			fmt.Fprintln(os.Stderr, "stopped; nothing left running.")
			return nil
		},
	}
}

func defaultDataDir() string {
	return fmt.Sprintf("%s/bulwark-dev-%d", os.TempDir(), os.Getuid())
}

func printTour(cl *devcluster.Cluster, dataDir string) {
	api := cl.APIURL()
	env := ""
	if api != "http://127.0.0.1:7370" {
		env = "export BULWARK_API=" + api + "\n  "
	}
	fmt.Printf(`
Bulwark dev cluster is up: %d hosts (%s).
  API:       %s
  etcd:      %s
  host logs: %s/hosts/<host>/agent.log

Try, from another shell:
  %sbulwarkctl node list
  bulwarkctl vm create web1 --cpus 1 --memory 256MiB
  bulwarkctl workload show web1
  bulwarkctl workload list
  bulwarkctl workload delete web1

Press Ctrl-C to stop everything.
`, len(cl.HostNames()), strings.Join(cl.HostNames(), ", "), api, strings.Join(cl.EtcdEndpoints(), ","), dataDir, env)
}
