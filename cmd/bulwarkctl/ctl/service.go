package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

func serviceCommand() *cli.Command {
	return &cli.Command{
		Name:      "service",
		UsageText: "bulwarkctl service create|scale|list|show|delete [options] [NAME]",
		Aliases:   []string{"services", "svc"},
		Usage:     "replicated services: keep N copies of a workload running, spread over hosts",
		Description: `A service keeps N copies (replicas) of one workload running. Each copy
is an ordinary workload named NAME-1, NAME-2, ... with the label
bulwark.io/service=NAME: "bulwarkctl workload list" shows them, and the
scheduler, failover and restart policy treat them like any workload. By
default no two copies run on one host (hard anti-affinity): with fewer
ready hosts than replicas, the rest wait ("pending").

The leader creates missing copies (lowest free number first) and, when you
scale down, deletes the highest-numbered ones first. A copy on a failed
host is restarted elsewhere once that host is fenced, as any workload is.

With --vip ADDR --publish PORT:TARGETPORT, one floating IP spreads new
connections over the healthy copies: the host holding it forwards each
connection to a copy's host (iptables DNAT with the statistic match). A
copy leaves the pool when unhealthy or not running and returns when
healthy; the address fails over as any floating IP does (docs/services.md).

Examples:
   bulwarkctl service create web --replicas 3 --image docker.io/library/nginx:1.27
   bulwarkctl service create app --replicas 2 --vm --memory 1GiB --disk /srv/images/app.qcow2:qcow2:ro
   bulwarkctl service scale web 5
   bulwarkctl service list
   bulwarkctl service show web
   bulwarkctl service delete web --wait`,
		Subcommands: []*cli.Command{
			serviceCreateCommand(), serviceScaleCommand(), serviceListCommand(),
			serviceShowCommand(), serviceDeleteCommand(),
		},
	}
}

// serviceCreateFlags are the workload flags minus what a service's copies
// cannot share (volumes, floating IPs) and with --anti-affinity meaning
// auto|none, plus the flags of both kinds.
func serviceCreateFlags() []cli.Flag {
	var flags []cli.Flag
	for _, f := range workloadFlags(defaultVMMemory) {
		switch f.Names()[0] {
		case "anti-affinity", "volume", "vip":
			continue
		case "memory":
			f = &cli.StringFlag{Name: "memory", Aliases: []string{"m"}, Value: defaultVMMemory, Usage: "memory `SIZE` of each copy, e.g. 512MiB or 2GiB; default " + defaultVMMemory + " for VMs, " + defaultContainerMemory + " for containers"}
		}
		flags = append(flags, f)
	}
	return append([]cli.Flag{
		&cli.IntFlag{Name: "replicas", Aliases: []string{"r"}, Usage: "how many copies to keep running, `N` from 0 to " + strconv.Itoa(api.MaxReplicas)},
		&cli.StringFlag{Name: "anti-affinity", Value: api.AntiAffinityAuto, Usage: "`MODE`: auto (no two copies on one host) or none"},
		&cli.BoolFlag{Name: "vm", Usage: "the copies are VMs"},
		&cli.StringFlag{Name: "vm-template", Usage: "the copies are VMs like the existing VM workload `NAME` (its spec, without its name, floating IPs or anti-affinity)"},
		&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "the copies are containers of image `REF`, e.g. docker.io/library/nginx:1.27; with --image-archive, the image in the archive"},
		&cli.StringFlag{Name: "image-archive", Usage: "absolute `PATH` of an OCI image archive that every host can read"},
		&cli.StringSliceFlag{Name: "env", Aliases: []string{"e"}, Usage: "container environment variable `NAME=VALUE`; repeat for more"},
		&cli.StringSliceFlag{Name: "disk", Usage: "VM disk image `PATH[:FORMAT][:ro]`; repeat for more"},
		&cli.StringFlag{Name: "kernel", Usage: "VM: boot the kernel at `PATH` directly"},
		&cli.StringFlag{Name: "initrd", Usage: "VM: initial ramdisk `PATH` for --kernel"},
		&cli.StringFlag{Name: "cmdline", Usage: "VM: kernel command line `STRING` for --kernel"},
		&cli.StringSliceFlag{Name: "network", Aliases: []string{"net"}, Usage: "VM network card on host bridge `BRIDGE[=MAC]`; repeat for more"},
		&cli.StringFlag{Name: "vip", Usage: "load-balance the copies behind floating IP `ADDR` (create it first with bulwarkctl vip create); needs --publish"},
		&cli.StringSliceFlag{Name: "publish", Aliases: []string{"p"}, Usage: "a load-balanced port of --vip: `PORT:TARGETPORT[/tcp|udp]`, e.g. 80:8080; repeat for more"},
	}, flags...)
}

func serviceCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a replicated service",
		ArgsUsage: "NAME --replicas N (--image REF | --vm) [-- CMD ARGS...]",
		Description: `Asks the cluster to keep N copies of a workload running. The leader
creates the copies NAME-1 ... NAME-N; the scheduler places them.

NAME: 1-59 lowercase letters, digits and '-', starting and ending with a
      letter or digit, unique among services (the copies' names NAME-N
      must stay valid workload names).
--replicas N: how many copies, 0 to ` + strconv.Itoa(api.MaxReplicas) + ` (required).
--anti-affinity MODE: auto (the default): no two copies on one host (the
      hard anti-affinity group "svc-NAME"; with --spread-by LABEL also
      spread over that host label's values); none: copies may share hosts.

What each copy runs: exactly one of
--image REF [--image-archive PATH] [--env NAME=VALUE...] [-- CMD ARGS...]:
      containers, as "bulwarkctl container run" takes them (see its
      --help), e.g. --image busybox:1.36 -- httpd -f -p 8080
--vm [--disk PATH[:FORMAT][:ro]] [--kernel PATH --initrd PATH --cmdline S]
      [--network BRIDGE[=MAC]]: VMs, as "bulwarkctl vm create" takes them
      (see its --help). Every copy gets the same disks: attach them
      read-only (:ro), or boot from a kernel and keep no state on disk.
--vm-template NAME: VMs like the existing VM workload NAME (its CPUs,
      memory, disks, kernel, networks, constraints, check and restart
      policy; not its name, floating IPs or anti-affinity). Only --replicas,
      --anti-affinity, --spread-by and -o go with it.
--cpus: 1 to 4096, default 1, for each copy.
--memory: at least 64MiB, default ` + defaultVMMemory + ` for VMs and ` + defaultContainerMemory + ` for
      containers, for each copy. ` + memoryUnitsHelp + `
` + strings.Replace(workloadFlagsHelp, `--anti-affinity GROUP: no two workloads of GROUP run on the same host,
      e.g. the replicas of one database. GROUP is a DNS label like NAME.
`, "", 1) + `

` + checkFlagsHelp(false) + `

Load-balanced address (containers; the copies use their host's network):
--vip ADDR: a floating IP made with "bulwarkctl vip create ADDR/PREFIX
      --network NAME" and attached to nothing; every host that runs a copy
      should be on that network.
--publish PORT:TARGETPORT[/tcp|udp]: connections to ADDR:PORT go to
      TARGETPORT on a healthy copy's host; repeat for more ports.

Volumes are not for services: copies cannot share them.

The input is checked first; if it is invalid, nothing is sent to the server.

Examples:
   bulwarkctl service create web --replicas 3 --image docker.io/library/nginx:1.27 --check http:80/
   bulwarkctl service create echo --replicas 2 --image busybox:1.36 -- httpd -f -p 8080
   bulwarkctl service create app --replicas 3 --vm --memory 1GiB --disk /srv/images/app.qcow2:qcow2:ro --network br0
   bulwarkctl service create cache --replicas 4 --image redis:7 --anti-affinity none
   bulwarkctl service create app2 --replicas 3 --vm-template app-base
   bulwarkctl service create www --replicas 3 --image busybox:1.36 --vip 192.0.2.80 --publish 80:8080 --check http:8080/ -- sh -c 'hostname > /index.html; httpd -f -p 8080 -h /'
   bulwarkctl service create api --replicas 6 --image registry.example/api:2.0 --spread-by rack -o json`,
		SkipFlagParsing: true,
		Flags:           withGlobal(serviceCreateFlags()...),
		Action:          leafWithCommand(serviceCreate),
	}
}

func serviceCreate(c *cli.Context, args, command []string, dash bool) error {
	switch {
	case len(args) == 0 && dash:
		return fmt.Errorf("missing NAME before \"--\" (usage: %s)", usageLine(c))
	case len(args) > 1:
		return fmt.Errorf("too many arguments %q: expected only NAME; give a container's command after \"--\" (usage: %s)", args, usageLine(c))
	}
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	var spec api.ServiceSpec
	var s *session
	if c.IsSet("vm-template") {
		if spec, s, err = serviceSpecFromVM(c, name, command); err != nil {
			return err
		}
	} else {
		if spec, err = serviceSpecFromFlags(c, name, command); err != nil {
			return err
		}
		if s, err = newSession(c); err != nil {
			return err
		}
	}
	v, err := s.api.CreateService(s.ctx, spec)
	if err != nil {
		if client.IsConflict(err) && !strings.Contains(apiMessage(err), "floating IP") {
			return fmt.Errorf("a service named %q already exists; pick another name, or delete it first with: bulwarkctl service delete %s --wait", name, name)
		}
		if client.IsConflict(err) {
			return fmt.Errorf("cannot create service %s: %s", name, apiMessage(err))
		}
		return explain(err, "service", "")
	}
	if s.format != formatTable {
		return s.print(v)
	}
	fmt.Fprintf(s.out, "service %q created: %d %s of %s; see them with: bulwarkctl service show %s\n", name, spec.Replicas,
		plural(spec.Replicas, "copy", "copies"), templateText(spec.Template), name)
	return nil
}

// serviceSpecFromFlags builds and validates the spec, reporting every
// problem.
func serviceSpecFromFlags(c *cli.Context, name string, command []string) (api.ServiceSpec, error) {
	isVM := c.Bool("vm")
	kind := api.KindContainer
	if isVM {
		kind = api.KindVM
	}
	tmpl, flagErrs := specFromFlags(c, "", kind)
	spec := api.ServiceSpec{Name: name, Replicas: c.Int("replicas"), AntiAffinity: tmpl.AntiAffinity, VIP: c.String("vip")}
	for _, p := range c.StringSlice("publish") {
		sp, err := api.ParseServicePort(p)
		if err != nil {
			flagErrs = append(flagErrs, err)
			continue
		}
		spec.Ports = append(spec.Ports, sp)
	}
	tmpl.AntiAffinity = ""
	if !c.IsSet("replicas") {
		flagErrs = append(flagErrs, errors.New("--replicas is missing: say how many copies to keep running, e.g. --replicas 3"))
	}
	if c.IsSet("anti-affinity") && spec.AntiAffinity == "" {
		flagErrs = append(flagErrs, errors.New("--anti-affinity is empty: use auto or none"))
		spec.AntiAffinity = api.AntiAffinityAuto
	}
	hasImage := c.IsSet("image") || c.IsSet("image-archive")
	vmFlags := slices.DeleteFunc([]string{"disk", "kernel", "initrd", "cmdline", "network"}, func(f string) bool { return !c.IsSet(f) })
	switch {
	case isVM && hasImage:
		flagErrs = append(flagErrs, errors.New("give either --vm or --image, not both"))
	case !isVM && !hasImage:
		flagErrs = append(flagErrs, errors.New("say what the copies run: --image REF for containers, or --vm for VMs"))
	case isVM && (len(command) > 0 || c.IsSet("env")):
		flagErrs = append(flagErrs, errors.New(`a command after "--" and --env are for containers, not VMs`))
	case !isVM && len(vmFlags) > 0:
		flagErrs = append(flagErrs, fmt.Errorf("--%s is for VMs: add --vm instead of --image", vmFlags[0]))
	}
	if isVM {
		vm := api.VMSpec{Kernel: c.String("kernel"), Initrd: c.String("initrd"), Cmdline: c.String("cmdline")}
		for _, d := range c.StringSlice("disk") {
			disk, err := parseDisk(d)
			if err != nil {
				flagErrs = append(flagErrs, err)
			}
			vm.Disks = append(vm.Disks, disk)
		}
		for _, n := range c.StringSlice("network") {
			nic, err := parseNetwork(n)
			if err != nil {
				flagErrs = append(flagErrs, err)
			}
			vm.Networks = append(vm.Networks, nic)
		}
		if len(vm.Disks) > 0 || len(vm.Networks) > 0 || vm.Kernel != "" || vm.Initrd != "" || vm.Cmdline != "" {
			tmpl.VM = &vm
		}
	} else {
		if !c.IsSet("memory") {
			tmpl.Memory, _ = api.ParseByteSize(defaultContainerMemory)
		}
		if hasImage {
			image, err := imageFromFlags(c)
			if err != nil {
				flagErrs = append(flagErrs, err)
			}
			tmpl.Image = image
		}
		if len(command) > 0 {
			if strings.TrimSpace(command[0]) == "" {
				flagErrs = append(flagErrs, errors.New(`the command after "--" starts with an empty program name`))
			}
			tmpl.Command = command
		}
		for _, e := range c.StringSlice("env") {
			k, v, err := parseEnv(e)
			if err != nil {
				flagErrs = append(flagErrs, err)
				continue
			}
			if tmpl.Env == nil {
				tmpl.Env = map[string]string{}
			}
			tmpl.Env[k] = v
		}
	}
	spec.Template = tmpl
	spec.Normalize()
	// What the flags' checks reported is not repeated by Validate: a
	// missing image or replica count gets a stand-in.
	check := spec
	if check.Template.Kind == api.KindContainer && check.Template.Image == "" {
		check.Template.Image = "-"
	}
	if !c.IsSet("replicas") {
		check.Replicas = 1
	}
	var errs []error
	if err := check.Validate(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, flagErrs...)
	if len(errs) > 0 {
		return spec, invalidInput("service", errors.Join(errs...))
	}
	return spec, nil
}

// serviceSpecFromVM builds a service whose copies are like an existing VM
// workload (--vm-template): only the service's own flags may go with it.
func serviceSpecFromVM(c *cli.Context, name string, command []string) (api.ServiceSpec, *session, error) {
	var errs []error
	for _, f := range c.FlagNames() {
		switch f {
		case "vm-template", "replicas", "r", "anti-affinity", "spread-by", "vip", "publish", "p", "api", "token", "token-file", "ca-file", "output", "o":
		default:
			errs = append(errs, fmt.Errorf("--%s cannot go with --vm-template: the copies take the template's spec as it is", f))
		}
	}
	if len(command) > 0 {
		errs = append(errs, errors.New(`a command after "--" is for containers, not --vm-template`))
	}
	if !c.IsSet("replicas") {
		errs = append(errs, errors.New("--replicas is missing: say how many copies to keep running, e.g. --replicas 3"))
	}
	tmplName := c.String("vm-template")
	if err := api.ValidateName("workload", tmplName); err != nil {
		errs = append(errs, fmt.Errorf("--vm-template: %w", err))
	}
	if len(errs) > 0 {
		return api.ServiceSpec{}, nil, invalidInput("service", errors.Join(errs...))
	}
	s, err := newSession(c)
	if err != nil {
		return api.ServiceSpec{}, nil, err
	}
	w, err := s.api.GetWorkload(s.ctx, tmplName)
	if err != nil {
		return api.ServiceSpec{}, nil, explain(err, "workload", tmplName)
	}
	t := w.WorkloadSpec
	switch {
	case t.Kind != api.KindVM:
		return api.ServiceSpec{}, nil, fmt.Errorf("--vm-template %s: it is a %s, not a VM; for containers give --image", tmplName, t.Kind)
	case len(t.Volumes) > 0:
		return api.ServiceSpec{}, nil, fmt.Errorf("--vm-template %s: it uses volumes %s, which copies cannot share", tmplName, strings.Join(t.Volumes, ", "))
	}
	t.Name, t.AntiAffinity, t.VIPs, t.Publish = "", "", nil, nil
	t.Labels = maps.Clone(t.Labels)
	delete(t.Labels, api.ServiceLabel)
	spec := api.ServiceSpec{Name: name, Replicas: c.Int("replicas"), AntiAffinity: c.String("anti-affinity"), VIP: c.String("vip"), Template: t}
	if c.IsSet("spread-by") {
		spec.Template.SpreadBy = c.String("spread-by")
	}
	for _, p := range c.StringSlice("publish") {
		sp, err := api.ParseServicePort(p)
		if err != nil {
			return api.ServiceSpec{}, nil, invalidInput("service", err)
		}
		spec.Ports = append(spec.Ports, sp)
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		return api.ServiceSpec{}, nil, invalidInput("service", err)
	}
	return spec, s, nil
}

// templateText says what each copy is, e.g. "container busybox:1.36
// (1 CPU, 128MiB)".
func templateText(t api.WorkloadSpec) string {
	what := "vm"
	if t.Kind == api.KindContainer {
		what = "container " + t.Image
	}
	return fmt.Sprintf("%s (%d %s, %s)", what, t.CPUs, plural(t.CPUs, "CPU", "CPUs"), t.Memory)
}

func serviceScaleCommand() *cli.Command {
	return &cli.Command{
		Name:      "scale",
		Usage:     "change how many copies of a service run",
		ArgsUsage: "NAME N",
		Description: `Sets the service's replica count to N (0 to ` + strconv.Itoa(api.MaxReplicas) + `). The leader then creates
the missing copies (lowest free number first) or deletes the surplus ones
(highest number first). Scaling to 0 keeps the service, with no copies.

Examples:
   bulwarkctl service scale web 5
   bulwarkctl service scale web 0`,
		Flags:  withGlobal(),
		Action: leaf(serviceScale),
	}
}

func serviceScale(c *cli.Context, args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("expected NAME and N, got %q (usage: %s)", args, usageLine(c))
	}
	name := args[0]
	if err := api.ValidateName("service", name); err != nil {
		return err
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return fmt.Errorf("replicas %q is not a whole number (usage: %s)", args[1], usageLine(c))
	}
	if err := api.ValidateReplicas(n); err != nil {
		return invalidInput("replica count", err)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.ScaleService(s.ctx, name, n)
	if err != nil {
		if client.IsConflict(err) {
			return fmt.Errorf("cannot scale service %s: %s", name, apiMessage(err))
		}
		return explain(err, "service", name)
	}
	if s.format != formatTable {
		return s.print(v)
	}
	fmt.Fprintf(s.out, "service %q scaled to %d (%d running now); watch it with: bulwarkctl service show %s\n", name, n, v.Running, name)
	return nil
}

func serviceListCommand() *cli.Command {
	return &cli.Command{
		Name:    "list",
		Aliases: []string{"ls"},
		Usage:   "list the services",
		Description: `Lists every service, sorted by name:
   NAME       the service's name
   REPLICAS   copies wanted
   RUNNING    copies whose host reports them running
   KIND       vm or container
   SPREAD     auto (no two copies on one host) or none
   STATE      active, or deleting
   MEMBERS    its copies (workloads), including ones still stopping

With -o json it prints the full records as a JSON array, for scripts.

Examples:
   bulwarkctl service list
   bulwarkctl service list -o json`,
		Flags:  withGlobal(),
		Action: leaf(serviceList),
	}
}

func serviceList(c *cli.Context, args []string) error {
	if err := noArgs(c, args); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	svcs, err := s.api.ListServices(s.ctx)
	if err != nil {
		return explain(err, "service", "")
	}
	if svcs == nil {
		svcs = []api.ServiceView{}
	}
	if s.format != formatTable {
		return s.print(svcs)
	}
	if len(svcs) == 0 {
		fmt.Fprintln(s.errw, "no services yet; create one with: bulwarkctl service create web --replicas 3 --image docker.io/library/nginx:1.27")
		return nil
	}
	tw := newTable(s.out)
	row(tw, "NAME", "REPLICAS", "RUNNING", "KIND", "SPREAD", "STATE", "MEMBERS")
	for _, v := range svcs {
		row(tw, v.Name, strconv.Itoa(v.Replicas), strconv.Itoa(v.Running), string(v.Template.Kind), v.AntiAffinity,
			serviceState(v), orDash(truncate(strings.Join(v.Members, ","), reasonWidth)))
	}
	return tw.Flush()
}

func serviceState(v api.ServiceView) string {
	if v.Deleting {
		return "deleting"
	}
	return "active"
}

func serviceShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Aliases:   []string{"get"},
		Usage:     "show one service and its copies",
		ArgsUsage: "NAME",
		Description: `Shows one service: replicas wanted and running, what each copy runs,
its spread, and every copy with its state and host ("bulwarkctl workload
show NAME-N" tells more about one copy, "bulwarkctl explain NAME-N" why
it waits).

Examples:
   bulwarkctl service show web
   bulwarkctl service show web -o json`,
		Flags:  withGlobal(),
		Action: leaf(serviceShow),
	}
}

func serviceShow(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("service", name); err != nil {
		return err
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.GetService(s.ctx, name)
	if err != nil {
		return explain(err, "service", name)
	}
	if s.format != formatTable {
		return s.print(v)
	}
	return writeService(s.out, v)
}

func writeService(out io.Writer, v *api.ServiceView) error {
	tw := newTable(out)
	row(tw, "Name:", v.Name)
	row(tw, "State:", serviceState(*v))
	row(tw, "Replicas:", strconv.Itoa(v.Replicas))
	row(tw, "Running:", strconv.Itoa(v.Running))
	row(tw, "Each copy:", templateText(v.Template))
	if len(v.Template.Command) > 0 {
		row(tw, "Command:", strings.Join(v.Template.Command, " "))
	}
	row(tw, "Spread:", v.AntiAffinity)
	row(tw, "Priority:", strconv.Itoa(v.Template.Priority))
	row(tw, "Labels:", joinMap(v.Template.Labels))
	if v.Template.Check != nil {
		row(tw, "Check:", v.Template.Check.String())
	}
	if v.VIP != "" {
		var ports []string
		for _, p := range v.Ports {
			ports = append(ports, p.String())
		}
		row(tw, "VIP:", fmt.Sprintf("%s ports %s, held by %s (follows %s)", v.VIP, strings.Join(ports, ","), orDash(v.VIPHolder), orDash(v.Anchor)))
		n := 0
		if v.Pool != nil {
			n = len(v.Pool.Backends)
		}
		row(tw, "In pool:", fmt.Sprintf("%d of %d", n, v.Replicas))
	}
	row(tw, "Created:", formatTime(v.CreatedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(v.Instances) == 0 {
		fmt.Fprintln(out, "\nNo copies yet.")
		return nil
	}
	fmt.Fprintln(out)
	tw = newTable(out)
	if v.VIP != "" {
		row(tw, "MEMBER", "STATE", "HOST", "HEALTH", "POOL")
	} else {
		row(tw, "MEMBER", "STATE", "HOST", "HEALTH")
	}
	for _, m := range v.Instances {
		st := string(m.State)
		if m.Deleting && m.State != api.StateStopping {
			st += " (deleting)"
		}
		cells := []string{m.Name, st, orDash(m.Host), orDash(m.Health)}
		if v.VIP != "" {
			pool := "out"
			if m.InPool {
				pool = "in"
			}
			cells = append(cells, pool)
		}
		row(tw, cells...)
	}
	return tw.Flush()
}

func serviceDeleteCommand() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Aliases:   []string{"rm"},
		Usage:     "delete a service and all its copies",
		ArgsUsage: "NAME",
		Description: `Marks the service deleting: the leader deletes every copy, and the
service record once none is left. With --wait, waits until then.

Examples:
   bulwarkctl service delete web
   bulwarkctl service delete web --wait --timeout 2m`,
		Flags: withGlobal(
			&cli.BoolFlag{Name: "wait", Usage: "wait until the service and its copies are gone"},
			&cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "how long --wait waits (e.g. 30s, 2m)"},
		),
		Action: leaf(serviceDelete),
	}
}

func serviceDelete(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	if err := api.ValidateName("service", name); err != nil {
		return err
	}
	wait, timeout := c.Bool("wait"), c.Duration("timeout")
	if wait && timeout <= 0 {
		return fmt.Errorf("--timeout must be positive, got %v", timeout)
	}
	s, err := newSession(c)
	if err != nil {
		return err
	}
	v, err := s.api.DeleteService(s.ctx, name)
	if err != nil {
		return explain(err, "service", name)
	}
	if s.format != formatTable {
		if err := s.print(v); err != nil {
			return err
		}
	} else if !wait {
		fmt.Fprintf(s.out, "service %q is being deleted with its %d %s; add --wait to wait until it is gone\n", name, len(v.Members), plural(len(v.Members), "copy", "copies"))
	}
	if !wait {
		return nil
	}
	fmt.Fprintf(s.errw, "waiting up to %v for service %q and its copies to be removed...\n", timeout, name)
	err = waitGone(s, "service", name, "", timeout, func(ctx context.Context) (string, error) {
		v, err := s.api.GetService(ctx, name)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%d %s left", len(v.Members), plural(len(v.Members), "copy", "copies")), nil
	})
	if err != nil {
		return err
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "service %q deleted\n", name)
	}
	return nil
}
