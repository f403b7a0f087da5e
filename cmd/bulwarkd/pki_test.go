package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/pki"
)

// runPKI runs the ca and cert commands in an app of their own, as
// bulwarkd's main runs them once registered.
func runPKI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	app := &cli.App{Name: "bulwarkd", Commands: []*cli.Command{caCommand(), certCommand()}, Writer: &out, ErrWriter: &out}
	err := app.Run(append([]string{"bulwarkd"}, args...))
	return out.String(), err
}

func TestCACertCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bulwark-pki")
	out, err := runPKI(t, "ca", "init", "--dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`Created "Bulwark cluster CA `, dir + "/ca.pem  CA certificate: copy it to every host",
		dir + "/ca-key.pem  CA private key (0600): keep it on this machine only", "bulwarkd cert issue host-1 --kind etcd --ca-dir " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("ca init output lacks %q:\n%s", want, out)
		}
	}
	caFile := filepath.Join(dir, pki.CACertFile)
	before, _ := os.ReadFile(caFile)
	if _, err := runPKI(t, "ca", "init", "--dir", dir); err == nil || !strings.Contains(err.Error(), "pass --force to replace it") {
		t.Errorf("second ca init: %v", err)
	}
	if after, _ := os.ReadFile(caFile); !bytes.Equal(before, after) {
		t.Error("refused ca init replaced the CA")
	}

	// Flags after the name, as people type them, and before it.
	agentDir := filepath.Join(dir, "agent")
	out, err = runPKI(t, "cert", "issue", "host-1", "--kind", "agent", "--ca-dir", dir, "--out", agentDir, "--host", "host-1", "--host=10.0.0.11", "--days", "30")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`Issued an agent certificate for "host-1", signed by "Bulwark cluster CA `,
		agentDir + "/host-1.pem      certificate", agentDir + "/host-1-key.pem  private key (0600)", "valid for: host-1, 10.0.0.11",
		"scp " + caFile + " " + agentDir + "/host-1.pem " + agentDir + "/host-1-key.pem root@host-1:",
		"install -D -m 0600 -o root -g root host-1-key.pem /etc/bulwark/tls/bulwark-key.pem",
		"in /etc/bulwark/agent.yaml there (name: host-1; the servers use certificates of their own)",
		"cert_file: /etc/bulwark/tls/bulwark.pem", "The agent's API (http_listen) serves HTTPS with it too",
		"Check: bulwarkd config check /etc/bulwark/agent.yaml\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("cert issue output lacks %q:\n%s", want, out)
		}
	}
	for _, stale := range []string{"0640", "root:bulwark", "-g bulwark", "server.yaml"} {
		if strings.Contains(out, stale) {
			t.Errorf("agent cert issue output mentions %q (the key is the agent's alone):\n%s", stale, out)
		}
	}
	cert, err := pki.ReadCertificate(filepath.Join(agentDir, "host-1.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if days := time.Until(cert.NotAfter).Hours() / 24; days < 29.9 || days > 30.1 {
		t.Errorf("--days 30: %.1f days", days)
	}
	if _, err := pki.LoadClientTLS(caFile, filepath.Join(agentDir, "host-1.pem"), filepath.Join(agentDir, "host-1-key.pem"), ""); err != nil {
		t.Errorf("agent certificate as etcd client: %v", err)
	}
	if out, err = runPKI(t, "cert", "issue", "--kind", "etcd", "--ca-dir", dir, "--out", filepath.Join(dir, "etcd"),
		"--host", "host-1,10.0.0.11", "host-1"); err != nil || !strings.Contains(out, "/etc/etcd/pki/host-1-key.pem") {
		t.Errorf("etcd certificate: %v\n%s", err, out)
	}
	if out, err = runPKI(t, "cert", "issue", "alice", "--kind", "client", "--ca-dir", dir); err != nil ||
		!strings.Contains(out, "etcdctl --cacert "+caFile+" --cert "+dir+"/alice.pem") || !strings.Contains(out, "keep both files on the operator's machine") {
		t.Errorf("client certificate: %v\n%s", err, out)
	}
	// A server's own etcd certificate goes to that server's host.
	out, err = runPKI(t, "cert", "issue", "server-host-1", "--kind", "client", "--ca-dir", dir, "--out", filepath.Join(dir, "server-etcd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Next, copy the files to host-1:", "root@host-1:",
		"install -D -m 0644 server-host-1.pem /etc/bulwark/tls/server-etcd.pem",
		"install -D -m 0600 -o bulwark -g bulwark server-host-1-key.pem /etc/bulwark/tls/server-etcd-key.pem",
		"in /etc/bulwark/server.yaml there:", "cert_file: /etc/bulwark/tls/server-etcd.pem", "--server-user server-host-1"} {
		if !strings.Contains(out, want) {
			t.Errorf("server etcd certificate: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "operator's machine") {
		t.Errorf("server etcd certificate: told to keep it on the operator's machine:\n%s", out)
	}
	if out, err = runPKI(t, "cert", "issue", "s1", "--kind", "server", "--ca-dir", dir, "--host", "s1"); err != nil ||
		!strings.Contains(out, "/etc/bulwark/tls/server-key.pem") {
		t.Errorf("server certificate: %v\n%s", err, out)
	}
	// Renewal.
	if _, err := runPKI(t, "cert", "issue", "host-1", "--kind", "agent", "--ca-dir", dir, "--out", agentDir, "--host", "host-1"); err == nil ||
		!strings.Contains(err.Error(), "pass --force to replace it (renewal)") {
		t.Errorf("issue over an existing certificate: %v", err)
	}
	if _, err := runPKI(t, "cert", "issue", "host-1", "--kind", "agent", "--ca-dir", dir, "--out", agentDir, "--host", "host-1", "--force"); err != nil {
		t.Errorf("--force: %v", err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ca", "init"}, "--dir is required"},
		{[]string{"ca", "init", "--dir", dir, "extra"}, `ca init takes no arguments (got "extra")`},
		{[]string{"cert", "issue", "--kind", "agent", "--ca-dir", dir}, "name the certificate"},
		{[]string{"cert", "issue", "h1", "h2", "--kind", "agent", "--ca-dir", dir}, "one name only"},
		{[]string{"cert", "issue", "h1", "--ca-dir", dir}, "--kind is required: server, agent, client, etcd"},
		{[]string{"cert", "issue", "h1", "--kind", "peer", "--ca-dir", dir, "--host", "h1"}, `unknown kind "peer"`},
		{[]string{"cert", "issue", "h1", "--kind", "agent"}, "--ca-dir is required"},
		{[]string{"cert", "issue", "h1", "--kind", "agent", "--ca-dir", t.TempDir(), "--host", "h1"}, "create one with `bulwarkd ca init --dir"},
		{[]string{"cert", "issue", "H_1", "--kind", "agent", "--ca-dir", dir, "--host", "h1"}, "not a DNS label"},
		{[]string{"cert", "issue", "h1", "--kind", "server", "--ca-dir", dir}, "a server certificate needs at least one host"},
		{[]string{"cert", "issue", "h1", "--kind", "server", "--ca-dir", dir, "--host", "h 1"}, `host "h 1"`},
		{[]string{"cert", "issue", "h1", "--kind", "server", "--ca-dir", dir, "--host", "h1", "--days", "0"}, "--days 0"},
		{[]string{"cert", "issue", "h1", "--kind", "server", "--ca-dir", dir, "--host", "h1", "--days", "5000"}, "after the CA itself"},
		{[]string{"cert", "issue", "h1", "--kind", "server", "--ca-dir", dir, "--hots", "h1"}, "flag provided but not defined: --hots"},
		{[]string{"cert", "issue", "h1", "--kind"}, "flag needs an argument: --kind"},
	} {
		if _, err := runPKI(t, c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

func TestCACertHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"ca", "init", "--help"}, []string{"ca-key.pem   the CA's private key, mode 0600", "never on a cluster host",
			"bulwarkd ca init --dir ./bulwark-pki", "--force"}},
		// --help after the name, where urfave/cli alone would not look.
		{[]string{"cert", "issue", "host-1", "--help"}, []string{"NAME-key.pem   its private key (0600)",
			"/etc/etcd/pki/HOST.pem", "etcd.cert_file, etcd.key_file", "/etc/bulwark/tls/server.pem", "to renew, issue it",
			"--kind value", "--host value"}},
	} {
		out, err := runPKI(t, c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: help lacks %q:\n%s", c.args, w, out)
			}
		}
	}
}

// expiredPair writes a client certificate and key that expired a day ago,
// signed by itself.
func expiredPair(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "old"},
		NotBefore: time.Now().AddDate(0, 0, -30), NotAfter: time.Now().AddDate(0, 0, -1),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile = writeFile(t, dir, "old.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), 0o644)
	keyFile = writeFile(t, dir, "old-key.pem", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})), 0o600)
	return certFile, keyFile
}

// TestDaemonRefusesBadEtcdTLS: TLS files that parse but cannot work (an
// expired certificate, a server-only certificate as client certificate)
// stop the daemons at start with the setting's place, and fail `config
// check` the same way.
func TestDaemonRefusesBadEtcdTLS(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "pki")
	if _, err := runPKI(t, "ca", "init", "--dir", caDir); err != nil {
		t.Fatal(err)
	}
	if _, err := runPKI(t, "cert", "issue", "s1", "--kind", "server", "--ca-dir", caDir, "--host", "s1"); err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(caDir, pki.CACertFile)
	srvCert, srvKey := filepath.Join(caDir, "s1.pem"), filepath.Join(caDir, "s1-key.pem")
	oldCert, oldKey := expiredPair(t, dir)
	expiredConf := writeFile(t, dir, "agent.yaml", "kind: agent\netcd:\n  endpoints: [https://127.0.0.1:1]\n  ca_file: "+caFile+
		"\n  cert_file: "+oldCert+"\n  key_file: "+oldKey+"\n", 0o644)

	_, errs, code := bulwarkd(t, nil, "agent", "--config", expiredConf)
	want := "  " + expiredConf + `:5:14: etcd.cert_file: ` + oldCert + `: certificate "old" expired at `
	if code != exitConfig || !strings.Contains(errs, want) || !strings.Contains(errs, " ago): issue a new one") {
		t.Errorf("expired: exit %d, want %d and %q:\n%s", code, exitConfig, want, errs)
	}
	_, errs, code = bulwarkd(t, nil, "config", "check", expiredConf)
	if code != 1 || !strings.Contains(errs, strings.TrimSpace(want)) {
		t.Errorf("config check, expired: exit %d:\n%s", code, errs)
	}

	_, errs, code = bulwarkd(t, nil, "server", "--config", os.DevNull, "--etcd", "https://127.0.0.1:1",
		"--etcd-ca-file", caFile, "--etcd-cert-file", srvCert, "--etcd-key-file", srvKey)
	want = "  --etcd-cert-file: " + srvCert + `: certificate "s1" cannot authenticate a client (its extended key usage: serverAuth; clientAuth needed)`
	if code != exitConfig || !strings.Contains(errs, want) {
		t.Errorf("server certificate as client: exit %d, want %d and %q:\n%s", code, exitConfig, want, errs)
	}
}
