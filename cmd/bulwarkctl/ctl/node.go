package ctl

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:      "node",
		UsageText: "bulwarkctl node list|show [options] [NAME]",
		Aliases:   []string{"nodes"},
		Usage:     "show the hosts (nodes) of the cluster",
		Description: `A node is a host that runs a Bulwark agent. The agent registers the host's
CPUs and memory and keeps a heartbeat; the scheduler places workloads on
ready nodes only.

Examples:
   bulwarkctl node list
   bulwarkctl node show node-a`,
		Subcommands: []*cli.Command{nodeListCommand(), nodeShowCommand()},
	}
}

func nodeListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the nodes with their state and resource use",
		Description: `Lists every registered node, sorted by name:
   NAME       the host's name
   STATE      ready (its agent's heartbeat is alive) or down
   CPU        CPUs reserved by its workloads / CPUs of the host
   MEMORY     memory reserved by its workloads / memory of the host,
              in binary units (1GiB = 1024MiB)
   WORKLOADS  how many workloads are placed on it

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
		Description: `Shows one node: state, resources used and total, labels, the workload
driver its agent runs and when it registered. NAME is as printed by
"bulwarkctl node list".

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
	row(tw, "NAME", "STATE", "CPU", "MEMORY", "WORKLOADS")
	for _, n := range nodes {
		row(tw, n.Name, string(n.State),
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
	row(tw, "State:", string(n.State))
	row(tw, "CPU:", fmt.Sprintf("%d/%d used", n.CPUsUsed, n.CPUs))
	row(tw, "Memory:", usedOfTotal(n.MemoryUsed, n.Memory)+" used")
	row(tw, "Workloads:", strconv.Itoa(n.Workloads))
	row(tw, "Labels:", joinMap(n.Labels))
	row(tw, "Driver:", orDash(n.Driver))
	row(tw, "Detail:", orDash(truncate(n.Detail, 200)))
	row(tw, "Registered:", formatTime(n.RegisteredAt))
	return tw.Flush()
}
