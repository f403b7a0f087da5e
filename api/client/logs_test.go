package client

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

func TestLogs(t *testing.T) {
	ctx := context.Background()
	t.Run("plain", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"GET /v1/workloads/web/logs": func(w http.ResponseWriter, _ []byte) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = io.WriteString(w, "booting\nready\n")
			},
		})
		rc, err := c.Logs(ctx, "web", false)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil || string(b) != "booting\nready\n" {
			t.Errorf("got %q, %v", b, err)
		}
		if rec.query[0] != "" {
			t.Errorf("query %q, want none", rec.query[0])
		}
	})
	t.Run("follow asks for it", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"GET /v1/workloads/web/logs": func(w http.ResponseWriter, _ []byte) { _, _ = io.WriteString(w, "x") },
		})
		rc, err := c.Logs(ctx, "web", true)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(rc)
		rc.Close()
		if rec.query[0] != "follow=true" {
			t.Errorf("query %q, want follow=true", rec.query[0])
		}
	})
	for _, tt := range []struct {
		name   string
		status int
		body   api.Error
		code   string
	}{
		{"not placed", 404, api.Error{Message: `workload "web" is not placed on any host, so it has no output`, Code: api.CodeNotFound}, api.CodeNotFound},
		{"agent unreachable", 502, api.Error{Message: "the agent of node-a did not answer: connection refused", Code: api.CodeUnavailable}, api.CodeUnavailable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
				"GET /v1/workloads/web/logs": reply(tt.status, tt.body),
			})
			rc, err := c.Logs(ctx, "web", true)
			var ae *APIError
			if rc != nil || !errors.As(err, &ae) || ae.Status != tt.status || ae.Code != tt.code || ae.Message != tt.body.Message {
				t.Errorf("got %v, %v; want an *APIError %d %q", rc, err, tt.status, tt.body.Message)
			}
		})
	}
	t.Run("empty name sends nothing", func(t *testing.T) {
		c, rec := newTestClient(t, nil)
		if _, err := c.Logs(ctx, "", false); err == nil || !strings.Contains(err.Error(), "name is empty") {
			t.Errorf("error %v", err)
		}
		if len(rec.got) != 0 {
			t.Errorf("requests %v", rec.got)
		}
	})
}

// streamServer writes first, flushes, waits until next is closed (or the
// client goes away), writes second and, if hold, keeps the stream open
// until the client goes away.
func streamServer(t *testing.T, first, second string, next <-chan struct{}, hold bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, first)
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		_, _ = io.WriteString(w, second)
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestLogsStreamOutlivesTheClientTimeout(t *testing.T) {
	next := make(chan struct{})
	srv := streamServer(t, "one\n", "two\n", next, false)
	// An overall timeout far shorter than the pause between the chunks: it
	// must not apply to the stream.
	c := New(srv.URL, &http.Client{Timeout: 50 * time.Millisecond})
	rc, err := c.Logs(context.Background(), "web", true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	buf := make([]byte, 64)
	n, err := rc.Read(buf)
	if err != nil || string(buf[:n]) != "one\n" {
		t.Fatalf("first chunk %q, %v; want it before the second is sent", buf[:n], err)
	}
	time.Sleep(200 * time.Millisecond)
	close(next)
	rest, err := io.ReadAll(rc)
	if err != nil || string(rest) != "two\n" {
		t.Errorf("rest %q, %v", rest, err)
	}
	// Plain requests keep the timeout.
	if c.hc.Timeout != 50*time.Millisecond || c.stream.Timeout != 0 {
		t.Errorf("timeouts: requests %v, streams %v", c.hc.Timeout, c.stream.Timeout)
	}
}

func TestLogsEndWithTheContext(t *testing.T) {
	next := make(chan struct{})
	close(next)
	srv := streamServer(t, "one\n", "two\n", next, true)
	ctx, cancel := context.WithCancel(context.Background())
	rc, err := New(srv.URL, nil).Logs(ctx, "web", true)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(rc)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("read ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with the context")
	}
}
