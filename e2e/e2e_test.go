// Package e2e drives the real binaries: `bulwarkd dev`, `bulwarkd server`,
// `bulwarkd agent` and `bulwarkctl`, as separate OS processes against a real
// (embedded) etcd and libvirt's test driver.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var binDir string

// tokens maps an API's host:port to an admin token for it: the dev
// clusters' (read from their data dirs) and those the tests create.
var tokens sync.Map

// registerToken makes every request to apiURL from this test process, and
// every bulwarkctl run against it, carry tok.
func registerToken(apiURL, tok string) {
	u, err := url.Parse(apiURL)
	if err == nil {
		tokens.Store(u.Host, strings.TrimSpace(tok))
	}
}

func tokenFor(apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil {
		return ""
	}
	if v, ok := tokens.Load(u.Host); ok {
		return v.(string)
	}
	return ""
}

// tokenTransport adds the registered token to requests that carry none.
type tokenTransport struct{ base http.RoundTripper }

func (tt tokenTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Authorization") == "" {
		if v, ok := tokens.Load(r.URL.Host); ok {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+v.(string))
		}
	}
	return tt.base.RoundTrip(r)
}

func TestMain(m *testing.M) {
	http.DefaultTransport = tokenTransport{http.DefaultTransport}
	binDir = os.Getenv("BULWARK_TEST_BIN")
	if binDir == "" {
		// Not run through `make test`: build the binaries ourselves.
		dir, err := os.MkdirTemp("", "bulwark-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Dir(filepath.Dir(file))
		cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/bulwarkd", "./cmd/bulwarkctl")
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build binaries:", err)
			os.Exit(1)
		}
		binDir = dir
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proc is a child process the test owns; it is killed at cleanup.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, name), args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if t.Failed() {
			t.Logf("--- output of %s %v:\n%s", name, args, p.out.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ctl runs bulwarkctl and returns stdout, stderr and the exit code.
func ctl(t *testing.T, apiURL string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "bulwarkctl"), append([]string{"--api", apiURL}, args...)...)
	cmd.Env = append(os.Environ(), "BULWARK_TOKEN="+tokenFor(apiURL))
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("bulwarkctl %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func ctlJSON(t *testing.T, apiURL string, v any, args ...string) {
	t.Helper()
	out, errOut, code := ctl(t, apiURL, append([]string{"-o", "json"}, args...)...)
	if code != 0 {
		t.Fatalf("bulwarkctl %v: exit %d: %s", args, code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("bulwarkctl %v: not JSON: %v\n%s", args, err, out)
	}
}

func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func health(apiURL string) (api.Health, error) {
	var h api.Health
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(apiURL + "/v1/health")
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&h)
	return h, err
}

// agentTasks asks a host's agent what its driver really runs, through the
// server (which holds the agent's token).
func agentTasks(t *testing.T, apiURL, host string) []api.Task {
	t.Helper()
	resp, err := http.Get(apiURL + "/v1/nodes/" + host + "/tasks")
	if err != nil {
		t.Fatalf("agent tasks: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("agent tasks of %s: HTTP %d", host, resp.StatusCode)
	}
	var tasks []api.Task
	if err := json.NewDecoder(resp.Body).Decode(&tasks); err != nil {
		t.Fatalf("agent tasks: %v", err)
	}
	return tasks
}

// pidsWith lists processes whose command line contains s.
func pidsWith(s string) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie has exited; it only waits to be reaped.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func waitLine(t *testing.T, p *proc, substr string, timeout time.Duration) {
	t.Helper()
	eventually(t, fmt.Sprintf("output %q", substr), timeout, func() bool {
		if p.exited() {
			t.Fatalf("process exited early:\n%s", p.out.String())
		}
		return strings.Contains(p.out.String(), substr)
	})
}

// TestDevClusterTour is the README's tour, run for real: three hosts, a VM
// created, running, deleted and gone from its host's hypervisor; bad CLI
// input changes nothing; Ctrl-C leaves no process behind.
func TestDevClusterTour(t *testing.T) {
	apiURL, dev, dataDir := startDev(t, 3)

	var nodes []api.NodeView
	ctlJSON(t, apiURL, &nodes, "node", "list")
	if len(nodes) != 3 {
		t.Fatalf("want 3 nodes, got %d", len(nodes))
	}
	agentURL := map[string]string{}
	for _, n := range nodes {
		if n.State != api.NodeReady {
			t.Fatalf("node %s is %s", n.Name, n.State)
		}
		agentURL[n.Name] = n.AgentURL
	}
	out, _, code := ctl(t, apiURL, "node", "list")
	if code != 0 || !strings.Contains(out, "NAME") || !strings.Contains(out, "host-1") {
		t.Fatalf("node list table:\n%s", out)
	}
	// The agent's own API wants its token: without it, 401.
	for name, u := range agentURL {
		for _, path := range []string{"/v1/tasks", "/v1/logs/x"} {
			resp, err := http.Get(u + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("agent of %s answered %s without a token: HTTP %d", name, path, resp.StatusCode)
			}
		}
	}

	if _, errOut, code := ctl(t, apiURL, "vm", "create", "web1", "--cpus", "1", "--memory", "256MiB"); code != 0 {
		t.Fatalf("vm create: exit %d: %s", code, errOut)
	}
	var w api.WorkloadView
	took := eventually(t, "web1 running", 5*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "web1")
		return w.State == api.StateRunning
	})
	t.Logf("web1 running on %s %s after create (epoch %d)", w.Host, took.Round(time.Millisecond), w.Epoch)
	if w.Kind != api.KindVM || w.Host == "" {
		t.Fatalf("workload show: %+v", w)
	}
	tasks := agentTasks(t, apiURL, w.Host)
	if len(tasks) != 1 || tasks[0].Workload != "web1" || tasks[0].State != "running" || tasks[0].Epoch != w.Epoch {
		t.Fatalf("tasks on %s: %+v", w.Host, tasks)
	}
	// The store keeps the driver's record of the instance, as the host has it.
	eventually(t, "web1's runtime record", 5*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "web1")
		return w.Runtime != nil
	})
	if w.Runtime.Driver != "libvirt" || w.Runtime.ID != tasks[0].ID || w.Runtime.ID == "" {
		t.Fatalf("runtime record %+v, task %+v", w.Runtime, tasks[0])
	}

	// Bad input: a clear error, a non-zero exit, and the store unchanged.
	h0, err := health(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	bad := [][]string{
		{"vm", "create", "Web_1", "--cpus", "1", "--memory", "256MiB"},
		{"vm", "create", strings.Repeat("a", 64), "--cpus", "1", "--memory", "256MiB"},
		{"vm", "create", "x1", "--cpus", "0", "--memory", "256MiB"},
		{"vm", "create", "x1", "--cpus", "1", "--memory", "10MiB"},
		{"vm", "create", "x1", "--cpus", "1", "--memory", "lots"},
		{"vm", "create", "web1", "--cpus", "1", "--memory", "256MiB"}, // exists
	}
	for _, args := range bad {
		_, errOut, code := ctl(t, apiURL, args...)
		if code == 0 || !strings.Contains(errOut, "error") {
			t.Errorf("%v: exit %d, stderr %q", args, code, errOut)
		}
	}
	spec := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(spec, []byte("name: x2\nkind: vm\ncpus: 1\nmemory: 256MiB\ncolour: red\n"), 0o600)
	if _, errOut, code := ctl(t, apiURL, "apply", "-f", spec); code == 0 || !strings.Contains(errOut, "colour") {
		t.Errorf("apply with unknown field: exit %d, %q", code, errOut)
	}
	if h1, _ := health(apiURL); h1.Revision != h0.Revision {
		t.Errorf("store changed by rejected commands: revision %d -> %d", h0.Revision, h1.Revision)
	}

	// A workload larger than every host is accepted and stays pending, with a reason.
	if _, errOut, code := ctl(t, apiURL, "vm", "create", "huge", "--cpus", "64", "--memory", "1GiB"); code != 0 {
		t.Fatalf("vm create huge: %s", errOut)
	}
	eventually(t, "huge pending with reason", 5*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "huge")
		return w.State == api.StatePending && strings.Contains(w.Reason, "larger than every host")
	})

	// apply -f with a good file.
	good := filepath.Join(t.TempDir(), "db.yaml")
	os.WriteFile(good, []byte("name: db\nkind: vm\ncpus: 2\nmemory: 1GiB\npriority: 100\nlabels:\n  tier: db\n"), 0o600)
	if _, errOut, code := ctl(t, apiURL, "apply", "-f", good); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	eventually(t, "db running", 5*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "db")
		return w.State == api.StateRunning
	})

	// Delete: the domain leaves its host's hypervisor, then the record goes.
	var web api.WorkloadView
	ctlJSON(t, apiURL, &web, "workload", "show", "web1")
	if _, errOut, code := ctl(t, apiURL, "workload", "delete", "web1"); code != 0 {
		t.Fatalf("delete: %s", errOut)
	}
	eventually(t, "web1 gone from "+web.Host, 5*time.Second, func() bool {
		for _, tk := range agentTasks(t, apiURL, web.Host) {
			if tk.Workload == "web1" {
				return false
			}
		}
		return true
	})
	eventually(t, "web1 record gone", 5*time.Second, func() bool {
		_, _, code := ctl(t, apiURL, "workload", "show", "web1")
		return code != 0
	})

	// Ctrl-C stops everything the dev cluster started.
	pids := pidsWith(dataDir)
	if len(pids) < 3 {
		t.Fatalf("expected agent processes under %s, found %v", dataDir, pids)
	}
	if err := dev.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-dev.done:
	case <-time.After(30 * time.Second):
		t.Fatal("bulwarkd dev did not stop within 30s of SIGINT")
	}
	for _, pid := range pids {
		if pid != dev.cmd.Process.Pid && alive(pid) {
			t.Errorf("process %d is still running after dev stopped", pid)
		}
	}
	if !strings.Contains(dev.out.String(), "nothing left running") {
		t.Errorf("dev did not report a clean stop:\n%s", dev.out.String())
	}
}

// leaderOf returns the URL of the replica that says it leads.
func leaderOf(t *testing.T, urls []string) string {
	for _, u := range urls {
		if h, err := health(u); err == nil && h.IsLeader {
			return u
		}
	}
	return ""
}

// TestServerReplicasLeaderKilled: two `bulwarkd server` processes against one
// etcd; SIGKILL the leader; the other takes over within the session TTL and
// places a workload created afterwards.
// createToken makes an API token with `bulwarkd token create`, as an
// operator on a server host would.
func createToken(t *testing.T, etcdEndpoint, name, role string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "bulwarkd"), "token", "create", name, "--role", role, "--etcd", etcdEndpoint, "--config", "/dev/null")
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("bulwarkd token create: %v: %s", err, errOut.String())
	}
	return strings.TrimSpace(out.String())
}

func TestServerReplicasLeaderKilled(t *testing.T) {
	endpoint := startEmbeddedEtcd(t)
	ttl := 3 * time.Second
	var urls []string
	servers := map[string]*proc{}
	for _, name := range []string{"s1", "s2"} {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		urls = append(urls, "http://"+addr)
		servers["http://"+addr] = startProc(t, "bulwarkd", "server", "--name", name, "--listen", addr, "--etcd", endpoint, "--session-ttl", ttl.String())
	}
	dir := t.TempDir()
	hostXML := filepath.Join(dir, "host.xml")
	writeTestHost(t, hostXML)
	startProc(t, "bulwarkd", "agent", "--name", "h1", "--etcd", endpoint, "--libvirt-uri", "test://"+hostXML, "--session-ttl", ttl.String())
	tok := createToken(t, endpoint, "e2e-admin", "admin")
	for _, u := range urls {
		registerToken(u, tok)
	}

	var first string
	eventually(t, "a leader", 20*time.Second, func() bool { first = leaderOf(t, urls); return first != "" })
	var other string
	for _, u := range urls {
		if u != first {
			other = u
		}
	}
	eventually(t, "h1 ready", 20*time.Second, func() bool {
		out, _, code := ctl(t, other, "-o", "json", "node", "list")
		return code == 0 && strings.Contains(out, `"ready"`)
	})
	if _, errOut, code := ctl(t, other, "vm", "create", "before", "--cpus", "1", "--memory", "256MiB"); code != 0 {
		t.Fatal(errOut)
	}
	var w api.WorkloadView
	eventually(t, "before running", 10*time.Second, func() bool {
		ctlJSON(t, other, &w, "workload", "show", "before")
		return w.State == api.StateRunning
	})

	if err := servers[first].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, "the other replica to lead", 2*ttl+5*time.Second, func() bool {
		h, err := health(other)
		return err == nil && h.IsLeader
	})
	t.Logf("leader SIGKILLed; %s took over after %s (session TTL %s)", other, took.Round(time.Millisecond), ttl)

	if _, errOut, code := ctl(t, other, "vm", "create", "after", "--cpus", "1", "--memory", "256MiB"); code != 0 {
		t.Fatal(errOut)
	}
	eventually(t, "after running", 10*time.Second, func() bool {
		ctlJSON(t, other, &w, "workload", "show", "after")
		return w.State == api.StateRunning && w.Host == "h1"
	})
	// The workload placed by the dead leader is untouched.
	ctlJSON(t, other, &w, "workload", "show", "before")
	if w.State != api.StateRunning {
		t.Fatalf("before: %+v", w)
	}
}

// startDev runs `bulwarkd dev` and waits until it is up.
func startDev(t *testing.T, hosts int) (apiURL string, dev *proc, dataDir string) {
	t.Helper()
	apiURL, dev, dataDir, _ = startDevWith(t, hosts)
	return apiURL, dev, dataDir
}

// startDevWith starts a dev cluster with extra flags; etcdPort also names
// its network namespaces with --netns ("bwd<etcdPort>-host-1").
func startDevWith(t *testing.T, hosts int, extra ...string) (apiURL string, dev *proc, dataDir string, etcdPort int) {
	t.Helper()
	var apiAddr string
	// Free ports are picked, closed, then bound by the dev cluster: with many
	// tests in parallel another process may take one in between. Such a
	// start is retried with fresh ports; any other early exit fails.
	for attempt := 1; ; attempt++ {
		dataDir = t.TempDir()
		apiAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		etcdPort = freePort(t)
		args := append([]string{"dev", "--hosts", strconv.Itoa(hosts), "--data-dir", dataDir, "--api-addr", apiAddr, "--etcd-port", strconv.Itoa(etcdPort)}, extra...)
		dev = startProc(t, "bulwarkd", args...)
		eventually(t, "dev cluster up or exited", 90*time.Second, func() bool {
			return dev.exited() || strings.Contains(dev.out.String(), "Bulwark dev cluster is up")
		})
		if !dev.exited() {
			break
		}
		if attempt == 3 || !strings.Contains(dev.out.String(), "address already in use") {
			t.Fatalf("process exited early:\n%s", dev.out.String())
		}
		t.Logf("dev cluster start lost a port race, retrying:\n%s", dev.out.String())
	}
	tok, err := os.ReadFile(filepath.Join(dataDir, "admin.token"))
	if err != nil {
		t.Fatalf("dev cluster admin token: %v", err)
	}
	registerToken("http://"+apiAddr, string(tok))
	return "http://" + apiAddr, dev, dataDir, etcdPort
}

// TestSchedulerThroughCLI: constraints, anti-affinity, strategy and explain,
// driven through bulwarkctl against a dev cluster (host-1 and host-3 are in
// rack r1, host-2 in rack r2).
func TestSchedulerThroughCLI(t *testing.T) {
	apiURL, _, _ := startDev(t, 3)
	if out, errOut, code := ctl(t, apiURL, "settings", "set", "--strategy", "spread"); code != 0 || !strings.Contains(out, "spread") {
		t.Fatalf("settings set: %d %s %s", code, out, errOut)
	}
	if _, errOut, code := ctl(t, apiURL, "vm", "create", "r2-only", "--require", "rack=r2"); code != 0 {
		t.Fatal(errOut)
	}
	for i := 1; i <= 4; i++ {
		if _, errOut, code := ctl(t, apiURL, "vm", "create", fmt.Sprintf("g%d", i), "--anti-affinity", "g", "--spread-by", "rack"); code != 0 {
			t.Fatal(errOut)
		}
	}
	var w api.WorkloadView
	eventually(t, "r2-only running on host-2", 5*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "r2-only")
		return w.State == api.StateRunning && w.Host == "host-2"
	})
	eventually(t, "g4 pending on anti-affinity", 5*time.Second, func() bool {
		ctlJSON(t, apiURL, &w, "workload", "show", "g4")
		return w.State == api.StatePending && strings.Contains(w.Reason, "anti-affinity group g")
	})
	hosts := map[string]bool{}
	for i := 1; i <= 3; i++ {
		ctlJSON(t, apiURL, &w, "workload", "show", fmt.Sprintf("g%d", i))
		hosts[w.Host] = true
	}
	if len(hosts) != 3 {
		t.Fatalf("group g not spread over 3 hosts: %v", hosts)
	}
	var e api.Explanation
	ctlJSON(t, apiURL, &e, "explain", "g4")
	for _, h := range e.Hosts {
		if h.Feasible || !strings.Contains(h.Reason, "anti-affinity: ") {
			t.Errorf("explain g4: %+v", h)
		}
	}
	out, _, code := ctl(t, apiURL, "explain", "r2-only")
	if code != 0 || !strings.Contains(out, "placed on host-2") || !strings.Contains(out, "label rack=r2 not met") {
		t.Fatalf("explain table:\n%s", out)
	}

	// Bad input: clear error, nothing changed.
	h0, _ := health(apiURL)
	for _, args := range [][]string{
		{"vm", "create", "x", "--require", "rack in r1"},
		{"vm", "create", "x", "--prefer", "disk=ssd:0"},
		{"vm", "create", "x", "--anti-affinity", "Not_A_Label"},
		{"vm", "create", "x", "--priority", "1001"},
		{"settings", "set", "--strategy", "roundrobin"},
		{"settings", "set", "--tolerate-host-failures", "99"},
	} {
		if _, errOut, code := ctl(t, apiURL, args...); code == 0 || !strings.Contains(errOut, "error") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
	if h1, _ := health(apiURL); h1.Revision != h0.Revision {
		t.Errorf("store changed by rejected commands: %d -> %d", h0.Revision, h1.Revision)
	}
}
