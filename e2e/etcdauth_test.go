package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/pki"
)

// TestEtcdAuth sets up docs/security.md's "Agents cannot act as other
// hosts" with the real binaries: etcd (embedded here) serves clients over
// TLS and requires client certificates; `bulwarkd etcd-auth enable`, run
// with the server's own certificate (CN server-1), turns on etcd's users
// and roles for hosts host-1 and host-2. Then:
//
//   - `bulwarkd server` (server-1's certificate) and `bulwarkd agent`
//     for host-1 (host-1's certificate) work: the host registers,
//     publishes its agent token, stays ready over several lease renewals
//     with the same heartbeat, and runs a VM whose status it reports;
//   - an agent given host-1's certificate but --name host-2 stops at
//     start, saying the certificate is for another host;
//   - an agent whose certificate has no etcd user (host-3) is refused by
//     etcd, and says how to add the host;
//   - etcd itself refuses host-1's certificate a write of host-2's
//     heartbeat (the check does not rely on the agent's own);
//   - neither daemon's log shows a request etcd refused;
//   - the agent's own API is HTTPS with host-1's agent certificate (no
//     http_tls: the etcd client certificate serves it) at the https://
//     URL it registered: the server fetches `node tasks` and `workload
//     logs` from it, verifying the certificate against the cluster CA (by
//     default its etcd.ca_file); a second server told to trust another CA
//     for the agents (agents.ca_file) is refused by the certificate
//     check, and so are a client trusting another CA and one speaking
//     plain HTTP to the agent directly.
func TestEtcdAuth(t *testing.T) {
	dir := t.TempDir()
	caDir := filepath.Join(dir, "pki")
	if _, _, err := pki.InitCA(caDir, false); err != nil {
		t.Fatal(err)
	}
	issue := func(name, kind string, hosts ...string) (string, string) {
		cert, key, err := pki.Issue(pki.IssueRequest{CADir: caDir, Name: name, Kind: kind, Hosts: hosts, OutDir: filepath.Join(caDir, kind)})
		if err != nil {
			t.Fatal(err)
		}
		return cert, key
	}
	caFile := filepath.Join(caDir, pki.CACertFile)
	etcdCert, etcdKey := issue("etcd-1", pki.KindEtcd, "127.0.0.1", "localhost")
	srvCert, srvKey := issue("server-1", pki.KindClient)
	h1Cert, h1Key := issue("host-1", pki.KindAgent, "host-1", "127.0.0.1")
	h3Cert, h3Key := issue("host-3", pki.KindAgent, "host-3", "127.0.0.1")

	member, err := etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{
		Dir:       filepath.Join(dir, "etcd"),
		Name:      "e2e-auth",
		ClientURL: fmt.Sprintf("https://127.0.0.1:%d", freePort(t)),
		// PeerURL left empty: picked free, retried if taken meanwhile.
		ClientCertFile: etcdCert, ClientKeyFile: etcdKey,
		ClientCAFile: caFile, ClientCertAuth: true,
	})
	if err != nil {
		t.Fatalf("embedded etcd over TLS: %v", err)
	}
	t.Cleanup(member.Close)
	endpoint := member.Endpoints()[0]
	as := func(cert, key string) []string {
		return []string{"--config", os.DevNull, "--etcd", endpoint, "--etcd-ca-file", caFile, "--etcd-cert-file", cert, "--etcd-key-file", key}
	}

	out, code := runBulwarkd(t, 60*time.Second, append([]string{"etcd-auth", "enable", "--host", "host-1", "--host", "host-2"}, as(srvCert, srvKey)...)...)
	if code != 0 || !strings.Contains(out, "etcd authentication: on") {
		t.Fatalf("etcd-auth enable: exit %d:\n%s", code, out)
	}
	out, code = runBulwarkd(t, 60*time.Second, append([]string{"etcd-auth", "status"}, as(srvCert, srvKey)...)...)
	if code != 0 || !regexp.MustCompile(`host-1 +bulwark-agent-host-1 +host host-1's agent`).MatchString(out) ||
		!regexp.MustCompile(`server-1 +root +server user`).MatchString(out) {
		t.Errorf("etcd-auth status: exit %d:\n%s", code, out)
	}
	t.Logf("etcd-auth status:\n%s", out)

	// The daemons.
	hostXML := filepath.Join(dir, "host.xml")
	writeTestHost(t, hostXML)
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apiURL := "http://" + apiAddr
	agentURL := fmt.Sprintf("https://127.0.0.1:%d", freePort(t))
	consoleDir := filepath.Join(dir, "console")
	server := startProc(t, "bulwarkd", append([]string{"server", "--name", "s1", "--listen", apiAddr, "--session-ttl", "3s"}, as(srvCert, srvKey)...)...)
	agent := startProc(t, "bulwarkd", append([]string{"agent", "--name", "host-1", "--libvirt-uri", "test://" + hostXML, "--session-ttl", "3s",
		"--http-listen", strings.TrimPrefix(agentURL, "https://"), "--console-log-dir", consoleDir}, as(h1Cert, h1Key)...)...)
	// A client of the agent's API that trusts the cluster CA, as the
	// servers do.
	agentTLS, err := pki.LoadClientTLS(caFile, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	agentHTTP := &http.Client{Transport: &http.Transport{TLSClientConfig: agentTLS}}
	defer agentHTTP.CloseIdleConnections()
	alive := func() {
		t.Helper()
		if server.exited() {
			t.Fatalf("server exited:\n%s", server.out.String())
		}
		if agent.exited() {
			t.Fatalf("agent exited:\n%s", agent.out.String())
		}
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "bulwarkd"), append([]string{"token", "create", "e2e-admin", "--role", "admin"}, as(srvCert, srvKey)...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bulwarkd token create with the server's certificate: %v: %s", err, stderr.String())
	}
	registerToken(apiURL, stdout.String())

	nodeState := func() api.NodeState {
		var nodes []api.NodeView
		o, _, code := ctl(t, apiURL, "-o", "json", "node", "list")
		if code != 0 || json.Unmarshal([]byte(o), &nodes) != nil {
			return ""
		}
		for _, n := range nodes {
			if n.Name == "host-1" {
				return n.State
			}
		}
		return ""
	}
	eventually(t, "host-1 ready", 30*time.Second, func() bool { alive(); return nodeState() == api.NodeReady })

	srvStore := dialAs(t, endpoint, caFile, srvCert, srvKey)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	hb, ok, _, err := srvStore.Get(ctx, clusterstore.HeartbeatKey("host-1"))
	if err != nil || !ok {
		t.Fatalf("host-1's heartbeat: %v %v", ok, err)
	}
	if tok, err := clusterstore.AgentToken(ctx, srvStore, "host-1"); err != nil || tok == "" {
		t.Errorf("host-1's agent token: %v", err)
	}
	// Several lease renewals by the agent, acknowledged by etcd, while the
	// heartbeat stays the same key (a refused keepalive would end the
	// session and the agent would write a new one) and the host ready.
	renewals := func() (ok, failed int) {
		resp, err := agentHTTP.Get(agentURL + "/metrics")
		if err != nil {
			t.Fatalf("agent metrics over HTTPS: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := string(b)
		return metricValue(m, "bulwark_agent_lease_renew_seconds_count"), metricValue(m, "bulwark_agent_lease_renew_failures_total")
	}
	first, _ := renewals()
	eventually(t, "three more lease renewals", 60*time.Second, func() bool {
		alive()
		if s := nodeState(); s != api.NodeReady {
			t.Fatalf("host-1 %q between renewals, want ready", s)
		}
		n, failed := renewals()
		if failed > 0 {
			t.Fatalf("%d lease renewals failed:\n%s", failed, agent.out.String())
		}
		return n >= first+3
	})
	if now, ok, _, err := srvStore.Get(ctx, clusterstore.HeartbeatKey("host-1")); err != nil || !ok || now.CreateRevision != hb.CreateRevision || now.Lease != hb.Lease {
		t.Errorf("heartbeat changed: %+v, was %+v (%v)", now, hb, err)
	}

	// A VM: the agent reads its allocation and writes its status.
	if _, errOut, code := ctl(t, apiURL, "vm", "create", "web1", "--cpus", "1", "--memory", "256MiB"); code != 0 {
		t.Fatal(errOut)
	}
	var w api.WorkloadView
	eventually(t, "web1 running on host-1", 30*time.Second, func() bool {
		alive()
		ctlJSON(t, apiURL, &w, "workload", "show", "web1")
		return w.State == api.StateRunning && w.Host == "host-1"
	})
	if tasks := agentTasks(t, apiURL, "host-1"); len(tasks) != 1 || tasks[0].Workload != "web1" {
		t.Errorf("host-1's tasks through the server (agent token from etcd): %+v", tasks)
	}
	agentOverHTTPS(t, agentHTTP, srvStore, apiURL, agentURL, consoleDir, as(srvCert, srvKey))

	// host-1's certificate, but --name host-2.
	impostor := startProc(t, "bulwarkd", append([]string{"agent", "--name", "host-2", "--libvirt-uri", "test://" + hostXML}, as(h1Cert, h1Key)...)...)
	eventually(t, "the agent with another host's certificate to stop", 20*time.Second, impostor.exited)
	if o := impostor.out.String(); impostor.cmd.ProcessState.ExitCode() != 78 ||
		!strings.Contains(o, "agent certificate is for host-1 but --name is host-2: ") {
		t.Errorf("agent with host-1's certificate as host-2: exit %d:\n%s", impostor.cmd.ProcessState.ExitCode(), o)
	}

	// A certificate of the cluster CA whose name has no etcd user.
	stranger := startProc(t, "bulwarkd", append([]string{"agent", "--name", "host-3", "--libvirt-uri", "test://" + hostXML}, as(h3Cert, h3Key)...)...)
	eventually(t, "the agent without an etcd user to stop", 30*time.Second, stranger.exited)
	if o := stranger.out.String(); !strings.Contains(o, "permission denied") || !strings.Contains(o, "bulwarkd etcd-auth add-host host-3") {
		t.Errorf("agent host-3 without an etcd user:\n%s", o)
	}

	// etcd itself: host-1's certificate may not write host-2's heartbeat,
	// nor an allocation; it may read them.
	tlsCfg, err := pki.LoadClientTLS(caFile, h1Cert, h1Key, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, TLS: tlsCfg, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, k := range []string{clusterstore.HeartbeatKey("host-2"), clusterstore.NodeKey("host-2"), clusterstore.AllocationKey("web1")} {
		if _, err := raw.Put(ctx, k, "forged by host-1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("put %s with host-1's certificate: %v, want permission denied", k, err)
		}
	}
	if resp, err := raw.Get(ctx, clusterstore.AllocationKey("web1")); err != nil || len(resp.Kvs) != 1 {
		t.Errorf("host-1 reads web1's allocation: %v", err)
	}
	if _, ok, _, _ := srvStore.Get(ctx, clusterstore.HeartbeatKey("host-2")); ok {
		t.Error("host-2 has a heartbeat")
	}
	ctlJSON(t, apiURL, &w, "workload", "show", "web1")
	if w.State != api.StateRunning || nodeState() != api.NodeReady {
		t.Errorf("at the end: web1 %s, host-1 %s", w.State, nodeState())
	}
	// Nothing the real daemons did was refused.
	for name, p := range map[string]*proc{"server": server, "agent": agent} {
		if o := p.out.String(); strings.Contains(o, "permission denied") || strings.Contains(o, "user name") {
			t.Errorf("%s was refused something by etcd:\n%s", name, o)
		}
	}
}

func dialAs(t *testing.T, endpoint, caFile, cert, key string) clusterstore.Store {
	t.Helper()
	cfg, err := pki.LoadClientTLS(caFile, cert, key, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := etcdstore.DialTLS(ctx, []string{endpoint}, 5*time.Second, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// agentOverHTTPS checks the agent API's HTTPS in TestEtcdAuth: host-1's
// agent registered agentURL (https://), and the server at apiURL, which
// trusts the cluster CA by default, proxies node tasks and workload logs
// from it. A second server whose agents.ca_file is another CA, a client
// trusting another CA, and a plain-HTTP client get nothing.
func agentOverHTTPS(t *testing.T, agentHTTP *http.Client, st clusterstore.Store, apiURL, agentURL, consoleDir string, srvFlags []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n api.Node
	if kv, ok, _, err := st.Get(ctx, clusterstore.NodeKey("host-1")); err != nil || !ok || clusterstore.Decode(kv, &n) != nil {
		t.Fatalf("host-1's node record: %v %v", ok, err)
	}
	if n.AgentURL != agentURL {
		t.Errorf("host-1 registered AgentURL %q, want %q", n.AgentURL, agentURL)
	}
	// node tasks, through bulwarkctl and the server: HTTPS to the agent.
	out, errOut, code := ctl(t, apiURL, "node", "tasks", "host-1")
	if code != 0 || !strings.Contains(out, "web1") {
		t.Errorf("bulwarkctl node tasks host-1: exit %d: %s%s", code, out, errOut)
	}
	// The VM's console log (the test driver writes none: the test does),
	// through the server.
	const line = "console of web1 over HTTPS\n"
	if err := os.WriteFile(filepath.Join(consoleDir, "bulwark-host-1-web1.log"), []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = ctl(t, apiURL, "workload", "logs", "web1")
	if code != 0 || out != line {
		t.Errorf("bulwarkctl workload logs web1: exit %d: %q %s", code, out, errOut)
	}

	// A server that trusts another CA for the agents refuses host-1's
	// certificate, and says which setting to look at.
	otherCADir := filepath.Join(t.TempDir(), "other-ca")
	if _, _, err := pki.InitCA(otherCADir, false); err != nil {
		t.Fatal(err)
	}
	otherCA := filepath.Join(otherCADir, pki.CACertFile)
	addr2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	api2 := "http://" + addr2
	registerToken(api2, tokenFor(apiURL))
	s2 := startProc(t, "bulwarkd", append([]string{"server", "--name", "s2", "--listen", addr2, "--session-ttl", "3s", "--agents-ca-file", otherCA}, srvFlags...)...)
	eventually(t, "the second server's API", 30*time.Second, func() bool {
		if s2.exited() {
			t.Fatalf("second server exited:\n%s", s2.out.String())
		}
		_, _, code := ctl(t, api2, "node", "list")
		return code == 0
	})
	_, errOut, code = ctl(t, api2, "node", "tasks", "host-1")
	if code == 0 || !strings.Contains(errOut, "certificate") || !strings.Contains(errOut, "agents.ca_file") {
		t.Errorf("node tasks through a server trusting another CA: exit %d: %s", code, errOut)
	}
	_, errOut, code = ctl(t, api2, "workload", "logs", "web1")
	if code == 0 || strings.Contains(errOut, "console of web1") || !strings.Contains(errOut, "certificate") {
		t.Errorf("workload logs through a server trusting another CA: exit %d: %s", code, errOut)
	}

	// Clients of the agent itself: another CA's, and plain HTTP.
	otherTLS, err := pki.LoadClientTLS(otherCA, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	other := &http.Client{Transport: &http.Transport{TLSClientConfig: otherTLS}}
	var unknown x509.UnknownAuthorityError
	if resp, err := other.Get(agentURL + "/metrics"); !errors.As(err, &unknown) {
		if err == nil {
			resp.Body.Close()
		}
		t.Errorf("client trusting another CA: %v, want an unknown authority", err)
	}
	resp, err := (&http.Client{Transport: &http.Transport{}}).Get("http://" + strings.TrimPrefix(agentURL, "https://") + "/v1/tasks")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "web1") {
			t.Errorf("plain HTTP to the agent: HTTP %d %q", resp.StatusCode, b)
		}
	}
	// The right CA: the API answers (with the token only).
	resp, err = agentHTTP.Get(agentURL + "/v1/tasks")
	if err != nil {
		t.Fatalf("agent over HTTPS without a token: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("agent over HTTPS without a token: HTTP %d", resp.StatusCode)
	}
}

// metricValue reads an unlabelled sample from Prometheus text; -1 if absent.
func metricValue(text, name string) int {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}
