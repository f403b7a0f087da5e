package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/clusterstore/etcd/etcdtest"
	"github.com/bulwarkhq/bulwark/config"
	"github.com/bulwarkhq/bulwark/pki"
)

// testPKI makes a CA in a temporary directory; issue adds a certificate.
type testPKI struct {
	t           *testing.T
	dir, caFile string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "pki")
	if _, _, err := pki.InitCA(dir, false); err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: dir, caFile: filepath.Join(dir, pki.CACertFile)}
}

func (p *testPKI) issue(name, kind string, hosts ...string) (cert, key string) {
	p.t.Helper()
	cert, key, err := pki.Issue(pki.IssueRequest{CADir: p.dir, Name: name, Kind: kind, Hosts: hosts, OutDir: filepath.Join(p.dir, kind)})
	if err != nil {
		p.t.Fatal(err)
	}
	return cert, key
}

// TestCheckAgentCertificate: an agent's etcd certificate must be named
// for the host the agent runs as, wherever the name came from.
func TestCheckAgentCertificate(t *testing.T) {
	p := newTestPKI(t)
	cert, key := p.issue("host-2", pki.KindAgent, "host-2")
	load := func(flags map[string][]string, env map[string]string) *config.Agent {
		t.Helper()
		cfg, err := config.LoadAgent(config.Inputs{Path: os.DevNull, Flags: flags, Env: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		}})
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	tlsFlags := map[string][]string{"etcd": {"https://127.0.0.1:2379"}, "etcd-ca-file": {p.caFile}, "etcd-cert-file": {cert}, "etcd-key-file": {key}}
	with := func(extra map[string][]string) map[string][]string {
		m := map[string][]string{}
		for k, v := range tlsFlags {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	if err := checkAgentCertificate(load(with(map[string][]string{"name": {"host-2"}}), nil), "host-2"); err != nil {
		t.Errorf("its own certificate: %v", err)
	}
	if err := checkAgentCertificate(load(map[string][]string{"name": {"host-1"}}, nil), "host-1"); err != nil {
		t.Errorf("no certificate: %v", err)
	}
	for _, c := range []struct {
		what  string
		flags map[string][]string
		env   map[string]string
		name  string
		want  string
	}{
		{"--name", with(map[string][]string{"name": {"host-1"}}), nil, "host-1",
			"--etcd-cert-file: agent certificate is for host-2 but --name is host-1: " + cert + ": an agent acts only as the host its certificate names"},
		{"variable", with(nil), map[string]string{"BULWARK_HOST_NAME": "host-1"}, "host-1",
			"agent certificate is for host-2 but $BULWARK_HOST_NAME is host-1"},
		{"default", with(nil), nil, "host-3", "agent certificate is for host-2 but this machine's host name is host-3 (name is not set)"},
	} {
		err := checkAgentCertificate(load(c.flags, c.env), c.name)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.what, err, c.want)
		}
	}
}

// TestAgentRefusesAnotherHostsCertificate: the real command stops at
// start, before connecting (the endpoint answers nothing), with exit
// status 78 and the reason.
func TestAgentRefusesAnotherHostsCertificate(t *testing.T) {
	p := newTestPKI(t)
	cert, key := p.issue("host-2", pki.KindAgent, "host-2")
	_, errs, code := bulwarkd(t, nil, "agent", "--config", os.DevNull, "--name", "host-1", "--etcd", "https://127.0.0.1:1",
		"--etcd-ca-file", p.caFile, "--etcd-cert-file", cert, "--etcd-key-file", key)
	want := "  --etcd-cert-file: agent certificate is for host-2 but --name is host-1: "
	if code != exitConfig || !strings.Contains(errs, want) || strings.Contains(errs, "connect to etcd") {
		t.Errorf("exit %d, want %d and %q:\n%s", code, exitConfig, want, errs)
	}
}

// TestEtcdAuthCommand runs `bulwarkd etcd-auth` against a real etcd
// member that requires client certificates: its refusals before anything
// changes, enable, status, add-host and remove-host, as a server user and
// as a host.
func TestEtcdAuthCommand(t *testing.T) {
	for _, b := range []string{"embedded", "binary"} {
		t.Run(b, func(t *testing.T) { testEtcdAuthCommand(t, b) })
	}
}

// startMember starts an etcd member that serves clients over TLS with a
// certificate of p's CA: embedded (go.mod's etcd) or "binary", the real
// etcd binary of Debian 12's etcd-server (3.4.23; etcdtest skips loudly
// without it, or fails under BULWARK_REQUIRE_REAL=1). It returns the
// member's endpoint and whether etcd has the AuthStatus call (3.5+).
func startMember(t *testing.T, backend string, p *testPKI, clientCertAuth bool) (endpoint string, hasAuthStatus bool) {
	t.Helper()
	etcdCert, etcdKey := p.issue("etcd-1", pki.KindEtcd, "127.0.0.1", "localhost")
	if backend == "binary" {
		m := etcdtest.Start(t, etcdtest.Config{CertFile: etcdCert, KeyFile: etcdKey, CAFile: p.caFile, ClientCertAuth: clientCertAuth})
		t.Logf("etcd %s (%s)", m.Version, m.Binary)
		return m.Endpoints()[0], m.Minor >= 5
	}
	member, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{Dir: filepath.Join(t.TempDir(), "etcd"),
		ClientCertFile: etcdCert, ClientKeyFile: etcdKey, ClientCAFile: p.caFile, ClientCertAuth: clientCertAuth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(member.Close)
	return member.Endpoints()[0], true
}

func testEtcdAuthCommand(t *testing.T, backend string) {
	p := newTestPKI(t)
	endpoint, hasAuthStatus := startMember(t, backend, p, true)
	srvCert, srvKey := p.issue("server-host-1", pki.KindClient)
	h1Cert, h1Key := p.issue("host-1", pki.KindAgent, "host-1")
	as := func(cert, key string, args ...string) []string {
		return append(args, "--config", os.DevNull, "--etcd", endpoint, "--etcd-ca-file", p.caFile,
			"--etcd-cert-file", cert, "--etcd-key-file", key)
	}
	server := func(args ...string) []string { return as(srvCert, srvKey, args...) }

	out, _, code := bulwarkd(t, nil, "etcd-auth", "--help")
	for _, w := range []string{"one host's agent cannot act as another host", "bulwarkd cert issue server-host-$n --kind client",
		"bulwarkd etcd-auth enable --host host-1 --host host-2 --host host-3", "--server-user server-host-3", "add-host host-4",
		"ETCD_CLIENT_CERT_AUTH=true", "locks/* and vipclaims/*", "It works with etcd 3.4 (Debian 12's 3.4.23) and later"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("etcd-auth --help lacks %q:\n%s", w, out)
		}
	}

	for _, c := range []struct {
		what string
		args []string
		code int
		want string
	}{
		{"no host", server("etcd-auth", "enable"), 2, "name every host whose agent uses etcd with --host"},
		{"own certificate is a host's", as(h1Cert, h1Key, "etcd-auth", "enable", "--host", "host-1"), 1,
			"named like host host-1: a server needs a certificate of its own"},
		{"own user left out", server("etcd-auth", "enable", "--host", "host-1", "--server-user", "server-host-2"), 1,
			`this command connects as "server-host-1" (the CN of ` + srvCert + `), which is not among --server-user server-host-2`},
		{"bad host name", server("etcd-auth", "enable", "--host", "Host_1"), 1, `host name "Host_1" is not a DNS label`},
		{"no TLS", []string{"etcd-auth", "enable", "--host", "host-1", "--config", os.DevNull, "--etcd", "http://127.0.0.1:1"}, 1,
			"etcd.cert_file is not set"},
		{"status before", server("etcd-auth", "status"), 0, "etcd authentication: OFF"},
	} {
		out, errs, code := bulwarkd(t, nil, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s%s", c.what, code, c.code, c.want, out, errs)
		}
	}

	// etcd 3.4 has no AuthStatus call: status says how it knows.
	probed := "predates etcd's AuthStatus call, added in 3.5: on or off was learned from how it refuses a login"
	out, errs, code := bulwarkd(t, nil, server("etcd-auth", "status")...)
	if code != 0 || strings.Contains(out, probed) == hasAuthStatus {
		t.Errorf("status before, AuthStatus call %v: exit %d:\n%s%s", hasAuthStatus, code, out, errs)
	}

	out, errs, code = bulwarkd(t, nil, server("etcd-auth", "enable", "--host", "host-1", "--host", "host-2")...)
	if code != 0 {
		t.Fatalf("enable: exit %d:\n%s%s", code, out, errs)
	}
	on := "etcd authentication: on\n"
	if hasAuthStatus {
		on = "etcd authentication: on (auth revision "
	}
	keepalive := "does not check a lease's keys when a user keeps the lease alive or attaches a key to it"
	if strings.Contains(out, probed) == hasAuthStatus || strings.Contains(out, keepalive) == hasAuthStatus {
		t.Errorf("enable, AuthStatus call %v:\n%s", hasAuthStatus, out)
	}
	for _, w := range []string{on, "server-host-1   root", "host-1          bulwark-agent-host-1   host host-1's agent",
		"role bulwark-agent-host-2:\n  read /bulwark/v1/\n", "read /bulwark/v1/allocations/ (prefix)", "readwrite /bulwark/v1/status/host-2/ (prefix)",
		"etcd authentication is on. Only these certificates get anything from etcd now: servers server-host-1"} {
		if !strings.Contains(out, w) {
			t.Errorf("enable output lacks %q:\n%s", w, out)
		}
	}
	for _, c := range []struct {
		what string
		args []string
		code int
		want string
	}{
		{"enable again", server("etcd-auth", "enable", "--host", "host-1", "--host", "host-2"), 0, "etcd authentication: on"},
		{"status as a host", as(h1Cert, h1Key, "etcd-auth", "status"), 1,
			`the certificate ` + h1Cert + ` (CN "host-1") is not a server user`},
		{"add-host as a host", as(h1Cert, h1Key, "etcd-auth", "add-host", "host-1"), 1, "permission denied"},
		{"add-host", server("etcd-auth", "add-host", "host-3"), 0, "host host-3: etcd user host-3 with role bulwark-agent-host-3"},
		{"status", server("etcd-auth", "status"), 0, "host-3          bulwark-agent-host-3   host host-3's agent"},
		{"add-host bad name", server("etcd-auth", "add-host", "host_4"), 1, `host name "host_4" is not a DNS label`},
		{"add-host no name", server("etcd-auth", "add-host"), 2, "usage: bulwarkd etcd-auth add-host HOST"},
		{"remove-host", server("etcd-auth", "remove-host", "host-3"), 0, "etcd now refuses its certificate"},
		{"remove-host again", server("etcd-auth", "remove-host", "host-3"), 1, "no etcd user or role for this host"},
		{"remove-host of a server user", server("etcd-auth", "remove-host", "server-host-1"), 1, `etcd user "server-host-1" has the root role`},
	} {
		out, errs, code := bulwarkd(t, nil, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.want) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s%s", c.what, code, c.code, c.want, out, errs)
		}
	}
}

// TestEtcdAuthEnableRefusesWithoutClientCertAuth: a member without
// --client-cert-auth takes no user from certificates and would, with
// authentication on, refuse every daemon: enable turns it off again and
// says why.
func TestEtcdAuthEnableRefusesWithoutClientCertAuth(t *testing.T) {
	for _, b := range []string{"embedded", "binary"} {
		t.Run(b, func(t *testing.T) { testEtcdAuthEnableRefusesWithoutClientCertAuth(t, b) })
	}
}

func testEtcdAuthEnableRefusesWithoutClientCertAuth(t *testing.T, backend string) {
	p := newTestPKI(t)
	endpoint, _ := startMember(t, backend, p, false)
	srvCert, srvKey := p.issue("server-host-1", pki.KindClient)
	args := []string{"--config", os.DevNull, "--etcd", endpoint, "--etcd-ca-file", p.caFile, "--etcd-cert-file", srvCert, "--etcd-key-file", srvKey}
	out, errs, code := bulwarkd(t, nil, append([]string{"etcd-auth", "enable", "--host", "host-1"}, args...)...)
	if code != 1 || !strings.Contains(errs, "etcd does not take the user from client certificates") || !strings.Contains(errs, "authentication is off again") {
		t.Errorf("exit %d:\n%s%s", code, out, errs)
	}
	out, errs, code = bulwarkd(t, nil, append([]string{"etcd-auth", "status"}, args...)...)
	if code != 0 || !strings.Contains(out, "etcd authentication: OFF") || strings.Contains(out, "bulwark-enable-check") {
		t.Errorf("status after the refusal: exit %d:\n%s%s", code, out, errs)
	}
}
