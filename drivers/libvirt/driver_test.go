package libvirt

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	golibvirt "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// These tests run against libvirt's real test driver (no daemon, in-process).

// testHost writes a node file and returns its test:/// URI.
func testHost(t *testing.T, cpus int, mem api.ByteSize) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "host.xml")
	if err := WriteTestHostXML(path, cpus, mem); err != nil {
		t.Fatal(err)
	}
	uri, err := TestHostURI(path)
	if err != nil {
		t.Fatal(err)
	}
	return uri
}

func newDriver(t *testing.T, cfg Config) *Driver {
	t.Helper()
	d, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustInspect(t *testing.T, d *Driver, workload string) drivers.Status {
	t.Helper()
	st, err := d.Inspect(testCtx(t), workload)
	if err != nil {
		t.Fatalf("Inspect(%s): %v", workload, err)
	}
	return st
}

func listed(t *testing.T, d *Driver) []string {
	t.Helper()
	sts, err := d.List(testCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, s := range sts {
		out = append(out, fmt.Sprintf("%s@%d:%s", s.Workload, s.Epoch, s.State))
	}
	sort.Strings(out)
	return out
}

func TestLifecycle(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 4, 8*api.GiB), Host: "h1"})
	task := vmTask("web", 10, 2, 256*api.MiB)

	if _, err := d.Inspect(ctx, "web"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Inspect before Start: %v, want ErrNotFound", err)
	}
	if got := listed(t, d); len(got) != 0 {
		t.Fatalf("List on a fresh host: %v", got)
	}

	if err := d.Start(ctx, task); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st := mustInspect(t, d, "web")
	if st.State != drivers.TaskRunning || st.Workload != "web" || st.Epoch != 10 || st.ID == "" {
		t.Fatalf("after Start: %+v", st)
	}
	id := st.ID
	if got := listed(t, d); strings.Join(got, ",") != "web@10:running" {
		t.Fatalf("List: %v", got)
	}

	// Start again: nothing changes.
	if err := d.Start(ctx, task); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if st := mustInspect(t, d, "web"); st.ID != id || st.State != drivers.TaskRunning {
		t.Fatalf("second Start changed the domain: %+v (was %s)", st, id)
	}

	if err := d.Stop(ctx, "web"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st = mustInspect(t, d, "web")
	if st.State != drivers.TaskStopped || st.Detail != "shut down" || st.ID != id || st.Epoch != 10 {
		t.Fatalf("after Stop: %+v", st)
	}
	if got := listed(t, d); strings.Join(got, ",") != "web@10:stopped" {
		t.Fatalf("List after Stop: %v", got)
	}
	if err := d.Stop(ctx, "web"); err != nil {
		t.Fatalf("Stop of a stopped task: %v", err)
	}

	// Start of a stopped task with the same epoch boots the same domain.
	if err := d.Start(ctx, task); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	if st := mustInspect(t, d, "web"); st.State != drivers.TaskRunning || st.ID != id {
		t.Fatalf("Start after Stop: %+v", st)
	}

	if err := d.Destroy(ctx, "web"); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if _, err := d.Inspect(ctx, "web"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Inspect after Destroy: %v, want ErrNotFound", err)
	}
	if got := listed(t, d); len(got) != 0 {
		t.Fatalf("List after Destroy: %v", got)
	}
	if err := d.Destroy(ctx, "web"); err != nil {
		t.Fatalf("second Destroy: %v", err)
	}
	if err := d.Stop(ctx, "web"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Stop of a missing task: %v, want ErrNotFound", err)
	}
}

func TestDestroyStoppedTask(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1"})
	if err := d.Start(ctx, vmTask("web", 1, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(ctx, "web"); err != nil {
		t.Fatalf("Destroy of a stopped task: %v", err)
	}
	if _, err := d.Inspect(ctx, "web"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Inspect after Destroy: %v", err)
	}
}

func TestStartNewEpochReplaces(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 4, 8*api.GiB), Host: "h1"})
	if err := d.Start(ctx, vmTask("web", 10, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	old := mustInspect(t, d, "web")

	if err := d.Start(ctx, vmTask("web", 11, 2, 512*api.MiB)); err != nil {
		t.Fatalf("Start with a new epoch: %v", err)
	}
	st := mustInspect(t, d, "web")
	if st.Epoch != 11 || st.State != drivers.TaskRunning || st.ID == old.ID {
		t.Fatalf("after replacement: %+v (old %+v)", st, old)
	}
	if got := listed(t, d); strings.Join(got, ",") != "web@11:running" {
		t.Fatalf("List: %v", got)
	}
	// The new definition carries the new spec.
	dom, err := d.conn.LookupDomainByName(domainName("h1", "web"))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	info, err := dom.GetInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.NrVirtCpu != 2 || info.MaxMem != 512*1024 {
		t.Errorf("new domain has %d vCPUs, %d KiB", info.NrVirtCpu, info.MaxMem)
	}

	// A stopped instance of an older epoch is replaced too.
	if err := d.Stop(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, vmTask("web", 12, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if st := mustInspect(t, d, "web"); st.Epoch != 12 || st.State != drivers.TaskRunning {
		t.Fatalf("after replacing a stopped instance: %+v", st)
	}
}

// defineRaw defines (and optionally starts) a domain on d's connection,
// bypassing the driver, after edit has changed the rendered definition.
func defineRaw(t *testing.T, d *Driver, host string, task drivers.Task, start bool, edit func(*libvirtxml.Domain)) {
	t.Helper()
	cfg := d.Config()
	cfg.Host = host
	s, err := RenderDomain(cfg, task)
	if err != nil {
		t.Fatal(err)
	}
	var def libvirtxml.Domain
	if err := def.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	edit(&def)
	if s, err = def.Marshal(); err != nil {
		t.Fatal(err)
	}
	dom, err := d.conn.DomainDefineXML(s)
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	if start {
		if err := dom.Create(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStopForcesAGuestThatIgnoresShutdown(t *testing.T) {
	d := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1", ShutdownTimeout: 200 * time.Millisecond})
	// With on_poweroff=restart the test driver "reboots" on a shutdown
	// request, so the domain stays running: a guest that ignores ACPI.
	stubborn := func(def *libvirtxml.Domain) { def.OnPoweroff = "restart" }
	defineRaw(t, d, "h1", vmTask("stubborn", 3, 1, 128*api.MiB), true, stubborn)

	// The context's deadline ends the grace period.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx, "stubborn"); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st := mustInspect(t, d, "stubborn")
	if st.State != drivers.TaskStopped || st.Detail != "destroyed" {
		t.Fatalf("after Stop with a deadline: %+v, want stopped/destroyed", st)
	}

	// Without a deadline, Config.ShutdownTimeout does.
	if err := d.Start(testCtx(t), vmTask("stubborn", 3, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(context.Background(), "stubborn"); err != nil {
		t.Fatalf("Stop without deadline: %v", err)
	}
	if st := mustInspect(t, d, "stubborn"); st.State != drivers.TaskStopped || st.Detail != "destroyed" {
		t.Fatalf("after Stop without deadline: %+v", st)
	}

	// An already expired context still stops it.
	if err := d.Start(testCtx(t), vmTask("stubborn", 3, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	expired, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := d.Stop(expired, "stubborn"); err != nil {
		t.Fatalf("Stop with a cancelled context: %v", err)
	}
	if st := mustInspect(t, d, "stubborn"); st.State != drivers.TaskStopped {
		t.Fatalf("after Stop with a cancelled context: %+v", st)
	}
	if err := d.Destroy(expired, "stubborn"); err != nil {
		t.Fatalf("Destroy with a cancelled context: %v", err)
	}
}

func TestInspectPausedCountsAsRunning(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1"})
	if err := d.Start(ctx, vmTask("web", 1, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	dom, err := d.conn.LookupDomainByName(domainName("h1", "web"))
	if err != nil {
		t.Fatal(err)
	}
	defer dom.Free()
	if err := dom.Suspend(); err != nil {
		t.Fatal(err)
	}
	if st := mustInspect(t, d, "web"); st.State != drivers.TaskRunning || st.Detail != "paused: by user" {
		t.Fatalf("paused domain: %+v", st)
	}
	// Stop and Destroy handle a paused domain too.
	if err := d.Destroy(ctx, "web"); err != nil {
		t.Fatalf("Destroy of a paused domain: %v", err)
	}
}

func TestForeignDomainsAreLeftAlone(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1"})
	// Named like a Bulwark task of h1, but defined by someone else.
	noMeta := func(def *libvirtxml.Domain) { def.Metadata = nil }
	defineRaw(t, d, "h1", vmTask("intruder", 1, 1, 128*api.MiB), true, noMeta)

	if got := listed(t, d); len(got) != 0 {
		t.Fatalf("List shows a foreign domain: %v", got)
	}
	if _, err := d.Inspect(ctx, "intruder"); !errors.Is(err, ErrForeignDomain) {
		t.Fatalf("Inspect: %v, want ErrForeignDomain", err)
	}
	if err := d.Start(ctx, vmTask("intruder", 2, 1, 128*api.MiB)); !errors.Is(err, ErrForeignDomain) {
		t.Fatalf("Start: %v, want ErrForeignDomain", err)
	}
	if err := d.Stop(ctx, "intruder"); !errors.Is(err, ErrForeignDomain) {
		t.Fatalf("Stop: %v, want ErrForeignDomain", err)
	}
	if err := d.Destroy(ctx, "intruder"); !errors.Is(err, ErrForeignDomain) {
		t.Fatalf("Destroy: %v, want ErrForeignDomain", err)
	}
	dom, err := d.conn.LookupDomainByName(domainName("h1", "intruder"))
	if err != nil {
		t.Fatalf("the foreign domain is gone: %v", err)
	}
	defer dom.Free()
	if active, _ := dom.IsActive(); !active {
		t.Fatal("the foreign domain was stopped")
	}
}

// Several simulated hosts can share one hypervisor (here test:///default,
// whose state is shared by every connection in the process): each driver
// sees only its own domains, even when names alone are ambiguous.
func TestHostsSharingAHypervisor(t *testing.T) {
	ctx := testCtx(t)
	a := newDriver(t, Config{URI: "test:///default", Host: "a"})
	ab := newDriver(t, Config{URI: "test:///default", Host: "a-b"})

	// bulwark-a-b-c is host "a-b", workload "c", not host "a", workload "b-c".
	if err := ab.Start(ctx, vmTask("c", 5, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if err := a.Start(ctx, vmTask("web", 6, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, a); strings.Join(got, ",") != "web@6:running" {
		t.Errorf("host a lists %v", got)
	}
	if got := listed(t, ab); strings.Join(got, ",") != "c@5:running" {
		t.Errorf("host a-b lists %v", got)
	}
	if _, err := a.Inspect(ctx, "b-c"); !errors.Is(err, ErrForeignDomain) {
		t.Errorf("host a inspecting b-c: %v, want ErrForeignDomain", err)
	}
	if _, err := ab.Inspect(ctx, "web"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("host a-b inspecting web: %v, want ErrNotFound", err)
	}
	// test:///default ships a domain named "test"; no host lists it.
	for _, d := range []*Driver{a, ab} {
		if err := d.Destroy(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if err := d.Destroy(ctx, "c"); err != nil {
			t.Fatal(err)
		}
	}
	if got := append(listed(t, a), listed(t, ab)...); len(got) != 0 {
		t.Errorf("after Destroy: %v", got)
	}
}

func TestSeparateTestHostsAreIsolated(t *testing.T) {
	ctx := testCtx(t)
	h1 := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1"})
	h2 := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h2"})
	if err := h1.Start(ctx, vmTask("web", 1, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if err := h2.Start(ctx, vmTask("web", 2, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, h1); strings.Join(got, ",") != "web@1:running" {
		t.Errorf("h1 lists %v", got)
	}
	if got := listed(t, h2); strings.Join(got, ",") != "web@2:running" {
		t.Errorf("h2 lists %v", got)
	}
}

func TestFingerprint(t *testing.T) {
	cases := []struct {
		cpus     int
		mem      api.ByteSize
		wantMem  api.ByteSize
		hostName string
	}{
		{1, 64 * api.MiB, 64 * api.MiB, "small"},
		{6, 12 * api.GiB, 12 * api.GiB, "mid"},
		{96, 768 * api.GiB, 768 * api.GiB, "big"},
		// The node file holds KiB: a remainder is dropped.
		{3, 1000*api.MiB + 100, 1000 * api.MiB, "odd"},
	}
	for _, c := range cases {
		t.Run(c.hostName, func(t *testing.T) {
			d := newDriver(t, Config{URI: testHost(t, c.cpus, c.mem), Host: c.hostName})
			fp, err := d.Fingerprint(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if fp.CPUs != c.cpus || fp.Memory != c.wantMem {
				t.Errorf("Fingerprint %d CPUs, %s; want %d, %s", fp.CPUs, fp.Memory, c.cpus, c.wantMem)
			}
			if !strings.HasPrefix(fp.Detail, "libvirt test ") {
				t.Errorf("detail %q", fp.Detail)
			}
		})
	}
}

func TestWriteTestHostXMLRejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		cpus int
		mem  api.ByteSize
	}{{0, api.GiB}, {-1, api.GiB}, {1, 0}, {1, 1000}, {api.MaxCPUs + 1, api.GiB}} {
		if err := WriteTestHostXML(filepath.Join(dir, "h.xml"), c.cpus, c.mem); err == nil {
			t.Errorf("WriteTestHostXML(%d, %d) accepted", c.cpus, c.mem)
		}
	}
	if err := WriteTestHostXML(filepath.Join(dir, "missing", "h.xml"), 1, api.GiB); err == nil {
		t.Error("WriteTestHostXML into a missing directory succeeded")
	}
}

// What an agent can rely on after reconnecting to the test driver.
//
// test:///<file>: every connection parses the file into a private host, so a
// new Driver (an agent "restart" in the same process) finds none of the old
// domains, and they vanish when their Driver closes. Tests that need state to
// survive an agent restart must keep the Driver, or use test:///default.
func TestReconnectFileURIGivesAFreshHost(t *testing.T) {
	ctx := testCtx(t)
	uri := testHost(t, 4, 8*api.GiB)
	first := newDriver(t, Config{URI: uri, Host: "h1"})
	if err := first.Start(ctx, vmTask("web", 1, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}

	second := newDriver(t, Config{URI: uri, Host: "h1"})
	if got := listed(t, second); len(got) != 0 {
		t.Fatalf("a new connection to %s sees %v", uri, got)
	}
	if _, err := second.Inspect(ctx, "web"); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("Inspect on a new connection: %v, want ErrNotFound", err)
	}
	// Same capacity: the file is the host's hardware, not its state.
	fp, err := second.Fingerprint(ctx)
	if err != nil || fp.CPUs != 4 || fp.Memory != 8*api.GiB {
		t.Fatalf("Fingerprint on a new connection: %+v, %v", fp, err)
	}
	// Both hosts run their own copy without seeing each other.
	if err := second.Start(ctx, vmTask("web", 2, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, first); strings.Join(got, ",") != "web@1:running" {
		t.Fatalf("the first connection now lists %v", got)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third := newDriver(t, Config{URI: uri, Host: "h1"})
	if got := listed(t, third); len(got) != 0 {
		t.Fatalf("after Close and reconnect: %v", got)
	}
}

// test:///default: connections in one process share one host while at least
// one stays open, so a new Driver re-attaches to running tasks through List,
// with workload and epoch read back from the metadata. When the last
// connection closes the host is reset.
func TestReconnectDefaultURISharesStateWhileOpen(t *testing.T) {
	ctx := testCtx(t)
	cfg := Config{URI: "test:///default", Host: "recon"}
	first := newDriver(t, cfg)
	if err := first.Start(ctx, vmTask("web", 41, 1, 128*api.MiB)); err != nil {
		t.Fatal(err)
	}
	firstID := mustInspect(t, first, "web").ID

	second := newDriver(t, cfg)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, second); strings.Join(got, ",") != "web@41:running" {
		t.Fatalf("a restarted agent lists %v", got)
	}
	if st := mustInspect(t, second, "web"); st.ID != firstID {
		t.Fatalf("re-attached to a different domain: %+v (was %s)", st, firstID)
	}
	if err := second.Start(ctx, vmTask("web", 41, 1, 128*api.MiB)); err != nil {
		t.Fatalf("Start after re-attaching: %v", err)
	}
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}

	third := newDriver(t, cfg)
	if got := listed(t, third); len(got) != 0 {
		t.Fatalf("after the last connection closed: %v", got)
	}
}

func TestClosedDriver(t *testing.T) {
	d, err := New(Config{URI: testHost(t, 1, api.GiB), Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := testCtx(t)
	if _, err := d.Fingerprint(ctx); err == nil {
		t.Error("Fingerprint on a closed driver")
	}
	if err := d.Start(ctx, vmTask("web", 1, 1, 128*api.MiB)); err == nil {
		t.Error("Start on a closed driver")
	}
	if _, err := d.List(ctx); err == nil {
		t.Error("List on a closed driver")
	}
	if err := d.Destroy(ctx, "web"); err == nil {
		t.Error("Destroy on a closed driver")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{URI: "", Host: "h1"},
		{URI: "test:///default", Host: ""},
		{URI: "test:///default", Host: "bad host"},
		{URI: "test:///default", Host: "h1", DomainType: "lxc"},
		{URI: "test:///no/such/file.xml", Host: "h1"},
	} {
		if d, err := New(cfg); err == nil {
			d.Close()
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestBadWorkloadNames(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 1, api.GiB), Host: "h1"})
	for _, name := range []string{"", "Web", "a b", "../etc", "a<b", strings.Repeat("x", 64)} {
		if _, err := d.Inspect(ctx, name); err == nil || errors.Is(err, drivers.ErrNotFound) {
			t.Errorf("Inspect(%q): %v", name, err)
		}
		if err := d.Stop(ctx, name); err == nil {
			t.Errorf("Stop(%q) succeeded", name)
		}
		if err := d.Destroy(ctx, name); err == nil {
			t.Errorf("Destroy(%q) succeeded", name)
		}
		if err := d.Start(ctx, vmTask(name, 1, 1, 128*api.MiB)); err == nil {
			t.Errorf("Start(%q) succeeded", name)
		}
	}
}

// Two callers per workload start the same task at once (the per-workload lock
// must keep them from defining it twice), then replace it with a new epoch,
// while List runs against domains that come and go.
func TestConcurrentUse(t *testing.T) {
	ctx := testCtx(t)
	d := newDriver(t, Config{URI: testHost(t, 8, 16*api.GiB), Host: "h1"})
	for epoch := int64(1); epoch <= 3; epoch++ {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 8 {
			wg.Add(2)
			go func() {
				defer wg.Done()
				if err := d.Start(ctx, vmTask(fmt.Sprintf("w%d", i%4), epoch, 1, 128*api.MiB)); err != nil {
					errs <- err
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := d.List(ctx); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		want := fmt.Sprintf("w0@%[1]d:running,w1@%[1]d:running,w2@%[1]d:running,w3@%[1]d:running", epoch)
		if got := strings.Join(listed(t, d), ","); got != want {
			t.Fatalf("epoch %d: List %s", epoch, got)
		}
	}
}

func TestMapState(t *testing.T) {
	cases := []struct {
		state  golibvirt.DomainState
		reason int
		want   drivers.TaskState
		detail string
	}{
		{golibvirt.DOMAIN_RUNNING, int(golibvirt.DOMAIN_RUNNING_BOOTED), drivers.TaskRunning, ""},
		{golibvirt.DOMAIN_BLOCKED, 0, drivers.TaskRunning, "blocked on resource"},
		{golibvirt.DOMAIN_PAUSED, int(golibvirt.DOMAIN_PAUSED_IOERROR), drivers.TaskRunning, "paused: disk I/O error"},
		{golibvirt.DOMAIN_SHUTDOWN, 0, drivers.TaskRunning, "shutting down"},
		{golibvirt.DOMAIN_SHUTOFF, int(golibvirt.DOMAIN_SHUTOFF_SHUTDOWN), drivers.TaskStopped, "shut down"},
		{golibvirt.DOMAIN_SHUTOFF, int(golibvirt.DOMAIN_SHUTOFF_DESTROYED), drivers.TaskStopped, "destroyed"},
		{golibvirt.DOMAIN_SHUTOFF, int(golibvirt.DOMAIN_SHUTOFF_CRASHED), drivers.TaskFailed, "crashed"},
		{golibvirt.DOMAIN_SHUTOFF, int(golibvirt.DOMAIN_SHUTOFF_FAILED), drivers.TaskFailed, "failed to start"},
		{golibvirt.DOMAIN_CRASHED, int(golibvirt.DOMAIN_CRASHED_PANICKED), drivers.TaskFailed, "guest panicked"},
		{golibvirt.DOMAIN_CRASHED, 0, drivers.TaskFailed, "crashed"},
		{golibvirt.DOMAIN_NOSTATE, 0, drivers.TaskUnknown, "libvirt state 0, reason 0"},
	}
	for _, c := range cases {
		got, detail := mapState(c.state, c.reason)
		if got != c.want || detail != c.detail {
			t.Errorf("mapState(%d, %d) = %s %q, want %s %q", c.state, c.reason, got, detail, c.want, c.detail)
		}
	}
}

func TestDriverIdentity(t *testing.T) {
	d := newDriver(t, Config{URI: testHost(t, 1, api.GiB), Host: "h1"})
	if d.Name() != "libvirt" {
		t.Errorf("Name %q", d.Name())
	}
	if k := d.Kinds(); len(k) != 1 || k[0] != api.KindVM {
		t.Errorf("Kinds %v", k)
	}
	if d.Config().DomainType != DomainTypeTest {
		t.Errorf("domain type %q", d.Config().DomainType)
	}
}
