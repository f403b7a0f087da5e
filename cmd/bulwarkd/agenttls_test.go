package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/config"
	"github.com/bulwarkhq/bulwark/pki"
)

// TestAgentAPITLS: the agent's API serves HTTPS with the etcd client
// certificate by default, or http_tls; the certificate must be usable by a
// server and name the address the agent registers.
func TestAgentAPITLS(t *testing.T) {
	p := newTestPKI(t)
	cert, key := p.issue("host-1", pki.KindAgent, "host-1", "127.0.0.1")
	otherCert, otherKey := p.issue("api-1", pki.KindServer, "api-1", "10.0.0.11")
	clientCert, clientKey := p.issue("host-1", pki.KindClient)
	etcdFlags := func(cert, key string) map[string][]string {
		return map[string][]string{"etcd": {"https://127.0.0.1:2379"}, "etcd-ca-file": {p.caFile}, "etcd-cert-file": {cert}, "etcd-key-file": {key}}
	}
	with := func(m map[string][]string, kv ...string) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = []string{kv[i+1]}
		}
		return out
	}
	for _, c := range []struct {
		name  string
		flags map[string][]string
		// want: "" TLS with wantCert, "plain" no TLS, else the problem.
		want, wantCN string
	}{
		{"no API", etcdFlags(cert, key), "plain", ""},
		{"etcd certificate", with(etcdFlags(cert, key), "http-listen", "127.0.0.1:0"), "", "host-1"},
		{"http_tls over the etcd certificate", with(etcdFlags(cert, key), "http-listen", "10.0.0.11:7371",
			"http-tls-cert-file", otherCert, "http-tls-key-file", otherKey), "", "api-1"},
		{"http_insecure", with(etcdFlags(cert, key), "http-listen", "10.0.0.11:7371", "http-insecure", "true"), "plain", ""},
		{"loopback without certificate", map[string][]string{"http-listen": {"127.0.0.1:0"}}, "plain", ""},
		{"address not in the certificate", with(etcdFlags(cert, key), "http-listen", "10.0.0.11:7371"), "--http-listen: the servers will connect to 10.0.0.11 and refuse the certificate in " +
			cert + " (etcd.cert_file), which is valid for host-1, 127.0.0.1 only: issue it again with --host 10.0.0.11", ""},
		{"every address", with(etcdFlags(cert, key), "http-listen", "0.0.0.0:7371"), "--http-listen: 0.0.0.0:7371: the agent registers the address it listens on", ""},
		{"client certificate", with(etcdFlags(clientCert, clientKey), "http-listen", "127.0.0.1:0"), "--etcd-cert-file: " + clientCert +
			`: certificate "host-1" cannot authenticate a server (its extended key usage: clientAuth; serverAuth needed): issue one of kind server, agent or etcd ` +
			"(the agent's API at http_listen serves HTTPS with the etcd client certificate, as http_tls is not set)", ""},
		{"http_tls key of another certificate", with(nil, "http-listen", "127.0.0.1:0", "http-tls-cert-file", cert, "http-tls-key-file", otherKey),
			"--http-tls-key-file: " + otherKey + ": cert and key do not match", ""},
	} {
		cfg, err := config.LoadAgent(config.Inputs{Path: os.DevNull, Flags: c.flags})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tc, err := agentAPITLS(cfg)
		switch {
		case c.want == "plain":
			if tc != nil || err != nil {
				t.Errorf("%s: %v %v, want plain HTTP", c.name, tc, err)
			}
		case c.want == "":
			if err != nil || tc == nil || tc.Certificates[0].Leaf.Subject.CommonName != c.wantCN {
				t.Errorf("%s: %v, want TLS with %s", c.name, err, c.wantCN)
			}
		default:
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: %v, want %q", c.name, err, c.want)
			}
		}
	}
}

// TestAgentRefusesPlainHTTPBeyondLoopback: the real command stops at start
// (exit status 78, before connecting anywhere) when its API would serve
// plain HTTP on a cluster address.
func TestAgentRefusesPlainHTTPBeyondLoopback(t *testing.T) {
	_, errs, code := bulwarkd(t, nil, "agent", "--config", os.DevNull, "--name", "host-1", "--etcd", "http://127.0.0.1:1",
		"--http-listen", "10.0.0.11:7371")
	want := "  --http-listen: the agent's API would serve 10.0.0.11:7371 over plain HTTP, its token and the workloads' logs in clear"
	if code != exitConfig || !strings.Contains(errs, want) || !strings.Contains(errs, "http_insecure: true") || strings.Contains(errs, "connect to etcd") {
		t.Errorf("exit %d, want %d and %q:\n%s", code, exitConfig, want, errs)
	}
}

// TestConfigCheckExampleAgent checks the production example agent-host-1.yaml
// with its files, issued as docs/install.md does (the agent certificate
// with --host host-1 --host 10.0.0.11); then with a certificate that lacks
// the address of http_listen, which `config check` must refuse, naming the
// line.
func TestConfigCheckExampleAgent(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "packaging", "examples", "production", "agent-host-1.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		hosts []string
		want  string
	}{
		{[]string{"host-1", "10.0.0.11"}, ""},
		{[]string{"host-1"}, "http_listen: the servers will connect to 10.0.0.11 and refuse the certificate in "},
	} {
		p := newTestPKI(t)
		cert, key := p.issue("host-1", pki.KindAgent, c.hosts...)
		dir := t.TempDir()
		tlsDir := filepath.Join(dir, "tls")
		if err := os.Mkdir(tlsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for from, to := range map[string]string{p.caFile: "etcd-ca.pem", cert: "bulwark.pem", key: "bulwark-key.pem"} {
			data, err := os.ReadFile(from)
			if err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o644)
			if to == "bulwark-key.pem" {
				mode = 0o600
			}
			writeFile(t, tlsDir, to, string(data), mode)
		}
		conf := writeFile(t, dir, "agent.yaml", strings.ReplaceAll(string(example), "/etc/bulwark/", dir+"/"), 0o644)
		out, errs, code := bulwarkd(t, nil, "config", "check", conf)
		if c.want == "" {
			if code != 0 || out != conf+": ok (agent config)\n" || errs != "" {
				t.Errorf("%v: exit %d\n%s%s", c.hosts, code, out, errs)
			}
			continue
		}
		line := 0
		for i, l := range strings.Split(string(example), "\n") {
			if strings.HasPrefix(l, "http_listen:") {
				line = i + 1
			}
		}
		if want := fmt.Sprintf("%s:%d:14: %s", conf, line, c.want); code != 1 || !strings.Contains(errs, want) {
			t.Errorf("%v: exit %d, want 1 and %q:\n%s%s", c.hosts, code, want, out, errs)
		}
	}
}

// TestServerAgentsCAFile: the server's CA for the agents is checked at
// start and by `config check`, under the setting that named it.
func TestServerAgentsCAFile(t *testing.T) {
	dir := t.TempDir()
	old, _ := expiredPair(t, dir)
	conf := writeFile(t, dir, "server.yaml", "kind: server\nagents:\n  ca_file: "+old+"\n", 0o644)
	want := conf + ":3:12: agents.ca_file: " + old + `: certificate "old" expired at `
	_, errs, code := bulwarkd(t, nil, "config", "check", conf)
	if code != 1 || !strings.Contains(errs, want) {
		t.Errorf("config check: exit %d, want 1 and %q:\n%s", code, want, errs)
	}
	_, errs, code = bulwarkd(t, nil, "server", "--config", conf, "--etcd", "http://127.0.0.1:1")
	if code != exitConfig || !strings.Contains(errs, want) {
		t.Errorf("server: exit %d, want %d and %q:\n%s", code, exitConfig, want, errs)
	}
	// By default, etcd.ca_file: the same check names it.
	_, errs, code = bulwarkd(t, nil, "server", "--config", os.DevNull, "--etcd", "https://127.0.0.1:1", "--etcd-ca-file", old)
	if code != exitConfig || !strings.Contains(errs, "--etcd-ca-file: "+old+`: certificate "old" expired at `) {
		t.Errorf("server with an expired etcd.ca_file: exit %d:\n%s", code, errs)
	}
}
