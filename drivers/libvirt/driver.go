// Package libvirt runs VM workloads as libvirt domains.
//
// Each task is one persistent domain named bulwark-<host>-<workload>, whose
// <metadata> holds a Bulwark element (see MetadataNamespace) with the
// workload, the allocation epoch and the host. The name keeps simulated hosts
// that share one libvirtd apart; the metadata lets an agent that restarted
// find its tasks again with List, and tells Bulwark's domains from others.
//
// The driver works against any libvirt URI. With the test driver
// (test:///abs/path/host.xml, see WriteTestHostXML) every connection gets a
// private, in-memory copy of the host: nothing survives the Driver's Close,
// and a second Driver on the same URI sees none of the first one's domains.
package libvirt

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	golibvirt "libvirt.org/go/libvirt"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// DriverName is the driver's registry name.
const DriverName = "libvirt"

// DefaultShutdownTimeout is how long Stop waits for a guest to power off
// after the shutdown request when the context has no deadline.
const DefaultShutdownTimeout = time.Minute

// pollInterval is how often Stop checks whether a guest has powered off.
const pollInterval = 100 * time.Millisecond

// ErrForeignDomain: a domain has the name Bulwark would use for a task but
// is not one this host's agent defined (no Bulwark metadata, or metadata
// naming another host or workload). The driver never touches such a domain.
var ErrForeignDomain = errors.New("domain is not managed by this bulwark host")

// Config configures a Driver.
type Config struct {
	// URI is the libvirt connection URI, e.g. "qemu:///system" or
	// "test:///abs/path/host.xml".
	URI string
	// Host is the Bulwark host name; it is part of every domain name.
	Host string
	// DomainType is "kvm", "qemu" or "test". Empty: "test" for a test://
	// URI; otherwise New detects it: "kvm" when the host can run KVM guests
	// (see detectDomainType), "qemu" (software emulation, much slower) when
	// it cannot, and Fingerprint's detail says which and why.
	DomainType string
	// Emulator is the emulator binary; empty lets libvirt choose.
	Emulator string
	// ConsoleLogDir, if set, is an absolute directory where each guest's
	// serial console is logged, to <dir>/<domain name>.log (see ConsoleLog).
	// It is created if missing. Empty: the console is only on a pty.
	ConsoleLogDir string
	// ShutdownTimeout bounds Stop's wait for a graceful power-off when the
	// context has no deadline. Zero means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
}

// Driver is a drivers.Driver backed by one libvirt connection, kept open for
// the Driver's lifetime. It is safe for concurrent use; operations on the same
// workload are serialised.
type Driver struct {
	cfg Config

	// mu guards conn: every operation holds it for reading, Close for writing,
	// so the connection is never closed under a running call.
	mu   sync.RWMutex
	conn *golibvirt.Connect

	// typeNote says how the domain type was chosen when New detected it.
	typeNote string
	// local: the URI names this machine, so paths and bridges in a spec can
	// be checked here before libvirt is asked to start a guest.
	local bool

	locks drivers.KeyedMutex
}

var _ drivers.Driver = (*Driver)(nil)

// New validates cfg, opens the connection and, when cfg leaves the domain
// type empty on a hypervisor URI, detects it.
func New(cfg Config) (*Driver, error) {
	if cfg.URI == "" {
		return nil, errors.New("libvirt driver: URI is empty")
	}
	detect := cfg.DomainType == "" && !isTestURI(cfg.URI)
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("libvirt driver: %w", err)
	}
	local, err := isLocalURI(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("libvirt driver: %w", err)
	}
	conn, err := golibvirt.NewConnect(cfg.URI)
	if err != nil {
		return nil, fmt.Errorf("libvirt driver: connect %s: %w", cfg.URI, err)
	}
	d := &Driver{cfg: cfg, conn: conn, local: local}
	if detect {
		typ, note, err := detectDomainType(conn, local)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("libvirt driver: %s: detect domain type: %w", cfg.URI, err)
		}
		d.cfg.DomainType, d.typeNote = typ, note
	}
	return d, nil
}

// Close closes the connection once the operations in progress have
// returned (a Stop may wait out its grace period). With the test driver this
// discards the simulated host's state. Close is idempotent.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conn == nil {
		return nil
	}
	_, err := d.conn.Close()
	d.conn = nil
	if err != nil {
		return fmt.Errorf("libvirt driver: close %s: %w", d.cfg.URI, err)
	}
	return nil
}

// Name implements drivers.Driver.
func (d *Driver) Name() string { return DriverName }

// Kinds implements drivers.Driver.
func (d *Driver) Kinds() []api.Kind { return []api.Kind{api.KindVM} }

// Config returns the driver's configuration with defaults filled in.
func (d *Driver) Config() Config { return d.cfg }

// acquire returns the open connection with the read lock held; release with
// d.mu.RUnlock.
func (d *Driver) acquire() (*golibvirt.Connect, error) {
	d.mu.RLock()
	if d.conn == nil {
		d.mu.RUnlock()
		return nil, errors.New("libvirt driver is closed")
	}
	return d.conn, nil
}

// Fingerprint implements drivers.Driver.
func (d *Driver) Fingerprint(ctx context.Context) (drivers.Fingerprint, error) {
	conn, err := d.acquire()
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: %w", err)
	}
	defer d.mu.RUnlock()
	info, err := conn.GetNodeInfo()
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: node info: %w", err)
	}
	typ, err := conn.GetType()
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: hypervisor type: %w", err)
	}
	libVer, err := conn.GetLibVersion()
	if err != nil {
		return drivers.Fingerprint{}, fmt.Errorf("fingerprint: libvirt version: %w", err)
	}
	detail := fmt.Sprintf("libvirt %s %s", strings.ToLower(typ), formatVersion(libVer))
	// Not every driver reports a hypervisor version; it is a detail.
	if hvVer, err := conn.GetVersion(); err == nil && hvVer > 0 {
		detail += fmt.Sprintf(" (hypervisor %s)", formatVersion(hvVer))
	}
	if d.cfg.DomainType != DomainTypeTest {
		detail += ", domain type " + d.cfg.DomainType
		if d.typeNote != "" {
			detail += " (" + d.typeNote + ")"
		}
	}
	return drivers.Fingerprint{
		CPUs:   int(info.Cpus),
		Memory: api.ByteSize(info.Memory) * api.KiB,
		Detail: detail,
	}, nil
}

// formatVersion turns libvirt's major*1,000,000 + minor*1,000 + micro into
// "major.minor.micro".
func formatVersion(v uint32) string {
	return fmt.Sprintf("%d.%d.%d", v/1000000, v/1000%1000, v%1000)
}

// Start implements drivers.Driver.
func (d *Driver) Start(ctx context.Context, t drivers.Task) error {
	xmlDoc, err := RenderDomain(d.cfg, t)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	name := domainName(d.cfg.Host, t.Workload)
	conn, err := d.acquire()
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	defer d.mu.RUnlock()
	unlock, err := d.locks.Lock(ctx, t.Workload)
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	defer unlock()

	dom, meta, err := d.lookup(conn, t.Workload)
	switch {
	case errors.Is(err, drivers.ErrNotFound):
	case err != nil:
		return fmt.Errorf("start %s: %w", name, err)
	case meta.Epoch == t.Epoch:
		defer dom.Free()
		if active, err := dom.IsActive(); err == nil && active {
			return nil
		}
		if err := d.preflight(t.Spec.VM); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		return ensureRunning(dom, name)
	default:
		// Another allocation's instance: it must be gone before this one runs.
		err := removeDomain(dom)
		dom.Free()
		if err != nil {
			return fmt.Errorf("start %s: replace epoch %d: %w", name, meta.Epoch, err)
		}
	}

	// Find missing files and bridges here, with a plain message, rather than
	// from QEMU's failure to start; nothing is defined if they are missing.
	if err := d.preflight(t.Spec.VM); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	dom, err = conn.DomainDefineXML(xmlDoc)
	if err != nil {
		return fmt.Errorf("start %s: define: %w", name, err)
	}
	defer dom.Free()
	if err := dom.Create(); err != nil {
		err = readableError(err)
		// Undo the define, so that a retry starts from a clean slate and List
		// does not report a task that never ran.
		if uerr := undefine(dom); uerr != nil {
			return fmt.Errorf("start %s: boot: %w (and undefine: %v)", name, err, uerr)
		}
		return fmt.Errorf("start %s: boot: %w", name, err)
	}
	return nil
}

// libvirtError shows only the message of a libvirt error, which is what a
// user reads as the reason a workload failed (e.g. QEMU's "Image is not in
// qcow2 format"), and still matches libvirt's error codes with errors.Is.
type libvirtError struct{ err golibvirt.Error }

func (e libvirtError) Error() string { return e.err.Message }
func (e libvirtError) Unwrap() error { return e.err }

// readableError wraps a libvirt error as a libvirtError; others pass.
func readableError(err error) error {
	var lerr golibvirt.Error
	if errors.As(err, &lerr) && lerr.Message != "" {
		return libvirtError{lerr}
	}
	return err
}

// ensureRunning boots dom unless it is active. A paused domain counts as
// running (as in Inspect); resuming it is an operator's decision.
func ensureRunning(dom *golibvirt.Domain, name string) error {
	active, err := dom.IsActive()
	if err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	if active {
		return nil
	}
	if err := dom.Create(); err != nil {
		// It may have been started by someone else in the meantime.
		if active, aerr := dom.IsActive(); aerr == nil && active {
			return nil
		}
		return fmt.Errorf("start %s: boot: %w", name, readableError(err))
	}
	return nil
}

// Inspect implements drivers.Driver. It does not wait for a Start, Stop or
// Destroy of the same workload in progress (a Stop may take its whole grace
// period), so while Start replaces an older epoch it can briefly report
// ErrNotFound.
func (d *Driver) Inspect(ctx context.Context, workload string) (drivers.Status, error) {
	if err := api.ValidateName("workload", workload); err != nil {
		return drivers.Status{}, fmt.Errorf("inspect: %w", err)
	}
	name := domainName(d.cfg.Host, workload)
	conn, err := d.acquire()
	if err != nil {
		return drivers.Status{}, fmt.Errorf("inspect %s: %w", name, err)
	}
	defer d.mu.RUnlock()
	dom, meta, err := d.lookup(conn, workload)
	if err != nil {
		return drivers.Status{}, fmt.Errorf("inspect %s: %w", name, err)
	}
	defer dom.Free()
	st, err := status(dom, meta)
	if err != nil {
		if isNoDomain(err) {
			err = drivers.ErrNotFound
		}
		return drivers.Status{}, fmt.Errorf("inspect %s: %w", name, err)
	}
	return st, nil
}

// List implements drivers.Driver. It reports only domains named for this
// host whose Bulwark metadata names this host and the matching workload.
func (d *Driver) List(ctx context.Context) ([]drivers.Status, error) {
	conn, err := d.acquire()
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer d.mu.RUnlock()
	doms, err := conn.ListAllDomains(0)
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	defer func() {
		for i := range doms {
			doms[i].Free()
		}
	}()
	prefix := namePrefix + d.cfg.Host + "-"
	var out []drivers.Status
	for i := range doms {
		dom := &doms[i]
		name, err := dom.GetName()
		if err != nil {
			if isNoDomain(err) {
				continue // undefined since the listing
			}
			return nil, fmt.Errorf("list: %w", err)
		}
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		meta, err := readMeta(dom)
		if err != nil {
			if isNoDomain(err) || errors.Is(err, ErrForeignDomain) {
				continue
			}
			return nil, fmt.Errorf("list: %s: %w", name, err)
		}
		if meta.Host != d.cfg.Host || domainName(meta.Host, meta.Workload) != name {
			continue
		}
		st, err := status(dom, meta)
		if err != nil {
			if isNoDomain(err) {
				continue
			}
			return nil, fmt.Errorf("list: %s: %w", name, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// Stop implements drivers.Driver: it asks the guest to power off and
// destroys it if it has not by the context's deadline (or, without one,
// after Config.ShutdownTimeout), or if the shutdown request fails. A
// cancelled context also ends the grace period. The domain stays defined.
func (d *Driver) Stop(ctx context.Context, workload string) error {
	if err := api.ValidateName("workload", workload); err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	name := domainName(d.cfg.Host, workload)
	conn, err := d.acquire()
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer d.mu.RUnlock()
	unlock, err := d.locks.Lock(ctx, workload)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer unlock()

	dom, _, err := d.lookup(conn, workload)
	if err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	defer dom.Free()

	if _, hasDeadline := ctx.Deadline(); !hasDeadline {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.cfg.ShutdownTimeout)
		defer cancel()
	}
	if err := shutdown(ctx, dom); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// shutdown powers dom off gracefully if it can within ctx, forcibly if not.
func shutdown(ctx context.Context, dom *golibvirt.Domain) error {
	active, err := dom.IsActive()
	if err != nil || !active {
		return err
	}
	if err := dom.Shutdown(); err != nil {
		// It may have stopped by itself meanwhile (libvirt reports that as an
		// error); otherwise the guest cannot be asked (no agent, no ACPI...),
		// so go straight to force.
		if active, aerr := dom.IsActive(); aerr == nil && !active {
			return nil
		}
		return destroyActive(dom)
	}
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		active, err := dom.IsActive()
		if err != nil {
			return err
		}
		if !active {
			return nil
		}
		select {
		case <-ctx.Done():
			return destroyActive(dom)
		case <-ticker.C:
		}
	}
}

// destroyActive powers dom off at once; a domain already off is fine.
func destroyActive(dom *golibvirt.Domain) error {
	if err := dom.Destroy(); err != nil {
		if active, aerr := dom.IsActive(); aerr == nil && !active {
			return nil
		}
		return fmt.Errorf("destroy: %w", err)
	}
	return nil
}

// Destroy implements drivers.Driver. A missing domain is not an error; a
// foreign one is (ErrForeignDomain) and is left alone.
func (d *Driver) Destroy(ctx context.Context, workload string) error {
	if err := api.ValidateName("workload", workload); err != nil {
		return fmt.Errorf("destroy: %w", err)
	}
	name := domainName(d.cfg.Host, workload)
	conn, err := d.acquire()
	if err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	defer d.mu.RUnlock()
	unlock, err := d.locks.Lock(ctx, workload)
	if err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	defer unlock()

	dom, _, err := d.lookup(conn, workload)
	switch {
	case errors.Is(err, drivers.ErrNotFound):
	case err != nil:
		return fmt.Errorf("destroy %s: %w", name, err)
	default:
		err := removeDomain(dom)
		dom.Free()
		if err != nil {
			return fmt.Errorf("destroy %s: %w", name, err)
		}
	}
	if err := removeConsoleLogs(consoleLogPath(d.cfg.ConsoleLogDir, name)); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	return nil
}

// removeDomain powers dom off and undefines it; a domain that vanishes on
// the way counts as removed.
func removeDomain(dom *golibvirt.Domain) error {
	active, err := dom.IsActive()
	if err != nil {
		if isNoDomain(err) {
			return nil
		}
		return err
	}
	if active {
		if err := destroyActive(dom); err != nil {
			if isNoDomain(err) {
				return nil
			}
			return err
		}
	}
	// A transient domain is gone once destroyed.
	persistent, err := dom.IsPersistent()
	if err != nil {
		if isNoDomain(err) {
			return nil
		}
		return err
	}
	if !persistent {
		return nil
	}
	if err := undefine(dom); err != nil && !isNoDomain(err) {
		return err
	}
	return nil
}

// undefineFlags remove what a domain may own beside its definition, most
// thorough first. Not every libvirt driver accepts every flag (libvirt 9.0's
// test driver rejects the checkpoint, TPM and NVRAM ones), so undefine falls
// back to fewer.
var undefineFlags = []golibvirt.DomainUndefineFlagsValues{
	golibvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | golibvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		golibvirt.DOMAIN_UNDEFINE_CHECKPOINTS_METADATA | golibvirt.DOMAIN_UNDEFINE_NVRAM |
		golibvirt.DOMAIN_UNDEFINE_TPM,
	golibvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | golibvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
		golibvirt.DOMAIN_UNDEFINE_NVRAM,
	golibvirt.DOMAIN_UNDEFINE_MANAGED_SAVE | golibvirt.DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
	0,
}

func undefine(dom *golibvirt.Domain) error {
	var err error
	for _, flags := range undefineFlags {
		err = dom.UndefineFlags(flags)
		if err == nil || !unsupportedFlags(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("undefine: %w", err)
	}
	return nil
}

// unsupportedFlags reports libvirt's answer to a flag it does not know
// (virCheckFlags raises VIR_ERR_INVALID_ARG) or an API it lacks.
func unsupportedFlags(err error) bool {
	return errors.Is(err, golibvirt.ERR_INVALID_ARG) || errors.Is(err, golibvirt.ERR_NO_SUPPORT)
}

// lookup finds the workload's domain and checks that it is this host's.
// The caller frees the domain.
func (d *Driver) lookup(conn *golibvirt.Connect, workload string) (*golibvirt.Domain, instanceMeta, error) {
	name := domainName(d.cfg.Host, workload)
	dom, err := conn.LookupDomainByName(name)
	if err != nil {
		if isNoDomain(err) {
			return nil, instanceMeta{}, drivers.ErrNotFound
		}
		return nil, instanceMeta{}, err
	}
	meta, err := readMeta(dom)
	if err == nil && (meta.Host != d.cfg.Host || meta.Workload != workload) {
		err = fmt.Errorf("%w: its metadata names host %q, workload %q", ErrForeignDomain, meta.Host, meta.Workload)
	}
	if err != nil {
		dom.Free()
		if isNoDomain(err) {
			return nil, instanceMeta{}, drivers.ErrNotFound
		}
		return nil, instanceMeta{}, err
	}
	return dom, meta, nil
}

// readMeta returns the Bulwark element of dom's metadata, or an error
// wrapping ErrForeignDomain if it has none.
func readMeta(dom *golibvirt.Domain) (instanceMeta, error) {
	s, err := dom.GetMetadata(golibvirt.DOMAIN_METADATA_ELEMENT, MetadataNamespace, golibvirt.DOMAIN_AFFECT_CURRENT)
	if err != nil {
		if errors.Is(err, golibvirt.ERR_NO_DOMAIN_METADATA) {
			return instanceMeta{}, fmt.Errorf("%w: no bulwark metadata", ErrForeignDomain)
		}
		return instanceMeta{}, fmt.Errorf("read metadata: %w", err)
	}
	m, err := parseMeta(s)
	if err != nil {
		return instanceMeta{}, fmt.Errorf("%w: %v", ErrForeignDomain, err)
	}
	return m, nil
}

// status maps a domain's libvirt state to a drivers.Status.
func status(dom *golibvirt.Domain, meta instanceMeta) (drivers.Status, error) {
	state, reason, err := dom.GetState()
	if err != nil {
		return drivers.Status{}, err
	}
	uuid, err := dom.GetUUIDString()
	if err != nil {
		return drivers.Status{}, err
	}
	ts, detail := mapState(state, reason)
	return drivers.Status{
		Workload: meta.Workload,
		Epoch:    meta.Epoch,
		State:    ts,
		Detail:   detail,
		ID:       uuid,
	}, nil
}

// mapState turns libvirt's (state, reason) into a task state and a short
// detail. A paused or guest-suspended domain still holds its resources and
// its memory, so it counts as running; the detail says why it is paused.
func mapState(state golibvirt.DomainState, reason int) (drivers.TaskState, string) {
	switch state {
	case golibvirt.DOMAIN_RUNNING:
		return drivers.TaskRunning, ""
	case golibvirt.DOMAIN_BLOCKED:
		return drivers.TaskRunning, "blocked on resource"
	case golibvirt.DOMAIN_PAUSED:
		return drivers.TaskRunning, "paused: " + pausedReason(golibvirt.DomainPausedReason(reason))
	case golibvirt.DOMAIN_PMSUSPENDED:
		return drivers.TaskRunning, "suspended by guest power management"
	case golibvirt.DOMAIN_SHUTDOWN:
		return drivers.TaskRunning, "shutting down"
	case golibvirt.DOMAIN_SHUTOFF:
		r := golibvirt.DomainShutoffReason(reason)
		if r == golibvirt.DOMAIN_SHUTOFF_CRASHED || r == golibvirt.DOMAIN_SHUTOFF_FAILED {
			return drivers.TaskFailed, shutoffReason(r)
		}
		return drivers.TaskStopped, shutoffReason(r)
	case golibvirt.DOMAIN_CRASHED:
		if golibvirt.DomainCrashedReason(reason) == golibvirt.DOMAIN_CRASHED_PANICKED {
			return drivers.TaskFailed, "guest panicked"
		}
		return drivers.TaskFailed, "crashed"
	default:
		return drivers.TaskUnknown, fmt.Sprintf("libvirt state %d, reason %d", state, reason)
	}
}

func shutoffReason(r golibvirt.DomainShutoffReason) string {
	switch r {
	case golibvirt.DOMAIN_SHUTOFF_SHUTDOWN:
		return "shut down"
	case golibvirt.DOMAIN_SHUTOFF_DESTROYED:
		return "destroyed"
	case golibvirt.DOMAIN_SHUTOFF_CRASHED:
		return "crashed"
	case golibvirt.DOMAIN_SHUTOFF_MIGRATED:
		return "migrated"
	case golibvirt.DOMAIN_SHUTOFF_SAVED:
		return "saved"
	case golibvirt.DOMAIN_SHUTOFF_FAILED:
		return "failed to start"
	case golibvirt.DOMAIN_SHUTOFF_FROM_SNAPSHOT:
		return "restored from snapshot"
	case golibvirt.DOMAIN_SHUTOFF_DAEMON:
		return "stopped by libvirt daemon"
	default:
		return "shut off"
	}
}

func pausedReason(r golibvirt.DomainPausedReason) string {
	switch r {
	case golibvirt.DOMAIN_PAUSED_USER:
		return "by user"
	case golibvirt.DOMAIN_PAUSED_MIGRATION:
		return "migration"
	case golibvirt.DOMAIN_PAUSED_SAVE:
		return "save"
	case golibvirt.DOMAIN_PAUSED_DUMP:
		return "core dump"
	case golibvirt.DOMAIN_PAUSED_IOERROR:
		return "disk I/O error"
	case golibvirt.DOMAIN_PAUSED_WATCHDOG:
		return "watchdog"
	case golibvirt.DOMAIN_PAUSED_SHUTTING_DOWN:
		return "shutting down"
	case golibvirt.DOMAIN_PAUSED_CRASHED:
		return "guest crashed"
	case golibvirt.DOMAIN_PAUSED_STARTING_UP:
		return "starting up"
	default:
		return "unknown reason"
	}
}

func isNoDomain(err error) bool {
	return errors.Is(err, golibvirt.ERR_NO_DOMAIN)
}
