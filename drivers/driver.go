// Package drivers defines what a node agent needs from a workload runtime.
// Implementations: drivers/libvirt (VMs) and, later, drivers/containerd.
// Optional abilities are extra interfaces checked by type assertion, never
// stubs on every driver.
package drivers

import (
	"context"
	"errors"
	"io"

	"github.com/bulwarkhq/bulwark/api"
)

// TaskState is what the runtime reports about one workload.
type TaskState string

const (
	TaskRunning TaskState = "running"
	TaskStopped TaskState = "stopped"
	TaskFailed  TaskState = "failed"
	TaskUnknown TaskState = "unknown"
)

// Task identifies one workload instance on this host: the workload plus the
// allocation epoch it runs under (the fencing token).
type Task struct {
	Workload string
	Epoch    int64
	Spec     api.WorkloadSpec
	// Mounts are host paths bind-mounted into a container (its volumes);
	// a VM's volumes arrive as disks in Spec.VM.Disks instead.
	Mounts []Mount
}

// Mount is one host path inside a container.
type Mount struct {
	Source   string
	Target   string
	ReadOnly bool
}

// Status is the runtime's view of one task.
type Status struct {
	Workload string
	Epoch    int64
	State    TaskState
	// Detail is a short human reason (exit code, error).
	Detail string
	// ID is the runtime's own identifier (domain UUID, container ID).
	ID string
}

// Fingerprint describes the host as the runtime sees it.
type Fingerprint struct {
	CPUs   int
	Memory api.ByteSize
	// Detail: hypervisor type and version, e.g. "libvirt test 9.0.0".
	Detail string
}

// Driver runs workloads of the kinds it supports on this host. Every method is
// idempotent: starting a running task, stopping a stopped one or destroying a
// missing one succeeds.
type Driver interface {
	// Name is the driver's registry name, e.g. "libvirt".
	Name() string
	// Kinds lists the workload kinds this driver runs.
	Kinds() []api.Kind
	Fingerprint(ctx context.Context) (Fingerprint, error)
	// Start defines (if needed) and starts the task.
	Start(ctx context.Context, t Task) error
	// Inspect reports a task's state; ErrNotFound if the runtime has no such task.
	Inspect(ctx context.Context, workload string) (Status, error)
	// List reports every task this driver manages on this host, so that the
	// agent can recover after its own restart and remove leftovers.
	List(ctx context.Context) ([]Status, error)
	// Stop stops the task (gracefully if the runtime can, forcibly after
	// the context's deadline); it stays defined.
	Stop(ctx context.Context, workload string) error
	// Destroy forcibly stops the task and removes every trace of it.
	Destroy(ctx context.Context, workload string) error
	Close() error
}

// ErrNotFound: the runtime has no task for that workload.
var ErrNotFound = errors.New("no such task")

// Logger is implemented by drivers that keep a workload's output: a
// container's stdout and stderr, a VM's serial console.
type Logger interface {
	Logs(ctx context.Context, workload string) (io.ReadCloser, error)
}

// Execer is implemented by drivers that can run a command inside a running
// workload (a container's exec; health checks use it).
type Execer interface {
	// Exec runs cmd (program and arguments) in the workload's running
	// task, as its main process runs, and waits for it until ctx ends;
	// then the command is killed and ctx's error returned. output is its
	// stdout and stderr together, cut to a few KiB. err reports that the
	// command could not be run or waited for, not a non-zero exitCode;
	// ErrNotFound if the workload has no running task.
	Exec(ctx context.Context, workload string, cmd []string) (exitCode int, output string, err error)
}
