package topo

import (
	"net/netip"
	"testing"
)

func TestSpecNormalize(t *testing.T) {
	s := Spec{Prefix: "bw1-", Hosts: []string{"h1", "h2"}}
	if err := s.normalize(); err != nil {
		t.Fatal(err)
	}
	if s.Subnet4 != DefaultSubnet4 || s.Subnet6 != DefaultSubnet6 {
		t.Errorf("defaults: %s %s", s.Subnet4, s.Subnet6)
	}
	s = Spec{Prefix: "bw1-", Hosts: []string{"h1"}, Subnet4: netip.MustParsePrefix("10.9.8.7/16")}
	if err := s.normalize(); err != nil || s.Subnet4 != netip.MustParsePrefix("10.9.0.0/16") {
		t.Errorf("subnet not masked: %s, %v", s.Subnet4, err)
	}
	for name, s := range map[string]Spec{
		"no prefix":      {Hosts: []string{"h1"}},
		"slash":          {Prefix: "a/b", Hosts: []string{"h1"}},
		"no hosts":       {Prefix: "p-"},
		"dup":            {Prefix: "p-", Hosts: []string{"h1", "h1"}},
		"client":         {Prefix: "p-", Hosts: []string{"client"}},
		"bridge":         {Prefix: "p-", Hosts: []string{"bridge"}},
		"upper":          {Prefix: "p-", Hosts: []string{"H1"}},
		"long":           {Prefix: "p-", Hosts: []string{"h123456789012345"}},
		"small v4":       {Prefix: "p-", Hosts: []string{"h1"}, Subnet4: netip.MustParsePrefix("10.0.0.0/25")},
		"v6 as v4":       {Prefix: "p-", Hosts: []string{"h1"}, Subnet4: netip.MustParsePrefix("fd00::/64")},
		"small v6":       {Prefix: "p-", Hosts: []string{"h1"}, Subnet6: netip.MustParsePrefix("fd00::/120")},
		"too many hosts": {Prefix: "p-", Hosts: make([]string, maxHosts+1)},
	} {
		if err := s.normalize(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestAddrs(t *testing.T) {
	s4, s6 := DefaultSubnet4, DefaultSubnet6
	for num, want := range map[int][2]string{
		11:  {"10.213.0.11", "fd00:b1:1::11"},
		12:  {"10.213.0.12", "fd00:b1:1::12"},
		199: {"10.213.0.199", "fd00:b1:1::199"},
		200: {"10.213.0.200", "fd00:b1:1::200"},
	} {
		if a := addr4(s4, num).String(); a != want[0] {
			t.Errorf("addr4(%d) = %s", num, a)
		}
		if a := addr6(s6, num).String(); a != want[1] {
			t.Errorf("addr6(%d) = %s", num, a)
		}
	}
}
