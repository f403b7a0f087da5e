package ctl

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

func nodeCommand() *cli.Command {
	return &cli.Command{
		Name:      "node",
		UsageText: "bulwarkctl node list|show|tasks|maintenance|drain|undrain|fence|clear|power-on [options] [NAME]",
		Aliases:   []string{"nodes"},
		Usage:     "show the hosts (nodes) of the cluster and what they run; maintenance and drains; fence, clear and power on a host",
		Description: `A node is a host that runs a Bulwark agent. The agent registers the host's
CPUs and memory and keeps a heartbeat; the scheduler places workloads on
ready nodes only. "tasks" asks a host's agent what its driver really runs.

"maintenance on" takes a host out of service: nothing new is placed there
and what runs there stays. "drain" shows which workload would go where,
asks, then moves them off in batches; "undrain" (or "maintenance off")
puts the host back in service.

When a host stops renewing its heartbeat, the leader declares it lost,
powers it off through its fence device (its BMC) and only then restarts its
workloads elsewhere. A fenced host takes no workloads until an operator
clears it. "fence", "clear" and "power-on" do these steps by hand; "fence"
and "clear" ask you to type the host name first (--yes skips that).

Examples:
   bulwarkctl node list
   bulwarkctl node show node-a
   bulwarkctl node tasks node-a
   bulwarkctl node maintenance on node-a --reason "firmware update"
   bulwarkctl node drain node-a
   bulwarkctl node undrain node-a
   bulwarkctl node fence node-a
   bulwarkctl node power-on node-a
   bulwarkctl node clear node-a`,
		Subcommands: []*cli.Command{
			nodeListCommand(), nodeShowCommand(), nodeTasksCommand(),
			nodeMaintenanceCommand(), nodeDrainCommand(), nodeUndrainCommand(),
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
"bulwarkctl node clear" lets it back in.
A host in maintenance has ",maintenance" after its state (",draining"
while a drain moves its workloads off, ",drained" once one emptied it):
nothing new is placed there until "bulwarkctl node maintenance off" (or
"node undrain").`

func nodeListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the nodes with their state and resource use",
		Description: `Lists every registered node, sorted by name:
   NAME       the host's name
   STATE      ready, down, suspect, lost, fencing, fenced or recovered,
              with ",maintenance", ",draining" or ",drained" while in
              maintenance (see below)
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
		Description: `Shows one node: its state and why (Reason), whether it is in maintenance
(since when, by whom, why) and how its last drain went, whether Bulwark can fence
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

func nodeTasksCommand() *cli.Command {
	return &cli.Command{
		Name:      "tasks",
		Aliases:   []string{"ps"},
		Usage:     "list what a host's driver really runs (asked from its agent now)",
		ArgsUsage: "HOST",
		Description: `Asks the agent of HOST, through the API server, what its workload driver
(libvirt, containerd, ...) runs there right now: the host's own truth, not
the cluster's bookkeeping. "bulwarkctl workload list" shows where the
cluster placed each workload; compare the two to find a workload that
runs where it should not (a stale epoch) or does not run where it should.
The agent answers only while the host is up and its agent reachable.

Columns, sorted by workload:
   WORKLOAD  the workload the task belongs to
   EPOCH     the epoch of the placement the task was started for (its
             fencing token); "bulwarkctl workload show NAME" shows the
             current one: a task with an older epoch is a leftover
   STATE     the task's state as the driver reports it: running,
             stopped, failed or unknown
   ID        the driver's own id of the task (a libvirt domain's UUID, a
             container's ID); "-" if it has none
   DETAIL    what else the driver says, e.g. an exit code or error
             (shortened; -o json prints it in full)

Examples:
   bulwarkctl node tasks node-a
   bulwarkctl node tasks node-a -o json`,
		Flags:  withGlobal(),
		Action: leaf(nodeTasks),
	}
}

// taskDetailWidth is the width of the DETAIL column of `node tasks`.
const taskDetailWidth = 60

func nodeTasks(c *cli.Context, args []string) error {
	host, err := hostArg(c, args)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	tasks, err := s.api.NodeTasks(s.ctx, host)
	if err != nil {
		return tasksError(err, host)
	}
	if tasks == nil {
		tasks = []api.Task{}
	}
	sort.Slice(tasks, func(i, j int) bool {
		if tasks[i].Workload != tasks[j].Workload {
			return tasks[i].Workload < tasks[j].Workload
		}
		return tasks[i].Epoch < tasks[j].Epoch
	})
	if s.format != formatTable {
		return s.print(tasks)
	}
	if len(tasks) == 0 {
		fmt.Fprintf(s.errw, "the driver of %s runs no workloads\n", host)
		return nil
	}
	tw := newTable(s.out)
	row(tw, "WORKLOAD", "EPOCH", "STATE", "ID", "DETAIL")
	for _, t := range tasks {
		row(tw, orDash(t.Workload), strconv.FormatInt(t.Epoch, 10), orDash(t.State), orDash(t.ID), orDash(truncate(t.Detail, taskDetailWidth)))
	}
	return tw.Flush()
}

// tasksError explains why the task list of a host could not be had.
func tasksError(err error, host string) error {
	var ae *client.APIError
	if errors.As(err, &ae) && !client.IsNoSuchEndpoint(err) {
		switch ae.Status {
		case http.StatusNotFound:
			return fmt.Errorf("node %q is not registered (list them with: bulwarkctl node list)", host)
		case http.StatusBadGateway, http.StatusServiceUnavailable:
			return fmt.Errorf("could not ask the agent of %s what it runs: %w; is the host up? check with: bulwarkctl node show %s", host, err, host)
		}
	}
	return explain(err, "node", host)
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
	if s.format != formatTable {
		return s.print(nodes)
	}
	if len(nodes) == 0 {
		fmt.Fprintln(s.errw, "no nodes are registered yet: start a Bulwark agent on a host (or run `bulwarkd dev`)")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "NAME", "STATE", "FENCING", "CPU", "MEMORY", "WORKLOADS")
	for _, n := range nodes {
		row(tw, n.Name, hostState(n), orDash(truncate(n.Fencing, fencingWidth)),
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
	if s.format != formatTable {
		return s.print(n)
	}
	tw := newTable(s.out)
	row(tw, "Name:", n.Name)
	row(tw, "State:", hostState(*n))
	row(tw, "Reason:", orDash(strings.Join(strings.Fields(n.Reason), " ")))
	row(tw, "Maintenance:", maintenanceText(n.Maintenance))
	if n.Maintenance != nil && n.Maintenance.Drain != nil {
		row(tw, "Drain:", drainText(n.Maintenance.Drain))
	}
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
