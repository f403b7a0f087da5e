// Package topo builds a test network of simulated hosts on one machine with
// iproute2: a bridge in a network namespace of its own, and one namespace
// per host (and optionally one for a client) joined to it by a veth pair.
// Tests and the dev cluster use it; it needs root and the ip command.
//
//	netns <prefix>bridge:  br0 (bridge, multicast snooping off)
//	                        ├─ v<host> ── eth0 in netns <prefix><host>   .11, .12, ...
//	                        └─ vclient ── eth0 in netns <prefix>client   .200
//
// IPv6 addresses mirror the IPv4 ones digit for digit (…::11, …::12,
// …::200), so a host is easy to recognise in either family; they are added
// with nodad so they work at once. MAC addresses are 02:b1 followed by the
// host's IPv4 address.
package topo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// NetnsDir is where iproute2 keeps named network namespaces.
const NetnsDir = "/var/run/netns"

// Defaults for Spec's subnets: test-only private ranges.
var (
	DefaultSubnet4 = netip.MustParsePrefix("10.213.0.0/24")
	DefaultSubnet6 = netip.MustParsePrefix("fd00:b1:1::/64")
)

const (
	firstHost = 11  // hosts get .11, .12, ...
	clientNum = 200 // the client gets .200
	maxHosts  = clientNum - firstHost
	bridge    = "br0"
	ifaceName = "eth0"
)

// Spec describes a topology.
type Spec struct {
	// Prefix starts the name of every namespace made, e.g. "bw1234-"; it
	// keeps parallel topologies apart and lets RemoveStale find leftovers.
	Prefix string
	// Hosts are the hosts' names, e.g. h1, h2, h3: lower-case letters,
	// digits and '-', at most 14 characters, not "bridge" or "client".
	Hosts []string
	// Client adds a namespace "client" that is on the segment but no host.
	Client bool
	// Subnet4 and Subnet6 default to DefaultSubnet4 and DefaultSubnet6; at
	// most /24 and /112.
	Subnet4, Subnet6 netip.Prefix
}

// Node is a host or the client.
type Node struct {
	Name  string
	Netns string
	// Iface is the node's end of its veth pair, "eth0".
	Iface        string
	MAC          net.HardwareAddr
	Addr4, Addr6 netip.Prefix
}

// Topology is a created topology.
type Topology struct {
	BridgeNetns      string
	Hosts            []Node
	Client           *Node
	Subnet4, Subnet6 netip.Prefix
}

// Create builds the topology s describes. On error it removes whatever it
// had made.
func Create(ctx context.Context, s Spec) (_ *Topology, err error) {
	if err := checkIP(); err != nil {
		return nil, err
	}
	if err := s.normalize(); err != nil {
		return nil, err
	}
	t := &Topology{BridgeNetns: s.Prefix + "bridge", Subnet4: s.Subnet4, Subnet6: s.Subnet6}
	var made []string // namespaces, in creation order
	defer func() {
		if err != nil {
			var errs []error
			for _, ns := range slices.Backward(made) {
				errs = append(errs, deleteNetns(ns))
			}
			if e := errors.Join(errs...); e != nil {
				err = fmt.Errorf("%w (and cleaning up: %v)", err, e)
			}
		}
	}()

	if err := ipCmd(ctx, "netns", "add", t.BridgeNetns); err != nil {
		return nil, err
	}
	made = append(made, t.BridgeNetns)
	br := []string{"-n", t.BridgeNetns}
	// Snooping off: without an MLD querier on the segment the bridge could
	// otherwise stop forwarding solicited-node multicast (IPv6 neighbour
	// discovery) to ports it has not seen join.
	if err := ipCmd(ctx, append(br, "link", "add", bridge, "type", "bridge", "mcast_snooping", "0")...); err != nil {
		return nil, err
	}
	for _, l := range []string{"lo", bridge} {
		if err := ipCmd(ctx, append(br, "link", "set", l, "up")...); err != nil {
			return nil, err
		}
	}

	add := func(name string, num int) (Node, error) {
		n := Node{Name: name, Netns: s.Prefix + name, Iface: ifaceName}
		n.Addr4 = netip.PrefixFrom(addr4(s.Subnet4, num), s.Subnet4.Bits())
		n.Addr6 = netip.PrefixFrom(addr6(s.Subnet6, num), s.Subnet6.Bits())
		a4 := n.Addr4.Addr().As4()
		n.MAC = net.HardwareAddr{0x02, 0xb1, a4[0], a4[1], a4[2], a4[3]}
		if err := ipCmd(ctx, "netns", "add", n.Netns); err != nil {
			return n, err
		}
		made = append(made, n.Netns)
		in := []string{"-n", n.Netns}
		steps := [][]string{
			// Made inside the bridge's namespace, so the bridge-side name
			// cannot clash with another topology's.
			append(br, "link", "add", port(name), "type", "veth", "peer", "name", ifaceName, "address", n.MAC.String(), "netns", n.Netns),
			append(br, "link", "set", port(name), "master", bridge, "up"),
			append(in, "link", "set", "lo", "up"),
			append(in, "addr", "add", n.Addr4.String(), "dev", ifaceName),
			append(in, "addr", "add", n.Addr6.String(), "dev", ifaceName, "nodad"),
			append(in, "link", "set", ifaceName, "up"),
		}
		for _, args := range steps {
			if err := ipCmd(ctx, args...); err != nil {
				return n, err
			}
		}
		return n, nil
	}
	for i, h := range s.Hosts {
		n, err := add(h, firstHost+i)
		if err != nil {
			return nil, err
		}
		t.Hosts = append(t.Hosts, n)
	}
	if s.Client {
		n, err := add("client", clientNum)
		if err != nil {
			return nil, err
		}
		t.Client = &n
	}
	return t, nil
}

func (s *Spec) normalize() error {
	if s.Prefix == "" {
		return errors.New("topo: no namespace name prefix")
	}
	for _, r := range s.Prefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return fmt.Errorf("topo: prefix %q: only letters, digits and - _ . please", s.Prefix)
		}
	}
	if len(s.Hosts) == 0 {
		return errors.New("topo: no hosts")
	}
	if len(s.Hosts) > maxHosts {
		return fmt.Errorf("topo: %d hosts, at most %d", len(s.Hosts), maxHosts)
	}
	seen := map[string]bool{}
	for _, h := range s.Hosts {
		if err := checkName(h); err != nil {
			return err
		}
		if h == "bridge" || h == "client" {
			return fmt.Errorf("topo: host name %q is taken by the topology", h)
		}
		if seen[h] {
			return fmt.Errorf("topo: host %q twice", h)
		}
		seen[h] = true
	}
	if !s.Subnet4.IsValid() {
		s.Subnet4 = DefaultSubnet4
	}
	if !s.Subnet6.IsValid() {
		s.Subnet6 = DefaultSubnet6
	}
	if !s.Subnet4.Addr().Is4() || s.Subnet4.Bits() > 24 {
		return fmt.Errorf("topo: IPv4 subnet %s: need an IPv4 prefix of /24 or shorter", s.Subnet4)
	}
	if !s.Subnet6.Addr().Is6() || s.Subnet6.Addr().Is4In6() || s.Subnet6.Bits() > 112 {
		return fmt.Errorf("topo: IPv6 subnet %s: need an IPv6 prefix of /112 or shorter", s.Subnet6)
	}
	s.Subnet4, s.Subnet6 = s.Subnet4.Masked(), s.Subnet6.Masked()
	return nil
}

func checkName(h string) error {
	if h == "" || len(h) > 14 {
		return fmt.Errorf("topo: host name %q: 1 to 14 characters", h)
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("topo: host name %q: lower-case letters, digits and '-' only", h)
		}
	}
	return nil
}

// port is the bridge-side end of a node's veth pair.
func port(node string) string { return "v" + node }

func addr4(subnet netip.Prefix, num int) netip.Addr {
	b := subnet.Addr().As4()
	b[3] += byte(num)
	return netip.AddrFrom4(b)
}

// addr6 puts num's decimal digits, read as hex, in the last 16 bits: 11 ->
// ::11, 200 -> ::200.
func addr6(subnet netip.Prefix, num int) netip.Addr {
	v, _ := strconv.ParseUint(strconv.Itoa(num), 16, 16)
	b := subnet.Addr().As16()
	b[14] |= byte(v >> 8)
	b[15] |= byte(v)
	return netip.AddrFrom16(b)
}

// Host returns the host of that name.
func (t *Topology) Host(name string) (Node, bool) {
	for _, n := range t.Hosts {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Namespaces lists every namespace of the topology: the hosts', the
// client's, the bridge's.
func (t *Topology) Namespaces() []string {
	var out []string
	for _, n := range t.Hosts {
		out = append(out, n.Netns)
	}
	if t.Client != nil {
		out = append(out, t.Client.Netns)
	}
	return append(out, t.BridgeNetns)
}

// Destroy deletes every namespace of the topology (which deletes its
// links). Namespaces already gone are fine, so it is idempotent.
func (t *Topology) Destroy() error {
	var errs []error
	for _, ns := range t.Namespaces() {
		errs = append(errs, deleteNetns(ns))
	}
	return errors.Join(errs...)
}

// PowerOff makes host look powered off on the wire: its bridge port goes
// down, so its eth0 loses carrier and nothing it sends or is sent reaches
// the segment. Its addresses (IPv4 and IPv6) stay, as on a machine that
// loses power, and come back usable with PowerOn. Processes running in the
// host's namespace keep running: stopping them is up to the caller.
func (t *Topology) PowerOff(host string) error { return t.setPort(host, "down") }

// PowerOn undoes PowerOff.
func (t *Topology) PowerOn(host string) error { return t.setPort(host, "up") }

func (t *Topology) setPort(host, state string) error {
	if _, ok := t.Host(host); !ok {
		return fmt.Errorf("topo: no host %q", host)
	}
	return ipCmd(context.Background(), "-n", t.BridgeNetns, "link", "set", port(host), state)
}

// Command returns a command that runs name in the node's namespace:
// `ip netns exec <netns> name args...`.
func (n Node) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Netns, name}, args...)...)
}

// RemoveStale deletes every namespace whose name starts with prefix, such
// as the leftovers of a killed test run.
func RemoveStale(prefix string) error {
	if prefix == "" {
		return errors.New("topo: RemoveStale needs a prefix (refusing to delete every namespace)")
	}
	names, err := Netns()
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			errs = append(errs, deleteNetns(n))
		}
	}
	return errors.Join(errs...)
}

// Netns lists the named network namespaces.
func Netns() ([]string, error) {
	ents, err := os.ReadDir(NetnsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("topo: list namespaces: %w", err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

func deleteNetns(name string) error {
	if _, err := os.Lstat(filepath.Join(NetnsDir, name)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	err := ipCmd(context.Background(), "netns", "del", name)
	if err != nil {
		if _, serr := os.Lstat(filepath.Join(NetnsDir, name)); errors.Is(serr, fs.ErrNotExist) {
			return nil // deleted concurrently
		}
	}
	return err
}

func checkIP() error {
	if _, err := exec.LookPath("ip"); err != nil {
		return fmt.Errorf("topo: the ip command (Debian package iproute2) is not installed: %w", err)
	}
	return nil
}

func ipCmd(ctx context.Context, args ...string) error {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if os.Geteuid() != 0 {
			msg += " (network namespaces need root)"
		}
		return fmt.Errorf("topo: ip %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return nil
}

// LinkMAC reads an interface's MAC in a namespace (`ip -j link show`).
func LinkMAC(ctx context.Context, netns, iface string) (net.HardwareAddr, error) {
	out, err := exec.CommandContext(ctx, "ip", "-j", "-n", netns, "link", "show", "dev", iface).Output()
	if err != nil {
		return nil, fmt.Errorf("topo: ip -n %s link show %s: %w", netns, iface, err)
	}
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		return nil, fmt.Errorf("topo: ip -n %s link show %s: unexpected output %q", netns, iface, out)
	}
	return net.ParseMAC(links[0].Address)
}

// Neighbour returns the MAC address and state (e.g. REACHABLE, STALE) of
// the node's neighbour-table entry for addr (`ip -j neigh show`); a nil MAC
// and "" when it has none, and a nil MAC for an entry without one (e.g.
// INCOMPLETE, FAILED).
func (n Node) Neighbour(ctx context.Context, addr netip.Addr) (net.HardwareAddr, string, error) {
	out, err := exec.CommandContext(ctx, "ip", "-j", "-n", n.Netns, "neigh", "show", addr.String(), "dev", n.Iface).Output()
	if err != nil {
		return nil, "", fmt.Errorf("topo: ip -n %s neigh show %s: %w", n.Netns, addr, err)
	}
	var ents []struct {
		LLAddr string   `json:"lladdr"`
		State  []string `json:"state"`
	}
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, "", nil
	}
	if err := json.Unmarshal(out, &ents); err != nil {
		return nil, "", fmt.Errorf("topo: ip -n %s neigh show %s: unexpected output %q", n.Netns, addr, out)
	}
	if len(ents) == 0 {
		return nil, "", nil
	}
	state := strings.Join(ents[0].State, ",")
	if ents[0].LLAddr == "" {
		return nil, state, nil
	}
	mac, err := net.ParseMAC(ents[0].LLAddr)
	if err != nil {
		return nil, "", fmt.Errorf("topo: ip -n %s neigh show %s: %w", n.Netns, addr, err)
	}
	return mac, state, nil
}
