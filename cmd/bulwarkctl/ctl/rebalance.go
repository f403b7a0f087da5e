package ctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

func rebalanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "rebalance",
		UsageText: "bulwarkctl rebalance [--dry-run] [--yes] [--no-wait]",
		Usage:     "even out the load of the hosts by moving workloads (shows the moves first)",
		Description: `When a host joins the cluster, or comes back from maintenance, it is empty
while the others stay full: the scheduler places new workloads, it never
moves running ones by itself. rebalance moves some so that the load is even
again.

A host's load is the larger of its CPU and memory use, in percent of what it
offers to workloads (its capacity minus the reserved-cpus/reserved-memory
settings). The spread is the most loaded host's load minus the least loaded
one's, counting only hosts in service (ready, not in maintenance).
rebalance plans moves until the spread is at most the rebalance-threshold
setting (default 20 points), lowest-priority and smallest workloads first,
each to a less loaded host it fits on (its --require constraints,
anti-affinity, room, volumes and floating IPs are checked as for any
placement); a move never leaves its new host more loaded than its old host
was. Workloads that are not running, and hosts out of service, are left as
they are. At most 20 moves at a time: run it again for more.

A move stops the workload on its host, then starts it on the other one
(there is no live migration yet): each workload is down for a moment.
Moves happen one at a time, in the leader, which checks each again just
before it starts it; if the cluster changed meanwhile, the rest is skipped.

It shows the plan, asks you to confirm (--yes skips the question; without
--yes standard input must be a terminal), then follows the moves until they
are done (Ctrl-C stops following, not the moves). If the plan changed while
you looked at it, nothing is moved and you are told so: run it again.

With the auto-rebalance setting on (bulwarkctl settings set
--auto-rebalance=true), the leader does this by itself, at most every
auto-rebalance-interval (default 10m).

Examples:
   bulwarkctl rebalance --dry-run          # only show what would move
   bulwarkctl rebalance                    # show, ask, move, report
   bulwarkctl rebalance --yes -o json      # for scripts
   bulwarkctl settings set --rebalance-threshold 10`,
		Flags: withGlobal(
			&cli.BoolFlag{Name: "dry-run", Usage: "only show the plan; move nothing"},
			yesFlag(),
			&cli.BoolFlag{Name: "no-wait", Usage: "return once the moves have started instead of following them"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Minute, Usage: "how long to follow the moves (they go on afterwards)"},
		),
		Action: leaf(rebalance),
	}
}

func rebalance(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	if t := c.Duration("timeout"); t <= 0 {
		return invalidInput("rebalance", fmt.Errorf("--timeout must be positive, got %s", t))
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	yes, dry := c.Bool("yes"), c.Bool("dry-run")
	if !yes && !dry && !isTerminal(s.in) {
		return fmt.Errorf("standard input is not a terminal, so bulwarkctl cannot show you the plan and ask you to confirm: add --yes to rebalance without a question, or --dry-run to only look (nothing was changed)")
	}
	plan, err := s.api.RebalancePlan(s.ctx)
	if err != nil {
		return explain(err, "rebalance plan", "")
	}
	if dry || len(plan.Moves) == 0 {
		if s.format != formatTable {
			return s.print(plan)
		}
		printRebalancePlan(s.out, plan)
		return nil
	}
	if s.format == formatTable {
		printRebalancePlan(s.out, plan)
	}
	if !yes {
		fmt.Fprintf(s.errw, "Rebalance: move %s (each is stopped on its host, then started on the other). Go ahead? [y/N] ", count(len(plan.Moves), "workload", "workloads"))
		answer, err := s.readLine()
		if err != nil || !isYes(strings.TrimSpace(answer)) {
			why := "not confirmed"
			if err != nil {
				fmt.Fprintln(s.errw)
				why = err.Error()
			}
			return fmt.Errorf("rebalance cancelled (%s): nothing was moved", why)
		}
	}
	run, err := s.api.StartRebalance(s.ctx, api.RebalanceRequest{Revision: plan.Revision, Moves: plan.Moves, By: whoAmI()})
	if err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("nothing was moved: %w", err)
		}
		return explain(err, "rebalance", "")
	}
	fmt.Fprintf(s.errw, "rebalance started: %s, one at a time\n", count(len(run.Moves), "move", "moves"))
	if c.Bool("no-wait") {
		if s.format != formatTable {
			return s.print(run)
		}
		fmt.Fprintln(s.out, "follow it with: bulwarkctl rebalance --dry-run (or bulwarkctl events --type moved)")
		return nil
	}
	return s.followRebalance(run.Started, c.Duration("timeout"))
}

// followRebalance polls the run started at started until it ends.
func (s *session) followRebalance(started time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	seen := map[string]string{}
	for {
		p, err := s.api.RebalancePlan(s.ctx)
		if err != nil {
			return explain(err, "rebalance", "")
		}
		run := p.Run
		if run == nil || !run.Started.Equal(started) {
			return fmt.Errorf("the rebalance run is gone from the cluster (another one replaced it?): see bulwarkctl events")
		}
		for _, m := range run.Moves {
			st := m.Outcome
			if st == "" && !m.Started.IsZero() {
				st = "moving"
			}
			if st != "" && seen[m.Workload] != st {
				seen[m.Workload] = st
				line := fmt.Sprintf("  %-20s %s -> %s: %s", m.Workload, m.From, m.To, st)
				if m.Reason != "" {
					line += ": " + m.Reason
				}
				fmt.Fprintln(s.errw, line)
			}
		}
		if run.State != api.RebalanceRunning {
			if s.format != formatTable {
				if err := s.print(run); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(s.out, "\nRebalance %s: %s\n", strings.ToUpper(string(run.State)), run.Message)
			}
			if run.State != api.RebalanceComplete {
				return fmt.Errorf("the rebalance ended %s: %s", run.State, run.Message)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stopped following after %s; the rebalance goes on in the cluster (see bulwarkctl events)", timeout)
		}
		select {
		case <-s.ctx.Done():
			return fmt.Errorf("stopped following (interrupted); the rebalance goes on in the cluster")
		case <-tick.C:
		}
	}
}

func pct(f float64) string { return strconv.FormatFloat(f, 'f', 0, 64) + "%" }

// printRebalancePlan prints the plan: a summary line, the moves and the
// hosts' loads before and after.
func printRebalancePlan(out io.Writer, p *api.RebalancePlan) {
	fmt.Fprintf(out, "Rebalance plan (revision %d, threshold %d points): %s\n", p.Revision, p.Threshold, p.Summary)
	for _, n := range p.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	if len(p.Moves) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "#", "WORKLOAD", "PRIORITY", "CPU", "MEMORY", "FROM", "TO", "WHY")
		for i, m := range p.Moves {
			row(tw, strconv.Itoa(i+1), m.Workload, strconv.Itoa(m.Priority), strconv.Itoa(m.CPUs), m.Memory.Human(), m.From, m.To, m.Why)
		}
		_ = tw.Flush()
	}
	if len(p.Hosts) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "HOST", "LOAD", "AFTER", "CPU", "MEMORY", "NOTE")
		for _, h := range p.Hosts {
			note := h.Note
			if note == "" {
				note = "-"
			}
			row(tw, h.Host, pct(h.Load), pct(h.LoadAfter), fmt.Sprintf("%d/%d", h.CPUsUsed, h.CPUs), usedOfTotal(h.MemoryUsed, h.Memory), note)
		}
		_ = tw.Flush()
	}
	if r := p.Run; r != nil && r.State == api.RebalanceRunning {
		fmt.Fprintf(out, "\na rebalance is under way (started %s)\n", formatTime(r.Started))
	}
}
