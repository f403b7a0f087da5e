package network

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Chain is the Bulwark-owned chain in the nat table (of iptables and of
// ip6tables) that holds one DNAT rule per Forward.
const Chain = "BULWARK-DNAT"

// CommentPrefix starts the comment of every rule in Chain; the workload's
// name follows.
const CommentPrefix = "bulwark:"

// jumpSpec is the rule in PREROUTING (traffic from outside) and OUTPUT
// (traffic from the host itself) that sends packets to a local address
// through Chain. The addrtype match keeps OUTPUT from rewriting traffic to a
// VIP that currently lives on another host.
var jumpSpec = []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", Chain}

var jumpParents = []string{"PREROUTING", "OUTPUT"}

// Forward forwards a port of a VIP to a workload on this host.
type Forward struct {
	// Workload names the workload; the rule's comment is "bulwark:<Workload>".
	// Letters, digits and - _ . : / @ + only.
	Workload string
	VIP      netip.Addr
	// Proto is "tcp" or "udp".
	Proto string
	Port  uint16
	// ToAddr is where the traffic goes. The zero value means the host
	// itself: the rule DNATs to VIP:ToPort, which reaches a listener on the
	// wildcard address or on the VIP (unlike REDIRECT, which rewrites to the
	// interface's primary address, or 127.0.0.1 for local traffic). ToAddr
	// equal to VIP means the same and Forwards reports it as the zero value.
	// An IPv4 loopback ToAddr works (SyncForwards sets route_localnet in the
	// namespace); an IPv6 loopback one cannot (the kernel never routes ::1
	// off-host) and is refused. Any other address must be routable from the
	// host, with forwarding enabled, as for any DNAT.
	ToAddr netip.Addr
	ToPort uint16
}

func (f Forward) String() string {
	to := "host"
	if f.ToAddr.IsValid() {
		to = f.ToAddr.String()
	}
	return fmt.Sprintf("%s %s/%s:%d -> %s:%d", f.Workload, f.VIP, f.Proto, f.Port, to, f.ToPort)
}

type fwdKey struct {
	vip   netip.Addr
	proto string
	port  uint16
}

func (f Forward) key() fwdKey { return fwdKey{f.VIP, f.Proto, f.Port} }

// normalize checks f and returns its canonical form.
func (f Forward) normalize() (Forward, error) {
	if err := checkWorkload(f.Workload); err != nil {
		return f, fmt.Errorf("forward %s: %w", f, err)
	}
	if !f.VIP.IsValid() || f.VIP.Zone() != "" {
		return f, fmt.Errorf("forward %s: VIP %q is not an IP address without zone", f, f.VIP)
	}
	f.VIP = f.VIP.Unmap()
	if f.Proto != "tcp" && f.Proto != "udp" {
		return f, fmt.Errorf("forward %s: protocol %q is neither tcp nor udp", f, f.Proto)
	}
	if f.Port == 0 || f.ToPort == 0 {
		return f, fmt.Errorf("forward %s: port 0", f)
	}
	if f.ToAddr.IsValid() {
		if f.ToAddr.Zone() != "" {
			return f, fmt.Errorf("forward %s: target %s has a zone", f, f.ToAddr)
		}
		f.ToAddr = f.ToAddr.Unmap()
		if f.ToAddr.Is4() != f.VIP.Is4() {
			return f, fmt.Errorf("forward %s: VIP and target are of different IP versions", f)
		}
		if f.ToAddr.Is6() && f.ToAddr.IsLoopback() {
			return f, fmt.Errorf("forward %s: IPv6 traffic cannot be forwarded to ::1; leave the target empty to forward to the host itself", f)
		}
		if f.ToAddr.IsUnspecified() || f.ToAddr.IsMulticast() {
			return f, fmt.Errorf("forward %s: target %s is not a unicast address", f, f.ToAddr)
		}
		if f.ToAddr == f.VIP {
			f.ToAddr = netip.Addr{}
		}
	}
	return f, nil
}

func checkWorkload(w string) error {
	if w == "" {
		return errors.New("no workload name")
	}
	if len(w) > 200 {
		return fmt.Errorf("workload name longer than 200 bytes")
	}
	for _, r := range w {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:/@+", r)
		if !ok {
			return fmt.Errorf("workload name %q: only letters, digits and - _ . : / @ + can go in an iptables comment here", w)
		}
	}
	return nil
}

// ruleSpec is the rule in Chain for a normalized f.
func (f Forward) ruleSpec() []string {
	to := f.ToAddr
	if !to.IsValid() {
		to = f.VIP
	}
	return []string{
		"-d", netip.PrefixFrom(f.VIP, f.VIP.BitLen()).String(),
		"-p", f.Proto, "-m", f.Proto, "--dport", strconv.Itoa(int(f.Port)),
		"-m", "comment", "--comment", CommentPrefix + f.Workload,
		"-j", "DNAT", "--to-destination", netip.AddrPortFrom(to, f.ToPort).String(),
	}
}

// parseRule reads back a rule of Chain as `iptables -S` prints it.
func parseRule(line string) (Forward, error) {
	args, err := splitRule(line)
	if err != nil {
		return Forward{}, err
	}
	if len(args) < 2 || args[0] != "-A" || args[1] != Chain {
		return Forward{}, fmt.Errorf("not a rule of %s: %s", Chain, line)
	}
	var f Forward
	var to netip.AddrPort
	seen := map[string]bool{}
	for i := 2; i < len(args); i++ {
		opt := args[i]
		val := ""
		if i+1 < len(args) {
			val = args[i+1]
		}
		switch opt {
		case "-d", "-p", "--dport", "--comment", "-j", "--to-destination":
			if seen[opt] || i+1 >= len(args) {
				return Forward{}, fmt.Errorf("unexpected rule in %s: %s", Chain, line)
			}
			seen[opt] = true
			i++
		case "-m":
			i++
			continue
		default:
			return Forward{}, fmt.Errorf("unexpected %q in rule of %s: %s", opt, Chain, line)
		}
		switch opt {
		case "-d":
			p, err := netip.ParsePrefix(val)
			if err != nil || !p.IsSingleIP() {
				return Forward{}, fmt.Errorf("rule of %s matches %q, not one address: %s", Chain, val, line)
			}
			f.VIP = p.Addr()
		case "-p":
			f.Proto = val
		case "--dport":
			n, err := strconv.ParseUint(val, 10, 16)
			if err != nil {
				return Forward{}, fmt.Errorf("rule of %s matches port %q: %s", Chain, val, line)
			}
			f.Port = uint16(n)
		case "--comment":
			w, ok := strings.CutPrefix(val, CommentPrefix)
			if !ok {
				return Forward{}, fmt.Errorf("rule of %s has comment %q, not %s<workload>: %s", Chain, val, CommentPrefix, line)
			}
			f.Workload = w
		case "-j":
			if val != "DNAT" {
				return Forward{}, fmt.Errorf("rule of %s jumps to %s, not DNAT: %s", Chain, val, line)
			}
		case "--to-destination":
			to, err = netip.ParseAddrPort(val)
			if err != nil {
				return Forward{}, fmt.Errorf("rule of %s DNATs to %q, not address:port: %s", Chain, val, line)
			}
		}
	}
	if !f.VIP.IsValid() || f.Proto == "" || f.Port == 0 || f.Workload == "" || !to.IsValid() {
		return Forward{}, fmt.Errorf("incomplete rule in %s: %s", Chain, line)
	}
	f.ToAddr, f.ToPort = to.Addr(), to.Port()
	return f.normalize()
}

// splitRule splits a line of `iptables -S` into arguments: words, or
// double-quoted strings with backslash escapes.
func splitRule(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case inQuote && c == '"':
			inQuote = false
		case inQuote:
			cur.WriteByte(c)
		case c == '"':
			inQuote, inWord = true, true
		case c == ' ' || c == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// ruleLines returns the "-A" lines of `iptables -S chain`, in order (rule
// number i+1 for line i).
func ruleLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "-A ") {
			out = append(out, l)
		}
	}
	return out
}

func jumpsTo(line, chain string) bool {
	args, err := splitRule(line)
	if err != nil {
		return false
	}
	for i := 0; i+1 < len(args); i++ {
		if (args[i] == "-j" || args[i] == "-g") && args[i+1] == chain {
			return true
		}
	}
	return false
}

func family(a netip.Addr) iptables.Protocol {
	if a.Is4() {
		return iptables.ProtocolIPv4
	}
	return iptables.ProtocolIPv6
}

func (h *Host) iptables(p iptables.Protocol) (*iptables.IPTables, error) {
	h.iptMu.Lock()
	defer h.iptMu.Unlock()
	if t := h.ipt[p]; t != nil {
		return t, nil
	}
	var t *iptables.IPTables
	err := h.Do(func() (err error) {
		t, err = iptables.NewWithProtocol(p)
		return err
	})
	if err != nil {
		name := "iptables"
		if p == iptables.ProtocolIPv6 {
			name = "ip6tables"
		}
		return nil, fmt.Errorf("%s (Debian package iptables): %w", name, err)
	}
	h.ipt[p] = t
	return t, nil
}

// SyncForwards makes Chain hold exactly fwds, in the nat tables of iptables
// (IPv4 VIPs) and ip6tables (IPv6 VIPs), with exactly one jump to it from
// PREROUTING and one from OUTPUT. It is idempotent and leaves rules that
// are already right in place (no moment without them), so an agent can call
// it again after a restart. Two forwards of the same VIP, protocol and port
// are an error.
//
// A family whose chain does not exist and that gets no forwards is left
// alone, so a host without IPv6 NAT works with IPv4 forwards.
func (h *Host) SyncForwards(fwds []Forward) error {
	want := map[iptables.Protocol][]Forward{}
	seen := map[fwdKey]Forward{}
	localnet := false
	for _, f := range fwds {
		n, err := f.normalize()
		if err != nil {
			return err
		}
		if o, dup := seen[n.key()]; dup {
			return fmt.Errorf("forwards %s and %s both claim %s/%s:%d", o, n, n.VIP, n.Proto, n.Port)
		}
		seen[n.key()] = n
		want[family(n.VIP)] = append(want[family(n.VIP)], n)
		localnet = localnet || (n.ToAddr.Is4() && n.ToAddr.IsLoopback())
	}
	h.fwdMu.Lock()
	defer h.fwdMu.Unlock()
	if localnet {
		// DNAT to 127.0.0.0/8 of packets that came from outside needs the
		// kernel to route loopback destinations from non-loopback
		// interfaces; "all" ORs into every interface.
		if err := h.writeSysctl("net/ipv4/conf/all/route_localnet", "1"); err != nil {
			return fmt.Errorf("sync forwards in %s: enable route_localnet: %w", h, err)
		}
	}
	for _, p := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		if err := h.syncFamily(p, want[p]); err != nil {
			return fmt.Errorf("sync forwards in %s: %w", h, err)
		}
	}
	return nil
}

func (h *Host) syncFamily(p iptables.Protocol, want []Forward) error {
	ipt, err := h.iptables(p)
	if err != nil {
		if len(want) == 0 {
			return nil
		}
		return err
	}
	return h.Do(func() error {
		exists, err := ipt.ChainExists("nat", Chain)
		if err != nil {
			if len(want) == 0 {
				return nil // no NAT table for this family, and nothing to put there
			}
			return fmt.Errorf("nat table: %w", err)
		}
		if !exists && len(want) == 0 {
			return nil
		}
		if !exists {
			if err := ipt.NewChain("nat", Chain); err != nil {
				return fmt.Errorf("create chain %s: %w", Chain, err)
			}
		}
		for _, parent := range jumpParents {
			if err := ensureJump(ipt, parent); err != nil {
				return err
			}
		}
		lines, err := ipt.List("nat", Chain)
		if err != nil {
			return fmt.Errorf("list %s: %w", Chain, err)
		}
		wanted := map[Forward]bool{}
		for _, f := range want {
			wanted[f] = true
		}
		have := map[Forward]bool{}
		var drop []int // rule numbers, ascending
		for i, l := range ruleLines(lines) {
			f, err := parseRule(l)
			if err != nil || !wanted[f] || have[f] {
				drop = append(drop, i+1)
				continue
			}
			have[f] = true
		}
		// Add first, then delete: a changed forward keeps its old rule
		// until the new one is in. Appending does not renumber the rules
		// being dropped.
		for _, f := range want {
			if have[f] {
				continue
			}
			if err := ipt.Append("nat", Chain, f.ruleSpec()...); err != nil {
				return fmt.Errorf("add %s: %w", f, err)
			}
		}
		for _, n := range slices.Backward(drop) {
			if err := ipt.DeleteById("nat", Chain, n); err != nil {
				return fmt.Errorf("delete rule %d of %s: %w", n, Chain, err)
			}
		}
		return nil
	})
}

// ensureJump leaves exactly one jumpSpec rule to Chain in parent, at the
// top when it has to insert it.
func ensureJump(ipt *iptables.IPTables, parent string) error {
	lines, err := ipt.List("nat", parent)
	if err != nil {
		return fmt.Errorf("list %s: %w", parent, err)
	}
	var jumps []int
	for i, l := range ruleLines(lines) {
		if jumpsTo(l, Chain) {
			jumps = append(jumps, i+1)
		}
	}
	if len(jumps) == 1 {
		ok, err := ipt.Exists("nat", parent, jumpSpec...)
		if err != nil {
			return fmt.Errorf("check jump from %s: %w", parent, err)
		}
		if ok {
			return nil
		}
	}
	if err := ipt.Insert("nat", parent, 1, jumpSpec...); err != nil {
		return fmt.Errorf("add jump from %s to %s: %w", parent, Chain, err)
	}
	// The insert moved every old jump down by one.
	return deleteRules(ipt, parent, jumps, 1)
}

func deleteRules(ipt *iptables.IPTables, chain string, nums []int, shift int) error {
	for _, n := range slices.Backward(nums) {
		if err := ipt.DeleteById("nat", chain, n+shift); err != nil {
			return fmt.Errorf("delete rule %d of %s: %w", n+shift, chain, err)
		}
	}
	return nil
}

// Forwards returns the forwards installed in Chain, IPv4 then IPv6, each
// sorted by VIP, protocol and port. A rule in Chain that SyncForwards did
// not write is an error.
func (h *Host) Forwards() ([]Forward, error) {
	var out []Forward
	for _, p := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		ipt, err := h.iptables(p)
		if err != nil {
			if p == iptables.ProtocolIPv6 {
				continue
			}
			return nil, err
		}
		err = h.Do(func() error {
			exists, err := ipt.ChainExists("nat", Chain)
			if err != nil || !exists {
				return nil // no chain (or no NAT for this family): no forwards
			}
			lines, err := ipt.List("nat", Chain)
			if err != nil {
				return fmt.Errorf("list %s: %w", Chain, err)
			}
			for _, l := range ruleLines(lines) {
				f, err := parseRule(l)
				if err != nil {
					return err
				}
				out = append(out, f)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("forwards in %s: %w", h, err)
		}
	}
	slices.SortStableFunc(out, func(a, b Forward) int {
		return cmp.Or(
			cmp.Compare(b4(a.VIP), b4(b.VIP)), // IPv4 first
			a.VIP.Compare(b.VIP),
			cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.Port, b.Port),
		)
	})
	return out, nil
}

func b4(a netip.Addr) int {
	if a.Is4() {
		return 0
	}
	return 1
}

// ClearForwards removes the jumps to Chain and Chain itself, from iptables
// and ip6tables. It is idempotent. It leaves route_localnet as it is.
func (h *Host) ClearForwards() error {
	h.fwdMu.Lock()
	defer h.fwdMu.Unlock()
	for _, p := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		ipt, err := h.iptables(p)
		if err != nil {
			if p == iptables.ProtocolIPv6 {
				continue
			}
			return err
		}
		err = h.Do(func() error {
			exists, err := ipt.ChainExists("nat", Chain)
			if err != nil {
				return nil // no NAT table for this family: nothing of ours there
			}
			for _, parent := range jumpParents {
				lines, err := ipt.List("nat", parent)
				if err != nil {
					return fmt.Errorf("list %s: %w", parent, err)
				}
				var jumps []int
				for i, l := range ruleLines(lines) {
					if jumpsTo(l, Chain) {
						jumps = append(jumps, i+1)
					}
				}
				if err := deleteRules(ipt, parent, jumps, 0); err != nil {
					return err
				}
			}
			if !exists {
				return nil
			}
			if err := ipt.ClearAndDeleteChain("nat", Chain); err != nil {
				return fmt.Errorf("delete chain %s: %w", Chain, err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clear forwards in %s: %w", h, err)
		}
	}
	return nil
}
