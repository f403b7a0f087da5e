package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// The defaults are Pacemaker's IPaddr2 agent's (arp_count=5,
// arp_interval=200ms): one announcement reaches every neighbour that is
// listening; the repeats cover a lost frame, a switch still learning the
// port, or a neighbour that was busy, over the next 0.8 s.
const (
	DefaultAnnounceCount    = 5
	DefaultAnnounceInterval = 200 * time.Millisecond
)

// AnnounceOptions says how often to announce.
type AnnounceOptions struct {
	// Count is how many announcements to send in all, the first at once;
	// 0 means DefaultAnnounceCount.
	Count int
	// Interval is the time between two announcements; 0 means
	// DefaultAnnounceInterval.
	Interval time.Duration
}

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	allNodes     = netip.MustParseAddr("ff02::1")
)

// etherTypeARP is ARP's EtherType (RFC 826).
const etherTypeARP = 0x0806

// Announce tells the hosts on ifname's segment that addr now lives at this
// Host's ifname MAC address, so their neighbour caches switch to it at once
// instead of after their entries time out (seconds).
//
// IPv4: a gratuitous ARP request and a gratuitous ARP reply (sender and
// target protocol address both addr, sender hardware address ifname's MAC),
// broadcast; neighbours with an entry for addr update it (Linux accepts
// either kind, other stacks may honour only one). IPv6: an unsolicited
// neighbour advertisement to ff02::1 from addr with the override flag and a
// target link-layer address option (RFC 4861 7.2.6).
//
// addr must already be on ifname (AddAddress): announcing an address the
// Host does not hold would steal it. The first announcement is sent before
// Announce returns; the other Count-1 follow every Interval in a goroutine
// that stops early when ctx is done or the Host is closed. Use
// WaitAnnouncements to wait for them. Errors of the repeats are logged
// (slog), not returned.
func (h *Host) Announce(ctx context.Context, ifname string, addr netip.Addr, o AnnounceOptions) error {
	if !addr.IsValid() || addr.Zone() != "" || addr.Is4In6() {
		return fmt.Errorf("announce: %q is not an IPv4 or IPv6 address without zone", addr)
	}
	if o.Count < 0 || o.Interval < 0 {
		return fmt.Errorf("announce %s: negative count or interval", addr)
	}
	if o.Count == 0 {
		o.Count = DefaultAnnounceCount
	}
	if o.Interval == 0 {
		o.Interval = DefaultAnnounceInterval
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("announce %s: %w", addr, err)
	}
	if h.isClosed() {
		return fmt.Errorf("announce %s: %s is closed", addr, h)
	}
	ps, err := h.Addresses(ifname)
	if err != nil {
		return fmt.Errorf("announce %s: %w", addr, err)
	}
	held := false
	for _, p := range ps {
		held = held || p.Addr() == addr
	}
	if !held {
		return fmt.Errorf("announce %s: it is not on %s%s (add it first)", addr, ifname, where(h.name))
	}

	// Open the socket inside the namespace; it stays bound to it, so the
	// repeats can be sent from any thread.
	var s announcer
	err = h.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("%s has no Ethernet address", ifname)
		}
		if addr.Is4() {
			s, err = newARPAnnouncer(ifi, addr)
		} else {
			s, err = newNDPAnnouncer(ifi, addr)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("announce %s on %s%s: %w", addr, ifname, where(h.name), err)
	}
	if err := s.send(); err != nil {
		s.close()
		return fmt.Errorf("announce %s on %s%s: %w", addr, ifname, where(h.name), err)
	}
	if o.Count == 1 {
		s.close()
		return nil
	}
	h.annMu.Lock()
	if h.closed {
		h.annMu.Unlock()
		s.close()
		return nil
	}
	h.annWG.Add(1)
	h.annMu.Unlock()
	go func() {
		defer h.annWG.Done()
		defer s.close()
		tick := time.NewTicker(o.Interval)
		defer tick.Stop()
		for i := 1; i < o.Count; i++ {
			select {
			case <-ctx.Done():
				return
			case <-h.stop:
				return
			case <-tick.C:
			}
			if err := s.send(); err != nil {
				slog.Warn("announce repeat failed", "netns", h.name, "iface", ifname, "addr", addr, "n", i+1, "err", err)
				return
			}
		}
	}()
	return nil
}

// WaitAnnouncements blocks until every announcement started by Announce has
// sent its last repeat or stopped.
func (h *Host) WaitAnnouncements() { h.annWG.Wait() }

func (h *Host) isClosed() bool {
	h.annMu.Lock()
	defer h.annMu.Unlock()
	return h.closed
}

type announcer interface {
	send() error
	close()
}

type arpAnnouncer struct {
	c        *arp.Client
	req, rep *arp.Packet
}

func newARPAnnouncer(ifi *net.Interface, addr netip.Addr) (*arpAnnouncer, error) {
	// RFC 5227 2.3's ARP Announcement: a request with sender = target =
	// addr, target hardware address zero.
	req, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, addr, make(net.HardwareAddr, 6), addr)
	if err != nil {
		return nil, err
	}
	// The reply form, as `arping -A` and send_arp's advert mode send it.
	rep, err := arp.NewPacket(arp.OperationReply, ifi.HardwareAddr, addr, ifi.HardwareAddr, addr)
	if err != nil {
		return nil, err
	}
	p, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	c, err := arp.New(ifi, p)
	if err != nil {
		p.Close()
		return nil, err
	}
	return &arpAnnouncer{c: c, req: req, rep: rep}, nil
}

func (a *arpAnnouncer) send() error {
	if err := a.c.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	return errors.Join(a.c.WriteTo(a.req, broadcastMAC), a.c.WriteTo(a.rep, broadcastMAC))
}

func (a *arpAnnouncer) close() { a.c.Close() }

type ndpAnnouncer struct {
	pc  *ipv6.PacketConn
	msg []byte
	cm  *ipv6.ControlMessage
	dst *net.IPAddr
}

func newNDPAnnouncer(ifi *net.Interface, addr netip.Addr) (*ndpAnnouncer, error) {
	msg, err := ndp.MarshalMessage(&ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options: []ndp.Option{
			&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: ifi.HardwareAddr},
		},
	})
	if err != nil {
		return nil, err
	}
	// Sent from addr itself: it is on the interface and, added with
	// IFA_F_NODAD, not tentative, whereas the link-local address may still
	// be in duplicate address detection right after the link came up. (The
	// kernel fills in the ICMPv6 checksum of raw ICMPv6 sockets.)
	ic, err := icmp.ListenPacket("ip6:ipv6-icmp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("ICMPv6 socket on %s: %w", addr, err)
	}
	pc := ic.IPv6PacketConn()
	// We only send; receive nothing rather than buffer every ICMPv6 packet.
	var f ipv6.ICMPFilter
	f.SetAll(true)
	err = errors.Join(
		pc.SetICMPFilter(&f),
		pc.SetMulticastHopLimit(ndp.HopLimit), // RFC 4861: 255, or receivers drop it
		pc.SetMulticastInterface(ifi),
	)
	if err != nil {
		ic.Close()
		return nil, err
	}
	return &ndpAnnouncer{
		pc:  pc,
		msg: msg,
		// The interface goes by index in the control message, not as the
		// destination's zone: a zone name would be resolved in whatever
		// namespace the sending thread is in.
		cm:  &ipv6.ControlMessage{HopLimit: ndp.HopLimit, Src: addr.AsSlice(), IfIndex: ifi.Index},
		dst: &net.IPAddr{IP: allNodes.AsSlice()},
	}, nil
}

func (n *ndpAnnouncer) send() error {
	if err := n.pc.SetWriteDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	_, err := n.pc.WriteTo(n.msg, n.cm, n.dst)
	return err
}

func (n *ndpAnnouncer) close() { n.pc.Close() }
