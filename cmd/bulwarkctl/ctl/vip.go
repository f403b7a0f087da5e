package ctl

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

func vipCommand() *cli.Command {
	return &cli.Command{
		Name:      "vip",
		UsageText: "bulwarkctl vip create|list|show|attach|detach|delete [options] [ADDR] [WORKLOAD]",
		Aliases:   []string{"vips"},
		Usage:     "floating IPs: addresses that follow a workload from host to host",
		Description: `A floating IP (VIP) is an IP address that follows a workload: the host that
runs the workload puts the address on its network interface and announces
it, and when the workload moves to another host (after a failure, say),
the address moves with it, so clients keep using the same address.

` + vipMoveHelp + `

The scheduler places a workload with floating IPs only on hosts that can
hold them (that have the interface, or are attached to the network). For
containers, "bulwarkctl container run --publish" forwards ports of a
floating IP to ports of the container. Details in docs/networking.md.

Examples:
   bulwarkctl vip create 192.0.2.10/24 --interface eth0
   bulwarkctl vip attach 192.0.2.10 web-1
   bulwarkctl vip list
   bulwarkctl vip show 192.0.2.10
   bulwarkctl vip detach 192.0.2.10
   bulwarkctl vip delete 192.0.2.10`,
		Subcommands: []*cli.Command{
			vipCreateCommand(), vipListCommand(), vipShowCommand(),
			vipAttachCommand(), vipDetachCommand(), vipDeleteCommand(),
		},
	}
}

// vipMoveHelp says when a floating IP moves.
const vipMoveHelp = `An address is never on two hosts at once: a host takes it only after the
host that had it has released it (its workload has stopped there) or has
been fenced (powered off). Each hold is a claim that carries the epoch of
the workload's placement (its fencing token), so a host that still runs
an older placement cannot take the address back.`

// vipAddrHelp documents the ADDR argument of the commands on one address.
const vipAddrHelp = `ADDR is the address, with or without its prefix length, as printed by
"bulwarkctl vip list", e.g. 192.0.2.10 or 2001:db8::10.`

func vipCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "define a floating IP",
		ArgsUsage: "ADDR/PREFIX",
		Description: `Defines the floating IP ADDR/PREFIX, e.g. 192.0.2.10/24: the address and
the prefix length of its subnet, which the host puts on its interface
together with the address. The server checks that some host could hold
it (has the interface, or is on the network, and the address lies in the
network's subnet) and refuses it otherwise.

Where the address goes (give --interface, --network, or both):
--interface IFACE: the network interface of the hosts, e.g. eth0 or br0;
      only hosts that have it can hold the address.
--network NAME: a network the hosts declare with
      "bulwarkd agent --network NAME=IFACE"; each host puts the address on
      its own interface to that network, only hosts attached to it can hold
      it, and the address must lie in its subnet. With --interface too,
      only hosts whose interface to NAME is IFACE.
--workload NAME: attach the address to this workload at once, as
      "bulwarkctl vip attach" does; without it the address is defined but
      no host carries it.

` + vipMoveHelp + `

The input is checked first; if it is invalid, nothing is sent to the
server. A workload can also take an existing address when it is created:
"bulwarkctl vm create NAME --vip ADDR", "bulwarkctl container run NAME
--vip ADDR ...".

Examples:
   bulwarkctl vip create 192.0.2.10/24 --interface eth0
   bulwarkctl vip create 192.0.2.11/24 --network public --workload web-1
   bulwarkctl vip create 2001:db8::10/64 --network public
   bulwarkctl vip create 198.51.100.7/32 --interface lo-vip -o json`,
		Flags: withGlobal(
			&cli.StringFlag{Name: "interface", Aliases: []string{"iface"}, Usage: "network interface `IFACE` of the hosts the address goes on, e.g. eth0"},
			&cli.StringFlag{Name: "network", Aliases: []string{"net"}, Usage: "network `NAME` the hosts declare (bulwarkd agent --network NAME=IFACE)"},
			&cli.StringFlag{Name: "workload", Aliases: []string{"w"}, Usage: "attach the address to workload `NAME` at once"},
		),
		Action: leaf(vipCreate),
	}
}

// vipColumnsHelp documents the columns of `vip list`.
const vipColumnsHelp = `   ADDRESS            the address with its prefix length
   INTERFACE/NETWORK  where it goes: the interface (--interface), e.g.
                      eth0; "network NAME" (--network: each host's own
                      interface to that network); or both, as
                      "eth0 (network NAME)"
   WORKLOAD           the workload it follows; "-" if it is not attached
   HOST               the host that holds it now; "-" if none does (the
                      workload is not running, or its host has not taken
                      it yet). "(for W)" follows when that host still holds
                      it for another workload W, e.g. just after a detach:
                      it is released once W has stopped there
   EPOCH              the epoch of the holder's placement (its fencing
                      token, as in "bulwarkctl workload show")`

func vipListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the floating IPs with their workload and holder",
		Description: `Lists every floating IP, sorted by address:
` + vipColumnsHelp + `

With -o json it prints the full records as a JSON array, for scripts.

Examples:
   bulwarkctl vip list
   bulwarkctl vip list -o json`,
		Flags:  withGlobal(),
		Action: leaf(vipList),
	}
}

func vipShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Aliases:   []string{"get"},
		Usage:     "show one floating IP in detail",
		ArgsUsage: "ADDR",
		Description: `Shows one floating IP: the address, its interface and network, the
workload it follows, which host holds it now (for which workload, at which
epoch of its placement, since when), and when it was defined. With -o json
it prints the API's object (fields address, interface, network, workload,
holder, ...).

` + vipAddrHelp + `

Examples:
   bulwarkctl vip show 192.0.2.10
   bulwarkctl vip show 192.0.2.10 -o json`,
		Flags:  withGlobal(),
		Action: leaf(vipShow),
	}
}

func vipAttachCommand() *cli.Command {
	return &cli.Command{
		Name:      "attach",
		Usage:     "make a floating IP follow a workload",
		ArgsUsage: "ADDR WORKLOAD",
		Description: `Attaches the floating IP ADDR to WORKLOAD: from then on the host that runs
WORKLOAD holds the address, wherever it runs. The server refuses if the
address follows another workload (detach it first), if WORKLOAD is being
deleted, or if WORKLOAD runs on a host that cannot hold the address.

` + vipMoveHelp + `

` + vipAddrHelp + `

Examples:
   bulwarkctl vip attach 192.0.2.10 web-1
   bulwarkctl vip attach 192.0.2.10 web-1 -o json`,
		Flags:  withGlobal(),
		Action: leaf(vipAttach),
	}
}

func vipDetachCommand() *cli.Command {
	return &cli.Command{
		Name:      "detach",
		Usage:     "make a floating IP follow no workload",
		ArgsUsage: "ADDR",
		Description: `Detaches the floating IP ADDR from its workload: the host that holds it
removes it from its interface and releases it, and no host carries it any
more. The workload keeps running. Detaching an address that follows no
workload changes nothing.

` + vipAddrHelp + `

Examples:
   bulwarkctl vip detach 192.0.2.10`,
		Flags:  withGlobal(),
		Action: leaf(vipDetach),
	}
}

func vipDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "remove a floating IP",
		ArgsUsage: "ADDR",
		Description: `Removes the floating IP ADDR from the cluster. The server refuses while it
follows a workload (detach it first with "bulwarkctl vip detach ADDR") or
a host still holds it (wait until that host has released it; "bulwarkctl
vip show ADDR" shows the holder).

` + vipAddrHelp + `

Examples:
   bulwarkctl vip detach 192.0.2.10
   bulwarkctl vip delete 192.0.2.10`,
		Flags:  withGlobal(),
		Action: leaf(vipDelete),
	}
}

func vipCreate(c *cli.Context, args []string) error {
	var addr string
	switch len(args) {
	case 0:
		return fmt.Errorf("missing ADDR/PREFIX, e.g. 192.0.2.10/24 (usage: %s)", usageLine(c))
	case 1:
		addr = args[0]
	default:
		return fmt.Errorf("too many arguments %q: expected only ADDR/PREFIX; the workload goes in --workload NAME (usage: %s)", args, usageLine(c))
	}
	spec := api.VIPSpec{
		Address:   addr,
		Interface: c.String("interface"),
		Network:   c.String("network"),
		Workload:  c.String("workload"),
	}
	var errs []error
	for _, f := range []string{"interface", "network", "workload"} {
		if c.IsSet(f) && c.String(f) == "" {
			errs = append(errs, fmt.Errorf("--%s is empty", f))
		}
	}
	if err := spec.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return invalidInput("floating IP", errors.Join(errs...))
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.CreateVIP(s.ctx, spec)
	if err != nil {
		return vipError(err, "create", vipKey(addr), spec.Workload)
	}
	if s.format != formatTable {
		return s.print(v)
	}
	fmt.Fprintf(s.out, "floating IP %s created\n", v.Address)
	writeVIP(s.out, v)
	if v.Workload == "" {
		fmt.Fprintf(s.out, "No host carries it until it follows a workload: bulwarkctl vip attach %s WORKLOAD\n", vipKey(v.Address))
	}
	return nil
}

func vipList(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	vips, err := s.api.ListVIPs(s.ctx)
	if err != nil {
		return explain(err, "vip", "")
	}
	if vips == nil {
		vips = []api.VIPView{}
	}
	sort.Slice(vips, func(i, j int) bool { return vipLess(vips[i].Address, vips[j].Address) })
	if s.format != formatTable {
		return s.print(vips)
	}
	if len(vips) == 0 {
		fmt.Fprintln(s.errw, "no floating IPs yet; define one with: bulwarkctl vip create ADDR/PREFIX --interface IFACE")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "ADDRESS", "INTERFACE/NETWORK", "WORKLOAD", "HOST", "EPOCH")
	for _, v := range vips {
		host, epoch := "-", "-"
		if h := v.Holder; h != nil {
			host = orDash(h.Host)
			if h.Workload != v.Workload {
				host += " (for " + orDash(h.Workload) + ")"
			}
			epoch = strconv.FormatInt(h.Epoch, 10)
		}
		row(tw, v.Address, vipPlace(v.VIPSpec), orDash(v.Workload), host, epoch)
	}
	return tw.Flush()
}

// vipLess orders addresses numerically (IPv4 before IPv6), and what does
// not parse by its text, last.
func vipLess(a, b string) bool {
	pa, ea := netip.ParsePrefix(a)
	pb, eb := netip.ParsePrefix(b)
	switch {
	case ea != nil || eb != nil:
		if (ea == nil) != (eb == nil) {
			return ea == nil
		}
		return a < b
	case pa.Addr() != pb.Addr():
		return pa.Addr().Less(pb.Addr())
	}
	return pa.Bits() < pb.Bits()
}

// vipPlace is the INTERFACE/NETWORK column of `vip list`.
func vipPlace(v api.VIPSpec) string {
	switch {
	case v.Interface != "" && v.Network != "":
		return v.Interface + " (network " + v.Network + ")"
	case v.Network != "":
		return "network " + v.Network
	}
	return orDash(v.Interface)
}

func vipShow(c *cli.Context, args []string) error {
	addr, err := vipArg(c, args, 1)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.GetVIP(s.ctx, addr)
	if err != nil {
		return explain(err, "vip", addr)
	}
	if s.format != formatTable {
		return s.print(v)
	}
	writeVIP(s.out, v)
	return nil
}

// writeVIP prints one floating IP as "Key: value" lines.
func writeVIP(out io.Writer, v *api.VIPView) {
	tw := newTable(out)
	row(tw, "Address:", orDash(v.Address))
	iface := v.Interface
	if iface == "" && v.Network != "" {
		iface = "- (each host's own interface to network " + v.Network + ")"
	}
	row(tw, "Interface:", orDash(iface))
	row(tw, "Network:", orDash(v.Network))
	workload := v.Workload
	switch {
	case v.Service != "" && workload != "":
		workload += " (the copy of service " + v.Service + " whose host holds the address; the cluster chooses it)"
	case workload == "":
		workload = "- (not attached: no host carries it)"
	}
	if v.Service != "" {
		pool := "none yet"
		if v.Pool != nil {
			var ports, members []string
			for _, p := range v.Pool.Ports {
				ports = append(ports, p.String())
			}
			for _, b := range v.Pool.Backends {
				members = append(members, b.Workload+"@"+b.Address)
			}
			pool = fmt.Sprintf("ports %s to %s", orDash(strings.Join(ports, ",")), orDash(strings.Join(members, ", ")))
		}
		row(tw, "Service:", v.Service+" (load-balanced: bulwarkctl service show "+v.Service+")")
		row(tw, "Pool:", pool)
	}
	row(tw, "Workload:", workload)
	holder := "- (no host holds it now)"
	switch {
	case v.Holder != nil:
		holder = claimText(*v.Holder, timeNow())
		if v.Holder.Workload != v.Workload {
			holder += "; it is released once " + orDash(v.Holder.Workload) + " has stopped there"
		}
	case v.Workload != "":
		holder = "- (no host holds it now: " + v.Workload + " is not running, or its host has not taken the address yet)"
	}
	row(tw, "Holder:", holder)
	row(tw, "Created:", formatTime(v.CreatedAt))
	_ = tw.Flush()
}

func vipAttach(c *cli.Context, args []string) error {
	if len(args) == 1 {
		return fmt.Errorf("missing WORKLOAD after %s (usage: %s)", args[0], usageLine(c))
	}
	addr, err := vipArg(c, args, 2)
	if err != nil {
		return err
	}
	workload := args[1]
	if err := api.ValidateName("workload", workload); err != nil {
		return fmt.Errorf("%v (nothing was sent to the server)", err)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.AttachVIP(s.ctx, addr, workload)
	if err != nil {
		return vipError(err, "attach", addr, workload)
	}
	if s.format != formatTable {
		return s.print(v)
	}
	fmt.Fprintf(s.out, "floating IP %s now follows %s: the host that runs %s takes it.\n", addr, workload, workload)
	if h := v.Holder; h != nil && h.Workload != workload {
		fmt.Fprintf(s.out, "%s still holds it for %s; it moves once %s has stopped there or %s has been fenced.\n", h.Host, h.Workload, h.Workload, h.Host)
	}
	fmt.Fprintf(s.out, "Follow it with: bulwarkctl vip show %s\n", addr)
	return nil
}

func vipDetach(c *cli.Context, args []string) error {
	addr, err := vipArg(c, args, 1)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.DetachVIP(s.ctx, addr)
	if err != nil {
		return vipError(err, "detach", addr, "")
	}
	if s.format != formatTable {
		return s.print(v)
	}
	fmt.Fprintf(s.out, "floating IP %s follows no workload now.\n", addr)
	if h := v.Holder; h != nil {
		fmt.Fprintf(s.out, "%s removes it from its interface and releases it (it held it for %s); check with: bulwarkctl vip show %s\n", h.Host, h.Workload, addr)
	}
	return nil
}

func vipDelete(c *cli.Context, args []string) error {
	addr, err := vipArg(c, args, 1)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	if err := s.api.DeleteVIP(s.ctx, addr); err != nil {
		return vipError(err, "delete", addr, "")
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "floating IP %s deleted\n", addr)
	}
	return nil
}

// vipArg checks that args are n positional arguments, the first an
// address with or without prefix length, and returns the address alone.
func vipArg(c *cli.Context, args []string, n int) (string, error) {
	want := "ADDR"
	if c.Command != nil && c.Command.ArgsUsage != "" {
		want = c.Command.ArgsUsage
	}
	switch {
	case len(args) == 0:
		return "", fmt.Errorf("missing ADDR, e.g. 192.0.2.10 (usage: %s)", usageLine(c))
	case len(args) > n:
		return "", fmt.Errorf("too many arguments %q: expected only %s (usage: %s)", args, want, usageLine(c))
	}
	addr := vipKey(args[0])
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address; give the floating IP as printed by \"bulwarkctl vip list\", e.g. 192.0.2.10 (nothing was sent to the server)", args[0])
	}
	return a.String(), nil
}

// vipKey is the address of "ADDR" or "ADDR/PREFIX".
func vipKey(s string) string {
	a, _, _ := strings.Cut(strings.TrimSpace(s), "/")
	return a
}

// vipError explains the answers the floating-IP endpoints may give: 404
// is about the address or, for attach and create, the workload.
func vipError(err error, action, addr, workload string) error {
	switch {
	case client.IsConflict(err) && action == "create":
		return fmt.Errorf("the server refused to create floating IP %s: %w (see: bulwarkctl vip list)", addr, err)
	case client.IsConflict(err):
		return fmt.Errorf("the server refused to %s floating IP %s: %w (see: bulwarkctl vip show %s)", action, addr, err, addr)
	case client.IsNotFound(err) && !client.IsNoSuchEndpoint(err) && workload != "" && strings.HasPrefix(apiMessage(err), "workload"):
		return fmt.Errorf("workload %q not found (list them with: bulwarkctl workload list)", workload)
	case action == "create":
		return explain(err, "vip", "")
	}
	return explain(err, "vip", addr)
}
