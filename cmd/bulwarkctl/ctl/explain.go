package ctl

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

func explainCommand() *cli.Command {
	return &cli.Command{
		Name:      "explain",
		Usage:     "show why a workload is placed where it is, or why it is pending",
		ArgsUsage: "NAME",
		Description: `Asks the scheduler how it judges every host for the workload NAME. The
first line sums it up, e.g. "web-1: placed on node-b (score 87)", or says
why the workload is pending. Then comes one line per host:
   HOST     the node's name
   VERDICT  accepted (the workload fits there and meets its placement
            rules) or rejected; "(chosen)" marks the host the workload is,
            or would be, placed on
   SCORE    how good an accepted host is; the best score wins. What counts
            depends on "bulwarkctl settings show" (binpack or spread) and
            on the workload's --prefer and --spread-by
   REASON   why a host is rejected (not enough CPUs or memory, a --require
            that fails, another member of its anti-affinity group, ...)
The chosen host comes first, then the accepted hosts from the best score
down, then the rejected hosts by name. With -o json it prints the API's
explanation object (fields workload, state, host, summary, hosts).

Examples:
   bulwarkctl explain web-1
   bulwarkctl explain db-1 -o json`,
		Flags:  withGlobal(),
		Action: leaf(explainWorkload),
	}
}

func explainWorkload(c *cli.Context, args []string) error {
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
	e, err := s.api.Explain(s.ctx, name)
	if err != nil {
		return explain(err, "workload", name)
	}
	if e.Workload == "" {
		e.Workload = name
	}
	if e.Hosts == nil {
		e.Hosts = []api.HostVerdict{}
	}
	sortVerdicts(e.Hosts)
	if s.format != formatTable {
		return s.print(e)
	}
	fmt.Fprintln(s.out, explanationHeader(e))
	if len(e.Hosts) == 0 {
		fmt.Fprintln(s.errw, "no hosts were considered: no node is registered and ready (see bulwarkctl node list)")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "HOST", "VERDICT", "SCORE", "REASON")
	for _, h := range e.Hosts {
		verdict, score := "rejected", "-"
		if h.Feasible {
			verdict, score = "accepted", formatScore(h.Score)
		}
		if h.Chosen {
			verdict += " (chosen)"
		}
		row(tw, h.Host, verdict, score, orDash(strings.Join(strings.Fields(h.Reason), " ")))
	}
	return tw.Flush()
}

// sortVerdicts puts the chosen host first, then the accepted hosts by score
// (best first), then the rejected hosts; ties go by host name.
func sortVerdicts(hs []api.HostVerdict) {
	sort.SliceStable(hs, func(i, j int) bool {
		a, b := hs[i], hs[j]
		if a.Chosen != b.Chosen {
			return a.Chosen
		}
		if a.Feasible != b.Feasible {
			return a.Feasible
		}
		if a.Feasible && a.Score != b.Score {
			return a.Score > b.Score
		}
		return a.Host < b.Host
	})
}

// explanationHeader is the first line of `explain`: "NAME: summary".
func explanationHeader(e *api.Explanation) string {
	sum := strings.Join(strings.Fields(e.Summary), " ")
	if sum == "" {
		switch {
		case e.Host != "":
			sum = fmt.Sprintf("%s on %s", orDash(string(e.State)), e.Host)
		case e.State != "":
			sum = string(e.State)
		default:
			sum = "the server gave no summary"
		}
	}
	if strings.HasPrefix(sum, e.Workload+":") {
		return sum
	}
	return e.Workload + ": " + sum
}

// formatScore renders a score with at most two decimals: 87, 87.5, 0.33.
func formatScore(f float64) string {
	r := math.Round(f*100)/100 + 0 // + 0 turns -0 into 0
	return strconv.FormatFloat(r, 'f', -1, 64)
}
