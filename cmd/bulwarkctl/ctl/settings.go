package ctl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

const settingsHelp = `The settings apply to the whole cluster and steer the scheduler:
   strategy                 how a host is picked among those that fit:
                            binpack (default) fills the fullest host and
                            keeps whole hosts free; spread picks the
                            emptiest host and spreads the load
   preemption               true: a workload that does not fit may stop
                            workloads of strictly lower priority to make
                            room; false (default): it stays pending
   tolerate-host-failures   N, 0 to 16 (default 0): a new workload stays
                            pending if placing it would leave too little
                            room to restart everything after the N largest
                            hosts fail
   reserved-cpus            CPUs kept back on every host for the host
                            itself, 0 to 4096 (default 0)
   reserved-memory          memory kept back on every host, e.g. 2GiB
                            (default 0)
   watchdog-fencing         true: the workloads of a lost host without a
                            working fence device restart elsewhere once
                            T + T_self + watchdog-timeout has passed (the
                            host's own watchdog must have reset it by
                            then); false (default): they wait for an
                            operator (bulwarkctl node fence --confirm-off)
   watchdog-timeout         the hardware watchdog's timeout on the hosts,
                            e.g. 60s, up to 1h; needed with
                            watchdog-fencing (default 0: unset)
   failure-timeout          how long a workload must go without failing
                            before its failure count (its reschedules after
                            its host gave up on it, at most 3) expires; a
                            workload that reached the limit is tried again
                            that long after its host gave up. 0 means never
                            ("bulwarkctl workload reset" clears it by hand);
                            e.g. 30m, up to 720h (default 10m)
   rebalance-threshold      the load spread, in percentage points, that
                            "bulwarkctl rebalance" evens out down to: the
                            most loaded host in service minus the least
                            loaded one, a host's load being the larger of
                            its CPU and memory use in percent; 1 to 100
                            (default 20)
   auto-rebalance           true: the leader rebalances by itself, at most
                            every auto-rebalance-interval (moves stop a
                            workload and start it on another host); false
                            (default): only "bulwarkctl rebalance" does
   auto-rebalance-interval  how often at most the leader rebalances with
                            auto-rebalance on, from 1m to 168h (default 10m)`

func settingsCommand() *cli.Command {
	return &cli.Command{
		Name:      "settings",
		UsageText: "bulwarkctl settings show|set [options]",
		Aliases:   []string{"setting"},
		Usage:     "show and change the cluster-wide scheduling and failover settings",
		Description: settingsHelp + `

Examples:
   bulwarkctl settings show
   bulwarkctl settings set --strategy spread --tolerate-host-failures 1`,
		Subcommands: []*cli.Command{settingsShowCommand(), settingsSetCommand()},
	}
}

func settingsShowCommand() *cli.Command {
	return &cli.Command{
		Name:    "show",
		Aliases: []string{"get"},
		Usage:   "show the cluster-wide scheduling and failover settings",
		Description: `Shows the settings in effect; until an operator changes them these are
the defaults. With -o json it prints the API's settings object (fields
strategy, preemption, tolerate_host_failures, reserved_cpus,
reserved_memory, failure_timeout, rebalance_threshold,
auto_rebalance_interval, and watchdog_fencing, watchdog_timeout and
auto_rebalance, which are left out while off and unset); -o yaml the same
as YAML.

Examples:
   bulwarkctl settings show
   bulwarkctl settings show -o json`,
		Flags:  withGlobal(),
		Action: leaf(settingsShow),
	}
}

func settingsSetCommand() *cli.Command {
	return &cli.Command{
		Name:  "set",
		Usage: "change some of the cluster-wide scheduling and failover settings",
		Description: `Changes the settings named by the flags given and keeps all others as
they are, then prints what changed and the settings now in effect.

` + settingsHelp + `

The values are checked first; if one is invalid, nothing is sent to the
server. Write a true/false value with '=': --preemption=false.

set reads the current settings and writes the whole set back, so two
operators changing settings at the same moment may undo each other's
change: check with "bulwarkctl settings show".

Examples:
   bulwarkctl settings set --strategy spread
   bulwarkctl settings set --preemption=true --tolerate-host-failures 1
   bulwarkctl settings set --reserved-cpus 2 --reserved-memory 4GiB -o json
   bulwarkctl settings set --watchdog-fencing=true --watchdog-timeout 60s
   bulwarkctl settings set --failure-timeout 30m
   bulwarkctl settings set --rebalance-threshold 10 --auto-rebalance=true --auto-rebalance-interval 30m`,
		Flags: withGlobal(
			// A flag left out keeps the current value, hence the DefaultText.
			&cli.StringFlag{Name: "strategy", Usage: "`NAME` of the placement strategy: binpack or spread", DefaultText: "unchanged"},
			&cli.BoolFlag{Name: "preemption", Usage: "let workloads stop lower-priority ones to make room (--preemption=false to turn off)", DefaultText: "unchanged"},
			&cli.IntFlag{Name: "tolerate-host-failures", Usage: "keep room to restart everything after `N` host failures, 0 to 16", DefaultText: "unchanged"},
			&cli.IntFlag{Name: "reserved-cpus", Usage: "`N` CPUs kept back on every host, 0 to 4096", DefaultText: "unchanged"},
			&cli.StringFlag{Name: "reserved-memory", Usage: "memory `SIZE` kept back on every host, e.g. 2GiB", DefaultText: "unchanged"},
			&cli.BoolFlag{Name: "watchdog-fencing", Usage: "count a lost host without a working fence device as fenced after T + T_self + the watchdog timeout (--watchdog-fencing=false to turn off)", DefaultText: "unchanged"},
			&cli.StringFlag{Name: "watchdog-timeout", Usage: "the hosts' hardware watchdog timeout `DURATION`, e.g. 60s, up to 1h; needed with --watchdog-fencing", DefaultText: "unchanged"},
			&cli.StringFlag{Name: "failure-timeout", Usage: "a workload's failure count expires after this `DURATION` without a failure, e.g. 30m; 0: never", DefaultText: "unchanged"},
			&cli.IntFlag{Name: "rebalance-threshold", Usage: "the load spread in percentage `POINTS` (1 to 100) that rebalancing evens out down to", DefaultText: "unchanged"},
			&cli.BoolFlag{Name: "auto-rebalance", Usage: "let the leader rebalance by itself, at most every --auto-rebalance-interval (--auto-rebalance=false to turn off)", DefaultText: "unchanged"},
			&cli.StringFlag{Name: "auto-rebalance-interval", Usage: "rebalance automatically at most every `DURATION`, 1m to 168h, e.g. 30m", DefaultText: "unchanged"},
		),
		Action: leaf(settingsSet),
	}
}

// settingField is one row of the settings table.
type settingField struct {
	label string // table label
	name  string // flag name, also used in the change summary
	value func(api.Settings) string
}

var settingFields = []settingField{
	{"Strategy:", "strategy", func(s api.Settings) string { return string(s.Strategy) }},
	{"Preemption:", "preemption", func(s api.Settings) string { return strconv.FormatBool(s.Preemption) }},
	{"Tolerate host failures:", "tolerate-host-failures", func(s api.Settings) string { return strconv.Itoa(s.TolerateHostFailures) }},
	{"Reserved CPUs:", "reserved-cpus", func(s api.Settings) string { return strconv.Itoa(s.ReservedCPUs) }},
	{"Reserved memory:", "reserved-memory", func(s api.Settings) string { return s.ReservedMemory.String() }},
	{"Watchdog fencing:", "watchdog-fencing", func(s api.Settings) string { return strconv.FormatBool(s.WatchdogFencing) }},
	{"Watchdog timeout:", "watchdog-timeout", func(s api.Settings) string { return s.WatchdogTimeout.String() }},
	{"Failure timeout:", "failure-timeout", func(s api.Settings) string {
		if s.FailureTimeout == 0 {
			return "0s (never)"
		}
		return s.FailureTimeout.String()
	}},
	{"Rebalance threshold:", "rebalance-threshold", func(s api.Settings) string {
		if s.RebalanceThreshold == 0 {
			return "- (the server predates rebalancing)"
		}
		return strconv.Itoa(s.RebalanceThreshold) + " points"
	}},
	{"Auto rebalance:", "auto-rebalance", func(s api.Settings) string { return strconv.FormatBool(s.AutoRebalance) }},
	{"Auto rebalance interval:", "auto-rebalance-interval", func(s api.Settings) string {
		if s.AutoRebalanceInterval == 0 {
			return "-"
		}
		return s.AutoRebalanceInterval.String()
	}},
}

func settingsShow(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	st, err := s.api.GetSettings(s.ctx)
	if err != nil {
		return explain(err, "settings", "")
	}
	return s.printSettings(st)
}

func (s *session) printSettings(st *api.Settings) error {
	if s.format != formatTable {
		return s.print(st)
	}
	tw := newTable(s.out)
	for _, f := range settingFields {
		row(tw, f.label, f.value(*st))
	}
	return tw.Flush()
}

// settingsChange applies the flags given to `settings set`.
type settingsChange func(*api.Settings)

func settingsSet(c *cli.Context, args []string) error {
	if len(args) > 0 {
		if _, err := strconv.ParseBool(args[0]); err == nil {
			return fmt.Errorf("unexpected argument %q: write a true/false value with '=', e.g. --preemption=%s (usage: %s)", args[0], args[0], usageLine(c))
		}
	}
	if err := noArgs(c, args); err != nil {
		return err
	}
	changes, err := settingsChanges(c)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	before, after, err := s.api.UpdateSettings(s.ctx, func(st *api.Settings) error {
		for _, ch := range changes {
			ch(st)
		}
		// A server that predates rebalancing sends no rebalance settings;
		// they are checked as their defaults, and left out of the write.
		probe := *st
		if probe.RebalanceThreshold == 0 {
			probe.RebalanceThreshold = api.DefaultRebalanceThreshold
		}
		if probe.AutoRebalanceInterval == 0 {
			probe.AutoRebalanceInterval = api.Duration(api.DefaultAutoRebalanceInterval)
		}
		if err := probe.Validate(); err != nil {
			// The flags were checked one by one already; what is left is
			// a rule between settings (watchdog fencing on without a
			// timeout on the server either) or server settings that were
			// invalid before.
			msg := fmt.Sprintf("the current settings with these changes are invalid, so nothing was changed: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
			if st.WatchdogFencing && st.WatchdogTimeout == 0 {
				msg += " (give --watchdog-timeout DURATION, the hosts' hardware watchdog timeout, or --watchdog-fencing=false)"
			}
			return errors.New(msg)
		}
		return nil
	})
	if err != nil {
		return explain(err, "settings", "")
	}
	if s.format == formatTable {
		if d := settingsDiff(*before, *after); len(d) > 0 {
			fmt.Fprintf(s.out, "settings updated: %s\n", strings.Join(d, ", "))
		} else {
			fmt.Fprintln(s.out, "settings unchanged: they already had these values")
		}
	}
	return s.printSettings(after)
}

// settingsChanges turns the flags given into changes and checks them by
// applying them to the defaults, so that bad values are reported before
// anything is sent.
func settingsChanges(c *cli.Context) ([]settingsChange, error) {
	var changes []settingsChange
	var errs []error
	if c.IsSet("strategy") {
		v := api.Strategy(strings.ToLower(strings.TrimSpace(c.String("strategy"))))
		changes = append(changes, func(s *api.Settings) { s.Strategy = v })
	}
	if c.IsSet("preemption") {
		v := c.Bool("preemption")
		changes = append(changes, func(s *api.Settings) { s.Preemption = v })
	}
	if c.IsSet("tolerate-host-failures") {
		v := c.Int("tolerate-host-failures")
		changes = append(changes, func(s *api.Settings) { s.TolerateHostFailures = v })
	}
	if c.IsSet("reserved-cpus") {
		v := c.Int("reserved-cpus")
		changes = append(changes, func(s *api.Settings) { s.ReservedCPUs = v })
	}
	if c.IsSet("reserved-memory") {
		v, err := api.ParseByteSize(c.String("reserved-memory"))
		if err != nil {
			errs = append(errs, fmt.Errorf("--reserved-memory: %w", err))
		}
		changes = append(changes, func(s *api.Settings) { s.ReservedMemory = v })
	}
	if c.IsSet("watchdog-fencing") {
		v := c.Bool("watchdog-fencing")
		changes = append(changes, func(s *api.Settings) { s.WatchdogFencing = v })
	}
	if c.IsSet("watchdog-timeout") {
		raw := strings.TrimSpace(c.String("watchdog-timeout"))
		d, err := time.ParseDuration(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("--watchdog-timeout: %q is not a duration: use a number with a unit, e.g. 60s or 2m", raw))
		}
		v := api.Duration(d)
		changes = append(changes, func(s *api.Settings) { s.WatchdogTimeout = v })
	}
	if c.IsSet("failure-timeout") {
		raw := strings.TrimSpace(c.String("failure-timeout"))
		d, err := time.ParseDuration(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("--failure-timeout: %q is not a duration: use a number with a unit, e.g. 10m or 1h, or 0 for never", raw))
		}
		v := api.Duration(d)
		changes = append(changes, func(s *api.Settings) { s.FailureTimeout = v })
	}
	if c.IsSet("rebalance-threshold") {
		v := c.Int("rebalance-threshold")
		changes = append(changes, func(s *api.Settings) { s.RebalanceThreshold = v })
	}
	if c.IsSet("auto-rebalance") {
		v := c.Bool("auto-rebalance")
		changes = append(changes, func(s *api.Settings) { s.AutoRebalance = v })
	}
	if c.IsSet("auto-rebalance-interval") {
		raw := strings.TrimSpace(c.String("auto-rebalance-interval"))
		d, err := time.ParseDuration(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("--auto-rebalance-interval: %q is not a duration: use a number with a unit, e.g. 10m or 1h", raw))
			d = api.DefaultAutoRebalanceInterval
		}
		v := api.Duration(d)
		changes = append(changes, func(s *api.Settings) { s.AutoRebalanceInterval = v })
	}
	if len(changes) == 0 {
		return nil, fmt.Errorf("nothing to change: give at least one of --strategy, --preemption, --tolerate-host-failures, --reserved-cpus, --reserved-memory, --watchdog-fencing, --watchdog-timeout, --failure-timeout, --rebalance-threshold, --auto-rebalance or --auto-rebalance-interval (see '%s --help')", helpName(c))
	}
	probe := api.DefaultSettings()
	if c.IsSet("watchdog-fencing") && !c.IsSet("watchdog-timeout") {
		// The server may have a timeout already: whether the two go
		// together is checked against its settings, not the defaults.
		probe.WatchdogTimeout = api.Duration(time.Second)
	}
	for _, ch := range changes {
		ch(&probe)
	}
	if err := probe.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, invalidInput("settings", errors.Join(errs...))
	}
	return changes, nil
}

// settingsDiff lists the settings that differ, e.g. "strategy binpack -> spread".
func settingsDiff(a, b api.Settings) []string {
	var d []string
	for _, f := range settingFields {
		if x, y := f.value(a), f.value(b); x != y {
			d = append(d, fmt.Sprintf("%s %s -> %s", f.name, x, y))
		}
	}
	return d
}
