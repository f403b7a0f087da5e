package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/config"
)

// serverTLS loads the API's certificate, if one is configured.
func serverTLS(cfg *config.Server) (*tls.Config, error) {
	if cfg.TLSCertFile == "" && cfg.TLSKeyFile == "" {
		return nil, nil
	}
	if cfg.TLSCertFile == "" || cfg.TLSKeyFile == "" {
		return nil, errors.New("tls.cert_file and tls.key_file go together: set both or neither")
	}
	if st, err := os.Stat(cfg.TLSKeyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("tls.key_file %s: mode %04o lets others read the key; chmod 600 it", cfg.TLSKeyFile, st.Mode().Perm())
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func tokenCommand() *cli.Command {
	flags := configFlags(config.KindServer)
	return &cli.Command{
		Name:  "token",
		Usage: "create, list and revoke API tokens (run on a server host: talks to etcd directly)",
		Description: "Every API request needs a bearer token with a role: viewer (reads: lists, show, events,\n" +
			"explain, whatif, logs, the dashboard) or admin (also changes: workloads, volumes, floating\n" +
			"IPs, settings, fencing). Tokens are stored in etcd as SHA-256 hashes; the token itself is\n" +
			"printed once, by create. These commands read etcd's address (and TLS files) from\n" +
			"/etc/bulwark/server.yaml like the server does, so run them where the server runs.\n\n" +
			"Examples:\n" +
			"  bulwarkd token create alice --role admin\n" +
			"  bulwarkd token create grafana --role viewer --expires 720h\n" +
			"  bulwarkd token list\n" +
			"  bulwarkd token revoke grafana\n\n" +
			"Give a token to bulwarkctl with --token, BULWARK_TOKEN, or a file (--token-file,\n" +
			"BULWARK_TOKEN_FILE, default ~/.config/bulwark/token).",
		Subcommands: []*cli.Command{
			{
				Name: "create", Usage: "create a token and print it (once)", ArgsUsage: "NAME",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "role", Usage: "viewer (read) or admin (read and change); required"},
					&cli.DurationFlag{Name: "expires", Usage: "how long the token is valid, e.g. 720h; 0: never"},
				}, flags...),
				Action: func(c *cli.Context) error {
					args, err := trailingFlags(c)
					if err != nil {
						return cli.Exit(err.Error(), 2)
					}
					if len(args) != 1 {
						return cli.Exit("usage: bulwarkd token create NAME --role viewer|admin", 2)
					}
					if c.String("role") == "" {
						return cli.Exit("--role is required: viewer (read) or admin (read and change)", 2)
					}
					role, err := api.ParseRole(c.String("role"))
					if err != nil {
						return cli.Exit(err.Error(), 2)
					}
					if c.Duration("expires") < 0 {
						return cli.Exit("--expires must not be negative", 2)
					}
					return withStore(c, func(st clusterstore.Store) error {
						tok, rec, err := clusterstore.CreateToken(c.Context, st, args[0], role, c.Duration("expires"), time.Now())
						if err != nil {
							return err
						}
						fmt.Fprintln(c.App.Writer, tok)
						expires := "never"
						if !rec.ExpiresAt.IsZero() {
							expires = rec.ExpiresAt.Format(time.RFC3339)
						}
						fmt.Fprintf(c.App.ErrWriter, "token %s (id %s, role %s, expires %s) created; it is shown only this once\n", rec.Name, rec.ID, rec.Role, expires)
						return nil
					})
				},
			},
			{
				Name: "list", Usage: "list tokens (names, roles, expiry; never the tokens)", Flags: flags,
				Action: func(c *cli.Context) error {
					return withStore(c, func(st clusterstore.Store) error {
						toks, err := clusterstore.ListTokens(c.Context, st)
						if err != nil {
							return err
						}
						tw := tabwriter.NewWriter(c.App.Writer, 0, 8, 3, ' ', 0)
						fmt.Fprintln(tw, "NAME\tID\tROLE\tCREATED\tEXPIRES")
						for _, t := range toks {
							exp := "never"
							if !t.ExpiresAt.IsZero() {
								exp = t.ExpiresAt.Format(time.RFC3339)
								if t.Expired(time.Now()) {
									exp += " (expired)"
								}
							}
							fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, t.ID, t.Role, t.CreatedAt.Format(time.RFC3339), exp)
						}
						return tw.Flush()
					})
				},
			},
			{
				Name: "revoke", Usage: "revoke a token by name or id (servers stop accepting it within 5 s)", ArgsUsage: "NAME|ID", Flags: flags,
				Action: func(c *cli.Context) error {
					args, err := trailingFlags(c)
					if err != nil {
						return cli.Exit(err.Error(), 2)
					}
					if len(args) != 1 {
						return cli.Exit("usage: bulwarkd token revoke NAME|ID", 2)
					}
					return withStore(c, func(st clusterstore.Store) error {
						t, err := clusterstore.RevokeToken(c.Context, st, args[0])
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.ErrWriter, "token %s (id %s) revoked\n", t.Name, t.ID)
						return nil
					})
				},
			},
		},
	}
}

// withStore connects to the etcd the server configuration names.
func withStore(c *cli.Context, fn func(clusterstore.Store) error) error {
	cfg, err := loadServerConfig(c)
	if err != nil {
		return err
	}
	st, err := dialEtcd(c.Context, cfg.Etcd)
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}

// trailingFlags lets flags follow the positional arguments, as in
// "bulwarkd token create alice --role admin" (urfave/cli stops parsing
// flags at the first argument). It returns the positional arguments.
func trailingFlags(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		var flag cli.Flag
		for _, f := range c.Command.Flags {
			for _, n := range f.Names() {
				if n == name {
					flag = f
				}
			}
		}
		if flag == nil {
			return nil, fmt.Errorf("unknown flag %s", a)
		}
		if _, isBool := flag.(*cli.BoolFlag); isBool && !hasVal {
			val, hasVal = "true", true
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, fmt.Errorf("flag %s needs a value", a)
			}
			i++
			val = args[i]
		}
		if err := c.Set(name, val); err != nil {
			return nil, fmt.Errorf("flag %s: %w", a, err)
		}
	}
	return pos, nil
}
