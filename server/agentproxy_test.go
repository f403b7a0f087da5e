package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/pki"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// testCA is a cluster CA of package pki, as `bulwarkd ca init` makes it.
type testCA struct {
	t   *testing.T
	dir string
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	dir := t.TempDir()
	if _, _, err := pki.InitCA(dir, false); err != nil {
		t.Fatal(err)
	}
	return testCA{t, dir}
}

func (c testCA) caFile() string { return filepath.Join(c.dir, pki.CACertFile) }

// agentTLS is the server side of an agent certificate for hosts.
func (c testCA) agentTLS(name string, hosts ...string) *tls.Config {
	c.t.Helper()
	cert, key, err := pki.Issue(pki.IssueRequest{CADir: c.dir, Name: name, Kind: pki.KindAgent, Hosts: hosts, OutDir: filepath.Join(c.dir, "agent"), Force: true})
	if err != nil {
		c.t.Fatal(err)
	}
	cfg, err := pki.LoadServerTLS(cert, key, "", false)
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// clientTLS trusts the CA, as the server's agents.ca_file does.
func (c testCA) clientTLS() *tls.Config {
	c.t.Helper()
	cfg, err := pki.LoadClientTLS(c.caFile(), "", "", "")
	if err != nil {
		c.t.Fatal(err)
	}
	return cfg
}

// TestAgentProxyOverTLS: the server calls an agent that serves HTTPS with
// its agent certificate at the https:// URL it registered, verifies the
// certificate against the cluster CA it is given, and sends the agent's
// token only over that connection. A server trusting another CA, or only
// the system's CAs, and a certificate that does not name the registered
// address are refused, with what to fix.
func TestAgentProxyOverTLS(t *testing.T) {
	ca := newTestCA(t)
	var mu sync.Mutex
	var calls []string
	seen := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), calls...) }
	agentMux := http.NewServeMux()
	agentMux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization")+" tls="+boolText(r.TLS != nil))
		switch r.URL.Path {
		case "/v1/tasks":
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode([]api.Task{{Workload: "web1", State: "running"}})
		case "/v1/logs/web1":
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "booting\nup\n")
		default:
			http.NotFound(w, r)
		}
	})
	start := func(cfg *tls.Config) string {
		ts := httptest.NewUnstartedServer(agentMux)
		ts.TLS = cfg
		ts.StartTLS()
		t.Cleanup(ts.Close)
		return ts.URL
	}
	good := start(ca.agentTLS("h1", "h1", "127.0.0.1"))
	elsewhere := start(ca.agentTLS("h2", "h2", "10.9.9.9"))
	if !strings.HasPrefix(good, "https://127.0.0.1:") {
		t.Fatalf("agent URL %s", good)
	}

	st := memory.New()
	t.Cleanup(func() { st.Close() })
	register := func(host, url string) {
		n := api.Node{Schema: api.SchemaVersion, Name: host, CPUs: 4, Memory: 8 * api.GiB, AgentURL: url}
		a := api.Allocation{Schema: api.SchemaVersion, Workload: "web1", Host: "h1", CPUs: 1, Memory: api.GiB}
		if _, _, err := st.Txn(context.Background(), nil, []clusterstore.Op{
			clusterstore.Put(clusterstore.NodeKey(host), clusterstore.Encode(n)),
			clusterstore.Put(clusterstore.AgentTokenKey(host), []byte("tok-"+host)),
			clusterstore.Put(clusterstore.AllocationKey("web1"), clusterstore.Encode(a)),
		}); err != nil {
			t.Fatal(err)
		}
	}
	register("h1", good)
	register("h2", elsewhere)
	health := func(context.Context) api.Health { return api.Health{Status: "ok"} }
	serverAPI := func(agents *http.Client) string {
		ts := httptest.NewServer(newHandler(st, quietLog(), health, scheduler.New(scheduler.Options{}), FencingConfig{}, agents))
		t.Cleanup(ts.Close)
		return ts.URL
	}
	trusting := serverAPI(newAgentClient(ca.clientTLS()))

	status, body := do(t, http.MethodGet, trusting+"/v1/nodes/h1/tasks", "")
	var tasks []api.Task
	if status != http.StatusOK || json.Unmarshal(body, &tasks) != nil || len(tasks) != 1 || tasks[0].Workload != "web1" {
		t.Fatalf("node tasks over TLS: %d %s", status, body)
	}
	status, body = do(t, http.MethodGet, trusting+"/v1/workloads/web1/logs", "")
	if status != http.StatusOK || string(body) != "booting\nup\n" {
		t.Fatalf("logs over TLS: %d %q", status, body)
	}
	want := []string{"GET /v1/tasks Bearer tok-h1 tls=true", "GET /v1/logs/web1 Bearer tok-h1 tls=true"}
	if got := seen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("the agent saw %q, want %q", got, want)
	}

	// Another CA, the system's CAs (NewHandler, no cluster CA), and a
	// certificate of the right CA for another address: no request reaches
	// the agent, so neither does its token.
	mu.Lock()
	calls = nil
	mu.Unlock()
	for _, c := range []struct {
		name, api, host, want string
	}{
		{"another CA", serverAPI(newAgentClient(newTestCA(t).clientTLS())), "h1", "not signed by the CA the servers trust for agents: agents.ca_file"},
		{"system CAs", serverAPI(newAgentClient(nil)), "h1", "certificate signed by unknown authority"},
		{"NewHandler", func() string {
			ts := httptest.NewServer(NewHandler(st, quietLog(), health, scheduler.New(scheduler.Options{}), FencingConfig{}))
			t.Cleanup(ts.Close)
			return ts.URL
		}(), "h1", "certificate signed by unknown authority"},
		{"certificate for another address", trusting, "h2", "does not name the address it registered: issue it with --host"},
	} {
		status, body := do(t, http.MethodGet, c.api+"/v1/nodes/"+c.host+"/tasks", "")
		if status != http.StatusBadGateway || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: %d %s, want 502 and %q", c.name, status, body, c.want)
		}
	}
	if got := seen(); len(got) != 0 {
		t.Errorf("requests reached the agent without a verified certificate: %q", got)
	}

	// A dev cluster's agent on loopback registers http://: called as it is.
	plain := httptest.NewServer(agentMux)
	t.Cleanup(plain.Close)
	register("h1", plain.URL)
	if status, body := do(t, http.MethodGet, trusting+"/v1/nodes/h1/tasks", ""); status != http.StatusOK {
		t.Errorf("plain agent: %d %s", status, body)
	}
	if got := seen(); len(got) != 1 || !strings.HasSuffix(got[0], "tls=false") {
		t.Errorf("plain agent saw %q", got)
	}
}

// newAgentClient never turns verification off, even if handed a
// configuration that would.
func TestAgentClientVerifies(t *testing.T) {
	ca := newTestCA(t)
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.TLS = ca.agentTLS("h1", "h1", "127.0.0.1")
	ts.StartTLS()
	defer ts.Close()
	c := newAgentClient(&tls.Config{InsecureSkipVerify: true})
	resp, err := c.Get(ts.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("an unverified agent answered")
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %v", err)
	}
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestAgentClientWithWrappedDefaultTransport: a process whose
// http.DefaultTransport is wrapped (as the e2e tests do) still gets an
// agent client.
func TestAgentClientWithWrappedDefaultTransport(t *testing.T) {
	old := http.DefaultTransport
	t.Cleanup(func() { http.DefaultTransport = old })
	http.DefaultTransport = wrappedTransport{old}
	if c := newAgentClient(nil); c == nil || c.Transport == nil {
		t.Fatal("no client")
	}
}

type wrappedTransport struct{ http.RoundTripper }
