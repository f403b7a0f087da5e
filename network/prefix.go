package network

import (
	"fmt"
	"net/netip"
)

// ParsePrefix parses a floating IP as written in a workload spec: an address
// with the prefix length of the subnet it lives in, "10.1.2.3/24" or
// "fd00::5/64". The address is kept as written (not masked).
//
// It refuses what cannot be a host's address on a LAN: multicast, loopback,
// unspecified, link-local, the IPv4 limited broadcast, and a subnet's own
// network address or (IPv4) broadcast address.
func ParsePrefix(s string) (netip.Prefix, error) {
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
