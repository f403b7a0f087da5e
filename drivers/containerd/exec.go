package containerd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// MaxExecOutput is how much of an exec'd command's output Exec keeps (its
// last bytes).
const MaxExecOutput = 4 * 1024

// execIODrain bounds the wait for an exec'd command's output after it
// exited: a child it left running in the background may hold the pipes.
const execIODrain = time.Second

var _ drivers.Execer = (*Driver)(nil)

// Exec implements drivers.Execer: it runs cmd in the workload's running
// task as an extra process with the main process's user, environment,
// working directory and capabilities, under a fresh exec ID, and waits for
// it. When ctx ends first, the process is killed and ctx's error returned
// (wrapped). The process is deleted in every case. Exec does not wait for
// a Start, Stop or Destroy of the workload in progress; one that removes
// the task makes Exec fail.
func (d *Driver) Exec(ctx context.Context, workload string, cmd []string) (int, string, error) {
	if err := api.ValidateName("workload", workload); err != nil {
		return -1, "", fmt.Errorf("exec: %w", err)
	}
	if len(cmd) == 0 || cmd[0] == "" {
		return -1, "", fmt.Errorf("exec %s: no command", workload)
	}
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: %w", workload, err)
	}
	defer d.mu.RUnlock()
	ctr, _, err := d.lookup(ctx, c, workload)
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: %w", workload, err)
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return -1, "", fmt.Errorf("exec %s: no running task: %w", workload, drivers.ErrNotFound)
	}
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: load task: %w", workload, err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: container spec: %w", workload, err)
	}
	if spec.Process == nil {
		return -1, "", fmt.Errorf("exec %s: the container spec has no process", workload)
	}
	pspec := *spec.Process
	pspec.Args = cmd
	pspec.Terminal = false
	pspec.ConsoleSize = nil
	id, err := execID()
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: %w", workload, err)
	}
	out := &tailBuffer{max: MaxExecOutput}
	proc, err := task.Exec(ctx, id, &pspec, cio.NewCreator(cio.WithStreams(nil, out, out)))
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: %w", workload, ctxOr(ctx, readable(err)))
	}
	// Clean up even when ctx is over: kill what may still run, then
	// delete the process (which also closes its pipes).
	cctx, cancel := detached(ctx)
	defer cancel()
	// A failed delete leaves an exited process entry, which the shim
	// drops with the task at the latest.
	defer func() { _, _ = proc.Delete(cctx, client.WithProcessKill) }()
	exited, err := proc.Wait(cctx)
	if err != nil {
		return -1, "", fmt.Errorf("exec %s: wait: %w", workload, err)
	}
	if err := proc.Start(ctx); err != nil {
		return -1, "", fmt.Errorf("exec %s: start %q: %w", workload, cmd[0], ctxOr(ctx, readable(err)))
	}
	var es client.ExitStatus
	select {
	case es = <-exited:
	case <-ctx.Done():
		if err := proc.Kill(cctx, syscall.SIGKILL); err != nil && !gone(err) {
			return -1, out.String(), fmt.Errorf("exec %s: %w (and killing it: %v)", workload, ctx.Err(), err)
		}
		select {
		case <-exited:
		case <-cctx.Done():
		}
		return -1, out.String(), fmt.Errorf("exec %s: %w", workload, ctx.Err())
	}
	if err := es.Error(); err != nil {
		return -1, out.String(), fmt.Errorf("exec %s: wait: %w", workload, err)
	}
	drained := make(chan struct{})
	go func() { proc.IO().Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(execIODrain):
		// Delete cancels the copy; what arrived is kept.
	}
	return int(es.ExitCode()), out.String(), nil
}

// ctxOr is ctx's error if it has ended (containerd's answer to a call cut
// short by it does not match context.DeadlineExceeded), else err.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// execID is a fresh exec process ID, unique within the task.
func execID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("exec id: %w", err)
	}
	return "bulwark-exec-" + hex.EncodeToString(b), nil
}

// tailBuffer keeps the last max bytes written to it, from any number of
// goroutines, and never blocks the writer.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	lost bool
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
		b.lost = true
	}
	return len(p), nil
}

// String is what was kept, led by "..." if earlier output was dropped.
func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := strings.ToValidUTF8(string(b.buf), "")
	if b.lost {
		return "..." + s
	}
	return s
}
