package network

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// LBChain is the Bulwark-owned nat chain holding one jump per Balance,
// reached from PREROUTING and OUTPUT (only for packets to a local address,
// like Chain).
const LBChain = "BULWARK-LB"

// LBSNATChain, reached from POSTROUTING, masquerades balanced connections so
// replies come back through this host.
const LBSNATChain = "BULWARK-LB-SNAT"

// lbCommentPrefix starts the comment of every rule SyncBalances writes; the
// balance's name follows.
const lbCommentPrefix = "bulwark-lb:"

// lbChainPrefix starts the name of the chain of one Balance; 16 hex digits
// of a hash of the balance follow, so the name changes with the content.
const lbChainPrefix = "BWLB-"

var (
	lbJumpSpec = []string{"-m", "addrtype", "--dst-type", "LOCAL", "-j", LBChain}
	// The conntrack match lets only translated connections into
	// LBSNATChain, and it keeps connection tracking on in the namespace
	// while the chains are installed: the kernel turns tracking off in a
	// namespace where no rule needs it any more, and connections balanced
	// before would then lose their translation (see ClearBalances).
	lbSNATJumpSpec = []string{"-m", "conntrack", "--ctstate", "DNAT", "-j", LBSNATChain}
)

// Balance spreads new connections to VIP:Port (Proto) evenly over Targets:
// a load-balanced service address. Established connections keep their
// target when the set changes (conntrack keeps the NAT mapping).
//
// The host holding the VIP DNATs each new connection to a target picked at
// random (iptables' statistic match) and masquerades it, so the target
// replies to this host and conntrack undoes both translations. The target
// sees this host's address as the source, not the client's.
type Balance struct {
	// Name names the service; letters, digits and - _ . only (it goes into
	// rule comments, "bulwark-lb:<Name>").
	Name string
	VIP  netip.Addr
	// Proto is "tcp" or "udp".
	Proto string
	Port  uint16
	// Targets are at least one address:port, of the VIP's IP version; not
	// loopback (a loopback target is unreachable once masqueraded; use a
	// Forward for a workload on 127.0.0.1). Order does not matter:
	// SyncBalances and Balances sort them. A duplicate is an error.
	Targets []netip.AddrPort
}

func (b Balance) String() string {
	ts := make([]string, len(b.Targets))
	for i, t := range b.Targets {
		ts[i] = t.String()
	}
	return fmt.Sprintf("%s %s/%s:%d -> [%s]", b.Name, b.VIP, b.Proto, b.Port, strings.Join(ts, " "))
}

func (b Balance) key() fwdKey { return fwdKey{b.VIP, b.Proto, b.Port} }

// normalize checks b and returns its canonical form, with a sorted copy of
// the targets.
func (b Balance) normalize() (Balance, error) {
	if err := checkBalanceName(b.Name); err != nil {
		return b, fmt.Errorf("balance %s: %w", b, err)
	}
	if !b.VIP.IsValid() || b.VIP.Zone() != "" {
		return b, fmt.Errorf("balance %s: VIP %q is not an IP address without zone", b, b.VIP)
	}
	b.VIP = b.VIP.Unmap()
	if b.VIP.IsUnspecified() || b.VIP.IsMulticast() {
		return b, fmt.Errorf("balance %s: VIP %s is not a unicast address", b, b.VIP)
	}
	if b.Proto != "tcp" && b.Proto != "udp" {
		return b, fmt.Errorf("balance %s: protocol %q is neither tcp nor udp", b, b.Proto)
	}
	if b.Port == 0 {
		return b, fmt.Errorf("balance %s: port 0", b)
	}
	if len(b.Targets) == 0 {
		return b, fmt.Errorf("balance %s: no targets", b)
	}
	ts := make([]netip.AddrPort, len(b.Targets))
	for i, t := range b.Targets {
		a := t.Addr()
		switch {
		case !a.IsValid() || a.Zone() != "":
			return b, fmt.Errorf("balance %s: target %q is not an IP address without zone", b, t)
		case t.Port() == 0:
			return b, fmt.Errorf("balance %s: target %s has port 0", b, t)
		}
		a = a.Unmap()
		switch {
		case a.Is4() != b.VIP.Is4():
			return b, fmt.Errorf("balance %s: VIP and target %s are of different IP versions", b, t)
		case a.IsLoopback():
			return b, fmt.Errorf("balance %s: target %s is a loopback address; balanced traffic is masqueraded and cannot reach loopback (use a Forward for a workload on loopback)", b, t)
		case a.IsUnspecified() || a.IsMulticast():
			return b, fmt.Errorf("balance %s: target %s is not a unicast address", b, t)
		}
		ts[i] = netip.AddrPortFrom(a, t.Port())
	}
	slices.SortFunc(ts, netip.AddrPort.Compare)
	for i := 1; i < len(ts); i++ {
		if ts[i] == ts[i-1] {
			return b, fmt.Errorf("balance %s: target %s twice", b, ts[i])
		}
	}
	b.Targets = ts
	return b, nil
}

func checkBalanceName(n string) error {
	if n == "" {
		return errors.New("no name")
	}
	if len(n) > 200 {
		return errors.New("name longer than 200 bytes")
	}
	for _, r := range n {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return fmt.Errorf("name %q: only letters, digits and - _ . are allowed", n)
		}
	}
	return nil
}

// chain is the name of the chain of a normalized b: content-addressed, so
// an unchanged balance finds its chain in place and a changed one gets a
// new chain that can be filled before traffic is switched to it.
func (b Balance) chain() string {
	var s strings.Builder
	fmt.Fprintf(&s, "bulwark-lb/1\n%s\n%s\n%s\n%d\n", b.Name, b.VIP, b.Proto, b.Port)
	for _, t := range b.Targets {
		s.WriteString(t.String() + "\n")
	}
	sum := sha256.Sum256([]byte(s.String()))
	return lbChainPrefix + hex.EncodeToString(sum[:8])
}

func (b Balance) comment() string { return lbCommentPrefix + b.Name }

// jumpSpec is the rule in LBChain that sends b's new connections to its
// chain.
func (b Balance) jumpSpec() []string {
	return []string{
		"-d", netip.PrefixFrom(b.VIP, b.VIP.BitLen()).String(),
		"-p", b.Proto, "-m", b.Proto, "--dport", strconv.Itoa(int(b.Port)),
		"-m", "comment", "--comment", b.comment(),
		"-j", b.chain(),
	}
}

// targetSpecs are the rules of b's chain: for n targets, rule i DNATs to
// target i with probability 1/(n-i), the last one always, which spreads
// connections evenly.
func (b Balance) targetSpecs() [][]string {
	n := len(b.Targets)
	out := make([][]string, n)
	for i, t := range b.Targets {
		s := []string{"-p", b.Proto}
		if i < n-1 {
			s = append(s, "-m", "statistic", "--mode", "random", "--probability", formatProbability(probability(n-i)))
		}
		out[i] = append(s, "-m", "comment", "--comment", b.comment(), "-j", "DNAT", "--to-destination", t.String())
	}
	return out
}

// snatSpec is the rule in LBSNATChain that masquerades b's connections.
func (b Balance) snatSpec() []string {
	return []string{
		"-p", b.Proto, "-m", "conntrack", "--ctstate", "DNAT",
		"--ctorigdst", b.VIP.String(), "--ctorigdstport", strconv.Itoa(int(b.Port)),
		"-m", "comment", "--comment", b.comment(),
		"-j", "MASQUERADE",
	}
}

// probability is 1/n as the statistic match keeps it: a fraction of 2^31,
// rounded as iptables rounds it.
func probability(n int) uint32 { return uint32(math.Round(float64(1<<31) / float64(n))) }

// formatProbability prints p as iptables prints it back, so a rule reads
// back as it was written.
func formatProbability(p uint32) string {
	return strconv.FormatFloat(float64(p)/(1<<31), 'f', 11, 64)
}

// canonRule turns a rule's arguments (without "-A chain") into a string
// that compares equal for rules iptables treats as equal although it may
// print them differently: a probability as its fraction of 2^31, a single
// address with or without its /32 or /128.
func canonRule(args []string) string {
	out := slices.Clone(args)
	for i := 1; i < len(out); i++ {
		switch out[i-1] {
		case "--probability":
			if f, err := strconv.ParseFloat(out[i], 64); err == nil && f >= 0 && f <= 1 {
				out[i] = "p" + strconv.FormatInt(int64(math.Round(f*(1<<31))), 10)
			}
		case "-d", "-s", "--ctorigdst":
			if p, err := netip.ParsePrefix(out[i]); err == nil && p.IsSingleIP() {
				out[i] = p.Addr().String()
			}
		}
	}
	return strings.Join(out, "\x00")
}

// canonLine is canonRule of a line of `iptables -S`; "" for a line that
// does not parse.
func canonLine(line string) string {
	args, err := splitRule(line)
	if err != nil || len(args) < 2 || args[0] != "-A" {
		return ""
	}
	return canonRule(args[2:])
}

// sameRules reports whether lines (of `iptables -S`) are exactly specs.
func sameRules(lines []string, specs [][]string) bool {
	if len(lines) != len(specs) {
		return false
	}
	for i, l := range lines {
		if canonLine(l) != canonRule(specs[i]) {
			return false
		}
	}
	return true
}

// jumpTarget returns the chain or target a rule line jumps to, "" if none.
func jumpTarget(line string) string {
	args, err := splitRule(line)
	if err != nil {
		return ""
	}
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" || args[i] == "-g" {
			return args[i+1]
		}
	}
	return ""
}

func isLBChain(c string) bool {
	return c == LBChain || c == LBSNATChain || strings.HasPrefix(c, lbChainPrefix)
}

// natState is the nat table as `iptables -t nat -S` prints it.
type natState struct {
	chains []string            // in the order listed, built-in ones included
	rules  map[string][]string // "-A" lines per chain, in order (rule i+1)
}

func parseNat(out string) *natState {
	st := &natState{rules: map[string][]string{}}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "-P", "-N":
			if !slices.Contains(st.chains, f[1]) {
				st.chains = append(st.chains, f[1])
			}
		}
	}
	for _, l := range ruleLines(strings.Split(out, "\n")) {
		c := strings.Fields(l)[1]
		st.rules[c] = append(st.rules[c], strings.TrimRight(l, " "))
	}
	return st
}

func (st *natState) has(chain string) bool { return slices.Contains(st.chains, chain) }

// hasLB reports whether any Bulwark LB chain exists.
func (st *natState) hasLB() bool { return slices.ContainsFunc(st.chains, isLBChain) }

// readNat lists the whole nat table of family p in one go. It must run in
// the Host's namespace (inside Do).
func readNat(p iptables.Protocol) (*natState, error) {
	name := "iptables"
	if p == iptables.ProtocolIPv6 {
		name = "ip6tables"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("%s (Debian package iptables): %w", name, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, "-w", "-t", "nat", "-S")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s -t nat -S: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return parseNat(stdout.String()), nil
}

// ensureSysctl sets a /proc/sys file in the Host's namespace to value,
// writing only when it differs.
func (h *Host) ensureSysctl(path, value string) error {
	var cur []byte
	err := h.Do(func() (err error) {
		cur, err = os.ReadFile(filepath.Join("/proc/sys", path))
		return err
	})
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(cur)) == value {
		return nil
	}
	return h.writeSysctl(path, value)
}

// SyncBalances makes the host's nat tables (iptables for IPv4 VIPs,
// ip6tables for IPv6) hold exactly bs. It is idempotent and safe after an
// agent restart; a Balance unchanged since the last call is not touched
// (there is no moment without its rules). It enables forwarding
// (net.ipv4.ip_forward, net.ipv6.conf.all.forwarding) in the host's
// namespace when there is any balance of that family, and never disables
// it. Two balances with the same VIP, protocol and port are an error, and
// so is any invalid balance; then nothing is changed. A family with no
// balances and no chain is left alone.
//
// Layout, in the nat table of each family:
//
//	PREROUTING, OUTPUT: -m addrtype --dst-type LOCAL -j BULWARK-LB  (one each, at the top)
//	POSTROUTING:        -m conntrack --ctstate DNAT -j BULWARK-LB-SNAT  (one, at the top)
//	BULWARK-LB:         -d VIP -p tcp --dport PORT ... -j BWLB-<hash>    (one per balance)
//	BWLB-<hash>:        -p tcp -m statistic ... -j DNAT --to-destination TARGET  (one per target)
//	BULWARK-LB-SNAT:    -p tcp -m conntrack --ctstate DNAT --ctorigdst VIP --ctorigdstport PORT ... -j MASQUERADE
//
// A changed balance gets a new BWLB chain, filled before the jump to it is
// added and the old jump, chain and masquerade rule are removed. Rules in
// these chains that SyncBalances did not write are removed, and so are
// BWLB chains no balance uses unless a rule elsewhere jumps to them. With
// no balances left the (empty) chains and jumps stay, which keeps the
// connections balanced before working until they end.
func (h *Host) SyncBalances(bs []Balance) error {
	want := map[iptables.Protocol][]Balance{}
	seen := map[fwdKey]Balance{}
	for _, b := range bs {
		n, err := b.normalize()
		if err != nil {
			return err
		}
		if o, dup := seen[n.key()]; dup {
			return fmt.Errorf("balances %s and %s both claim %s/%s:%d", o, n, n.VIP, n.Proto, n.Port)
		}
		seen[n.key()] = n
		want[family(n.VIP)] = append(want[family(n.VIP)], n)
	}
	// The forwards' lock: SyncForwards edits PREROUTING and OUTPUT too,
	// by rule number.
	h.fwdMu.Lock()
	defer h.fwdMu.Unlock()
	for _, p := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		if err := h.syncBalanceFamily(p, want[p]); err != nil {
			return fmt.Errorf("sync balances in %s: %w", h, err)
		}
	}
	return nil
}

func (h *Host) syncBalanceFamily(p iptables.Protocol, want []Balance) error {
	ipt, err := h.iptables(p)
	if err != nil {
		if len(want) == 0 {
			return nil
		}
		return err
	}
	if len(want) > 0 {
		sysctl := "net/ipv4/ip_forward"
		if p == iptables.ProtocolIPv6 {
			sysctl = "net/ipv6/conf/all/forwarding"
		}
		if err := h.ensureSysctl(sysctl, "1"); err != nil {
			return fmt.Errorf("enable forwarding: %w", err)
		}
	}
	return h.Do(func() error {
		st, err := readNat(p)
		if err != nil {
			if len(want) == 0 {
				return nil // no NAT table for this family, and nothing to put there
			}
			return fmt.Errorf("nat table: %w", err)
		}
		if len(want) == 0 && !st.hasLB() {
			return nil
		}
		for _, c := range []string{LBSNATChain, LBChain} {
			if !st.has(c) {
				if err := ipt.NewChain("nat", c); err != nil {
					return fmt.Errorf("create chain %s: %w", c, err)
				}
			}
		}
		// The order keeps every balance working throughout: masquerading
		// before anything is balanced to a target, a chain filled before
		// it is jumped to, the new jump before the old one goes, old
		// masquerade rules last.
		var snat, jumps [][]string
		keep := map[string]bool{}
		for _, b := range want {
			snat = append(snat, b.snatSpec())
			jumps = append(jumps, b.jumpSpec())
			keep[b.chain()] = true
		}
		dropSNAT, err := addMissing(ipt, LBSNATChain, st.rules[LBSNATChain], snat)
		if err != nil {
			return err
		}
		if err := ensureJumpTo(ipt, st, "POSTROUTING", LBSNATChain, lbSNATJumpSpec); err != nil {
			return err
		}
		for _, b := range want {
			if err := fillChain(ipt, st, b); err != nil {
				return err
			}
		}
		dropJumps, err := addMissing(ipt, LBChain, st.rules[LBChain], jumps)
		if err != nil {
			return err
		}
		if err := deleteRules(ipt, LBChain, dropJumps, 0); err != nil {
			return err
		}
		for _, parent := range jumpParents {
			if err := ensureJumpTo(ipt, st, parent, LBChain, lbJumpSpec); err != nil {
				return err
			}
		}
		if err := deleteRules(ipt, LBSNATChain, dropSNAT, 0); err != nil {
			return err
		}
		// Stale balance chains: LBChain no longer jumps to them (and every
		// rule of LBSNATChain left is a MASQUERADE); one that a rule of
		// someone else's still jumps to stays.
		stale := map[string]bool{}
		for _, c := range st.chains {
			if strings.HasPrefix(c, lbChainPrefix) && !keep[c] {
				stale[c] = true
			}
		}
		for c, lines := range st.rules {
			if c == LBChain || c == LBSNATChain || keep[c] || stale[c] {
				continue
			}
			for _, l := range lines {
				delete(stale, jumpTarget(l))
			}
		}
		for _, c := range st.chains {
			if stale[c] {
				if err := ipt.ClearAndDeleteChain("nat", c); err != nil {
					return fmt.Errorf("delete chain %s: %w", c, err)
				}
			}
		}
		return nil
	})
}

// addMissing appends to chain the specs that its current rules (lines)
// lack and returns the numbers of the rules that are not among specs or
// repeat one, for deleteRules; appending does not renumber them.
func addMissing(ipt *iptables.IPTables, chain string, lines []string, specs [][]string) ([]int, error) {
	wanted := map[string]bool{}
	for _, s := range specs {
		wanted[canonRule(s)] = true
	}
	have := map[string]bool{}
	var drop []int
	for i, l := range lines {
		k := canonLine(l)
		if k == "" || !wanted[k] || have[k] {
			drop = append(drop, i+1)
			continue
		}
		have[k] = true
	}
	for _, s := range specs {
		if k := canonRule(s); !have[k] {
			if err := ipt.Append("nat", chain, s...); err != nil {
				return nil, fmt.Errorf("add to %s: %w", chain, err)
			}
			have[k] = true
		}
	}
	return drop, nil
}

// fillChain makes b's chain hold exactly its target rules. A chain left
// half-filled (or edited) gets the right rules appended before the wrong
// ones are deleted.
func fillChain(ipt *iptables.IPTables, st *natState, b Balance) error {
	c, specs := b.chain(), b.targetSpecs()
	old := st.rules[c]
	if st.has(c) {
		if sameRules(old, specs) {
			return nil
		}
	} else if err := ipt.NewChain("nat", c); err != nil {
		return fmt.Errorf("create chain %s for %s: %w", c, b, err)
	}
	for _, s := range specs {
		if err := ipt.Append("nat", c, s...); err != nil {
			return fmt.Errorf("fill chain %s for %s: %w", c, b, err)
		}
	}
	for n := len(old); n >= 1; n-- {
		if err := ipt.DeleteById("nat", c, n); err != nil {
			return fmt.Errorf("delete rule %d of %s: %w", n, c, err)
		}
	}
	return nil
}

// ensureJumpTo leaves exactly one rule spec jumping to chain in parent, at
// the top when it has to insert it. st must be current for parent.
func ensureJumpTo(ipt *iptables.IPTables, st *natState, parent, chain string, spec []string) error {
	lines := st.rules[parent]
	var jumps []int
	for i, l := range lines {
		if jumpsTo(l, chain) {
			jumps = append(jumps, i+1)
		}
	}
	if len(jumps) == 1 && canonLine(lines[jumps[0]-1]) == canonRule(spec) {
		return nil
	}
	if err := ipt.Insert("nat", parent, 1, spec...); err != nil {
		return fmt.Errorf("add jump from %s to %s: %w", parent, chain, err)
	}
	// The insert moved every old jump down by one.
	return deleteRules(ipt, parent, jumps, 1)
}

// Balances returns the balances installed, IPv4 then IPv6, each sorted by
// VIP, protocol and port, with sorted targets. A rule in LBChain or a
// balance's chain that SyncBalances did not write, or a balance without its
// masquerade rule, is an error.
func (h *Host) Balances() ([]Balance, error) {
	var out []Balance
	for _, p := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		if _, err := h.iptables(p); err != nil {
			if p == iptables.ProtocolIPv6 {
				continue
			}
			return nil, err
		}
		var st *natState
		if err := h.Do(func() (err error) { st, err = readNat(p); return err }); err != nil {
			continue // no NAT table for this family: no balances
		}
		bs, err := parseBalances(st)
		if err != nil {
			return nil, fmt.Errorf("balances in %s: %w", h, err)
		}
		out = append(out, bs...)
	}
	slices.SortStableFunc(out, func(a, b Balance) int {
		return cmp.Or(
			cmp.Compare(b4(a.VIP), b4(b.VIP)), // IPv4 first
			a.VIP.Compare(b.VIP),
			cmp.Compare(a.Proto, b.Proto),
			cmp.Compare(a.Port, b.Port),
		)
	})
	return out, nil
}

// parseBalances reads the balances of one family's nat table back, and
// checks that every rule involved is exactly what SyncBalances writes.
func parseBalances(st *natState) ([]Balance, error) {
	if !st.has(LBChain) {
		return nil, nil
	}
	snat := map[string]bool{}
	for _, l := range st.rules[LBSNATChain] {
		snat[canonLine(l)] = true
	}
	var out []Balance
	for _, l := range st.rules[LBChain] {
		b, chain, err := parseLBJump(l)
		if err != nil {
			return nil, err
		}
		if !st.has(chain) {
			return nil, fmt.Errorf("%s jumps to chain %s, which does not exist: %s", LBChain, chain, l)
		}
		for _, tl := range st.rules[chain] {
			args, err := splitRule(tl)
			if err != nil {
				return nil, err
			}
			i := slices.Index(args, "--to-destination")
			if i < 0 || i+1 >= len(args) {
				return nil, fmt.Errorf("rule of %s does not DNAT: %s", chain, tl)
			}
			t, err := netip.ParseAddrPort(args[i+1])
			if err != nil {
				return nil, fmt.Errorf("rule of %s DNATs to %q, not address:port: %s", chain, args[i+1], tl)
			}
			b.Targets = append(b.Targets, t)
		}
		n, err := b.normalize()
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", chain, err)
		}
		if n.chain() != chain || canonLine(l) != canonRule(n.jumpSpec()) || !sameRules(st.rules[chain], n.targetSpecs()) {
			return nil, fmt.Errorf("balance %s: chain %s does not hold what SyncBalances writes for it (want chain %s)", n, chain, n.chain())
		}
		if !snat[canonRule(n.snatSpec())] {
			return nil, fmt.Errorf("balance %s: no masquerade rule in %s", n, LBSNATChain)
		}
		out = append(out, n)
	}
	return out, nil
}

// parseLBJump reads a rule of LBChain: the balance without its targets, and
// the chain it jumps to.
func parseLBJump(line string) (Balance, string, error) {
	args, err := splitRule(line)
	if err != nil {
		return Balance{}, "", err
	}
	if len(args) < 2 || args[0] != "-A" || args[1] != LBChain {
		return Balance{}, "", fmt.Errorf("not a rule of %s: %s", LBChain, line)
	}
	opt := map[string]string{}
	for i := 2; i+1 < len(args); i++ {
		if strings.HasPrefix(args[i], "-") && args[i] != "-m" {
			if _, dup := opt[args[i]]; dup {
				return Balance{}, "", fmt.Errorf("unexpected rule in %s: %s", LBChain, line)
			}
			opt[args[i]] = args[i+1]
			i++
		}
	}
	var b Balance
	d, err := netip.ParsePrefix(opt["-d"])
	if err != nil || !d.IsSingleIP() {
		return b, "", fmt.Errorf("rule of %s matches %q, not one address: %s", LBChain, opt["-d"], line)
	}
	b.VIP, b.Proto = d.Addr(), opt["-p"]
	port, err := strconv.ParseUint(opt["--dport"], 10, 16)
	if err != nil {
		return b, "", fmt.Errorf("rule of %s matches port %q: %s", LBChain, opt["--dport"], line)
	}
	b.Port = uint16(port)
	name, ok := strings.CutPrefix(opt["--comment"], lbCommentPrefix)
	if !ok {
		return b, "", fmt.Errorf("rule of %s has comment %q, not %s<name>: %s", LBChain, opt["--comment"], lbCommentPrefix, line)
	}
	b.Name = name
	chain := opt["-j"]
	if !strings.HasPrefix(chain, lbChainPrefix) {
		return b, "", fmt.Errorf("rule of %s jumps to %q, not a %s chain: %s", LBChain, chain, lbChainPrefix, line)
	}
	return b, chain, nil
}

// ClearBalances removes every Bulwark LB chain (LBChain, LBSNATChain and
// the BWLB chains) and every rule that jumps to one, from iptables and
// ip6tables. It is idempotent. It leaves forwarding enabled.
//
// Connections balanced before may break: when no other rule in the
// namespace uses connection tracking, the kernel stops tracking, so their
// packets are no longer translated. SyncBalances(nil) instead removes every
// balance and keeps them working.
func (h *Host) ClearBalances() error {
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
			// Balancing stops first, masquerading last, so no new
			// connection is balanced without being masqueraded.
			for _, phase := range []func(string) bool{
				func(c string) bool { return c == LBChain || strings.HasPrefix(c, lbChainPrefix) },
				func(c string) bool { return c == LBSNATChain },
			} {
				st, err := readNat(p)
				if err != nil {
					return nil // no NAT table for this family: nothing of ours there
				}
				for _, c := range st.chains {
					if phase(c) {
						continue // deleted below
					}
					var nums []int
					for i, l := range st.rules[c] {
						if phase(jumpTarget(l)) {
							nums = append(nums, i+1)
						}
					}
					if err := deleteRules(ipt, c, nums, 0); err != nil {
						return err
					}
				}
				var gone []string
				for _, c := range st.chains {
					if phase(c) {
						gone = append(gone, c)
					}
				}
				// Flush all first: they may jump to each other.
				for _, c := range gone {
					if err := ipt.ClearChain("nat", c); err != nil {
						return fmt.Errorf("flush chain %s: %w", c, err)
					}
				}
				for _, c := range gone {
					if err := ipt.DeleteChain("nat", c); err != nil {
						return fmt.Errorf("delete chain %s: %w", c, err)
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("clear balances in %s: %w", h, err)
		}
	}
	return nil
}
