package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/containerd"
	"github.com/bulwarkhq/bulwark/drivers/containerd/containerdtest"
)

// env is one test's daemon, image archive and state directory.
type env struct {
	daemon   *containerdtest.Daemon
	archive  string // the busybox archive
	ref      string // its image
	stateDir string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	d := containerdtest.Start(t)
	if d.StartTime > 0 {
		t.Logf("containerd started in %s", d.StartTime.Round(time.Millisecond))
	}
	archive, ref := containerdtest.BuildBusyboxArchive(t, "")
	return &env{daemon: d, archive: archive, ref: ref, stateDir: t.TempDir()}
}

// image is Spec.Image for the busybox archive.
func (e *env) image() string { return containerd.ArchivePrefix + e.archive }

// driver opens a Driver for host, closed when t ends.
func (e *env) driver(t *testing.T, host string) *containerd.Driver {
	t.Helper()
	d, err := containerd.New(containerd.Config{
		Address:  e.daemon.Address(),
		Host:     host,
		StateDir: filepath.Join(e.stateDir, host),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return d
}

// cleanupDestroy destroys workload at the end of t (before the driver
// closes, since cleanups run last-registered first).
func cleanupDestroy(t *testing.T, d *containerd.Driver, workload string) {
	t.Cleanup(func() {
		if err := d.Destroy(context.Background(), workload); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// rawClient is a containerd client in the namespace of d, for checks the
// driver does not offer.
func rawClient(t *testing.T, e *env, d *containerd.Driver) (*client.Client, context.Context) {
	t.Helper()
	c, err := client.New(e.daemon.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, namespaces.WithNamespace(context.Background(), d.Config().Namespace)
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func task(name string, epoch int64, image string, cmd ...string) drivers.Task {
	return drivers.Task{Workload: name, Epoch: epoch, Spec: api.WorkloadSpec{
		Name: name, Kind: api.KindContainer, Image: image, Command: cmd,
		CPUs: 1, Memory: 64 * api.MiB,
	}}
}

func inspect(t *testing.T, d *containerd.Driver, workload string) drivers.Status {
	t.Helper()
	st, err := d.Inspect(ctxTimeout(t, 10*time.Second), workload)
	if err != nil {
		t.Fatalf("inspect: %v", err)
	}
	return st
}

func pid(t *testing.T, d *containerd.Driver, workload string) uint32 {
	t.Helper()
	p, err := d.PID(ctxTimeout(t, 10*time.Second), workload)
	if err != nil {
		t.Fatalf("pid: %v", err)
	}
	if p == 0 {
		t.Fatal("pid 0")
	}
	return p
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readLog(t *testing.T, d *containerd.Driver, workload string) string {
	t.Helper()
	r, err := d.Logs(context.Background(), workload)
	if err != nil {
		t.Fatalf("logs: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func waitLog(t *testing.T, d *containerd.Driver, workload, want string, count int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("log has %q %d times", want, count), func() (bool, string) {
		s := readLog(t, d, workload)
		return strings.Count(s, want) >= count, s
	})
}

// cgroupFile reads a cgroup v1 file of pid's cgroup in controller.
func cgroupFile(t *testing.T, pid uint32, controller, file string) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				v, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", parts[1], parts[2], file))
				if err != nil {
					t.Fatalf("cgroup v1 %s: %v", controller, err)
				}
				return strings.TrimSpace(string(v))
			}
		}
	}
	t.Skipf("SKIP: no cgroup v1 %s controller for pid %d (cgroup v2 host?):\n%s", controller, pid, b)
	return ""
}

// assertGone checks that nothing of workload is left: no container, no
// snapshot, no log.
func assertGone(t *testing.T, e *env, d *containerd.Driver, workload string) {
	t.Helper()
	if _, err := d.Inspect(context.Background(), workload); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("inspect %s: want ErrNotFound, got %v", workload, err)
	}
	sts, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.Workload == workload {
			t.Errorf("list still has %+v", st)
		}
	}
	c, ctx := rawClient(t, e, d)
	if _, err := c.LoadContainer(ctx, workload); !errdefs.IsNotFound(err) {
		t.Errorf("container %s: want not found, got %v", workload, err)
	}
	if _, err := c.SnapshotService(containerd.DefaultSnapshotter).Stat(ctx, workload); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot %s: want not found, got %v", workload, err)
	}
	if _, err := os.Stat(d.LogPath(workload)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log %s: want none, got %v", d.LogPath(workload), err)
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "life")
	const w = "web"
	cleanupDestroy(t, d, w)

	tk := task(w, 7, e.image(), "sh", "-c", `echo hello; echo "FOO=$FOO"; echo "host=$(hostname)"; sleep 600`)
	tk.Spec.Env = map[string]string{"FOO": "bar baz"}
	begin := time.Now()
	if err := d.Start(ctxTimeout(t, 30*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	t.Logf("first Start (import + unpack + create + start): %s", time.Since(begin).Round(time.Millisecond))

	st := inspect(t, d, w)
	p1 := pid(t, d, w)
	if st.State != drivers.TaskRunning || st.Workload != w || st.Epoch != 7 || st.ID != w || st.Detail != fmt.Sprintf("pid %d", p1) {
		t.Fatalf("inspect: %+v (pid %d)", st, p1)
	}
	waitLog(t, d, w, "hello", 1)
	log := readLog(t, d, w)
	for _, want := range []string{"FOO=bar baz", "host=" + w} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}

	// Limits, as runc wrote them into the task's cgroup v1 directories.
	if got := cgroupFile(t, p1, "memory", "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
		t.Errorf("memory.limit_in_bytes = %s, want %d", got, 64<<20)
	}
	if got := cgroupFile(t, p1, "cpu", "cpu.cfs_quota_us"); got != "100000" {
		t.Errorf("cpu.cfs_quota_us = %s, want 100000", got)
	}
	if got := cgroupFile(t, p1, "cpu", "cpu.cfs_period_us"); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %s, want 100000", got)
	}

	// Start of a running task of the same epoch changes nothing.
	if err := d.Start(ctxTimeout(t, 10*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	if p := pid(t, d, w); p != p1 {
		t.Fatalf("repeated Start changed the pid: %d -> %d", p1, p)
	}

	// sh as a container's init ignores SIGTERM: Stop kills it at the
	// deadline.
	begin = time.Now()
	if err := d.Stop(ctxTimeout(t, 500*time.Millisecond), w); err != nil {
		t.Fatal(err)
	}
	t.Logf("Stop (SIGTERM ignored, SIGKILL after 0.5 s): %s", time.Since(begin).Round(time.Millisecond))
	st = inspect(t, d, w)
	if st.State != drivers.TaskStopped || st.Epoch != 7 || !strings.Contains(st.Detail, "exit code 137") {
		t.Fatalf("after stop: %+v", st)
	}
	if _, err := d.PID(context.Background(), w); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("PID after stop: want ErrNotFound, got %v", err)
	}
	if err := d.Stop(ctxTimeout(t, 5*time.Second), w); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if sts, err := d.List(context.Background()); err != nil || len(sts) != 1 || sts[0].State != drivers.TaskStopped {
		t.Fatalf("list after stop: %+v, %v", sts, err)
	}

	// Start again: a new task in the same container; the log is appended.
	begin = time.Now()
	if err := d.Start(ctxTimeout(t, 30*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start of the stopped container: %s", time.Since(begin).Round(time.Millisecond))
	if st := inspect(t, d, w); st.State != drivers.TaskRunning {
		t.Fatalf("after restart: %+v", st)
	}
	if p := pid(t, d, w); p == p1 {
		t.Errorf("restart kept pid %d", p)
	}
	waitLog(t, d, w, "hello", 2)

	begin = time.Now()
	if err := d.Destroy(ctxTimeout(t, 10*time.Second), w); err != nil {
		t.Fatal(err)
	}
	t.Logf("Destroy of a running task: %s", time.Since(begin).Round(time.Millisecond))
	assertGone(t, e, d, w)
	if err := d.Destroy(ctxTimeout(t, 10*time.Second), w); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if err := d.Stop(ctxTimeout(t, 10*time.Second), w); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("stop after destroy: want ErrNotFound, got %v", err)
	}
	if _, err := d.Logs(context.Background(), w); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("logs after destroy: want ErrNotFound, got %v", err)
	}
}

func TestGracefulStop(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "graceful")
	const w = "polite"
	cleanupDestroy(t, d, w)
	tk := task(w, 1, e.image(), "sh", "-c", `trap 'echo bye; exit 0' TERM; echo up; sleep 600 & wait`)
	if err := d.Start(ctxTimeout(t, 30*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, w, "up", 1)
	begin := time.Now()
	if err := d.Stop(ctxTimeout(t, 20*time.Second), w); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	t.Logf("graceful Stop: %s", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("graceful stop took %s", took)
	}
	st := inspect(t, d, w)
	if st.State != drivers.TaskStopped || st.Detail != "stopped, exit code 0" {
		t.Fatalf("after stop: %+v", st)
	}
	waitLog(t, d, w, "bye", 1)
}

func TestAgentRestart(t *testing.T) {
	e := newEnv(t)
	first := e.driver(t, "restart")
	const w = "survivor"
	tk := task(w, 42, e.image(), "sh", "-c", "echo alive; sleep 600")
	if err := first.Start(ctxTimeout(t, 30*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	p := pid(t, first, w)
	// The agent goes away; the task must not notice.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := first.List(context.Background()); err == nil {
		t.Error("list on a closed driver succeeded")
	}

	second := e.driver(t, "restart")
	cleanupDestroy(t, second, w)
	sts, err := second.List(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 1 || sts[0].Workload != w || sts[0].Epoch != 42 || sts[0].State != drivers.TaskRunning || sts[0].ID != w {
		t.Fatalf("list after restart: %+v", sts)
	}
	if err := second.Start(ctxTimeout(t, 10*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	if got := pid(t, second, w); got != p {
		t.Fatalf("pid after agent restart + Start: %d, want %d", got, p)
	}
	waitLog(t, second, w, "alive", 1)
}

func TestEpochAndHosts(t *testing.T) {
	e := newEnv(t)
	a := e.driver(t, "host-a")
	b := e.driver(t, "host-b")
	const w = "shared"
	cleanupDestroy(t, a, w)
	cleanupDestroy(t, b, w)

	if err := a.Start(ctxTimeout(t, 30*time.Second), task(w, 1, e.image(), "sh", "-c", "echo epoch1; sleep 600")); err != nil {
		t.Fatal(err)
	}
	p1 := pid(t, a, w)
	waitLog(t, a, w, "epoch1", 1)

	// Host b sees nothing of host a's.
	if sts, err := b.List(context.Background()); err != nil || len(sts) != 0 {
		t.Fatalf("host b list: %+v, %v", sts, err)
	}
	if _, err := b.Inspect(context.Background(), w); !errors.Is(err, drivers.ErrNotFound) {
		t.Fatalf("host b inspect: want ErrNotFound, got %v", err)
	}
	if err := b.Destroy(ctxTimeout(t, 10*time.Second), w); err != nil {
		t.Fatal(err)
	}
	if st := inspect(t, a, w); st.State != drivers.TaskRunning {
		t.Fatalf("host b's destroy touched host a: %+v", st)
	}
	// Its own workload of the same name is independent.
	if err := b.Start(ctxTimeout(t, 30*time.Second), task(w, 9, e.image(), "sh", "-c", "sleep 600")); err != nil {
		t.Fatal(err)
	}
	if st := inspect(t, b, w); st.Epoch != 9 || st.State != drivers.TaskRunning {
		t.Fatalf("host b: %+v", st)
	}

	// A new epoch replaces the container (and its log).
	begin := time.Now()
	if err := a.Start(ctxTimeout(t, 30*time.Second), task(w, 2, e.image(), "sh", "-c", "echo epoch2; sleep 600")); err != nil {
		t.Fatal(err)
	}
	t.Logf("Start replacing another epoch: %s", time.Since(begin).Round(time.Millisecond))
	st := inspect(t, a, w)
	if st.Epoch != 2 || st.State != drivers.TaskRunning {
		t.Fatalf("after epoch change: %+v", st)
	}
	if p := pid(t, a, w); p == p1 {
		t.Fatalf("epoch change kept pid %d", p)
	}
	waitLog(t, a, w, "epoch2", 1)
	if log := readLog(t, a, w); strings.Contains(log, "epoch1") {
		t.Errorf("log of the new epoch has the old one's output:\n%s", log)
	}
	if sts, err := a.List(context.Background()); err != nil || len(sts) != 1 || sts[0].Epoch != 2 {
		t.Fatalf("host a list: %+v, %v", sts, err)
	}
	if st := inspect(t, b, w); st.Epoch != 9 || st.State != drivers.TaskRunning {
		t.Fatalf("host a's epoch change touched host b: %+v", st)
	}
}

func TestForeignContainer(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "foreign")
	if _, err := d.ImportArchive(ctxTimeout(t, 30*time.Second), e.archive); err != nil {
		t.Fatal(err)
	}
	c, ctx := rawClient(t, e, d)
	img, err := c.GetImage(ctx, e.ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Unpack(ctx, containerd.DefaultSnapshotter); err != nil {
		t.Fatal(err)
	}
	// A container of the same namespace that Bulwark did not create.
	const w = "intruder"
	ctr, err := c.NewContainer(ctx, w,
		client.WithNewSnapshot(w, img),
		client.WithNewSpec(oci.WithImageConfig(img)),
		client.WithContainerLabels(map[string]string{"owner": "someone-else"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctr.Delete(ctx, client.WithSnapshotCleanup) })

	if sts, err := d.List(context.Background()); err != nil || len(sts) != 0 {
		t.Fatalf("list shows a foreign container: %+v, %v", sts, err)
	}
	for name, err := range map[string]error{
		"start":   d.Start(ctxTimeout(t, 10*time.Second), task(w, 1, e.image())),
		"stop":    d.Stop(ctxTimeout(t, 10*time.Second), w),
		"destroy": d.Destroy(ctxTimeout(t, 10*time.Second), w),
	} {
		if !errors.Is(err, containerd.ErrForeignContainer) {
			t.Errorf("%s: want ErrForeignContainer, got %v", name, err)
		}
	}
	if _, err := c.LoadContainer(ctx, w); err != nil {
		t.Errorf("the foreign container is gone: %v", err)
	}
	if _, err := c.SnapshotService(containerd.DefaultSnapshotter).Stat(ctx, w); err != nil {
		t.Errorf("the foreign container's snapshot is gone: %v", err)
	}
	// A container labelled for another host is just as foreign.
	const w2 = "other-host"
	ctr2, err := c.NewContainer(ctx, w2, client.WithNewSnapshot(w2, img), client.WithNewSpec(oci.WithImageConfig(img)),
		client.WithContainerLabels(map[string]string{
			containerd.LabelWorkload: w2, containerd.LabelEpoch: "1", containerd.LabelHost: "someone-else",
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ctr2.Delete(ctx, client.WithSnapshotCleanup) })
	if err := d.Destroy(ctxTimeout(t, 10*time.Second), w2); !errors.Is(err, containerd.ErrForeignContainer) {
		t.Errorf("destroy of another host's container: want ErrForeignContainer, got %v", err)
	}
	if sts, err := d.List(context.Background()); err != nil || len(sts) != 0 {
		t.Fatalf("list shows another host's container: %+v, %v", sts, err)
	}
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "exits")
	cases := []struct {
		name   string
		script string
		state  drivers.TaskState
		detail string
	}{
		{"fails", "echo failing; exit 3", drivers.TaskFailed, "exit code 3"},
		{"succeeds", "echo done", drivers.TaskStopped, "exit code 0"},
	}
	for _, tc := range cases {
		cleanupDestroy(t, d, tc.name)
		if err := d.Start(ctxTimeout(t, 30*time.Second), task(tc.name, 3, e.image(), "sh", "-c", tc.script)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range cases {
		waitFor(t, 10*time.Second, tc.name+" exits", func() (bool, string) {
			st := inspect(t, d, tc.name)
			return st.State == tc.state && st.Detail == tc.detail, fmt.Sprintf("%+v", st)
		})
	}
	// Start of the same epoch runs an exited task again.
	if err := d.Start(ctxTimeout(t, 30*time.Second), task("fails", 3, e.image(), "sh", "-c", "ignored")); err != nil {
		t.Fatal(err)
	}
	waitLog(t, d, "fails", "failing", 2)
	waitFor(t, 10*time.Second, "fails exits again", func() (bool, string) {
		st := inspect(t, d, "fails")
		return st.State == drivers.TaskFailed && st.Detail == "exit code 3", fmt.Sprintf("%+v", st)
	})
	// Stop of an exited task removes it and keeps its exit code.
	if err := d.Stop(ctxTimeout(t, 10*time.Second), "fails"); err != nil {
		t.Fatal(err)
	}
	if st := inspect(t, d, "fails"); st.State != drivers.TaskStopped || st.Detail != "stopped, exit code 3" {
		t.Fatalf("after stop: %+v", st)
	}
}

func TestBadInput(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "bad")
	missing := filepath.Join(t.TempDir(), "missing.tar")
	cases := []struct {
		name  string
		image string
		cmd   []string
		want  string
	}{
		{"no-archive", containerd.ArchivePrefix + missing, nil, "image archive " + missing + " does not exist"},
		{"relative-archive", containerd.ArchivePrefix + "images/busybox.tar", nil, "is not absolute"},
		{"bad-ref", "Not A//Valid:Ref", nil, `image reference "Not A//Valid:Ref" cannot be parsed`},
		{"bad-archive-ref", containerd.ArchivePrefix + e.archive + "#bad ref", nil, `image reference "bad ref" cannot be parsed`},
		{"not-in-archive", containerd.ArchivePrefix + e.archive + "#bulwark.test/other:1", nil, "has no image bulwark.test/other:1"},
		// Loopback port 1: nothing listens, the pull fails at once.
		{"no-registry", "127.0.0.1:1/bulwark/absent:1", nil, "image 127.0.0.1:1/bulwark/absent:1 not found locally and pull failed"},
		{"no-command", e.image(), []string{"/no/such/binary"}, "/no/such/binary"},
		{"no-image", "", nil, "no image given"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			err := d.Start(ctxTimeout(t, 30*time.Second), task(tc.name, 1, tc.image, tc.cmd...))
			if err == nil {
				t.Fatal("Start succeeded")
			}
			t.Logf("%s (%s)", err, time.Since(begin).Round(time.Millisecond))
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
			assertGone(t, e, d, tc.name)
		})
	}
}

func TestImportArchiveAndRef(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "imports")
	names, err := d.ImportArchive(ctxTimeout(t, 30*time.Second), e.archive)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != e.ref {
		t.Fatalf("imported %v, want [%s]", names, e.ref)
	}
	if _, err := d.ImportArchive(context.Background(), "relative.tar"); err == nil {
		t.Error("import of a relative path succeeded")
	}
	// Once imported, the plain reference works, and so does an archive
	// with an explicit image name.
	for w, image := range map[string]string{
		"by-ref":     e.ref,
		"by-archive": containerd.ArchivePrefix + e.archive + "#" + e.ref,
	} {
		cleanupDestroy(t, d, w)
		if err := d.Start(ctxTimeout(t, 30*time.Second), task(w, 1, image, "sh", "-c", "echo ok; sleep 600")); err != nil {
			t.Fatalf("%s: %v", w, err)
		}
		waitLog(t, d, w, "ok", 1)
	}
}

func TestFingerprint(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "fp")
	fp, err := d.Fingerprint(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if fp.CPUs != runtime.NumCPU() || fp.Memory < 64*api.MiB || !strings.HasPrefix(fp.Detail, "containerd ") || !strings.HasSuffix(fp.Detail, " (runc)") {
		t.Fatalf("fingerprint: %+v", fp)
	}
	t.Logf("fingerprint: %+v", fp)
	if d.Name() != "containerd" || len(d.Kinds()) != 1 || d.Kinds()[0] != api.KindContainer {
		t.Fatalf("name %q kinds %v", d.Name(), d.Kinds())
	}
}

func TestNewErrors(t *testing.T) {
	for name, cfg := range map[string]containerd.Config{
		"no host":       {Address: "/nonexistent.sock", StateDir: t.TempDir()},
		"bad namespace": {Address: "/nonexistent.sock", Host: "h", Namespace: "bad namespace", StateDir: t.TempDir()},
		"relative dir":  {Address: "/nonexistent.sock", Host: "h", StateDir: "logs"},
	} {
		if _, err := containerd.New(cfg); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	begin := time.Now()
	_, err := containerd.New(containerd.Config{Address: filepath.Join(t.TempDir(), "none.sock"), Host: "h", StateDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("New on a missing socket: %v", err)
	}
	took := time.Since(begin)
	t.Logf("New on a missing socket failed in %s: %v", took.Round(time.Millisecond), err)
	if took > 2*time.Second {
		t.Errorf("New on a missing socket took %s", took)
	}
}

func TestStopExpiredContextAndPaused(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "edge")
	const w = "frozen"
	cleanupDestroy(t, d, w)
	tk := task(w, 1, e.image(), "sh", "-c", "sleep 600")
	if err := d.Start(ctxTimeout(t, 30*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	// Paused by someone else: still running as far as Bulwark is concerned.
	c, ctx := rawClient(t, e, d)
	ctr, err := c.LoadContainer(ctx, w)
	if err != nil {
		t.Fatal(err)
	}
	tsk, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tsk.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	st := inspect(t, d, w)
	if st.State != drivers.TaskRunning || !strings.HasPrefix(st.Detail, "paused") {
		t.Fatalf("paused: %+v", st)
	}
	if err := d.Start(ctxTimeout(t, 10*time.Second), tk); err != nil {
		t.Fatalf("start of a paused task: %v", err)
	}
	// An expired context: no grace period, but the task is still stopped.
	expired, cancel := context.WithCancel(context.Background())
	cancel()
	begin := time.Now()
	if err := d.Stop(expired, w); err != nil {
		t.Fatalf("stop with an expired context: %v", err)
	}
	t.Logf("Stop of a paused task with an expired context: %s", time.Since(begin).Round(time.Millisecond))
	if st := inspect(t, d, w); st.State != drivers.TaskStopped || st.Detail != "stopped, exit code 137 (SIGKILL)" {
		t.Fatalf("after stop: %+v", st)
	}
	// Destroy with an expired context works too.
	if err := d.Destroy(expired, w); err != nil {
		t.Fatalf("destroy with an expired context: %v", err)
	}
	assertGone(t, e, d, w)
}

func TestConcurrentStarts(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "busy")
	names := []string{"one", "two", "three"}
	errs := make(chan error, 2*len(names))
	for _, w := range names {
		cleanupDestroy(t, d, w)
		for range 2 {
			go func() {
				errs <- d.Start(ctxTimeout(t, 30*time.Second), task(w, 1, e.image(), "sh", "-c", "sleep 600"))
			}()
		}
	}
	for range 2 * len(names) {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	sts, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != len(names) {
		t.Fatalf("list: %+v", sts)
	}
	for _, st := range sts {
		if st.State != drivers.TaskRunning {
			t.Errorf("%+v", st)
		}
	}
}
