package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// drainPoll is how often `node drain` asks for the drain's progress. A
// variable so that tests can shorten it.
var drainPoll = 500 * time.Millisecond

func nodeMaintenanceCommand() *cli.Command {
	return &cli.Command{
		Name:      "maintenance",
		Usage:     "take a host out of service (on) or back in (off): nothing new is placed there, nothing is moved off",
		ArgsUsage: "on|off HOST",
		Description: `"maintenance on HOST" stops the scheduler from placing anything new on
HOST: new workloads, restarts after failures and preempted workloads all go
elsewhere. What already runs on HOST stays there and keeps running (to move
it off, use "bulwarkctl node drain HOST"). "maintenance off HOST" lets the
scheduler use the host again; it also stops a drain that is under way
(moves already started finish, no new one starts).

Both are recorded with who asked (the user and machine bulwarkctl runs as)
and when, shown by "bulwarkctl node show HOST", and written to the event
history ("maintenance-on", "maintenance-off"). "node list" shows the host's
state as e.g. "ready,maintenance". Turning maintenance on for a host that
is already in maintenance, or off for one that is not, changes nothing.

Examples:
   bulwarkctl node maintenance on node-a --reason "replace DIMM B2"
   bulwarkctl node maintenance off node-a`,
		Flags: withGlobal(
			&cli.StringFlag{Name: "reason", Usage: "a note for the record, e.g. a ticket (`TEXT`, with on)"},
		),
		Action: leaf(nodeMaintenance),
	}
}

func nodeDrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "drain",
		Usage:     "move every workload off a host, in batches, after showing the plan",
		ArgsUsage: "HOST",
		Description: `Empties HOST for maintenance:
 1. puts HOST in maintenance (nothing new is placed there);
 2. prints the plan, computed by the scheduler from the cluster as it is
    now (the same code that places workloads): which workload moves to
    which host in which batch (higher priority first), which would stay on
    HOST and why (it fits on no other host: a label constraint, its
    anti-affinity group, no room), and, with preemption on, which
    lower-priority workloads elsewhere would be stopped to make room;
 3. asks you to confirm (--yes skips the question; without --yes standard
    input must be a terminal). If you say no, HOST goes back out of
    maintenance if bulwarkctl put it there, and nothing else changes;
 4. the leader moves the workloads, --batch at a time: each is stopped on
    HOST and, once HOST's agent no longer reports it, started on its new
    host under a new epoch. The next batch starts when every workload of
    the batch before runs elsewhere (or has failed to). A workload that
    fits nowhere else is never stopped: it stays on HOST and is reported;
 5. prints the progress (on standard error) and a final report: what moved
    where, what could not move and why, what did not start elsewhere, what
    is still being stopped.

A drain is done ("complete") only once HOST's agent reports nothing and
every workload runs elsewhere. It ends "incomplete" when some workload
stays or did not start elsewhere, and "timed-out" after --timeout; HOST
stays in maintenance in every case, until "bulwarkctl node undrain HOST".
The drain runs in the cluster, not in bulwarkctl: after Ctrl-C it goes on,
and "bulwarkctl node drain HOST" run again follows it instead of starting
another. "bulwarkctl node undrain HOST" stops it.

Exit status: 0 if HOST was emptied (complete), 1 otherwise (incomplete,
timed out, cancelled or an error). With -o json or -o yaml, the plan and
the final report are printed as one object {"plan": ..., "drain": ...}
at the end.

Examples:
   bulwarkctl node drain node-a
   bulwarkctl node drain node-a --yes --batch 4 --timeout 30m
   bulwarkctl node undrain node-a`,
		Flags: withGlobal(
			yesFlag(),
			&cli.IntFlag{Name: "batch", Value: api.DefaultDrainBatch, Usage: "move `N` workloads at a time, 1 to 256"},
			&cli.DurationFlag{Name: "timeout", Value: api.DefaultDrainTimeout, Usage: "give up after this `DURATION` (the host stays in maintenance)"},
			&cli.StringFlag{Name: "reason", Usage: "a note for the maintenance record, e.g. a ticket (`TEXT`)"},
		),
		Action: leaf(nodeDrain),
	}
}

func nodeUndrainCommand() *cli.Command {
	return &cli.Command{
		Name:      "undrain",
		Usage:     "take a drained host out of maintenance (stops a drain under way)",
		ArgsUsage: "HOST",
		Description: `Takes HOST out of maintenance, the same as "bulwarkctl node maintenance
off HOST": the scheduler may place workloads there again. A drain under
way stops: workloads already being moved finish moving, no more start.
Workloads moved off are not moved back; new placements and restarts may
use HOST again.

Examples:
   bulwarkctl node undrain node-a`,
		Flags:  withGlobal(),
		Action: leaf(nodeUndrain),
	}
}

// whoAmI names the operator for the records: user@machine.
func whoAmI() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	host, _ := os.Hostname()
	switch {
	case name != "" && host != "":
		return name + "@" + host
	case name != "":
		return name
	}
	return host
}

// maintenanceError explains a failed maintenance or drain request.
func maintenanceError(err error, host string) error {
	var ae *client.APIError
	if errors.As(err, &ae) && !client.IsNoSuchEndpoint(err) {
		switch ae.Status {
		case http.StatusNotFound:
			return fmt.Errorf("node %q is not registered (list them with: bulwarkctl node list)", host)
		case http.StatusConflict:
			return fmt.Errorf("the server refused: %s", ae.Message)
		}
	}
	return explain(err, "node", host)
}

func nodeMaintenance(c *cli.Context, args []string) error {
	if len(args) == 0 || args[0] != "on" && args[0] != "off" {
		what := "missing on or off"
		if len(args) > 0 {
			what = fmt.Sprintf("unknown argument %q: expected on or off", args[0])
		}
		return fmt.Errorf("%s (usage: %s)", what, usageLine(c))
	}
	on := args[0] == "on"
	host, err := hostArg(c, args[1:])
	if err != nil {
		return err
	}
	reason := strings.TrimSpace(c.String("reason"))
	if !on && reason != "" {
		return fmt.Errorf("--reason goes with maintenance on (nothing was sent to the server)")
	}
	if err := (&api.MaintenanceRequest{Reason: reason}).Validate(); err != nil {
		return invalidInput("maintenance request", err)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	var res *api.MaintenanceResult
	if on {
		res, err = s.api.MaintenanceOn(s.ctx, host, reason, whoAmI())
	} else {
		res, err = s.api.MaintenanceOff(s.ctx, host, whoAmI())
	}
	if err != nil {
		return maintenanceError(err, host)
	}
	if s.format != formatTable {
		return s.print(res)
	}
	switch {
	case on && res.Changed:
		fmt.Fprintf(s.out, "%s is in maintenance: nothing new is placed there; what runs there stays (move it off with: bulwarkctl node drain %s)\n", host, host)
	case on:
		fmt.Fprintf(s.out, "%s was already in maintenance (%s); nothing changed\n", host, maintenanceText(res.Maintenance))
	case res.Changed:
		fmt.Fprintf(s.out, "%s is out of maintenance: the scheduler may place workloads there again\n", host)
		if d := res.Maintenance.Drain; d != nil && d.State == api.DrainRunning {
			fmt.Fprintf(s.out, "the drain under way stopped: workloads already being moved finish moving, no more start\n")
		}
	default:
		fmt.Fprintf(s.out, "%s was not in maintenance; nothing changed\n", host)
	}
	return nil
}

func nodeUndrain(c *cli.Context, args []string) error {
	host, err := hostArg(c, args)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	res, err := s.api.MaintenanceOff(s.ctx, host, whoAmI())
	if err != nil {
		return maintenanceError(err, host)
	}
	if s.format != formatTable {
		return s.print(res)
	}
	if !res.Changed {
		fmt.Fprintf(s.out, "%s was not in maintenance; nothing changed\n", host)
		return nil
	}
	msg := fmt.Sprintf("%s is out of maintenance: the scheduler may place workloads there again", host)
	if d := res.Maintenance.Drain; d != nil && d.State == api.DrainRunning {
		msg += "; the drain under way stopped (workloads already being moved finish moving)"
	}
	fmt.Fprintln(s.out, msg)
	return nil
}

// maintenanceText sums up a maintenance record for node show.
func maintenanceText(m *api.Maintenance) string {
	if m == nil {
		return "no"
	}
	s := "since " + formatTime(m.Since)
	if m.By != "" {
		s += " by " + m.By
	}
	if m.Reason != "" {
		s += ": " + strings.Join(strings.Fields(m.Reason), " ")
	}
	return s
}

// drainText sums up a drain for node show.
func drainText(d *api.Drain) string {
	if d == nil {
		return "-"
	}
	s := fmt.Sprintf("%s (started %s, batches of %d)", d.State, formatTime(d.Started), d.Batch)
	switch {
	case d.Message != "":
		s += ": " + strings.Join(strings.Fields(d.Message), " ")
	case d.State == api.DrainRunning:
		moved := 0
		for _, m := range d.Moves {
			if m.Outcome == api.DrainMoved {
				moved++
			}
		}
		s += fmt.Sprintf(": %d moved so far, batch %d", moved, d.Batches)
	}
	return s
}

// hostState is a host's STATE as node list and status print it: its state,
// then ",maintenance", ",draining" or ",drained" while in maintenance.
func hostState(n api.NodeView) string {
	st := orDash(string(n.State))
	m := n.Maintenance
	switch {
	case m == nil:
		return st
	case m.Drain != nil && m.Drain.State == api.DrainRunning:
		return st + ",draining"
	case m.Drain != nil && m.Drain.State == api.DrainComplete:
		return st + ",drained"
	}
	return st + ",maintenance"
}

// drainOutput is what -o json/yaml prints for node drain.
type drainOutput struct {
	Plan  *api.DrainPlan   `json:"plan,omitempty"`
	Drain *api.DrainStatus `json:"drain"`
}

func nodeDrain(c *cli.Context, args []string) error {
	host, err := hostArg(c, args)
	if err != nil {
		return err
	}
	req := api.DrainRequest{Batch: c.Int("batch"), Timeout: api.Duration(c.Duration("timeout")), Reason: strings.TrimSpace(c.String("reason")), By: whoAmI()}
	if err := req.Validate(); err != nil {
		return invalidInput("drain options", err)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	// A drain under way is followed, not started again.
	if cur, err := s.api.DrainStatus(s.ctx, host); err == nil && cur.State == api.DrainRunning {
		fmt.Fprintf(s.errw, "a drain of %s is already under way (started %s, batches of %d); following it (Ctrl-C stops following, not the drain)\n",
			host, formatTime(cur.Started), cur.Batch)
		return s.followDrain(host, nil, time.Until(cur.Deadline))
	} else if err != nil && !client.IsNotFound(err) {
		return maintenanceError(err, host)
	}
	yes := c.Bool("yes")
	if !yes && !isTerminal(s.in) {
		return fmt.Errorf("standard input is not a terminal, so bulwarkctl cannot show you the plan and ask you to confirm: add --yes to drain %s without a question (nothing was changed)", host)
	}
	on, err := s.api.MaintenanceOn(s.ctx, host, req.Reason, req.By)
	if err != nil {
		return maintenanceError(err, host)
	}
	undo := func() string {
		if !on.Changed {
			return fmt.Sprintf("%s stays in maintenance, as it was before", host)
		}
		// Use a fresh context: the command's may be cancelled (Ctrl-C).
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := s.api.MaintenanceOff(ctx, host, req.By); err != nil {
			return fmt.Sprintf("%s could not be taken out of maintenance again (%v): do it with: bulwarkctl node maintenance off %s", host, err, host)
		}
		return fmt.Sprintf("%s is out of maintenance again, as it was before", host)
	}
	if on.Changed {
		fmt.Fprintf(s.errw, "%s is now in maintenance: nothing new is placed there\n", host)
	}
	plan, err := s.api.DrainPlan(s.ctx, host, req.Batch)
	if err != nil {
		msg := undo()
		return fmt.Errorf("%w; %s", maintenanceError(err, host), msg)
	}
	if s.format == formatTable {
		printDrainPlan(s.out, plan)
	}
	if !yes && len(plan.Moves) > 0 {
		fmt.Fprintf(s.errw, "Drain %s: move %s in %s; %d %s. Go ahead? [y/N] ", host,
			count(len(plan.Moves), "workload", "workloads"), count(planBatches(plan), "batch", "batches"), len(plan.Stuck), stayVerb(len(plan.Stuck)))
		answer, err := s.readLine()
		if err != nil || !isYes(strings.TrimSpace(answer)) {
			if err != nil {
				fmt.Fprintln(s.errw)
			}
			why := "not confirmed"
			if err != nil {
				why = err.Error()
			}
			return fmt.Errorf("drain of %s cancelled (%s): no workload was moved; %s", host, why, undo())
		}
	}
	st, err := s.api.StartDrain(s.ctx, host, req)
	if err != nil {
		if client.IsConflict(err) {
			if cur, gerr := s.api.DrainStatus(s.ctx, host); gerr == nil && cur.State == api.DrainRunning {
				fmt.Fprintf(s.errw, "another drain of %s started meanwhile; following it\n", host)
				return s.followDrain(host, plan, time.Until(cur.Deadline))
			}
		}
		return maintenanceError(err, host)
	}
	fmt.Fprintf(s.errw, "drain of %s started: %s, batches of %d, timeout %s\n", host, count(len(plan.Moves), "workload to move", "workloads to move"), req.Batch, req.Timeout)
	_ = st
	return s.followDrain(host, plan, time.Duration(req.Timeout))
}

func stayVerb(n int) string {
	if n == 1 {
		return "stays"
	}
	return "stay"
}

func planBatches(p *api.DrainPlan) int {
	if len(p.Moves) == 0 {
		return 0
	}
	return p.Moves[len(p.Moves)-1].Batch
}

// printDrainPlan prints what a drain would do.
func printDrainPlan(out io.Writer, p *api.DrainPlan) {
	if len(p.Moves) == 0 && len(p.Stuck) == 0 {
		fmt.Fprintf(out, "Drain plan for %s: nothing runs there, nothing to move\n", p.Host)
	} else {
		fmt.Fprintf(out, "Drain plan for %s (batches of %d): %s in %s, %d %s\n", p.Host, p.Batch,
			count(len(p.Moves), "workload moves", "workloads move"), count(planBatches(p), "batch", "batches"), len(p.Stuck), stayVerb(len(p.Stuck)))
	}
	if len(p.Moves) > 0 {
		tw := newTable(out)
		row(tw, "BATCH", "WORKLOAD", "PRIORITY", "TO")
		for _, m := range p.Moves {
			row(tw, strconv.Itoa(m.Batch), m.Workload, strconv.Itoa(m.Priority), m.To)
		}
		_ = tw.Flush()
	}
	if len(p.Stuck) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "STAYS ON "+p.Host, "PRIORITY", "WHY")
		for _, x := range p.Stuck {
			row(tw, x.Workload, strconv.Itoa(x.Priority), strings.Join(strings.Fields(x.Reason), " "))
		}
		_ = tw.Flush()
	}
	if len(p.Preempted) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "WOULD BE STOPPED", "ON", "FOR")
		for _, x := range p.Preempted {
			row(tw, x.Workload, x.Host, x.By)
		}
		_ = tw.Flush()
	}
	for _, n := range p.Notes {
		fmt.Fprintf(out, "note: %s\n", strings.Join(strings.Fields(n), " "))
	}
}

// followDrain polls the drain until it ends, showing progress on standard
// error, then prints the final report. It fails unless the host was
// emptied.
func (s *session) followDrain(host string, plan *api.DrainPlan, timeout time.Duration) error {
	// The server ends the drain at its deadline; wait a little longer for
	// it to say so.
	ctx, cancel := context.WithTimeout(s.ctx, max(timeout, 0)+30*time.Second)
	defer cancel()
	prog := newDrainProgress(s.errw)
	var last *api.DrainStatus
	var lastErr error
	for {
		st, err := s.api.DrainStatus(ctx, host)
		switch {
		case err == nil:
			last, lastErr = st, nil
			prog.update(st)
		case client.IsNotFound(err):
			prog.done()
			return fmt.Errorf("the drain of %s was stopped: the host is out of maintenance (node undrain or maintenance off)", host)
		case ctx.Err() == nil:
			lastErr = err
		}
		if last != nil && last.State.Done() {
			prog.done()
			return s.drainReport(plan, last)
		}
		select {
		case <-time.After(drainPoll):
		case <-ctx.Done():
			prog.done()
			if errors.Is(s.ctx.Err(), context.Canceled) {
				return fmt.Errorf("stopped following the drain of %s; it goes on in the cluster: follow it again with: bulwarkctl node drain %s (or stop it with: bulwarkctl node undrain %s)", host, host, host)
			}
			why := ""
			if lastErr != nil {
				why = fmt.Sprintf(" (last error: %v)", lastErr)
			}
			return fmt.Errorf("the drain of %s did not end in time%s; check it with: bulwarkctl node show %s", host, why, host)
		}
	}
}

// drainProgress shows a drain's progress: a line per move that changes
// phase, and on a terminal a bar redrawn in place.
type drainProgress struct {
	w      io.Writer
	term   bool
	phases map[string]string
	bar    bool // a bar is drawn on the current line
}

func newDrainProgress(w io.Writer) *drainProgress {
	return &drainProgress{w: w, term: isTerminalOut(w), phases: map[string]string{}}
}

func (p *drainProgress) clearBar() {
	if p.bar {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.bar = false
	}
}

func (p *drainProgress) update(st *api.DrainStatus) {
	for _, m := range st.Moves {
		key := m.Workload + "@" + strconv.Itoa(m.Batch)
		ph := m.Phase
		if ph == api.PhaseStarting || ph == api.DrainMoved {
			ph += " " + m.Now
		}
		if p.phases[key] == ph {
			continue
		}
		p.phases[key] = ph
		p.clearBar()
		line := fmt.Sprintf("  batch %d  %-20s %s", m.Batch, m.Workload, movePhaseText(m))
		fmt.Fprintln(p.w, line)
	}
	moved, settled := 0, 0
	for _, m := range st.Moves {
		if m.Outcome != "" {
			settled++
		}
		if m.Outcome == api.DrainMoved {
			moved++
		}
	}
	summary := fmt.Sprintf("%d/%d moved, batch %d, %d left on %s", moved, len(st.Moves), st.Batches, st.Remaining, st.Host)
	if p.term {
		const width = 20
		fill := 0
		if n := len(st.Moves); n > 0 {
			fill = settled * width / n
		}
		p.clearBar()
		fmt.Fprintf(p.w, "[%s%s] %s", strings.Repeat("#", fill), strings.Repeat("-", width-fill), summary)
		p.bar = true
	}
}

func (p *drainProgress) done() { p.clearBar() }

// movePhaseText says where one move stands, for the progress lines.
func movePhaseText(m api.DrainMoveStatus) string {
	switch m.Phase {
	case api.PhaseStopping:
		return "stopping on its old host"
	case api.PhaseWaiting:
		return "stopped; waiting to be placed"
	case api.PhaseStarting:
		return "starting on " + orDash(m.Now)
	case api.DrainMoved:
		return "moved: running on " + orDash(m.Now)
	case api.DrainDeleted:
		return "deleted meanwhile"
	}
	return m.Phase + ": " + strings.Join(strings.Fields(m.Detail), " ")
}

// drainReport prints how a drain ended and fails unless it is complete.
func (s *session) drainReport(plan *api.DrainPlan, st *api.DrainStatus) error {
	if s.format != formatTable {
		if err := s.print(drainOutput{Plan: plan, Drain: st}); err != nil {
			return err
		}
	} else {
		printDrainReport(s.out, st)
	}
	if st.State == api.DrainComplete {
		return nil
	}
	return fmt.Errorf("the drain of %s ended %s: %s was not emptied (see the report above; the host stays in maintenance)", st.Host, st.State, st.Host)
}

// took rounds a duration for people: to 10ms under 10s, else to seconds.
func took(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func printDrainReport(out io.Writer, st *api.DrainStatus) {
	fmt.Fprintf(out, "\nDrain of %s: %s after %s\n", st.Host, strings.ToUpper(string(st.State)), took(st.Finished.Sub(st.Started)))
	var moved, failed, going []api.DrainMoveStatus
	for _, m := range st.Moves {
		switch m.Outcome {
		case api.DrainMoved:
			moved = append(moved, m)
		case api.DrainDeleted:
		case "":
			going = append(going, m)
		default:
			failed = append(failed, m)
		}
	}
	if len(moved) > 0 {
		tw := newTable(out)
		row(tw, "MOVED", "BATCH", "TO")
		for _, m := range moved {
			row(tw, m.Workload, strconv.Itoa(m.Batch), orDash(m.Host))
		}
		_ = tw.Flush()
	}
	if len(st.Stuck) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "COULD NOT MOVE", "PRIORITY", "WHY (it still runs on "+st.Host+")")
		for _, x := range st.Stuck {
			row(tw, x.Workload, strconv.Itoa(x.Priority), strings.Join(strings.Fields(x.Reason), " "))
		}
		_ = tw.Flush()
	}
	if len(failed) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "MOVED OFF, NOT RUNNING", "OUTCOME", "WHY")
		for _, m := range failed {
			row(tw, m.Workload, m.Outcome, strings.Join(strings.Fields(m.Detail), " "))
		}
		_ = tw.Flush()
	}
	if len(going) > 0 {
		fmt.Fprintln(out)
		tw := newTable(out)
		row(tw, "STILL MOVING", "PHASE", "DETAIL")
		for _, m := range going {
			row(tw, m.Workload, m.Phase, strings.Join(strings.Fields(m.Detail), " "))
		}
		_ = tw.Flush()
	}
	var still []string
	for _, name := range st.Reporting {
		stuck := false
		for _, x := range st.Stuck {
			stuck = stuck || x.Workload == name
		}
		if !stuck {
			still = append(still, name)
		}
	}
	sort.Strings(still)
	if len(still) > 0 {
		fmt.Fprintf(out, "still being stopped on %s: %s\n", st.Host, strings.Join(still, ", "))
	}
	switch {
	case st.State == api.DrainComplete:
		fmt.Fprintf(out, "%s runs nothing now and stays in maintenance; when it is back: bulwarkctl node undrain %s\n", st.Host, st.Host)
	default:
		fmt.Fprintf(out, "%s stays in maintenance with %s on it; undo with: bulwarkctl node undrain %s\n", st.Host, count(st.Remaining, "workload", "workloads"), st.Host)
	}
}

func workloadResetCommand() *cli.Command {
	return &cli.Command{
		Name:      "reset",
		Usage:     "clear a workload's failure count; a workload that gave up is placed again",
		ArgsUsage: "NAME",
		Description: `A workload whose host gave up restarting it is moved to another host, at
most 3 times (its failure count, "Reschedules" in "workload show"); after
that it stays failed. The count expires by itself once the workload has
run without failing for the failure_timeout setting (default 10m; see
"bulwarkctl settings"), or has waited that long after its host gave up.
"workload reset NAME" clears it now: the leader sets the count to 0 and
forgets the backoff and the host to avoid; a workload whose host gave up
on it is then placed again on another host.

The reset is recorded in the event history ("failures-reset"). The server
waits a few seconds for the leader to apply it and says whether it has.

Examples:
   bulwarkctl workload reset web-1
   bulwarkctl workload reset web-1 -o json`,
		Flags:  withGlobal(),
		Action: leaf(workloadReset),
	}
}

func workloadReset(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("workload", name); err != nil {
		return fmt.Errorf("%v (nothing was sent to the server)", err)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	res, err := s.api.ResetWorkload(s.ctx, name, whoAmI())
	if err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("the server refused: %s", apiMessage(err))
		}
		return explain(err, "workload", name)
	}
	if s.format != formatTable {
		return s.print(res)
	}
	fmt.Fprintf(s.out, "%s: %s\n", name, res.Message)
	if !res.Applied {
		return fmt.Errorf("the reset of %s was not applied yet: it waits for the leader", name)
	}
	return nil
}
