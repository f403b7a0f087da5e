package containerd_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/containerd"
)

// TestExec runs commands inside a real container: exit codes, output (the
// container's environment and file system, bounded), timeouts, and the
// processes it leaves behind (none).
func TestExec(t *testing.T) {
	e := newEnv(t)
	d := e.driver(t, "exec")
	const w = "app"
	cleanupDestroy(t, d, w)
	tk := task(w, 3, e.image(), "sh", "-c", "echo ready > /tmp/ready; sleep 600")
	tk.Spec.Env = map[string]string{"GREETING": "hello from inside"}
	if err := d.Start(ctxTimeout(t, 30*time.Second), tk); err != nil {
		t.Fatal(err)
	}
	main := pid(t, d, w)

	exec := func(timeout time.Duration, cmd ...string) (int, string, error) {
		t.Helper()
		return d.Exec(ctxTimeout(t, timeout), w, cmd)
	}
	waitFor(t, 10*time.Second, "/tmp/ready", func() (bool, string) {
		code, out, err := exec(5*time.Second, "sh", "-c", "test -f /tmp/ready")
		return err == nil && code == 0, fmt.Sprintf("code %d, %q, %v", code, out, err)
	})

	code, out, err := exec(5*time.Second, "sh", "-c", `echo "$GREETING"; cat /tmp/ready; echo oops >&2; exit 3`)
	if err != nil || code != 3 {
		t.Fatalf("exit 3: code %d, %v", code, err)
	}
	for _, want := range []string{"hello from inside\n", "ready\n", "oops\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}

	// Output is bounded to its last bytes.
	code, out, err = exec(10*time.Second, "sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done")
	if err != nil || code != 0 {
		t.Fatalf("long output: code %d, %v", code, err)
	}
	if len(out) > containerd.MaxExecOutput+3 || !strings.HasPrefix(out, "...") || !strings.HasSuffix(out, "line-1999\n") {
		t.Errorf("long output: %d bytes, %q ... %q", len(out), out[:min(len(out), 40)], out[max(0, len(out)-40):])
	}

	// A command that outlives its context is killed, and Exec returns soon.
	begin := time.Now()
	code, _, err = exec(2*time.Second, "sleep", "30")
	took := time.Since(begin)
	if !errors.Is(err, context.DeadlineExceeded) || code != -1 {
		t.Fatalf("timeout: code %d, %v", code, err)
	}
	t.Logf("timed-out exec returned after %s", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("timed-out exec took %s", took)
	}
	// Nothing is left running besides the main process and a fresh ps.
	code, out, err = exec(5*time.Second, "busybox", "ps", "-o", "pid,args")
	if err != nil || code != 0 {
		t.Fatalf("ps: code %d, %v", code, err)
	}
	if strings.Contains(out, "sleep 30") {
		t.Errorf("the timed-out command still runs:\n%s", out)
	}
	if p := pid(t, d, w); p != main {
		t.Errorf("exec changed the main pid: %d -> %d", main, p)
	}

	// A program that does not exist cannot be started.
	if _, _, err := exec(5*time.Second, "/no/such/program"); err == nil {
		t.Error("exec of a missing program succeeded")
	}
	if _, _, err := exec(5 * time.Second); err == nil {
		t.Error("exec without a command succeeded")
	}

	// No task, no container: ErrNotFound.
	if _, _, err := d.Exec(ctxTimeout(t, 5*time.Second), "missing", []string{"true"}); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("missing workload: %v", err)
	}
	// sh as pid 1 ignores SIGTERM: a short grace, then SIGKILL.
	if err := d.Stop(ctxTimeout(t, 500*time.Millisecond), w); err != nil {
		t.Fatal(err)
	}
	if _, _, err := exec(5*time.Second, "true"); !errors.Is(err, drivers.ErrNotFound) {
		t.Errorf("stopped workload: %v", err)
	}
}
