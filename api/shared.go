package api

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// VolumeMode says how many holders a volume may have.
type VolumeMode string

const (
	// VolumeExclusive: one workload at a time, read-write, guarded by a
	// lock in the store and an on-storage lease (docs/storage.md).
	VolumeExclusive VolumeMode = "exclusive"
	// VolumeSharedRead: any number of workloads, read-only.
	VolumeSharedRead VolumeMode = "shared-read"
)

// LeaseSuffix is appended to a file volume's path to name its on-storage
// lease when none is given.
const LeaseSuffix = ".bulwark-lease"

// VolumeSpec is the body of POST /v1/volumes.
type VolumeSpec struct {
	Name string `json:"name"`
	// Path is a disk image or block device on storage every host reaches.
	Path string     `json:"path"`
	Mode VolumeMode `json:"mode,omitempty"`
	// LeasePath is where the on-storage lease lives (exclusive volumes);
	// default Path + LeaseSuffix. Block devices need one on a shared
	// filesystem.
	LeasePath string `json:"lease_path,omitempty"`
	// Format is the disk format for VMs: "raw" (default) or "qcow2".
	Format string `json:"format,omitempty"`
}

// Volume is the stored record, at /bulwark/v1/volumes/<name>.
type Volume struct {
	Schema int `json:"schema"`
	VolumeSpec
	CreatedAt time.Time `json:"created_at"`
}

// Claim is an exclusive hold of one shared resource (a volume, a floating
// IP) by one allocation. Its Epoch is the allocation's epoch: the fencing
// token. A claim is taken by the agent of the host that runs the
// allocation, in a transaction guarded by that allocation still existing at
// that epoch; it is released by that agent once the workload is confirmed
// stopped, or by the leader once the host is fenced — never by a timer.
// Volume locks live at /bulwark/v1/locks/<volume>, floating-IP claims at
// /bulwark/v1/vipclaims/<address>.
type Claim struct {
	Schema   int       `json:"schema"`
	Resource string    `json:"resource"`
	Workload string    `json:"workload"`
	Host     string    `json:"host"`
	Epoch    int64     `json:"epoch"`
	Since    time.Time `json:"since"`
}

// VolumeView is a volume as the API returns it.
type VolumeView struct {
	Volume
	// Holder is the current lock, if any.
	Holder *Claim `json:"holder,omitempty"`
	// Users are the workloads whose spec attaches the volume.
	Users []string `json:"users,omitempty"`
}

// Normalize fills the defaults in.
func (v *VolumeSpec) Normalize() {
	if v.Mode == "" {
		v.Mode = VolumeExclusive
	}
	if v.Format == "" {
		v.Format = "raw"
	}
	if v.LeasePath == "" && v.Mode == VolumeExclusive && v.Path != "" && !strings.HasPrefix(v.Path, "/dev/") {
		v.LeasePath = v.Path + LeaseSuffix
	}
}

// Validate checks a (normalized) volume spec.
func (v *VolumeSpec) Validate() error {
	var errs []error
	if err := ValidateName("volume", v.Name); err != nil {
		errs = append(errs, err)
	}
	if err := validateHostPath("volume "+v.Name, v.Path); err != nil {
		errs = append(errs, err)
	}
	switch v.Mode {
	case VolumeExclusive:
		if v.LeasePath == "" {
			errs = append(errs, fmt.Errorf("volume %s: a block device needs --lease-path on a shared filesystem for its on-storage lease", v.Name))
		} else if err := validateHostPath("volume "+v.Name+" lease", v.LeasePath); err != nil {
			errs = append(errs, err)
		} else if v.LeasePath == v.Path {
			errs = append(errs, fmt.Errorf("volume %s: the lease path must not be the volume itself", v.Name))
		}
	case VolumeSharedRead:
		if v.LeasePath != "" {
			errs = append(errs, fmt.Errorf("volume %s: shared-read volumes have no lease", v.Name))
		}
	default:
		errs = append(errs, fmt.Errorf("volume mode %q is unknown: use exclusive or shared-read", v.Mode))
	}
	switch v.Format {
	case "raw", "qcow2":
	default:
		errs = append(errs, fmt.Errorf("volume format %q is unknown: use raw or qcow2", v.Format))
	}
	return errors.Join(errs...)
}

// VIPSpec is the body of POST /v1/vips: a floating IP.
type VIPSpec struct {
	// Address with its prefix length, e.g. "192.0.2.10/24" or "2001:db8::10/64".
	Address string `json:"address"`
	// Interface the address goes on, on the holding host. With Network it
	// may be empty: each host says which of its interfaces is on which
	// network.
	Interface string `json:"interface,omitempty"`
	// Network names a network hosts declare they are attached to
	// (`bulwarkd agent --network NAME=IFACE`); only those hosts can hold
	// the address, and it must lie in the network's subnet.
	Network string `json:"network,omitempty"`
	// Workload the address follows; empty: not attached.
	Workload string `json:"workload,omitempty"`
}

// VIP is the stored record, at /bulwark/v1/vips/<address without prefix>.
type VIP struct {
	Schema int `json:"schema"`
	VIPSpec
	CreatedAt time.Time `json:"created_at"`
	// Service: the address load-balances this service (set when the
	// service is created with it, cleared when it is deleted). The leader
	// then points Workload at one running member (the anchor: its host
	// holds the address, so the address fails over as any floating IP
	// does) and keeps Pool up to date.
	Service string `json:"service,omitempty"`
	Pool    *Pool  `json:"pool,omitempty"`
}

// VIPView is a floating IP as the API returns it.
type VIPView struct {
	VIP
	// Holder is the host that holds the address now (its claim), if any.
	Holder *Claim `json:"holder,omitempty"`
}

// HostNetwork is a network a host is attached to, as its agent registers it.
type HostNetwork struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	// Subnets are the interface's own addresses with prefix, as found.
	Subnets []string `json:"subnets,omitempty"`
}

// Publish forwards a port of a floating IP to a container's port.
type Publish struct {
	VIP           string `json:"vip"`
	Port          int    `json:"port"`
	ContainerPort int    `json:"container_port"`
	Proto         string `json:"proto,omitempty"`
}

// ParseVIPPrefix reads "ADDR/PREFIX" and refuses what can never be a
// floating IP. The address keeps its host bits.
func ParseVIPPrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address with a prefix length (like 192.0.2.10/24 or 2001:db8::10/64)", s)
	}
	a := p.Addr()
	switch {
	case a.Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address: write the IPv4 form (like 192.0.2.10/24)", s)
	case a.IsUnspecified():
		return netip.Prefix{}, fmt.Errorf("%q is the unspecified address, not a host's address", s)
	case a.IsLoopback():
		return netip.Prefix{}, fmt.Errorf("%q is a loopback address: a floating IP must be reachable from other hosts", s)
	case a.IsMulticast():
		return netip.Prefix{}, fmt.Errorf("%q is a multicast address, not a host's address", s)
	case a.IsLinkLocalUnicast():
		return netip.Prefix{}, fmt.Errorf("%q is a link-local address: use an address from the hosts' subnet", s)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Prefix{}, fmt.Errorf("%q is the broadcast address, not a host's address", s)
	}
	// In subnets with room for a network and broadcast address (shorter than
	// /31 or /127), those two are not host addresses.
	if p.Bits() < a.BitLen()-1 {
		if a == p.Masked().Addr() {
			return netip.Prefix{}, fmt.Errorf("%q is the network address of %s, not a host's address (it has no host bits)", s, p.Masked())
		}
		if a.Is4() && a == lastAddr(p) {
			return netip.Prefix{}, fmt.Errorf("%q is the broadcast address of %s, not a host's address", s, p.Masked())
		}
	}
	return p, nil
}

// lastAddr is the highest address in p's subnet.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// VIPKeyName is the store key name of an address: the address alone.
func VIPKeyName(p netip.Prefix) string { return p.Addr().String() }

// Validate checks a VIP spec on its own (the server checks it against the
// hosts' networks too).
func (v *VIPSpec) Validate() error {
	var errs []error
	if _, err := ParseVIPPrefix(v.Address); err != nil {
		errs = append(errs, err)
	}
	if v.Interface == "" && v.Network == "" {
		errs = append(errs, errors.New("a floating IP needs --interface IFACE or --network NAME"))
	}
	if v.Interface != "" {
		if err := ValidateBridgeName(v.Interface); err != nil {
			errs = append(errs, fmt.Errorf("interface: %w", err))
		}
	}
	if v.Network != "" {
		if err := ValidateName("network", v.Network); err != nil {
			errs = append(errs, err)
		}
	}
	if v.Workload != "" {
		if err := ValidateName("workload", v.Workload); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ParsePublish reads "VIP:PORT:CONTAINERPORT[/tcp|udp]" ("[v6]:PORT:CPORT"
// for IPv6).
func ParsePublish(s string) (Publish, error) {
	bad := fmt.Errorf("publish %q: use VIP:PORT:CONTAINERPORT[/tcp|/udp], e.g. 192.0.2.10:80:8080 or [2001:db8::10]:80:8080", s)
	spec, proto, _ := strings.Cut(s, "/")
	i := strings.LastIndex(spec, ":")
	if i < 0 {
		return Publish{}, bad
	}
	hostPort, cport := spec[:i], spec[i+1:]
	ap, err := netip.ParseAddrPort(hostPort)
	if err != nil {
		return Publish{}, bad
	}
	var p Publish
	p.VIP, p.Port, p.Proto = ap.Addr().String(), int(ap.Port()), proto
	if _, err := fmt.Sscanf(cport, "%d", &p.ContainerPort); err != nil || fmt.Sprint(p.ContainerPort) != cport {
		return Publish{}, bad
	}
	return p, p.Validate()
}

// Validate checks one port forward.
func (p *Publish) Validate() error {
	if _, err := netip.ParseAddr(p.VIP); err != nil {
		return fmt.Errorf("publish: %q is not an IP address", p.VIP)
	}
	if p.Port < 1 || p.Port > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 {
		return fmt.Errorf("publish %s: ports must be from 1 to 65535", p.VIP)
	}
	switch p.Proto {
	case "", "tcp", "udp":
	default:
		return fmt.Errorf("publish %s:%d: protocol %q is unknown: use tcp or udp", p.VIP, p.Port, p.Proto)
	}
	return nil
}
