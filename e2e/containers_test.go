package e2e

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/containerd"
	"github.com/bulwarkhq/bulwark/drivers/containerd/containerdtest"
	"github.com/bulwarkhq/bulwark/nodeagent"
	"github.com/bulwarkhq/bulwark/server"
)

// containerCluster runs a server and one agent per host against a real,
// private containerd (each host its own namespace), in this process.
type containerCluster struct {
	t      *testing.T
	st     clusterstore.Store
	daemon *containerdtest.Daemon
	api    *client.Client
	state  string
	stops  map[string]func()
}

func newContainerCluster(t *testing.T, hosts ...string) *containerCluster {
	t.Helper()
	daemon := containerdtest.Start(t)
	c := &containerCluster{t: t, st: memory.New(), daemon: daemon, state: t.TempDir(), stops: map[string]func(){}}
	t.Cleanup(func() { c.st.Close() })
	for _, h := range hosts {
		c.startAgent(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Name: "s1", Listener: ln, Store: c.st, SessionTTL: 2 * time.Second, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	c.api = client.New("http://"+ln.Addr().String(), nil)
	return c
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (c *containerCluster) driver(host string) *containerd.Driver {
	c.t.Helper()
	d, err := containerd.New(containerd.Config{Address: c.daemon.Address(), Host: host, StateDir: filepath.Join(c.state, host)})
	if err != nil {
		c.t.Fatal(err)
	}
	return d
}

// startAgent runs a host's agent with a fresh driver instance, as a
// restarted agent process would have.
func (c *containerCluster) startAgent(host string) {
	c.t.Helper()
	d := c.driver(host)
	ag, err := nodeagent.New(nodeagent.Config{Host: host, Store: c.st, Driver: drivers.Set{d}, SessionTTL: 3 * time.Second,
		Resync: 100 * time.Millisecond, HTTPListen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ag.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done; d.Close() }
	c.stops[host] = stop
	c.t.Cleanup(func() {
		if s := c.stops[host]; s != nil {
			s()
			delete(c.stops, host)
		}
	})
}

func (c *containerCluster) show(name string) api.WorkloadView {
	c.t.Helper()
	w, err := c.api.GetWorkload(context.Background(), name)
	if err != nil {
		c.t.Fatal(err)
	}
	return *w
}

// TestContainerSurvivesAgentRestart: the agent stops and starts again; the
// container keeps running with the same PID, and its output is served.
func TestContainerSurvivesAgentRestart(t *testing.T) {
	c := newContainerCluster(t, "h1")
	archive, ref := containerdtest.BuildBusyboxArchive(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.api.CreateWorkload(ctx, api.WorkloadSpec{Name: "web", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB,
		Image: containerd.ArchivePrefix + archive + "#" + ref, Command: []string{"sh", "-c", "echo hello from web; sleep 600"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "web running", 20*time.Second, func() bool { return c.show("web").State == api.StateRunning })
	d := c.driver("h1")
	defer d.Close()
	pid, err := d.PID(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.api.Logs(ctx, "web", false)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(out), "hello from web") {
		t.Fatalf("logs: %q", out)
	}

	c.stops["h1"]()
	delete(c.stops, "h1")
	c.startAgent("h1")
	time.Sleep(time.Second) // several reconcile passes of the new agent
	eventually(t, "web reported running by the new agent", 10*time.Second, func() bool { return c.show("web").State == api.StateRunning })
	again, err := d.PID(ctx, "web")
	if err != nil || again != pid {
		t.Fatalf("PID after agent restart: %d (%v), before %d", again, err, pid)
	}
}

// TestCrashingContainerMovesHost: a container that keeps exiting non-zero
// is restarted with backoff, reported failed, then placed on another host.
func TestCrashingContainerMovesHost(t *testing.T) {
	c := newContainerCluster(t, "h1", "h2")
	archive, ref := containerdtest.BuildBusyboxArchive(t, t.TempDir())
	ctx := context.Background()
	if _, err := c.api.CreateWorkload(ctx, api.WorkloadSpec{Name: "crashy", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB,
		Image: containerd.ArchivePrefix + archive + "#" + ref, Command: []string{"sh", "-c", "sleep 0.2; exit 3"}}); err != nil {
		t.Fatal(err)
	}
	var first string
	eventually(t, "crashy placed", 10*time.Second, func() bool { first = c.show("crashy").Host; return first != "" })
	sawFailed := false
	took := eventually(t, "crashy moved to the other host", 40*time.Second, func() bool {
		w := c.show("crashy")
		if w.State == api.StateFailed && strings.Contains(w.Reason, "exit code 3") {
			sawFailed = true
		}
		return w.Host != "" && w.Host != first
	})
	t.Logf("crashy moved from %s after %s", first, took.Round(time.Millisecond))
	if !sawFailed {
		t.Error("never reported failed with its exit code")
	}
	if w := c.show("crashy"); w.Reschedules != 1 {
		t.Errorf("reschedules %d, want 1", w.Reschedules)
	}
}
