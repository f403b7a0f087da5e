package libvirt

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	golibvirt "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

func TestCPUHasVirtFlag(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]bool{
		"processor\t: 0\nflags\t\t: fpu vme vmx sse\n":         true,
		"processor\t: 0\nflags\t\t: fpu svm\nflags\t\t: fpu\n": true,
		"processor\t: 0\nflags\t\t: fpu hypervisor vmmcall\n":  false,
		"vmx: no flags line names it\n":                        false,
		"":                                                     false,
	}
	i := 0
	for content, want := range cases {
		i++
		path := filepath.Join(dir, "cpuinfo")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := cpuHasVirtFlag(path)
		if err != nil || got != want {
			t.Errorf("case %d %q: got %v, %v; want %v", i, content, got, err, want)
		}
	}
	if _, err := cpuHasVirtFlag(filepath.Join(dir, "none")); err == nil {
		t.Error("a missing cpuinfo gave no error")
	}
}

func TestCapsOfferKVM(t *testing.T) {
	guest := func(arch string, types ...string) libvirtxml.CapsGuest {
		g := libvirtxml.CapsGuest{OSType: "hvm", Arch: libvirtxml.CapsGuestArch{Name: arch}}
		for _, typ := range types {
			g.Arch.Domains = append(g.Arch.Domains, libvirtxml.CapsGuestDomain{Type: typ})
		}
		return g
	}
	host := libvirtxml.CapsHost{CPU: &libvirtxml.CapsHostCPU{Arch: "x86_64"}}
	cases := []struct {
		name string
		caps libvirtxml.Caps
		want bool
	}{
		{"kvm for the host arch", libvirtxml.Caps{Host: host, Guests: []libvirtxml.CapsGuest{guest("i686", "qemu"), guest("x86_64", "qemu", "kvm")}}, true},
		{"tcg only", libvirtxml.Caps{Host: host, Guests: []libvirtxml.CapsGuest{guest("x86_64", "qemu")}}, false},
		{"kvm for another arch only", libvirtxml.Caps{Host: host, Guests: []libvirtxml.CapsGuest{guest("aarch64", "kvm"), guest("x86_64", "qemu")}}, false},
		{"no guests", libvirtxml.Caps{Host: host}, false},
	}
	for _, c := range cases {
		if got := capsOfferKVM(&c.caps); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestIsLocalURI(t *testing.T) {
	cases := map[string]bool{
		"qemu:///system": true,
		"qemu:///system?socket=/tmp/x/libvirt-sock":        true,
		"qemu+unix:///system":                              true,
		"test:///default":                                  true,
		"test:///tmp/h.xml":                                true,
		"qemu+ssh://root@host-2/system":                    false,
		"qemu+tcp://10.0.0.2/system":                       false,
		"qemu+tls://host-3.example.com/system?no_verify=1": false,
	}
	for uri, want := range cases {
		got, err := isLocalURI(uri)
		if err != nil || got != want {
			t.Errorf("%s: %v, %v; want %v", uri, got, err, want)
		}
	}
	if _, err := isLocalURI("qemu://%zz/"); err == nil {
		t.Error("a malformed URI was accepted")
	}
}

func TestCheckImage(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path  string
		write bool
		want  string
	}{
		{file, true, ""},
		{file, false, ""},
		{filepath.Join(dir, "none.img"), false, "no such file"},
		{filepath.Join(dir, "none", "x.img"), false, "no such file"},
		{dir, false, "is a directory"},
		{"/dev/null", false, "is a character device, not a block device"},
		{"/dev/bulwark-no-such-lv", false, "no such file"},
	}
	for _, c := range cases {
		if got := checkImage(c.path, c.write); got != c.want {
			t.Errorf("checkImage(%s, %v) = %q, want %q", c.path, c.write, got, c.want)
		}
	}
	// A FIFO is no disk image (and opening it would block).
	fifo := filepath.Join(dir, "fifo")
	if err := mkfifo(fifo); err == nil {
		if got := checkImage(fifo, false); got != "is not a regular file" {
			t.Errorf("checkImage(fifo) = %q", got)
		}
	}
	if os.Geteuid() != 0 {
		locked := filepath.Join(dir, "locked.img")
		if err := os.WriteFile(locked, []byte("x"), 0o200); err != nil {
			t.Fatal(err)
		}
		if got := checkImage(locked, false); !strings.Contains(got, "not readable (permission denied)") {
			t.Errorf("checkImage(write-only file) = %q", got)
		}
		ro := filepath.Join(dir, "ro.img")
		if err := os.WriteFile(ro, []byte("x"), 0o400); err != nil {
			t.Fatal(err)
		}
		if got := checkImage(ro, true); !strings.Contains(got, "not writable") {
			t.Errorf("checkImage(read-only file, write) = %q", got)
		}
	}
}

// fakeSysClassNet points the bridge check at a directory the test fills.
func fakeSysClassNet(t *testing.T) string {
	dir := t.TempDir()
	old := sysClassNet
	sysClassNet = dir
	t.Cleanup(func() { sysClassNet = old })
	for _, p := range []string{"br0/bridge", "br-ex/bridge", "eth0"} {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckBridge(t *testing.T) {
	fakeSysClassNet(t)
	cases := map[string]string{
		"br0":   "",
		"br-ex": "",
		"eth0":  "the interface is not a bridge",
		"br9":   "no such interface",
		"../br": "not a valid interface name",
		"":      "bridge name is empty",
	}
	for name, want := range cases {
		got := checkBridge(name)
		if want == "" && got != "" || !strings.Contains(got, want) {
			t.Errorf("checkBridge(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestConsoleLogPath(t *testing.T) {
	d := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1", ConsoleLogDir: "/var/log/bulwark/console"})
	p, err := d.ConsoleLog("web")
	if err != nil || p != "/var/log/bulwark/console/bulwark-h1-web.log" {
		t.Errorf("ConsoleLog = %q, %v", p, err)
	}
	if _, err := d.ConsoleLog("../etc"); err == nil {
		t.Error("ConsoleLog accepted a bad workload name")
	}
	plain := newDriver(t, Config{URI: testHost(t, 2, 4*api.GiB), Host: "h1"})
	if _, err := plain.ConsoleLog("web"); !errors.Is(err, ErrNoConsoleLog) {
		t.Errorf("ConsoleLog without a log dir: %v, want ErrNoConsoleLog", err)
	}
}

// The test driver (a local URI) gets the same pre-flight checks as QEMU.
func TestStartPreflight(t *testing.T) {
	fakeSysClassNet(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "root.img")
	kernel := filepath.Join(dir, "vmlinuz")
	for _, f := range []string{disk, kernel} {
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logDir := filepath.Join(dir, "logs", "console")
	d := newDriver(t, Config{URI: testHost(t, 4, 8*api.GiB), Host: "h1", ConsoleLogDir: logDir})
	good := func() *api.VMSpec {
		return &api.VMSpec{
			Disks:    []api.DiskSpec{{Path: disk}},
			Kernel:   kernel,
			Networks: []api.NetworkSpec{{Bridge: "br0"}, {Bridge: "br0"}},
		}
	}

	bad := vmTaskWith("web", 1, 1, 128*api.MiB, good())
	bad.Spec.VM.Disks = append(bad.Spec.VM.Disks, api.DiskSpec{Path: filepath.Join(dir, "gone.qcow2"), Format: "qcow2"})
	bad.Spec.VM.Initrd = filepath.Join(dir, "initrd")
	bad.Spec.VM.Networks = append(bad.Spec.VM.Networks, api.NetworkSpec{Bridge: "eth0"}, api.NetworkSpec{Bridge: "br7"})
	err := d.Start(testCtx(t), bad)
	var pe *PreflightError
	if !errors.Is(err, ErrPreflight) || !errors.As(err, &pe) {
		t.Fatalf("Start = %v, want a PreflightError", err)
	}
	want := []string{
		"disk " + filepath.Join(dir, "gone.qcow2") + ": no such file",
		"initrd " + filepath.Join(dir, "initrd") + ": no such file",
		"bridge eth0: the interface is not a bridge",
		"bridge br7: no such interface",
	}
	if strings.Join(pe.Problems, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(pe.Problems, "\n"), strings.Join(want, "\n"))
	}
	if !strings.HasPrefix(err.Error(), "start bulwark-h1-web: disk ") {
		t.Errorf("error %q does not start with the domain and the first problem", err)
	}
	if got := listed(t, d); len(got) != 0 {
		t.Errorf("a failed pre-flight left %v", got)
	}

	if err := d.Start(testCtx(t), vmTaskWith("web", 1, 1, 128*api.MiB, good())); err != nil {
		t.Fatalf("Start with everything present: %v", err)
	}
	if fi, err := os.Stat(logDir); err != nil || !fi.IsDir() {
		t.Errorf("console log dir not created: %v", err)
	}
	if st := mustInspect(t, d, "web"); st.State != drivers.TaskRunning {
		t.Errorf("Inspect: %+v", st)
	}

	// Destroy removes the console log and its rotated copies.
	logPath, err := d.ConsoleLog("web")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{logPath, logPath + ".0", logPath + ".2"} {
		if err := os.WriteFile(p, []byte("boot\n"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	other := filepath.Join(logDir, "bulwark-h1-webx.log")
	if err := os.WriteFile(other, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := d.Destroy(testCtx(t), "web"); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	for _, p := range []string{logPath, logPath + ".0", logPath + ".2"} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Destroy: %v", p, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Destroy removed another workload's log: %v", err)
	}
}

// A defined but stopped task of the same epoch is checked again before it
// is booted, and one that is running is not.
func TestStartSameEpochPreflight(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "root.img")
	if err := os.WriteFile(disk, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDriver(t, Config{URI: testHost(t, 4, 8*api.GiB), Host: "h1"})
	task := vmTaskWith("web", 1, 1, 128*api.MiB, &api.VMSpec{Disks: []api.DiskSpec{{Path: disk}}})
	if err := d.Start(testCtx(t), task); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(disk); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(testCtx(t), task); err != nil {
		t.Errorf("Start of a running task checked its files again: %v", err)
	}
	if err := d.Stop(testCtx(t), "web"); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(testCtx(t), task); !errors.Is(err, ErrPreflight) || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Start of a stopped task whose disk is gone: %v, want ErrPreflight", err)
	}
	if st := mustInspect(t, d, "web"); st.State != drivers.TaskStopped {
		t.Errorf("Inspect: %+v, want it still defined and stopped", st)
	}
}

func TestRemoveConsoleLogsWithoutDir(t *testing.T) {
	if err := removeConsoleLogs(""); err != nil {
		t.Errorf("removeConsoleLogs(\"\") = %v", err)
	}
	if err := removeConsoleLogs(filepath.Join(t.TempDir(), "none.log")); err != nil {
		t.Errorf("removeConsoleLogs(missing) = %v", err)
	}
}

func mkfifo(path string) error { return syscall.Mkfifo(path, 0o644) }

func TestReadableError(t *testing.T) {
	err := readableError(golibvirt.Error{Code: golibvirt.ERR_INTERNAL_ERROR, Domain: golibvirt.FROM_QEMU, Message: "internal error: qemu said no"})
	if err.Error() != "internal error: qemu said no" {
		t.Errorf("Error() = %q", err)
	}
	if !errors.Is(fmt.Errorf("start x: boot: %w", err), golibvirt.ERR_INTERNAL_ERROR) {
		t.Error("the libvirt error code no longer matches")
	}
	plain := errors.New("plain")
	if readableError(plain) != plain {
		t.Error("a non-libvirt error was changed")
	}
}
