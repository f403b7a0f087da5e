package network

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestSplitRule(t *testing.T) {
	got, err := splitRule(`-A BULWARK-DNAT -m comment --comment "bulwark:a b\"c" -j DNAT`)
	want := []string{"-A", "BULWARK-DNAT", "-m", "comment", "--comment", `bulwark:a b"c`, "-j", "DNAT"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("splitRule = %q, %v; want %q", got, err, want)
	}
	if _, err := splitRule(`-A X --comment "open`); err == nil {
		t.Fatal("unterminated quote accepted")
	}
}

// asPrinted renders a rule spec the way `iptables -S` prints it.
func asPrinted(spec []string) string {
	var b strings.Builder
	b.WriteString("-A " + Chain)
	for i, a := range spec {
		b.WriteByte(' ')
		if i > 0 && spec[i-1] == "--comment" {
			a = `"` + a + `"`
		}
		b.WriteString(a)
	}
	return b.String()
}

func TestRuleRoundTrip(t *testing.T) {
	vip4 := netip.MustParseAddr("10.213.0.100")
	vip6 := netip.MustParseAddr("fd00:b1:1::100")
	for _, f := range []Forward{
		{Workload: "web", VIP: vip4, Proto: "tcp", Port: 80, ToPort: 18080},
		{Workload: "dns-1.a:b/c@d+e_f", VIP: vip4, Proto: "udp", Port: 53, ToAddr: netip.MustParseAddr("127.0.0.1"), ToPort: 5353},
		{Workload: "web6", VIP: vip6, Proto: "tcp", Port: 443, ToPort: 8443},
		{Workload: "db6", VIP: vip6, Proto: "tcp", Port: 5432, ToAddr: netip.MustParseAddr("fd00:b1:2::7"), ToPort: 5432},
	} {
		line := asPrinted(f.ruleSpec())
		got, err := parseRule(line)
		if err != nil || got != f {
			t.Errorf("parseRule(%s) = %v, %v; want %v", line, got, err, f)
		}
	}
	// nft prints the comment unquoted when it needs no quotes.
	got, err := parseRule("-A BULWARK-DNAT -d 10.213.0.100/32 -p tcp -m tcp --dport 80 -m comment --comment bulwark:web -j DNAT --to-destination 10.213.0.100:18080")
	if want := (Forward{Workload: "web", VIP: vip4, Proto: "tcp", Port: 80, ToPort: 18080}); err != nil || got != want {
		t.Errorf("unquoted comment: %v, %v", got, err)
	}
	for _, bad := range []string{
		"-A BULWARK-DNAT -d 10.0.0.0/24 -p tcp -m tcp --dport 80 -m comment --comment bulwark:x -j DNAT --to-destination 10.0.0.1:1",
		"-A BULWARK-DNAT -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m comment --comment other -j DNAT --to-destination 10.0.0.1:1",
		"-A BULWARK-DNAT -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m comment --comment bulwark:x -j REDIRECT --to-ports 1",
		"-A BULWARK-DNAT -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.1:1",
		"-A BULWARK-DNAT -s 10.0.0.9/32 -d 10.0.0.1/32 -p tcp -m tcp --dport 80 -m comment --comment bulwark:x -j DNAT --to-destination 10.0.0.1:1",
		"-A PREROUTING -j BULWARK-DNAT",
	} {
		if f, err := parseRule(bad); err == nil {
			t.Errorf("parseRule(%s) = %v, want an error", bad, f)
		}
	}
}

func TestForwardNormalize(t *testing.T) {
	vip := netip.MustParseAddr("10.213.0.100")
	ok := Forward{Workload: "web", VIP: vip, Proto: "tcp", Port: 80, ToPort: 8080}
	self := ok
	self.ToAddr = vip
	if got, err := self.normalize(); err != nil || got != ok {
		t.Errorf("ToAddr == VIP: %v, %v; want %v", got, err, ok)
	}
	mapped := ok
	mapped.VIP = netip.AddrFrom16(vip.As16())
	if got, err := mapped.normalize(); err != nil || got != ok {
		t.Errorf("4in6 VIP: %v, %v", got, err)
	}
	for name, f := range map[string]Forward{
		"no workload":   {VIP: vip, Proto: "tcp", Port: 80, ToPort: 1},
		"space":         {Workload: "a b", VIP: vip, Proto: "tcp", Port: 80, ToPort: 1},
		"quote":         {Workload: `a"b`, VIP: vip, Proto: "tcp", Port: 80, ToPort: 1},
		"no VIP":        {Workload: "w", Proto: "tcp", Port: 80, ToPort: 1},
		"sctp":          {Workload: "w", VIP: vip, Proto: "sctp", Port: 80, ToPort: 1},
		"port 0":        {Workload: "w", VIP: vip, Proto: "tcp", ToPort: 1},
		"to port 0":     {Workload: "w", VIP: vip, Proto: "tcp", Port: 80},
		"mixed family":  {Workload: "w", VIP: vip, Proto: "tcp", Port: 80, ToAddr: netip.MustParseAddr("fd00::1"), ToPort: 1},
		"v6 loopback":   {Workload: "w", VIP: netip.MustParseAddr("fd00::5"), Proto: "tcp", Port: 80, ToAddr: netip.IPv6Loopback(), ToPort: 1},
		"to multicast":  {Workload: "w", VIP: vip, Proto: "tcp", Port: 80, ToAddr: netip.MustParseAddr("224.0.0.1"), ToPort: 1},
		"long workload": {Workload: strings.Repeat("w", 201), VIP: vip, Proto: "tcp", Port: 80, ToPort: 1},
	} {
		if _, err := f.normalize(); err == nil {
			t.Errorf("%s: %v accepted", name, f)
		}
	}
}

func TestJumpsTo(t *testing.T) {
	if !jumpsTo("-A PREROUTING -m addrtype --dst-type LOCAL -j BULWARK-DNAT", Chain) {
		t.Error("jump not recognised")
	}
	if jumpsTo("-A PREROUTING -m comment --comment \"-j BULWARK-DNAT\" -j ACCEPT", Chain) {
		t.Error("a comment taken for a jump")
	}
}
