package api

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// HealthCheck is how a workload's host checks that it works (Pacemaker's
// monitor operation). The agent runs it while the workload runs; after
// Failures failed checks in a row, once the start-up Grace is over, the
// workload is unhealthy and is restarted under its restart policy like one
// that crashed (and, after RestartLimit restarts, moved to another host).
//
// Zero Interval, Timeout and Failures mean their defaults; a nil Grace
// means DefaultCheckGrace (a Grace of 0 means none).
type HealthCheck struct {
	// Type is CheckTCP, CheckHTTP or CheckExec.
	Type string `json:"type"`
	// Port is what a tcp or http check connects to.
	Port int `json:"port,omitempty"`
	// Path is the http check's request path and query, from '/'.
	Path string `json:"path,omitempty"`
	// Command is the exec check's program and arguments, run inside the
	// container ("exec:CMD" becomes /bin/sh -c CMD).
	Command []string `json:"command,omitempty"`
	// Interval is the time from one check to the next.
	Interval Duration `json:"interval,omitempty"`
	// Timeout bounds one check; it is shorter than Interval.
	Timeout Duration `json:"timeout,omitempty"`
	// Failures is how many failed checks in a row make the workload
	// unhealthy.
	Failures int `json:"failures,omitempty"`
	// Grace is the start-up time during which failed checks do not count;
	// the first check that passes ends it early.
	Grace *Duration `json:"grace,omitempty"`
}

// Check types.
const (
	CheckTCP  = "tcp"
	CheckHTTP = "http"
	CheckExec = "exec"
)

// Health check defaults and limits.
const (
	DefaultCheckInterval = 10 * time.Second
	DefaultCheckTimeout  = 2 * time.Second
	DefaultCheckFailures = 3
	DefaultCheckGrace    = 30 * time.Second
	MinCheckInterval     = time.Second
	MaxCheckInterval     = time.Hour
	MinCheckTimeout      = 10 * time.Millisecond
	MaxCheckFailures     = 100
	MaxCheckGrace        = time.Hour
	MaxCheckPath         = 1024
	// MaxCheckCommand bounds the bytes of an exec check's command.
	MaxCheckCommand = 4096
)

// Values of WorkloadStatus.Health and WorkloadView.Health; "" means the
// workload has no check (or is not running).
const (
	// HealthStarting: in the start-up grace, or no check has passed yet.
	HealthStarting = "starting"
	HealthHealthy  = "healthy"
	// HealthUnhealthy: Failures checks in a row failed; the host restarts
	// the workload under its restart policy.
	HealthUnhealthy = "unhealthy"
	// HealthUnknown: the check cannot run where the workload runs (a VM
	// whose guest address is unknown); HealthDetail says why.
	HealthUnknown = "unknown"
)

// checkForms lists the forms ParseCheck reads, for error messages.
const checkForms = "use tcp:PORT, http:PORT/PATH or exec:COMMAND"

// ParseCheck reads the --check forms:
//
//	tcp:PORT        connect to PORT
//	http:PORT/PATH  GET /PATH on PORT (http:PORT is http:PORT/)
//	exec:COMMAND    run /bin/sh -c COMMAND inside the container
//
// Interval, timeout, failures and grace are left to their defaults. The
// result is checked as HealthCheck.Validate checks it.
func ParseCheck(s string) (HealthCheck, error) {
	if strings.TrimSpace(s) == "" {
		return HealthCheck{}, errors.New("check is empty: " + checkForms)
	}
	typ, rest, ok := strings.Cut(s, ":")
	if !ok {
		return HealthCheck{}, fmt.Errorf("check %q: expected TYPE:..., %s", s, checkForms)
	}
	var c HealthCheck
	switch typ {
	case CheckTCP, CheckHTTP:
		c.Type = typ
		port := rest
		if typ == CheckHTTP {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				port, c.Path = rest[:i], rest[i:]
			} else {
				c.Path = "/"
			}
		}
		if port == "" {
			form, example := "tcp:PORT", "tcp:5432"
			if typ == CheckHTTP {
				form, example = "http:PORT/PATH", "http:8080/health"
			}
			return c, fmt.Errorf("check %q: the port is missing: use %s, e.g. %s", s, form, example)
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			return c, fmt.Errorf("check %q: port %q is not a number from 1 to 65535", s, port)
		}
		c.Port = n
	case CheckExec:
		c.Type = typ
		if strings.TrimSpace(rest) == "" {
			return c, fmt.Errorf("check %q: the command is empty: use exec:COMMAND, e.g. 'exec:test -f /tmp/ready'", s)
		}
		c.Command = []string{"/bin/sh", "-c", rest}
	default:
		return c, fmt.Errorf("check %q: unknown type %q: %s", s, typ, checkForms)
	}
	return c, joinPrefixed(fmt.Sprintf("check %q: ", s), c.problems())
}

// Validate checks the check alone (see WorkloadSpec.Validate for what
// depends on the workload's kind) and returns every problem, joined, each
// message starting with "check: ".
func (c *HealthCheck) Validate() error {
	return joinPrefixed("check: ", c.problems())
}

func joinPrefixed(prefix string, errs []error) error {
	for i, err := range errs {
		errs[i] = fmt.Errorf("%s%w", prefix, err)
	}
	return errors.Join(errs...)
}

// problems lists what is wrong with the check.
func (c *HealthCheck) problems() []error {
	var errs []error
	switch c.Type {
	case CheckTCP, CheckHTTP:
		if c.Port < 1 || c.Port > 65535 {
			errs = append(errs, fmt.Errorf("port %d is out of range: use 1 to 65535", c.Port))
		}
		if c.Command != nil {
			errs = append(errs, fmt.Errorf("a %s check takes no command", c.Type))
		}
		if c.Type == CheckTCP && c.Path != "" {
			errs = append(errs, errors.New("a tcp check takes no path (use http:PORT/PATH for an HTTP request)"))
		}
		if c.Type == CheckHTTP {
			switch {
			case !strings.HasPrefix(c.Path, "/"):
				errs = append(errs, fmt.Errorf("http path %q must start with '/'", c.Path))
			case len(c.Path) > MaxCheckPath:
				errs = append(errs, fmt.Errorf("http path is %d bytes long; at most %d are allowed", len(c.Path), MaxCheckPath))
			case strings.IndexFunc(c.Path, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r == '#' }) >= 0:
				errs = append(errs, fmt.Errorf("http path %q may not hold spaces, control characters or '#'", c.Path))
			}
		}
	case CheckExec:
		if c.Port != 0 || c.Path != "" {
			errs = append(errs, errors.New("an exec check takes a command only (no port or path)"))
		}
		size := 0
		for _, a := range c.Command {
			size += len(a)
			if strings.ContainsRune(a, 0) {
				errs = append(errs, errors.New("the exec command has a NUL character"))
				break
			}
		}
		switch {
		case len(c.Command) == 0 || strings.TrimSpace(c.Command[0]) == "":
			errs = append(errs, errors.New("an exec check needs a command: its program first, e.g. [\"/bin/sh\", \"-c\", \"test -f /tmp/ready\"]"))
		case size > MaxCheckCommand:
			errs = append(errs, fmt.Errorf("the exec command is %d bytes long; at most %d are allowed", size, MaxCheckCommand))
		}
	case "":
		errs = append(errs, errors.New("type is missing: use tcp, http or exec"))
	default:
		errs = append(errs, fmt.Errorf("type %q is unknown: use tcp, http or exec", c.Type))
	}
	interval := time.Duration(c.Interval)
	switch {
	case c.Interval == 0:
		interval = DefaultCheckInterval
	case interval < MinCheckInterval:
		errs = append(errs, fmt.Errorf("interval %s is too short: at least %s", interval, MinCheckInterval))
	case interval > MaxCheckInterval:
		errs = append(errs, fmt.Errorf("interval %s is too long: at most %s", interval, MaxCheckInterval))
	}
	if t := time.Duration(c.Timeout); c.Timeout != 0 {
		switch {
		case t < MinCheckTimeout:
			errs = append(errs, fmt.Errorf("timeout %s is too short: at least %s", t, MinCheckTimeout))
		case t >= interval:
			errs = append(errs, fmt.Errorf("timeout %s must be shorter than the interval %s", t, interval))
		}
	}
	if c.Failures < 0 || c.Failures > MaxCheckFailures {
		errs = append(errs, fmt.Errorf("failures must be from 1 to %d, got %d", MaxCheckFailures, c.Failures))
	}
	if c.Grace != nil {
		switch g := time.Duration(*c.Grace); {
		case g < 0:
			errs = append(errs, fmt.Errorf("grace %s is negative", g))
		case g > MaxCheckGrace:
			errs = append(errs, fmt.Errorf("grace %s is too long: at most %s", g, MaxCheckGrace))
		}
	}
	return errs
}

// validateCheck checks the workload's health check, and that its type
// suits the workload's kind.
func (s *WorkloadSpec) validateCheck() []error {
	if s.Check == nil {
		return nil
	}
	var errs []error
	if err := s.Check.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Check.Type == CheckExec && s.Kind == KindVM {
		errs = append(errs, errors.New("check: exec checks run inside containers; a VM's check must be tcp or http"))
	}
	return errs
}

// WithDefaults returns the check with every default filled in. The default
// timeout is DefaultCheckTimeout, or half the interval if that is shorter.
func (c HealthCheck) WithDefaults() HealthCheck {
	if c.Interval == 0 {
		c.Interval = Duration(DefaultCheckInterval)
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(min(DefaultCheckTimeout, time.Duration(c.Interval)/2))
	}
	if c.Failures == 0 {
		c.Failures = DefaultCheckFailures
	}
	if c.Grace == nil {
		g := Duration(DefaultCheckGrace)
		c.Grace = &g
	}
	return c
}

// Target is the check in the --check form: "tcp:5432",
// "http:8080/health", "exec:test -f /tmp/ready" (a command that is not
// /bin/sh -c CMD is shown with its arguments quoted where needed).
func (c HealthCheck) Target() string {
	switch c.Type {
	case CheckTCP:
		return fmt.Sprintf("tcp:%d", c.Port)
	case CheckHTTP:
		return fmt.Sprintf("http:%d%s", c.Port, c.Path)
	case CheckExec:
		if len(c.Command) == 3 && c.Command[0] == "/bin/sh" && c.Command[1] == "-c" {
			return "exec:" + c.Command[2]
		}
		args := make([]string, len(c.Command))
		for i, a := range c.Command {
			args[i] = a
			if a == "" || strings.ContainsFunc(a, func(r rune) bool { return unicode.IsSpace(r) || strings.ContainsRune(`"'\$`, r) }) {
				args[i] = strconv.Quote(a)
			}
		}
		return "exec:" + strings.Join(args, " ")
	}
	return c.Type
}

// String describes the check with its timing, defaults filled in, e.g.
// "http:8080/health every 10s, timeout 2s, unhealthy after 3 failures,
// grace 30s".
func (c HealthCheck) String() string {
	d := c.WithDefaults()
	failures := "failures"
	if d.Failures == 1 {
		failures = "failure"
	}
	return fmt.Sprintf("%s every %s, timeout %s, unhealthy after %d %s, grace %s",
		c.Target(), d.Interval, d.Timeout, d.Failures, failures, *d.Grace)
}
