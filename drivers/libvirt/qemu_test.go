package libvirt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/libvirt/libvirttest"
)

// These tests boot real guests under QEMU through a private libvirtd (see
// libvirttest). They skip, loudly, where that cannot run, unless
// BULWARK_REQUIRE_REAL=1. One daemon serves all the subtests.

// Bounds (never expectations) for slow steps: a guest boots in ~4 s under
// TCG here.
const (
	bootTimeout = 60 * time.Second
	stopTimeout = 30 * time.Second
)

func TestQEMU(t *testing.T) {
	daemon := libvirttest.Start(t)
	t.Logf("libvirtd at %s (start took %s)", daemon.URI(), daemon.StartTime.Round(time.Millisecond))
	sweepTestDomains(t, daemon.URI())
	sweepTestBridges(t)

	// Everything the guests touch must be reachable by libvirt-qemu.
	dir := sharedTempDir(t)
	guest := libvirttest.BuildGuest(t, dir)
	t.Logf("guest kernel %s", guest.Version)

	t.Run("boot-stop-destroy", func(t *testing.T) { testBootStopDestroy(t, daemon, dir, guest) })
	t.Run("bad-input", func(t *testing.T) { testBadInput(t, daemon, dir, guest) })
}

func testBootStopDestroy(t *testing.T, daemon *libvirttest.Daemon, dir string, guest libvirttest.Guest) {
	host := randomName("lvt")
	logDir := filepath.Join(dir, "console")
	d := newDriver(t, Config{URI: daemon.URI(), Host: host, ConsoleLogDir: logDir})

	fp, err := d.Fingerprint(testCtx(t))
	if err != nil {
		t.Fatalf("Fingerprint: %v", err)
	}
	t.Logf("fingerprint: %d CPUs, %s, %s", fp.CPUs, fp.Memory.Human(), fp.Detail)
	if fp.CPUs < 1 || fp.Memory < api.MinMemory {
		t.Errorf("fingerprint %+v: no capacity", fp)
	}
	if !strings.Contains(fp.Detail, "libvirt qemu") {
		t.Errorf("fingerprint detail %q does not name the QEMU driver", fp.Detail)
	}
	if reason := localKVMProblem(); reason != "" {
		if d.Config().DomainType != DomainTypeQEMU || !strings.Contains(fp.Detail, "no KVM") || !strings.Contains(fp.Detail, reason) {
			t.Errorf("KVM is unusable here (%s) but domain type is %q and the detail says %q", reason, d.Config().DomainType, fp.Detail)
		}
	}

	// A raw disk attached read-only and a qcow2 one read-write, and a NIC on
	// a bridge made for the test.
	raw := filepath.Join(dir, "boot-raw.img")
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	qcow := filepath.Join(dir, "boot.qcow2")
	makeQCOW2(t, qcow)
	bridge := makeBridge(t)

	task := vmTask("guest", 1, 1, 128*api.MiB)
	task.Spec.VM = &api.VMSpec{
		Disks: []api.DiskSpec{
			{Path: raw, Format: "raw", ReadOnly: true},
			{Path: qcow, Format: "qcow2"},
		},
		Kernel:   guest.Kernel,
		Initrd:   guest.Initrd,
		Cmdline:  guest.Cmdline,
		Networks: []api.NetworkSpec{{Bridge: bridge, MAC: "52:54:00:b0:00:01"}},
	}
	logPath, err := d.ConsoleLog("guest")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(logDir, "bulwark-"+host+"-guest.log"); logPath != want {
		t.Errorf("ConsoleLog = %s, want %s", logPath, want)
	}
	t.Cleanup(func() {
		if err := d.Destroy(context.Background(), "guest"); err != nil {
			t.Errorf("cleanup Destroy: %v", err)
		}
	})

	begin := time.Now()
	if err := d.Start(startCtx(t), task); err != nil {
		t.Fatalf("Start: %v", err)
	}
	started := time.Now()
	waitConsole(t, d, logPath, libvirttest.MarkerUp, 1)
	t.Logf("timing: Start %s, then console marker after %s (boot to marker %s in all)",
		started.Sub(begin).Round(time.Millisecond), time.Since(started).Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	console := waitConsole(t, d, logPath, libvirttest.MarkerNICs, 1)
	t.Logf("guest: %s", strings.Join(markerLines(console, "BULWARK-GUEST-"), " | "))
	disks := markerLine(console, libvirttest.MarkerDisks)
	if !strings.Contains(disks, "vda") || !strings.Contains(disks, "vdb") {
		t.Errorf("guest sees disks %q, want vda and vdb", disks)
	}
	if nics := markerLine(console, libvirttest.MarkerNICs); !strings.Contains(nics, "eth0") {
		t.Errorf("guest sees NICs %q, want eth0", nics)
	}

	if st := mustInspect(t, d, "guest"); st.State != drivers.TaskRunning || st.Epoch != 1 || st.ID == "" {
		t.Errorf("Inspect after boot: %+v", st)
	}
	if got := listed(t, d); len(got) != 1 || got[0] != "guest@1:running" {
		t.Errorf("List = %v", got)
	}
	// Another simulated host on the same libvirtd sees none of it.
	other := newDriver(t, Config{URI: daemon.URI(), Host: randomName("lvt"), DomainType: DomainTypeQEMU})
	if got := listed(t, other); len(got) != 0 {
		t.Errorf("another host lists %v", got)
	}
	if _, err := other.Inspect(testCtx(t), "guest"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("another host's Inspect: %v, want ErrNotFound", err)
	}
	// Starting the same epoch again is a no-op.
	if err := d.Start(testCtx(t), task); err != nil {
		t.Errorf("second Start of a running task: %v", err)
	}

	// Stop presses the power button; the guest's acpid powers it off.
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	begin = time.Now()
	err = d.Stop(ctx, "guest")
	cancel()
	if err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopTook := time.Since(begin)
	st := mustInspect(t, d, "guest")
	if st.State != drivers.TaskStopped {
		t.Errorf("Inspect after Stop: %+v", st)
	}
	graceful := strings.Contains(readFile(t, logPath), libvirttest.MarkerPoweroff)
	t.Logf("timing: Stop %s (guest powered itself off: %v, detail %q)", stopTook.Round(time.Millisecond), graceful, st.Detail)
	if !graceful || st.Detail != "shut down" {
		t.Errorf("Stop did not shut the guest down gracefully: console has the power-off marker: %v, detail %q; console:\n%s", graceful, st.Detail, readFile(t, logPath))
	}

	// A new epoch replaces the stopped domain; its console log is appended to.
	task.Epoch = 2
	begin = time.Now()
	if err := d.Start(startCtx(t), task); err != nil {
		t.Fatalf("Start epoch 2: %v", err)
	}
	waitConsole(t, d, logPath, libvirttest.MarkerUp, 2)
	t.Logf("timing: reboot as epoch 2 to marker %s", time.Since(begin).Round(time.Millisecond))
	if st := mustInspect(t, d, "guest"); st.State != drivers.TaskRunning || st.Epoch != 2 {
		t.Errorf("Inspect epoch 2: %+v", st)
	}

	// Destroy a running guest: it is powered off, undefined, its log removed.
	begin = time.Now()
	if err := d.Destroy(testCtx(t), "guest"); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	t.Logf("timing: Destroy of a running guest %s", time.Since(begin).Round(time.Millisecond))
	if _, err := d.Inspect(testCtx(t), "guest"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("Inspect after Destroy: %v, want ErrNotFound", err)
	}
	assertUndefined(t, daemon.URI(), domainName(host, "guest"))
	if _, err := os.Stat(logPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("console log after Destroy: %v, want it removed", err)
	}
	if err := d.Destroy(testCtx(t), "guest"); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}

func testBadInput(t *testing.T, daemon *libvirttest.Daemon, dir string, guest libvirttest.Guest) {
	host := randomName("lvt")
	d := newDriver(t, Config{URI: daemon.URI(), Host: host, ConsoleLogDir: filepath.Join(dir, "console-bad")})
	disk := filepath.Join(dir, "bad-ok.img")
	if err := os.WriteFile(disk, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "bad-garbage.qcow2")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a qcow2 image\n", 4096)), 0o644); err != nil {
		t.Fatal(err)
	}
	bridge := makeBridge(t)
	good := func() *api.VMSpec {
		return &api.VMSpec{
			Disks:    []api.DiskSpec{{Path: disk}},
			Kernel:   guest.Kernel,
			Initrd:   guest.Initrd,
			Cmdline:  guest.Cmdline,
			Networks: []api.NetworkSpec{{Bridge: bridge}},
		}
	}
	cases := []struct {
		name      string
		edit      func(*api.VMSpec)
		want      []string
		preflight bool // refused before libvirt was asked
	}{
		{"missing disk", func(v *api.VMSpec) { v.Disks[0].Path = filepath.Join(dir, "nope.qcow2"); v.Disks[0].Format = "qcow2" },
			[]string{"disk " + filepath.Join(dir, "nope.qcow2") + ": no such file"}, true},
		{"disk is a directory", func(v *api.VMSpec) { v.Disks[0].Path = dir },
			[]string{"disk " + dir + ": is a directory"}, true},
		{"missing kernel", func(v *api.VMSpec) { v.Kernel = "/boot/vmlinuz-0.0.0-none" },
			[]string{"kernel /boot/vmlinuz-0.0.0-none: no such file"}, true},
		{"missing initrd", func(v *api.VMSpec) { v.Initrd = filepath.Join(dir, "none.cpio") },
			[]string{"initrd " + filepath.Join(dir, "none.cpio") + ": no such file"}, true},
		{"unknown bridge", func(v *api.VMSpec) { v.Networks[0].Bridge = "bwt-nosuch0" },
			[]string{"bridge bwt-nosuch0: no such interface"}, true},
		{"not a bridge", func(v *api.VMSpec) { v.Networks[0].Bridge = "lo" },
			[]string{"bridge lo: the interface is not a bridge"}, true},
		{"every problem at once", func(v *api.VMSpec) {
			v.Disks[0].Path = "/nonexistent/a.img"
			v.Kernel = "/nonexistent/k"
			v.Networks[0].Bridge = "bwt-nosuch1"
		}, []string{"disk /nonexistent/a.img: no such file", "kernel /nonexistent/k: no such file", "bridge bwt-nosuch1: no such interface"}, true},
		// Only QEMU can tell: libvirt defines the domain, QEMU refuses to
		// start, and Start undefines it again.
		{"qcow2 that is not one", func(v *api.VMSpec) { v.Disks[0] = api.DiskSpec{Path: garbage, Format: "qcow2"} },
			[]string{"start bulwark-" + host + "-bad-h: boot: ", "Image is not in qcow2 format"}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			workload := "bad-" + string(rune('a'+i))
			task := vmTask(workload, 1, 1, 128*api.MiB)
			task.Spec.VM = good()
			c.edit(task.Spec.VM)
			err := d.Start(startCtx(t), task)
			if err == nil {
				_ = d.Destroy(context.Background(), workload)
				t.Fatal("Start accepted it")
			}
			t.Logf("Start: %v", err)
			if c.preflight != errors.Is(err, ErrPreflight) {
				t.Errorf("errors.Is(err, ErrPreflight) = %v, want %v", !c.preflight, c.preflight)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if _, err := d.Inspect(testCtx(t), workload); !errors.Is(err, drivers.ErrNotFound) {
				t.Errorf("Inspect after a failed Start: %v, want ErrNotFound", err)
			}
			assertUndefined(t, daemon.URI(), domainName(host, workload))
		})
	}
	if got := listed(t, d); len(got) != 0 {
		t.Errorf("List after failed starts: %v", got)
	}
}

// startCtx bounds a Start that launches QEMU.
func startCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitConsole waits until the console log holds marker at least n times and
// returns the log. It fails the test after bootTimeout, or at once if the
// guest stopped.
func waitConsole(t *testing.T, d *Driver, path, marker string, n int) string {
	t.Helper()
	deadline := time.Now().Add(bootTimeout)
	for {
		b, _ := os.ReadFile(path)
		if strings.Count(string(b), marker) >= n {
			return string(b)
		}
		st, err := d.Inspect(testCtx(t), "guest")
		if err != nil || st.State != drivers.TaskRunning || time.Now().After(deadline) {
			t.Fatalf("no %q (x%d) on the console (task %+v, %v); console log:\n%s", marker, n, st, err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// markerLine returns the text after the last line starting with marker.
func markerLine(console, marker string) string {
	out := ""
	for _, line := range strings.Split(console, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), marker) {
			out = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), marker))
		}
	}
	return out
}

// markerLines returns the console lines that contain prefix.
func markerLines(console, prefix string) []string {
	var out []string
	for _, line := range strings.Split(console, "\n") {
		if strings.Contains(line, prefix) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertUndefined checks with a connection of its own that libvirtd has no
// domain of that name.
func assertUndefined(t *testing.T, uri, name string) {
	t.Helper()
	conn, err := golibvirt.NewConnect(uri)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close()
	dom, err := conn.LookupDomainByName(name)
	if err == nil {
		dom.Free()
		t.Errorf("domain %s is still defined", name)
	} else if !errors.Is(err, golibvirt.ERR_NO_DOMAIN) {
		t.Errorf("look up %s: %v", name, err)
	}
}

// sweepTestDomains removes guests that an earlier, killed run of these
// tests left on the machine's one libvirtd.
func sweepTestDomains(t *testing.T, uri string) {
	conn, err := golibvirt.NewConnect(uri)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close()
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		t.Fatalf("list domains: %v", err)
	}
	for i := range doms {
		if name, err := doms[i].GetName(); err == nil && strings.HasPrefix(name, namePrefix+"lvt-") {
			t.Logf("removing leftover test domain %s", name)
			if err := removeDomain(&doms[i]); err != nil {
				t.Logf("remove %s: %v", name, err)
			}
		}
		doms[i].Free()
	}
}

// sweepTestBridges removes bridges that an earlier, killed run of these
// tests left behind. Only makeBridge names bridges bwt-*, and the daemon's
// lock keeps other runs of these tests out meanwhile.
func sweepTestBridges(t *testing.T) {
	names, _ := filepath.Glob(filepath.Join(sysClassNet, "bwt-*", "bridge"))
	for _, p := range names {
		name := filepath.Base(filepath.Dir(p))
		t.Logf("removing leftover test bridge %s", name)
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip link del %s: %v: %s", name, err, out)
		}
	}
}

// sharedTempDir is a t.TempDir that libvirt-qemu, which QEMU runs as, can
// enter (t.TempDir's directories are 0700).
func sharedTempDir(t *testing.T) string {
	dir := t.TempDir()
	for _, p := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func makeQCOW2(t *testing.T, path string) {
	t.Helper()
	if _, err := exec.LookPath("qemu-img"); err != nil {
		libvirttest.Unavailable(t, "qemu-img (qemu-utils) is not installed")
	}
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", path, "16M").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v: %s", err, out)
	}
}

// makeBridge creates an isolated Linux bridge (no ports but the guests',
// no addresses, IPv6 off so that it sends nothing) and removes it at the
// end of the test.
func makeBridge(t *testing.T) string {
	t.Helper()
	name := randomName("bwt")
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		libvirttest.Unavailable(t, "ip (iproute2) is not installed")
	}
	ip("link", "add", name, "type", "bridge")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip link del %s: %v: %s", name, err, out)
		}
	})
	_ = os.WriteFile("/proc/sys/net/ipv6/conf/"+name+"/disable_ipv6", []byte("1"), 0o644)
	ip("link", "set", name, "up")
	return name
}

// randomName returns prefix-xxxxxx, at most 10 characters (a bridge name
// must stay within 15).
func randomName(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}
