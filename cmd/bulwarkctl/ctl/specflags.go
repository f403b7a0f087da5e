package ctl

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

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
		&cli.StringSliceFlag{Name: "volume", Usage: "use the volume `NAME` (see bulwarkctl volume list); repeat for more"},
		&cli.StringSliceFlag{Name: "vip", Usage: "take the floating IP `ADDR`, e.g. 192.0.2.10 (see bulwarkctl vip list); repeat for more"},
		&cli.StringFlag{Name: "check", Usage: "health check `SPEC`: tcp:PORT, http:PORT/PATH or exec:COMMAND, e.g. http:8080/health"},
		&cli.StringFlag{Name: "check-interval", Usage: "`DURATION` between health checks, 1s to 1h (default 10s)"},
		&cli.StringFlag{Name: "check-timeout", Usage: "`DURATION` one health check may take, under the interval (default 2s, or half the interval if shorter)"},
		&cli.IntFlag{Name: "check-failures", Value: api.DefaultCheckFailures, Usage: "`N` failed health checks in a row make it unhealthy, 1 to 100"},
		&cli.StringFlag{Name: "check-grace", Usage: "start-up `DURATION` in which failed health checks do not count, 0s to 1h (default 30s)"},
	}
}

// checkFlags are the flags that tune --check.
var checkFlags = []string{"check-interval", "check-timeout", "check-failures", "check-grace"}

// checkFlagsHelp documents --check and the flags that tune it; vm
// selects the text for VMs.
func checkFlagsHelp(vm bool) string {
	noun := "container"
	kinds := `--check SPEC: while the container runs, its host checks it with one of
      tcp:PORT        connect to PORT: healthy if the connection opens,
                      e.g. --check tcp:5432
      http:PORT/PATH  GET /PATH on PORT: healthy on an answer 200-399
                      (redirects are not followed), e.g.
                      --check http:8080/healthz (http:PORT means PATH /)
      exec:COMMAND    run COMMAND with /bin/sh -c inside the container,
                      with its environment: healthy if it exits with
                      status 0, e.g. --check 'exec:pg_isready -U app'
                      (the image needs /bin/sh; quote COMMAND)
      tcp and http connect from the host to 127.0.0.1 (containers share
      the host's network), or to the container's floating IP while its
      host holds it.`
	if vm {
		noun = "VM"
		kinds = `--check SPEC: tcp:PORT (connect to PORT) or http:PORT/PATH (GET /PATH on
      PORT, healthy on an answer 200-399), against the guest's address,
      e.g. --check tcp:22 or --check http:80/healthz. Bulwark does not
      know guests' addresses yet: the check is kept, the VM's health shows
      "unknown" (check unsupported for VMs without a known guest
      address), and it never restarts the VM. exec checks are for
      containers.`
	}
	after := `
      An unhealthy container is stopped and restarted like one that
      crashed, under --restart: after 3 restarts in a row its host gives
      up and Bulwark moves it to another host. "bulwarkctl workload show
      NAME" shows its health (healthy, unhealthy or starting), and
      "bulwarkctl events --type unhealthy" when its checks failed.`
	if vm {
		after = ""
	}
	return `Health check (optional):
` + kinds + `
--check-interval DURATION: time from one check to the next, 1s to 1h
      (default 10s), e.g. 5s or 1m.
--check-timeout DURATION: how long one check may take, less than the
      interval (default 2s, or half the interval if that is shorter).
--check-failures N: failed checks in a row that make the ` + noun + `
      unhealthy, 1 to 100 (default 3).
--check-grace DURATION: time after each start during which failed checks
      do not count, 0s to 1h (default 30s); the first check that passes
      ends it.` + after
}

// sharedFlagsHelp documents --volume and --vip; how a workload gets its
// volumes differs by kind and is told by each command.
const sharedFlagsHelp = `Volumes and floating IPs (optional; both must exist already):
--volume NAME: use the volume NAME, defined with "bulwarkctl volume
      create"; repeat the flag for several. An exclusive volume is locked
      to this workload while it runs: the workload starts only once no
      other workload holds it (see "bulwarkctl volume --help").
--vip ADDR: the floating IP ADDR, defined with "bulwarkctl vip create",
      follows this workload: the host that runs it holds the address, and
      the scheduler places it only on hosts that can (see "bulwarkctl vip
      --help"); repeat the flag for several. ADDR is the address as
      printed by "bulwarkctl vip list", e.g. --vip 192.0.2.10 (a /PREFIX
      after it is ignored). The address must not follow another workload.`

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
	// Every --volume is kept as given: Validate checks the names.
	spec.Volumes = c.StringSlice("volume")
	for _, v := range c.StringSlice("vip") {
		spec.VIPs = append(spec.VIPs, parseVIPFlag(v))
	}
	spec.Check, errs = checkFromFlags(c, errs)
	return spec, errs
}

// checkFromFlags reads --check and the flags that tune it; nil without
// --check. A flag left out leaves its default to the server (the field
// stays zero). The ranges are left to spec.Validate, except for the
// values that would read as "default" there (an explicit 0).
func checkFromFlags(c *cli.Context, errs []error) (*api.HealthCheck, []error) {
	if !c.IsSet("check") {
		for _, f := range checkFlags {
			if c.IsSet(f) {
				errs = append(errs, fmt.Errorf("--%s tunes a health check: give the check too, e.g. --check http:8080/health", f))
			}
		}
		return nil, errs
	}
	hc, err := api.ParseCheck(c.String("check"))
	if err != nil {
		return nil, append(errs, errors.New("--"+err.Error()))
	}
	duration := func(flag string) (api.Duration, bool) {
		if !c.IsSet(flag) {
			return 0, false
		}
		d, err := time.ParseDuration(strings.TrimSpace(c.String(flag)))
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s %q is not a duration: use e.g. 10s, 1m or 1m30s", flag, c.String(flag)))
			return 0, false
		}
		return api.Duration(d), true
	}
	if d, ok := duration("check-interval"); ok {
		if d == 0 {
			errs = append(errs, fmt.Errorf("--check-interval 0s is too short: at least %s", api.MinCheckInterval))
		}
		hc.Interval = d
	}
	if d, ok := duration("check-timeout"); ok {
		if d == 0 {
			errs = append(errs, fmt.Errorf("--check-timeout 0s is too short: at least %s", api.MinCheckTimeout))
		}
		hc.Timeout = d
	}
	if c.IsSet("check-failures") {
		if n := c.Int("check-failures"); n < 1 || n > api.MaxCheckFailures {
			errs = append(errs, fmt.Errorf("--check-failures must be from 1 to %d, got %d", api.MaxCheckFailures, n))
		} else {
			hc.Failures = n
		}
	}
	if d, ok := duration("check-grace"); ok {
		hc.Grace = &d
	}
	return &hc, errs
}

// parseVIPFlag reads --vip ADDR[/PREFIX] into the address alone, in
// canonical form if it is one; Validate reports what is not.
func parseVIPFlag(s string) string {
	addr := vipKey(s)
	if a, err := netip.ParseAddr(addr); err == nil {
		return a.String()
	}
	return s
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
			// A 409 is also a floating IP that follows another workload,
			// or a volume or floating IP that changed meanwhile: those
			// the server's message explains.
			if msg := apiMessage(err); msg == "" || strings.HasPrefix(msg, "workload ") && strings.HasSuffix(msg, "already exists") {
				return fmt.Errorf("a workload named %q already exists; pick another name, or delete it first with: bulwarkctl workload delete %s --wait", spec.Name, spec.Name)
			}
			return fmt.Errorf("the server refused to create %s %s: %w", noun, spec.Name, err)
		}
		return explain(err, "workload", "")
	}
	if s.format == formatTable {
		fmt.Fprintf(s.out, "%s %q created%s\n", noun, w.Name, sharedText(w.WorkloadSpec))
	}
	return s.printWorkload(w)
}

// sharedText lists the volumes, floating IPs and published ports of a
// spec for the "created" line, e.g. " with volume pg-data and floating IP
// 192.0.2.10"; "" if it has none.
func sharedText(spec api.WorkloadSpec) string {
	var parts []string
	if len(spec.Volumes) > 0 {
		parts = append(parts, plural(len(spec.Volumes), "volume", "volumes")+" "+strings.Join(spec.Volumes, ", "))
	}
	if len(spec.VIPs) > 0 {
		parts = append(parts, plural(len(spec.VIPs), "floating IP", "floating IPs")+" "+strings.Join(spec.VIPs, ", "))
	}
	if len(spec.Publish) > 0 {
		ports := make([]string, len(spec.Publish))
		for i, p := range spec.Publish {
			ports[i] = publishText(p)
		}
		parts = append(parts, plural(len(ports), "published port", "published ports")+" "+strings.Join(ports, ", "))
	}
	switch len(parts) {
	case 0:
		return ""
	case 1:
		return " with " + parts[0]
	}
	return " with " + strings.Join(parts[:len(parts)-1], "; ") + " and " + parts[len(parts)-1]
}

// publishText renders a port forward as VIP:PORT->CONTAINERPORT/PROTO.
func publishText(p api.Publish) string {
	host := p.VIP + ":" + strconv.Itoa(p.Port)
	if a, err := netip.ParseAddr(p.VIP); err == nil && p.Port > 0 && p.Port <= 65535 {
		host = netip.AddrPortFrom(a, uint16(p.Port)).String()
	}
	proto := p.Proto
	if proto == "" {
		proto = "tcp"
	}
	return fmt.Sprintf("%s->%d/%s", host, p.ContainerPort, proto)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
