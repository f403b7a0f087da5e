package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/pki"
)

// caCommand is `bulwarkd ca init`: the cluster's certificate authority.
func caCommand() *cli.Command {
	return &cli.Command{
		Name:  "ca",
		Usage: "make the cluster's certificate authority (see also: bulwarkd cert issue)",
		Subcommands: []*cli.Command{{
			Name:  "init",
			Usage: "create a new cluster CA in a directory",
			Description: "Creates a certificate authority for one cluster: a new ECDSA P-256 key and a\n" +
				"self-signed CA certificate valid for 10 years, named \"Bulwark cluster CA\" and a random\n" +
				"suffix. Two files appear in --dir (created 0700 if missing):\n\n" +
				"  ca.pem       the CA certificate. Every host gets a copy: etcd checks client\n" +
				"               certificates against it (/etc/etcd/pki/ca.pem) and the bulwarkd\n" +
				"               daemons check etcd's certificate against it (/etc/bulwark/tls/etcd-ca.pem,\n" +
				"               named by etcd.ca_file in server.yaml and agent.yaml).\n" +
				"  ca-key.pem   the CA's private key, mode 0600. It signs every certificate of the\n" +
				"               cluster: keep it on this (admin) machine only, never on a cluster host,\n" +
				"               and back it up somewhere safe.\n\n" +
				"An existing CA in --dir is not replaced unless --force is given: a new CA means every\n" +
				"certificate the old one signed stops being trusted.\n\n" +
				"Next, issue a certificate for each etcd member, server, agent and operator with\n" +
				"`bulwarkd cert issue` (docs/security.md, \"Certificates in five commands\").\n\n" +
				"Example:\n" +
				"  bulwarkd ca init --dir ./bulwark-pki\n" +
				"  bulwarkd cert issue host-1 --kind agent --ca-dir ./bulwark-pki --out ./bulwark-pki/agent \\\n" +
				"      --host host-1 --host 10.0.0.11",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Usage: "directory for ca.pem and ca-key.pem (required)"},
				&cli.BoolFlag{Name: "force", Usage: "replace an existing CA in --dir (every certificate it signed stops being trusted)"},
			},
			Action: caInit,
		}},
	}
}

func caInit(c *cli.Context) error {
	pos, err := flagsAfterArgs(c)
	if err != nil {
		return ignoreHelp(err)
	}
	if len(pos) > 0 {
		return fmt.Errorf("ca init takes no arguments (got %q): give the directory with --dir", strings.Join(pos, " "))
	}
	dir := c.String("dir")
	if dir == "" {
		return errors.New("ca init: --dir is required: the directory for ca.pem and ca-key.pem, e.g. --dir ./bulwark-pki")
	}
	certPath, keyPath, err := pki.InitCA(dir, c.Bool("force"))
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w; pass --force to replace it", err)
	}
	if err != nil {
		return err
	}
	ca, err := pki.ReadCertificate(certPath)
	if err != nil {
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "Created %q, valid until %s:\n", ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(w, "  %s  CA certificate: copy it to every host (etcd's ca.pem, Bulwark's etcd-ca.pem)\n", certPath)
	fmt.Fprintf(w, "  %s  CA private key (0600): keep it on this machine only\n", keyPath)
	fmt.Fprintf(w, "Next, issue certificates, e.g. for host-1's etcd member and agent:\n")
	fmt.Fprintf(w, "  bulwarkd cert issue host-1 --kind etcd --ca-dir %s --out %s --host host-1 --host 10.0.0.11 --host 127.0.0.1\n",
		shellQuote(dir), shellQuote(filepath.Join(dir, "etcd")))
	fmt.Fprintf(w, "  bulwarkd cert issue host-1 --kind agent --ca-dir %s --out %s --host host-1 --host 10.0.0.11\n",
		shellQuote(dir), shellQuote(filepath.Join(dir, "agent")))
	fmt.Fprintf(w, "See docs/security.md.\n")
	return nil
}

// certCommand is `bulwarkd cert issue`.
func certCommand() *cli.Command {
	return &cli.Command{
		Name:  "cert",
		Usage: "issue certificates signed by the cluster CA (see also: bulwarkd ca init)",
		Subcommands: []*cli.Command{{
			Name:      "issue",
			Usage:     "issue a certificate for an etcd member, a server, an agent or an operator",
			ArgsUsage: "NAME",
			Description: "Makes a new ECDSA P-256 key and a certificate for it, signed by the CA in --ca-dir\n" +
				"(from `bulwarkd ca init`), and writes two files into --out (default: the CA directory):\n\n" +
				"  NAME.pem       the certificate (0644)\n" +
				"  NAME-key.pem   its private key (0600)\n\n" +
				"NAME is a DNS label: the host's name for etcd, server and agent certificates, a\n" +
				"person's or tool's name for client ones. It becomes the certificate's common name and\n" +
				"the kind its organizational unit. Use one --out directory per kind (as below) so that\n" +
				"host-1's etcd, server and agent certificates do not collide.\n\n" +
				"Kinds, and where their files go on each host (the paths docs/install.md uses):\n\n" +
				"  etcd    an etcd member: serves clients and peers, and is a client of its peers.\n" +
				"          --host: the member's host name and cluster IP, plus 127.0.0.1 and localhost\n" +
				"          if local tools use https://127.0.0.1:2379.\n" +
				"          -> /etc/etcd/pki/HOST.pem, HOST-key.pem (root:etcd 0640) and ca.pem, named by\n" +
				"             ETCD_CERT_FILE, ETCD_KEY_FILE, ETCD_TRUSTED_CA_FILE and the ETCD_PEER_* three.\n" +
				"  agent   a host's agent credential: the client certificate that bulwarkd agent presents\n" +
				"          to etcd, and the certificate its own API (http_listen) serves HTTPS with. NAME is\n" +
				"          the host's name: the agent runs only as the host its certificate names. --host:\n" +
				"          the host name and cluster IP (the address of http_listen).\n" +
				"          -> /etc/bulwark/tls/bulwark.pem, bulwark-key.pem (root 0600: only the agent\n" +
				"             reads it) and etcd-ca.pem (the CA's ca.pem), named by\n" +
				"             etcd.cert_file, etcd.key_file and etcd.ca_file in agent.yaml (server.yaml's\n" +
				"             etcd.ca_file names the same etcd-ca.pem).\n" +
				"  server  a bulwarkd server's HTTPS API. --host: every name and IP clients use for it.\n" +
				"          -> /etc/bulwark/tls/server.pem and server-key.pem (bulwark:bulwark 0600).\n" +
				"  client  an operator or a tool (etcdctl --cert/--key, scripts); no --host. Stays on the\n" +
				"          operator's machine. Also each server's own etcd certificate, named\n" +
				"          server-HOST (e.g. server-host-1): bulwarkd server presents it to etcd, not the\n" +
				"          host's agent certificate, which once `bulwarkd etcd-auth enable` is on may only\n" +
				"          do what that host's agent does (see `bulwarkd etcd-auth --help`).\n" +
				"          -> /etc/bulwark/tls/server-etcd.pem and server-etcd-key.pem (bulwark:bulwark\n" +
				"             0600), named by etcd.cert_file and etcd.key_file in server.yaml.\n\n" +
				"The certificate is valid for --days (default 825) and never beyond the CA. A\n" +
				"certificate of the same name in --out is replaced only with --force: to renew, issue it\n" +
				"again with --force, copy the two files and restart the daemon that uses them. Check a\n" +
				"host's config afterwards with `bulwarkd config check`.\n\n" +
				"Example (host-1 of the cluster in docs/install.md):\n" +
				"  bulwarkd cert issue host-1 --kind etcd --ca-dir ./bulwark-pki --out ./bulwark-pki/etcd \\\n" +
				"      --host host-1 --host 10.0.0.11 --host localhost --host 127.0.0.1\n" +
				"  bulwarkd cert issue host-1 --kind agent --ca-dir ./bulwark-pki --out ./bulwark-pki/agent \\\n" +
				"      --host host-1 --host 10.0.0.11\n" +
				"  bulwarkd cert issue server-host-1 --kind client --ca-dir ./bulwark-pki --out ./bulwark-pki/server-etcd\n" +
				"  bulwarkd cert issue host-1 --kind server --ca-dir ./bulwark-pki --out ./bulwark-pki/server \\\n" +
				"      --host host-1 --host 10.0.0.11\n" +
				"  bulwarkd cert issue alice --kind client --ca-dir ./bulwark-pki --out ./bulwark-pki/client",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "kind", Usage: "etcd, server, agent or client (required)"},
				&cli.StringFlag{Name: "ca-dir", Usage: "directory holding ca.pem and ca-key.pem (required)"},
				&cli.StringSliceFlag{Name: "host", Usage: "DNS name or IP address clients use to reach the holder (repeat; not for client certificates)"},
				&cli.IntFlag{Name: "days", Value: pki.DefaultDays, Usage: "days the certificate is valid"},
				&cli.StringFlag{Name: "out", Usage: "directory for NAME.pem and NAME-key.pem (default: --ca-dir)"},
				&cli.BoolFlag{Name: "force", Usage: "replace existing NAME.pem and NAME-key.pem (renewal)"},
			},
			Action: certIssue,
		}},
	}
}

func certIssue(c *cli.Context) error {
	pos, err := flagsAfterArgs(c)
	if err != nil {
		return ignoreHelp(err)
	}
	switch {
	case len(pos) == 0:
		return errors.New("cert issue: name the certificate, e.g. `bulwarkd cert issue host-1 --kind agent ...`")
	case len(pos) > 1:
		return fmt.Errorf("cert issue: one name only (got %q); give several hosts as --host H --host H2", strings.Join(pos, " "))
	case c.String("kind") == "":
		return fmt.Errorf("cert issue: --kind is required: %s", strings.Join(pki.Kinds(), ", "))
	case c.String("ca-dir") == "":
		return errors.New("cert issue: --ca-dir is required: the directory of `bulwarkd ca init`")
	case c.Int("days") <= 0:
		return fmt.Errorf("cert issue: --days %d: give a positive number of days", c.Int("days"))
	}
	certPath, keyPath, err := pki.Issue(pki.IssueRequest{
		CADir:  c.String("ca-dir"),
		Name:   pos[0],
		Kind:   c.String("kind"),
		Hosts:  c.StringSlice("host"),
		Days:   c.Int("days"),
		OutDir: c.String("out"),
		Force:  c.Bool("force"),
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w; pass --force to replace it (renewal)", err)
	}
	if err != nil {
		return err
	}
	cert, err := pki.ReadCertificate(certPath)
	if err != nil {
		return err
	}
	w := c.App.Writer
	name, kind := pki.Identity(cert)
	article := "a"
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		article = "an"
	}
	fmt.Fprintf(w, "Issued %s %s certificate for %q, signed by %q, valid until %s:\n", article, kind, name,
		cert.Issuer.CommonName, cert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(w, "  %s      certificate\n", certPath)
	fmt.Fprintf(w, "  %s  private key (0600)\n", keyPath)
	var hosts []string
	hosts = append(hosts, cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	if len(hosts) > 0 {
		fmt.Fprintf(w, "  valid for: %s\n", strings.Join(hosts, ", "))
	}
	printPlacement(w, cert, certPath, keyPath, filepath.Join(c.String("ca-dir"), pki.CACertFile))
	return nil
}

// printPlacement says where the files of a certificate go: copied to
// the host (the certificate's first host, or its name), then installed
// where docs/install.md and the example configs expect them.
func printPlacement(w io.Writer, cert *x509.Certificate, certPath, keyPath, caFile string) {
	name, kind := pki.Identity(cert)
	host := name
	switch {
	case len(cert.DNSNames) > 0:
		host = cert.DNSNames[0]
	case len(cert.IPAddresses) > 0:
		host = cert.IPAddresses[0].String()
	}
	q := shellQuote
	ca, crt, key := filepath.Base(caFile), filepath.Base(certPath), filepath.Base(keyPath)
	copyThere := func() {
		fmt.Fprintf(w, "Next, copy the files to %s:\n", host)
		fmt.Fprintf(w, "    scp %s %s %s root@%s:\n", q(caFile), q(certPath), q(keyPath), host)
		fmt.Fprintf(w, "  and install them there, as root:\n")
	}
	switch kind {
	case pki.KindEtcd:
		copyThere()
		fmt.Fprintf(w, "    install -D -m 0644 %s /etc/etcd/pki/ca.pem\n", ca)
		fmt.Fprintf(w, "    install -D -m 0644 %s /etc/etcd/pki/%s\n", crt, crt)
		fmt.Fprintf(w, "    install -D -m 0640 -o root -g etcd %s /etc/etcd/pki/%s\n", key, key)
		fmt.Fprintf(w, "    rm %s %s %s\n", ca, crt, key)
		fmt.Fprintf(w, "  then name them in /etc/default/etcd: ETCD_CERT_FILE, ETCD_KEY_FILE, ETCD_TRUSTED_CA_FILE,\n")
		fmt.Fprintf(w, "  ETCD_CLIENT_CERT_AUTH=true, and the same four for ETCD_PEER_* (docs/install.md, 3.2).\n")
	case pki.KindAgent:
		copyThere()
		fmt.Fprintf(w, "    install -D -m 0644 %s /etc/bulwark/tls/etcd-ca.pem\n", ca)
		fmt.Fprintf(w, "    install -D -m 0644 %s /etc/bulwark/tls/bulwark.pem\n", crt)
		fmt.Fprintf(w, "    install -D -m 0600 -o root -g root %s /etc/bulwark/tls/bulwark-key.pem   # only the agent (root) reads it\n", key)
		fmt.Fprintf(w, "    rm %s %s %s\n", ca, crt, key)
		fmt.Fprintf(w, "  then set, in /etc/bulwark/agent.yaml there (name: %s; the servers use certificates of their own):\n", name)
		fmt.Fprintf(w, "    etcd:\n      endpoints: [https://10.0.0.11:2379, ...]   # https:// for every member\n")
		fmt.Fprintf(w, "      ca_file: /etc/bulwark/tls/etcd-ca.pem\n")
		fmt.Fprintf(w, "      cert_file: /etc/bulwark/tls/bulwark.pem\n")
		fmt.Fprintf(w, "      key_file: /etc/bulwark/tls/bulwark-key.pem\n")
		fmt.Fprintf(w, "  The agent's API (http_listen) serves HTTPS with it too: http_listen's address must be one of\n")
		fmt.Fprintf(w, "  its --host values.\n")
		fmt.Fprintf(w, "  Check: bulwarkd config check /etc/bulwark/agent.yaml\n")
	case pki.KindServer:
		copyThere()
		fmt.Fprintf(w, "    install -D -m 0644 %s /etc/bulwark/tls/server.pem\n", crt)
		fmt.Fprintf(w, "    install -D -m 0600 -o bulwark -g bulwark %s /etc/bulwark/tls/server-key.pem\n", key)
		fmt.Fprintf(w, "    rm %s %s %s\n", ca, crt, key)
		fmt.Fprintf(w, "  then name them in /etc/bulwark/server.yaml for the API's HTTPS (docs/security.md).\n")
	case pki.KindClient:
		if server, ok := strings.CutPrefix(name, "server-"); ok && server != "" {
			// A server's own etcd client certificate (server-HOST).
			fmt.Fprintf(w, "Next, copy the files to %s: a client certificate named server-HOST is the etcd client\n", server)
			fmt.Fprintf(w, "certificate of the bulwarkd server on HOST (not the host's agent certificate):\n")
			fmt.Fprintf(w, "    scp %s %s %s root@%s:\n", q(caFile), q(certPath), q(keyPath), server)
			fmt.Fprintf(w, "  and install them there, as root:\n")
			fmt.Fprintf(w, "    install -D -m 0644 %s /etc/bulwark/tls/etcd-ca.pem\n", ca)
			fmt.Fprintf(w, "    install -D -m 0644 %s /etc/bulwark/tls/server-etcd.pem\n", crt)
			fmt.Fprintf(w, "    install -D -m 0600 -o bulwark -g bulwark %s /etc/bulwark/tls/server-etcd-key.pem\n", key)
			fmt.Fprintf(w, "    rm %s %s %s\n", ca, crt, key)
			fmt.Fprintf(w, "  then set, in /etc/bulwark/server.yaml there:\n")
			fmt.Fprintf(w, "    etcd:\n      ca_file: /etc/bulwark/tls/etcd-ca.pem\n")
			fmt.Fprintf(w, "      cert_file: /etc/bulwark/tls/server-etcd.pem\n")
			fmt.Fprintf(w, "      key_file: /etc/bulwark/tls/server-etcd-key.pem\n")
			fmt.Fprintf(w, "  check: sudo -u bulwark bulwarkd config check /etc/bulwark/server.yaml\n")
			fmt.Fprintf(w, "  and name it in `bulwarkd etcd-auth enable ... --server-user %s` (docs/install.md, 5.2).\n", name)
			return
		}
		fmt.Fprintf(w, "Next: keep both files on the operator's machine (the key stays 0600), e.g. for etcdctl:\n")
		fmt.Fprintf(w, "    etcdctl --cacert %s --cert %s --key %s endpoint health\n", q(caFile), q(certPath), q(keyPath))
	}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// errHelpShown stops a command whose --help came after its arguments.
var errHelpShown = errors.New("help shown")

func ignoreHelp(err error) error {
	if errors.Is(err, errHelpShown) {
		return nil
	}
	return err
}

// flagsAfterArgs sets the flags that follow a positional argument and
// returns the positional arguments: urfave/cli v2 stops parsing flags at
// the first argument, and `bulwarkd cert issue host-1 --kind agent` is how
// people type it. "--" ends the flags.
func flagsAfterArgs(c *cli.Context) ([]string, error) {
	byName := map[string]cli.Flag{}
	for _, f := range c.Command.Flags {
		for _, n := range f.Names() {
			byName[n] = f
		}
	}
	in := c.Args().Slice()
	var pos []string
	for i := 0; i < len(in); i++ {
		a := in[i]
		if a == "--" {
			return append(pos, in[i+1:]...), nil
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := byName[name]
		if f == cli.HelpFlag || name == "h" || name == "help" {
			// As urfave/cli prints it for a --help before the arguments.
			cli.HelpPrinter(c.App.Writer, cli.CommandHelpTemplate, c.Command)
			return nil, errHelpShown
		}
		if f == nil {
			return nil, fmt.Errorf("flag provided but not defined: %s", a)
		}
		if bf, ok := f.(*cli.BoolFlag); ok {
			if !hasValue {
				value = "true"
			}
			if _, err := strconv.ParseBool(value); err != nil {
				return nil, fmt.Errorf("%s: %q is not true or false", a, value)
			}
			if err := c.Set(bf.Name, value); err != nil {
				return nil, err
			}
			continue
		}
		if !hasValue {
			if i+1 >= len(in) {
				return nil, fmt.Errorf("flag needs an argument: %s", a)
			}
			i++
			value = in[i]
		}
		if err := c.Set(f.Names()[0], value); err != nil {
			return nil, fmt.Errorf("%s %s: %w", a, value, err)
		}
	}
	return pos, nil
}
