package network

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/network/nettest"
)

func TestOpenMissingNetns(t *testing.T) {
	_, err := Open("bw-no-such-netns")
	if !errors.Is(err, ErrNoNetns) || !strings.Contains(err.Error(), "network namespace bw-no-such-netns does not exist") {
		t.Fatalf("Open of a missing namespace: %v", err)
	}
	for _, bad := range []string{"a/b", "..", "."} {
		if _, err := Open(bad); err == nil {
			t.Errorf("Open(%q) succeeded", bad)
		}
	}
}

func TestOwnNamespace(t *testing.T) {
	h, err := Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if h.Netns() != "" {
		t.Errorf("Netns() = %q", h.Netns())
	}
	ran := false
	if err := h.Do(func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("Do: %v, ran %v", err, ran)
	}
	if _, err := h.Interfaces(); err != nil {
		t.Errorf("Interfaces: %v", err)
	}
	if _, err := h.Interface("bwnosuchif0"); !errors.Is(err, ErrNoInterface) {
		t.Errorf("missing interface: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, false)
	n := tp.Hosts[0]
	h := open(t, n.Netns)

	ifs, err := h.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Name != "eth0" || !ifs[0].Up || ifs[0].MAC.String() != n.MAC.String() ||
		!slices.Contains(ifs[0].Addrs, n.Addr4) || !slices.Contains(ifs[0].Addrs, n.Addr6) {
		t.Fatalf("Interfaces() = %+v; want eth0, up, %s, with %s and %s", ifs, n.MAC, n.Addr4, n.Addr6)
	}

	_, err = h.Interface("eth9")
	if !errors.Is(err, ErrNoInterface) || err.Error() != "interface eth9 does not exist in network namespace "+n.Netns {
		t.Errorf("Interface(eth9): %v", err)
	}
	if err := h.AddAddress("eth9", netip.MustParsePrefix("10.213.0.99/24")); !errors.Is(err, ErrNoInterface) {
		t.Errorf("AddAddress on eth9: %v", err)
	}
	if err := h.DelAddress("eth9", netip.MustParsePrefix("10.213.0.99/24")); !errors.Is(err, ErrNoInterface) {
		t.Errorf("DelAddress on eth9: %v", err)
	}

	for _, p := range []netip.Prefix{
		netip.PrefixFrom(tp.Subnet4.Addr().Next().Next(), tp.Subnet4.Bits()), // .2
		netip.MustParsePrefix("fd00:b1:1::100/64"),
	} {
		for range 2 { // idempotent
			if err := h.AddAddress("eth0", p); err != nil {
				t.Fatalf("AddAddress(%s): %v", p, err)
			}
		}
		got, err := h.Addresses("eth0")
		if err != nil || !slices.Contains(got, p) {
			t.Fatalf("Addresses after add = %v, %v; want %s in it", got, err, p)
		}
		// Usable at once (IPv6: added without duplicate address detection,
		// so not tentative): binding to it works now.
		err = h.Do(func() error {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(p.Addr(), 0).String())
			if err == nil {
				ln.Close()
			}
			return err
		})
		if err != nil {
			t.Errorf("bind to %s right after AddAddress: %v", p.Addr(), err)
		}
		for range 2 {
			if err := h.DelAddress("eth0", p); err != nil {
				t.Fatalf("DelAddress(%s): %v", p, err)
			}
		}
		got, err = h.Addresses("eth0")
		if err != nil || slices.Contains(got, p) {
			t.Fatalf("Addresses after delete = %v, %v; want no %s", got, err, p)
		}
	}
	if err := h.AddAddress("eth0", netip.Prefix{}); err == nil {
		t.Error("AddAddress of the zero prefix succeeded")
	}
}

// TestDo checks that Do's thread is in the namespace, child processes
// inherit it, and the calling thread is not affected.
func TestDo(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, false)
	n := tp.Hosts[0]
	h := open(t, n.Netns)

	self, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	var inside string
	var out []byte
	err = h.Do(func() (err error) {
		if inside, err = os.Readlink("/proc/thread-self/ns/net"); err != nil {
			return err
		}
		out, err = exec.Command("ip", "-o", "link", "show").CombinedOutput()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside == self {
		t.Errorf("Do ran in the caller's namespace %s", self)
	}
	if !strings.Contains(string(out), n.MAC.String()) {
		t.Errorf("child of Do does not see eth0 (%s) of %s:\n%s", n.MAC, n.Netns, out)
	}
	wantErr := errors.New("boom")
	if err := h.Do(func() error { return wantErr }); err != wantErr {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "panic in fn" {
				t.Errorf("recovered %v", r)
			}
		}()
		h.Do(func() error { panic("panic in fn") })
	}()
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}
