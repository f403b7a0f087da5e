package network

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NetnsDir is where iproute2 keeps named network namespaces.
const NetnsDir = "/var/run/netns"

// ErrNoNetns is matched (errors.Is) by Open's error for a missing namespace.
var ErrNoNetns = errors.New("network namespace does not exist")

// ErrNoInterface is matched (errors.Is) by errors about a missing interface.
var ErrNoInterface = errors.New("interface does not exist")

type noNetnsError struct{ name string }

func (e *noNetnsError) Error() string {
	return fmt.Sprintf("network namespace %s does not exist (no %s)", e.name, filepath.Join(NetnsDir, e.name))
}

func (e *noNetnsError) Is(target error) bool { return target == ErrNoNetns }

type noInterfaceError struct{ name, netns string }

func (e *noInterfaceError) Error() string {
	return fmt.Sprintf("interface %s does not exist%s", e.name, where(e.netns))
}

func (e *noInterfaceError) Is(target error) bool { return target == ErrNoInterface }

func where(ns string) string {
	if ns == "" {
		return " in this process's network namespace"
	}
	return " in network namespace " + ns
}

// Host is one host's network: a named network namespace under NetnsDir, or
// the caller's own namespace. It is safe for concurrent use.
type Host struct {
	name string
	ns   netns.NsHandle // open while the Host is; -1 for the caller's own
	nl   *netlink.Handle

	// Announcement repeats run in goroutines bounded by their Count, their
	// context and stop (closed by Close).
	annMu     sync.Mutex
	annWG     sync.WaitGroup
	stop      chan struct{}
	closed    bool
	closeOnce sync.Once

	// fwdMu serialises SyncForwards and ClearForwards: they read the chain
	// and then change it.
	fwdMu sync.Mutex
	iptMu sync.Mutex
	ipt   map[iptables.Protocol]*iptables.IPTables
}

// Open returns the Host for the named network namespace (as made by
// `ip netns add NAME`), or for the caller's own namespace when name is "".
// The namespace stays usable through the Host until Close, even if it is
// deleted meanwhile.
func Open(name string) (*Host, error) {
	h := &Host{name: name, ns: netns.None(), stop: make(chan struct{}), ipt: map[iptables.Protocol]*iptables.IPTables{}}
	if name == "" {
		nl, err := netlink.NewHandle()
		if err != nil {
			return nil, fmt.Errorf("netlink: %w", err)
		}
		h.nl = nl
		return h, nil
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("%q is not a network namespace name", name)
	}
	ns, err := netns.GetFromPath(filepath.Join(NetnsDir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &noNetnsError{name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", name, err)
	}
	nl, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, fmt.Errorf("netlink in network namespace %s: %w", name, err)
	}
	h.ns, h.nl = ns, nl
	return h, nil
}

// Close stops the repeats of announcements still going (see Announce),
// waits for them, and releases the namespace. It is idempotent.
func (h *Host) Close() error {
	h.closeOnce.Do(func() {
		h.annMu.Lock()
		h.closed = true
		close(h.stop)
		h.annMu.Unlock()
		h.annWG.Wait()
		h.nl.Close()
		if h.ns.IsOpen() {
			h.ns.Close()
		}
	})
	return nil
}

// Netns returns the namespace's name, "" for the caller's own.
func (h *Host) Netns() string { return h.name }

func (h *Host) String() string {
	if h.name == "" {
		return "this process's network namespace"
	}
	return "network namespace " + h.name
}

// Do runs fn on an OS thread switched into the Host's namespace, so sockets
// fn opens belong to it (and stay in it after Do returns) and child
// processes fn starts (os/exec) run in it. Goroutines fn starts do NOT run
// in the namespace. For the caller's own namespace fn simply runs.
//
// The thread is switched back afterwards; if that fails the thread is left
// locked to its goroutine, which then exits, so the Go runtime discards the
// thread instead of reusing it in the wrong namespace. A panic in fn is
// re-raised in the caller after the thread is restored.
func (h *Host) Do(fn func() error) error {
	if h.name == "" {
		return fn()
	}
	type result struct {
		err      error
		finished bool // fn returned (did not panic or Goexit)
		recov    any
	}
	done := make(chan result, 1)
	go func() {
		var r result
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("get current network namespace: %w", err), finished: true}
			return
		}
		defer orig.Close()
		if err := netns.Set(h.ns); err != nil {
			// setns failed: the thread is still in orig.
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("enter %s: %w", h, err), finished: true}
			return
		}
		defer func() {
			if !r.finished {
				r.recov = recover()
			}
			if err := netns.Set(orig); err != nil {
				// Stay locked: the runtime kills the thread when this
				// goroutine ends.
				r.err = errors.Join(r.err, fmt.Errorf("leave %s (thread discarded): %w", h, err))
			} else {
				runtime.UnlockOSThread()
			}
			done <- r
		}()
		r.err = fn()
		r.finished = true
	}()
	r := <-done
	if !r.finished {
		if r.recov == nil {
			runtime.Goexit() // fn called runtime.Goexit (e.g. t.FailNow)
		}
		panic(r.recov)
	}
	return r.err
}

// Interface is a network interface of a Host.
type Interface struct {
	Name string
	MAC  net.HardwareAddr
	// Up is the administrative state (IFF_UP), not the carrier.
	Up bool
	// Addrs are all addresses on the interface, IPv6 link-local included,
	// in the kernel's order.
	Addrs []netip.Prefix
}

// Interfaces lists the Host's interfaces except the loopback "lo".
func (h *Host) Interfaces() ([]Interface, error) {
	links, err := retryDump(h.nl.LinkList)
	if err != nil {
		return nil, fmt.Errorf("list interfaces in %s: %w", h, err)
	}
	var out []Interface
	for _, l := range links {
		if l.Attrs().Name == "lo" {
			continue
		}
		ifc, err := h.describe(l)
		if err != nil {
			return nil, err
		}
		out = append(out, ifc)
	}
	return out, nil
}

// Interface returns one interface; errors.Is(err, ErrNoInterface) when the
// Host has none of that name.
func (h *Host) Interface(name string) (Interface, error) {
	l, err := h.link(name)
	if err != nil {
		return Interface{}, err
	}
	return h.describe(l)
}

// Addresses returns the addresses on interface ifname.
func (h *Host) Addresses(ifname string) ([]netip.Prefix, error) {
	l, err := h.link(ifname)
	if err != nil {
		return nil, err
	}
	return h.addrs(l)
}

// AddAddress puts p on interface ifname; an address already there is not an
// error. IPv6 addresses are added with IFA_F_NODAD so they are usable (for
// binding and as a source) at once: the cluster, not duplicate address
// detection, decides who holds a VIP.
func (h *Host) AddAddress(ifname string, p netip.Prefix) error {
	a, err := nlAddr(p)
	if err != nil {
		return err
	}
	l, err := h.link(ifname)
	if err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	if err := h.nl.AddrAdd(l, a); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s%s: %w", p, ifname, where(h.name), err)
	}
	return nil
}

// DelAddress takes p off interface ifname; an address not there is not an
// error. The prefix length must match the one the address was added with.
func (h *Host) DelAddress(ifname string, p netip.Prefix) error {
	a, err := nlAddr(p)
	if err != nil {
		return err
	}
	l, err := h.link(ifname)
	if err != nil {
		return fmt.Errorf("delete %s: %w", p, err)
	}
	if err := h.nl.AddrDel(l, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete %s from %s%s: %w", p, ifname, where(h.name), err)
	}
	return nil
}

func (h *Host) link(name string) (netlink.Link, error) {
	if name == "" {
		return nil, errors.New("no interface name given")
	}
	l, err := h.nl.LinkByName(name)
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) || errors.Is(err, unix.ENODEV) {
		return nil, &noInterfaceError{name: name, netns: h.name}
	}
	if err != nil {
		return nil, fmt.Errorf("interface %s%s: %w", name, where(h.name), err)
	}
	return l, nil
}

func (h *Host) describe(l netlink.Link) (Interface, error) {
	at := l.Attrs()
	addrs, err := h.addrs(l)
	if err != nil {
		return Interface{}, err
	}
	return Interface{
		Name:  at.Name,
		MAC:   append(net.HardwareAddr(nil), at.HardwareAddr...),
		Up:    at.Flags&net.FlagUp != 0,
		Addrs: addrs,
	}, nil
}

func (h *Host) addrs(l netlink.Link) ([]netip.Prefix, error) {
	as, err := retryDump(func() ([]netlink.Addr, error) { return h.nl.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("addresses of %s%s: %w", l.Attrs().Name, where(h.name), err)
	}
	out := make([]netip.Prefix, 0, len(as))
	for _, a := range as {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return out, nil
}

func nlAddr(p netip.Prefix) (*netlink.Addr, error) {
	if !p.IsValid() {
		return nil, fmt.Errorf("invalid address prefix %s", p)
	}
	ip := p.Addr()
	if ip.Zone() != "" {
		return nil, fmt.Errorf("address %s: zones are not supported", p)
	}
	if ip.Is4In6() {
		return nil, fmt.Errorf("address %s: use the IPv4 form", p)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(p.Bits(), ip.BitLen())}}
	if ip.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a, nil
}

// retryDump repeats a netlink dump the kernel reports as interrupted (the
// list changed while it was read), a few times.
func retryDump[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range 5 {
		var out []T
		out, err = dump()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return out, err
		}
	}
	return nil, err
}

// writeSysctl writes a /proc/sys file inside the Host's namespace (the
// net.* tree belongs to the namespace of the thread that opens it).
func (h *Host) writeSysctl(path, value string) error {
	return h.Do(func() error {
		return os.WriteFile(filepath.Join("/proc/sys", path), []byte(value), 0o644)
	})
}
