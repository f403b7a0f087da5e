package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	lvdaemon "github.com/bulwarkhq/bulwark/drivers/libvirt/daemon"
)

// Bounds (never expectations) for the real-QEMU dev cluster: the first
// libvirtd start on a machine probes QEMU (~10 s), and waits for the
// machine-wide lock while another test binary (drivers/libvirt) holds it;
// a guest boots in ~4-10 s under TCG.
const (
	qemuDevUp      = 6 * time.Minute
	qemuBoot       = 90 * time.Second
	qemuFailover   = 60 * time.Second
	qemuDevStop    = 60 * time.Second
	requireRealEnv = "BULWARK_REQUIRE_REAL"
)

// TestDevClusterQEMU: `bulwarkd dev --driver qemu` with two hosts; a VM
// booting the dev cluster's guest kernel and initramfs under real QEMU
// prints its boot marker in `workload logs`; a crashed agent's host is
// fenced (its BMC power-off destroys its guests) and the VM boots again on
// the other host with a new epoch; Ctrl-C leaves no agent, libvirtd,
// virtlogd or QEMU behind.
func TestDevClusterQEMU(t *testing.T) {
	why := lvdaemon.Missing()
	if why == "" {
		why = lvdaemon.GuestMissing()
	}
	if why != "" {
		if os.Getenv(requireRealEnv) == "1" {
			t.Fatalf("%s=1 but the QEMU dev cluster cannot run here: %s (run scripts/deps-real.sh as root)", requireRealEnv, why)
		}
		t.Skipf("SKIP: needs root, libvirtd, QEMU and a guest kernel: %s (run scripts/deps-real.sh as root; set %s=1 to make this a failure)", why, requireRealEnv)
	}

	// QEMU runs as libvirt-qemu and must reach the guest kernel in the
	// data dir: t.TempDir()'s parent is private, /tmp is not.
	dataDir, err := os.MkdirTemp("", "bulwark-e2e-qemu-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dataDir) })
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apiURL := "http://" + apiAddr
	begin := time.Now()
	dev := startProc(t, "bulwarkd", "dev", "--driver", "qemu", "--hosts", "2", "--data-dir", dataDir,
		"--api-addr", apiAddr, "--etcd-port", strconv.Itoa(freePort(t)))
	// Runs before startProc's SIGKILL: a dev cluster stopped by SIGKILL
	// would leave its guests running.
	t.Cleanup(func() {
		if !dev.exited() {
			_ = dev.cmd.Process.Signal(os.Interrupt)
			select {
			case <-dev.done:
			case <-time.After(qemuDevStop):
			}
		}
	})
	waitLine(t, dev, "Bulwark dev cluster is up", qemuDevUp)
	t.Logf("dev cluster up after %s", time.Since(begin).Round(time.Millisecond))
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("dev cluster admin token: %v", err)
	}
	registerToken(apiURL, string(tok))

	kernel := filepath.Join(dataDir, "guest", "vmlinuz")
	initrd := filepath.Join(dataDir, "guest", "initramfs.cpio")
	cmdline := "console=ttyS0"
	for _, want := range []string{"driver qemu", "--kernel " + kernel, "--initrd " + initrd, `--cmdline "console=ttyS0"`, "workload logs web1"} {
		if !strings.Contains(dev.out.String(), want) {
			t.Errorf("the tour lacks %q:\n%s", want, dev.out.String())
		}
	}

	if _, errOut, code := ctl(t, apiURL, "vm", "create", "web1", "--cpus", "1", "--memory", "128MiB",
		"--kernel", kernel, "--initrd", initrd, "--cmdline", cmdline); code != 0 {
		t.Fatalf("vm create: exit %d: %s", code, errOut)
	}
	var w api.WorkloadView
	created := time.Now()
	eventually(t, "web1 running", qemuBoot, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "web1")
		return w.State == api.StateRunning
	})
	first := w
	t.Logf("web1 running on %s (epoch %d) after %s", first.Host, first.Epoch, time.Since(created).Round(time.Millisecond))
	booted := waitConsoleMarker(t, apiURL, "web1", qemuBoot)
	t.Logf("web1 booted (console says %s) %s after create", lvdaemon.MarkerUp, time.Since(created).Round(time.Millisecond))
	if !strings.Contains(booted, "Linux version") {
		t.Errorf("console log has no kernel banner:\n%s", booted)
	}
	if pids := qemuOf(first.Host, "web1"); len(pids) != 1 {
		t.Fatalf("QEMU processes for web1 on %s: %v", first.Host, pids)
	}

	// A crashed agent: its guest keeps running until the host is fenced;
	// the BMC's power-off destroys it, and web1 starts on the other host.
	crashed := time.Now()
	if out, errOut, code := ctl(t, apiURL, "dev", "fault", first.Host, "crash"); code != 0 {
		t.Fatalf("dev fault: %d %s %s", code, out, errOut)
	}
	eventually(t, "web1 running on another host with a new epoch", qemuFailover, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "web1")
		return w.State == api.StateRunning && w.Host != "" && w.Host != first.Host && w.Epoch > first.Epoch
	})
	t.Logf("web1 running on %s (epoch %d) %s after the crash of %s", w.Host, w.Epoch, time.Since(crashed).Round(time.Millisecond), first.Host)
	if pids := qemuOf(first.Host, "web1"); len(pids) != 0 {
		t.Errorf("web1's QEMU on the fenced %s still runs: %v", first.Host, pids)
	}
	if pids := qemuOf(w.Host, "web1"); len(pids) != 1 {
		t.Errorf("QEMU processes for web1 on %s: %v", w.Host, pids)
	}
	waitConsoleMarker(t, apiURL, "web1", qemuBoot)
	t.Logf("web1 booted again on %s %s after the crash", w.Host, time.Since(crashed).Round(time.Millisecond))

	// Ctrl-C: no agent, libvirtd, virtlogd or QEMU is left.
	left := append(pidsWith(dataDir), pidsWith("bulwark-libvirtd-")...)
	left = append(left, pidsWith("guest=bulwark-host-")...)
	if len(left) < 4 { // two agents, libvirtd, one QEMU (virtlogd may be the system's)
		t.Fatalf("expected agents, libvirtd and QEMU, found %v", left)
	}
	stopping := time.Now()
	if err := dev.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dev.done:
	case <-time.After(qemuDevStop):
		t.Fatalf("bulwarkd dev did not stop within %s of SIGINT", qemuDevStop)
	}
	t.Logf("dev cluster stopped %s after SIGINT", time.Since(stopping).Round(time.Millisecond))
	for _, pid := range left {
		if pid != dev.cmd.Process.Pid && alive(pid) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("process %d (%s) is still running after dev stopped", pid, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if !strings.Contains(dev.out.String(), "nothing left running") {
		t.Errorf("dev did not report a clean stop:\n%s", dev.out.String())
	}
	if defs, _ := filepath.Glob("/etc/libvirt/qemu/bulwark-host-*.xml"); len(defs) > 0 {
		t.Errorf("domain definitions left behind: %v", defs)
	}
}

// waitConsoleMarker waits until `workload logs` shows the guest's boot
// marker and returns the log.
func waitConsoleMarker(t *testing.T, apiURL, name string, timeout time.Duration) string {
	t.Helper()
	var out string
	eventually(t, name+"'s console showing "+lvdaemon.MarkerUp, timeout, func() bool {
		var code int
		out, _, code = ctl(t, apiURL, "workload", "logs", name)
		if code != 0 || !strings.Contains(out, lvdaemon.MarkerUp) {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		return true
	})
	return out
}

// qemuOf lists the live QEMU processes of a host's domain for a workload.
func qemuOf(host, workload string) []int {
	var out []int
	for _, pid := range pidsWith("guest=bulwark-" + host + "-" + workload + ",") {
		if alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

// TestBenchFailoverQEMU: the failover benchmark with real QEMU guests runs
// a round, and no guest ever runs on two hosts.
func TestBenchFailoverQEMU(t *testing.T) {
	why := lvdaemon.Missing()
	if why == "" {
		why = lvdaemon.GuestMissing()
	}
	if why != "" {
		if os.Getenv(requireRealEnv) == "1" {
			t.Fatalf("%s=1 but QEMU cannot run here: %s", requireRealEnv, why)
		}
		t.Skipf("SKIP: needs root, libvirtd, QEMU and a guest kernel: %s (set %s=1 to make this a failure)", why, requireRealEnv)
	}
	out, err := exec.Command(filepath.Join(binDir, "bulwarkd"), "bench", "failover", "--driver", "qemu", "--rounds", "1", "--workloads", "1").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("bench failover --driver qemu: %v", err)
	}
	if !strings.Contains(string(out), "double_runs=0 lost=0") {
		t.Fatal("bench failover --driver qemu did not report double_runs=0 lost=0")
	}
}
