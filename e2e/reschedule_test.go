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
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
	"github.com/bulwarkhq/bulwark/nodeagent"
	"github.com/bulwarkhq/bulwark/server"
)

// TestCrashLoopIsRescheduled: a VM that keeps stopping is restarted by its
// host with backoff, then the host gives up and the leader places it on
// another host; a workload with restart policy "never" is left stopped.
// In-process: real server and agent code, libvirt's test driver, the
// in-memory store.
func TestCrashLoopIsRescheduled(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := memory.New()
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hosts := map[string]*libvirt.Driver{}
	for _, h := range []string{"h1", "h2"} {
		xml := filepath.Join(t.TempDir(), "host.xml")
		if err := libvirt.WriteTestHostXML(xml, 4, 8*api.GiB); err != nil {
			t.Fatal(err)
		}
		d, err := libvirt.New(libvirt.Config{URI: "test://" + xml, Host: h})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		hosts[h] = d
		ag, err := nodeagent.New(nodeagent.Config{Host: h, Store: st, Driver: d, SessionTTL: 3 * time.Second, Resync: 100 * time.Millisecond, Log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = ag.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{Name: "s1", Listener: ln, Store: st, SessionTTL: 2 * time.Second, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan struct{})
	go func() { _ = srv.Run(ctx); close(srvDone) }()
	defer func() { cancel(); <-srvDone }()
	c := client.New("http://"+ln.Addr().String(), nil)

	for _, spec := range []api.WorkloadSpec{
		{Name: "loop", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB},
		{Name: "once", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, Restart: api.RestartNever},
	} {
		if _, err := c.CreateWorkload(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	show := func(name string) api.WorkloadView {
		w, err := c.GetWorkload(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return *w
	}
	var w api.WorkloadView
	eventually(t, "both running", 10*time.Second, func() bool {
		return show("loop").State == api.StateRunning && show("once").State == api.StateRunning
	})
	first := show("loop").Host

	// "once" stops and stays stopped.
	if err := hosts[show("once").Host].Stop(ctx, "once"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "once stopped for good", 5*time.Second, func() bool {
		w = show("once")
		return w.State == api.StateStopped && strings.Contains(w.Reason, "restart policy never")
	})

	// "loop" keeps stopping on its first host: 3 restarts, then elsewhere.
	restarts := 0
	took := eventually(t, "loop rescheduled", 40*time.Second, func() bool {
		w = show("loop")
		if w.Host != first && w.State == api.StateRunning {
			return true
		}
		if s, err := hosts[first].Inspect(ctx, "loop"); err == nil && s.State == drivers.TaskRunning {
			if err := hosts[first].Stop(ctx, "loop"); err == nil {
				restarts++
			}
		}
		return false
	})
	t.Logf("loop moved %s -> %s after %d stops in %s (epoch %d)", first, w.Host, restarts, took.Round(time.Millisecond), w.Epoch)
	if restarts != api.RestartLimit+1 {
		t.Errorf("stopped %d times before the reschedule, want %d", restarts, api.RestartLimit+1)
	}
	if w.Reschedules != 1 {
		t.Errorf("reschedules = %d, want 1", w.Reschedules)
	}
}
