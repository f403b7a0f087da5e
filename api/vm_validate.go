package api

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a VMSpec enforced at the API.
const (
	// MaxVMDisks is the number of virtio disks a VM may have (vda to vdp).
	MaxVMDisks = 16
	// MaxVMNetworks is the number of NICs a VM may have.
	MaxVMNetworks = 8
	// MaxKernelCmdline is the longest kernel command line accepted: x86's
	// COMMAND_LINE_SIZE is 2048 bytes including the terminating NUL.
	MaxKernelCmdline = 2047
	// maxIfname is Linux's IFNAMSIZ (16) less the NUL.
	maxIfname = 15
	// maxPath bounds a path; Linux's PATH_MAX is 4096 including the NUL.
	maxPath = 4095
)

// Disk formats.
const (
	DiskFormatRaw   = "raw"
	DiskFormatQCOW2 = "qcow2"
)

// Validate checks what can be known about a VM spec without looking at a
// host: path syntax, formats, MAC and bridge-name syntax, counts and lengths.
// Whether the files and the bridge exist is for the host's driver to find
// out when it starts the VM. It returns every problem found, joined.
func (v *VMSpec) Validate() error {
	if v == nil {
		return nil
	}
	var errs []error
	if len(v.Disks) > MaxVMDisks {
		errs = append(errs, fmt.Errorf("vm: %d disks; at most %d are allowed", len(v.Disks), MaxVMDisks))
	}
	seenDisk := make(map[string]int, len(v.Disks))
	for i, d := range v.Disks {
		what := fmt.Sprintf("vm: disk %d", i+1)
		if err := validateHostPath(what, d.Path); err != nil {
			errs = append(errs, err)
		} else if j, dup := seenDisk[filepath.Clean(d.Path)]; dup {
			errs = append(errs, fmt.Errorf("%s: path %q is already disk %d", what, d.Path, j))
		} else {
			seenDisk[filepath.Clean(d.Path)] = i + 1
		}
		switch d.Format {
		case "", DiskFormatRaw, DiskFormatQCOW2:
		default:
			errs = append(errs, fmt.Errorf("%s: format %q is not supported: use %q or %q", what, d.Format, DiskFormatRaw, DiskFormatQCOW2))
		}
	}

	if v.Kernel != "" {
		if err := validateHostPath("vm: kernel", v.Kernel); err != nil {
			errs = append(errs, err)
		}
	}
	if v.Initrd != "" {
		if v.Kernel == "" {
			errs = append(errs, errors.New("vm: an initrd needs a kernel to boot with"))
		}
		if err := validateHostPath("vm: initrd", v.Initrd); err != nil {
			errs = append(errs, err)
		}
	}
	if v.Cmdline != "" {
		if v.Kernel == "" {
			errs = append(errs, errors.New("vm: a kernel command line needs a kernel to boot"))
		}
		if len(v.Cmdline) > MaxKernelCmdline {
			errs = append(errs, fmt.Errorf("vm: kernel command line is %d bytes long; at most %d are allowed", len(v.Cmdline), MaxKernelCmdline))
		}
		if i := strings.IndexFunc(v.Cmdline, unicode.IsControl); i >= 0 {
			errs = append(errs, fmt.Errorf("vm: kernel command line has a control character at byte %d", i))
		} else if i := nonXMLChar(v.Cmdline); i >= 0 {
			errs = append(errs, fmt.Errorf("vm: kernel command line has invalid UTF-8 or a non-character (U+FFFE, U+FFFF) at byte %d", i))
		}
	}

	if len(v.Networks) > MaxVMNetworks {
		errs = append(errs, fmt.Errorf("vm: %d networks; at most %d are allowed", len(v.Networks), MaxVMNetworks))
	}
	seenMAC := make(map[string]int, len(v.Networks))
	for i, n := range v.Networks {
		what := fmt.Sprintf("vm: network %d", i+1)
		if err := ValidateBridgeName(n.Bridge); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
		if n.MAC == "" {
			continue
		}
		mac, err := ParseMAC(n.MAC)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			continue
		}
		if j, dup := seenMAC[mac]; dup {
			errs = append(errs, fmt.Errorf("%s: mac %s is already network %d's", what, mac, j))
		} else {
			seenMAC[mac] = i + 1
		}
	}
	return errors.Join(errs...)
}

// validateHostPath checks that p is a clean-enough absolute path: libvirt
// and QEMU resolve relative paths against their own working directory, not
// the caller's.
func validateHostPath(what, p string) error {
	switch {
	case p == "":
		return fmt.Errorf("%s: path is empty", what)
	case len(p) > maxPath:
		return fmt.Errorf("%s: path is %d bytes long; at most %d are allowed", what, len(p), maxPath)
	case !filepath.IsAbs(p):
		return fmt.Errorf("%s: path %q is not absolute", what, p)
	case strings.IndexFunc(p, unicode.IsControl) >= 0:
		return fmt.Errorf("%s: path %q has a control character", what, p)
	case nonXMLChar(p) >= 0:
		return fmt.Errorf("%s: path %q has invalid UTF-8 or a non-character (U+FFFE, U+FFFF)", what, p)
	case strings.HasSuffix(p, "/"):
		return fmt.Errorf("%s: path %q names a directory, not a file", what, p)
	}
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return fmt.Errorf("%s: path %q has a \"..\" element", what, p)
		}
	}
	return nil
}

// nonXMLChar is the byte index of the first rune of s, besides control
// characters, that XML 1.0 cannot carry (invalid UTF-8, U+FFFE, U+FFFF), or
// -1. Paths and the kernel command line go into domain XML, whose encoder
// would turn such a rune into U+FFFD: the guest would boot another command
// line, or another file, than the spec names.
func nonXMLChar(s string) int {
	for i, r := range s {
		if r == 0xFFFE || r == 0xFFFF || r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") {
			return i
		}
	}
	return -1
}

// ValidateBridgeName checks that name is a valid Linux network interface
// name (what the kernel's dev_valid_name accepts): 1 to 15 bytes, not "."
// or "..", and no '/', ':', whitespace or control character.
func ValidateBridgeName(name string) error {
	switch {
	case name == "":
		return errors.New("bridge name is empty")
	case len(name) > maxIfname:
		return fmt.Errorf("bridge name %q is %d bytes long; Linux allows at most %d", name, len(name), maxIfname)
	case name == "." || name == "..":
		return fmt.Errorf("bridge name %q is not a valid interface name", name)
	}
	for _, c := range name {
		if c == '/' || c == ':' || unicode.IsSpace(c) || unicode.IsControl(c) || c > unicode.MaxASCII {
			return fmt.Errorf("bridge name %q is not a valid interface name: no '/', ':', spaces or non-ASCII characters", name)
		}
	}
	return nil
}

// ParseMAC reads a unicast Ethernet address written as six colon-separated
// hex pairs and returns it in lowercase canonical form.
func ParseMAC(s string) (string, error) {
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 || len(s) != len("00:00:00:00:00:00") || strings.Contains(s, "-") {
		return "", fmt.Errorf("mac %q is not an Ethernet address like 52:54:00:12:34:56", s)
	}
	if hw[0]&1 != 0 {
		return "", fmt.Errorf("mac %q is a multicast address; a NIC needs a unicast one", s)
	}
	if hw.String() == "00:00:00:00:00:00" {
		return "", fmt.Errorf("mac %q is all zeros", s)
	}
	return hw.String(), nil
}
