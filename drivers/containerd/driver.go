// Package containerd runs container workloads with containerd (and runc).
//
// Each task is one containerd container whose ID is the workload name, in
// a containerd namespace of its own per Bulwark host ("bulwark-<host>" by
// default), so that simulated hosts sharing one containerd never see each
// other's containers. The container's labels (LabelWorkload, LabelEpoch,
// LabelHost) record the workload, the allocation epoch and the host: they
// let an agent that restarted find its tasks again with List, and tell
// Bulwark's containers from others, which the driver never touches.
//
// The task's stdout and stderr go to a file, <StateDir>/<workload>.log,
// written by containerd's shim itself: no FIFO ties the task to the agent,
// so tasks keep running while the agent is down, and a new agent (a new
// Driver) takes them over unchanged.
//
// The driver talks to containerd 1.6 or later through the v2 client; it
// uses Import and Pull, never the transfer service, which 1.6 lacks.
package containerd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// DriverName is the driver's registry name.
const DriverName = "containerd"

// Defaults for Config.
const (
	DefaultAddress     = "/run/containerd/containerd.sock"
	DefaultStateDir    = "/var/lib/bulwark/containerd"
	DefaultSnapshotter = "overlayfs"
	DefaultRuntime     = "io.containerd.runc.v2"
	// DefaultStopTimeout is how long Stop waits after SIGTERM when the
	// context has no deadline.
	DefaultStopTimeout = 10 * time.Second
)

// Container labels Bulwark sets.
const (
	LabelWorkload = "bulwark.io/workload"
	LabelEpoch    = "bulwark.io/epoch"
	LabelHost     = "bulwark.io/host"
	// LabelImage is the image as the spec gave it.
	LabelImage = "bulwark.io/image"
	// LabelExitCode is the exit code of the task Stop last removed.
	LabelExitCode = "bulwark.io/exit-code"
)

// ArchivePrefix marks Spec.Image as an OCI image archive on this host
// rather than a registry reference; see Driver.Start.
const ArchivePrefix = "oci-archive:"

// cpuPeriod is the CFS period; a workload's quota is CPUs × cpuPeriod.
const cpuPeriod = 100000

// cleanupTimeout bounds the calls that must run even after the caller's
// context has ended: the SIGKILL phase of Stop, Destroy, and undoing a
// failed Start.
const cleanupTimeout = 30 * time.Second

// ErrForeignContainer: a container has the ID Bulwark would use for a task
// but is not one this host's agent created (no Bulwark labels, or labels
// naming another host or workload). The driver never touches it.
var ErrForeignContainer = errors.New("container is not managed by this bulwark host")

// Config configures a Driver.
type Config struct {
	// Address is containerd's gRPC socket; empty means DefaultAddress.
	Address string
	// Namespace is the containerd namespace of this host's containers;
	// empty means "bulwark-" + Host. Give every host its own.
	Namespace string
	// Host is the Bulwark host name, recorded in every container's labels.
	Host string
	// StateDir is an absolute directory where each task's stdout and
	// stderr go, to <StateDir>/<workload>.log; empty means DefaultStateDir.
	// It is created if missing. Hosts sharing a machine need their own.
	StateDir string
	// Snapshotter is the containerd snapshotter for root file systems;
	// empty means DefaultSnapshotter.
	Snapshotter string
	// Runtime is the containerd runtime; empty means DefaultRuntime.
	Runtime string
	// PrivateNetwork gives each container a network namespace of its own
	// with only a loopback interface. By default containers share the
	// host's network namespace (and /etc/hosts and /etc/resolv.conf): the
	// driver sets up no container networking (no CNI), and floating IPs
	// live on the host.
	PrivateNetwork bool
	// Netns, if set, is a named network namespace (/var/run/netns/<Netns>)
	// the containers join instead of the host's: a simulated host's
	// network in `bulwarkd dev --netns`.
	Netns string
	// StopTimeout bounds Stop's wait after SIGTERM when the context has no
	// deadline; zero means DefaultStopTimeout.
	StopTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.Namespace == "" && c.Host != "" {
		c.Namespace = "bulwark-" + c.Host
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir
	}
	if c.Snapshotter == "" {
		c.Snapshotter = DefaultSnapshotter
	}
	if c.Runtime == "" {
		c.Runtime = DefaultRuntime
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = DefaultStopTimeout
	}
	return c
}

func (c Config) validate() error {
	if err := api.ValidateName("host", c.Host); err != nil {
		return err
	}
	if err := identifiers.Validate(c.Namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("state directory %q is not an absolute path", c.StateDir)
	}
	return nil
}

// Driver is a drivers.Driver backed by one containerd client, kept open for
// the Driver's lifetime. It is safe for concurrent use; operations on the
// same workload are serialised.
type Driver struct {
	cfg Config

	// mu guards c: every operation holds it for reading, Close for writing.
	mu sync.RWMutex
	c  *client.Client

	// importMu serialises archive imports: containerd names the ingests of
	// an archive's files after the files, so two imports at once collide.
	importMu sync.Mutex

	locks drivers.KeyedMutex
}

var (
	_ drivers.Driver = (*Driver)(nil)
	_ drivers.Logger = (*Driver)(nil)
	_ Importer       = (*Driver)(nil)
)

// Importer is the optional ability to load images from local archives.
type Importer interface {
	// ImportArchive imports the images of an image archive (OCI layout or
	// docker save format) and returns their names.
	ImportArchive(ctx context.Context, path string) ([]string, error)
}

// New validates cfg, connects to containerd and checks that it answers.
func New(cfg Config) (*Driver, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("containerd driver: %w", err)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return nil, fmt.Errorf("containerd driver: %w", err)
	}
	// A missing or dead socket fails here at once rather than after the
	// client's connection timeout.
	if err := dialable(cfg.Address); err != nil {
		return nil, fmt.Errorf("containerd driver: %s does not answer: %w", cfg.Address, err)
	}
	c, err := client.New(cfg.Address,
		client.WithDefaultNamespace(cfg.Namespace),
		client.WithDefaultRuntime(cfg.Runtime))
	if err != nil {
		return nil, fmt.Errorf("containerd driver: connect %s: %w", cfg.Address, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Version(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("containerd driver: %s does not answer: %w", cfg.Address, err)
	}
	return &Driver{cfg: cfg, c: c}, nil
}

// dialable checks that a unix socket address accepts connections; other
// addresses pass.
func dialable(address string) error {
	path, isUnix := strings.CutPrefix(address, "unix://")
	if !isUnix && !strings.HasPrefix(address, "/") {
		return nil
	}
	if !isUnix {
		path = address
	}
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Close closes the connection once the operations in progress have
// returned. Tasks keep running. Close is idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.c == nil {
		return nil
	}
	err := d.c.Close()
	d.c = nil
	if err != nil {
		return fmt.Errorf("containerd driver: close %s: %w", d.cfg.Address, err)
	}
	return nil
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return DriverName }

// Kinds implements drivers.Driver.
func (d *Driver) Kinds() []api.Kind { return []api.Kind{api.KindContainer} }

// Config returns the driver's configuration with defaults filled in.
func (d *Driver) Config() Config { return d.cfg }

// LogPath is where the workload's stdout and stderr go.
func (d *Driver) LogPath(workload string) string {
	return filepath.Join(d.cfg.StateDir, workload+".log")
}

// acquire returns the open client with the read lock held (release with
// d.mu.RUnlock) and ctx in the driver's namespace.
func (d *Driver) acquire(ctx context.Context) (*client.Client, context.Context, error) {
	d.mu.RLock()
	if d.c == nil {
		d.mu.RUnlock()
		return nil, ctx, errors.New("containerd driver is closed")
	}
	return d.c, namespaces.WithNamespace(ctx, d.cfg.Namespace), nil
}

// detached returns a context that outlives ctx's cancellation (keeping its
// values, the namespace among them), bounded by cleanupTimeout.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// Fingerprint implements drivers.Driver: the host's CPUs and memory, and
// containerd's version.
func (d *Driver) Fingerprint(ctx context.Context) (drivers.Fingerprint, error) {
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: %w", err)
	}
	defer d.mu.RUnlock()
	v, err := c.Version(ctx)
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: containerd version: %w", err)
	}
	mem, err := memTotal()
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: %w", err)
	}
	return drivers.Fingerprint{
		CPUs:   runtime.NumCPU(),
		Memory: mem,
		Detail: fmt.Sprintf("containerd %s (runc)", v.Version),
	}, nil
}

// memTotal reads MemTotal from /proc/meminfo.
func memTotal() (api.ByteSize, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			break
		}
		return api.ByteSize(kb) * api.KiB, nil
	}
	return 0, errors.New("/proc/meminfo: no MemTotal line in kB")
}

// Start implements drivers.Driver.
//
// If the workload's container exists at the task's epoch, Start makes sure
// its task runs (a running or paused task is left alone; a stopped one is
// removed and started anew in the same container and root file system).
// A container of another epoch is removed first, with its log. Otherwise
// Start creates the container from t.Spec; the spec of an epoch is fixed
// when its container is created.
//
// t.Spec.Image is either an image reference ("busybox:1.36",
// "registry.example/app@sha256:..."), used if containerd has it and pulled
// otherwise, or an OCI image archive on this host:
//
//	oci-archive:/abs/path/image.tar          the archive's first image
//	oci-archive:/abs/path/image.tar#name:tag the image of that name in it
//
// The archive is imported (see ImportArchive) each time a container is
// created from it. Both forms are checked before anything is touched.
func (d *Driver) Start(ctx context.Context, t drivers.Task) error {
	if err := api.ValidateName("workload", t.Workload); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	src, err := parseImage(t.Spec.Image)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	env, err := envList(t.Spec.Env)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	if t.Spec.CPUs < 0 || t.Spec.Memory < 0 {
		return fmt.Errorf("start %s: negative CPUs (%d) or memory (%d)", t.Workload, t.Spec.CPUs, t.Spec.Memory)
	}
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	defer d.mu.RUnlock()
	unlock, err := d.locks.Lock(ctx, t.Workload)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	defer unlock()

	ctr, meta, err := d.lookup(ctx, c, t.Workload)
	switch {
	case errors.Is(err, drivers.ErrNotFound):
	case err != nil:
		return fmt.Errorf("start %s: %w", t.Workload, err)
	case meta.Epoch == t.Epoch:
		if err := d.ensureRunning(ctx, ctr); err != nil {
			return fmt.Errorf("start %s: %w", t.Workload, err)
		}
		return nil
	default:
		// Another allocation's instance: it must be gone before this one runs.
		if err := d.remove(ctx, ctr); err != nil {
			return fmt.Errorf("start %s: replace epoch %d: %w", t.Workload, meta.Epoch, err)
		}
	}

	img, err := d.image(ctx, c, src)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	ctr, err = d.create(ctx, c, t, img, env)
	if err != nil {
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	if err := d.startTask(ctx, ctr); err != nil {
		// Undo the create, so that a retry starts from a clean slate and
		// List does not report a task that never ran.
		cctx, cancel := detached(ctx)
		defer cancel()
		if rerr := d.remove(cctx, ctr); rerr != nil {
			return fmt.Errorf("start %s: %w (and removing the container: %v)", t.Workload, err, rerr)
		}
		return fmt.Errorf("start %s: %w", t.Workload, err)
	}
	return nil
}

// ensureRunning starts the task of an existing container unless it runs.
func (d *Driver) ensureRunning(ctx context.Context, ctr client.Container) error {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return d.startTask(ctx, ctr)
	}
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return d.startTask(ctx, ctr)
		}
		return fmt.Errorf("task status: %w", err)
	}
	switch st.Status {
	case client.Running, client.Paused, client.Pausing:
		// A paused task still holds its resources: resuming it is an
		// operator's decision, as with libvirt.
		return nil
	case client.Created:
		// Created by a Start that did not get to start it.
		if err := task.Start(ctx); err != nil {
			return fmt.Errorf("start task: %w", readable(err))
		}
		return nil
	default:
		// Stopped (or unknown): a task cannot be restarted, only replaced.
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete old task: %w", err)
		}
		return d.startTask(ctx, ctr)
	}
}

// startTask creates the container's task, logging to its file, and
// starts it. A task that fails to start is deleted.
func (d *Driver) startTask(ctx context.Context, ctr client.Container) error {
	task, err := ctr.NewTask(ctx, cio.LogFile(d.LogPath(ctr.ID())))
	if err != nil {
		return fmt.Errorf("create task: %w", readable(err))
	}
	if err := task.Start(ctx); err != nil {
		cctx, cancel := detached(ctx)
		defer cancel()
		if _, derr := task.Delete(cctx, client.WithProcessKill); derr != nil && !errdefs.IsNotFound(derr) {
			return fmt.Errorf("start task: %w (and deleting it: %v)", readable(err), derr)
		}
		return fmt.Errorf("start task: %w", readable(err))
	}
	return nil
}

// create makes the workload's container: a fresh snapshot of img and an
// OCI spec from the task's spec.
func (d *Driver) create(ctx context.Context, c *client.Client, t drivers.Task, img client.Image, env []string) (client.Container, error) {
	specOpts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithHostname(t.Workload),
	}
	if len(t.Spec.Command) > 0 {
		specOpts = append(specOpts, oci.WithProcessArgs(t.Spec.Command...))
	}
	if len(env) > 0 {
		specOpts = append(specOpts, oci.WithEnv(env))
	}
	if t.Spec.Memory > 0 {
		specOpts = append(specOpts, oci.WithMemoryLimit(uint64(t.Spec.Memory)))
	}
	if t.Spec.CPUs > 0 {
		specOpts = append(specOpts,
			oci.WithCPUCFS(int64(t.Spec.CPUs)*cpuPeriod, cpuPeriod),
			oci.WithCPUShares(uint64(t.Spec.CPUs)*1024))
	}
	switch {
	case d.cfg.Netns != "":
		specOpts = append(specOpts,
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/var/run/netns/" + d.cfg.Netns}),
			oci.WithHostHostsFile,
			oci.WithHostResolvconf)
	case !d.cfg.PrivateNetwork:
		specOpts = append(specOpts,
			oci.WithHostNamespace(specs.NetworkNamespace),
			oci.WithHostHostsFile,
			oci.WithHostResolvconf)
	}
	if len(t.Mounts) > 0 {
		var ms []specs.Mount
		for _, m := range t.Mounts {
			opts := []string{"rbind", "rw"}
			if m.ReadOnly {
				opts = []string{"rbind", "ro"}
			}
			ms = append(ms, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: opts})
		}
		specOpts = append(specOpts, oci.WithMounts(ms))
	}
	labels := map[string]string{
		LabelWorkload: t.Workload,
		LabelEpoch:    strconv.FormatInt(t.Epoch, 10),
		LabelHost:     d.cfg.Host,
		LabelImage:    t.Spec.Image,
	}
	// The container does not exist (the caller checked, under the
	// workload's lock), so a snapshot with its key is a leftover of a
	// create that failed half-way.
	snapKey := t.Workload
	if err := c.SnapshotService(d.cfg.Snapshotter).Remove(ctx, snapKey); err != nil && !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("remove leftover snapshot %s: %w", snapKey, err)
	}
	ctr, err := c.NewContainer(ctx, t.Workload,
		client.WithContainerLabels(labels),
		client.WithImageName(img.Name()),
		client.WithSnapshotter(d.cfg.Snapshotter),
		client.WithNewSnapshot(snapKey, img),
		client.WithRuntime(d.cfg.Runtime, nil),
		client.WithNewSpec(specOpts...))
	if err != nil {
		return nil, fmt.Errorf("create container: %w", readable(err))
	}
	return ctr, nil
}

// imageSource is a parsed Spec.Image.
type imageSource struct {
	// archive is the absolute path of an image archive, or "".
	archive string
	// ref is a normalized reference (docker.io/library/busybox:latest);
	// with an archive, "" means its first image.
	ref string
	// given is Spec.Image as written.
	given string
}

// parseImage checks Spec.Image; see Start for the forms it takes.
func parseImage(s string) (imageSource, error) {
	src := imageSource{given: s}
	if s == "" {
		return src, errors.New("no image given")
	}
	rest, isArchive := strings.CutPrefix(s, ArchivePrefix)
	if !isArchive {
		ref, err := normalizeRef(s)
		if err != nil {
			return src, err
		}
		src.ref = ref
		return src, nil
	}
	path, ref := rest, ""
	if i := strings.LastIndexByte(rest, '#'); i >= 0 {
		path, ref = rest[:i], rest[i+1:]
		if ref == "" {
			return src, fmt.Errorf("image %q: empty image name after '#'", s)
		}
	}
	if !filepath.IsAbs(path) {
		return src, fmt.Errorf("image archive path %q in %q is not absolute", path, s)
	}
	src.archive = filepath.Clean(path)
	if ref != "" {
		n, err := normalizeRef(ref)
		if err != nil {
			return src, err
		}
		src.ref = n
	}
	return src, nil
}

// normalizeRef parses an image reference the way docker and nerdctl do
// ("busybox" is docker.io/library/busybox:latest).
func normalizeRef(s string) (string, error) {
	named, err := reference.ParseDockerRef(s)
	if err != nil {
		return "", fmt.Errorf("image reference %q cannot be parsed: %w", s, err)
	}
	return named.String(), nil
}

// image returns the (unpacked) image src names, importing or pulling it.
func (d *Driver) image(ctx context.Context, c *client.Client, src imageSource) (client.Image, error) {
	var (
		img client.Image
		err error
	)
	switch {
	case src.archive != "":
		img, err = d.imageFromArchive(ctx, c, src)
		if err != nil {
			return nil, err
		}
	default:
		img, err = c.GetImage(ctx, src.ref)
		if errdefs.IsNotFound(err) {
			img, err = c.Pull(ctx, src.ref,
				client.WithPullUnpack,
				client.WithPullSnapshotter(d.cfg.Snapshotter))
			if err != nil {
				return nil, fmt.Errorf("image %s not found locally and pull failed: %w", src.given, err)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", src.given, err)
		}
	}
	unpacked, err := img.IsUnpacked(ctx, d.cfg.Snapshotter)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", img.Name(), err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, d.cfg.Snapshotter); err != nil {
			return nil, fmt.Errorf("unpack image %s: %w", img.Name(), err)
		}
	}
	return img, nil
}

// imageFromArchive imports src's archive and returns the image src names.
func (d *Driver) imageFromArchive(ctx context.Context, c *client.Client, src imageSource) (client.Image, error) {
	names, err := d.importArchive(ctx, c, src.archive)
	if err != nil {
		return nil, err
	}
	name := names[0]
	if src.ref != "" {
		name = ""
		for _, n := range names {
			if n == src.ref {
				name = n
				break
			}
			if norm, err := normalizeRef(n); err == nil && norm == src.ref {
				name = n
				break
			}
		}
		if name == "" {
			return nil, fmt.Errorf("image archive %s has no image %s (it has %s)", src.archive, src.ref, strings.Join(names, ", "))
		}
	}
	img, err := c.GetImage(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("image %s imported from %s: %w", name, src.archive, err)
	}
	return img, nil
}

// ImportArchive imports the images of an image archive on this host (an
// OCI image layout in a tar, or `docker save` output) into the driver's
// namespace and returns their names, in the archive's order. An image is
// named after its index entry's io.containerd.image.name annotation, or
// else its org.opencontainers.image.ref.name; an archive without named
// images is an error. The images are not unpacked until a container uses
// them.
func (d *Driver) ImportArchive(ctx context.Context, path string) ([]string, error) {
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("import %s: %w", path, err)
	}
	defer d.mu.RUnlock()
	return d.importArchive(ctx, c, path)
}

func (d *Driver) importArchive(ctx context.Context, c *client.Client, path string) ([]string, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("image archive path %q is not absolute", path)
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("image archive %s does not exist", path)
		}
		return nil, fmt.Errorf("image archive: %w", err)
	}
	defer f.Close()
	d.importMu.Lock()
	defer d.importMu.Unlock()
	imgs, err := c.Import(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("import image archive %s: %w", path, err)
	}
	var names []string
	for _, img := range imgs {
		if !slices.Contains(names, img.Name) {
			names = append(names, img.Name)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("image archive %s holds no named image (no io.containerd.image.name or org.opencontainers.image.ref.name annotation)", path)
	}
	return names, nil
}

// envList turns the spec's environment into sorted KEY=value strings.
func envList(env map[string]string) ([]string, error) {
	out := make([]string, 0, len(env))
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("environment variable %q: a name must be non-empty without '=' or NUL, a value without NUL", k)
		}
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out, nil
}

// Inspect implements drivers.Driver. It does not wait for a Start, Stop or
// Destroy of the same workload in progress.
//
// States: running (Detail "pid N", or "paused, pid N"); stopped when the
// task exited with code 0, was stopped by Stop, or never ran; failed when
// it exited with another code. Detail then gives the exit code.
func (d *Driver) Inspect(ctx context.Context, workload string) (drivers.Status, error) {
	if err := api.ValidateName("workload", workload); err != nil {
		return drivers.Status{}, fmt.Errorf("inspect: %w", err)
	}
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return drivers.Status{}, fmt.Errorf("inspect %s: %w", workload, err)
	}
	defer d.mu.RUnlock()
	ctr, meta, err := d.lookup(ctx, c, workload)
	if err != nil {
		return drivers.Status{}, fmt.Errorf("inspect %s: %w", workload, err)
	}
	st, err := status(ctx, ctr, meta)
	if err != nil {
		return drivers.Status{}, fmt.Errorf("inspect %s: %w", workload, err)
	}
	return st, nil
}

// PID returns the pid (in the host's pid namespace) of the init process of
// the workload's running (or paused) task. drivers.ErrNotFound if the
// workload has no container, or its task has exited or was stopped.
func (d *Driver) PID(ctx context.Context, workload string) (uint32, error) {
	if err := api.ValidateName("workload", workload); err != nil {
		return 0, fmt.Errorf("pid: %w", err)
	}
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("pid %s: %w", workload, err)
	}
	defer d.mu.RUnlock()
	ctr, _, err := d.lookup(ctx, c, workload)
	if err != nil {
		return 0, fmt.Errorf("pid %s: %w", workload, err)
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("pid %s: no task: %w", workload, drivers.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("pid %s: %w", workload, err)
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return 0, fmt.Errorf("pid %s: no task: %w", workload, drivers.ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("pid %s: task status: %w", workload, err)
	}
	if st.Status != client.Running && st.Status != client.Paused && st.Status != client.Pausing {
		return 0, fmt.Errorf("pid %s: task is %s: %w", workload, st.Status, drivers.ErrNotFound)
	}
	return task.Pid(), nil
}

// List implements drivers.Driver. It reports the containers of the
// driver's namespace whose labels name this host and a workload equal to
// the container's ID.
func (d *Driver) List(ctx context.Context) ([]drivers.Status, error) {
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer d.mu.RUnlock()
	ctrs, err := c.Containers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	var out []drivers.Status
	for _, ctr := range ctrs {
		info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
		if err != nil {
			return nil, fmt.Errorf("list: %s: %w", ctr.ID(), err)
		}
		meta, err := d.readMeta(info.ID, info.Labels)
		if err != nil {
			continue // not ours
		}
		st, err := status(ctx, ctr, meta)
		if err != nil {
			if errdefs.IsNotFound(err) {
				continue // removed since the listing
			}
			return nil, fmt.Errorf("list: %s: %w", ctr.ID(), err)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b drivers.Status) int { return strings.Compare(a.Workload, b.Workload) })
	return out, nil
}

// Stop implements drivers.Driver: SIGTERM to the task, SIGKILL if it has
// not exited by the context's deadline (or, without one, after
// Config.StopTimeout); a cancelled or expired context ends the grace
// period, and Stop still kills the task. The task is then deleted (its
// exit code is kept in the container's LabelExitCode label); the
// container, its root file system and its log stay.
func (d *Driver) Stop(ctx context.Context, workload string) error {
	if err := api.ValidateName("workload", workload); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return fmt.Errorf("stop %s: %w", workload, err)
	}
	defer d.mu.RUnlock()
	unlock, err := d.locks.Lock(ctx, workload)
	if err != nil {
		return fmt.Errorf("stop %s: %w", workload, err)
	}
	defer unlock()

	grace := ctx
	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		grace, cancel = context.WithTimeout(ctx, d.cfg.StopTimeout)
		defer cancel()
	}
	// Every call must run to its end even when the grace period is over.
	bound := cleanupTimeout
	if dl, ok := grace.Deadline(); ok {
		bound += time.Until(dl)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bound)
	defer cancel()

	ctr, _, err := d.lookup(ctx, c, workload)
	if err != nil {
		return fmt.Errorf("stop %s: %w", workload, err)
	}
	if err := stopTask(ctx, grace, ctr); err != nil {
		return fmt.Errorf("stop %s: %w", workload, err)
	}
	return nil
}

// stopTask ends ctr's task gracefully if it exits before grace is done,
// forcibly if not, deletes it and records its exit code. No task is fine.
// ctx bounds the calls.
func stopTask(ctx, grace context.Context, ctr client.Container) error {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load task: %w", err)
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("task status: %w", err)
	}
	if st.Status == client.Paused || st.Status == client.Pausing {
		// A frozen process acts on no signal.
		if err := task.Resume(ctx); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("resume paused task: %w", err)
		}
	}
	if st.Status != client.Stopped {
		exited, err := waitExit(ctx, task)
		if err != nil {
			return err
		}
		// A created task has not run its process yet: nothing to ask.
		graceful := st.Status != client.Created && grace.Err() == nil
		if graceful {
			if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !gone(err) {
				graceful = false
			}
		}
		if graceful {
			select {
			case <-exited:
			case <-grace.Done():
				graceful = false
			}
		}
		if !graceful {
			if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !gone(err) {
				return fmt.Errorf("kill task: %w", err)
			}
			select {
			case <-exited:
			case <-ctx.Done():
				return fmt.Errorf("task did not exit after SIGKILL: %w", ctx.Err())
			}
		}
	}
	es, err := task.Delete(ctx, client.WithProcessKill)
	if err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete task: %w", err)
	}
	if es != nil {
		if _, err := ctr.SetLabels(ctx, map[string]string{LabelExitCode: strconv.FormatUint(uint64(es.ExitCode()), 10)}); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("record exit code: %w", err)
		}
	}
	return nil
}

// waitExit returns a channel closed when task has exited. It waits with
// containerd's Wait, asking again if that call fails short of ctx's end
// (the connection dropped), and falls back to polling the task's status.
func waitExit(ctx context.Context, task client.Task) (<-chan struct{}, error) {
	ch, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait for task: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case es, ok := <-ch:
				if ok && es.Error() == nil {
					return
				}
			case <-ctx.Done():
				return
			}
			// Wait failed: check the status, then wait again.
			st, err := task.Status(ctx)
			if errdefs.IsNotFound(err) || (err == nil && st.Status == client.Stopped) {
				return
			}
			if ctx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			if ch, err = task.Wait(ctx); err != nil {
				return
			}
		}
	}()
	return done, nil
}

// gone reports a kill that found no process: it has exited already.
func gone(err error) bool {
	return errdefs.IsNotFound(err) || strings.Contains(err.Error(), "process already finished")
}

// Destroy implements drivers.Driver: it kills the task, deletes it, the
// container, its root file system snapshot and its log. A missing
// container is not an error; a foreign one is (ErrForeignContainer) and is
// left alone. It runs to its end (bounded by cleanupTimeout) even if ctx
// is already over.
func (d *Driver) Destroy(ctx context.Context, workload string) error {
	if err := api.ValidateName("workload", workload); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	c, ctx, err := d.acquire(ctx)
	if err != nil {
		return fmt.Errorf("destroy %s: %w", workload, err)
	}
	defer d.mu.RUnlock()
	unlock, err := d.locks.Lock(ctx, workload)
	if err != nil {
		return fmt.Errorf("destroy %s: %w", workload, err)
	}
	defer unlock()
	ctx, cancel := detached(ctx)
	defer cancel()

	ctr, _, err := d.lookup(ctx, c, workload)
	switch {
	case errors.Is(err, drivers.ErrNotFound):
		if err := removeLog(d.LogPath(workload)); err != nil {
			return fmt.Errorf("destroy %s: %w", workload, err)
		}
	case err != nil:
		return fmt.Errorf("destroy %s: %w", workload, err)
	default:
		if err := d.remove(ctx, ctr); err != nil {
			return fmt.Errorf("destroy %s: %w", workload, err)
		}
	}
	return nil
}

// remove kills and deletes ctr's task, deletes ctr with its snapshot, and
// removes its log. Whatever vanishes on the way counts as removed.
func (d *Driver) remove(ctx context.Context, ctr client.Container) error {
	ctx, cancel := detached(ctx)
	defer cancel()
	task, err := ctr.Task(ctx, nil)
	switch {
	case errdefs.IsNotFound(err):
	case err != nil:
		return fmt.Errorf("load task: %w", err)
	default:
		if st, err := task.Status(ctx); err == nil && (st.Status == client.Paused || st.Status == client.Pausing) {
			_ = task.Resume(ctx)
		}
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container: %w", err)
	}
	return removeLog(d.LogPath(ctr.ID()))
}

func removeLog(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove log: %w", err)
	}
	return nil
}

// Logs implements drivers.Logger: it opens the workload's log file (stdout
// and stderr of its tasks, appended across restarts of the same epoch,
// started afresh by a new epoch); drivers.ErrNotFound if there is none.
// Reading past the end and again later follows the file. The caller
// closes it.
func (d *Driver) Logs(ctx context.Context, workload string) (io.ReadCloser, error) {
	if err := api.ValidateName("workload", workload); err != nil {
		return nil, fmt.Errorf("logs: %w", err)
	}
	f, err := os.Open(d.LogPath(workload))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("logs %s: %w", workload, drivers.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("logs %s: %w", workload, err)
	}
	return f, nil
}

// instanceMeta is what a container's labels say.
type instanceMeta struct {
	Workload string
	Epoch    int64
	Host     string
	ExitCode string
}

// lookup finds the workload's container and checks that it is this
// host's.
func (d *Driver) lookup(ctx context.Context, c *client.Client, workload string) (client.Container, instanceMeta, error) {
	ctr, err := c.LoadContainer(ctx, workload)
	if errdefs.IsNotFound(err) {
		return nil, instanceMeta{}, drivers.ErrNotFound
	}
	if err != nil {
		return nil, instanceMeta{}, fmt.Errorf("load container: %w", err)
	}
	info, err := ctr.Info(ctx, client.WithoutRefreshedMetadata)
	if err != nil {
		return nil, instanceMeta{}, fmt.Errorf("container info: %w", err)
	}
	meta, err := d.readMeta(workload, info.Labels)
	if err != nil {
		return nil, instanceMeta{}, err
	}
	return ctr, meta, nil
}

// readMeta reads Bulwark's labels of container id and checks that they
// name this host and the workload id.
func (d *Driver) readMeta(id string, labels map[string]string) (instanceMeta, error) {
	m := instanceMeta{
		Workload: labels[LabelWorkload],
		Host:     labels[LabelHost],
		ExitCode: labels[LabelExitCode],
	}
	epoch, ok := labels[LabelEpoch]
	if !ok || m.Workload == "" || m.Host == "" {
		return m, fmt.Errorf("%w: container %s has no bulwark labels", ErrForeignContainer, id)
	}
	e, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return m, fmt.Errorf("%w: container %s: epoch label %q: %v", ErrForeignContainer, id, epoch, err)
	}
	m.Epoch = e
	if m.Host != d.cfg.Host || m.Workload != id {
		return m, fmt.Errorf("%w: container %s: its labels name host %q, workload %q", ErrForeignContainer, id, m.Host, m.Workload)
	}
	return m, nil
}

// status maps a container and its task to a drivers.Status.
func status(ctx context.Context, ctr client.Container, meta instanceMeta) (drivers.Status, error) {
	st := drivers.Status{Workload: meta.Workload, Epoch: meta.Epoch, ID: ctr.ID()}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		st.State = drivers.TaskStopped
		st.Detail = "not running"
		if meta.ExitCode != "" {
			st.Detail = "stopped, " + exitDetail(meta.ExitCode)
		}
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("load task: %w", err)
	}
	ts, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		st.State, st.Detail = drivers.TaskStopped, "not running"
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("task status: %w", err)
	}
	pid := task.Pid()
	switch ts.Status {
	case client.Running:
		st.State, st.Detail = drivers.TaskRunning, fmt.Sprintf("pid %d", pid)
	case client.Paused, client.Pausing:
		st.State, st.Detail = drivers.TaskRunning, fmt.Sprintf("paused, pid %d", pid)
	case client.Created:
		st.State, st.Detail = drivers.TaskStopped, "created, not started"
	case client.Stopped:
		st.State = drivers.TaskStopped
		if ts.ExitStatus != 0 {
			st.State = drivers.TaskFailed
		}
		st.Detail = exitDetail(strconv.FormatUint(uint64(ts.ExitStatus), 10))
	default:
		st.State, st.Detail = drivers.TaskUnknown, fmt.Sprintf("task status %q", ts.Status)
	}
	return st, nil
}

// exitDetail describes an exit code, naming the signal of codes 129-159.
func exitDetail(code string) string {
	s := "exit code " + code
	if n, err := strconv.Atoi(code); err == nil && n > 128 && n < 160 {
		s += fmt.Sprintf(" (%s)", strings.ToUpper(signalName(syscall.Signal(n-128))))
	}
	return s
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGKILL:
		return "sigkill"
	case syscall.SIGTERM:
		return "sigterm"
	case syscall.SIGINT:
		return "sigint"
	case syscall.SIGHUP:
		return "sighup"
	case syscall.SIGSEGV:
		return "sigsegv"
	case syscall.SIGABRT:
		return "sigabrt"
	default:
		return "signal " + strconv.Itoa(int(sig))
	}
}

// readable drops the ": unknown" that containerd appends to runtime
// errors (their gRPC code), keeping the error for errors.Is and errdefs.
func readable(err error) error {
	if msg, ok := strings.CutSuffix(err.Error(), ": unknown"); ok {
		return readableError{msg: msg, err: err}
	}
	return err
}

type readableError struct {
	msg string
	err error
}

func (e readableError) Error() string { return e.msg }
func (e readableError) Unwrap() error { return e.err }
