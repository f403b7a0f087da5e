// Package ctl implements the bulwarkctl commands. NewApp builds the whole
// command tree so that main and the tests run exactly the same code.
package ctl

import (
	"context"
	"errors"
	"fmt"
	"github.com/bulwarkhq/bulwark/internal/spelling"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api/client"
)

// Build information, set at link time:
//
//	go build -ldflags "-X github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl.Version=v0.1.0 \
//	  -X github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl.Commit=$(git rev-parse --short HEAD) \
//	  -X github.com/bulwarkhq/bulwark/cmd/bulwarkctl/ctl.Date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
//	  ./cmd/bulwarkctl
var (
	Version = "dev"
	Commit  = "none"
	Date    = "unknown"
)

const (
	// DefaultAPI is the API address used when neither --api nor BULWARK_API is set.
	DefaultAPI = "http://127.0.0.1:7370"
	// EnvAPI names the environment variable that holds the API address.
	EnvAPI = "BULWARK_API"
	// ExitError is the exit status for every failure; success is 0.
	ExitError = 1
)

const appDescription = `bulwarkctl talks to the Bulwark API server over HTTP. It shows the hosts
(nodes) and the workloads (VMs and containers) of a cluster, creates VMs
("vm create") and containers ("container run"), creates workloads from
files ("apply"), shows a workload's output ("workload logs"), and deletes
workloads. Bulwark's scheduler places every workload on a node with enough
free CPUs and memory (and that meets the workload's placement rules), and
moves it to another node if that host fails. "bulwarkctl explain NAME"
shows how it judged each node, and "bulwarkctl settings" shows and changes
how it chooses. Volumes ("volume") and floating IPs ("vip") are disks and
addresses that move with their workload, never used by two hosts at once.

Before it restarts the workloads of a failed host elsewhere, Bulwark powers
the host off through its fence device (its BMC). "bulwarkctl node fence",
"node clear" and "node power-on" do this by hand; on a "bulwarkd dev"
cluster, "bulwarkctl dev fault" makes a host fail, to see it happen.

Getting started (a one-process cluster on this machine):
   bulwarkd dev                                       # in another terminal
   bulwarkctl node list                               # hosts and their free resources
   bulwarkctl vm create web-1 --cpus 2 --memory 1GiB  # ask for a VM
   bulwarkctl workload show web-1                     # its state, host, and why it waits
   bulwarkctl explain web-1                           # how each node was judged
   bulwarkctl workload delete web-1 --wait            # stop and remove it

The API address is taken from --api, else from $BULWARK_API, else it is
http://127.0.0.1:7370. The global options --api and -o may also be given
after the command, e.g. "bulwarkctl node list -o json".
` + credentialsHelp + `
Run "bulwarkctl COMMAND --help" for the details of each command.

Output: tables by default; -o json or -o yaml print the server's records
(the same field names in both) for scripts. Shell completion: see
"bulwarkctl completion --help".

Exit status:
   0  success: the command did what it says. "node drain" exits 0 only if
      the host was emptied (its drain is complete); "whatif" exits 0 also
      when it finds unsafe hosts (read its answer, or -o json).
   1  any error: invalid input or usage, or a question not confirmed (then
      nothing is sent to the server), the server refused the request, the
      server could not be reached, a drain that ended incomplete or timed
      out, a reset the leader has not applied yet, or a wait (--wait,
      drain) that ran out of time or was interrupted with Ctrl-C.
      The reason is printed to standard error as "error: ...".`

// NewApp returns the bulwarkctl application. Command output goes to stdout,
// progress notes and confirmation questions to stderr. Answers to the
// questions are read from the returned App's Reader: os.Stdin unless the
// caller (a test) sets another before Run. Errors are returned by Run, not
// printed and not turned into os.Exit: the caller prints them and picks the
// exit status (ExitError).
func NewApp(stdout, stderr io.Writer) *cli.App {
	commands := []*cli.Command{
		nodeCommand(),
		workloadCommand(),
		vmCommand(),
		containerCommand(),
		serviceCommand(),
		volumeCommand(),
		vipCommand(),
		applyCommand(),
		explainCommand(),
		settingsCommand(),
		eventsCommand(),
		whatIfCommand(),
		rebalanceCommand(),
		statusCommand(),
		devCommand(),
		completionCommand(),
	}
	app := &cli.App{
		Name:        "bulwarkctl",
		Usage:       "operate a Bulwark cluster: nodes, VMs and other workloads",
		Version:     fmt.Sprintf("%s (commit %s, built %s)", Version, Commit, Date),
		Description: appDescription,
		Flags:       globalFlags(true),
		Commands:    commands,
		Writer:      stdout,
		ErrWriter:   stderr,
		// Repeat --label instead of splitting its value at commas.
		DisableSliceFlagSeparator: true,
		// Errors are returned to main, which prints them and exits.
		ExitErrHandler: func(*cli.Context, error) {},
		// "bulwarkctl ... --generate-bash-completion" lists what may come
		// next; the scripts of "bulwarkctl completion" use it.
		EnableBashCompletion: true,
		OnUsageError:         usageError,
		Before: func(c *cli.Context) error {
			// Check a root-level -o early, before any command runs.
			_, err := outputFormat(c)
			return err
		},
		Action: unknownCommand(commands),
	}
	for _, cmd := range commands {
		configure(cmd)
	}
	return app
}

// configure sets what every command shares: usage-error formatting, and for
// command groups the unknown-subcommand error.
func configure(cmd *cli.Command) {
	cmd.OnUsageError = usageError
	if len(cmd.Subcommands) == 0 {
		return
	}
	cmd.HideHelpCommand = true
	subs := cmd.Subcommands
	cmd.Action = unknownCommand(subs)
	for _, sub := range subs {
		configure(sub)
	}
}

// globalFlags returns --api and -o. The root copy reads BULWARK_API; the copy
// on each command only takes the flag as given there (see lookupGlobal).
func globalFlags(root bool) []cli.Flag {
	api := &cli.StringFlag{
		Name:  "api",
		Usage: "Bulwark API `URL` (default $" + EnvAPI + ", else " + DefaultAPI + ")",
	}
	if root {
		api.Value = DefaultAPI
		api.EnvVars = []string{EnvAPI}
		api.Usage = "Bulwark API `URL`"
	}
	out := &cli.StringFlag{
		Name:    "output",
		Aliases: []string{"o"},
		Usage:   "output `FORMAT`: table, json or yaml",
	}
	if root {
		out.Value = string(formatTable)
	}
	return append([]cli.Flag{api, out}, credentialFlags(root)...)
}

// withGlobal appends the global flags to a command's own flags, so that they
// may be given after the command name too.
func withGlobal(flags ...cli.Flag) []cli.Flag {
	return append(flags, globalFlags(false)...)
}

// lookupGlobal returns the value of a global flag as given nearest to the
// command (command line after the command, then before it), then the root
// flag's environment variable, then its default.
func lookupGlobal(c *cli.Context, name string) string {
	var root *cli.Context
	for _, cc := range c.Lineage() {
		if cc == nil || cc.Command == nil {
			continue
		}
		root = cc
		if flagSetHere(cc, name) {
			return cc.String(name)
		}
	}
	if root != nil {
		return root.String(name) // the default, possibly from the environment
	}
	return ""
}

// flagSetHere reports whether the flag called name was given to this very
// command (or, at the root, taken from the environment).
func flagSetHere(cc *cli.Context, name string) bool {
	var names []string
	for _, f := range cc.Command.Flags {
		for _, n := range f.Names() {
			if n == name {
				names = f.Names()
			}
		}
	}
	if names == nil {
		return false
	}
	for _, set := range cc.LocalFlagNames() {
		for _, n := range names {
			if set == n {
				return true
			}
		}
	}
	return false
}

// outputFormat returns the validated -o value in effect for c.
func outputFormat(c *cli.Context) (format, error) {
	return parseFormat(lookupGlobal(c, "output"))
}

// session is what a command needs to talk to the server and print.
type session struct {
	ctx  context.Context
	out  io.Writer
	errw io.Writer
	// in is the standard input, for confirmation questions (App.Reader,
	// which urfave/cli sets to os.Stdin unless a test replaced it).
	in     io.Reader
	format format
	api    *client.Client
}

// newSession checks the global options and builds the API client. It sends
// nothing to the server.
func newSession(c *cli.Context) (*session, error) {
	f, err := outputFormat(c)
	if err != nil {
		return nil, err
	}
	base := strings.TrimSpace(lookupGlobal(c, "api"))
	if base == "" {
		base = DefaultAPI
	}
	cl := client.New(base, nil)
	cl.SetUserAgent("bulwarkctl/" + Version)
	if err := applyCredentials(c, cl); err != nil {
		return nil, err
	}
	ctx := c.Context
	if ctx == nil {
		ctx = context.Background()
	}
	in := c.App.Reader
	if in == nil {
		in = os.Stdin
	}
	return &session{ctx: ctx, out: c.App.Writer, errw: c.App.ErrWriter, in: in, format: f, api: cl}, nil
}

// leafFunc is the action of a leaf command; args are its positional
// arguments, without any flags.
type leafFunc func(c *cli.Context, args []string) error

// leaf adapts fn into a command action that also takes flags after the
// positional arguments, as in "vm create web-1 --cpus 2". urfave/cli v2 stops
// parsing flags at the first positional argument and hands the rest over as
// arguments; leaf sets the flags found among them with Context.Set, so that
// they act exactly as if they had been given first. Arguments after a "--"
// that follows the first positional argument stay positional.
func leaf(fn leafFunc) cli.ActionFunc {
	return leafWithCommand(func(c *cli.Context, args, _ []string, _ bool) error {
		return fn(c, args)
	})
}

// commandFunc is the action of a leaf command that runs a command line
// given after "--": args are the positional arguments before the "--",
// command those after it, dash whether there was a "--" at all.
type commandFunc func(c *cli.Context, args, command []string, dash bool) error

// leafWithCommand is leaf for commands that take a command line after
// "--" (`container run NAME [options] -- CMD ARGS...`). Such a command sets
// SkipFlagParsing, so that urfave/cli leaves every argument, flags and
// "--" included, to trailingFlags, which tells the "--" apart wherever
// it is. For other commands, a "--" before the first positional argument
// is consumed by urfave/cli's flag parsing, so it cannot be told apart:
// fn gets every positional argument in args, and no command.
func leafWithCommand(fn commandFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		args, dash, help, err := trailingFlags(c)
		if err != nil && c.Command.SkipFlagParsing && strings.HasPrefix(err.Error(), "flag provided but not defined") {
			err = fmt.Errorf("%v; the command to run and its arguments go after \"--\"", err)
		}
		if err != nil {
			return usageError(c, err, true)
		}
		if help {
			// As urfave/cli prints it for a -h before the arguments
			// (ShowCommandHelp would list the implicit help subcommand).
			cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
			return nil
		}
		if dash < 0 || !c.Command.SkipFlagParsing {
			return fn(c, args, nil, false)
		}
		return fn(c, args[:dash], args[dash:], true)
	}
}

// trailingFlags sets the flags among c's arguments and returns the
// positional ones. If there was a "--", dash is the index in pos of the
// first argument after it, else -1. help reports -h or --help.
func trailingFlags(c *cli.Context) (pos []string, dash int, help bool, err error) {
	in := c.Args().Slice()
	byName := map[string]cli.Flag{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			byName[n] = f
		}
	}
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			return append(pos, in[i+1:]...), len(pos), help, nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name := strings.TrimPrefix(a[1:], "-")
		name, value, hasValue := strings.Cut(name, "=")
		f := byName[name]
		if f == nil {
			return nil, -1, false, fmt.Errorf("flag provided but not defined: %s", a)
		}
		if f == cli.HelpFlag {
			help = true
			continue
		}
		if !hasValue {
			if v, ok := f.(interface{ TakesValue() bool }); ok && !v.TakesValue() {
				value = "true"
			} else if i+1 < len(in) {
				i++
				value = in[i]
			} else {
				return nil, -1, false, fmt.Errorf("flag needs an argument: %s", a)
			}
		}
		if err := c.Set(f.Names()[0], value); err != nil {
			return nil, -1, false, fmt.Errorf("invalid value %q for flag %s: %v", value, a, err)
		}
	}
	return pos, -1, help, nil
}

// usageError formats flag-parsing errors with a pointer to the help.
func usageError(c *cli.Context, err error, _ bool) error {
	return fmt.Errorf("%v (see '%s --help')", err, helpName(c))
}

func helpName(c *cli.Context) string {
	if c.Command != nil && c.Command.HelpName != "" {
		return c.Command.HelpName
	}
	return c.App.Name
}

// unknownCommand is the action of the app and of command groups: without
// arguments it shows the help, otherwise it reports the unknown command.
func unknownCommand(subs []*cli.Command) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			if c.Command == nil || c.Command.HelpName == c.App.Name {
				return cli.ShowAppHelp(c)
			}
			return cli.ShowSubcommandHelp(c)
		}
		name := c.Args().First()
		msg := fmt.Sprintf("unknown command %q for '%s'", name, helpName(c))
		if s := suggest(name, subs); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		return errors.New(msg + fmt.Sprintf(" (see '%s --help')", helpName(c)))
	}
}

// suggest returns the command name closest to typed, if it is close enough.
func suggest(typed string, subs []*cli.Command) string {
	best, bestD := "", 3
	for _, s := range subs {
		for _, n := range s.Names() {
			d := spelling.Distance(typed, n)
			if strings.HasPrefix(n, typed) || strings.HasPrefix(typed, n) {
				d = min(d, 1)
			}
			if d < bestD {
				best, bestD = n, d
			}
		}
	}
	return best
}

// oneName returns the single NAME argument.
func oneName(c *cli.Context, args []string) (string, error) {
	switch len(args) {
	case 0:
		return "", fmt.Errorf("missing NAME (usage: %s)", usageLine(c))
	case 1:
		return args[0], nil
	}
	return "", fmt.Errorf("too many arguments %q: expected only NAME (usage: %s)", args, usageLine(c))
}

// noArgs rejects positional arguments for commands that take none.
func noArgs(c *cli.Context, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("unexpected arguments %q (usage: %s)", args, usageLine(c))
	}
	return nil
}

func usageLine(c *cli.Context) string {
	s := helpName(c) + " [options]"
	if c.Command != nil && c.Command.ArgsUsage != "" {
		s += " " + c.Command.ArgsUsage
	}
	return s
}
