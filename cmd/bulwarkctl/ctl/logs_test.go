package ctl

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestWorkloadLogs(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		f := newFakeAPI(t)
		f.setLogs("web-1", "booting\n", "ready\n")
		r := runCLI(t, f, "", "workload", "logs", "web-1").mustSucceed(t)
		if r.stdout != "booting\nready\n" || r.stderr != "" {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
		if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/workloads/web-1/logs"}) {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("-o json changes nothing", func(t *testing.T) {
		f := newFakeAPI(t)
		f.setLogs("web-1", "plain text\n")
		r := runCLI(t, f, "", "wl", "log", "web-1", "-o", "json").mustSucceed(t)
		if r.stdout != "plain text\n" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("follow ending at EOF", func(t *testing.T) {
		f := newFakeAPI(t)
		f.setLogs("web-1", "one\n", "two\n")
		r := runCLI(t, f, "", "workload", "logs", "-f", "web-1").mustSucceed(t)
		if r.stdout != "one\ntwo\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/workloads/web-1/logs?follow=true"}) {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("not placed", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "workload", "logs", "db-1")
		if r.err == nil {
			t.Fatal("no error")
		}
		for _, w := range []string{`workload "db-1" is not placed on any host, so it has no output`, `"bulwarkctl workload show db-1" shows its state and host`} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, r.err)
			}
		}
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("agent unreachable", func(t *testing.T) {
		f := newFakeAPI(t)
		f.setLogs("web-1", "x")
		f.agentDown = true
		r := runCLI(t, f, "", "workload", "logs", "web-1", "--follow")
		if r.err == nil {
			t.Fatal("no error")
		}
		for _, w := range []string{`cannot get the output of workload "web-1" now`, "the agent of node-a did not answer", "HTTP 502", "try again shortly"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, r.err)
			}
		}
	})
	t.Run("older server", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "workload", "logs", "web-1", "--api", f.url+"/old")
		if r.err == nil || !strings.Contains(r.err.Error(), "does not offer this request") {
			t.Errorf("error %v", r.err)
		}
	})
}

// TestWorkloadLogsFollowStreams checks that followed output is printed as
// it arrives, not when the stream ends, and that Ctrl-C (the command's
// context) ends it without an error.
func TestWorkloadLogsFollowStreams(t *testing.T) {
	f := newFakeAPI(t)
	f.setLogs("web-1", "first chunk\n", "second chunk\n")
	f.logsPause = make(chan struct{})
	f.logsHold = true

	out := &watchedBuffer{}
	var errb bytes.Buffer
	app := NewApp(out, &errb)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"bulwarkctl", "--api", f.url, "workload", "logs", "web-1", "--follow"})
	}()

	// The server holds the second chunk back: the first must be printed
	// before it.
	out.waitFor(t, "first chunk\n")
	time.Sleep(100 * time.Millisecond)
	if got := out.String(); got != "first chunk\n" {
		t.Fatalf("stdout %q during the pause", got)
	}
	f.logsPause <- struct{}{}
	out.waitFor(t, "first chunk\nsecond chunk\n")

	// The stream stays open (follow): Ctrl-C ends the command, quietly.
	select {
	case err := <-done:
		t.Fatalf("command ended while the stream was open: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Ctrl-C: error %v, want none", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the command did not end on Ctrl-C")
	}
	if got := out.String(); got != "first chunk\nsecond chunk\n" || errb.String() != "" {
		t.Errorf("stdout %q stderr %q", got, errb.String())
	}
	if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/workloads/web-1/logs?follow=true"}) {
		t.Errorf("requests %v", reqs)
	}
}

// watchedBuffer is a stdout that a test can wait on.
type watchedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *watchedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *watchedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// waitFor waits until the buffer holds exactly want.
func (w *watchedBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if w.String() == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("stdout is %q, want %q", w.String(), want)
}
