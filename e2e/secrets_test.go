package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
)

// TestSecretsNeverLeak plants a BMC password (and a wrong one for a second
// host) and drives a real cluster through fencing with them: a server whose
// fencing config reads them from 0600 files, two Redfish BMC emulators
// (`bulwarkd bmc`), two agents with their own API tokens. A VM's host is
// SIGKILLed and fenced through its BMC; the other host's BMC refuses the
// wrong password, first in the health probe, then in a real fence attempt
// after its agent crashed with SIGQUIT (a goroutine dump); the server is
// SIGQUIT last. Then everything the cluster said — every process's output,
// every GET endpoint's headers and body, `bulwarkctl -o json` and table
// output, the whole store — is searched for the passwords (also as a Basic
// auth header), the agents' tokens and the admin API token. A token may
// only be where it belongs: an agent's in its store key, the admin token in
// `bulwarkd token create`'s output.
//
// It also checks that a password file its group or others may read (or
// that holds more than one line) stops the server at start, and fails
// `bulwarkd config check`, with a message naming the file and the reason.
// When the API wants a token, the test makes an admin one with `bulwarkd
// token create` and searches for it too.
func TestSecretsNeverLeak(t *testing.T) {
	dir := t.TempDir()
	pw := "Pl4nted-S3cret-" + randomHex(t, 8)
	wrongPW := "Wr0ng-Pl4nted-" + randomHex(t, 8)
	endpoint := startEmbeddedEtcd(t)
	ev := &evidence{}

	// A password file others may read, or one that holds more than the
	// password, stops the server before it serves, and `config check`
	// finds it; neither quotes the file.
	for _, bad := range []struct {
		name, content string
		mode          os.FileMode
		want          string
	}{
		{"0644", pw + "\n", 0o644, "has mode 0644"},
		{"0640", pw + "\n", 0o640, "has mode 0640"},
		{"two-lines", "user\n" + pw + "\n", 0o600, "has more than one line"},
	} {
		pwFile := writeSecretFile(t, dir, "bad-"+bad.name+".password", bad.content, bad.mode)
		conf := filepath.Join(dir, "bad-"+bad.name+".yaml")
		writeConfig(t, conf, fencingConfig("https://127.0.0.1:1", pwFile, "", "https://127.0.0.1:2", pwFile, ""))
		out, code := runBulwarkd(t, 30*time.Second, "server", "--config", conf, "--name", "s0", "--listen", "127.0.0.1:0", "--etcd", endpoint)
		ev.add("server refusing a password file: "+bad.name, out)
		if code != 78 || !strings.Contains(out, pwFile+" "+bad.want) {
			t.Errorf("server with a password file that %s: exit %d, want 78 and a message saying %q:\n%s", bad.want, code, pwFile+" "+bad.want, out)
		}
		out, code = runBulwarkd(t, 30*time.Second, "config", "check", conf)
		ev.add("config check of a password file: "+bad.name, out)
		if code != 1 || !strings.Contains(out, pwFile+" "+bad.want) {
			t.Errorf("config check with a password file that %s: exit %d, want 1 and %q:\n%s", bad.want, code, pwFile+" "+bad.want, out)
		}
	}

	// Two emulated BMCs that both know the planted password.
	bmcPW := writeSecretFile(t, dir, "bmc.password", pw+"\n", 0o600)
	bmc1, ca1 := startBMCProc(t, dir, "h1", bmcPW)
	bmc2, ca2 := startBMCProc(t, dir, "h2", bmcPW)

	// The server: h1's device has the right password, h2's a wrong one.
	h1PW := writeSecretFile(t, dir, "h1.password", pw+"\n", 0o600)
	h2PW := writeSecretFile(t, dir, "h2.password", wrongPW+"\n", 0o600)
	conf := filepath.Join(dir, "server.yaml")
	writeConfig(t, conf, fencingConfig(bmc1.url, h1PW, ca1, bmc2.url, h2PW, ca2))
	if out, code := runBulwarkd(t, 30*time.Second, "config", "check", conf); code != 0 {
		t.Fatalf("config check %s: exit %d:\n%s", conf, code, out)
	} else {
		ev.add("config check of the server's config", out)
	}
	apiAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	apiURL := "http://" + apiAddr
	server := startProc(t, "bulwarkd", "server", "--config", conf, "--name", "s1", "--listen", apiAddr,
		"--etcd", endpoint, "--session-ttl", "3s", "--log-level", "debug")
	eventually(t, "the server to lead", 30*time.Second, func() bool {
		if server.exited() {
			t.Fatalf("server exited:\n%s", server.out.String())
		}
		h, err := health(apiURL)
		return err == nil && h.IsLeader
	})
	c := &apiClient{t: t, base: apiURL, ev: ev}
	adminToken := c.tokenIfNeeded(endpoint, ev)

	agents := map[string]*proc{}
	for _, h := range []struct{ name, role string }{{"h1", "victim"}, {"h2", "spare"}} {
		hostXML := filepath.Join(dir, h.name+".xml")
		writeTestHost(t, hostXML)
		agents[h.name] = startProc(t, "bulwarkd", "agent", "--name", h.name, "--etcd", endpoint,
			"--libvirt-uri", "test://"+hostXML, "--http-listen", "127.0.0.1:0", "--label", "role="+h.role,
			"--session-ttl", "3s", "--console-log-dir", filepath.Join(dir, "console-"+h.name), "--log-level", "debug")
	}
	// Both ready; the probe finds h1's BMC fine and h2's refusing the
	// wrong password.
	nodes := map[string]api.NodeView{}
	eventually(t, "h1 ready and fenceable, h2 ready and unfenceable", 60*time.Second, func() bool {
		var list []api.NodeView
		if !c.getJSON("/v1/nodes", &list) {
			return false
		}
		for _, n := range list {
			nodes[n.Name] = n
		}
		return nodes["h1"].State == api.NodeReady && nodes["h1"].Fencing == "ok" &&
			nodes["h2"].State == api.NodeReady && strings.HasPrefix(nodes["h2"].Fencing, "unfenceable: ")
	})
	if !strings.Contains(nodes["h2"].Fencing, "authentication") {
		t.Errorf("h2's fencing %q does not say its BMC refused the login", nodes["h2"].Fencing)
	}

	store, err := etcdstore.Dial(context.Background(), []string{endpoint}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	agentTokens := map[string]string{}
	for h := range agents {
		tok, err := clusterstore.AgentToken(context.Background(), store, h)
		if err != nil || len(tok) < 16 {
			t.Fatalf("agent token of %s: %q, %v", h, tok, err)
		}
		agentTokens[h] = tok
	}

	// A VM on h1 (it prefers the victim's label).
	if out, errOut, code := c.ctl("vm", "create", "db", "--cpus", "1", "--memory", "256MiB", "--prefer", "role=victim:100"); code != 0 {
		t.Fatalf("vm create: exit %d: %s %s", code, out, errOut)
	} else {
		ev.add("bulwarkctl vm create", out+errOut)
	}
	var w api.WorkloadView
	eventually(t, "db running on h1", 30*time.Second, func() bool {
		return c.getJSON("/v1/workloads/db", &w) && w.State == api.StateRunning
	})
	if w.Host != "h1" {
		t.Fatalf("db runs on %s, want h1 (it prefers role=victim)", w.Host)
	}
	c.sweep("healthy", []string{"h1", "h2"}, nodes, agentTokens)
	c.cli("healthy", []string{"h1", "h2"})

	// Crash h1: the server fences it through its BMC, db restarts on h2.
	if err := syscall.Kill(-agents["h1"].cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "db running on h2 after h1 was fenced", 60*time.Second, func() bool {
		var n api.NodeView
		return c.getJSON("/v1/workloads/db", &w) && w.State == api.StateRunning && w.Host == "h2" &&
			c.getJSON("/v1/nodes/h1", &n) && (n.State == api.NodeFenced || n.State == api.NodeRecovered)
	})
	t.Logf("h1 SIGKILLed; fenced through its BMC and db running on h2 after %s", took.Round(time.Millisecond))
	c.sweep("after fencing h1", []string{"h2"}, nodes, agentTokens)
	c.cli("after fencing h1", []string{"h2"})

	// Crash h2 with a goroutine dump; its BMC refuses the fence.
	if err := syscall.Kill(agents["h2"].cmd.Process.Pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-agents["h2"].done:
	case <-time.After(20 * time.Second):
		t.Fatal("h2's agent did not exit on SIGQUIT")
	}
	if out := agents["h2"].out.String(); !strings.Contains(out, "goroutine ") {
		t.Errorf("h2's agent printed no goroutine dump on SIGQUIT:\n%s", tail(out, 2000))
	}
	eventually(t, "a failed fence of h2", 60*time.Second, func() bool {
		var events []api.Event
		if !c.getJSON("/v1/events?host=h2&type=fence-failed", &events) {
			return false
		}
		for _, e := range events {
			if e.Type == "fence-failed" && e.Host == "h2" {
				return true
			}
		}
		return false
	})
	c.sweep("after a failed fence of h2", nil, nodes, agentTokens)
	c.cli("after a failed fence of h2", nil)
	if !strings.Contains(server.out.String(), "authentication") {
		t.Errorf("the server's log does not mention the refused login (so the test proves little):\n%s", tail(server.out.String(), 3000))
	}

	// What the store holds.
	kvs, _, err := store.List(context.Background(), clusterstore.Prefix, 0)
	if err != nil {
		t.Fatal(err)
	}
	var storeLeaks []string
	for _, kv := range kvs {
		v := string(kv.Value)
		for _, s := range []string{pw, wrongPW} {
			if strings.Contains(v, s) || strings.Contains(kv.Key, s) {
				storeLeaks = append(storeLeaks, "a BMC password in "+kv.Key)
			}
		}
		for h, tok := range agentTokens {
			if strings.Contains(v, tok) && kv.Key != clusterstore.AgentTokenKey(h) {
				storeLeaks = append(storeLeaks, fmt.Sprintf("%s's agent token in %s", h, kv.Key))
			}
		}
		if adminToken != "" && (strings.Contains(v, adminToken) || strings.Contains(kv.Key, adminToken)) {
			storeLeaks = append(storeLeaks, "the admin API token (unhashed) in "+kv.Key)
		}
	}
	for _, l := range storeLeaks {
		t.Errorf("store: %s", l)
	}

	// A crash message: SIGQUIT the server (Go's goroutine dump).
	if err := syscall.Kill(server.cmd.Process.Pid, syscall.SIGQUIT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-server.done:
	case <-time.After(20 * time.Second):
		t.Fatal("server did not exit on SIGQUIT")
	}
	if !strings.Contains(server.out.String(), "goroutine ") {
		t.Errorf("the server printed no goroutine dump on SIGQUIT")
	}

	ev.add("server output", server.out.String())
	for h, p := range agents {
		ev.add("agent "+h+" output", p.out.String())
	}
	ev.add("bmc h1 output", bmc1.p.out.String())
	ev.add("bmc h2 output", bmc2.p.out.String())

	needles := map[string]string{
		"the BMC password":                       pw,
		"the wrong BMC password":                 wrongPW,
		"the BMC password as Basic auth":         base64.StdEncoding.EncodeToString([]byte("fence:" + pw)),
		"the wrong BMC password as Basic auth":   base64.StdEncoding.EncodeToString([]byte("fence:" + wrongPW)),
		"the BMC password in base64":             strings.TrimRight(base64.StdEncoding.EncodeToString([]byte(pw)), "="),
		"the admin API token":                    adminToken,
		"h1's agent token":                       agentTokens["h1"],
		"h2's agent token":                       agentTokens["h2"],
		"h1's agent token (first half, cut off)": agentTokens["h1"][:len(agentTokens["h1"])/2],
	}
	leaks := ev.find(needles)
	for _, l := range leaks {
		t.Errorf("LEAK: %s", l)
	}
	t.Logf("searched %d outputs (%d bytes: 5 processes' output, %d HTTP responses, %d bulwarkctl runs, 3 refused starts, 4 config checks) and %d store keys for %d secrets: %d leaks",
		len(ev.items), ev.size(), c.requests, c.ctlRuns, len(kvs), len(needles), len(leaks)+len(storeLeaks))
}

// evidence is everything the cluster said, by where it came from.
type evidence struct {
	mu    sync.Mutex
	items []evidenceItem
}

type evidenceItem struct{ where, text string }

func (e *evidence) add(where, text string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.items = append(e.items, evidenceItem{where, text})
}

func (e *evidence) size() int {
	n := 0
	for _, it := range e.items {
		n += len(it.text)
	}
	return n
}

// find reports every place a needle occurs, with some context.
func (e *evidence) find(needles map[string]string) []string {
	var out []string
	for what, n := range needles {
		if n == "" {
			continue
		}
		for _, it := range e.items {
			if i := strings.Index(it.text, n); i >= 0 {
				lo, hi := max(0, i-120), min(len(it.text), i+len(n)+120)
				out = append(out, fmt.Sprintf("%s in %s: …%s…", what, it.where, it.text[lo:hi]))
			}
		}
	}
	sort.Strings(out)
	return out
}

// apiClient makes the test's API requests and keeps what came back.
type apiClient struct {
	t        *testing.T
	base     string
	token    string
	ev       *evidence
	requests int
	ctlRuns  int
}

// tokenIfNeeded creates an admin API token when the server wants one; the
// client sends it, and hands it to bulwarkctl in $BULWARK_TOKEN.
func (c *apiClient) tokenIfNeeded(endpoint string, ev *evidence) string {
	c.t.Helper()
	resp, err := http.Get(c.base + "/v1/nodes")
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ev.add("GET /v1/nodes without a token", dumpResponse(resp, body))
	if resp.StatusCode != http.StatusUnauthorized {
		return ""
	}
	// Flags before the name: the CLI stops reading flags at the first argument.
	args := []string{"token", "create", "--role", "admin", "--etcd", endpoint}
	if help, _ := runBulwarkd(c.t, 10*time.Second, "token", "create", "--help"); strings.Contains(help, "--config") {
		args = append(args, "--config", os.DevNull)
	}
	args = append(args, "leak-check")
	out, code := runBulwarkd(c.t, 30*time.Second, args...)
	if code != 0 {
		c.t.Fatalf("the API wants a token, but bulwarkd token create failed (exit %d):\n%s", code, out)
	}
	tok := strings.TrimSpace(strings.SplitN(strings.TrimSpace(out), "\n", 2)[0])
	if len(tok) < 16 {
		c.t.Fatalf("bulwarkd token create printed no token:\n%s", out)
	}
	c.token = tok
	return tok
}

func (c *apiClient) get(url string, token string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := http.Client{Timeout: 5 * time.Second}
	if strings.HasSuffix(url, "/stream") {
		hc.Timeout = 1500 * time.Millisecond // a stream: its first updates are enough
	}
	resp, err := hc.Do(req)
	if err != nil {
		c.ev.add("GET "+url, "error: "+err.Error())
		return 0, nil
	}
	defer resp.Body.Close()
	// A stream (SSE) ends at the client's timeout: keep what came.
	body, _ := io.ReadAll(resp.Body)
	c.requests++
	c.ev.add("GET "+url, dumpResponse(resp, body))
	return resp.StatusCode, body
}

func (c *apiClient) getJSON(path string, v any) bool {
	c.t.Helper()
	code, body := c.get(c.base+path, c.token)
	return code == http.StatusOK && json.Unmarshal(body, v) == nil
}

// sweep GETs every read endpoint of the server, and of the live agents
// directly (with their tokens, and with wrong ones).
func (c *apiClient) sweep(phase string, live []string, nodes map[string]api.NodeView, tokens map[string]string) {
	c.t.Helper()
	mustOK := []string{"/v1/health", "/v1/nodes", "/v1/nodes/h1", "/v1/nodes/h2", "/v1/workloads", "/v1/workloads/db",
		"/v1/workloads/db/explain", "/v1/allocations", "/v1/events", "/v1/events?host=h1", "/v1/events?type=fence-failed",
		"/v1/settings", "/v1/whatif", "/v1/whatif?fail=h2", "/v1/volumes", "/v1/vips", "/metrics", "/ui/", "/ui/state.json"}
	for _, h := range live {
		mustOK = append(mustOK, "/v1/nodes/"+h+"/tasks")
	}
	for _, p := range mustOK {
		if code, body := c.get(c.base+p, c.token); code != http.StatusOK {
			c.t.Errorf("%s: GET %s: HTTP %d: %s", phase, p, code, body)
		}
	}
	// Answers that may be errors: their bodies count too.
	for _, p := range []string{"/v1/nodes/h1/tasks", "/v1/nodes/h2/tasks", "/v1/workloads/db/logs", "/v1/nodes/nope",
		"/v1/workloads/nope", "/v1/whatif?fail=Bad_Name", "/ui/stream"} {
		c.get(c.base+p, c.token)
	}
	// Someone else's token, and an agent's, are refused without an echo.
	c.get(c.base+"/v1/nodes", tokens["h1"])
	c.get(c.base+"/v1/nodes", "not-"+tokens["h2"])
	for _, h := range live {
		u := nodes[h].AgentURL
		if u == "" {
			c.t.Errorf("%s registered no agent URL", h)
			continue
		}
		if code, body := c.get(u+"/v1/tasks", tokens[h]); code != http.StatusOK {
			c.t.Errorf("%s: agent %s: GET /v1/tasks: HTTP %d: %s", phase, h, code, body)
		}
		c.get(u+"/metrics", "")
		c.get(u+"/v1/logs/db", tokens[h])
		other := tokens["h1"]
		if h == "h1" {
			other = tokens["h2"]
		}
		if code, _ := c.get(u+"/v1/tasks", other); code != http.StatusUnauthorized {
			c.t.Errorf("agent %s answered another agent's token: HTTP %d", h, code)
		}
		c.get(u+"/v1/tasks", "")
	}
}

// cli runs bulwarkctl's read commands, as JSON and as tables.
func (c *apiClient) cli(phase string, live []string) {
	c.t.Helper()
	cmds := [][]string{{"node", "list"}, {"node", "show", "h1"}, {"node", "show", "h2"}, {"workload", "list"},
		{"workload", "show", "db"}, {"events"}, {"status"}, {"settings", "show"}, {"whatif"}, {"explain", "db"}}
	for _, h := range live {
		cmds = append(cmds, []string{"node", "tasks", h})
	}
	for _, args := range cmds {
		for _, format := range []string{"json", ""} {
			full := args
			if format != "" {
				full = append([]string{"-o", format}, args...)
			}
			out, errOut, code := c.ctl(full...)
			c.ev.add("bulwarkctl "+strings.Join(full, " "), out+"\n"+errOut)
			if code != 0 {
				c.t.Errorf("%s: bulwarkctl %s: exit %d: %s", phase, strings.Join(full, " "), code, errOut)
			}
		}
	}
	// Errors print too.
	out, errOut, _ := c.ctl("-o", "json", "workload", "logs", "db")
	c.ev.add("bulwarkctl -o json workload logs db", out+"\n"+errOut)
}

// ctl is the e2e ctl helper with this client's token (ctl itself passes
// the token a test registered for the API, if any).
func (c *apiClient) ctl(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "bulwarkctl"), append([]string{"--api", c.base}, args...)...)
	cmd.Env = append(os.Environ(), "BULWARK_TOKEN="+c.token)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("bulwarkctl %v: %v", args, err)
	}
	c.ctlRuns++
	return out.String(), errOut.String(), code
}

func dumpResponse(resp *http.Response, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d\n", resp.StatusCode)
	for k, vs := range resp.Header {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(vs, ", "))
	}
	b.WriteString("\n")
	b.Write(body)
	return b.String()
}

// bmcProc is a `bulwarkd bmc` emulator.
type bmcProc struct {
	p   *proc
	url string
}

// startBMCProc runs `bulwarkd bmc` for host with the password in pwFile and
// returns it with the file of its certificate (the CA file for the server).
func startBMCProc(t *testing.T, dir, host, pwFile string) (*bmcProc, string) {
	t.Helper()
	ca := filepath.Join(dir, host+"-bmc.pem")
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := startProc(t, "bulwarkd", "--log-level", "debug", "bmc", "--listen", addr, "--username", "fence",
		"--password-file", pwFile, "--cert-out", ca)
	waitLine(t, p, "Redfish BMC emulator is up", 30*time.Second)
	return &bmcProc{p: p, url: "https://" + addr}, ca
}

// fencingConfig is a server.yaml with one Redfish device per host.
func fencingConfig(url1, pw1, ca1, url2, pw2, ca2 string) string {
	dev := func(host, url, pw, ca string) string {
		s := fmt.Sprintf("    %s:\n      - name: %s-bmc\n        type: redfish\n        url: %s\n        username: fence\n        password_file: %s\n", host, host, url, pw)
		if ca != "" {
			s += "        ca_file: " + ca + "\n"
		} else {
			s += "        insecure: true\n"
		}
		return s
	}
	return "kind: server\nfencing:\n  check_interval: 1s\n  device_timeout: 5s\n  retry_interval: 2s\n  hosts:\n" +
		dev("h1", url1, pw1, ca1) + dev("h2", url2, pw2, ca2)
}

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSecretFile writes content with exactly mode (not masked by umask).
func writeSecretFile(t *testing.T, dir, name, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// runBulwarkd runs bulwarkd to its end and returns its output and exit code.
func runBulwarkd(t *testing.T, timeout time.Duration, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "bulwarkd"), args...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("bulwarkd %v: %v", args, err)
	return "", -1
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
