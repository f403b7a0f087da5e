// Package daemon runs a private containerd: its own config.toml (version 2)
// with root, state, and the gRPC and ttrpc sockets in a temporary directory,
// the CRI plugin disabled. Tests use it (through containerdtest) and so does
// `bulwarkd dev --driver containerd`.
//
// How the daemon is set up, and why:
//
//   - Some things are machine-wide whatever the configuration: runc keeps
//     container state under /run/containerd/runc/<namespace>, shims put
//     their sockets in /run/containerd/s, and cgroups are
//     /<namespace>/<container>. Two daemons whose clients used the same
//     namespace and container ID would collide there, so Start holds an
//     exclusive flock on LockPath while the daemon runs: one private
//     daemon per machine at a time.
//   - Shims outlive containerd by design (that is what lets a task survive
//     its agent). Stop kills and deletes every task and container in every
//     namespace through the API, stops containerd (SIGTERM, then SIGKILL),
//     then kills any shim still serving this daemon's socket and
//     force-deletes, with runc, any container left in its state directory.
//     The daemon's pid and directory are also recorded next to the lock
//     file, so that what a killed process left behind is cleaned up by the
//     next Start.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"github.com/bulwarkhq/bulwark/drivers/daemonproc"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
)

// LockPath is the file whose flock the running daemon holds.
const LockPath = "/tmp/bulwark-containerd.lock"

// pidsPath records the daemon's pid and directory for the next Start.
const pidsPath = "/tmp/bulwark-containerd.pids"

// dirPrefix starts the name of every daemon directory (under os.TempDir()).
// Kept short: unix socket paths are limited to 108 bytes.
const dirPrefix = "bulwark-ctrd-"

// runcRoot is where the runc shim keeps runc's state, per namespace.
const runcRoot = "/run/containerd/runc"

const (
	lockWait     = 5 * time.Minute
	readyTimeout = 30 * time.Second
	stopGrace    = 10 * time.Second
)

// Daemon is a running private containerd.
type Daemon struct {
	dir  string
	cmd  *exec.Cmd
	lock *os.File
	// exited is closed when containerd has exited.
	exited chan struct{}
	// StartTime is how long starting the daemon took, for reports.
	StartTime time.Duration
}

// Address is the daemon's gRPC socket.
func (d *Daemon) Address() string { return filepath.Join(d.dir, "containerd.sock") }

// TTRPCAddress is the daemon's ttrpc socket (shims talk to it).
func (d *Daemon) TTRPCAddress() string { return d.Address() + ".ttrpc" }

// Dir is the directory holding the daemon's configuration, root, state,
// sockets and log.
func (d *Daemon) Dir() string { return d.dir }

// ConfigPath is the daemon's config.toml.
func (d *Daemon) ConfigPath() string { return filepath.Join(d.dir, "config.toml") }

// LogPath is containerd's own log.
func (d *Daemon) LogPath() string { return filepath.Join(d.dir, "containerd.log") }

// stateDir is containerd's state directory (task bundles live below it).
func stateDir(dir string) string { return filepath.Join(dir, "state") }

// Missing says what this machine lacks to run the daemon, or "".
func Missing() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc"} {
		if _, err := LookPath(bin); err != nil {
			return err.Error()
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		return "no cgroup file system at /sys/fs/cgroup"
	}
	return ""
}

// configTOML is the daemon's configuration; %[1]s is its directory.
const configTOML = `version = 2
root = "%[1]s/root"
state = "%[1]s/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "%[1]s/containerd.sock"

[ttrpc]
  address = "%[1]s/containerd.sock.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "%[1]s/opt"
`

func Start() (d *Daemon, err error) {
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
	cleanupRecorded()

	d.dir, err = os.MkdirTemp("", dirPrefix)
	if err != nil {
		return d, err
	}
	if err := os.WriteFile(d.ConfigPath(), []byte(fmt.Sprintf(configTOML, d.dir)), 0o600); err != nil {
		return d, err
	}
	logf, err := os.OpenFile(d.LogPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return d, err
	}
	defer logf.Close()
	bin, err := LookPath("containerd")
	if err != nil {
		return d, err
	}
	cmd := exec.Command(bin, "--config", d.ConfigPath())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a ^C to go test reaches only the test
	// binary, which then stops the daemon in order; the parent-death signal
	// stops it if the test binary dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return d, fmt.Errorf("start containerd: %w", err)
	}
	d.cmd = cmd
	go func() { _ = cmd.Wait(); close(d.exited) }()
	d.record()
	if err := d.waitReady(readyTimeout); err != nil {
		return d, err
	}
	d.StartTime = time.Since(begin)
	return d, nil
}

// waitReady waits until the daemon answers a health check.
func (d *Daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !daemonproc.SocketAnswers(d.Address()) {
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited at start-up; tail of %s:\n%s", d.LogPath(), Tail(d.LogPath(), 20))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not open %s within %s; tail of %s:\n%s", d.Address(), timeout, d.LogPath(), Tail(d.LogPath(), 20))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline)+time.Second)
	defer cancel()
	c, err := client.New(d.Address())
	if err != nil {
		return fmt.Errorf("connect to containerd: %w", err)
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	if err != nil || !ok {
		return fmt.Errorf("containerd is not serving (ok=%v): %v", ok, err)
	}
	return nil
}

// Stop removes every task and container through the API, stops containerd,
// kills what is left of its shims and containers, removes its directory and
// releases the lock.
func (d *Daemon) Stop() error {
	var errs []error
	if d.cmd != nil && d.cmd.Process != nil {
		select {
		case <-d.exited:
		default:
			if err := d.removeAll(); err != nil {
				errs = append(errs, fmt.Errorf("remove containers: %w", err))
			}
		}
		if err := daemonproc.Terminate(d.cmd.Process, d.exited, stopGrace); err != nil {
			errs = append(errs, fmt.Errorf("containerd: %w", err))
		}
	}
	if d.dir != "" {
		leftovers(d.dir)
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

// removeAll kills and deletes every task and container (with its snapshot)
// in every namespace, then the namespaces and their cgroup directories.
func (d *Daemon) removeAll() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(d.Address())
	if err != nil {
		return err
	}
	defer c.Close()
	nss, err := c.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("list namespaces: %w", err)
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespaces.WithNamespace(ctx, ns)
		ctrs, err := c.Containers(nctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: list containers: %w", ns, err))
			continue
		}
		for _, ctr := range ctrs {
			if err := removeContainer(nctx, ctr); err != nil {
				errs = append(errs, fmt.Errorf("namespace %s: container %s: %w", ns, ctr.ID(), err))
			}
		}
		// Images and content are dropped with the daemon's directory.
		if imgs, err := c.ImageService().List(nctx); err == nil {
			for _, img := range imgs {
				_ = c.ImageService().Delete(nctx, img.Name)
			}
		}
		_ = c.NamespaceService().Delete(nctx, ns)
		removeCgroupDirs(ns)
		_ = syscall.Rmdir(filepath.Join(runcRoot, ns)) // only if empty
	}
	return errors.Join(errs...)
}

// removeCgroupDirs removes the (empty) cgroup v1 directories runc made for
// a namespace: /sys/fs/cgroup/<controller>/<namespace>.
func removeCgroupDirs(ns string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", ns))
	for _, dir := range dirs {
		_ = syscall.Rmdir(dir)
	}
}

func removeContainer(ctx context.Context, ctr client.Container) error {
	task, err := ctr.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return err
	default:
		wait, werr := task.Wait(ctx)
		if kerr := task.Kill(ctx, syscall.SIGKILL); kerr == nil && werr == nil {
			select {
			case <-wait:
			case <-time.After(stopGrace):
			}
		}
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete: %w", err)
	}
	return nil
}

// leftovers kills the shims still serving the daemon in dir and
// force-deletes, with runc, every container whose bundle is still in its
// state directory. It is the fallback for a daemon that could not be
// asked (it died, or a test binary was killed).
func leftovers(dir string) {
	address := filepath.Join(dir, "containerd.sock")
	for _, pid := range shimsOf(address) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	runc, err := LookPath("runc")
	if err != nil {
		return
	}
	bundles, _ := filepath.Glob(filepath.Join(stateDir(dir), "io.containerd.runtime.v2.task", "*", "*"))
	for _, b := range bundles {
		id, ns := filepath.Base(b), filepath.Base(filepath.Dir(b))
		// Kills the container's processes, removes runc's state and the
		// container's cgroups.
		_ = exec.Command(runc, "--root", filepath.Join(runcRoot, ns), "delete", "--force", id).Run()
		_ = syscall.Unmount(filepath.Join(b, "rootfs"), syscall.MNT_DETACH)
		removeCgroupDirs(ns)
		_ = syscall.Rmdir(filepath.Join(runcRoot, ns))
	}
}

// shimsOf returns the pids of the containerd-shim processes whose
// -address is address.
func shimsOf(address string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		// comm is truncated to 15 bytes: "containerd-shim".
		if !strings.HasPrefix(string(comm), "containerd-shim") {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == address {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// record notes the daemon's pid and directory for cleanupRecorded.
func (d *Daemon) record() {
	s := fmt.Sprintf("%d containerd\ndir %s\n", d.cmd.Process.Pid, d.dir)
	_ = os.WriteFile(pidsPath, []byte(s), 0o600)
}

// cleanupRecorded stops a daemon a previous test binary started and left
// behind, with its shims and containers, and removes its directory. It runs
// under the lock, so none of it is in use. A recorded pid is signalled only
// if it still runs containerd.
func cleanupRecorded() {
	b, err := os.ReadFile(pidsPath)
	if err != nil {
		return
	}
	var dir string
	for _, line := range strings.Split(string(b), "\n") {
		first, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if first == "dir" {
			if strings.HasPrefix(rest, filepath.Join(os.TempDir(), dirPrefix)) {
				dir = rest
			}
			continue
		}
		pid, err := strconv.Atoi(first)
		if err != nil || pid <= 1 || daemonproc.ProcName(pid) != rest {
			continue
		}
		p, err := os.FindProcess(pid)
		if err != nil {
			continue
		}
		_ = p.Signal(syscall.SIGTERM)
		deadline := time.Now().Add(stopGrace)
		for daemonproc.ProcName(pid) == rest && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if daemonproc.ProcName(pid) == rest {
			_ = p.Kill()
		}
	}
	if dir != "" {
		leftovers(dir)
		_ = os.RemoveAll(dir)
	}
	_ = os.Remove(pidsPath)
}

// LookPath finds a binary in PATH or in the sbin directories a non-login
// root shell may lack.
func LookPath(bin string) (string, error) { return daemonproc.LookPath(bin) }

// Tail returns the last n lines of a log file.
func Tail(path string, n int) string { return daemonproc.Tail(path, n, tailSkip...) }

// tailSkip leaves containerd's start-up noise out of log tails.
var tailSkip = []string{"loading plugin"}
