package libvirt

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	golibvirt "libvirt.org/go/libvirt"
	"libvirt.org/go/libvirtxml"

	"github.com/bulwarkhq/bulwark/api"
)

// ErrPreflight: the spec names a disk, kernel, initrd or bridge that this
// host lacks or cannot use. Start returns it (wrapped in a *PreflightError)
// before defining anything; retrying on the same host will not help until
// someone fixes the host or the spec.
var ErrPreflight = errors.New("vm spec does not fit this host")

// ErrNoConsoleLog: the driver keeps no console logs (Config.ConsoleLogDir
// is empty).
var ErrNoConsoleLog = errors.New("console logging is not configured (no console log dir)")

// PreflightError lists every problem Start found with a spec on this host,
// e.g. "disk /x/y.qcow2: no such file; bridge br9: no such interface".
type PreflightError struct {
	Problems []string
}

func (e *PreflightError) Error() string { return strings.Join(e.Problems, "; ") }

// Unwrap makes errors.Is(err, ErrPreflight) true.
func (e *PreflightError) Unwrap() error { return ErrPreflight }

// sysClassNet is where Linux lists network interfaces; a variable so that
// tests can point it elsewhere.
var sysClassNet = "/sys/class/net"

// preflight checks, on a local URI, that what the spec points at exists
// and is usable here, and creates the console log directory. libvirt would
// find most of it too, but only after defining the domain and starting
// QEMU, and with a message about QEMU's command line.
//
// The files are opened as the agent's user (root in production), which
// tells missing and unreadable files apart but cannot promise that QEMU's
// user may read them: libvirt relabels them for QEMU when it starts the
// guest (dynamic_ownership). Bridges are looked up in the agent's network
// namespace, which is libvirtd's unless the agent runs in another one.
func (d *Driver) preflight(vm *api.VMSpec) error {
	var problems []string
	if d.local && vm != nil {
		for _, disk := range vm.Disks {
			if p := checkImage(disk.Path, !disk.ReadOnly); p != "" {
				problems = append(problems, "disk "+disk.Path+": "+p)
			}
		}
		if vm.Kernel != "" {
			if p := checkImage(vm.Kernel, false); p != "" {
				problems = append(problems, "kernel "+vm.Kernel+": "+p)
			}
		}
		if vm.Initrd != "" {
			if p := checkImage(vm.Initrd, false); p != "" {
				problems = append(problems, "initrd "+vm.Initrd+": "+p)
			}
		}
		seen := map[string]bool{}
		for _, n := range vm.Networks {
			if seen[n.Bridge] {
				continue
			}
			seen[n.Bridge] = true
			if p := checkBridge(n.Bridge); p != "" {
				problems = append(problems, "bridge "+n.Bridge+": "+p)
			}
		}
	}
	if len(problems) > 0 {
		return &PreflightError{Problems: problems}
	}
	if d.cfg.ConsoleLogDir != "" && d.local {
		if err := os.MkdirAll(d.cfg.ConsoleLogDir, 0o750); err != nil {
			return fmt.Errorf("console log dir: %w", err)
		}
	}
	return nil
}

// checkImage says what is wrong with a disk image, kernel or initrd at
// path, or "" if nothing is. A path under /dev/ must be a block device
// (render.go attaches it as one); anything else a regular file.
func checkImage(path string, write bool) string {
	fi, err := os.Stat(path)
	if err != nil {
		return describeFSError(err)
	}
	block := strings.HasPrefix(path, "/dev/")
	switch {
	case fi.IsDir():
		return "is a directory"
	case block && fi.Mode()&fs.ModeDevice == 0:
		return "is not a block device"
	case block && fi.Mode()&fs.ModeCharDevice != 0:
		return "is a character device, not a block device"
	case !block && !fi.Mode().IsRegular():
		return "is not a regular file"
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		if write && (errors.Is(err, syscall.EROFS) || errors.Is(err, fs.ErrPermission)) {
			return "not writable (" + describeFSError(err) + "); attach it read-only or fix its permissions"
		}
		return "not readable (" + describeFSError(err) + ")"
	}
	f.Close()
	return ""
}

// describeFSError turns an *fs.PathError into its short reason.
func describeFSError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// checkBridge says what is wrong with bridge name on this host, or "".
func checkBridge(name string) string {
	if err := api.ValidateBridgeName(name); err != nil {
		return err.Error()
	}
	dev := filepath.Join(sysClassNet, name)
	if _, err := os.Stat(dev); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "no such interface"
		}
		return describeFSError(err)
	}
	if _, err := os.Stat(filepath.Join(dev, "bridge")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "the interface is not a bridge"
		}
		return describeFSError(err)
	}
	return ""
}

// ConsoleLog returns the path of the file where the workload's serial
// console is logged (while a guest runs, virtlogd appends to it and rotates
// it to .log.0, .log.1...). The file exists once the guest has started and
// is removed by Destroy. It returns ErrNoConsoleLog if the driver keeps no
// console logs.
func (d *Driver) ConsoleLog(workload string) (string, error) {
	if err := api.ValidateName("workload", workload); err != nil {
		return "", fmt.Errorf("console log: %w", err)
	}
	if d.cfg.ConsoleLogDir == "" {
		return "", fmt.Errorf("console log of %s: %w", workload, ErrNoConsoleLog)
	}
	return consoleLogPath(d.cfg.ConsoleLogDir, domainName(d.cfg.Host, workload)), nil
}

// maxLogBackups bounds the rotated console logs Destroy removes; virtlogd
// keeps max_backups of them (3 by default).
const maxLogBackups = 16

// removeConsoleLogs removes a console log and its rotated copies.
func removeConsoleLogs(path string) error {
	if path == "" {
		return nil
	}
	var errs []error
	for i := -1; i < maxLogBackups; i++ {
		p := path
		if i >= 0 {
			p = fmt.Sprintf("%s.%d", path, i)
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove console log: %w", err))
		}
	}
	return errors.Join(errs...)
}

// isTestURI reports a URI of libvirt's test driver.
func isTestURI(uri string) bool {
	return strings.HasPrefix(uri, "test:")
}

// isLocalURI reports whether uri names a hypervisor on this machine (no host
// part, e.g. qemu:///system or qemu+unix:///system?socket=...), where the
// driver can check a spec's paths and bridges itself.
func isLocalURI(uri string) (bool, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return false, fmt.Errorf("uri %q: %w", uri, err)
	}
	return u.Host == "", nil
}

// detectDomainType picks "kvm" when KVM guests can run, "qemu" otherwise,
// and says why in note. KVM needs libvirt to offer a kvm domain for the
// host's architecture and, for a local URI, a /dev/kvm this process can
// open plus hardware virtualisation in the CPU. The last check matters:
// some sandboxes (e.g. KVM-in-KVM through PVM) have a /dev/kvm whose VMs
// libvirt happily defines but whose guests never run.
func detectDomainType(conn *golibvirt.Connect, local bool) (typ, note string, err error) {
	capsXML, err := conn.GetCapabilities()
	if err != nil {
		return "", "", fmt.Errorf("capabilities: %w", err)
	}
	var caps libvirtxml.Caps
	if err := caps.Unmarshal(capsXML); err != nil {
		return "", "", fmt.Errorf("parse capabilities: %w", err)
	}
	if !capsOfferKVM(&caps) {
		return DomainTypeQEMU, "no KVM: libvirt offers none for this host; software emulation", nil
	}
	if local {
		if reason := localKVMProblem(); reason != "" {
			return DomainTypeQEMU, "no KVM: " + reason + "; software emulation", nil
		}
	}
	return DomainTypeKVM, "", nil
}

// capsOfferKVM reports whether libvirt can run hvm guests of the host's own
// architecture under KVM.
func capsOfferKVM(caps *libvirtxml.Caps) bool {
	arch := ""
	if caps.Host.CPU != nil {
		arch = caps.Host.CPU.Arch
	}
	for _, g := range caps.Guests {
		if g.OSType != "hvm" || (arch != "" && g.Arch.Name != arch) {
			continue
		}
		for _, dom := range g.Arch.Domains {
			if dom.Type == DomainTypeKVM {
				return true
			}
		}
	}
	return false
}

// kvmGetAPIVersion is KVM_GET_API_VERSION, _IO(0xAE, 0x00); a usable
// /dev/kvm answers kvmAPIVersion.
const (
	kvmGetAPIVersion = 0xAE00
	kvmAPIVersion    = 12
)

// localKVMProblem says why this machine cannot run KVM guests, or "".
func localKVMProblem() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "/dev/kvm: " + describeFSError(err)
	}
	defer f.Close()
	v, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if errno != 0 {
		return "/dev/kvm: KVM_GET_API_VERSION: " + errno.Error()
	}
	if v != kvmAPIVersion {
		return fmt.Sprintf("/dev/kvm: KVM API version %d, want %d", v, kvmAPIVersion)
	}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "386" {
		ok, err := cpuHasVirtFlag("/proc/cpuinfo")
		if err != nil {
			return "read /proc/cpuinfo: " + err.Error()
		}
		if !ok {
			return "the CPU has no vmx/svm flag"
		}
	}
	return ""
}

// cpuHasVirtFlag reports whether cpuinfo lists Intel VT-x (vmx) or AMD-V
// (svm) among the CPU flags.
func cpuHasVirtFlag(cpuinfo string) (bool, error) {
	f, err := os.Open(cpuinfo)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "flags" {
			continue
		}
		for _, flag := range strings.Fields(val) {
			if flag == "vmx" || flag == "svm" {
				return true, nil
			}
		}
	}
	return false, sc.Err()
}

// Logs opens the VM's serial console log (drivers.Logger).
func (d *Driver) Logs(ctx context.Context, workload string) (io.ReadCloser, error) {
	path, err := d.ConsoleLog(workload)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("console log of %s: %w", workload, err)
	}
	return f, nil
}
