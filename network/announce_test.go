package network

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/network/nettest"
	"github.com/bulwarkhq/bulwark/network/topo"
)

func TestFailoverIPv4(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 2, true)
	vip := netip.PrefixFrom(tp.Subnet4.Addr().Next().Next().Next().Next(), tp.Subnet4.Bits()) // .4
	testFailover(t, tp, vip)
}

func TestFailoverIPv6(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 2, true)
	vip := netip.MustParsePrefix("fd00:b1:1::4/64")
	testFailover(t, tp, vip)
}

// testFailover moves vip from h1 to h2 the way the agent does (delete on
// the old holder, add on the new, announce) and checks that the client's
// neighbour table follows and that its connections reach h2.
func testFailover(t *testing.T, tp *topo.Topology, vip netip.Prefix) {
	n1, _ := tp.Host("h1")
	n2, _ := tp.Host("h2")
	h1, h2, client := open(t, n1.Netns), open(t, n2.Netns), open(t, tp.Client.Netns)
	svc := netip.AddrPortFrom(vip.Addr(), 8080)

	if err := h1.AddAddress("eth0", vip); err != nil {
		t.Fatal(err)
	}
	if err := h1.Announce(t.Context(), "eth0", vip.Addr(), AnnounceOptions{Count: 1}); err != nil {
		t.Fatal(err)
	}
	ln1 := serve(t, h1, svc, "h1")
	if got, err := ask(client, svc, 2*time.Second); err != nil || got != "h1" {
		t.Fatalf("before the move the client got %q, %v; want h1", got, err)
	}
	if mac, state, err := tp.Client.Neighbour(t.Context(), vip.Addr()); err != nil || mac.String() != n1.MAC.String() {
		t.Fatalf("client's neighbour entry for %s = %s %s, %v; want h1's %s", vip.Addr(), mac, state, err, n1.MAC)
	}

	// Move.
	ln1.Close()
	if err := h1.DelAddress("eth0", vip); err != nil {
		t.Fatal(err)
	}
	if err := h2.AddAddress("eth0", vip); err != nil {
		t.Fatal(err)
	}
	serve(t, h2, svc, "h2")
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := h2.Announce(ctx, "eth0", vip.Addr(), AnnounceOptions{}); err != nil {
		t.Fatal(err)
	}
	announced := time.Since(start)
	reached := askUntil(t, client, svc, "h2", 5*time.Second) + announced
	t.Logf("client reached %s on h2 %v after Announce was called (Announce returned after %v)", svc, reached.Round(time.Microsecond), announced.Round(time.Microsecond))

	var mac string
	var state string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		m, s, err := tp.Client.Neighbour(t.Context(), vip.Addr())
		if err != nil {
			t.Fatal(err)
		}
		mac, state = m.String(), s
		if mac == n2.MAC.String() {
			break
		}
	}
	if mac != n2.MAC.String() {
		t.Fatalf("client's neighbour entry for %s = %s %s; want h2's %s", vip.Addr(), mac, state, n2.MAC)
	}

	// The repeats run out by themselves (5 x 200 ms).
	done := make(chan struct{})
	go func() { h2.WaitAnnouncements(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("announcement repeats still running after 3 s")
	}
}

func TestAnnounceErrors(t *testing.T) {
	t.Parallel()
	tp := nettest.Topology(t, 1, false)
	n := tp.Hosts[0]
	h := open(t, n.Netns)
	notHeld := netip.MustParseAddr("10.213.0.5")
	if err := h.Announce(t.Context(), "eth0", notHeld, AnnounceOptions{}); err == nil {
		t.Error("announced an address the host does not hold")
	}
	if err := h.Announce(t.Context(), "eth9", n.Addr4.Addr(), AnnounceOptions{}); err == nil {
		t.Error("announced on a missing interface")
	}
	if err := h.Announce(t.Context(), "eth0", n.Addr4.Addr(), AnnounceOptions{Count: -1}); err == nil {
		t.Error("negative count accepted")
	}

	// Close stops the repeats.
	if err := h.Announce(context.Background(), "eth0", n.Addr6.Addr(), AnnounceOptions{Count: 1000, Interval: time.Hour}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	h.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v with announcements pending", d)
	}
	if err := h.Announce(t.Context(), "eth0", n.Addr4.Addr(), AnnounceOptions{}); err == nil {
		t.Error("Announce after Close succeeded")
	}
}
