package nodeagent

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/drivers"
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
