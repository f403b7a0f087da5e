package ctl

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

func whatIfCommand() *cli.Command {
	return &cli.Command{
		Name:      "whatif",
		Usage:     "show what would restart where if hosts failed now (changes nothing)",
		ArgsUsage: "[fail HOST [HOST...]]",
		Description: `Asks the scheduler what it would do, on the cluster as it is now, if
hosts failed: the same code that places workloads answers, and nothing is
changed.

"whatif fail HOST..." imagines those hosts lost together. It prints the
workloads that would restart, in the order the scheduler places them
(higher priority first, then older first):
   ORDER     the position in which it is placed
   WORKLOAD  its name
   PRIORITY  its priority
   FROM      the host it ran on ("-": it was pending and would now fit)
   TO        the host it would restart on
then the workloads that would NOT restart, with the reason, and lower-
priority workloads that would be stopped to make room (with preemption
on). The last line is the expected recovery time: the host's agent lease
TTL plus an allowance for fencing it through its BMC. It is an estimate:
the workloads' own boot time comes on top. Hosts without a fence device
wait for an operator (or the watchdog window); a note says so.

"whatif" alone is an N+1 check: for each ready host that runs something,
what if it alone failed. One line per host:
   HOST      the host imagined lost
   VERDICT   SAFE (every workload on it would restart) or UNSAFE
   RESTART   how many workloads would restart (including any preempted)
   LOST      how many would not restart anywhere
   RECOVERY  the expected recovery time
followed by the hosts that are unsafe to lose. With -o json it prints the
API's answer (fields failed, restarts, preempted, unplaced,
expected_recovery, safe, notes; for the N+1 check, scenarios and
unsafe_hosts).

Examples:
   bulwarkctl whatif
   bulwarkctl whatif fail node-a
   bulwarkctl whatif fail node-a node-b -o json`,
		Flags:  withGlobal(),
		Action: leaf(whatIf),
	}
}

func whatIf(c *cli.Context, args []string) error {
	var hosts []string
	switch {
	case len(args) == 0:
	case args[0] != "fail":
		return fmt.Errorf("unknown argument %q: expected nothing or fail HOST... (usage: %s)", args[0], usageLine(c))
	case len(args) == 1:
		return fmt.Errorf("missing HOST after fail (usage: %s)", usageLine(c))
	default:
		hosts = args[1:]
		for _, h := range hosts {
			if err := api.ValidateName("node", h); err != nil {
				return invalidInput("host", err)
			}
		}
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	if hosts == nil {
		rep, err := s.api.WhatIfEach(s.ctx)
		if err != nil {
			return whatIfError(err)
		}
		if rep.Scenarios == nil {
			rep.Scenarios = []api.WhatIf{}
		}
		if rep.UnsafeHosts == nil {
			rep.UnsafeHosts = []string{}
		}
		if s.format != formatTable {
			return s.print(rep)
		}
		return printWhatIfReport(s.out, rep)
	}
	w, err := s.api.WhatIf(s.ctx, hosts...)
	if err != nil {
		return whatIfError(err)
	}
	if w.Restarts == nil {
		w.Restarts = []api.WhatIfMove{}
	}
	if w.Unplaced == nil {
		w.Unplaced = []api.WhatIfUnplaced{}
	}
	if s.format != formatTable {
		return s.print(w)
	}
	return printWhatIf(s.out, w)
}

// whatIfError: an unknown host is named by the server's message.
func whatIfError(err error) error {
	var ae *client.APIError
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound && !strings.HasPrefix(ae.Message, "no such endpoint") {
		return fmt.Errorf("%s (list them with: bulwarkctl node list)", ae.Message)
	}
	return explain(err, "node", "")
}

func printWhatIf(out io.Writer, w *api.WhatIf) error {
	fmt.Fprintln(out, whatIfSummary(w))
	if len(w.Restarts) > 0 {
		tw := newTable(out)
		row(tw, "ORDER", "WORKLOAD", "PRIORITY", "FROM", "TO")
		for _, m := range w.Restarts {
			row(tw, strconv.Itoa(m.Order), m.Workload, strconv.Itoa(m.Priority), orDash(m.From), m.To)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(w.Unplaced) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "WOULD NOT RESTART", "PRIORITY", "FROM", "REASON")
		for _, u := range w.Unplaced {
			row(tw, u.Workload, strconv.Itoa(u.Priority), orDash(u.From), orDash(strings.Join(strings.Fields(u.Reason), " ")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(w.Preempted) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "WOULD BE STOPPED", "ON", "FOR")
		for _, p := range w.Preempted {
			row(tw, p.Workload, p.Host, p.By)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, n := range w.Notes {
		fmt.Fprintf(out, "note: %s\n", strings.Join(strings.Fields(n), " "))
	}
	return nil
}

// whatIfSummary is the first line of `whatif fail`.
func whatIfSummary(w *api.WhatIf) string {
	verb := "fails"
	if len(w.Failed) > 1 {
		verb = "fail"
	}
	head := fmt.Sprintf("If %s %s:", strings.Join(w.Failed, ", "), verb)
	if len(w.Restarts) == 0 && len(w.Unplaced) == 0 {
		return head + " nothing runs there, nothing would move"
	}
	verdict := "SAFE"
	if !w.Safe {
		verdict = "UNSAFE"
	}
	return fmt.Sprintf("%s %s, %s restart, %s would not; expected recovery %s (estimate)", head, verdict,
		count(len(w.Restarts), "workload", "workloads"), strconv.Itoa(len(w.Unplaced)), w.ExpectedRecovery)
}

func printWhatIfReport(out io.Writer, rep *api.WhatIfReport) error {
	if len(rep.Scenarios) == 0 {
		fmt.Fprintln(out, "no ready host runs anything: nothing to check")
		return nil
	}
	tw := newTable(out)
	row(tw, "HOST", "VERDICT", "RESTART", "LOST", "RECOVERY")
	for _, sc := range rep.Scenarios {
		verdict := "SAFE"
		if !sc.Safe {
			verdict = "UNSAFE"
		}
		row(tw, strings.Join(sc.Failed, ","), verdict, strconv.Itoa(len(sc.Restarts)), strconv.Itoa(len(sc.Unplaced)), sc.ExpectedRecovery.String())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.UnsafeHosts) == 0 {
		fmt.Fprintf(out, "every host can be lost: all %s would restart elsewhere (N+1 holds)\n", count(len(rep.Scenarios), "host's workloads", "hosts' workloads"))
		return nil
	}
	fmt.Fprintf(out, "unsafe to lose (%d of %d): %s (see: bulwarkctl whatif fail %s)\n", len(rep.UnsafeHosts), len(rep.Scenarios),
		strings.Join(rep.UnsafeHosts, ", "), rep.UnsafeHosts[0])
	return nil
}

func count(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
