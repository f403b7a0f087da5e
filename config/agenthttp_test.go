package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The agent's API: HTTPS with the etcd client certificate by default, with
// http_tls when set; plain HTTP only on loopback or with http_insecure.
func TestAgentHTTPTLS(t *testing.T) {
	const tlsEtcd = "etcd:\n  endpoints: [https://e:2379]\n  cert_file: /tls/bulwark.pem\n  key_file: /tls/bulwark-key.pem\n"
	const httpTLS = "http_tls:\n  cert_file: /tls/api.pem\n  key_file: /tls/api-key.pem\n"
	cases := []struct {
		name, body string
		// want: the problem (after "file:line:col: "), or "" for none.
		want string
		// cert and section: what HTTPCertFiles answers when valid.
		cert, section string
	}{
		{name: "API off", body: ""},
		{name: "API off, insecure set", body: "http_insecure: true\n"},
		{name: "plain on 127.0.0.1", body: "http_listen: 127.0.0.1:7371\n"},
		{name: "plain on ::1", body: "http_listen: '[::1]:7371'\n"},
		{name: "plain on localhost", body: "http_listen: localhost:7371\n"},
		{name: "plain on 127.0.0.2", body: "http_listen: 127.0.0.2:0\n"},
		{name: "plain on the cluster address", body: "http_listen: 10.0.0.11:7371\n",
			want: "http_listen: the agent's API would serve 10.0.0.11:7371 over plain HTTP, its token and the workloads' logs in clear: give it a certificate (etcd.cert_file"},
		{name: "plain on every address", body: "http_listen: 0.0.0.0:7371\n", want: "http_listen: the agent's API would serve 0.0.0.0:7371 over plain HTTP"},
		{name: "plain on every address, no host", body: "http_listen: ':7371'\n", want: "http_listen: the agent's API would serve :7371 over plain HTTP"},
		{name: "plain on a host name", body: "http_listen: host-1:7371\n", want: "http_listen: the agent's API would serve host-1:7371 over plain HTTP"},
		{name: "insecure on the cluster address", body: "http_listen: 10.0.0.11:7371\nhttp_insecure: true\n"},
		{name: "insecure beats the etcd certificate", body: tlsEtcd + "http_listen: 10.0.0.11:7371\nhttp_insecure: true\n"},
		{name: "the etcd certificate by default", body: tlsEtcd + "http_listen: 10.0.0.11:7371\n", cert: "/tls/bulwark.pem", section: "etcd"},
		{name: "the etcd certificate on loopback too", body: tlsEtcd + "http_listen: 127.0.0.1:7371\n", cert: "/tls/bulwark.pem", section: "etcd"},
		{name: "http_tls", body: httpTLS + "http_listen: 10.0.0.11:7371\n", cert: "/tls/api.pem", section: "http_tls"},
		{name: "http_tls over the etcd certificate", body: tlsEtcd + httpTLS + "http_listen: 10.0.0.11:7371\n", cert: "/tls/api.pem", section: "http_tls"},
		{name: "http_tls and insecure", body: httpTLS + "http_listen: 10.0.0.11:7371\nhttp_insecure: true\n",
			want: "http_tls.cert_file: http_tls is set but so is http_insecure"},
		{name: "cert without key", body: "http_tls:\n  cert_file: /tls/api.pem\nhttp_listen: 127.0.0.1:7371\n",
			want: "http_tls.cert_file: http_tls.key_file is needed with http_tls.cert_file"},
		{name: "key without cert", body: "http_tls:\n  key_file: /tls/api-key.pem\nhttp_listen: 127.0.0.1:7371\n",
			want: "http_tls.key_file: http_tls.cert_file is needed with http_tls.key_file"},
		{name: "relative path", body: "http_tls:\n  cert_file: api.pem\n  key_file: /k.pem\n", want: `http_tls.cert_file: "api.pem" is not an absolute path`},
	}
	for _, c := range cases {
		p := writeFile(t, t.TempDir(), "agent.yaml", "kind: agent\n"+c.body)
		for _, check := range []bool{false, true} {
			var a *Agent
			var err error
			if check {
				var cfg Config
				cfg, err = CheckFile(p, "")
				if err == nil {
					a = cfg.(*Agent)
				}
			} else {
				a, err = LoadAgent(Inputs{Path: p})
			}
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), p+":") {
					t.Errorf("%s (check %v): %v, want %q at its line", c.name, check, err, c.want)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s (check %v): %v", c.name, check, err)
				continue
			}
			cert, key, section := a.HTTPCertFiles()
			if cert != c.cert || section != c.section || (cert == "") != (key == "") {
				t.Errorf("%s: HTTPCertFiles %q %q %q, want %q from %q", c.name, cert, key, section, c.cert, c.section)
			}
		}
	}
	// From the environment and flags, the refusal names them.
	_, err := LoadAgent(Inputs{DefaultPath: filepath.Join(t.TempDir(), "none.yaml"), Flags: map[string][]string{"http-listen": {"10.0.0.11:7371"}}})
	if err == nil || !strings.HasPrefix(err.Error(), "--http-listen: the agent's API would serve 10.0.0.11:7371 over plain HTTP") {
		t.Errorf("flag: %v", err)
	}
	a, err := LoadAgent(Inputs{DefaultPath: filepath.Join(t.TempDir(), "none.yaml"),
		Env: envMap(map[string]string{"BULWARK_AGENT_LISTEN": "10.0.0.11:7371", "BULWARK_AGENT_HTTP_INSECURE": "true"})})
	if err != nil || !a.HTTPInsecure {
		t.Errorf("env with insecure: %+v %v", a, err)
	}
}

func TestAgentHTTPTLSFiles(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "api")
	_, otherKey := selfSigned(t, dir, "other")
	open := filepath.Join(dir, "open-key.pem")
	data, _ := os.ReadFile(key)
	if err := os.WriteFile(open, data, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, c := range []struct {
		cert, key, want string
	}{
		{cert, key, ""},
		{missing, key, ":3:14: http_tls.cert_file: " + missing + " does not exist"},
		{cert, open, ":4:13: http_tls.key_file: " + open + " is readable by everyone"},
		{cert, otherKey, ":4:13: http_tls.key_file: " + cert + " and " + otherKey + " are not a PEM certificate and its key"},
	} {
		p := writeFile(t, t.TempDir(), "agent.yaml", "kind: agent\nhttp_tls:\n  cert_file: "+c.cert+"\n  key_file: "+c.key+"\nhttp_listen: 10.0.0.11:7371\n")
		a, err := LoadAgent(Inputs{Path: p})
		if err != nil {
			t.Fatal(err)
		}
		err = a.CheckFiles()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s %s: %v", c.cert, c.key, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), p+c.want)):
			t.Errorf("%s %s: %v, want %q", c.cert, c.key, err, p+c.want)
		}
	}
}

func TestServerAgentsCA(t *testing.T) {
	dir := t.TempDir()
	ca, _ := selfSigned(t, dir, "ca")
	missing := filepath.Join(dir, "missing.pem")
	load := func(body string) *Server {
		t.Helper()
		s, err := LoadServer(Inputs{Path: writeFile(t, t.TempDir(), "server.yaml", "kind: server\n"+body)})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	etcdCA := "etcd:\n  endpoints: [https://e:2379]\n  ca_file: " + ca + "\n"
	for _, c := range []struct {
		body, path, key string
	}{
		{"", "", "etcd.ca_file"}, // the system's CAs
		{etcdCA, ca, "etcd.ca_file"},
		{"agents:\n  ca_file: /other/ca.pem\n" + etcdCA, "/other/ca.pem", "agents.ca_file"},
	} {
		if path, key := load(c.body).AgentCAFile(); path != c.path || key != c.key {
			t.Errorf("%q: AgentCAFile %q %q, want %q %q", c.body, path, key, c.path, c.key)
		}
	}
	if err := load("agents:\n  ca_file: " + ca + "\n").CheckFiles(); err != nil {
		t.Errorf("agents.ca_file: %v", err)
	}
	if err := load("agents:\n  ca_file: " + missing + "\n").CheckFiles(); err == nil ||
		!strings.HasSuffix(err.Error(), ":3:12: agents.ca_file: "+missing+" does not exist") {
		t.Errorf("agents.ca_file missing: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "LocalHost": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.11": false, "host-1": false, "localhost.example.org": false} {
		if got := IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}
