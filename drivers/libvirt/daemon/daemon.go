// Package daemon runs a private libvirtd (with its virtlogd) for real QEMU
// guests, outside the testing package: tests use it through libvirttest,
// and so does `bulwarkd dev --driver qemu`. It also writes a bootable test
// guest (see WriteGuest). scripts/deps-real.sh installs what is needed.
//
// How the daemon is set up, and why:
//
//   - libvirtd in privileged mode (as root) keeps its state in fixed places:
//     /run/libvirt, /var/lib/libvirt, /var/cache/libvirt (where the QEMU
//     capabilities cache makes every start after the first fast) and
//     /etc/libvirt/qemu for persistent domain definitions. Only its sockets
//     and its logs can be moved, so only one libvirtd can run per machine.
//     Start therefore holds an exclusive flock on LockPath for as long as the
//     daemon runs, which serialises its users (go test runs packages in
//     parallel; a dev cluster may be running too).
//   - virtlogd listens on the fixed /run/libvirt/virtlogd-sock, where
//     libvirtd looks for it. One that this harness did not start (a system
//     virtlogd) is used as it is.
//   - libvirtd refuses to start a QEMU guest unless the user and group it
//     runs QEMU as exist: Debian builds it for libvirt-qemu:libvirt-qemu,
//     which the libvirt-daemon-system package would create. Start creates
//     them (useradd/groupadd --system) when missing rather than writing
//     user = "root" into /etc/libvirt/qemu.conf: libvirtd reads qemu.conf
//     only from /etc/libvirt, so that file cannot be private to the test,
//     and QEMU as root would also hide permission problems production has.
//     The consequence for tests: files a guest uses (disks, kernel, initrd)
//     must be in directories libvirt-qemu can traverse. libvirt chowns the
//     files themselves to libvirt-qemu while the guest runs and restores
//     them afterwards.
//   - libvirt-qemu is also put in the group of /dev/kvm (see
//     ensureKVMAccess), or libvirtd re-probes QEMU on every call.
//   - Daemons are children of the calling process with a parent-death
//     signal, stopped with SIGTERM then SIGKILL. Their pids are also
//     recorded next to the lock file, so that daemons orphaned by a process
//     that was killed outright are stopped by the next Start.
//   - Stop does not touch guests: QEMU processes outlive libvirtd by
//     design, so callers destroy their domains first.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/bulwarkhq/bulwark/drivers/daemonproc"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	golibvirt "libvirt.org/go/libvirt"
)

// LockPath is the file whose flock the running daemon holds.
const LockPath = "/tmp/bulwark-libvirtd.lock"

// pidsPath records the pids of the daemons this harness started.
const pidsPath = "/tmp/bulwark-libvirtd.pids"

// Timeouts. The first libvirtd start on a machine probes QEMU's
// capabilities (~8-13 s here); later starts read the cache.
const (
	lockWait     = 5 * time.Minute
	readyTimeout = 90 * time.Second
	stopGrace    = 10 * time.Second
)

// systemVirtlogdSock is where libvirtd (as root) finds virtlogd.
const systemVirtlogdSock = "/run/libvirt/virtlogd-sock"

// Daemon is a running private libvirtd.
type Daemon struct {
	dir string
	uri string

	lock     *os.File
	libvirtd *exec.Cmd
	virtlogd *exec.Cmd // nil when a virtlogd was already running
	exited   chan struct{}

	// StartTime is how long starting the daemons took, for reports.
	StartTime time.Duration
}

// URI is the connection URI of the daemon: qemu:///system through its
// private socket.
func (d *Daemon) URI() string { return d.uri }

// Dir is the directory holding the daemon's sockets, configuration and logs.
func (d *Daemon) Dir() string { return d.dir }

// LogPath is libvirtd's own log file (warnings and errors).
func (d *Daemon) LogPath() string { return filepath.Join(d.dir, "libvirtd.log") }

// Missing says what this machine lacks to run the daemon, or "".
func Missing() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	for _, bin := range []string{"libvirtd", "virtlogd", "qemu-system-x86_64"} {
		if _, err := LookPath(bin); err != nil {
			return err.Error()
		}
	}
	drv, _ := filepath.Glob("/usr/lib/*/libvirt/connection-driver/libvirt_driver_qemu.so")
	drv2, _ := filepath.Glob("/usr/lib*/libvirt/connection-driver/libvirt_driver_qemu.so")
	if len(drv)+len(drv2) == 0 {
		return "libvirt's QEMU driver (libvirt_driver_qemu.so) is not installed"
	}
	return ""
}

// UnavailableError: the machine cannot run the daemon (for tests, a
// reason to skip rather than fail).
type UnavailableError string

func (e UnavailableError) Error() string { return string(e) }

// Unavailable marks the error as "this machine cannot run it" for test harnesses.
func (e UnavailableError) Unavailable() bool { return true }

// Start starts a private virtlogd (unless a system one runs) and libvirtd,
// waiting up to 5 minutes for the machine-wide lock, and returns once
// libvirtd answers at URI(). An error wrapping UnavailableError means the
// machine cannot run one (see also Missing).
func Start() (d *Daemon, err error) {
	if reason := Missing(); reason != "" {
		return nil, UnavailableError(reason)
	}
	begin := time.Now()
	lock, err := daemonproc.Lock(LockPath, lockWait)
	if err != nil {
		return nil, err
	}
	d = &Daemon{lock: lock, exited: make(chan struct{})}
	defer func() {
		if err != nil {
			if serr := d.Stop(); serr != nil {
				err = fmt.Errorf("%w (and stopping: %v)", err, serr)
			}
		}
	}()
	// Daemons left by a test binary that died are ours to stop; any other
	// libvirtd would share our state directories.
	killRecorded()
	if pid := findProcess("libvirtd"); pid != 0 {
		return d, UnavailableError(fmt.Sprintf("a libvirtd this harness did not start is running (pid %d); only one can run per machine", pid))
	}
	if err := ensureQEMUUser(); err != nil {
		return d, err
	}
	if err := ensureKVMAccess(); err != nil {
		return d, err
	}

	d.dir, err = os.MkdirTemp("", "bulwark-libvirtd-")
	if err != nil {
		return d, err
	}
	d.uri = "qemu:///system?socket=" + filepath.Join(d.dir, "libvirt-sock")

	if err := d.startVirtlogd(); err != nil {
		return d, err
	}
	if err := d.startLibvirtd(); err != nil {
		return d, err
	}
	d.recordPids()
	if err := d.waitReady(readyTimeout); err != nil {
		return d, err
	}
	d.StartTime = time.Since(begin)
	return d, nil
}

// ensureQEMUUser creates the system user and group libvirtd runs QEMU as.
func ensureQEMUUser() error {
	const name = "libvirt-qemu"
	if _, err := user.LookupGroup(name); err != nil {
		if out, err := exec.Command("groupadd", "--system", name).CombinedOutput(); err != nil {
			return fmt.Errorf("groupadd %s: %v: %s", name, err, out)
		}
	}
	if _, err := user.Lookup(name); err != nil {
		out, err := exec.Command("useradd", "--system", "--gid", name, "--no-create-home",
			"--home-dir", "/var/lib/libvirt", "--shell", "/usr/sbin/nologin",
			"--comment", "Libvirt Qemu", name).CombinedOutput()
		if err != nil {
			return fmt.Errorf("useradd %s: %v: %s", name, err, out)
		}
	}
	return nil
}

// ensureKVMAccess lets libvirt-qemu open /dev/kvm, as a Debian host with
// udev and libvirt-daemon-system has it (root:kvm 0660, libvirt-qemu in
// group kvm), even where KVM guests cannot actually run.
//
// Without it libvirtd re-probes QEMU's capabilities (~4 s per emulator
// binary, several times per API call) over and over: it decides whether
// its cached capabilities are still valid by checking that QEMU's user can
// open /dev/kvm, and that disagrees with the probe, which found KVM.
// Defining and starting one guest then took ~60 s instead of ~1.5 s.
func ensureKVMAccess() error {
	const dev, qemuUser = "/dev/kvm", "libvirt-qemu"
	fi, err := os.Stat(dev)
	if err != nil {
		return nil // no KVM at all: nothing to disagree about
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	gid := st.Gid
	if gid == 0 {
		// As before udev or qemu-system-common's postinst set it up.
		if _, err := user.LookupGroup("kvm"); err != nil {
			if out, err := exec.Command("groupadd", "--system", "kvm").CombinedOutput(); err != nil {
				return fmt.Errorf("groupadd kvm: %v: %s", err, out)
			}
		}
		g, err := user.LookupGroup("kvm")
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(g.Gid)
		if err != nil {
			return fmt.Errorf("group kvm: gid %q: %w", g.Gid, err)
		}
		if err := os.Chown(dev, -1, n); err != nil {
			return err
		}
		if err := os.Chmod(dev, fi.Mode().Perm()|0o060); err != nil {
			return err
		}
		gid = uint32(n)
	} else if fi.Mode().Perm()&0o060 != 0o060 {
		if err := os.Chmod(dev, fi.Mode().Perm()|0o060); err != nil {
			return err
		}
	}
	u, err := user.Lookup(qemuUser)
	if err != nil {
		return err
	}
	groups, err := u.GroupIds()
	if err != nil {
		return fmt.Errorf("groups of %s: %w", qemuUser, err)
	}
	want := strconv.FormatUint(uint64(gid), 10)
	for _, g := range groups {
		if g == want {
			return nil
		}
	}
	grp, err := user.LookupGroupId(want)
	if err != nil {
		return fmt.Errorf("group of %s: %w", dev, err)
	}
	if out, err := exec.Command("usermod", "--append", "--groups", grp.Name, qemuUser).CombinedOutput(); err != nil {
		return fmt.Errorf("usermod -aG %s %s: %v: %s", grp.Name, qemuUser, err, out)
	}
	return nil
}

func (d *Daemon) startVirtlogd() error {
	if daemonproc.SocketAnswers(systemVirtlogdSock) {
		return nil // a system virtlogd; libvirtd will use it
	}
	conf := filepath.Join(d.dir, "virtlogd.conf")
	if err := writeConf(conf, map[string]string{
		"log_outputs": "3:file:" + filepath.Join(d.dir, "virtlogd.log"),
	}); err != nil {
		return err
	}
	bin, err := LookPath("virtlogd")
	if err != nil {
		return err
	}
	cmd := daemonCmd(bin, "-f", conf, "-p", filepath.Join(d.dir, "virtlogd.pid"))
	out, err := os.Create(filepath.Join(d.dir, "virtlogd.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start virtlogd: %w", err)
	}
	d.virtlogd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for !daemonproc.SocketAnswers(systemVirtlogdSock) {
		if time.Now().After(deadline) {
			return fmt.Errorf("virtlogd did not listen on %s within 10s: %s", systemVirtlogdSock, Tail(out.Name(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (d *Daemon) startLibvirtd() error {
	conf := filepath.Join(d.dir, "libvirtd.conf")
	if err := writeConf(conf, map[string]string{
		"unix_sock_dir":      d.dir,
		"unix_sock_rw_perms": "0700",
		"unix_sock_ro_perms": "0700",
		"auth_unix_rw":       "none",
		"auth_unix_ro":       "none",
		"log_outputs":        "3:file:" + d.LogPath(),
	}); err != nil {
		return err
	}
	bin, err := LookPath("libvirtd")
	if err != nil {
		return err
	}
	cmd := daemonCmd(bin, "-f", conf, "-p", filepath.Join(d.dir, "libvirtd.pid"))
	out, err := os.Create(filepath.Join(d.dir, "libvirtd.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start libvirtd: %w", err)
	}
	d.libvirtd = cmd
	go func() {
		_ = cmd.Wait()
		close(d.exited)
	}()
	return nil
}

// daemonCmd runs a daemon in the foreground, in its own process group (a
// ^C to `go test` reaches the test binary, which stops it in order), and
// with SIGTERM as parent-death signal.
func daemonCmd(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// writeConf writes a libvirt-style configuration file of string settings.
func writeConf(path string, settings map[string]string) error {
	var b strings.Builder
	b.WriteString("# written by bulwark (drivers/libvirt/daemon)\n")
	for k, v := range settings {
		fmt.Fprintf(&b, "%s = %s\n", k, strconv.Quote(v))
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// waitReady waits until libvirtd answers on its socket.
func (d *Daemon) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sock := filepath.Join(d.dir, "libvirt-sock")
	var lastErr error
	for {
		if _, err := os.Stat(sock); err == nil {
			conn, err := golibvirt.NewConnect(d.uri)
			if err == nil {
				_, err = conn.GetVersion()
				conn.Close()
				if err == nil {
					return nil
				}
			}
			lastErr = err
		}
		select {
		case <-d.exited:
			return fmt.Errorf("libvirtd exited while starting: %s\n%s", Tail(filepath.Join(d.dir, "libvirtd.out"), 20), Tail(d.LogPath(), 20))
		case <-ctx.Done():
			return fmt.Errorf("libvirtd did not answer at %s within %s (last error: %v): %s", d.uri, timeout, lastErr, Tail(d.LogPath(), 20))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop ends the daemons (libvirtd first: it talks to virtlogd), removes
// their directory and releases the lock. Running guests are not touched:
// callers destroy their own first.
func (d *Daemon) Stop() error {
	var errs []error
	if d.libvirtd != nil && d.libvirtd.Process != nil {
		if err := daemonproc.Terminate(d.libvirtd.Process, d.exited, stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("libvirtd: %w", err))
		}
	}
	if d.virtlogd != nil && d.virtlogd.Process != nil {
		done := make(chan struct{})
		go func() { _ = d.virtlogd.Wait(); close(done) }()
		if err := daemonproc.Terminate(d.virtlogd.Process, done, stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("virtlogd: %w", err))
		}
	}
	if d.dir != "" && len(errs) == 0 {
		if err := os.RemoveAll(d.dir); err != nil {
			errs = append(errs, err)
		}
	}
	if d.lock != nil {
		_ = os.Remove(pidsPath)
		d.lock.Close() // releases the flock
		d.lock = nil
	}
	return errors.Join(errs...)
}

// recordPids notes the daemons' pids and directory for killRecorded.
func (d *Daemon) recordPids() {
	var b strings.Builder
	for _, c := range []*exec.Cmd{d.libvirtd, d.virtlogd} {
		if c != nil && c.Process != nil {
			fmt.Fprintf(&b, "%d %s\n", c.Process.Pid, filepath.Base(c.Path))
		}
	}
	fmt.Fprintf(&b, "dir %s\n", d.dir)
	_ = os.WriteFile(pidsPath, []byte(b.String()), 0o600)
}

// killRecorded stops daemons a previous test binary started and left
// behind, and removes their directory. It runs under the lock, so none of
// them is in use. A recorded pid is signalled only if it still runs the
// binary recorded for it.
func killRecorded() {
	b, err := os.ReadFile(pidsPath)
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		pidStr, name, ok := strings.Cut(line, " ")
		if pidStr == "dir" && strings.HasPrefix(name, filepath.Join(os.TempDir(), "bulwark-libvirtd-")) {
			defer os.RemoveAll(name) // once the daemons are gone
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 1 || daemonproc.ProcName(pid) != name {
			continue
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		_ = p.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(stopGrace)
		for daemonproc.ProcName(pid) == name && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if daemonproc.ProcName(pid) == name {
			_ = p.Kill()
		}
	}
	_ = os.Remove(pidsPath)
}

// findProcess returns the pid of a live process named name, or 0.
func findProcess(name string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if daemonproc.ProcName(pid) == name {
			return pid
		}
	}
	return 0
}

// LookPath finds a binary in PATH or in the sbin directories a non-login
// root shell may lack.
func LookPath(bin string) (string, error) { return daemonproc.LookPath(bin) }

// Tail returns the last n lines of a log file.
func Tail(path string, n int) string { return daemonproc.Tail(path, n, tailSkip...) }

var tailSkip []string
