package network

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/network/nettest"
	"github.com/bulwarkhq/bulwark/network/topo"
)

// ---- pure unit tests: validation, rendering, parsing ----

func TestBalanceNormalize(t *testing.T) {
	vip := netip.MustParseAddr("10.213.0.5")
	t1 := netip.MustParseAddrPort("10.213.0.12:8080")
	t2 := netip.MustParseAddrPort("10.213.0.13:8080")
	in := Balance{Name: "web", VIP: vip, Proto: "tcp", Port: 80, Targets: []netip.AddrPort{t2, t1}}
	got, err := in.normalize()
	want := Balance{Name: "web", VIP: vip, Proto: "tcp", Port: 80, Targets: []netip.AddrPort{t1, t2}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("normalize(%v) = %v, %v; want %v", in, got, err, want)
	}
	if in.Targets[0] != t2 {
		t.Error("normalize sorted the caller's slice")
	}
	mapped := Balance{Name: "web", VIP: netip.AddrFrom16(vip.As16()), Proto: "tcp", Port: 80,
		Targets: []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom16(t1.Addr().As16()), 8080), t2}}
	if got, err := mapped.normalize(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("4in6 addresses: %v, %v; want %v", got, err, want)
	}

	vip6 := netip.MustParseAddr("fd00:b1:1::5")
	t6 := netip.MustParseAddrPort("[fd00:b1:1::12]:8080")
	ts := func(a ...string) []netip.AddrPort {
		var out []netip.AddrPort
		for _, s := range a {
			out = append(out, netip.MustParseAddrPort(s))
		}
		return out
	}
	ok := []netip.AddrPort{t1}
	for _, c := range []struct {
		name, want string
		b          Balance
	}{
		{"no name", "no name", Balance{VIP: vip, Proto: "tcp", Port: 80, Targets: ok}},
		{"space in name", "only letters", Balance{Name: "a b", VIP: vip, Proto: "tcp", Port: 80, Targets: ok}},
		{"colon in name", "only letters", Balance{Name: "a:b", VIP: vip, Proto: "tcp", Port: 80, Targets: ok}},
		{"quote in name", "only letters", Balance{Name: `a"b`, VIP: vip, Proto: "tcp", Port: 80, Targets: ok}},
		{"long name", "longer than 200", Balance{Name: strings.Repeat("n", 201), VIP: vip, Proto: "tcp", Port: 80, Targets: ok}},
		{"no VIP", "not an IP address", Balance{Name: "w", Proto: "tcp", Port: 80, Targets: ok}},
		{"VIP with zone", "not an IP address", Balance{Name: "w", VIP: netip.MustParseAddr("fe80::1%eth0"), Proto: "tcp", Port: 80, Targets: ts("[fe80::2]:1")}},
		{"multicast VIP", "not a unicast", Balance{Name: "w", VIP: netip.MustParseAddr("224.0.0.1"), Proto: "tcp", Port: 80, Targets: ok}},
		{"sctp", "neither tcp nor udp", Balance{Name: "w", VIP: vip, Proto: "sctp", Port: 80, Targets: ok}},
		{"port 0", "port 0", Balance{Name: "w", VIP: vip, Proto: "tcp", Targets: ok}},
		{"no targets", "no targets", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80}},
		{"zero target", "not an IP address", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80, Targets: []netip.AddrPort{{}}}},
		{"target port 0", "port 0", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80, Targets: ts("10.213.0.12:0")}},
		{"mixed families", "different IP versions", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80, Targets: []netip.AddrPort{t1, t6}}},
		{"v4 target of v6 VIP", "different IP versions", Balance{Name: "w", VIP: vip6, Proto: "tcp", Port: 80, Targets: ok}},
		{"IPv6 loopback target", "loopback", Balance{Name: "w", VIP: vip6, Proto: "tcp", Port: 80, Targets: ts("[::1]:8080")}},
		{"IPv4 loopback target", "loopback", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80, Targets: ts("127.0.0.1:8080")}},
		{"unspecified target", "not a unicast", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80, Targets: ts("0.0.0.0:8080")}},
		{"multicast target", "not a unicast", Balance{Name: "w", VIP: vip6, Proto: "tcp", Port: 80, Targets: ts("[ff02::1]:8080")}},
		{"duplicate target", "twice", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80, Targets: []netip.AddrPort{t1, t2, t1}}},
		{"duplicate target, one 4in6", "twice", Balance{Name: "w", VIP: vip, Proto: "tcp", Port: 80,
			Targets: []netip.AddrPort{t1, netip.AddrPortFrom(netip.AddrFrom16(t1.Addr().As16()), 8080)}}},
	} {
		_, err := c.b.normalize()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: normalize(%v) = %v; want an error saying %q", c.name, c.b, err, c.want)
		}
	}
}

// printedIn renders a rule spec of chain the way `iptables -S` prints it
// (iptables-nft quotes comments).
func printedIn(chain string, spec []string) string {
	var b strings.Builder
	b.WriteString("-A " + chain)
	for i, a := range spec {
		b.WriteByte(' ')
		if i > 0 && spec[i-1] == "--comment" {
			a = `"` + a + `"`
		}
		b.WriteString(a)
	}
	return b.String()
}

// natText renders what `iptables -t nat -S` prints for bs as installed by
// SyncBalances.
func natText(bs ...Balance) string {
	lines := []string{"-P PREROUTING ACCEPT", "-P INPUT ACCEPT", "-P OUTPUT ACCEPT", "-P POSTROUTING ACCEPT",
		"-N " + LBChain, "-N " + LBSNATChain}
	for _, b := range bs {
		lines = append(lines, "-N "+b.chain())
	}
	lines = append(lines,
		printedIn("PREROUTING", lbJumpSpec), printedIn("OUTPUT", lbJumpSpec), printedIn("POSTROUTING", lbSNATJumpSpec))
	for _, b := range bs {
		lines = append(lines, printedIn(LBChain, b.jumpSpec()))
	}
	for _, b := range bs {
		lines = append(lines, printedIn(LBSNATChain, b.snatSpec()))
	}
	for _, b := range bs {
		for _, s := range b.targetSpecs() {
			lines = append(lines, printedIn(b.chain(), s))
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestBalanceRules(t *testing.T) {
	// Probabilities as iptables prints them back (1/3 is kept as a
	// fraction of 2^31 and prints as 0.33333333349).
	for n, want := range map[int]string{2: "0.50000000000", 3: "0.33333333349", 4: "0.25000000000"} {
		if got := formatProbability(probability(n)); got != want {
			t.Errorf("probability 1/%d prints as %s, want %s", n, got, want)
		}
	}
	if canonRule([]string{"--probability", "0.33333333349"}) != canonRule([]string{"--probability", "0.333333333333"}) ||
		canonRule([]string{"--probability", "0.33333333349"}) == canonRule([]string{"--probability", "0.34"}) {
		t.Error("canonRule does not compare probabilities as iptables keeps them")
	}
	if canonRule([]string{"-d", "10.0.0.1/32", "--ctorigdst", "fd00::1/128"}) != canonRule([]string{"-d", "10.0.0.1", "--ctorigdst", "fd00::1"}) {
		t.Error("canonRule does not ignore /32 and /128")
	}

	vip := netip.MustParseAddr("10.213.0.5")
	web := Balance{Name: "web", VIP: vip, Proto: "tcp", Port: 80, Targets: []netip.AddrPort{
		netip.MustParseAddrPort("10.213.0.14:8080"), netip.MustParseAddrPort("10.213.0.12:8080"), netip.MustParseAddrPort("10.213.0.13:8080")}}
	web, err := web.normalize()
	if err != nil {
		t.Fatal(err)
	}
	got := [][]string{web.jumpSpec(), web.snatSpec()}
	got = append(got, web.targetSpecs()...)
	c := web.chain()
	want := [][]string{
		strings.Fields("-d 10.213.0.5/32 -p tcp -m tcp --dport 80 -m comment --comment bulwark-lb:web -j " + c),
		strings.Fields("-p tcp -m conntrack --ctstate DNAT --ctorigdst 10.213.0.5 --ctorigdstport 80 -m comment --comment bulwark-lb:web -j MASQUERADE"),
		strings.Fields("-p tcp -m statistic --mode random --probability 0.33333333349 -m comment --comment bulwark-lb:web -j DNAT --to-destination 10.213.0.12:8080"),
		strings.Fields("-p tcp -m statistic --mode random --probability 0.50000000000 -m comment --comment bulwark-lb:web -j DNAT --to-destination 10.213.0.13:8080"),
		strings.Fields("-p tcp -m comment --comment bulwark-lb:web -j DNAT --to-destination 10.213.0.14:8080"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("rules of %v:\n%q\nwant\n%q", web, got, want)
	}

	// The chain's name: content-addressed, so it changes with any field
	// and not with the order the targets came in.
	if !regexp.MustCompile(`^BWLB-[0-9a-f]{16}$`).MatchString(c) {
		t.Errorf("chain name %q", c)
	}
	reordered := web
	reordered.Targets = []netip.AddrPort{web.Targets[2], web.Targets[0], web.Targets[1]}
	if r, _ := reordered.normalize(); r.chain() != c {
		t.Error("the chain name depends on the order of the targets")
	}
	for _, change := range []func(*Balance){
		func(b *Balance) { b.Name = "web2" },
		func(b *Balance) { b.VIP = netip.MustParseAddr("10.213.0.6") },
		func(b *Balance) { b.Proto = "udp" },
		func(b *Balance) { b.Port = 81 },
		func(b *Balance) { b.Targets = b.Targets[1:] },
		func(b *Balance) {
			b.Targets = []netip.AddrPort{b.Targets[0], b.Targets[1], netip.MustParseAddrPort("10.213.0.14:8081")}
		},
	} {
		b := web
		change(&b)
		if b.chain() == c {
			t.Errorf("%v has the chain name of %v", b, web)
		}
	}

	// Round trip through what iptables prints; nft prints comments
	// quoted, legacy iptables may not, and may print /32 on --ctorigdst.
	web6, err := Balance{Name: "web6.v_2", VIP: netip.MustParseAddr("fd00:b1:1::5"), Proto: "udp", Port: 53, Targets: []netip.AddrPort{
		netip.MustParseAddrPort("[fd00:b1:1::12]:5353"), netip.MustParseAddrPort("[fd00:b1:1::13]:5353")}}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	one, err := Balance{Name: "one", VIP: vip, Proto: "udp", Port: 53, Targets: []netip.AddrPort{netip.MustParseAddrPort("10.213.0.12:53")}}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		natText(web, one),
		strings.ReplaceAll(natText(web, one), `"`, ""),
		strings.ReplaceAll(natText(web, one), "--ctorigdst 10.213.0.5", "--ctorigdst 10.213.0.5/32"),
	} {
		got, err := parseBalances(parseNat(text))
		if want := []Balance{web, one}; err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseBalances of\n%s= %v, %v;\nwant %v", text, got, err, want)
		}
	}
	if got, err := parseBalances(parseNat(natText(web6))); err != nil || !reflect.DeepEqual(got, []Balance{web6}) {
		t.Errorf("parseBalances IPv6 = %v, %v", got, err)
	}
	if got, err := parseBalances(parseNat("-P PREROUTING ACCEPT\n")); err != nil || got != nil {
		t.Errorf("parseBalances without %s = %v, %v", LBChain, got, err)
	}

	// Anything SyncBalances would not have written is an error.
	good := natText(web)
	other := web
	other.Name = "other"
	for name, text := range map[string]string{
		"foreign rule in LBChain": good + "-A " + LBChain + " -p udp -j ACCEPT\n",
		"no masquerade rule":      strings.ReplaceAll(good, printedIn(LBSNATChain, web.snatSpec())+"\n", ""),
		"a target rule missing":   strings.ReplaceAll(good, printedIn(c, web.targetSpecs()[1])+"\n", ""),
		"a target rule extra":     good + printedIn(c, web.targetSpecs()[2]) + "\n",
		"chain name of other content": strings.ReplaceAll(good, " -j "+c+"\n", " -j "+other.chain()+"\n") +
			"-N " + other.chain() + "\n" + strings.ReplaceAll(strings.Join(ruleLines(strings.Split(good, "\n")), "\n"), "-A "+c+" ", "-A "+other.chain()+" "),
		"wrong probability":     strings.Replace(good, "0.33333333349", "0.50000000000", 1),
		"jump to missing chain": strings.ReplaceAll(good, "-N "+c+"\n", ""),
		"jump to other target":  strings.ReplaceAll(good, " -j "+c+"\n", " -j ACCEPT\n"),
		"comment not ours":      strings.ReplaceAll(good, "--comment \"bulwark-lb:web\" -j "+c, "--comment \"web\" -j "+c),
	} {
		if got, err := parseBalances(parseNat(text)); err == nil {
			t.Errorf("%s: parseBalances of\n%s= %v, want an error", name, text, got)
		}
	}
}

// ---- real-network tests ----

// lbBackend runs a TCP server on port (all addresses) inside h's namespace
// that greets every connection with name and then answers every line it
// reads with name, a space and the line, until t ends.
func lbBackend(t testing.TB, h *Host, port uint16, name string) {
	t.Helper()
	var ln net.Listener
	if err := h.Do(func() (err error) { ln, err = net.Listen("tcp", ":"+strconv.Itoa(int(port))); return err }); err != nil {
		t.Fatalf("listen on :%d in %s: %v", port, h, err)
	}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				c.SetDeadline(time.Now().Add(time.Minute))
				if _, err := c.Write([]byte(name + "\n")); err != nil {
					return
				}
				r := bufio.NewReader(c)
				for {
					l, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(name + " " + l)); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// lbUDPBackend answers every datagram to port (all addresses) inside h's
// namespace with name, until t ends.
func lbUDPBackend(t testing.TB, h *Host, port uint16, name string) {
	t.Helper()
	var pc net.PacketConn
	if err := h.Do(func() (err error) { pc, err = net.ListenPacket("udp", ":"+strconv.Itoa(int(port))); return err }); err != nil {
		t.Fatalf("listen on udp :%d in %s: %v", port, h, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(name), from)
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
}

// lbConn is a connection to a balanced address, greeted by backend.
type lbConn struct {
	c       net.Conn
	r       *bufio.Reader
	backend string
}

// lbDial connects from inside h's namespace to addr and reads the greeting.
func lbDial(h *Host, addr netip.AddrPort) (*lbConn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), 2*time.Second)
		return err
	})
	if err != nil {
		return nil, err
	}
	lc := &lbConn{c: c, r: bufio.NewReader(c)}
	c.SetDeadline(time.Now().Add(2 * time.Second))
	l, err := lc.r.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	c.SetDeadline(time.Time{})
	lc.backend = strings.TrimSpace(l)
	return lc, nil
}

// echo sends msg on the connection and returns the answer.
func (lc *lbConn) echo(msg string) (string, error) {
	lc.c.SetDeadline(time.Now().Add(2 * time.Second))
	defer lc.c.SetDeadline(time.Time{})
	if _, err := lc.c.Write([]byte(msg + "\n")); err != nil {
		return "", err
	}
	l, err := lc.r.ReadString('\n')
	return strings.TrimSpace(l), err
}

// lbSpread opens n new connections, one after another, from h to addr and
// counts the backends that greeted them. Any failure is fatal.
func lbSpread(t testing.TB, h *Host, addr netip.AddrPort, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := range n {
		lc, err := lbDial(h, addr)
		if err != nil {
			t.Fatalf("connection %d from %s to %s: %v (seen so far: %v)", i, h, addr, err, seen)
		}
		seen[lc.backend]++
		lc.c.Close()
	}
	return seen
}

// lbUDPSpread sends one datagram from each of n new sockets in h to addr
// and counts the backends that answered. Any failure is fatal.
func lbUDPSpread(t testing.TB, h *Host, addr netip.AddrPort, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := range n {
		var c net.Conn
		if err := h.Do(func() (err error) { c, err = net.Dial("udp", addr.String()); return err }); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		var got string
		var err error
		for range 3 { // a datagram may wait for neighbour resolution; resend
			c.Write([]byte("hi"))
			c.SetReadDeadline(time.Now().Add(time.Second))
			var k int
			if k, err = c.Read(buf); err == nil {
				got = string(buf[:k])
				break
			}
		}
		c.Close()
		if err != nil {
			t.Fatalf("datagram %d from %s to %s: %v (seen so far: %v)", i, h, addr, err, seen)
		}
		seen[got]++
	}
	return seen
}

// lbRules returns the lines of `<cmd> -t nat` (cmd is iptables-save or
// ip6tables-save) run in node that concern balances, with packet counters
// when counters is set.
func lbRules(t testing.TB, n topo.Node, cmd string, counters bool) []string {
	t.Helper()
	args := []string{"-t", "nat"}
	if counters {
		args = append(args, "-c")
	}
	out, err := n.Command(t.Context(), cmd, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, LBChain) || strings.Contains(l, lbChainPrefix) {
			lines = append(lines, l)
		}
	}
	return lines
}

// countLines counts the lines that contain sub; a NUL in sub stands for
// the end of the line.
func countLines(lines []string, sub string) int {
	n := 0
	for _, l := range lines {
		if strings.Contains(l+"\x00", sub) {
			n++
		}
	}
	return n
}

func readSysctl(t testing.TB, h *Host, path string) string {
	t.Helper()
	var b []byte
	if err := h.Do(func() (err error) { b, err = os.ReadFile(filepath.Join("/proc/sys", path)); return err }); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func mustNormalize(t testing.TB, b Balance) Balance {
	t.Helper()
	n, err := b.normalize()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func checkSeen(t testing.TB, what string, seen map[string]int, want ...string) {
	t.Helper()
	for _, w := range want {
		if seen[w] == 0 {
			t.Errorf("%s: backend %s never answered: %v", what, w, seen)
		}
	}
	for got := range seen {
		if !slices.Contains(want, got) {
			t.Errorf("%s: answered by %q, which is not a target: %v", what, got, seen)
		}
	}
}

// TestBalances balances a VIP of a "director" host (h1) over three
// backend hosts (h2, h3, h4), each serving TCP on 8080 and UDP on 5353 and
// answering with its name, for a client on the same segment. Without the
// masquerade a backend would answer the client directly and the client
// would reject the answer, so working connections prove it too.
func TestBalances(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 4, true)
	dn := tp.Hosts[0]
	dir, client := open(t, dn.Netns), open(t, tp.Client.Netns)
	vip4 := netip.PrefixFrom(netip.MustParseAddr("10.213.0.5"), tp.Subnet4.Bits())
	if !tp.Subnet4.Contains(vip4.Addr()) {
		t.Fatalf("VIP %s outside the topology's subnet %s", vip4, tp.Subnet4)
	}
	if err := dir.AddAddress("eth0", vip4); err != nil {
		t.Fatal(err)
	}
	var backends []string
	var tcp4, udp4, tcp6 []netip.AddrPort
	for _, n := range tp.Hosts[1:] {
		h := open(t, n.Netns)
		lbBackend(t, h, 8080, n.Name)
		lbUDPBackend(t, h, 5353, n.Name)
		backends = append(backends, n.Name)
		tcp4 = append(tcp4, netip.AddrPortFrom(n.Addr4.Addr(), 8080))
		udp4 = append(udp4, netip.AddrPortFrom(n.Addr4.Addr(), 5353))
		tcp6 = append(tcp6, netip.AddrPortFrom(n.Addr6.Addr(), 8080))
	}
	web := Balance{Name: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80, Targets: []netip.AddrPort{tcp4[2], tcp4[0], tcp4[1]}}
	if err := dir.SyncBalances([]Balance{web}); err != nil {
		t.Fatal(err)
	}
	if got := readSysctl(t, dir, "net/ipv4/ip_forward"); got != "1" {
		t.Errorf("net.ipv4.ip_forward = %s after SyncBalances", got)
	}
	vipWeb := netip.AddrPortFrom(vip4.Addr(), 80)

	// (1) New connections from another host (PREROUTING) reach every
	// target; so do the director's own (OUTPUT).
	checkSeen(t, "client to "+vipWeb.String(), lbSpread(t, client, vipWeb, 60), backends...)
	local := lbSpread(t, dir, vipWeb, 10)
	for got := range local {
		if !slices.Contains(backends, got) {
			t.Errorf("the director's own connection to %s answered by %q", vipWeb, got)
		}
	}

	// (5) Balances reads back the normalized balance.
	webN := mustNormalize(t, web)
	if got, err := dir.Balances(); err != nil || !reflect.DeepEqual(got, []Balance{webN}) {
		t.Errorf("Balances() = %v, %v; want %v", got, err, []Balance{webN})
	}
	rules := lbRules(t, dn, "iptables-save", true)
	for sub, want := range map[string]int{
		"-A PREROUTING -m addrtype --dst-type LOCAL -j " + LBChain + "\x00":     1,
		"-A OUTPUT -m addrtype --dst-type LOCAL -j " + LBChain + "\x00":         1,
		"-A POSTROUTING -m conntrack --ctstate DNAT -j " + LBSNATChain + "\x00": 1,
		"-j " + LBChain + "\x00":     2,
		"-j " + LBSNATChain + "\x00": 1,
		"-A " + LBChain + " ":        1,
		"-A " + LBSNATChain + " ":    1,
		":" + lbChainPrefix:          1,
		"-A " + webN.chain() + " ":   3,
		"--probability":              2,
	} {
		if got := countLines(rules, sub); got != want {
			t.Errorf("%d lines with %q, want %d:\n%s", got, sub, want, strings.Join(rules, "\n"))
		}
	}

	// (2) Syncing the same balances again, in another order, and from a
	// new Host (an agent restart) touches nothing: the rules keep their
	// packet counters, which are not zero.
	jump := slices.IndexFunc(rules, func(l string) bool { return strings.Contains(l, "-A "+LBChain+" ") })
	if jump < 0 || strings.HasPrefix(rules[jump], "[0:") {
		t.Fatalf("the jump for %s counted no packets:\n%s", webN, strings.Join(rules, "\n"))
	}
	again := web
	again.Targets = []netip.AddrPort{tcp4[1], tcp4[2], tcp4[0]}
	if err := dir.SyncBalances([]Balance{again}); err != nil {
		t.Fatal(err)
	}
	restarted := open(t, dn.Netns)
	if err := restarted.SyncBalances([]Balance{web}); err != nil {
		t.Fatal(err)
	}
	if got := lbRules(t, dn, "iptables-save", true); !slices.Equal(got, rules) {
		t.Errorf("an unchanged balance was rewritten; before:\n%s\nafter:\n%s", strings.Join(rules, "\n"), strings.Join(got, "\n"))
	}

	// (3) Take h2 out. Connections made before keep their backend; new
	// ones never reach h2.
	var toH2, toH3 *lbConn
	for i := 0; i < 60 && (toH2 == nil || toH3 == nil); i++ {
		lc, err := lbDial(client, vipWeb)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case lc.backend == backends[0] && toH2 == nil:
			toH2 = lc
		case lc.backend == backends[1] && toH3 == nil:
			toH3 = lc
		default:
			lc.c.Close()
		}
	}
	if toH2 == nil || toH3 == nil {
		t.Fatalf("60 connections did not reach both %s and %s", backends[0], backends[1])
	}
	defer toH2.c.Close()
	defer toH3.c.Close()
	web2 := Balance{Name: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80, Targets: []netip.AddrPort{tcp4[2], tcp4[1]}}
	if err := dir.SyncBalances([]Balance{web2}); err != nil {
		t.Fatal(err)
	}
	web2N := mustNormalize(t, web2)
	rules = lbRules(t, dn, "iptables-save", false)
	if web2N.chain() == webN.chain() || countLines(rules, ":"+webN.chain()) != 0 || countLines(rules, ":"+lbChainPrefix) != 1 ||
		countLines(rules, "-A "+web2N.chain()+" ") != 2 || countLines(rules, "-A "+LBChain+" ") != 1 || countLines(rules, "-A "+LBSNATChain+" ") != 1 {
		t.Errorf("after taking %s out:\n%s", backends[0], strings.Join(rules, "\n"))
	}
	for _, c := range []struct {
		lc      *lbConn
		backend string
	}{{toH3, backends[1]}, {toH2, backends[0]}} {
		if got, err := c.lc.echo("ping"); err != nil || got != c.backend+" ping" {
			t.Errorf("a connection to %s made before the change answered %q, %v; want %q", c.backend, got, err, c.backend+" ping")
		}
	}
	checkSeen(t, "after taking "+backends[0]+" out", lbSpread(t, client, vipWeb, 60), backends[1:]...)
	if got, err := dir.Balances(); err != nil || !reflect.DeepEqual(got, []Balance{web2N}) {
		t.Errorf("Balances() = %v, %v; want %v", got, err, []Balance{web2N})
	}

	// (6) Bad input is refused and changes nothing installed.
	before := lbRules(t, dn, "iptables-save", true)
	otherName := web2
	otherName.Name = "other"
	for _, c := range []struct {
		name string
		bs   []Balance
	}{
		{"same VIP, proto and port twice", []Balance{web2, otherName}},
		{"bad name", []Balance{{Name: "we b", VIP: vip4.Addr(), Proto: "tcp", Port: 80, Targets: tcp4}}},
		{"zero port", []Balance{{Name: "web", VIP: vip4.Addr(), Proto: "tcp", Targets: tcp4}}},
		{"no targets", []Balance{{Name: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80}}},
		{"mixed families", []Balance{{Name: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80, Targets: append(slices.Clone(tcp4), tcp6[0])}}},
		{"IPv6 loopback target", []Balance{web2, {Name: "v6", VIP: netip.MustParseAddr("fd00:b1:1::5"), Proto: "tcp", Port: 80, Targets: []netip.AddrPort{netip.MustParseAddrPort("[::1]:80")}}}},
		{"duplicate target", []Balance{{Name: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80, Targets: []netip.AddrPort{tcp4[1], tcp4[1]}}}},
		{"valid one after an invalid one", []Balance{{Name: "web", VIP: vip4.Addr(), Proto: "sctp", Port: 80, Targets: tcp4}, web2}},
	} {
		err := dir.SyncBalances(c.bs)
		if err == nil {
			t.Errorf("%s: SyncBalances(%v) succeeded", c.name, c.bs)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
	if after := lbRules(t, dn, "iptables-save", true); !slices.Equal(after, before) {
		t.Errorf("refused input changed the rules; before:\n%s\nafter:\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}
	if got, err := dir.Balances(); err != nil || !reflect.DeepEqual(got, []Balance{web2N}) {
		t.Errorf("Balances() after refused input = %v, %v; want %v", got, err, []Balance{web2N})
	}

	installed := []Balance{web2N}
	t.Run("UDP", func(t *testing.T) {
		dns := Balance{Name: "dns", VIP: vip4.Addr(), Proto: "udp", Port: 53, Targets: udp4}
		want := append(slices.Clone(installed), mustNormalize(t, dns))
		if err := dir.SyncBalances(want); err != nil {
			t.Fatal(err)
		}
		installed = want
		checkSeen(t, "UDP", lbUDPSpread(t, client, netip.AddrPortFrom(vip4.Addr(), 53), 60), backends...)
		if got, err := dir.Balances(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Balances() = %v, %v; want %v", got, err, want)
		}
	})

	t.Run("IPv6", func(t *testing.T) {
		if out, err := dn.Command(t.Context(), "ip6tables", "-t", "nat", "-S").CombinedOutput(); err != nil {
			msg := fmt.Sprintf("ip6tables has no nat table in a network namespace here: %v: %s", err, out)
			if os.Getenv(nettest.RequireEnv) == "1" {
				t.Fatalf("%s=1 but %s", nettest.RequireEnv, msg)
			}
			t.Skip("SKIPPING IPv6 BALANCING: " + msg)
		}
		vip6 := netip.MustParsePrefix("fd00:b1:1::5/64")
		if err := dir.AddAddress("eth0", vip6); err != nil {
			t.Fatal(err)
		}
		web6 := Balance{Name: "web6", VIP: vip6.Addr(), Proto: "tcp", Port: 80, Targets: tcp6}
		want := append(slices.Clone(installed), mustNormalize(t, web6))
		v4 := lbRules(t, dn, "iptables-save", true)
		if err := dir.SyncBalances(want); err != nil {
			t.Fatal(err)
		}
		installed = want
		if got := readSysctl(t, dir, "net/ipv6/conf/all/forwarding"); got != "1" {
			t.Errorf("net.ipv6.conf.all.forwarding = %s after SyncBalances", got)
		}
		checkSeen(t, "IPv6", lbSpread(t, client, netip.AddrPortFrom(vip6.Addr(), 80), 60), backends...)
		if got, err := dir.Balances(); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Balances() = %v, %v; want %v (IPv4 first)", got, err, want)
		}
		if got := lbRules(t, dn, "iptables-save", true); !slices.Equal(got, v4) {
			t.Errorf("adding an IPv6 balance changed the IPv4 rules:\n%s", strings.Join(got, "\n"))
		}
		r6 := lbRules(t, dn, "ip6tables-save", false)
		if countLines(r6, "-j "+LBChain+"\x00") != 2 || countLines(r6, "-j "+LBSNATChain+"\x00") != 1 || countLines(r6, "-A "+LBChain+" ") != 1 ||
			countLines(r6, "--ctorigdst fd00:b1:1::5 ") != 1 {
			t.Errorf("ip6tables-save:\n%s", strings.Join(r6, "\n"))
		}
	})

	// Removing every balance keeps the connections balanced before
	// working: the chains and jumps stay (empty), and so does connection
	// tracking.
	if err := dir.SyncBalances(nil); err != nil {
		t.Fatal(err)
	}
	if got, err := dir.Balances(); err != nil || len(got) != 0 {
		t.Errorf("Balances() after SyncBalances(nil) = %v, %v", got, err)
	}
	rules = lbRules(t, dn, "iptables-save", false)
	if countLines(rules, "-A "+LBChain+" ") != 0 || countLines(rules, "-A "+LBSNATChain+" ") != 0 || countLines(rules, ":"+lbChainPrefix) != 0 ||
		countLines(rules, "-j "+LBChain+"\x00") != 2 || countLines(rules, "-j "+LBSNATChain+"\x00") != 1 {
		t.Errorf("after SyncBalances(nil):\n%s", strings.Join(rules, "\n"))
	}
	if got, err := toH3.echo("still there"); err != nil || got != backends[1]+" still there" {
		t.Errorf("an established connection after SyncBalances(nil) answered %q, %v", got, err)
	}
	if _, err := lbDial(client, vipWeb); err == nil {
		t.Errorf("a new connection to %s was balanced after SyncBalances(nil)", vipWeb)
	}

	// (4) ClearBalances removes every chain and jump.
	for range 2 {
		if err := dir.ClearBalances(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if got := lbRules(t, dn, cmd, false); len(got) != 0 {
			t.Errorf("%s after ClearBalances:\n%s", cmd, strings.Join(got, "\n"))
		}
	}
	if got, err := dir.Balances(); err != nil || len(got) != 0 {
		t.Errorf("Balances() after ClearBalances = %v, %v", got, err)
	}
	// Nothing to balance and nothing installed: nothing appears.
	if err := dir.SyncBalances(nil); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if got := lbRules(t, dn, cmd, false); len(got) != 0 {
			t.Errorf("SyncBalances(nil) after ClearBalances made chains (%s):\n%s", cmd, strings.Join(got, "\n"))
		}
	}
}

// TestBalancesRepair starts SyncBalances from the leftovers of a crash and
// of foreign hands, and checks that balances leave forwards alone.
func TestBalancesRepair(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, false)
	n := tp.Hosts[0]
	h := open(t, n.Netns)
	ipt := func(args ...string) {
		t.Helper()
		if out, err := n.Command(t.Context(), "iptables", append([]string{"-t", "nat"}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v\n%s", args, err, out)
		}
	}
	save := func() string {
		t.Helper()
		out, err := n.Command(t.Context(), "iptables-save", "-t", "nat").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, out)
		}
		return string(out)
	}
	vip := n.Addr4.Addr()
	fwds := []Forward{{Workload: "web", VIP: vip, Proto: "tcp", Port: 80, ToPort: 8080}}
	if err := h.SyncForwards(fwds); err != nil {
		t.Fatal(err)
	}

	// Nothing to balance and nothing installed: nothing appears, and
	// forwarding is not switched on.
	if err := h.SyncBalances(nil); err != nil {
		t.Fatal(err)
	}
	if s := save(); strings.Contains(s, LBChain) || strings.Contains(s, lbChainPrefix) {
		t.Errorf("SyncBalances(nil) made chains:\n%s", s)
	}
	if got := readSysctl(t, h, "net/ipv4/ip_forward"); got != "0" {
		t.Errorf("net.ipv4.ip_forward = %s without balances", got)
	}

	api := Balance{Name: "api", VIP: vip, Proto: "tcp", Port: 443, Targets: []netip.AddrPort{
		netip.MustParseAddrPort("10.213.0.22:8443"), netip.MustParseAddrPort("10.213.0.21:8443"), netip.MustParseAddrPort("10.213.0.23:8443")}}
	apiN := mustNormalize(t, api)
	stale, referenced := lbChainPrefix+"0123456789abcdef", lbChainPrefix+"fedcba9876543210"
	// A crash while filling api's chain: it exists with two of its three
	// rules, in the wrong order.
	ipt("-N", apiN.chain())
	ipt(append([]string{"-A", apiN.chain()}, apiN.targetSpecs()[2]...)...)
	ipt(append([]string{"-A", apiN.chain()}, apiN.targetSpecs()[0]...)...)
	// Foreign rules in our chains, a wrong jump, a stale chain, and a
	// stale chain someone else still jumps to.
	ipt("-N", LBChain)
	ipt("-A", LBChain, "-p", "udp", "-j", "ACCEPT")
	ipt("-N", LBSNATChain)
	ipt("-A", LBSNATChain, "-j", "MASQUERADE")
	ipt("-A", "PREROUTING", "-j", LBChain)
	ipt("-A", "POSTROUTING", "-j", LBSNATChain)
	ipt("-A", "POSTROUTING", "-j", LBSNATChain)
	ipt("-N", stale)
	ipt("-A", stale, "-p", "tcp", "-j", "DNAT", "--to-destination", "10.213.0.99:1")
	ipt("-N", referenced)
	ipt("-N", "OTHER")
	ipt("-A", "OTHER", "-j", referenced)
	if got, err := h.Balances(); err == nil {
		t.Errorf("Balances() accepted a rule SyncBalances did not write: %v", got)
	}

	if err := h.SyncBalances([]Balance{api}); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Balances(); err != nil || !reflect.DeepEqual(got, []Balance{apiN}) {
		t.Errorf("Balances() = %v, %v; want %v", got, err, []Balance{apiN})
	}
	if got := readSysctl(t, h, "net/ipv4/ip_forward"); got != "1" {
		t.Errorf("net.ipv4.ip_forward = %s after SyncBalances", got)
	}
	s := save()
	for sub, want := range map[string]int{
		"-A PREROUTING -m addrtype --dst-type LOCAL -j " + LBChain + "\n":     1,
		"-A OUTPUT -m addrtype --dst-type LOCAL -j " + LBChain + "\n":         1,
		"-A POSTROUTING -m conntrack --ctstate DNAT -j " + LBSNATChain + "\n": 1,
		"-j " + LBChain + "\n":      2,
		"-j " + LBSNATChain + "\n":  1,
		"-A " + LBChain + " ":       1,
		"-A " + LBSNATChain + " ":   1,
		"-A " + apiN.chain() + " ":  3,
		":" + stale:                 0,
		":" + referenced:            1,
		"-A OTHER -j " + referenced: 1,
		"-A " + Chain + " ":         1,
		"-j " + Chain + "\n":        2,
	} {
		if got := strings.Count(s, sub); got != want {
			t.Errorf("%d times %q, want %d:\n%s", got, sub, want, s)
		}
	}
	if got, err := h.Forwards(); err != nil || !reflect.DeepEqual(got, fwds) {
		t.Errorf("Forwards() = %v, %v; want %v", got, err, fwds)
	}

	// Edits of the chain or the masquerade rule are noticed and repaired.
	for name, edit := range map[string][]string{
		"rule of the balance's chain deleted": {"-D", apiN.chain(), "2"},
		"masquerade rule deleted":             {"-D", LBSNATChain, "1"},
		"rule added to the balance's chain":   append([]string{"-I", apiN.chain(), "1"}, apiN.targetSpecs()[1]...),
	} {
		ipt(edit...)
		if got, err := h.Balances(); err == nil {
			t.Errorf("%s: Balances() = %v, want an error", name, got)
		}
		if err := h.SyncBalances([]Balance{api}); err != nil {
			t.Fatal(err)
		}
		if got, err := h.Balances(); err != nil || !reflect.DeepEqual(got, []Balance{apiN}) {
			t.Errorf("%s: Balances() after SyncBalances = %v, %v", name, got, err)
		}
	}

	// A renamed balance moves to a new chain; the old one goes.
	renamed := api
	renamed.Name = "api-v2"
	renamedN := mustNormalize(t, renamed)
	if err := h.SyncBalances([]Balance{renamed}); err != nil {
		t.Fatal(err)
	}
	s = save()
	if strings.Contains(s, apiN.chain()) || strings.Count(s, "-A "+renamedN.chain()+" ") != 3 ||
		strings.Count(s, `"bulwark-lb:api"`) != 0 || strings.Count(s, `"bulwark-lb:api-v2"`) != 5 {
		t.Errorf("after renaming:\n%s", s)
	}

	// Clearing removes every LB chain, the stale one someone jumps to
	// included (with that jump), and nothing else.
	for range 2 {
		if err := h.ClearBalances(); err != nil {
			t.Fatal(err)
		}
	}
	s = save()
	if strings.Contains(s, LBChain) || strings.Contains(s, lbChainPrefix) || !strings.Contains(s, ":OTHER ") {
		t.Errorf("after ClearBalances:\n%s", s)
	}
	if got, err := h.Forwards(); err != nil || !reflect.DeepEqual(got, fwds) {
		t.Errorf("Forwards() after ClearBalances = %v, %v; want %v", got, err, fwds)
	}
	if got, err := h.Balances(); err != nil || len(got) != 0 {
		t.Errorf("Balances() after ClearBalances = %v, %v", got, err)
	}
}
