package ctl

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// devFaults are the faults `dev fault` injects, in the order of the help,
// with what each one does.
var devFaults = []struct{ name, help string }{
	{"crash", "kills the host's agent process, as if the host had died: its\nheartbeat stops, and so do its workloads"},
	{"hang", "freezes the agent with SIGSTOP: the process still exists but\nrenews nothing, like a host stuck in a kernel or I/O hang"},
	{"partition", "cuts only the host's connection to etcd: its workloads keep\nrunning, so the agent's self-fencing must stop them before the\ncluster restarts them elsewhere"},
	{"bmc-down", "makes the host's emulated BMC unreachable: fencing it fails,\nso the host shows as unfenceable and a lost host waits for\n\"node fence --confirm-off\""},
	{"heal", "undoes all of the above on the host (a fenced host still needs\n\"bulwarkctl node clear\")"},
}

func devFaultNames() []string {
	out := make([]string, len(devFaults))
	for i, f := range devFaults {
		out[i] = f.name
	}
	return out
}

// devFaultsHelp renders the fault list for the help.
func devFaultsHelp() string {
	var b strings.Builder
	for _, f := range devFaults {
		lines := strings.Split(f.help, "\n")
		fmt.Fprintf(&b, "   %-10s %s\n", f.name, lines[0])
		for _, l := range lines[1:] {
			fmt.Fprintf(&b, "   %-10s %s\n", "", l)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func devCommand() *cli.Command {
	return &cli.Command{
		Name:      "dev",
		UsageText: "bulwarkctl dev fault HOST FAULT [options]",
		Usage:     "rehearse host failures on a `bulwarkd dev` cluster",
		Description: `Commands for a development cluster started with "bulwarkd dev", which
runs every host's agent and an emulated BMC for each on this machine.
Other clusters refuse them.

Examples:
   bulwarkctl dev fault host-1 crash
   bulwarkctl dev fault host-1 heal`,
		Subcommands: []*cli.Command{devFaultCommand()},
	}
}

func devFaultCommand() *cli.Command {
	return &cli.Command{
		Name:      "fault",
		Usage:     "make a host of a `bulwarkd dev` cluster fail: " + strings.Join(devFaultNames(), ", "),
		ArgsUsage: "HOST FAULT",
		Description: `Injects FAULT into HOST of a "bulwarkd dev" cluster, to watch Bulwark
detect the failure, fence the host and restart its workloads elsewhere
("bulwarkctl node list", "bulwarkctl workload list"). FAULT is one of:
` + devFaultsHelp() + `

FAULT is checked first; if it is not one of these, nothing is sent to the
server. A server that is not a "bulwarkd dev" cluster refuses the request.

Examples:
   bulwarkctl dev fault host-2 crash
   bulwarkctl dev fault host-2 partition
   bulwarkctl dev fault host-2 bmc-down
   bulwarkctl dev fault host-2 heal`,
		Flags:  withGlobal(),
		Action: leaf(devFault),
	}
}

func devFault(c *cli.Context, args []string) error {
	if len(args) != 2 {
		what := "HOST and FAULT"
		switch len(args) {
		case 1:
			what = "FAULT (one of " + strings.Join(devFaultNames(), ", ") + ")"
		case 0:
		default:
			return fmt.Errorf("too many arguments %q: expected HOST FAULT (usage: %s)", args, usageLine(c))
		}
		return fmt.Errorf("missing %s (usage: %s)", what, usageLine(c))
	}
	host, fault := args[0], strings.ToLower(strings.TrimSpace(args[1]))
	if err := api.ValidateName("node", host); err != nil {
		return fmt.Errorf("%v (nothing was sent to the server)", err)
	}
	known := false
	for _, f := range devFaults {
		known = known || f.name == fault
	}
	if !known {
		return fmt.Errorf("unknown fault %q: use one of %s (nothing was sent to the server)", args[1], strings.Join(devFaultNames(), ", "))
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	res, err := s.api.DevFault(s.ctx, host, fault)
	if err != nil {
		if client.IsNoSuchEndpoint(err) {
			return fmt.Errorf("this is not a `bulwarkd dev` cluster: the server at %s does not inject faults (%w)", s.api.BaseURL(), err)
		}
		return explain(err, "node", host)
	}
	if s.format != formatTable {
		return s.print(res)
	}
	fmt.Fprintf(s.out, "%s: %s %s\n", orDash(res.Host), orDash(res.Fault), orDash(res.Status))
	if fault != "heal" {
		fmt.Fprintf(s.out, "Watch what the cluster does with: bulwarkctl node show %s\n", host)
	}
	return nil
}
