package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/config"
	"github.com/bulwarkhq/bulwark/pki"
)

// etcdAuthTimeout bounds one etcd-auth command's work in etcd.
const etcdAuthTimeout = 30 * time.Second

const etcdAuthHelp = `Turns on etcd's own users and roles so that a host's agent can write only its own
host's keys: one host's agent cannot act as another host. With authentication on, etcd
(running with --client-cert-auth) takes the user of every request from the common name
(CN) of the client certificate, i.e. the NAME it was issued for (bulwarkd cert issue NAME):

  server users  the CN of each server's etcd certificate (etcd.cert_file in server.yaml).
                They get etcd's root role: every key, and managing users as hosts join.
  one per host  named exactly like the host: its agent's certificate (bulwarkd agent
                refuses to start with a certificate named for another host). Its role,
                bulwark-agent-HOST, reads what the agent reconciles from (allocations,
                workloads, volumes, floating IPs, claims, its fence record) and writes only nodes/HOST,
                heartbeats/HOST, status/HOST/*, agenttokens/HOST and the shared claim keys
                locks/* and vipclaims/* (those are per volume and floating IP, not per host).
  root          etcd's administrator, which etcd requires; it has no password.

Any other certificate of the cluster CA (an operator's client certificate, an etcd
member's) then gets nothing from etcd unless it is named as a server user.

These commands read etcd's address and TLS files from /etc/bulwark/server.yaml (or
--config, or the --etcd flags) like bulwarkd token: run them on a server host, as the
bulwark user (sudo -u bulwark ...).

Recipe for the 3-host cluster of docs/security.md:

 1. Give each server an etcd certificate of its own. Until now a host's server and agent
    shared the host's agent certificate; with authentication on, that certificate may
    only do what the host's agent does. On the admin machine:

      for n in 1 2 3; do
        bulwarkd cert issue server-host-$n --kind client --ca-dir bulwark-pki --out bulwark-pki/server-etcd
      done

    On host-N install server-etcd/server-host-N.pem as /etc/bulwark/tls/server-etcd.pem
    (0644) and its key as /etc/bulwark/tls/server-etcd-key.pem (bulwark:bulwark 0600),
    set etcd.cert_file and etcd.key_file in /etc/bulwark/server.yaml to them, then
      sudo -u bulwark bulwarkd config check /etc/bulwark/server.yaml
      systemctl restart bulwark-server
    agent.yaml keeps the host's own certificate (CN host-N).

 2. Once, on host-1 (its server.yaml now names server-host-1's certificate):

      sudo -u bulwark bulwarkd etcd-auth enable --host host-1 --host host-2 --host host-3 \
          --server-user server-host-1 --server-user server-host-2 --server-user server-host-3
      sudo -u bulwark bulwarkd etcd-auth status

 3. Later, for a new host (before its agent first starts) or one that leaves:

      sudo -u bulwark bulwarkd etcd-auth add-host host-4
      sudo -u bulwark bulwarkd etcd-auth remove-host host-4

etcd must run with --client-cert-auth (ETCD_CLIENT_CERT_AUTH=true): without it etcd
takes no user from certificates and, with authentication on, would refuse everyone.
enable refuses to run with a certificate that is not one of the server users, and once
authentication is on it checks that it still acts as one; if not (no --client-cert-auth,
or a proxy in between), it turns authentication off again and says why, so that it
cannot lock the servers out. Running it again is safe: it changes only what differs (a
host's role is reset to exactly the permissions above; other roles of a host's user are
revoked). To turn authentication off, with a server user's certificate:
  etcdctl --cacert CA --cert CERT --key KEY auth disable

It works with etcd 3.4 (Debian 12's 3.4.23) and later. etcd 3.4 does not check a
lease's keys when a host keeps the lease alive or attaches a key to it, so there one
host's agent can delay another host's failover: see docs/security.md.`

// etcdAuthCommand is `bulwarkd etcd-auth`: etcd's users and roles.
func etcdAuthCommand() *cli.Command {
	flags := configFlags(config.KindServer)
	return &cli.Command{
		Name:        "etcd-auth",
		Usage:       "let each host's agent write only its own keys in etcd (etcd users and roles; run on a server host)",
		Description: etcdAuthHelp,
		Subcommands: []*cli.Command{
			{
				Name:  "enable",
				Usage: "create the server users and one user and role per host, then turn etcd's authentication on",
				Description: "Every host whose agent talks to etcd needs a --host: a host left out is refused by etcd\n" +
					"until `bulwarkd etcd-auth add-host` names it. --server-user names the CN of every server's\n" +
					"etcd certificate (default: only the one this command uses). See `bulwarkd etcd-auth --help`.\n\n" +
					"Example:\n" +
					"  bulwarkd etcd-auth enable --host host-1 --host host-2 --host host-3 \\\n" +
					"      --server-user server-host-1 --server-user server-host-2 --server-user server-host-3",
				Flags: append([]cli.Flag{
					&cli.StringSliceFlag{Name: "host", Usage: "a host whose agent may use etcd, named like its agent's certificate (repeat; at least one)"},
					&cli.StringSliceFlag{Name: "server-user", Usage: "the CN of a server's etcd certificate, given etcd's root role (repeat; default: this command's own)"},
				}, flags...),
				Action: etcdAuthEnable,
			},
			{
				Name: "add-host", Usage: "let a new host's agent use etcd, for its own keys only", ArgsUsage: "HOST", Flags: flags,
				Description: "Creates the etcd user HOST (no password: only a certificate named HOST, signed by the\n" +
					"cluster CA, acts as it) and its role bulwark-agent-HOST, or repairs them. Run it before\n" +
					"the host's agent first starts. Works whether authentication is on yet or not.\n\n" +
					"Example:\n  bulwarkd etcd-auth add-host host-4",
				Action: etcdAuthHostAction("add-host", etcdstore.AddHost, func(host string) string {
					return fmt.Sprintf("host %s: etcd user %s with role %s (reads what an agent needs, writes only %s's)", host, host, etcdstore.AgentRole(host), host)
				}),
			},
			{
				Name: "remove-host", Usage: "refuse a host's agent from now on (deletes its etcd user and role)", ArgsUsage: "HOST", Flags: flags,
				Description: "Deletes the etcd user HOST and its role: etcd refuses the host's certificate at once,\n" +
					"also on connections already open. Its heartbeat lease then runs out as if the host were\n" +
					"lost. A server user (root role) is not a host and is refused.\n\n" +
					"Example:\n  bulwarkd etcd-auth remove-host host-4",
				Action: etcdAuthHostAction("remove-host", etcdstore.RemoveHost, func(host string) string {
					return fmt.Sprintf("host %s: etcd user and role %s deleted; etcd now refuses its certificate", host, etcdstore.AgentRole(host))
				}),
			},
			{
				Name: "status", Usage: "show whether etcd's authentication is on, its users and their roles", Flags: flags,
				Action: func(c *cli.Context) error {
					if _, err := oneArg(c, ""); err != nil {
						return ignoreHelp(err)
					}
					return withEtcdAuth(c, func(ctx context.Context, cfg *config.Server, st clusterstore.Store) error {
						cli, err := etcdstore.Client(st)
						if err != nil {
							return err
						}
						s, err := etcdstore.AuthStatus(ctx, cli)
						if err != nil {
							return err
						}
						printAuthState(c, s)
						return nil
					})
				},
			},
		},
	}
}

// oneArg returns the single positional argument (flags may follow it);
// usage "" means none is taken. After a --help that follows the argument
// (and has printed the help) the error is errHelpShown: ignoreHelp it.
func oneArg(c *cli.Context, usage string) (string, error) {
	pos, err := flagsAfterArgs(c)
	if err != nil {
		if errors.Is(err, errHelpShown) {
			return "", err
		}
		return "", cli.Exit(err.Error(), 2)
	}
	switch {
	case usage == "" && len(pos) > 0:
		return "", cli.Exit(fmt.Sprintf("unexpected argument %q", pos[0]), 2)
	case usage != "" && len(pos) != 1:
		return "", cli.Exit("usage: "+usage, 2)
	case usage == "":
		return "", nil
	}
	return pos[0], nil
}

// withEtcdAuth connects to etcd as `bulwarkd server` would (its
// configuration, the same checks, the same dial).
func withEtcdAuth(c *cli.Context, fn func(ctx context.Context, cfg *config.Server, st clusterstore.Store) error) error {
	cfg, err := loadServerConfig(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.Context, cfg.Etcd.DialTimeout+etcdAuthTimeout)
	defer cancel()
	st, err := dialEtcd(ctx, cfg.Etcd)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := fn(ctx, cfg, st); err != nil {
		if etcdstore.IsPermissionDenied(err) {
			return fmt.Errorf("%w\n(etcd refused: %s)", err, whoAmI(cfg.Etcd)+" is not a server user; run this where server.yaml names a server user's certificate")
		}
		return err
	}
	return nil
}

// whoAmI says which etcd user a configuration connects as.
func whoAmI(e config.Etcd) string {
	if e.CertFile == "" {
		return "this command presents no certificate (etcd.cert_file), so it"
	}
	cert, err := pki.ReadCertificate(e.CertFile)
	if err != nil {
		return "the certificate " + e.CertFile
	}
	return fmt.Sprintf("the certificate %s (CN %q)", e.CertFile, cert.Subject.CommonName)
}

func etcdAuthEnable(c *cli.Context) error {
	if _, err := oneArg(c, ""); err != nil {
		return ignoreHelp(err)
	}
	hosts := c.StringSlice("host")
	if len(hosts) == 0 {
		return cli.Exit("name every host whose agent uses etcd with --host (repeat it): etcd refuses an agent without a user.\n"+
			"usage: bulwarkd etcd-auth enable --host host-1 --host host-2 ... [--server-user NAME ...]", 2)
	}
	cfg, err := loadServerConfig(c)
	if err != nil {
		return err
	}
	if cfg.Etcd.CertFile == "" {
		return errors.New("etcd-auth enable: etcd.cert_file is not set: etcd's users are the names of client certificates, " +
			"so the servers (and this command) must present one; set up TLS to etcd first (docs/security.md)")
	}
	cert, err := pki.ReadCertificate(cfg.Etcd.CertFile)
	if err != nil {
		return err
	}
	me := cert.Subject.CommonName
	servers := c.StringSlice("server-user")
	if len(servers) == 0 {
		servers = []string{me}
	}
	switch {
	case slices.Contains(hosts, me):
		return fmt.Errorf("etcd-auth enable: this command connects with %s, named like host %s: a server needs a certificate of its "+
			"own, not its host's (bulwarkd cert issue server-%s --kind client; see bulwarkd etcd-auth --help)", cfg.Etcd.CertFile, me, me)
	case !slices.Contains(servers, me) && me != etcdstore.RootUser:
		return fmt.Errorf("etcd-auth enable: this command connects as %q (the CN of %s), which is not among --server-user %s: "+
			"once authentication is on it could no longer manage etcd; add --server-user %s",
			me, cfg.Etcd.CertFile, strings.Join(servers, ", "), me)
	}
	return withEtcdAuth(c, func(ctx context.Context, cfg *config.Server, st clusterstore.Store) error {
		cli, err := etcdstore.Client(st)
		if err != nil {
			return err
		}
		if err := etcdstore.EnableAuth(ctx, cli, servers, hosts); err != nil {
			return err
		}
		s, err := etcdstore.AuthStatus(ctx, cli)
		if err != nil {
			return err
		}
		printAuthState(c, s)
		fmt.Fprintf(c.App.Writer, "\netcd authentication is on. Only these certificates get anything from etcd now: servers %s; "+
			"each host's agent with the certificate named like the host (%s).\n", strings.Join(servers, ", "), strings.Join(hosts, ", "))
		return nil
	})
}

// printAuthState shows etcd's users and roles.
func printAuthState(c *cli.Context, s etcdstore.AuthState) {
	w := c.App.Writer
	switch {
	case s.Unknown != "":
		fmt.Fprintf(w, "etcd authentication: UNKNOWN: %s\n", s.Unknown)
	case s.Enabled && !s.Probed:
		fmt.Fprintf(w, "etcd authentication: on (auth revision %d)\n", s.Revision)
	case s.Enabled:
		fmt.Fprintf(w, "etcd authentication: on\n")
	default:
		fmt.Fprintf(w, "etcd authentication: OFF: every certificate of the cluster CA may write every key (bulwarkd etcd-auth enable)\n")
	}
	if s.Probed {
		v := "this etcd"
		if s.EtcdVersion != "" {
			v = "etcd " + s.EtcdVersion
		}
		fmt.Fprintf(w, "(%s predates etcd's AuthStatus call, added in 3.5: on or off was learned from how it refuses a login; "+
			"it tells no auth revision)\n", v)
		fmt.Fprintf(w, "(%s does not check a lease's keys when a user keeps the lease alive or attaches a key to it: "+
			"one host's agent can keep another host's heartbeat lease alive; see docs/security.md)\n", v)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLES\tIS")
	for _, u := range s.Users {
		is := "other"
		switch {
		case slices.Contains(u.Roles, etcdstore.RootRole) && u.Name == etcdstore.RootUser:
			is = "etcd's administrator"
		case slices.Contains(u.Roles, etcdstore.RootRole):
			is = "server user: everything"
		case slices.Equal(u.Roles, []string{etcdstore.AgentRole(u.Name)}):
			is = "host " + u.Name + "'s agent"
		}
		roles := strings.Join(u.Roles, ",")
		if roles == "" {
			roles = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, roles, is)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range s.Roles {
		fmt.Fprintf(w, "role %s:\n", r.Name)
		if r.Name == etcdstore.RootRole {
			fmt.Fprintln(w, "  everything (etcd's built-in administrator role)")
		}
		for _, p := range r.Perms {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
}

// checkAgentCertificate refuses an agent whose etcd client certificate is
// named for another host than the one it runs as: with etcd's
// authentication on, etcd would hold it to that other host's keys (or
// refuse it), and without it the agent could act as any host. name is the
// agent's effective host name.
func checkAgentCertificate(cfg *config.Agent, name string) error {
	if cfg.Etcd.CertFile == "" {
		return nil
	}
	cert, err := pki.ReadCertificate(cfg.Etcd.CertFile)
	if err != nil {
		return err // loadAgentConfig has checked it; not expected
	}
	cn := cert.Subject.CommonName
	if cn == name {
		return nil
	}
	var is string
	switch o := cfg.Origin("name"); o.Source {
	case config.FromFlag:
		is = "--name is " + name
	case config.FromEnv:
		is = fmt.Sprintf("$%s is %s", o.Name, name)
	case config.FromFile:
		is = fmt.Sprintf("name is %s (%s)", name, o)
	default:
		is = fmt.Sprintf("this machine's host name is %s (name is not set)", name)
	}
	return &config.Error{Problems: []config.Problem{{Origin: cfg.Origin("etcd.cert_file"), Key: "etcd.cert_file", Msg: fmt.Sprintf(
		"agent certificate is for %s but %s: %s: an agent acts only as the host its certificate names; "+
			"give it %s's certificate (bulwarkd cert issue %s --kind agent) or run it as %s",
		cn, is, cfg.Etcd.CertFile, name, name, cn)}}}
}

// withAuthHint explains a refusal by etcd's authentication at connect.
func withAuthHint(e config.Etcd, err error) error {
	if !etcdstore.IsPermissionDenied(err) || e.CertFile == "" {
		return err
	}
	cert, cerr := pki.ReadCertificate(e.CertFile)
	if cerr != nil {
		return err
	}
	cn := cert.Subject.CommonName
	return fmt.Errorf("%w (etcd's authentication is on and gives the user %q, the CN of %s, no read access: "+
		"for a host's agent run `bulwarkd etcd-auth add-host %s` on a server host; a server needs a server user's certificate)",
		err, cn, e.CertFile, cn)
}

// etcdAuthHostAction runs `bulwarkd etcd-auth <cmd> HOST`: change for HOST
// through the server's etcd connection, then say done(HOST).
func etcdAuthHostAction(cmd string, change func(context.Context, *clientv3.Client, string) error, done func(string) string) cli.ActionFunc {
	return func(c *cli.Context) error {
		host, err := oneArg(c, "bulwarkd etcd-auth "+cmd+" HOST")
		if err != nil {
			return ignoreHelp(err)
		}
		return withEtcdAuth(c, func(ctx context.Context, _ *config.Server, st clusterstore.Store) error {
			cli, err := etcdstore.Client(st)
			if err != nil {
				return err
			}
			if err := change(ctx, cli, host); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, done(host))
			return nil
		})
	}
}
