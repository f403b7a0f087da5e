package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/config"
	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/fencing/redfish"
	"github.com/bulwarkhq/bulwark/pki"
	"github.com/bulwarkhq/bulwark/server"
)

// exitConfig is the exit status for a configuration that cannot work
// (EX_CONFIG from sysexits.h). The systemd units do not restart on it:
// restarting does not fix a config file.
const exitConfig = 78

// configFlags are a daemon command's flags: --config and one flag per
// setting. The flags have no EnvVars: package config reads the environment
// itself, so that a flag given on the command line is told from a
// variable and precedence (flag > env > file > default) holds.
func configFlags(kind config.Kind) []cli.Flag {
	flags := []cli.Flag{&cli.StringFlag{Name: "config", Usage: fmt.Sprintf(
		"YAML config file (default %s, where a missing file means defaults; a file named here must exist)", kind.DefaultPath())}}
	for _, s := range config.Settings(kind) {
		if s.FileOnly {
			continue // fencing.hosts: no flag
		}
		usage := s.Usage
		if s.Default != "" && !strings.Contains(usage, "default") && !s.Bool {
			usage += " (default " + s.Default + ")"
		}
		usage += fmt.Sprintf(" [file: %s, env: %s]", s.Key, s.Env)
		switch {
		case s.Bool:
			flags = append(flags, &cli.BoolFlag{Name: s.Flag, Usage: usage, Value: s.Default == "true"})
		case s.Repeatable:
			flags = append(flags, &cli.StringSliceFlag{Name: s.Flag, Usage: usage})
		default:
			flags = append(flags, &cli.StringFlag{Name: s.Flag, Usage: usage})
		}
	}
	return flags
}

// givenFlags collects the setting flags given on the command line.
func givenFlags(c *cli.Context, kind config.Kind) map[string][]string {
	m := map[string][]string{}
	for _, s := range config.Settings(kind) {
		if s.FileOnly || !c.IsSet(s.Flag) {
			continue
		}
		switch {
		case s.Bool:
			m[s.Flag] = []string{strconv.FormatBool(c.Bool(s.Flag))}
		case s.Repeatable:
			m[s.Flag] = c.StringSlice(s.Flag)
		default:
			m[s.Flag] = []string{c.String(s.Flag)}
		}
	}
	// `bulwarkd --log-level debug server` sets the app-wide flag, which
	// also reads $BULWARK_LOG_LEVEL on its own. It counts as a flag unless
	// its value is just the variable's.
	// (IsSet and String on the parent context look up its ancestors too.)
	if lineage := c.Lineage(); len(lineage) > 1 {
		if _, ok := m["log-level"]; !ok && lineage[1].IsSet("log-level") {
			v := lineage[1].String("log-level")
			if env, ok := os.LookupEnv("BULWARK_LOG_LEVEL"); !ok || env != v {
				m["log-level"] = []string{v}
			}
		}
	}
	return m
}

func configInputs(c *cli.Context, kind config.Kind) config.Inputs {
	return config.Inputs{Path: c.String("config"), Env: os.LookupEnv, Flags: givenFlags(c, kind)}
}

// loadServerConfig builds `bulwarkd server`'s configuration and checks the
// files it names; every problem is reported at once, each with its file
// and line (or variable, or flag).
func loadServerConfig(c *cli.Context) (*config.Server, error) {
	cfg, err := config.LoadServer(configInputs(c, config.KindServer))
	if err == nil {
		err = cfg.CheckFiles()
	}
	if err == nil {
		err = checkEtcdTLS(cfg.Etcd, cfg.Origin)
	}
	if err == nil {
		_, err = agentClientTLS(cfg)
	}
	if err != nil {
		return nil, configExit(config.KindServer, err)
	}
	return cfg, nil
}

func loadAgentConfig(c *cli.Context) (*config.Agent, error) {
	cfg, err := config.LoadAgent(configInputs(c, config.KindAgent))
	if err == nil {
		err = cfg.CheckFiles()
	}
	if err == nil {
		err = checkEtcdTLS(cfg.Etcd, cfg.Origin)
	}
	if err == nil {
		_, err = agentAPITLS(cfg)
	}
	if err != nil {
		return nil, configExit(config.KindAgent, err)
	}
	return cfg, nil
}

// agentAPITLS is the TLS configuration the agent's API serves with: the
// certificate of http_tls, else the etcd client certificate (the host's
// agent certificate, which has serverAuth); nil for plain HTTP (no API,
// http_insecure, or no certificate on a loopback address: package config
// refuses the rest). The certificate must match its key, be valid now,
// allow serverAuth and name the address of http_listen, which is what the
// agent registers and the servers check it against; problems name the
// setting.
func agentAPITLS(cfg *config.Agent) (*tls.Config, error) {
	certFile, keyFile, section := cfg.HTTPCertFiles()
	if certFile == "" {
		return nil, nil
	}
	problem := func(key, msg string) error {
		return &config.Error{Problems: []config.Problem{{Origin: cfg.Origin(key), Key: key, Msg: msg}}}
	}
	c, err := pki.LoadServerTLS(certFile, keyFile, "", false)
	if err != nil {
		var fe *pki.FileError
		if !errors.As(err, &fe) {
			return nil, err
		}
		msg := fe.Path + ": " + fe.Err.Error()
		if section == "etcd" {
			msg += " (the agent's API at http_listen serves HTTPS with the etcd client certificate, as http_tls is not set)"
		}
		return nil, problem(section+"."+fe.Setting, msg)
	}
	host, _, _ := net.SplitHostPort(cfg.HTTPListen)
	ip := net.ParseIP(host)
	leaf := c.Certificates[0].Leaf
	switch {
	case host == "" || ip != nil && ip.IsUnspecified():
		return nil, problem("http_listen", fmt.Sprintf("%s: the agent registers the address it listens on, and the servers check "+
			"its certificate against it: give this host's cluster address (one its certificate names), not every address", cfg.HTTPListen))
	case ip != nil:
		if err := leaf.VerifyHostname(host); err != nil {
			return nil, problem("http_listen", fmt.Sprintf("the servers will connect to %s and refuse the certificate in %s (%s.cert_file), "+
				"which is valid for %s only: issue it again with --host %s (bulwarkd cert issue %s --kind agent --host ... --host %s --force)",
				host, certFile, section, strings.Join(certHosts(leaf), ", "), host, leaf.Subject.CommonName, host))
		}
	}
	return c, nil
}

// certHosts lists a certificate's DNS names and IP addresses.
func certHosts(cert *x509.Certificate) []string {
	hosts := append([]string{}, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	if len(hosts) == 0 {
		hosts = []string{"no host"}
	}
	return hosts
}

// agentClientTLS is how the server verifies the agents' API certificates:
// against agents.ca_file, else etcd.ca_file, else the system's CAs.
func agentClientTLS(cfg *config.Server) (*tls.Config, error) {
	caFile, key := cfg.AgentCAFile()
	c, err := pki.LoadClientTLS(caFile, "", "", "")
	var fe *pki.FileError
	if err != nil && errors.As(err, &fe) {
		return nil, &config.Error{Problems: []config.Problem{{Origin: cfg.Origin(key), Key: key, Msg: fe.Path + ": " + fe.Err.Error()}}}
	}
	return c, err
}

// etcdTLS is the TLS configuration for etcd from the etcd.ca_file,
// cert_file and key_file settings; nil when none is set (plain http).
// ServerName stays empty: the etcd client checks each endpoint's host
// against the certificate of the member it reaches.
func etcdTLS(e config.Etcd) (*tls.Config, error) {
	if !e.TLSEnabled() {
		return nil, nil
	}
	return pki.LoadClientTLS(e.CAFile, e.CertFile, e.KeyFile, "")
}

// checkEtcdTLS builds the etcd TLS configuration once at start, so that
// an expired certificate, a key that is not the certificate's or a
// certificate that cannot authenticate a client stops the daemon with the
// place of the setting that names the file, rather than as a timeout when
// etcd refuses the handshake.
func checkEtcdTLS(e config.Etcd, origin func(string) config.Origin) error {
	_, err := etcdTLS(e)
	var fe *pki.FileError
	if err == nil || !errors.As(err, &fe) {
		return err
	}
	key := "etcd." + fe.Setting
	return &config.Error{Problems: []config.Problem{{Origin: origin(key), Key: key, Msg: fe.Path + ": " + fe.Err.Error()}}}
}

func configExit(kind config.Kind, err error) error {
	var lines []string
	for _, l := range strings.Split(err.Error(), "\n") {
		lines = append(lines, "  "+l)
	}
	return cli.Exit(fmt.Sprintf("error: bulwarkd %s: invalid configuration:\n%s", kind, strings.Join(lines, "\n")), exitConfig)
}

// newLogger logs text to standard error (the journal under systemd).
func newLogger(level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // checked by package config
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

// hostName is the default server and host name: this machine's host name,
// first label, lowercased.
func hostName() string {
	h, _ := os.Hostname()
	return strings.ToLower(strings.Split(h, ".")[0])
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "check configuration files",
		Subcommands: []*cli.Command{{
			Name:      "check",
			Usage:     "validate config files without starting anything",
			ArgsUsage: "FILE...",
			Description: "Reads each file as `bulwarkd server` or `bulwarkd agent` would at start and reports every\n" +
				"problem with its file, line and reason: unknown or duplicate keys, values of the wrong\n" +
				"shape, invalid values, settings that need each other. It then checks that the files the\n" +
				"config names (etcd TLS certificates and key; an agent API's certificate and key; the\n" +
				"servers' CA for the agents; the fence devices' password and CA files, which must not be\n" +
				"accessible to group or others) exist and parse, that the etcd client certificate matches\n" +
				"its key, has not expired and may authenticate a client, and that the certificate an\n" +
				"agent's API serves (http_tls, else etcd.cert_file) may authenticate a server and names\n" +
				"the address of http_listen, as\n" +
				"the user running the check; run it as the daemon's user to be sure (bulwark for the\n" +
				"server, root for the agent). Environment variables and flags are not applied; a fence\n" +
				"device's password_env that is not set in the check's own environment is a warning.\n\n" +
				"Whether a file is a server or an agent config is read from its top-level `kind:` key\n" +
				"(kind: server or kind: agent; the packaged files have one), or given with --kind; if both\n" +
				"are present they must agree.\n\n" +
				"Exit status 0 when every file is valid, 1 otherwise.\n\n" +
				"Example:\n  bulwarkd config check /etc/bulwark/server.yaml /etc/bulwark/agent.yaml\n" +
				"  sudo -u bulwark bulwarkd config check /etc/bulwark/server.yaml",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "kind", Usage: "server or agent (default: the file's top-level kind: key)"},
				&cli.BoolFlag{Name: "skip-files", Usage: "do not check the files the config names (TLS files, fence device password and CA files)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return errors.New("config check: name at least one file")
				}
				var kind config.Kind
				if c.IsSet("kind") {
					k, err := config.ParseKind(c.String("kind"))
					if err != nil {
						return fmt.Errorf("--kind: %w", err)
					}
					kind = k
				}
				failed := 0
				for _, path := range c.Args().Slice() {
					cfg, err := config.CheckFile(path, kind)
					if err == nil && !c.Bool("skip-files") {
						err = cfg.CheckFiles()
					}
					if err == nil && !c.Bool("skip-files") {
						switch cfg := cfg.(type) {
						case *config.Server:
							err = checkEtcdTLS(cfg.Etcd, cfg.Origin)
							if err == nil {
								_, err = agentClientTLS(cfg)
							}
						case *config.Agent:
							err = checkEtcdTLS(cfg.Etcd, cfg.Origin)
							if err == nil {
								_, err = agentAPITLS(cfg)
							}
						}
					}
					if err != nil {
						fmt.Fprintln(c.App.ErrWriter, err)
						failed++
						continue
					}
					fmt.Fprintf(c.App.Writer, "%s: ok (%s config)\n", path, cfg.Kind())
					for _, w := range configWarnings(cfg, !c.Bool("skip-files")) {
						fmt.Fprintf(c.App.Writer, "%s: warning: %s\n", path, w)
					}
				}
				if failed > 0 {
					return fmt.Errorf("config check: %d of %d files have problems", failed, c.NArg())
				}
				return nil
			},
		}},
	}
}

// configWarnings are the settings that are valid but not in effect, or
// not safe; with files, also the fence devices' password variables missing
// from this environment.
func configWarnings(cfg config.Config, files bool) []string {
	var w []string
	switch c := cfg.(type) {
	case *config.Server:
		for _, d := range c.Fencing.Devices() {
			if d.Insecure {
				w = append(w, fmt.Sprintf("%s: %s: the BMC's TLS certificate is not verified: whoever can answer for %s "+
					"gets the BMC password; prefer ca_file", lineOf(c.Origin(d.Key("insecure"))), d.Key("insecure"), d.URL))
			}
			if files && d.PasswordEnv != "" && os.Getenv(d.PasswordEnv) == "" {
				w = append(w, fmt.Sprintf("%s: %s: $%s is not set in this environment; the server needs it in its own "+
					"(e.g. EnvironmentFile= in a drop-in for bulwark-server.service) and refuses to start without it",
					lineOf(c.Origin(d.Key("password_env"))), d.Key("password_env"), d.PasswordEnv))
			}
		}
	case *config.Agent:
		//lint:ignore SA1019 reading the deprecated section is how its users are warned
		if c.BMC != (config.BMC{}) {
			w = append(w, bmcDeprecated)
		}
	}
	return w
}

// bmcDeprecated is the warning about the agent's old bmc: section.
const bmcDeprecated = "bmc is deprecated and ignored: fence devices are configured on the servers, under fencing.hosts in " +
	"server.yaml (the leader fences, so the BMC password belongs where it runs); move these values there, then delete " +
	"the bmc: section and its password file from this host (docs/install.md, \"Fencing\")"

func lineOf(o config.Origin) string {
	if o.Source == config.FromFile && o.Line > 0 {
		return fmt.Sprintf("line %d", o.Line)
	}
	return o.String()
}

// fencingConfig builds the leader's fencing from the server's config: each
// configured device becomes a Redfish device, constructed once, here (which
// reads its password once: a missing variable or unreadable file stops
// the daemon now, with the device's place in the file, rather than at the
// first failure). Neither the password nor the redfish.Config is logged.
func fencingConfig(cfg *config.Server, log *slog.Logger) (server.FencingConfig, error) {
	f := cfg.Fencing
	devices := map[string][]fencing.Device{}
	var ps []config.Problem
	for _, d := range f.Devices() {
		if d.PasswordEnv != "" && os.Getenv(d.PasswordEnv) == "" {
			key := d.Key("password_env")
			ps = append(ps, config.Problem{Origin: cfg.Origin(key), Key: key, Msg: fmt.Sprintf(
				"$%s is empty or not set in the server's environment (set it with EnvironmentFile= in a drop-in for bulwark-server.service)", d.PasswordEnv)})
			continue
		}
		dev, err := redfish.New(redfish.Config{
			Name: d.Name, Endpoint: d.URL, Username: d.Username,
			PasswordFile: d.PasswordFile, PasswordEnv: d.PasswordEnv,
			CAFile: d.CAFile, Insecure: d.Insecure, SystemID: d.SystemID, Auth: redfish.AuthMode(d.Auth),
			Timeout: f.DeviceTimeout,
			Log:     log.With("host", d.Host, "level", d.Level),
		})
		if err != nil {
			key := d.Key("")
			ps = append(ps, config.Problem{Origin: cfg.Origin(key), Key: key, Msg: err.Error()})
			continue
		}
		devices[d.Host] = append(devices[d.Host], dev)
	}
	if len(ps) > 0 {
		return server.FencingConfig{}, &config.Error{Problems: ps}
	}
	return server.FencingConfig{
		Devices:       func(host string) []fencing.Device { return slices.Clone(devices[host]) },
		DeviceTimeout: f.DeviceTimeout,
		RetryInterval: f.RetryInterval,
		CheckInterval: f.CheckInterval,
		SuspectGrace:  f.SuspectGrace,
	}, nil
}
