package ctl

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// The flags that every kind of workload takes (`vm create`, `container
// run`): resources, labels, priority, placement and restart policy. Each
// command adds its own flags; specFromFlags reads these into a spec.

// workloadFlags returns the shared flags; defaultMemory is the command's
// default --memory.
func workloadFlags(defaultMemory string) []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "cpus", Value: 1, Usage: "CPUs, 1 to 4096"},
		&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Value: defaultMemory, Usage: "memory `SIZE`, e.g. 512MiB or 2GiB; at least 64MiB"},
		&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "label `KEY=VALUE`; repeat for more"},
		&cli.IntFlag{Name: "priority", Value: 0, Usage: "priority, 0 to 1000"},
		&cli.StringSliceFlag{Name: "require", Usage: "hard host-label constraint `EXPR`: key=value, key!=value, 'key in (a,b)' or 'key notin (a,b)'; repeat for more"},
		&cli.StringSliceFlag{Name: "prefer", Usage: "soft host-label preference `KEY=VALUE[:WEIGHT]`, weight 1 to 100 (default 1); repeat for more"},
		&cli.StringFlag{Name: "anti-affinity", Usage: "anti-affinity `GROUP`: no two members of GROUP on one host"},
		&cli.StringFlag{Name: "spread-by", Usage: "host label `KEY` to spread the anti-affinity group over, e.g. rack"},
		&cli.StringFlag{Name: "restart", Usage: "restart `POLICY` on the host: always (default), on-failure or never"},
	}
}

// workloadFlagsHelp documents the flags of workloadFlags except --cpus and
// --memory, whose defaults differ by command.
const workloadFlagsHelp = `--label key=value: repeat the flag for several labels.
--priority: 0 to 1000, default 0; higher means more important.
--restart POLICY: what the host does when the workload stops by itself:
      always      restart it (the default)
      on-failure  restart it unless it exited cleanly (status 0)
      never       leave it stopped
      After 3 restarts in a row the host gives up and Bulwark moves the
      workload to another host, at most 3 times ("workload show" counts
      these reschedules).

Placement (all optional; "bulwarkctl node show NODE" lists a host's labels,
"bulwarkctl explain NAME" shows how each host was judged):
--require EXPR: a host label the host MUST have; repeat the flag for
      several (all must hold). EXPR is one of
         key=value            e.g. --require zone=eu-1
         key!=value           e.g. --require gpu!=none
         'key in (a,b)'       e.g. --require 'rack in (r1,r2)'
         'key notin (a,b)'    e.g. --require 'rack notin (r9)'
      Quote EXPR when it has spaces or parentheses. A host without the
      label fails key=value and "in", and passes key!=value and "notin".
--prefer key=value[:weight]: a host label the scheduler tries to get,
      weight 1 to 100 (default 1); repeat the flag for several. Hosts with
      more preferred labels (by weight) win, e.g. --prefer disk=ssd:50.
--anti-affinity GROUP: no two workloads of GROUP run on the same host,
      e.g. the replicas of one database. GROUP is a DNS label like NAME.
--spread-by LABEL: also spread the members of the --anti-affinity group
      evenly over the values of this host label key, e.g. --spread-by rack.
      Needs --anti-affinity.`

// nameHelp documents the NAME argument of the create commands.
const nameHelp = `NAME: 1-63 lowercase letters, digits and '-', starting and ending with a
      letter or digit (a DNS label), unique among all workloads.`

// memoryUnitsHelp is the unit list of --memory.
const memoryUnitsHelp = `Units: MiB, GiB, TiB (binary;
      also Mi, Gi, M, G) or MB, GB (decimal); e.g. 512MiB, 2GiB, 1.5GiB.`

// specFromFlags reads the flags of workloadFlags into a spec of the given
// kind. The problems it finds in the flags' syntax are returned separately,
// to be reported with those of spec.Validate (see checkSpec); what
// Validate checks (placement, ranges) is left to it.
func specFromFlags(c *cli.Context, name string, kind api.Kind) (api.WorkloadSpec, []error) {
	spec := api.WorkloadSpec{
		Name:     name,
		Kind:     kind,
		CPUs:     c.Int("cpus"),
		Priority: c.Int("priority"),
		// Placement is checked by spec.Validate (api.ParsePlacement), as
		// the server checks it.
		Require:      c.StringSlice("require"),
		Prefer:       c.StringSlice("prefer"),
		AntiAffinity: c.String("anti-affinity"),
		SpreadBy:     c.String("spread-by"),
		Restart:      api.RestartPolicy(c.String("restart")),
	}
	var errs []error
	mem, err := api.ParseByteSize(c.String("memory"))
	if err != nil {
		errs = append(errs, fmt.Errorf("--memory: %w", err))
		mem = api.MinMemory // reported above; keep Validate from repeating it
	}
	spec.Memory = mem
	if c.IsSet("restart") && spec.Restart == "" {
		errs = append(errs, errors.New("--restart is empty: use always, on-failure or never"))
	}
	for _, l := range c.StringSlice("label") {
		k, v, err := api.ParseLabel(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := spec.Labels[k]; dup {
			errs = append(errs, fmt.Errorf("label key %q is given twice", k))
			continue
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	return spec, errs
}

// checkSpec validates spec as the server does and reports its problems
// together with flagErrs, the problems found while reading the flags, as
// one error that says nothing was sent. what names the input, e.g. "vm".
func checkSpec(what string, spec api.WorkloadSpec, flagErrs []error) error {
	var errs []error
	if err := spec.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, flagErrs...)
	if len(errs) > 0 {
		return invalidInput(what, errors.Join(errs...))
	}
	return nil
}

// createWorkload sends the spec and prints the new workload; noun names
// its kind in the "created" line ("vm", "container").
func createWorkload(c *cli.Context, noun string, spec api.WorkloadSpec) error {
	s, err := newSession(c)
	if err != nil {
		return err
	}
	w, err := s.api.CreateWorkload(s.ctx, spec)
	if err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("a workload named %q already exists; pick another name, or delete it first with: bulwarkctl workload delete %s --wait", spec.Name, spec.Name)
		}
		return explain(err, "workload", "")
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "%s %q created\n", noun, w.Name)
	}
	return s.printWorkload(w)
}
