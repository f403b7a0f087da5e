package network

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/network/nettest"
)

func TestForwards(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, true)
	n := tp.Hosts[0]
	h, client := open(t, n.Netns), open(t, tp.Client.Netns)
	vip4 := netip.PrefixFrom(tp.Subnet4.Addr().Next().Next().Next().Next().Next(), tp.Subnet4.Bits()) // .5
	vip6 := netip.MustParsePrefix("fd00:b1:1::5/64")
	for _, p := range []netip.Prefix{vip4, vip6} {
		if err := h.AddAddress("eth0", p); err != nil {
			t.Fatal(err)
		}
	}
	// The workloads: in the host's own namespace, one bound to the VIP, one
	// to loopback only.
	serve(t, h, netip.AddrPortFrom(vip4.Addr(), 18080), "web")
	serve(t, h, netip.AddrPortFrom(vip6.Addr(), 18080), "web6")
	serve(t, h, netip.MustParseAddrPort("127.0.0.1:18081"), "admin")

	fwds := []Forward{
		{Workload: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80, ToPort: 18080},
		{Workload: "admin", VIP: vip4.Addr(), Proto: "tcp", Port: 81, ToAddr: netip.MustParseAddr("127.0.0.1"), ToPort: 18081},
		{Workload: "web6", VIP: vip6.Addr(), Proto: "tcp", Port: 80, ToAddr: vip6.Addr(), ToPort: 18080},
	}
	for range 2 {
		if err := h.SyncForwards(fwds); err != nil {
			t.Fatal(err)
		}
	}

	// From another host (PREROUTING) and from the host itself (OUTPUT).
	for _, from := range []*Host{client, h} {
		for addr, want := range map[netip.AddrPort]string{
			netip.AddrPortFrom(vip4.Addr(), 80): "web",
			netip.AddrPortFrom(vip4.Addr(), 81): "admin",
			netip.AddrPortFrom(vip6.Addr(), 80): "web6",
		} {
			if from == h && want == "admin" {
				continue // local traffic to 127.0.0.1 after DNAT in OUTPUT: not a use case
			}
			if got, err := ask(from, addr, 2*time.Second); err != nil || got != want {
				t.Errorf("from %s, %s answered %q, %v; want %q", from, addr, got, err, want)
			}
		}
	}

	save := func(cmd string) string {
		t.Helper()
		out, err := n.Command(t.Context(), cmd, "-t", "nat").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", cmd, err, out)
		}
		return string(out)
	}
	count := func(s, sub string) int { return strings.Count(s, sub) }
	v4 := save("iptables-save")
	if count(v4, ":"+Chain+" ") != 1 || count(v4, "-A "+Chain+" ") != 2 ||
		count(v4, "-A PREROUTING -m addrtype --dst-type LOCAL -j "+Chain) != 1 ||
		count(v4, "-A OUTPUT -m addrtype --dst-type LOCAL -j "+Chain) != 1 ||
		count(v4, `--comment "bulwark:web"`) != 1 || count(v4, `--comment "bulwark:admin"`) != 1 {
		t.Errorf("iptables-save after two syncs:\n%s", v4)
	}
	v6 := save("ip6tables-save")
	if count(v6, "-A "+Chain+" ") != 1 || count(v6, "-j "+Chain) != 2 {
		t.Errorf("ip6tables-save after two syncs:\n%s", v6)
	}

	// Sorted IPv4 first, then by port; ToAddr == VIP reads back as the
	// host itself.
	want := []Forward{fwds[0], fwds[1], fwds[2]}
	want[2].ToAddr = netip.Addr{}
	if got, err := h.Forwards(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("Forwards() = %v, %v;\nwant %v", got, err, want)
	}

	// Change one, drop one; a stray rule in the chain goes too.
	if out, err := n.Command(t.Context(), "iptables", "-t", "nat", "-A", Chain, "-p", "udp", "-j", "ACCEPT").CombinedOutput(); err != nil {
		t.Fatalf("add a stray rule: %v\n%s", err, out)
	}
	if _, err := h.Forwards(); err == nil {
		t.Error("Forwards() accepted a rule it did not write")
	}
	fwds2 := []Forward{{Workload: "web", VIP: vip4.Addr(), Proto: "tcp", Port: 80, ToAddr: netip.MustParseAddr("127.0.0.1"), ToPort: 18081}}
	if err := h.SyncForwards(fwds2); err != nil {
		t.Fatal(err)
	}
	if got, err := h.Forwards(); err != nil || !reflect.DeepEqual(got, fwds2) {
		t.Errorf("Forwards() after the change = %v, %v; want %v", got, err, fwds2)
	}
	if got, err := ask(client, netip.AddrPortFrom(vip4.Addr(), 80), 2*time.Second); err != nil || got != "admin" {
		t.Errorf("after the change VIP:80 answered %q, %v; want admin", got, err)
	}
	if v6 := save("ip6tables-save"); count(v6, "-A "+Chain+" ") != 0 || count(v6, "-j "+Chain) != 2 {
		t.Errorf("ip6tables-save after dropping the IPv6 forward:\n%s", v6)
	}

	dup := append(fwds2, Forward{Workload: "other", VIP: vip4.Addr(), Proto: "tcp", Port: 80, ToPort: 1})
	if err := h.SyncForwards(dup); err == nil {
		t.Error("two forwards of one VIP port accepted")
	}

	for range 2 {
		if err := h.ClearForwards(); err != nil {
			t.Fatal(err)
		}
	}
	for _, cmd := range []string{"iptables-save", "ip6tables-save"} {
		if out := save(cmd); strings.Contains(out, Chain) {
			t.Errorf("%s after ClearForwards:\n%s", cmd, out)
		}
	}
	if got, err := h.Forwards(); err != nil || len(got) != 0 {
		t.Errorf("Forwards() after ClearForwards = %v, %v", got, err)
	}
	// Nothing to forward and nothing installed: no chain appears.
	if err := h.SyncForwards(nil); err != nil {
		t.Fatal(err)
	}
	if out := save("iptables-save"); strings.Contains(out, Chain) {
		t.Errorf("SyncForwards(nil) made a chain:\n%s", out)
	}
}

// TestForwardsRepairJumps checks that SyncForwards leaves exactly one jump
// from each parent chain when it finds duplicates or a foreign form.
func TestForwardsRepairJumps(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, false)
	n := tp.Hosts[0]
	h := open(t, n.Netns)
	fw := []Forward{{Workload: "web", VIP: n.Addr4.Addr(), Proto: "udp", Port: 53, ToPort: 5353}}
	if err := h.SyncForwards(fw); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-t", "nat", "-A", "PREROUTING", "-j", Chain},
		{"-t", "nat", "-I", "OUTPUT", "1", "-m", "addrtype", "--dst-type", "LOCAL", "-j", Chain},
	} {
		if out, err := n.Command(t.Context(), "iptables", args...).CombinedOutput(); err != nil {
			t.Fatalf("iptables %v: %v\n%s", args, err, out)
		}
	}
	if err := h.SyncForwards(fw); err != nil {
		t.Fatal(err)
	}
	out, err := n.Command(t.Context(), "iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	for _, parent := range jumpParents {
		if c := strings.Count(string(out), "-A "+parent+" -m addrtype --dst-type LOCAL -j "+Chain+"\n"); c != 1 {
			t.Errorf("%d jumps from %s:\n%s", c, parent, out)
		}
	}
	if strings.Count(string(out), "-j "+Chain) != 2 {
		t.Errorf("stray jumps left:\n%s", out)
	}
}
