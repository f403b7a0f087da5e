// Command bulwarkd is Bulwark's daemon: the API server and scheduler replica,
// the node agent, and the single-machine dev cluster. Wiring only.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/config"
	"github.com/bulwarkhq/bulwark/devcluster"
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
		Commands: []*cli.Command{serverCommand(), agentCommand(), configCommand(), devCommand(), bmcCommand(), benchCommand(), tokenCommand(), caCommand(), certCommand(), etcdAuthCommand()},
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

func sessionTTLFlag() cli.Flag {
	return &cli.DurationFlag{Name: "session-ttl", Value: 3 * time.Second, Usage: "lease TTL (T) of the agents' heartbeats and the server's leadership", EnvVars: []string{"BULWARK_SESSION_TTL"}}
}

func serverCommand() *cli.Command {
	return &cli.Command{
		Name:  "server",
		Usage: "run an API server and scheduler replica",
		Description: "Serves the HTTP API under /v1/ and joins the leader election in etcd; only the\n" +
			"leader places workloads. Run several replicas against one etcd for high availability.\n\n" +
			"Settings come from /etc/bulwark/server.yaml (or --config), environment variables and\n" +
			"flags; precedence: flag > environment > file > default. Each flag below names its file\n" +
			"key and variable. Check a file with `bulwarkd config check FILE`.\n\n" +
			"The leader fences lost hosts through the fence devices (Redfish BMCs) listed per host\n" +
			"under fencing.hosts in the file; that list has no flag or variable. A device that cannot\n" +
			"be set up (a password file its group or others may read, a password variable not set)\n" +
			"stops the server with exit status 78.\n\n" +
			"Example:\n  bulwarkd server --name s1 --listen 0.0.0.0:7370 --etcd http://10.0.0.1:2379",
		Flags: configFlags(config.KindServer),
		Action: func(c *cli.Context) error {
			cfg, err := loadServerConfig(c)
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			name := cfg.Name
			if name == "" {
				name = hostName()
			}
			fc, err := fencingConfig(cfg, log)
			if err != nil {
				return configExit(config.KindServer, err)
			}
			if hosts := cfg.Fencing.HostNames(); len(hosts) > 0 {
				log.Info("fencing configured", "hosts", strings.Join(hosts, ","), "devices", len(cfg.Fencing.Devices()),
					"device_timeout", cfg.Fencing.DeviceTimeout, "check_interval", cfg.Fencing.CheckInterval)
				for _, d := range cfg.Fencing.Devices() {
					log.Debug("fence device", "host", d.Host, "level", d.Level, "device", d.Name, "url", d.URL, "user", d.Username)
				}
			} else {
				log.Warn("no fence devices configured (fencing.hosts): the workloads of a lost host wait for an operator " +
					"(bulwarkctl node fence HOST --confirm-off) or for watchdog fencing")
			}
			ctx, stop := daemonContext(log)
			defer stop()
			store, err := dialEtcd(ctx, cfg.Etcd)
			if err != nil {
				return err
			}
			defer store.Close()
			apiTLS, err := serverTLS(cfg)
			if err != nil {
				return configExit(config.KindServer, err)
			}
			agentTLS, err := agentClientTLS(cfg)
			if err != nil {
				return configExit(config.KindServer, err)
			}
			if !cfg.AuthRequired {
				log.Warn("API AUTHENTICATION IS OFF (auth.required: false): anyone who reaches the API can fence hosts and delete workloads")
			}
			srv, err := server.New(server.Config{Name: name, Listen: cfg.Listen, Store: store, SessionTTL: cfg.SessionTTL, Log: log,
				Fencing: fc, OnReady: notifier(log, "READY=1"), Auth: server.AuthConfig{Required: cfg.AuthRequired}, TLS: apiTLS, AgentTLS: agentTLS})
			if err != nil {
				return err
			}
			return srv.Run(ctx)
		},
	}
}

// daemonContext ends on SIGINT or SIGTERM and tells systemd the daemon is
// stopping.
func daemonContext(log *slog.Logger) (context.Context, context.CancelFunc) {
	ctx, stop := signalContext()
	context.AfterFunc(ctx, notifier(log, "STOPPING=1"))
	return ctx, stop
}

func dialEtcd(ctx context.Context, e config.Etcd) (clusterstore.Store, error) {
	tlsConfig, err := etcdTLS(e)
	if err != nil {
		return nil, fmt.Errorf("etcd TLS: %w", err)
	}
	store, err := etcdstore.DialTLS(ctx, e.Endpoints, e.DialTimeout, tlsConfig)
	if err != nil {
		return nil, fmt.Errorf("connect to etcd %v: %w", e.Endpoints, withAuthHint(e, err))
	}
	return store, nil
}

func agentCommand() *cli.Command {
	return &cli.Command{
		Name:  "agent",
		Usage: "run the node agent on this host",
		Description: "Registers this host, keeps its heartbeat lease in etcd and runs the workloads\n" +
			"allocated to it: VMs through libvirt, containers through containerd (set\n" +
			"containerd.address). If it cannot renew its lease for self_fence_after it kills them all.\n\n" +
			"Settings come from /etc/bulwark/agent.yaml (or --config), environment variables and\n" +
			"flags; precedence: flag > environment > file > default. Each flag below names its file\n" +
			"key and variable. Check a file with `bulwarkd config check FILE`.\n\n" +
			"Example:\n  bulwarkd agent --name host-1 --etcd http://10.0.0.1:2379 --label rack=r1",
		Flags: configFlags(config.KindAgent),
		Action: func(c *cli.Context) error {
			cfg, err := loadAgentConfig(c)
			if err != nil {
				return err
			}
			log := newLogger(cfg.LogLevel)
			name := cfg.Name
			if name == "" {
				name = hostName()
			}
			if err := checkAgentCertificate(cfg, name); err != nil {
				return configExit(config.KindAgent, err)
			}
			//lint:ignore SA1019 reading the deprecated section is how its users are warned
			if cfg.BMC != (config.BMC{}) {
				log.Warn(bmcDeprecated)
			}
			apiTLS, err := agentAPITLS(cfg)
			if err != nil {
				return configExit(config.KindAgent, err)
			}
			if cfg.HTTPListen != "" && apiTLS == nil {
				if cfg.HTTPInsecure {
					log.Warn("the agent's API serves PLAIN HTTP (http_insecure: true): its token and the workloads' logs cross the network in clear", "http_listen", cfg.HTTPListen)
				} else {
					log.Info("the agent's API serves plain HTTP on a loopback address (no certificate)", "http_listen", cfg.HTTPListen)
				}
			}
			ctx, stop := daemonContext(log)
			defer stop()
			drv, err := agentDrivers(cfg, name)
			if err != nil {
				return err
			}
			defer drv.Close()
			store, err := dialEtcd(ctx, cfg.Etcd)
			if err != nil {
				if ctx.Err() == nil {
					// No cluster, so no lease: whatever an earlier run
					// left here must not outlive it.
					log.Error("SELF-FENCING: cannot reach etcd at start; killing every workload on this host", "err", err)
					nodeagent.KillAll(drv, log)
				}
				return err
			}
			defer store.Close()
			ag, err := nodeagent.New(nodeagent.Config{Host: name, Labels: cfg.Labels, Store: store, Driver: drv, SessionTTL: cfg.SessionTTL,
				HTTPListen: cfg.HTTPListen, HTTPTLS: apiTLS, CPUs: cfg.CPUs, Memory: cfg.Memory, Log: log, OnReady: notifier(log, "READY=1"),
				SelfFenceAfter: cfg.SelfFenceAfter, WatchdogDevice: cfg.WatchdogDevice, Netns: cfg.Netns, Networks: cfg.Networks})
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
			"so no root and no KVM are needed. Ctrl-C stops everything it started.\n" +
			"With --driver containerd (real containers) or --driver qemu (real QEMU guests under one\n" +
			"private libvirtd; a guest kernel and initramfs are written into --data-dir) it needs root.\n\n" +
			"Example:\n  bulwarkd dev --hosts 3\n  # in another shell:\n  bulwarkctl node list",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "hosts", Value: 3, Usage: "number of simulated hosts (1-64)"},
			&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), Usage: "where etcd data and host logs go"},
			&cli.StringFlag{Name: "api-addr", Value: "127.0.0.1:7370", Usage: "API listen address"},
			&cli.IntFlag{Name: "etcd-port", Value: 7379, Usage: "embedded etcd client port on 127.0.0.1 (the peer port is picked free)"},
			&cli.IntFlag{Name: "host-cpus", Value: 8, Usage: "CPUs of each simulated host"},
			&cli.StringFlag{Name: "host-memory", Value: "16GiB", Usage: "memory of each simulated host"},
			&cli.DurationFlag{Name: "bmc-latency", Value: time.Second, Usage: "how long each emulated BMC takes to power its host off"},
			&cli.StringFlag{Name: "driver", Value: "test", Usage: "test: simulated VMs (libvirt's test driver, no root); containerd: real containers in a private containerd (root); qemu: real QEMU guests under a private libvirtd (root)"},
			&cli.BoolFlag{Name: "netns", Usage: "give each simulated host a network namespace of its own on one bridge (plus a \"client\" namespace), so that floating IPs really move between hosts (root, iproute2)"},
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
				SessionTTL: c.Duration("session-ttl"), BMCLatency: c.Duration("bmc-latency"), Driver: c.String("driver"), Netns: c.Bool("netns"), Log: log,
			})
			if err != nil {
				return err
			}
			printTour(cl, c.String("data-dir"), c.String("driver"))
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

func printTour(cl *devcluster.Cluster, dataDir, driver string) {
	api := cl.APIURL()
	env := ""
	if api != "http://127.0.0.1:7370" {
		env = "export BULWARK_API=" + api + "\n  "
	}
	tokenFile := filepath.Join(dataDir, devcluster.AdminTokenFile)
	if dataDir != defaultDataDir() {
		env += "export BULWARK_TOKEN_FILE=" + tokenFile + "\n  "
	}
	try := `bulwarkctl vm create web1 --cpus 1 --memory 256MiB
  bulwarkctl workload show web1`
	if driver == devcluster.DriverContainerd {
		try = fmt.Sprintf(`bulwarkctl container run web1 --image-archive %s -- httpd -f -p 18080
  bulwarkctl workload show web1
  bulwarkctl workload logs web1`, cl.BusyboxArchive())
	}
	if driver == devcluster.DriverQEMU {
		try = fmt.Sprintf(`bulwarkctl vm create web1 --cpus 1 --memory 128MiB --kernel %s --initrd %s --cmdline %q
  bulwarkctl workload show web1
  bulwarkctl workload logs web1        # the guest's console: BULWARK-GUEST-UP once it has booted`, cl.GuestKernel(), cl.GuestInitrd(), devcluster.GuestCmdline)
	}
	fmt.Printf(`
Bulwark dev cluster is up: %d hosts (%s), driver %s.
  API:       %s (admin token in %s; bulwarkctl finds it there)
  dashboard: %s/ui/
  etcd:      %s
  host logs: %s/hosts/<host>/agent.log

Try, from another shell:
  %sbulwarkctl node list
  %s
  bulwarkctl dev fault host-1 crash     # then watch: bulwarkctl node list
  bulwarkctl workload list
  bulwarkctl workload delete web1

Press Ctrl-C to stop everything.
`, len(cl.HostNames()), strings.Join(cl.HostNames(), ", "), driver, api, tokenFile, api, strings.Join(cl.EtcdEndpoints(), ","), dataDir, env, try)
}
