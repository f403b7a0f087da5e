package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Lines the test guest writes to its serial console.
const (
	// MarkerUp: userspace runs and handles the power button; the disk and
	// NIC lines follow it.
	MarkerUp = "BULWARK-GUEST-UP"
	// MarkerDisks starts the line listing the guest's block devices,
	// e.g. "BULWARK-GUEST-DISKS: vda vdb".
	MarkerDisks = "BULWARK-GUEST-DISKS:"
	// MarkerNICs starts the line listing its network interfaces.
	MarkerNICs = "BULWARK-GUEST-NICS:"
	// MarkerPoweroff: the guest got the ACPI power button and powers off.
	MarkerPoweroff = "BULWARK-GUEST-POWEROFF"
)

// Guest is a bootable test guest: Debian's kernel and a busybox initramfs.
type Guest struct {
	Kernel  string
	Initrd  string
	Cmdline string
	// Version is the kernel release, e.g. "6.1.0-56-amd64".
	Version string
}

// guestModules are the kernel modules the guest loads (with their
// dependencies): virtio disks and NICs, and the ACPI power button with the
// event device busybox's acpid reads it from.
var guestModules = []string{"virtio_pci", "virtio_blk", "virtio_net", "button", "evdev"}

// initScript is the guest's /init. It starts acpid, which runs
// /etc/acpi/PWRF/00000080 when the power button is pressed, reports what it
// sees, then idles.
const initScript = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "BULWARK-GUEST-INIT (uptime $(cut -d' ' -f1 /proc/uptime)s)"
for m in $(cat /lib/modules/load.list); do
	insmod /lib/modules/$m || echo "BULWARK-GUEST-INSMOD-FAILED $m"
done
# acpid must hold the input devices open before anyone presses the power
# button: an event nobody reads is lost. It writes its pid file once they
# are open. -d keeps its output, and its handler's, on the console.
acpid -d -c /etc/acpi -p /tmp/acpid.pid &
i=0
while [ ! -e /tmp/acpid.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
[ -e /tmp/acpid.pid ] || echo "BULWARK-GUEST-NO-ACPID"
echo "` + MarkerUp + ` (uptime $(cut -d' ' -f1 /proc/uptime)s)"
echo "` + MarkerDisks + ` $(ls /sys/block | grep -v -e '^loop' -e '^ram' | tr '\n' ' ')"
echo "` + MarkerNICs + ` $(ls /sys/class/net | tr '\n' ' ')"
while :; do sleep 60; done
`

const powerButtonScript = `#!/bin/sh
echo ` + MarkerPoweroff + `
sync
# Let the UART drain, or the line above never reaches the log.
sleep 0.3
poweroff -f
`

// GuestCmdline is the kernel command line the test guest needs: its
// console on the first serial port, where the console log is kept.
const GuestCmdline = "console=ttyS0 quiet"

// guestSources are the host's files a test guest is built from.
type guestSources struct {
	kernel, version, modDir string
	busybox                 []byte
	modules                 []string // relative to modDir, in load order
}

// findGuestSources finds the newest kernel in /boot, busybox-static's
// /bin/busybox and the modules the guest needs from that kernel's
// /lib/modules. What is missing is an UnavailableError.
func findGuestSources() (guestSources, error) {
	var src guestSources
	var err error
	src.kernel, src.version, err = newestKernel("/boot")
	if err != nil {
		return src, UnavailableError(err.Error() + " (install linux-image-amd64)")
	}
	src.busybox, err = os.ReadFile("/bin/busybox")
	if err != nil {
		return src, UnavailableError("busybox-static's /bin/busybox: " + err.Error())
	}
	if !bytes.HasPrefix(src.busybox, []byte("\x7fELF")) {
		return src, UnavailableError("/bin/busybox is not an ELF binary")
	}
	src.modDir = filepath.Join("/lib/modules", src.version)
	src.modules, err = resolveModules(src.modDir, guestModules)
	if err != nil {
		return src, UnavailableError(fmt.Sprintf("modules for kernel %s: %v", src.version, err))
	}
	return src, nil
}

// GuestMissing says what this machine lacks to build a test guest, or "".
func GuestMissing() string {
	if _, err := findGuestSources(); err != nil {
		return err.Error()
	}
	return ""
}

// WriteGuest writes a test guest into dir (see BuildGuest) and returns the
// paths of its kernel and initramfs. Boot it with GuestCmdline (at least
// console=ttyS0).
func WriteGuest(dir string) (kernel, initrd string, err error) {
	g, err := BuildGuest(dir)
	if err != nil {
		return "", "", err
	}
	return g.Kernel, g.Initrd, nil
}

// BuildGuest writes a test guest into dir: a copy of the newest kernel in
// /boot (vmlinuz) and an initramfs (initramfs.cpio) holding
// busybox-static's /bin/busybox, the modules the guest needs from that
// kernel's /lib/modules, and an /init that prints the markers above on the
// serial console. dir must be traversable by libvirt-qemu (see Start); the
// files are written world-readable. Missing pieces are an UnavailableError.
func BuildGuest(dir string) (Guest, error) {
	src, err := findGuestSources()
	if err != nil {
		return Guest{}, err
	}
	g := Guest{
		Kernel:  filepath.Join(dir, "vmlinuz"),
		Initrd:  filepath.Join(dir, "initramfs.cpio"),
		Cmdline: GuestCmdline,
		Version: src.version,
	}
	if err := copyFile(src.kernel, g.Kernel); err != nil {
		return Guest{}, fmt.Errorf("copy kernel: %w", err)
	}

	var buf bytes.Buffer
	cw := &cpioWriter{w: &buf}
	for _, d := range []string{"bin", "dev", "proc", "sys", "tmp", "etc", "etc/acpi", "etc/acpi/PWRF", "lib", "lib/modules", "var", "var/log"} {
		cw.dir(d)
	}
	cw.node("dev/console", 0o020600, 5, 1) // init's stdio before devtmpfs
	cw.file("bin/busybox", 0o755, src.busybox)
	cw.file("init", 0o755, []byte(initScript))
	cw.file("etc/acpi/PWRF/00000080", 0o755, []byte(powerButtonScript))
	var list []string
	for _, m := range src.modules {
		b, err := os.ReadFile(filepath.Join(src.modDir, m))
		if err != nil {
			return Guest{}, fmt.Errorf("read module: %w", err)
		}
		name := filepath.Base(m)
		cw.file("lib/modules/"+name, 0o644, b)
		list = append(list, name)
	}
	cw.file("lib/modules/load.list", 0o644, []byte(strings.Join(list, "\n")+"\n"))
	if err := cw.close(); err != nil {
		return Guest{}, fmt.Errorf("write initramfs: %w", err)
	}
	if err := os.WriteFile(g.Initrd, buf.Bytes(), 0o644); err != nil {
		return Guest{}, fmt.Errorf("write initramfs: %w", err)
	}
	// Readable by libvirt-qemu whatever the umask.
	for _, f := range []string{g.Kernel, g.Initrd} {
		if err := os.Chmod(f, 0o644); err != nil {
			return Guest{}, err
		}
	}
	return g, nil
}

// newestKernel finds the highest-versioned /boot/vmlinuz-*.
func newestKernel(boot string) (path, version string, err error) {
	paths, _ := filepath.Glob(filepath.Join(boot, "vmlinuz-*"))
	if len(paths) == 0 {
		return "", "", fmt.Errorf("no kernel in %s", boot)
	}
	sort.Slice(paths, func(i, j int) bool { return versionLess(paths[i], paths[j]) })
	path = paths[len(paths)-1]
	return path, strings.TrimPrefix(filepath.Base(path), "vmlinuz-"), nil
}

// versionLess compares strings by their runs of digits as numbers and the
// rest as text, so that 6.1.0-10 sorts after 6.1.0-9.
func versionLess(a, b string) bool {
	for a != "" && b != "" {
		ra, restA := versionRun(a)
		rb, restB := versionRun(b)
		if ra != rb {
			na, errA := strconv.Atoi(ra)
			nb, errB := strconv.Atoi(rb)
			if errA == nil && errB == nil {
				return na < nb
			}
			return ra < rb
		}
		a, b = restA, restB
	}
	return len(a) < len(b)
}

func versionRun(s string) (run, rest string) {
	digit := s[0] >= '0' && s[0] <= '9'
	i := 1
	for i < len(s) && (s[i] >= '0' && s[i] <= '9') == digit {
		i++
	}
	return s[:i], s[i:]
}

// resolveModules returns the module files (relative to modDir) for wanted
// and their dependencies, each after the ones it needs, from modules.dep.
// Modules built into the kernel are left out.
func resolveModules(modDir string, wanted []string) ([]string, error) {
	builtin := map[string]bool{}
	if f, err := os.Open(filepath.Join(modDir, "modules.builtin")); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			builtin[moduleName(sc.Text())] = true
		}
		f.Close()
	}
	f, err := os.Open(filepath.Join(modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{} // module file -> files it needs
	byName := map[string]string{} // module name -> file
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		byName[moduleName(mod)] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var out []string
	done := map[string]bool{}
	var visit func(string)
	visit = func(mod string) {
		if done[mod] {
			return
		}
		done[mod] = true
		for _, d := range deps[mod] {
			visit(d)
		}
		out = append(out, mod)
	}
	for _, name := range wanted {
		mod, ok := byName[name]
		if !ok {
			if builtin[name] {
				continue
			}
			return nil, fmt.Errorf("module %s is neither in modules.dep nor built in", name)
		}
		visit(mod)
	}
	for _, m := range out {
		if strings.HasSuffix(m, ".ko.xz") || strings.HasSuffix(m, ".ko.zst") || strings.HasSuffix(m, ".ko.gz") {
			return nil, fmt.Errorf("module %s is compressed; busybox insmod needs plain .ko files", m)
		}
	}
	return out, nil
}

// moduleName turns kernel/drivers/block/virtio_blk.ko into virtio_blk.
func moduleName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// cpioWriter writes an initramfs in the kernel's "newc" cpio format. Every
// entry is owned by root; errors are kept for close.
type cpioWriter struct {
	w   io.Writer
	ino int
	err error
}

func (c *cpioWriter) dir(name string)                         { c.entry(name, 0o040755, 0, 0, nil) }
func (c *cpioWriter) file(name string, perm uint32, b []byte) { c.entry(name, 0o100000|perm, 0, 0, b) }
func (c *cpioWriter) node(name string, mode, major, minor uint32) {
	c.entry(name, mode, major, minor, nil)
}

func (c *cpioWriter) entry(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	var b bytes.Buffer
	b.WriteString(hdr)
	b.WriteString(name)
	b.WriteByte(0)
	pad(&b, b.Len())
	b.Write(data)
	pad(&b, len(data))
	_, c.err = c.w.Write(b.Bytes())
}

// pad adds NULs to b to bring a section of length n to a multiple of 4.
func pad(b *bytes.Buffer, n int) {
	for ; n%4 != 0; n++ {
		b.WriteByte(0)
	}
}

func (c *cpioWriter) close() error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	return c.err
}
