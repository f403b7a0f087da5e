package ctl

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// maxEventLimit is the largest --limit the server accepts.
const maxEventLimit = 10000

// eventTimeLayout is the TIME column: local time, short.
const eventTimeLayout = "Jan _2 15:04:05"

func eventsCommand() *cli.Command {
	return &cli.Command{
		Name:  "events",
		Usage: "show the cluster's event history: failures, fencing, moves",
		Description: `Prints what happened in the cluster, oldest first: hosts changing state
(host-suspect, host-lost, host-ready...), fencing (fence-requested, fenced,
fence-failed, unfenceable, fenceable, cleared, power-on), and workloads
being recovered, rescheduled or preempted. By default it prints the newest
200 events; --limit N prints the newest N (at most 10000). The cluster
keeps a bounded history (10,000 events by default): older ones are gone.

--host, --workload and --type keep only the events of that host, workload
or type; --since keeps those of the last 10m, 2h... (by the server's
clock) or those since an RFC 3339 time such as 2025-06-01T12:00:00Z.

With --follow (-f), bulwarkctl then keeps printing matching events as they
happen, until you press Ctrl-C. With -o json it prints a JSON array, or
with --follow one JSON object per line (NDJSON); with -o yaml a YAML
list, or with --follow one YAML document ("---") per event.

TIME is in this machine's local time zone; -o json gives the exact time.

Examples:
   bulwarkctl events
   bulwarkctl events --host node-a --since 1h
   bulwarkctl events --workload web-1 --limit 20
   bulwarkctl events --type fenced -o json
   bulwarkctl events -f`,
		Flags: withGlobal(
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events until Ctrl-C"},
			&cli.StringFlag{Name: "host", Usage: "only the events of `HOST`"},
			&cli.StringFlag{Name: "workload", Usage: "only the events of workload `NAME`"},
			&cli.StringFlag{Name: "type", Usage: "only the events of `TYPE`, e.g. fenced or host-lost"},
			&cli.StringFlag{Name: "since", Usage: "only the events of the last `DURATION` (10m, 2h) or since an RFC 3339 time"},
			&cli.IntFlag{Name: "limit", Usage: "print the newest `N` events (default 200, at most 10000)"},
		),
		Action: leaf(eventsRun),
	}
}

// eventFilter checks the flags locally and builds the request's filter.
func eventFilter(c *cli.Context) (client.EventFilter, error) {
	var f client.EventFilter
	var errs []error
	if c.IsSet("host") {
		f.Host = c.String("host")
		if err := api.ValidateName("host", f.Host); err != nil {
			errs = append(errs, fmt.Errorf("--host: %w", err))
		}
	}
	if c.IsSet("workload") {
		f.Workload = c.String("workload")
		if err := api.ValidateName("workload", f.Workload); err != nil {
			errs = append(errs, fmt.Errorf("--workload: %w", err))
		}
	}
	if c.IsSet("type") {
		f.Type = strings.TrimSpace(c.String("type"))
		if f.Type == "" {
			errs = append(errs, errors.New("--type is empty: give an event type such as fenced or host-lost"))
		}
	}
	if c.IsSet("since") {
		s := strings.TrimSpace(c.String("since"))
		if d, err := time.ParseDuration(s); err == nil {
			if d <= 0 {
				errs = append(errs, fmt.Errorf("--since %q: the duration must be positive, e.g. 10m", s))
			}
			f.Last = d
		} else if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			f.Since = t
		} else {
			errs = append(errs, fmt.Errorf("--since %q: want a duration such as 10m or 2h, or an RFC 3339 time such as 2025-06-01T12:00:00Z", s))
		}
	}
	if c.IsSet("limit") {
		f.Limit = c.Int("limit")
		if f.Limit < 1 || f.Limit > maxEventLimit {
			errs = append(errs, fmt.Errorf("--limit %d: want a number from 1 to %d", f.Limit, maxEventLimit))
		}
	}
	if len(errs) > 0 {
		return f, invalidInput("options", errors.Join(errs...))
	}
	return f, nil
}

func eventsRun(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	f, err := eventFilter(c)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	if c.Bool("follow") {
		return followEvents(s, f)
	}
	evs, err := s.api.ListEvents(s.ctx, f)
	if err != nil {
		return explain(err, "event", "")
	}
	if evs == nil {
		evs = []api.Event{}
	}
	if s.format != formatTable {
		return s.print(evs)
	}
	if len(evs) == 0 {
		fmt.Fprintln(s.errw, "no events match")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "TIME", "TYPE", "HOST", "WORKLOAD", "MESSAGE")
	for _, e := range evs {
		row(tw, eventTime(e.Time), orDash(e.Type), orDash(e.Host), orDash(e.Workload), truncate(e.Message, 200))
	}
	return tw.Flush()
}

// followEvents prints the stream as it comes, until Ctrl-C. A table cannot
// be aligned ahead of rows not yet seen, so its columns have fixed widths.
func followEvents(s *session, f client.EventFilter) error {
	st, err := s.api.FollowEvents(s.ctx, f)
	if err != nil {
		if s.ctx.Err() != nil {
			return nil // Ctrl-C before the stream started
		}
		return explain(err, "event", "")
	}
	defer st.Close()
	fl, _ := s.out.(interface{ Flush() error })
	if s.format == formatTable {
		printEventRow(s.out, "TIME", "TYPE", "HOST", "WORKLOAD", "MESSAGE")
	}
	for {
		e, err := st.Next()
		if s.ctx.Err() != nil {
			return nil // Ctrl-C: the normal end of --follow
		}
		if errors.Is(err, io.EOF) {
			return errors.New("the server ended the event stream (it may have restarted); run the command again, with --since, to go on")
		}
		if err != nil {
			return fmt.Errorf("the event stream broke off: %w; run the command again, with --since, to go on", err)
		}
		if s.format != formatTable {
			if err := printStreamed(s.out, s.format, e); err != nil {
				return err
			}
		} else {
			printEventRow(s.out, eventTime(e.Time), orDash(e.Type), orDash(e.Host), orDash(e.Workload), truncate(e.Message, 200))
		}
		if fl != nil {
			if err := fl.Flush(); err != nil {
				return err
			}
		}
	}
}

func printEventRow(w io.Writer, t, typ, host, workload, msg string) {
	fmt.Fprintf(w, "%-15s   %-16s   %-12s   %-16s   %s\n", t, typ, host, workload, msg)
}

func eventTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(eventTimeLayout)
}
