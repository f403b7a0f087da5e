package ctl

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:      "node",
		UsageText: "bulwarkctl node list|show|fence|clear|power-on [options] [NAME]",
		Aliases:   []string{"nodes"},
		Usage:     "show the hosts (nodes) of the cluster; fence, clear and power on a host",
		Description: `A node is a host that runs a Bulwark agent. The agent registers the host's
CPUs and memory and keeps a heartbeat; the scheduler places workloads on
ready nodes only.

When a host stops renewing its heartbeat, the leader declares it lost,
powers it off through its fence device (its BMC) and only then restarts its
workloads elsewhere. A fenced host takes no workloads until an operator
clears it. "fence", "clear" and "power-on" do these steps by hand; "fence"
and "clear" ask you to type the host name first (--yes skips that).

Examples:
   bulwarkctl node list
   bulwarkctl node show node-a
   bulwarkctl node fence node-a
   bulwarkctl node power-on node-a
   bulwarkctl node clear node-a`,
		Subcommands: []*cli.Command{
			nodeListCommand(), nodeShowCommand(),
			nodeFenceCommand(), nodeClearCommand(), nodePowerOnCommand(),
		},
	}
}

// nodeStatesHelp explains the node states, for list and show.
const nodeStatesHelp = `   ready      its agent holds its heartbeat lease; it takes workloads
   down       registered, no heartbeat, and nothing the cluster cares
              about runs on it
   suspect    its heartbeat lease has just expired; Bulwark waits a moment
              in case it comes back
   lost       it must be powered off (fenced) before its workloads may
              restart elsewhere
   fencing    a fence device is powering it off
   fenced     the power-off is confirmed (or an operator confirmed it with
              "node fence --confirm-off"); its workloads are being
              restarted elsewhere
   recovered  fenced, and none of its workloads is placed on it any more
A fenced or recovered host stays so, and takes no workloads, until
"bulwarkctl node clear" lets it back in.`

func nodeListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the nodes with their state and resource use",
		Description: `Lists every registered node, sorted by name:
   NAME       the host's name
   STATE      ready, down, suspect, lost, fencing, fenced or recovered
              (see below)
   FENCING    whether Bulwark can power the host off: ok (a fence device
              answered), none (no fence device is configured: after a
              failure its workloads wait for "node fence --confirm-off",
              unless watchdog fencing is on),
              unfenceable (its fence devices do not answer; the reason is
              in "bulwarkctl node show"), or - (not checked yet)
   CPU        CPUs reserved by its workloads / CPUs of the host
   MEMORY     memory reserved by its workloads / memory of the host,
              in binary units (1GiB = 1024MiB)
   WORKLOADS  how many workloads are placed on it

States:
` + nodeStatesHelp + `

With -o json it prints the full records as a JSON array, for scripts.

Examples:
   bulwarkctl node list
   bulwarkctl node list -o json`,
		Flags:  withGlobal(),
		Action: leaf(nodeList),
	}
}

func nodeShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Aliases:   []string{"get"},
		Usage:     "show one node in detail",
		ArgsUsage: "NAME",
		Description: `Shows one node: its state and why (Reason), whether Bulwark can fence
it (Fencing: ok, none, or unfenceable with the reason), resources used and
total, labels, the workload driver its agent runs, when it registered, and
the agent's timing: Lease TTL is how long the heartbeat lease outlives the
last renewal (the host is declared suspect after that), Self-fence after is
how long the agent keeps running its workloads without an acknowledged
renewal before it kills them itself. NAME is as printed by
"bulwarkctl node list".

States:
` + nodeStatesHelp + `

Examples:
   bulwarkctl node show node-a
   bulwarkctl node show node-a -o json`,
		Flags:  withGlobal(),
		Action: leaf(nodeShow),
	}
}

func nodeList(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	nodes, err := s.api.ListNodes(s.ctx)
	if err != nil {
		return explain(err, "node", "")
	}
	if nodes == nil {
		nodes = []api.NodeView{}
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].Name < nodes[j].Name })
	if s.format == formatJSON {
		return printJSON(s.out, nodes)
	}
	if len(nodes) == 0 {
		fmt.Fprintln(s.errw, "no nodes are registered yet: start a Bulwark agent on a host (or run `bulwarkd dev`)")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "NAME", "STATE", "FENCING", "CPU", "MEMORY", "WORKLOADS")
	for _, n := range nodes {
		row(tw, n.Name, orDash(string(n.State)), orDash(truncate(n.Fencing, fencingWidth)),
			fmt.Sprintf("%d/%d", n.CPUsUsed, n.CPUs),
			usedOfTotal(n.MemoryUsed, n.Memory),
			strconv.Itoa(n.Workloads))
	}
	return tw.Flush()
}

func nodeShow(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("node", name); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	n, err := s.api.GetNode(s.ctx, name)
	if err != nil {
		return explain(err, "node", name)
	}
	if s.format == formatJSON {
		return printJSON(s.out, n)
	}
	tw := newTable(s.out)
	row(tw, "Name:", n.Name)
	row(tw, "State:", orDash(string(n.State)))
	row(tw, "Reason:", orDash(strings.Join(strings.Fields(n.Reason), " ")))
	row(tw, "Fencing:", fencingText(n.Fencing))
	row(tw, "CPU:", fmt.Sprintf("%d/%d used", n.CPUsUsed, n.CPUs))
	row(tw, "Memory:", usedOfTotal(n.MemoryUsed, n.Memory)+" used")
	row(tw, "Workloads:", strconv.Itoa(n.Workloads))
	row(tw, "Labels:", joinMap(n.Labels))
	row(tw, "Driver:", orDash(n.Driver))
	row(tw, "Detail:", orDash(truncate(n.Detail, 200)))
	row(tw, "Lease TTL:", durationOrDash(n.LeaseTTL))
	row(tw, "Self-fence after:", durationOrDash(n.SelfFenceAfter))
	row(tw, "Registered:", formatTime(n.RegisteredAt))
	return tw.Flush()
}

// fencingWidth is the width of the FENCING column of `node list`.
const fencingWidth = 40

// fencingText is the Fencing row of `node show`.
func fencingText(f string) string {
	switch {
	case f == "":
		return "- (not checked yet)"
	case f == "ok":
		return "ok (a fence device answers)"
	case f == "none":
		return "none (no fence device: after a failure its workloads wait for `node fence --confirm-off`, unless watchdog fencing is on)"
	}
	return strings.Join(strings.Fields(f), " ")
}

// durationOrDash renders a duration the agent may not have reported.
func durationOrDash(d api.Duration) string {
	if d <= 0 {
		return "-"
	}
	return d.String()
}
