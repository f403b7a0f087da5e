package ctl

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// yesFlag skips the confirmation question of fence and clear.
func yesFlag() cli.Flag {
	return &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask for confirmation (for scripts)"}
}

func nodeFenceCommand() *cli.Command {
	return &cli.Command{
		Name:      "fence",
		Usage:     "power a host off through its fence device (BMC), or confirm it is off",
		ArgsUsage: "HOST",
		Description: `Asks the leader to power HOST off through its fence devices (its BMC),
as it does itself when a host stops renewing its heartbeat. Once the
power-off is confirmed, the host is "fenced" and every workload that ran
on it is restarted on other hosts. The host stays fenced, and takes no
workloads, until "bulwarkctl node clear HOST". Fence a host that misbehaves
while it still holds its heartbeat (a failing disk, a bad network card),
or to make sure a lost host is off now.

The server answers at once; follow the fencing with
"bulwarkctl node show HOST" (state fencing, then fenced, then recovered).
If HOST has no fence device, the server refuses and nothing happens.

--confirm-off is for a host that cannot be fenced (no fence device, or its
BMC is broken): it does not power anything off, it records that you have
checked the host is powered off (pulled the power cord, switched it off by
hand), and Bulwark restarts its workloads elsewhere at once. Only do this
if you have checked: workloads still running on a host that is not off
would run twice and may corrupt their data. The server refuses it while
the host still holds its heartbeat lease (its agent is alive) or when it
is already fenced.

bulwarkctl first says what it will do and asks you to type the host name;
anything else cancels, and nothing is sent to the server. --yes skips the
question; without --yes, standard input must be a terminal (a script must
say --yes; it cannot pipe the answer in).

With -o json it prints the fence request (or, with --confirm-off, the fence
record) the server stored.

Examples:
   bulwarkctl node fence node-a
   bulwarkctl node fence node-a --yes
   bulwarkctl node fence node-a --confirm-off`,
		Flags: withGlobal(
			yesFlag(),
			&cli.BoolFlag{Name: "confirm-off", Usage: "do not power anything off: record that you have checked HOST is powered off"},
		),
		Action: leaf(nodeFence),
	}
}

func nodeClearCommand() *cli.Command {
	return &cli.Command{
		Name:      "clear",
		Usage:     "let a repaired, fenced host run workloads again",
		ArgsUsage: "HOST",
		Description: `Removes the fence record of HOST (and any pending fence request and the
failure detector's state for it): the host is no longer "fenced" and the
scheduler may place workloads on it again once its agent holds its
heartbeat. Bulwark never trusts a fenced host again on its own, so this is
the operator's step after repairing it. Do it only once the host is
repaired and runs none of its old workloads any more. To switch it on
first, use "bulwarkctl node power-on HOST".

bulwarkctl asks you to type the host name first; anything else cancels,
and nothing is sent to the server. --yes skips the question; without
--yes, standard input must be a terminal.

Examples:
   bulwarkctl node clear node-a
   bulwarkctl node clear node-a --yes`,
		Flags:  withGlobal(yesFlag()),
		Action: leaf(nodeClear),
	}
}

func nodePowerOnCommand() *cli.Command {
	return &cli.Command{
		Name:      "power-on",
		Usage:     "switch a host on through its fence device (BMC)",
		ArgsUsage: "HOST",
		Description: `Asks the server to switch HOST on through the first of its fence devices
that answers, e.g. after it was fenced and repaired. It prints the device
used. Switching a host on does not clear it: a fenced host takes no
workloads until "bulwarkctl node clear HOST".

The server refuses if HOST has no fence device, and reports an error if
every device failed.

Examples:
   bulwarkctl node power-on node-a
   bulwarkctl node power-on node-a -o json`,
		Flags:  withGlobal(),
		Action: leaf(nodePowerOn),
	}
}

// hostArg returns the single, valid HOST argument.
func hostArg(c *cli.Context, args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", fmt.Errorf("missing HOST (usage: %s)", usageLine(c))
	case 1:
	default:
		return "", fmt.Errorf("too many arguments %q: expected only HOST (usage: %s)", args, usageLine(c))
	}
	if err := api.ValidateName("node", args[0]); err != nil {
		return "", fmt.Errorf("%v (nothing was sent to the server)", err)
	}
	return args[0], nil
}

func nodeFence(c *cli.Context, args []string) error {
	host, err := hostArg(c, args)
	if err != nil {
		return err
	}
	confirmOff := c.Bool("confirm-off")
	s, err := newSession(c)
	if err != nil {
		return err
	}
	if !c.Bool("yes") {
		action, warning := "fence "+host, fmt.Sprintf(
			"This powers off %s through its BMC; every workload on it will be restarted elsewhere once the power-off is confirmed.", host)
		if confirmOff {
			action = "confirming " + host + " off"
			warning = fmt.Sprintf("This records that %s is powered off, without asking its fence devices.\n"+
				"Only do this if you have checked the host is powered off: Bulwark will restart its workloads elsewhere.\n"+
				"If %s still runs them, they will run twice and may corrupt their data.", host, host)
		}
		if err := s.confirmByName(action, host, warning); err != nil {
			return err
		}
	}
	res, err := s.api.FenceNode(s.ctx, host, confirmOff)
	if err != nil {
		return fenceError(err, host, confirmOff)
	}
	switch {
	case s.format != formatTable && res.Record != nil:
		return s.print(res.Record)
	case s.format != formatTable:
		return s.print(res.Request)
	case res.Record != nil:
		fmt.Fprintf(s.out, "%s is recorded as powered off (%s); its workloads are restarted elsewhere.\nOnce it is repaired, let it back in with: bulwarkctl node clear %s\n",
			host, orDash(res.Record.PowerState), host)
	default:
		fmt.Fprintf(s.out, "fencing of %s requested: the leader powers it off through its fence devices, then restarts its workloads elsewhere.\nFollow it with: bulwarkctl node show %s\n", host, host)
	}
	return nil
}

// fenceError explains the answers the fence endpoint may give.
func fenceError(err error, host string, confirmOff bool) error {
	if client.IsConflict(err) {
		msg := apiMessage(err)
		switch {
		case confirmOff:
			return fmt.Errorf("the server refused to record %s as powered off: it still holds its heartbeat lease (its agent is alive, so the host is not off) or it is already fenced; check with: bulwarkctl node show %s (%w)", host, host, err)
		case strings.Contains(msg, "no fence device"):
			return fmt.Errorf("%s has no fence device, so Bulwark cannot power it off; if you have checked that it is powered off, record it with: bulwarkctl node fence %s --confirm-off (%w)", host, host, err)
		}
		return fmt.Errorf("the server refused to fence %s: %w", host, err)
	}
	return explain(err, "node", host)
}

func nodeClear(c *cli.Context, args []string) error {
	host, err := hostArg(c, args)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	if !c.Bool("yes") {
		warning := fmt.Sprintf("This lets %s run workloads again: its fence record is removed, and the scheduler may place workloads on it once its agent is back.\n"+
			"Only do this once the host is repaired and runs none of its old workloads.", host)
		if err := s.confirmByName("clear "+host, host, warning); err != nil {
			return err
		}
	}
	res, err := s.api.ClearNode(s.ctx, host)
	if err != nil {
		return explain(err, "node", host)
	}
	if s.format != formatTable {
		return s.print(res)
	}
	fmt.Fprintf(s.out, "%s %s: it may run workloads again once its agent holds its heartbeat (see: bulwarkctl node show %s)\n", host, orDash(res.Status), host)
	return nil
}

func nodePowerOn(c *cli.Context, args []string) error {
	host, err := hostArg(c, args)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	res, err := s.api.PowerOnNode(s.ctx, host)
	if err != nil {
		return powerOnError(err, host)
	}
	if s.format != formatTable {
		return s.print(res)
	}
	fmt.Fprintf(s.out, "%s %s by %s at %s\n", host, orDash(res.Status), orDash(res.Device), orDash(res.At))
	fmt.Fprintf(s.out, "If it was fenced, it takes no workloads until: bulwarkctl node clear %s\n", host)
	return nil
}

func powerOnError(err error, host string) error {
	var ae *client.APIError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusConflict:
			return fmt.Errorf("%s has no fence device to power it on with: switch it on by hand (%w)", host, err)
		case http.StatusBadGateway:
			return fmt.Errorf("every fence device of %s failed to power it on; check its BMC (\"bulwarkctl node show %s\" shows whether it answers): %w", host, host, err)
		}
	}
	return explain(err, "node", host)
}

// apiMessage is the server's message in an API error, or "".
func apiMessage(err error) string {
	var ae *client.APIError
	if errors.As(err, &ae) {
		return ae.Message
	}
	return ""
}
