package api

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseVIPPrefix(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string // "" when an error is expected
		errPart string
	}{
		{in: "10.1.2.3/24", want: "10.1.2.3/24"},
		{in: "fd00::5/64", want: "fd00::5/64"},
		{in: "192.0.2.10/32", want: "192.0.2.10/32"},
		{in: "10.1.2.0/31", want: "10.1.2.0/31"},
		{in: "10.1.2.1/31", want: "10.1.2.1/31"},
		{in: "2001:db8::/127", want: "2001:db8::/127"},
		{in: "2001:db8::10/128", want: "2001:db8::10/128"},

		{in: "10.1.2.300/24", errPart: `"10.1.2.300/24" is not an IP address with a prefix length (like 192.0.2.10/24 or 2001:db8::10/64)`},
		{in: "10.1.2.3", errPart: "is not an IP address with a prefix length"},
		{in: "10.1.2.3/33", errPart: "is not an IP address with a prefix length"},
		{in: "", errPart: "is not an IP address with a prefix length"},
		{in: "web/24", errPart: "is not an IP address with a prefix length"},
		{in: " 10.1.2.3/24", errPart: "is not an IP address with a prefix length"},
		{in: "fe80::1%eth0/64", errPart: "is not an IP address with a prefix length"},
		{in: "10.1.2.0/24", errPart: "network address of 10.1.2.0/24"},
		{in: "10.1.2.255/24", errPart: "broadcast address of 10.1.2.0/24"},
		{in: "fd00::/64", errPart: "network address of fd00::/64"},
		{in: "255.255.255.255/32", errPart: "broadcast address"},
		{in: "224.0.0.5/24", errPart: "multicast"},
		{in: "ff02::1/64", errPart: "multicast"},
		{in: "127.0.0.2/8", errPart: "loopback"},
		{in: "::1/128", errPart: "loopback"},
		{in: "0.0.0.0/0", errPart: "unspecified"},
		{in: "::/0", errPart: "unspecified"},
		{in: "169.254.1.1/16", errPart: "link-local"},
		{in: "fe80::1/64", errPart: "link-local"},
		{in: "::ffff:10.1.2.3/120", errPart: "IPv4-mapped"},
	} {
		got, err := ParseVIPPrefix(tc.in)
		if tc.want != "" {
			if err != nil || got != netip.MustParsePrefix(tc.want) {
				t.Errorf("ParseVIPPrefix(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.errPart) {
			t.Errorf("ParseVIPPrefix(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.errPart)
		}
	}
}
