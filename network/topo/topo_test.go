package topo_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/network"
	"github.com/bulwarkhq/bulwark/network/nettest"
	"github.com/bulwarkhq/bulwark/network/topo"
)

func exists(ns string) bool {
	_, err := os.Lstat(filepath.Join(topo.NetnsDir, ns))
	return err == nil
}

func open(t *testing.T, ns string) *network.Host {
	t.Helper()
	h, err := network.Open(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// reach connects from one namespace to a listener in another and reports
// whether the greeting came through.
func reach(t *testing.T, from, to *network.Host, addr netip.AddrPort, timeout time.Duration) bool {
	t.Helper()
	var ln net.Listener
	if err := to.Do(func() (err error) { ln, err = net.Listen("tcp", addr.String()); return err }); err != nil {
		t.Fatalf("listen on %s: %v", addr, err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi\n"))
			c.Close()
		}
	}()
	err := from.Do(func() error {
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		_, err = bufio.NewReader(c).ReadString('\n')
		return err
	})
	return err == nil
}

func TestCreateDestroy(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 2, true)
	if len(tp.Hosts) != 2 || tp.Client == nil {
		t.Fatalf("topology %+v", tp)
	}
	h2, ok := tp.Host("h2")
	if !ok || h2.Addr4 != netip.MustParsePrefix("10.213.0.12/24") || h2.Addr6 != netip.MustParsePrefix("fd00:b1:1::12/64") || h2.Iface != "eth0" {
		t.Errorf("h2 = %+v", h2)
	}
	if tp.Client.Addr4.Addr() != netip.MustParseAddr("10.213.0.200") || tp.Client.Addr6.Addr() != netip.MustParseAddr("fd00:b1:1::200") {
		t.Errorf("client = %+v", tp.Client)
	}
	if _, ok := tp.Host("h9"); ok {
		t.Error("Host(h9) found")
	}
	for _, ns := range tp.Namespaces() {
		if !exists(ns) {
			t.Errorf("namespace %s missing", ns)
		}
	}
	mac, err := topo.LinkMAC(t.Context(), h2.Netns, "eth0")
	if err != nil || mac.String() != h2.MAC.String() {
		t.Errorf("h2's eth0 MAC = %s, %v; want %s", mac, err, h2.MAC)
	}
	out, err := h2.Command(t.Context(), "ip", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "10.213.0.12/24") {
		t.Errorf("ip addr in h2: %v\n%s", err, out)
	}

	h1n, _ := tp.Host("h1")
	h1, c := open(t, h1n.Netns), open(t, tp.Client.Netns)
	for _, a := range []netip.Addr{h1n.Addr4.Addr(), h1n.Addr6.Addr()} {
		if !reach(t, c, h1, netip.AddrPortFrom(a, 7000), 2*time.Second) {
			t.Errorf("client cannot reach h1 at %s", a)
		}
	}
	if mac, state, err := tp.Client.Neighbour(t.Context(), h1n.Addr4.Addr()); err != nil || mac.String() != h1n.MAC.String() {
		t.Errorf("client's neighbour entry for h1: %s %s %v", mac, state, err)
	}
	if mac, state, err := tp.Client.Neighbour(t.Context(), netip.MustParseAddr("10.213.0.99")); err != nil || mac != nil {
		t.Errorf("client's neighbour entry for nobody: %s %s %v", mac, state, err)
	}

	for range 2 {
		if err := tp.Destroy(); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range tp.Namespaces() {
		if exists(ns) {
			t.Errorf("namespace %s left after Destroy", ns)
		}
	}
}

func TestPowerOffOn(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, true)
	n := tp.Hosts[0]
	h, c := open(t, n.Netns), open(t, tp.Client.Netns)
	a4 := netip.AddrPortFrom(n.Addr4.Addr(), 7001)
	if !reach(t, c, h, a4, 2*time.Second) {
		t.Fatal("not reachable before PowerOff")
	}
	if err := tp.PowerOff("h1"); err != nil {
		t.Fatal(err)
	}
	if reach(t, c, h, a4, 300*time.Millisecond) {
		t.Error("reachable while powered off")
	}
	addrs, err := h.Addresses("eth0")
	if err != nil || !slices.Contains(addrs, n.Addr4) || !slices.Contains(addrs, n.Addr6) {
		t.Errorf("addresses while powered off: %v, %v", addrs, err)
	}
	if err := tp.PowerOn("h1"); err != nil {
		t.Fatal(err)
	}
	ok := false
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		ok = reach(t, c, h, netip.AddrPortFrom(n.Addr6.Addr(), 7002), 500*time.Millisecond)
	}
	if !ok {
		t.Error("not reachable over IPv6 after PowerOn")
	}
	if err := tp.PowerOff("h7"); err == nil {
		t.Error("PowerOff of an unknown host succeeded")
	}
}

func TestCreateUndoesOnError(t *testing.T) {
	t.Parallel()
	nettest.Require(t)
	prefix := nettest.Prefix()
	// h2's namespace is taken, so Create fails half-way.
	taken := prefix + "h2"
	if err := runIP(t.Context(), "netns", "add", taken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { topo.RemoveStale(prefix) })
	_, err := topo.Create(t.Context(), topo.Spec{Prefix: prefix, Hosts: []string{"h1", "h2", "h3"}, Client: true})
	if err == nil || !strings.Contains(err.Error(), taken) {
		t.Fatalf("Create with a taken namespace: %v", err)
	}
	for _, ns := range []string{prefix + "bridge", prefix + "h1", prefix + "h3", prefix + "client"} {
		if exists(ns) {
			t.Errorf("%s left after a failed Create", ns)
		}
	}
	if !exists(taken) {
		t.Errorf("Create's undo deleted %s, which it had not made", taken)
	}

	if err := topo.RemoveStale(prefix); err != nil {
		t.Fatal(err)
	}
	if exists(taken) {
		t.Errorf("RemoveStale left %s", taken)
	}
	if err := topo.RemoveStale(""); err == nil {
		t.Error("RemoveStale(\"\") accepted")
	}
}

func runIP(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %v: %w: %s", args, err, out)
	}
	return nil
}
