package ctl

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

// Defaults of `vm create`.
const (
	defaultVMCPUs   = 1
	defaultVMMemory = "256MiB"
)

func vmCommand() *cli.Command {
	return &cli.Command{
		Name:      "vm",
		UsageText: "bulwarkctl vm create NAME [options]",
		Aliases:   []string{"vms"},
		Usage:     "create virtual machines",
		Description: `Creates VM workloads from command-line flags. To list, inspect or delete
VMs use "bulwarkctl workload ...", which covers every kind of workload.

Examples:
   bulwarkctl vm create web-1
   bulwarkctl vm create db-1 --cpus 4 --memory 8GiB`,
		Subcommands: []*cli.Command{vmCreateCommand()},
	}
}

func vmCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a VM workload",
		ArgsUsage: "NAME",
		Description: `Asks the cluster to run a virtual machine called NAME. The scheduler places
it on a ready node with enough free CPUs and memory; until then it is
"pending", and "bulwarkctl workload show NAME" says why.

NAME: 1-63 lowercase letters, digits and '-', starting and ending with a
      letter or digit (a DNS label), unique among all workloads.
--cpus: 1 to 4096, default 1.
--memory: at least 64MiB, default 256MiB. Units: MiB, GiB, TiB (binary;
      also Mi, Gi, M, G) or MB, GB (decimal); e.g. 512MiB, 2GiB, 1.5GiB.
--label key=value: repeat the flag for several labels.
--priority: 0 to 1000, default 0; higher means more important.

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
      Needs --anti-affinity.

The input is checked first; if it is invalid, nothing is sent to the server.

Examples:
   bulwarkctl vm create web-1
   bulwarkctl vm create db-1 --cpus 4 --memory 8GiB --label tier=db --priority 500
   bulwarkctl vm create db-2 --require 'rack in (r1,r2)' --require zone=eu-1 --prefer disk=ssd:50
   bulwarkctl vm create pg-1 --anti-affinity pg --spread-by rack
   bulwarkctl vm create web-2 --memory 1GiB -o json`,
		Flags: withGlobal(
			&cli.IntFlag{Name: "cpus", Value: defaultVMCPUs, Usage: "virtual CPUs, 1 to 4096"},
			&cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Value: defaultVMMemory, Usage: "memory `SIZE`, e.g. 512MiB or 2GiB; at least 64MiB"},
			&cli.StringSliceFlag{Name: "label", Aliases: []string{"l"}, Usage: "label `KEY=VALUE`; repeat for more"},
			&cli.IntFlag{Name: "priority", Value: 0, Usage: "priority, 0 to 1000"},
			&cli.StringSliceFlag{Name: "require", Usage: "hard host-label constraint `EXPR`: key=value, key!=value, 'key in (a,b)' or 'key notin (a,b)'; repeat for more"},
			&cli.StringSliceFlag{Name: "prefer", Usage: "soft host-label preference `KEY=VALUE[:WEIGHT]`, weight 1 to 100 (default 1); repeat for more"},
			&cli.StringFlag{Name: "anti-affinity", Usage: "anti-affinity `GROUP`: no two members of GROUP on one host"},
			&cli.StringFlag{Name: "spread-by", Usage: "host label `KEY` to spread the anti-affinity group over, e.g. rack"},
		),
		Action: leaf(vmCreate),
	}
}

func vmCreate(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	spec, err := vmSpecFromFlags(c, name)
	if err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	w, err := s.api.CreateWorkload(s.ctx, spec)
	if err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("a workload named %q already exists; pick another name, or delete it first with: bulwarkctl workload delete %s --wait", name, name)
		}
		return explain(err, "workload", "")
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "vm %q created\n", w.Name)
	}
	return s.printWorkload(w)
}

// vmSpecFromFlags builds and validates the spec, reporting every problem.
func vmSpecFromFlags(c *cli.Context, name string) (api.WorkloadSpec, error) {
	spec := api.WorkloadSpec{
		Name:     name,
		Kind:     api.KindVM,
		CPUs:     c.Int("cpus"),
		Priority: c.Int("priority"),
		// Placement is checked by spec.Validate (api.ParsePlacement), as
		// the server checks it.
		Require:      c.StringSlice("require"),
		Prefer:       c.StringSlice("prefer"),
		AntiAffinity: c.String("anti-affinity"),
		SpreadBy:     c.String("spread-by"),
	}
	var flagErrs []error
	mem, err := api.ParseByteSize(c.String("memory"))
	if err != nil {
		flagErrs = append(flagErrs, fmt.Errorf("--memory: %w", err))
		mem = api.MinMemory // reported above; keep Validate from repeating it
	}
	spec.Memory = mem
	for _, l := range c.StringSlice("label") {
		k, v, err := api.ParseLabel(l)
		if err != nil {
			flagErrs = append(flagErrs, err)
			continue
		}
		if _, dup := spec.Labels[k]; dup {
			flagErrs = append(flagErrs, fmt.Errorf("label key %q is given twice", k))
			continue
		}
		if spec.Labels == nil {
			spec.Labels = map[string]string{}
		}
		spec.Labels[k] = v
	}
	var errs []error
	if err := spec.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, flagErrs...)
	if len(errs) > 0 {
		return spec, invalidInput("vm", errors.Join(errs...))
	}
	return spec, nil
}
