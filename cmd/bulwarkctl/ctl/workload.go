package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// pollInterval is how often `workload delete --wait` asks whether the
// workload is gone. A variable so that tests can shorten it.
var pollInterval = 500 * time.Millisecond

// reasonWidth is the width of the REASON column of `workload list`.
const reasonWidth = 50

func workloadCommand() *cli.Command {
	return &cli.Command{
		Name:      "workload",
		UsageText: "bulwarkctl workload list|show|logs|delete|reset [options] [NAME]",
		Aliases:   []string{"workloads", "wl"},
		Usage:     "list, show, print the output of, delete and reset workloads (VMs and containers)",
		Description: `A workload is a VM or a container that the cluster keeps running. Create
VMs with "bulwarkctl vm create", containers with "bulwarkctl container
run", or any workload from a file with "bulwarkctl apply"; this command
group lists and shows them, prints their output, deletes them, and clears
their failure count ("reset").

States: pending (waiting for a node with enough room; the reason says why),
starting, running, stopping, stopped, failed.

Examples:
   bulwarkctl workload list
   bulwarkctl workload show web-1
   bulwarkctl workload logs web-1 --follow
   bulwarkctl workload delete web-1 --wait
   bulwarkctl workload reset web-1`,
		Subcommands: []*cli.Command{workloadListCommand(), workloadShowCommand(), workloadLogsCommand(), workloadDeleteCommand(), workloadResetCommand()},
	}
}

func workloadListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the workloads with their state and host",
		Description: `Lists every workload, sorted by name, with its kind (vm or container),
state, the node it is placed on (HOST, "-" while unplaced), the resources it
asked for, its priority and, for pending or failed workloads, the REASON
(shortened; "bulwarkctl workload show NAME" prints it in full).

Examples:
   bulwarkctl workload list
   bulwarkctl workload list -o json`,
		Flags:  withGlobal(),
		Action: leaf(workloadList),
	}
}

func workloadShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Aliases:   []string{"get"},
		Usage:     "show one workload in detail, including why it is pending or failed",
		ArgsUsage: "NAME",
		Description: `Shows one workload: kind, state, the node it runs on, its resources,
priority, labels, its placement rules (require, prefer, anti-affinity,
spread-by; only those that are set), for a container its image, command
and environment, for a VM its disks, direct-boot kernel, initrd and
command line, and networks (those that are set), its restart policy and
how often it was moved to another host after its host gave up restarting
it (reschedules, at most 3; the count expires after the failure_timeout
setting without a failure, or clear it with "workload reset"), the fencing epoch of its placement, and the
full reason if it is pending or failed. "bulwarkctl explain NAME" shows
how the scheduler judged each host. With -o json it prints the API's
workload object (fields name, kind, state, host, cpus, memory, ...).

Examples:
   bulwarkctl workload show web-1
   bulwarkctl workload show web-1 -o json`,
		Flags:  withGlobal(),
		Action: leaf(workloadShow),
	}
}

func workloadDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "stop a workload and remove it",
		ArgsUsage: "NAME",
		Description: `Asks the cluster to stop the workload NAME and forget it. The server answers
at once with the workload in state "stopping"; the node's agent then stops
it and the workload disappears. With --wait, bulwarkctl waits until it is
gone, for at most --timeout (default 60s); if the time runs out, the
deletion still goes on in the background.

Examples:
   bulwarkctl workload delete web-1
   bulwarkctl workload delete web-1 --wait --timeout 2m`,
		Flags: withGlobal(
			&cli.BoolFlag{Name: "wait", Usage: "wait until the workload is gone"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "how long --wait waits (e.g. 30s, 2m)"},
		),
		Action: leaf(workloadDelete),
	}
}

func workloadList(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	wls, err := s.api.ListWorkloads(s.ctx)
	if err != nil {
		return explain(err, "workload", "")
	}
	if wls == nil {
		wls = []api.WorkloadView{}
	}
	sort.Slice(wls, func(i, j int) bool { return wls[i].Name < wls[j].Name })
	if s.format != formatTable {
		return s.print(wls)
	}
	if len(wls) == 0 {
		fmt.Fprintln(s.errw, "no workloads yet; create one with: bulwarkctl vm create web-1")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "NAME", "KIND", "STATE", "HOST", "CPUS", "MEMORY", "PRIORITY", "REASON")
	for _, w := range wls {
		row(tw, w.Name, string(w.Kind), stateOf(w), orDash(w.Host),
			strconv.Itoa(w.CPUs), w.Memory.Human(), strconv.Itoa(w.Priority),
			orDash(truncate(w.Reason, reasonWidth)))
	}
	return tw.Flush()
}

// stateOf is the state to print; a workload being deleted says so even if
// the server has not switched its state yet.
func stateOf(w api.WorkloadView) string {
	if w.Deleting && w.State != api.StateStopping {
		return string(w.State) + " (deleting)"
	}
	return string(w.State)
}

func workloadShow(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("workload", name); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	w, err := s.api.GetWorkload(s.ctx, name)
	if err != nil {
		return explain(err, "workload", name)
	}
	return s.printWorkload(w)
}

// printWorkload prints one workload as JSON or as "Key: value" lines.
func (s *session) printWorkload(w *api.WorkloadView) error {
	if s.format != formatTable {
		return s.print(w)
	}
	writeWorkload(s.out, w)
	return nil
}

func writeWorkload(out io.Writer, w *api.WorkloadView) {
	tw := newTable(out)
	row(tw, "Name:", w.Name)
	row(tw, "Kind:", string(w.Kind))
	row(tw, "State:", stateOf(*w))
	row(tw, "Host:", orDash(w.Host))
	row(tw, "CPUs:", strconv.Itoa(w.CPUs))
	row(tw, "Memory:", w.Memory.String())
	row(tw, "Priority:", strconv.Itoa(w.Priority))
	row(tw, "Labels:", joinMap(w.Labels))
	// Placement rows only when set. Constraints may hold commas
	// ("rack in (a,b)"), so they are joined with "; ".
	if len(w.Require) > 0 {
		row(tw, "Require:", strings.Join(w.Require, "; "))
	}
	if len(w.Prefer) > 0 {
		row(tw, "Prefer:", strings.Join(w.Prefer, "; "))
	}
	if w.AntiAffinity != "" {
		row(tw, "Anti-affinity:", w.AntiAffinity)
	}
	if w.SpreadBy != "" {
		row(tw, "Spread-by:", w.SpreadBy)
	}
	if w.Kind == api.KindContainer || w.Image != "" {
		row(tw, "Image:", orDash(w.Image))
		row(tw, "Command:", orDash(strings.Join(w.Command, " ")))
		row(tw, "Env:", joinMap(w.Env))
	}
	writeVM(tw, w.VM)
	restart := string(w.Restart)
	if restart == "" {
		restart = string(api.RestartAlways) + " (default)"
	}
	row(tw, "Restart:", restart)
	if w.Runtime != nil {
		row(tw, "Runtime:", strings.TrimSpace(w.Runtime.Driver+" "+w.Runtime.ID))
	}
	if w.Check != nil {
		row(tw, "Check:", w.Check.String())
		health := w.Health
		if d := strings.Join(strings.Fields(w.HealthDetail), " "); d != "" {
			health = strings.TrimSpace(health + " (" + d + ")")
		}
		row(tw, "Health:", orDash(health))
	}
	if len(w.Volumes) > 0 {
		row(tw, "Volumes:", strings.Join(w.Volumes, ", "))
	}
	if len(w.VIPs) > 0 {
		row(tw, "Floating IPs:", strings.Join(w.VIPs, ", "))
	}
	if len(w.Publish) > 0 {
		var ps []string
		for _, p := range w.Publish {
			proto := p.Proto
			if proto == "" {
				proto = "tcp"
			}
			ps = append(ps, fmt.Sprintf("%s:%d -> %d/%s", p.VIP, p.Port, p.ContainerPort, proto))
		}
		row(tw, "Published:", strings.Join(ps, ", "))
	}
	row(tw, "Reschedules:", fmt.Sprintf("%d (at most %d)", w.Reschedules, api.RescheduleLimit))
	epoch := "-"
	if w.Epoch != 0 {
		epoch = strconv.FormatInt(w.Epoch, 10)
	}
	row(tw, "Epoch:", epoch)
	row(tw, "Created:", formatTime(w.CreatedAt))
	row(tw, "Reason:", orDash(strings.Join(strings.Fields(w.Reason), " ")))
	_ = tw.Flush()
}

// writeVM writes the rows of the VM settings that are set.
func writeVM(tw io.Writer, vm *api.VMSpec) {
	if vm == nil {
		return
	}
	if len(vm.Disks) > 0 {
		disks := make([]string, len(vm.Disks))
		for i, d := range vm.Disks {
			f := d.Format
			if f == "" {
				f = api.DiskFormatRaw
			}
			if d.ReadOnly {
				f += ", read-only"
			}
			disks[i] = fmt.Sprintf("%s (%s)", d.Path, f)
		}
		row(tw, "Disks:", strings.Join(disks, "; "))
	}
	if vm.Kernel != "" {
		row(tw, "Kernel:", vm.Kernel)
	}
	if vm.Initrd != "" {
		row(tw, "Initrd:", vm.Initrd)
	}
	if vm.Cmdline != "" {
		row(tw, "Cmdline:", vm.Cmdline)
	}
	if len(vm.Networks) > 0 {
		nets := make([]string, len(vm.Networks))
		for i, n := range vm.Networks {
			nets[i] = n.Bridge
			if n.MAC != "" {
				nets[i] += " (" + n.MAC + ")"
			}
		}
		row(tw, "Networks:", strings.Join(nets, "; "))
	}
}

func workloadDelete(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("workload", name); err != nil {
		return err
	}
	wait, timeout := c.Bool("wait"), c.Duration("timeout")
	if wait && timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v", timeout)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	w, err := s.api.DeleteWorkload(s.ctx, name)
	if err != nil {
		return explain(err, "workload", name)
	}
	if s.format != formatTable {
		if err := s.print(w); err != nil {
			return err
		}
	} else if !wait {
		fmt.Fprintf(s.out, "workload %q is %s; it is removed once it has stopped (add --wait to wait for that)\n", name, w.State)
	}
	if !wait {
		return nil
	}
	fmt.Fprintf(s.errw, "waiting up to %v for workload %q to stop and be removed...\n", timeout, name)
	err = waitGone(s, "workload", name, "stopping", timeout, func(ctx context.Context) (string, error) {
		w, err := s.api.GetWorkload(ctx, name)
		if err != nil {
			return "", err
		}
		if w.Reason != "" {
			return "state " + string(w.State) + ": " + w.Reason, nil
		}
		return "state " + string(w.State), nil
	})
	if err != nil {
		return err
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "workload %q deleted\n", name)
	}
	return nil
}

// waitGone polls a kind's object with get (which says what is left) until
// the server answers 404. Other errors (a leader change, a brief outage)
// are retried until the timeout.
func waitGone(s *session, kind, name, last string, timeout time.Duration, get func(context.Context) (string, error)) error {
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		left, err := get(ctx)
		switch {
		case err == nil:
			last = left
		case client.IsNotFound(err):
			return nil
		case ctx.Err() == nil:
			last = "last error: " + err.Error()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			if errors.Is(s.ctx.Err(), context.Canceled) {
				return fmt.Errorf("stopped waiting for %s %q: %w", kind, name, s.ctx.Err())
			}
			return fmt.Errorf("%s %q still exists after %v (%s); its deletion goes on in the background, check with: bulwarkctl %s show %s", kind, name, timeout, last, kind, name)
		}
	}
}
