package ctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// statusRefresh is how often `status --watch` redraws without an event, to
// catch workload state changes that emit none. A variable for the tests.
var statusRefresh = 2 * time.Second

// statusEventTypes are the events shown under RECENT FAILURES AND FENCING.
var statusEventTypes = map[string]bool{
	"host-lost": true, "host-fencing": true, "fenced": true, "fence-failed": true,
	"unfenceable": true, "recovering": true, "rescheduling": true, "preempted": true,
	"move-failed": true, "drain-incomplete": true, "drain-timed-out": true,
	"unhealthy": true,
}

const (
	// statusEvents is how many recent failure and fencing events are shown.
	statusEvents = 10
	// statusEventScan is how many of the newest events are fetched to find them.
	statusEventScan = 1000
	// clearScreen moves the cursor home and clears the terminal.
	clearScreen = "\x1b[H\x1b[2J"
)

// workloadStateOrder is the order of WORKLOADS BY STATE.
var workloadStateOrder = []api.State{
	api.StateRunning, api.StateStarting, api.StatePending, api.StateStopping, api.StateStopped, api.StateFailed,
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the whole cluster on one screen: hosts, workloads, failures",
		Description: `Shows the cluster at a glance, like Pacemaker's crm_mon:
   header      the API server asked, the leader, and the store revision
   HOSTS       every host with its state (",maintenance", ",draining"
               or ",drained" added while in maintenance), fencing health (ok, none,
               unfenceable; see "bulwarkctl node list --help"), CPUs and
               memory used/total and how many workloads it runs. Hosts that
               are not ready come first, with the reason
   WORKLOADS BY STATE
               how many workloads are running, starting, pending, stopping,
               stopped and failed
   SERVICES    (when there are any) each replicated service: copies wanted
               and running, and with a load-balanced address how many
               copies take its connections and which host holds it
   PENDING AND FAILED
               the workloads that wait for a host, or failed, with the
               reason (highest priority first; "bulwarkctl explain NAME"
               tells more)
   RECENT FAILURES AND FENCING
               the last 10 events of types host-lost, host-fencing, fenced,
               fence-failed, unfenceable, recovering, rescheduling,
               preempted, move-failed, drain-incomplete and
               drain-timed-out (among the newest 1000 events)

With --watch (-w) it redraws the screen whenever something changes, until
you press Ctrl-C: it follows the event stream and redraws on each event,
and also redraws every 2 seconds, because a workload changing state (say,
from starting to running) emits no event. On a terminal the screen is
cleared before each redraw; otherwise (piped to a file) each snapshot
follows the previous one after a separator line. If the server cannot be
reached during --watch, the screen says so and the next redraw tries
again.

With -o json it prints one JSON object with the same sections (with
--watch, one object per line for each redraw); -o yaml prints the same as
YAML (with --watch, one YAML document, after "---", per redraw).

Examples:
   bulwarkctl status
   bulwarkctl status --watch
   bulwarkctl status -o json`,
		Flags: withGlobal(
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "redraw on every event and every 2s until Ctrl-C"},
		),
		Action: leaf(statusRun),
	}
}

// clusterStatus is the snapshot that status prints; -o json prints it as is.
type clusterStatus struct {
	API              string             `json:"api"`
	Server           string             `json:"server"`
	ServerStatus     string             `json:"server_status"`
	Leader           string             `json:"leader"`
	IsLeader         bool               `json:"is_leader"`
	Revision         int64              `json:"revision"`
	Hosts            []api.NodeView     `json:"hosts"`
	WorkloadsByState map[string]int     `json:"workloads_by_state"`
	Pending          []api.WorkloadView `json:"pending"`
	Failed           []api.WorkloadView `json:"failed"`
	RecentEvents     []api.Event        `json:"recent_events"`
	// Services are the replicated services, if any.
	Services []api.ServiceView `json:"services,omitempty"`
	// at is when the snapshot was taken, for the table's header.
	at time.Time
}

func statusRun(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	base := strings.TrimSpace(lookupGlobal(c, "api"))
	if base == "" {
		base = DefaultAPI
	}
	if c.Bool("watch") {
		return watchStatus(s, base)
	}
	st, err := fetchStatus(s.ctx, s.api, base)
	if err != nil {
		return err
	}
	return printStatus(s.out, s.format, st, false)
}

// fetchStatus asks the server for everything the screen shows.
func fetchStatus(ctx context.Context, cl *client.Client, base string) (*clusterStatus, error) {
	h, err := cl.Health(ctx)
	if err != nil {
		return nil, explain(err, "", "")
	}
	nodes, err := cl.ListNodes(ctx)
	if err != nil {
		return nil, explain(err, "node", "")
	}
	wls, err := cl.ListWorkloads(ctx)
	if err != nil {
		return nil, explain(err, "workload", "")
	}
	evs, err := cl.ListEvents(ctx, client.EventFilter{Limit: statusEventScan})
	if err != nil {
		return nil, explain(err, "event", "")
	}
	svcs, err := cl.ListServices(ctx)
	if err != nil && !client.IsNotFound(err) { // an older server has no services
		return nil, explain(err, "service", "")
	}
	st := &clusterStatus{
		Services: svcs,
		API:      base, Server: h.Server, ServerStatus: h.Status, Leader: h.Leader, IsLeader: h.IsLeader, Revision: h.Revision,
		Hosts: []api.NodeView{}, WorkloadsByState: map[string]int{}, Pending: []api.WorkloadView{},
		Failed: []api.WorkloadView{}, RecentEvents: []api.Event{}, at: time.Now(),
	}
	st.Hosts = append(st.Hosts, nodes...)
	sort.SliceStable(st.Hosts, func(i, j int) bool {
		ri, rj := st.Hosts[i].State == api.NodeReady, st.Hosts[j].State == api.NodeReady
		if ri != rj {
			return !ri // not ready first
		}
		return st.Hosts[i].Name < st.Hosts[j].Name
	})
	for _, w := range wls {
		st.WorkloadsByState[string(w.State)]++
		switch w.State {
		case api.StatePending:
			st.Pending = append(st.Pending, w)
		case api.StateFailed:
			st.Failed = append(st.Failed, w)
		}
	}
	byPriority := func(ws []api.WorkloadView) {
		sort.Slice(ws, func(i, j int) bool {
			if ws[i].Priority != ws[j].Priority {
				return ws[i].Priority > ws[j].Priority
			}
			return ws[i].Name < ws[j].Name
		})
	}
	byPriority(st.Pending)
	byPriority(st.Failed)
	for _, e := range evs {
		if statusEventTypes[e.Type] {
			st.RecentEvents = append(st.RecentEvents, e)
		}
	}
	if n := len(st.RecentEvents); n > statusEvents {
		st.RecentEvents = st.RecentEvents[n-statusEvents:]
	}
	return st, nil
}

// printStatus writes one snapshot. compact (for --watch -o json) writes
// the JSON object on one line.
func printStatus(w io.Writer, f format, st *clusterStatus, compact bool) error {
	if f != formatTable {
		if compact {
			return printStreamed(w, f, st)
		}
		return printData(w, f, st)
	}
	var b bytes.Buffer
	leader := orDash(st.Leader)
	if st.IsLeader {
		leader += " (this server)"
	}
	fmt.Fprintf(&b, "API server: %s (%s)   Leader: %s   Revision: %d   Updated: %s\n",
		st.API, orDash(st.Server), leader, st.Revision, st.at.Local().Format("15:04:05"))
	if st.ServerStatus != "" && st.ServerStatus != "ok" {
		fmt.Fprintf(&b, "Server status: %s\n", truncate(st.ServerStatus, 200))
	}

	fmt.Fprintf(&b, "\nHOSTS (%d)\n", len(st.Hosts))
	if len(st.Hosts) == 0 {
		fmt.Fprintln(&b, "   none registered yet: start a Bulwark agent on a host (or run `bulwarkd dev`)")
	} else {
		tw := newTable(&b)
		row(tw, "NAME", "STATE", "FENCING", "CPU", "MEMORY", "WORKLOADS", "REASON")
		for _, n := range st.Hosts {
			reason := "-"
			if n.State != api.NodeReady {
				reason = orDash(truncate(n.Reason, 80))
			}
			row(tw, n.Name, hostState(n), orDash(truncate(n.Fencing, fencingWidth)),
				fmt.Sprintf("%d/%d", n.CPUsUsed, n.CPUs), usedOfTotal(n.MemoryUsed, n.Memory),
				strconv.Itoa(n.Workloads), reason)
		}
		_ = tw.Flush()
	}

	total := 0
	for _, n := range st.WorkloadsByState {
		total += n
	}
	fmt.Fprintf(&b, "\nWORKLOADS BY STATE (%d)\n", total)
	if total == 0 {
		fmt.Fprintln(&b, "   none")
	} else {
		var parts []string
		seen := map[string]bool{}
		for _, s := range workloadStateOrder {
			seen[string(s)] = true
			if n := st.WorkloadsByState[string(s)]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", s, n))
			}
		}
		var other []string
		for s := range st.WorkloadsByState {
			if !seen[s] {
				other = append(other, s)
			}
		}
		sort.Strings(other) // states a newer server may add
		for _, s := range other {
			parts = append(parts, fmt.Sprintf("%s %d", orDash(s), st.WorkloadsByState[s]))
		}
		fmt.Fprintf(&b, "   %s\n", strings.Join(parts, "   "))
	}

	if len(st.Services) > 0 {
		fmt.Fprintf(&b, "\nSERVICES (%d)\n", len(st.Services))
		tw := newTable(&b)
		row(tw, "NAME", "REPLICAS", "RUNNING", "IN POOL", "VIP", "HELD BY")
		for _, v := range st.Services {
			pool, vip, holder := "-", "-", "-"
			if v.VIP != "" {
				vip, holder, pool = v.VIP, orDash(v.VIPHolder), "0"
				if v.Pool != nil {
					pool = strconv.Itoa(len(v.Pool.Backends))
				}
			}
			row(tw, v.Name+map[bool]string{true: " (deleting)"}[v.Deleting], strconv.Itoa(v.Replicas), strconv.Itoa(v.Running), pool, vip, holder)
		}
		_ = tw.Flush()
	}

	fmt.Fprintf(&b, "\nPENDING AND FAILED (%d)\n", len(st.Pending)+len(st.Failed))
	if len(st.Pending)+len(st.Failed) == 0 {
		fmt.Fprintln(&b, "   none")
	} else {
		tw := newTable(&b)
		row(tw, "NAME", "STATE", "PRIORITY", "REASON")
		for _, w := range append(append([]api.WorkloadView(nil), st.Pending...), st.Failed...) {
			row(tw, w.Name, string(w.State), strconv.Itoa(w.Priority), orDash(truncate(w.Reason, 120)))
		}
		_ = tw.Flush()
	}

	fmt.Fprintf(&b, "\nRECENT FAILURES AND FENCING (%d)\n", len(st.RecentEvents))
	if len(st.RecentEvents) == 0 {
		fmt.Fprintln(&b, "   none")
	} else {
		tw := newTable(&b)
		row(tw, "TIME", "TYPE", "HOST", "WORKLOAD", "MESSAGE")
		for _, e := range st.RecentEvents {
			row(tw, eventTime(e.Time), orDash(e.Type), orDash(e.Host), orDash(e.Workload), truncate(e.Message, 120))
		}
		_ = tw.Flush()
	}
	_, err := w.Write(b.Bytes())
	return err
}

// isTerminalOut reports whether w, standard output, is a terminal: only then
// does --watch clear the screen.
func isTerminalOut(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// watchStatus redraws on every event of the stream and every statusRefresh,
// until ctx is done (Ctrl-C), which ends it without error.
func watchStatus(s *session, base string) error {
	ctx := s.ctx
	st, err := s.api.FollowEvents(ctx, client.EventFilter{Limit: 1})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return explain(err, "event", "")
	}
	defer st.Close()

	changed := make(chan struct{}, 1)
	streamErr := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Next(); err != nil {
				streamErr <- err
				return
			}
			select {
			case changed <- struct{}{}:
			default: // a redraw is already due
			}
		}
	}()

	term := isTerminalOut(s.out)
	fl, _ := s.out.(interface{ Flush() error })
	first := true
	draw := func() error {
		snap, err := fetchStatus(ctx, s.api, base)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var b bytes.Buffer
		switch {
		case s.format != formatTable:
		case term:
			b.WriteString(clearScreen)
		case !first:
			b.WriteString(strings.Repeat("-", 78) + "\n")
		}
		first = false
		if err != nil {
			fmt.Fprintf(&b, "error: %v\n(trying again in %s; Ctrl-C to stop)\n", err, statusRefresh)
			if s.format != formatTable {
				b.Reset()
				fmt.Fprintf(s.errw, "error: %v (trying again in %s)\n", err, statusRefresh)
			}
		} else if err := printStatus(&b, s.format, snap, true); err != nil {
			return err
		}
		if _, err := s.out.Write(b.Bytes()); err != nil {
			return err
		}
		if fl != nil {
			return fl.Flush()
		}
		return nil
	}

	tick := time.NewTicker(statusRefresh)
	defer tick.Stop()
	for {
		if err := draw(); err != nil {
			if ctx.Err() != nil {
				return nil // Ctrl-C
			}
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-tick.C:
		case err := <-streamErr:
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("the server ended the event stream (it may have restarted); run the command again")
			}
			return fmt.Errorf("the event stream broke off: %w; run the command again", err)
		}
	}
}
