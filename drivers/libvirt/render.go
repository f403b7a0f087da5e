package libvirt

import (
	"encoding/xml"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"libvirt.org/go/libvirtxml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// MetadataNamespace is the XML namespace of the element Bulwark keeps in each
// domain's <metadata>. It identifies the domains Bulwark manages and carries
// what the agent needs to re-attach after its own restart.
const MetadataNamespace = "https://bulwarkhq.github.io/xmlns/bulwark/1"

// namePrefix starts the name of every domain Bulwark defines.
const namePrefix = "bulwark-"

// Domain types accepted in Config.DomainType.
const (
	DomainTypeKVM  = "kvm"
	DomainTypeQEMU = "qemu"
	DomainTypeTest = "test"
)

// instanceMeta is the Bulwark element inside a domain's <metadata>.
//
// Host is recorded because a domain name alone is ambiguous: host "a" with
// workload "b-c" and host "a-b" with workload "c" both give "bulwark-a-b-c".
type instanceMeta struct {
	XMLName  xml.Name `xml:"https://bulwarkhq.github.io/xmlns/bulwark/1 instance"`
	Workload string   `xml:"workload"`
	Epoch    int64    `xml:"epoch"`
	Host     string   `xml:"host"`
}

// marshal returns the element indented to sit inside <metadata>, so that
// golden files read well.
func (m instanceMeta) marshal() (string, error) {
	b, err := xml.MarshalIndent(m, "    ", "  ")
	if err != nil {
		return "", fmt.Errorf("marshal bulwark metadata: %w", err)
	}
	return "\n" + string(b) + "\n  ", nil
}

// parseMeta reads the element returned by virDomainGetMetadata. libvirt
// returns it without its namespace (the namespace was the lookup key), so it
// is matched by local name only.
func parseMeta(s string) (instanceMeta, error) {
	var m struct {
		XMLName  xml.Name `xml:"instance"`
		Workload string   `xml:"workload"`
		Epoch    int64    `xml:"epoch"`
		Host     string   `xml:"host"`
	}
	if err := xml.Unmarshal([]byte(s), &m); err != nil {
		return instanceMeta{}, fmt.Errorf("parse bulwark metadata: %w", err)
	}
	return instanceMeta{Workload: m.Workload, Epoch: m.Epoch, Host: m.Host}, nil
}

// domainName is the libvirt name of a workload's domain on host.
func domainName(host, workload string) string {
	return namePrefix + host + "-" + workload
}

// withDefaults fills in what Config leaves implicit.
func (c Config) withDefaults() Config {
	if c.DomainType == "" {
		if isTestURI(c.URI) {
			c.DomainType = DomainTypeTest
		} else {
			c.DomainType = DomainTypeKVM
		}
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	return c
}

func (c Config) validate() error {
	if err := api.ValidateName("host", c.Host); err != nil {
		return err
	}
	if c.ConsoleLogDir != "" && !filepath.IsAbs(c.ConsoleLogDir) {
		return fmt.Errorf("console log dir %q is not absolute", c.ConsoleLogDir)
	}
	// Both go into the domain XML, whose encoder would replace such a
	// character: libvirt would log somewhere the agent does not read.
	if !xmlText(c.ConsoleLogDir) || !xmlText(c.Emulator) {
		return fmt.Errorf("console log dir %q or emulator %q has a control character or one XML cannot carry", c.ConsoleLogDir, c.Emulator)
	}
	switch c.DomainType {
	case DomainTypeKVM, DomainTypeQEMU, DomainTypeTest:
	default:
		return fmt.Errorf("domain type %q is not supported: use %q, %q or %q",
			c.DomainType, DomainTypeKVM, DomainTypeQEMU, DomainTypeTest)
	}
	return nil
}

// xmlText reports whether s is valid UTF-8 without control characters and
// without the non-characters U+FFFE and U+FFFF: text that XML carries as is.
func xmlText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == 0xFFFE || r == 0xFFFF {
			return false
		}
	}
	return true
}

// validateTask checks what rendering relies on. The API validated the spec
// already; this guards the driver against a bad caller, since the workload
// name ends up in a domain name and the numbers in the hypervisor.
func validateTask(t drivers.Task) error {
	var errs []error
	if err := api.ValidateName("workload", t.Workload); err != nil {
		errs = append(errs, err)
	}
	if t.Spec.Name != "" && t.Spec.Name != t.Workload {
		errs = append(errs, fmt.Errorf("spec name %q differs from task workload %q", t.Spec.Name, t.Workload))
	}
	if t.Spec.Kind != api.KindVM {
		errs = append(errs, fmt.Errorf("kind %q is not %q", t.Spec.Kind, api.KindVM))
	}
	if t.Epoch <= 0 {
		errs = append(errs, fmt.Errorf("epoch must be positive, got %d", t.Epoch))
	}
	if t.Spec.CPUs < 1 || t.Spec.CPUs > api.MaxCPUs {
		errs = append(errs, fmt.Errorf("cpus must be from 1 to %d, got %d", api.MaxCPUs, t.Spec.CPUs))
	}
	if t.Spec.Memory < api.MinMemory || t.Spec.Memory > api.MaxMemory {
		errs = append(errs, fmt.Errorf("memory must be from %s to %s, got %s", api.MinMemory, api.MaxMemory, t.Spec.Memory))
	}
	if err := t.Spec.VM.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// RenderDomain returns the libvirt domain XML for task t on the host cfg
// describes. The output depends only on its arguments (no UUID: libvirt
// assigns one at define time), so it can be compared with golden files.
func RenderDomain(cfg Config, t drivers.Task) (string, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return "", fmt.Errorf("render %s: %w", t.Workload, err)
	}
	if err := validateTask(t); err != nil {
		return "", fmt.Errorf("render %s: %w", t.Workload, err)
	}
	dom, err := buildDomain(cfg, t)
	if err != nil {
		return "", fmt.Errorf("render %s: %w", t.Workload, err)
	}
	s, err := dom.Marshal()
	if err != nil {
		return "", fmt.Errorf("render %s: marshal domain: %w", t.Workload, err)
	}
	return s + "\n", nil
}

// buildDomain assembles the domain from parts: the machine, then the boot
// source, disks, NICs and the serial console.
func buildDomain(cfg Config, t drivers.Task) (*libvirtxml.Domain, error) {
	meta, err := instanceMeta{Workload: t.Workload, Epoch: t.Epoch, Host: cfg.Host}.marshal()
	if err != nil {
		return nil, err
	}
	memKiB := uint((t.Spec.Memory + api.KiB - 1) / api.KiB)
	dom := &libvirtxml.Domain{
		Type:          cfg.DomainType,
		Name:          domainName(cfg.Host, t.Workload),
		Metadata:      &libvirtxml.DomainMetadata{XML: meta},
		Memory:        &libvirtxml.DomainMemory{Value: memKiB, Unit: "KiB"},
		CurrentMemory: &libvirtxml.DomainCurrentMemory{Value: memKiB, Unit: "KiB"},
		VCPU:          &libvirtxml.DomainVCPU{Placement: "static", Value: uint(t.Spec.CPUs)},
		OS: &libvirtxml.DomainOS{
			Type: &libvirtxml.DomainOSType{Type: "hvm"},
		},
		// ACPI lets a guest see the power button that a graceful Stop presses.
		Features: &libvirtxml.DomainFeatureList{ACPI: &libvirtxml.DomainFeature{}},
		// A guest that powers off or crashes stops here; the agent reports it
		// and the leader decides what happens next. A reboot stays a reboot.
		OnPoweroff: "destroy",
		OnReboot:   "restart",
		OnCrash:    "destroy",
		Devices: &libvirtxml.DomainDeviceList{
			Emulator: cfg.Emulator,
		},
	}
	vm := t.Spec.VM
	if vm == nil {
		vm = &api.VMSpec{}
	}
	addBoot(dom, vm)
	addDisks(dom, vm.Disks)
	addNICs(dom, vm.Networks)
	addConsole(dom, consoleLogPath(cfg.ConsoleLogDir, dom.Name))
	return dom, nil
}

// addBoot boots the guest's kernel directly when the spec names one, and
// from the first disk otherwise.
func addBoot(dom *libvirtxml.Domain, vm *api.VMSpec) {
	if vm.Kernel != "" {
		dom.OS.Kernel = vm.Kernel
		dom.OS.Initrd = vm.Initrd
		dom.OS.Cmdline = vm.Cmdline
		return
	}
	if len(vm.Disks) > 0 {
		dom.OS.BootDevices = []libvirtxml.DomainBootDevice{{Dev: "hd"}}
	}
}

// addDisks attaches the images as virtio disks vda, vdb... in spec order.
// A path under /dev/ is a block device (an LV, a multipath device, an iSCSI
// LUN); anything else is an image file.
func addDisks(dom *libvirtxml.Domain, disks []api.DiskSpec) {
	for i, d := range disks {
		format := d.Format
		if format == "" {
			format = api.DiskFormatRaw
		}
		src := &libvirtxml.DomainDiskSource{}
		if strings.HasPrefix(d.Path, "/dev/") {
			src.Block = &libvirtxml.DomainDiskSourceBlock{Dev: d.Path}
		} else {
			src.File = &libvirtxml.DomainDiskSourceFile{File: d.Path}
		}
		disk := libvirtxml.DomainDisk{
			Device: "disk",
			// The format is always explicit: letting QEMU probe a raw image's
			// contents would let a guest that writes a qcow2 header into it
			// read host files on the next boot.
			Driver: &libvirtxml.DomainDiskDriver{Name: "qemu", Type: format},
			Source: src,
			Target: &libvirtxml.DomainDiskTarget{Dev: diskTarget(i), Bus: "virtio"},
		}
		if d.ReadOnly {
			disk.ReadOnly = &libvirtxml.DomainDiskReadOnly{}
		}
		dom.Devices.Disks = append(dom.Devices.Disks, disk)
	}
}

// diskTarget names the i-th virtio disk: vda ... vdz (the API allows 16).
func diskTarget(i int) string {
	return "vd" + string(rune('a'+i))
}

// addNICs attaches one virtio NIC per network to its host bridge.
func addNICs(dom *libvirtxml.Domain, nets []api.NetworkSpec) {
	for _, n := range nets {
		nic := libvirtxml.DomainInterface{
			Source: &libvirtxml.DomainInterfaceSource{
				Bridge: &libvirtxml.DomainInterfaceSourceBridge{Bridge: n.Bridge},
			},
			Model: &libvirtxml.DomainInterfaceModel{Type: "virtio"},
		}
		if n.MAC != "" {
			// Validated already; the canonical form keeps goldens stable.
			mac, err := api.ParseMAC(n.MAC)
			if err != nil {
				mac = n.MAC
			}
			nic.MAC = &libvirtxml.DomainInterfaceMAC{Address: mac}
		}
		dom.Devices.Interfaces = append(dom.Devices.Interfaces, nic)
	}
}

// consoleLogPath is where the serial console of domain name is logged, or
// "" when the host keeps no console logs.
func consoleLogPath(dir, name string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, name+".log")
}

// addConsole gives the guest a serial port on a pty with a console bound to
// it, so that `virsh console` works. With logPath set, libvirt (through
// virtlogd, which also rotates it) appends everything the guest writes to
// the port to that file, across restarts.
func addConsole(dom *libvirtxml.Domain, logPath string) {
	port := uint(0)
	serial := libvirtxml.DomainSerial{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainSerialTarget{Port: &port},
	}
	if logPath != "" {
		serial.Log = &libvirtxml.DomainChardevLog{File: logPath, Append: "on"}
	}
	dom.Devices.Serials = append(dom.Devices.Serials, serial)
	consolePort := uint(0)
	dom.Devices.Consoles = append(dom.Devices.Consoles, libvirtxml.DomainConsole{
		Source: &libvirtxml.DomainChardevSource{Pty: &libvirtxml.DomainChardevSourcePty{}},
		Target: &libvirtxml.DomainConsoleTarget{Type: "serial", Port: &consolePort},
	})
}
