package nodeagent

import (
	"bufio"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/pki"
)

// fileLogs adds a log file per workload to a real driver (the libvirt test
// driver writes no console output of its own).
type fileLogs struct {
	drivers.Driver
	dir string
}

func (f fileLogs) Logs(_ context.Context, workload string) (io.ReadCloser, error) {
	file, err := os.Open(filepath.Join(f.dir, workload+".log"))
	if os.IsNotExist(err) {
		return nil, drivers.ErrNotFound
	}
	return file, err
}

func TestLogsEndpointFollows(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "web1.log")
	if err := os.WriteFile(logPath, []byte("booting\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	defer st.Close()
	a, err := New(Config{Host: "h1", Store: st, Driver: fileLogs{newDriver(t, "h1"), dir}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a.token = "s3cret"
	go a.serveHTTP(ctx, ln)
	base := "http://" + ln.Addr().String()
	// No token, or a wrong one: 401, and nothing is served.
	for _, auth := range []string{"", "Bearer wrong", "s3cret"} {
		req, _ := http.NewRequest(http.MethodGet, base+"/v1/logs/web1", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("auth %q: %v %v", auth, err, resp)
		}
		resp.Body.Close()
	}
	c := &http.Client{Transport: bearer{"s3cret"}}

	resp, err := c.Get(base + "/v1/logs/web1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "booting\n" {
		t.Fatalf("logs: %q", b)
	}
	if resp, err := c.Get(base + "/v1/logs/nope"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing workload: %v %v", err, resp)
	}
	if resp, err := c.Get(base + "/v1/logs/Bad_Name"); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad name: %v %v", err, resp)
	}

	// Follow: lines appended later arrive on the open stream.
	fctx, fcancel := context.WithTimeout(ctx, 10*time.Second)
	defer fcancel()
	req, _ := http.NewRequestWithContext(fctx, http.MethodGet, base+"/v1/logs/web1?follow=true", nil)
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	if line, _ := r.ReadString('\n'); line != "booting\n" {
		t.Fatalf("first line %q", line)
	}
	f, _ := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("up and running\n")
	f.Close()
	line, err := r.ReadString('\n')
	if err != nil || !strings.Contains(line, "up and running") {
		t.Fatalf("followed line %q, %v", line, err)
	}
}

// bearer adds a token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestAPIOverTLS runs an agent whose API serves HTTPS with its host's
// agent certificate (package pki, as `bulwarkd cert issue h1 --kind agent
// --host 127.0.0.1` makes it): it registers an https:// URL, a client that
// trusts the cluster CA gets the tasks, logs and metrics with the token the
// agent published, while a client trusting another CA, and one speaking
// plain HTTP, get nothing.
func TestAPIOverTLS(t *testing.T) {
	caDir := t.TempDir()
	if _, _, err := pki.InitCA(caDir, false); err != nil {
		t.Fatal(err)
	}
	cert, key, err := pki.Issue(pki.IssueRequest{CADir: caDir, Name: "h1", Kind: pki.KindAgent, Hosts: []string{"h1", "127.0.0.1"}, OutDir: caDir})
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := pki.LoadServerTLS(cert, key, "", false)
	if err != nil {
		t.Fatal(err)
	}
	logDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(logDir, "web1.log"), []byte("secret output\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	defer st.Close()
	a, err := New(Config{Host: "h1", Store: st, Driver: fileLogs{newDriver(t, "h1"), logDir}, SessionTTL: 2 * time.Second,
		HTTPListen: "127.0.0.1:0", HTTPTLS: serverTLS, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = a.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var n api.Node
	waitFor(t, "h1 registered", func() bool {
		kv, ok, _, err := st.Get(context.Background(), clusterstore.NodeKey("h1"))
		return err == nil && ok && clusterstore.Decode(kv, &n) == nil && n.AgentURL != ""
	})
	if !strings.HasPrefix(n.AgentURL, "https://127.0.0.1:") {
		t.Fatalf("AgentURL %q, want https://127.0.0.1:PORT", n.AgentURL)
	}
	token, err := clusterstore.AgentToken(context.Background(), st, "h1")
	if err != nil {
		t.Fatal(err)
	}
	client := func(caFile string) *http.Client {
		cfg, err := pki.LoadClientTLS(caFile, "", "", "")
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr}
	}
	get := func(c *http.Client, url string, auth bool) (int, string, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if auth {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}

	good := client(filepath.Join(caDir, pki.CACertFile))
	if code, body, err := get(good, n.AgentURL+"/v1/tasks", true); err != nil || code != http.StatusOK || !strings.HasPrefix(body, "[") {
		t.Errorf("tasks over TLS: %d %q %v", code, body, err)
	}
	if code, body, err := get(good, n.AgentURL+"/v1/logs/web1", true); err != nil || code != http.StatusOK || body != "secret output\n" {
		t.Errorf("logs over TLS: %d %q %v", code, body, err)
	}
	if code, _, err := get(good, n.AgentURL+"/v1/tasks", false); err != nil || code != http.StatusUnauthorized {
		t.Errorf("tasks over TLS without the token: %d %v", code, err)
	}
	if code, body, err := get(good, n.AgentURL+"/metrics", false); err != nil || code != http.StatusOK || !strings.Contains(body, "bulwark_agent_") {
		t.Errorf("metrics over TLS: %d %v", code, err)
	}

	// A client that trusts another CA refuses the agent before sending
	// anything, the token included.
	otherCA := t.TempDir()
	if _, _, err := pki.InitCA(otherCA, false); err != nil {
		t.Fatal(err)
	}
	var unknown x509.UnknownAuthorityError
	if _, _, err := get(client(filepath.Join(otherCA, pki.CACertFile)), n.AgentURL+"/v1/logs/web1", true); !errors.As(err, &unknown) {
		t.Errorf("client trusting another CA: %v, want an unknown authority", err)
	}
	// Plain HTTP to the TLS port: a 400 and nothing else.
	plainURL := "http://" + strings.TrimPrefix(n.AgentURL, "https://")
	code, body, err := get(&http.Client{}, plainURL+"/v1/logs/web1", true)
	if err != nil || code != http.StatusBadRequest || !strings.Contains(body, "HTTP request to an HTTPS server") {
		t.Errorf("plain HTTP client: %d %q %v", code, body, err)
	}
}
