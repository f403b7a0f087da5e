package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var testEvents = []api.Event{
	{Schema: api.SchemaVersion, Time: testTime, Type: "host-lost", Host: "node-a", Message: "no heartbeat for 10s"},
	{Schema: api.SchemaVersion, Time: testTime.Add(3 * time.Second), Type: "fenced", Host: "node-a", Message: "powered off by node-a-bmc"},
	{Schema: api.SchemaVersion, Time: testTime.Add(4 * time.Second), Type: "rescheduling", Host: "node-a", Workload: "web-1", Message: "moving\nto another host"},
}

func localTime(t time.Time) string { return t.Local().Format(eventTimeLayout) }

func TestEventsTable(t *testing.T) {
	f := newFakeAPI(t)
	f.setEvents(testEvents...)
	r := runCLI(t, f, "", "events").mustSucceed(t)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	for i, want := range [][]string{
		{"TIME", "TYPE", "HOST", "WORKLOAD", "MESSAGE"},
		{localTime(testTime), "host-lost", "node-a", "-", "no heartbeat for 10s"},
		{localTime(testTime.Add(3 * time.Second)), "fenced", "node-a", "-", "powered off by node-a-bmc"},
		{localTime(testTime.Add(4 * time.Second)), "rescheduling", "node-a", "web-1", "moving to another host"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	// Aligned columns: TYPE starts at the same offset on every line.
	col := strings.Index(lines[0], "TYPE")
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l[col:], "host-lost") && !strings.HasPrefix(l[col:], "fenced") && !strings.HasPrefix(l[col:], "rescheduling") {
			t.Errorf("misaligned: %q", l)
		}
	}
	if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/events"}) {
		t.Errorf("requests %v", reqs)
	}
}

func TestEventsFiltersAndJSON(t *testing.T) {
	f := newFakeAPI(t)
	f.setEvents(testEvents...)
	r := runCLI(t, f, "", "events", "--host", "node-a", "--workload", "web-1", "--type", "rescheduling", "--since", "10m", "--limit", "5", "-o", "json").mustSucceed(t)
	var got []api.Event
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 1 || got[0].Type != "rescheduling" {
		t.Fatalf("stdout %s: %v", r.stdout, err)
	}
	r = runCLI(t, f, "", "events", "--since", "2025-06-01T11:00:00Z", "--limit", "2").mustSucceed(t)
	if strings.Contains(r.stdout, "host-lost") || !strings.Contains(r.stdout, "fenced") {
		t.Errorf("--limit 2:\n%s", r.stdout)
	}
	want := []string{
		"GET /v1/events?host=node-a&limit=5&since=10m0s&type=rescheduling&workload=web-1",
		"GET /v1/events?limit=2&since=2025-06-01T11%3A00%3A00Z",
	}
	if reqs := f.requestLog(); !reflect.DeepEqual(reqs, want) {
		t.Errorf("requests %v\nwant     %v", reqs, want)
	}
}

func TestEventsEmpty(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, f, "", "events", "-o", "json").mustSucceed(t)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("json: %q", r.stdout)
	}
	r = runCLI(t, f, "", "events", "--host", "node-z").mustSucceed(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "no events match") {
		t.Errorf("table: stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestEventsInvalidFlagsSendNothing(t *testing.T) {
	f := newFakeAPI(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, `--since "yesterday": want a duration such as 10m`},
		{[]string{"--since", "-5m"}, "the duration must be positive"},
		{[]string{"--since", "2025-06-01"}, `--since "2025-06-01"`},
		{[]string{"--limit", "-1"}, "--limit -1: want a number from 1 to 10000"},
		{[]string{"--limit", "0"}, "--limit 0"},
		{[]string{"--limit", "20000"}, "--limit 20000"},
		{[]string{"--host", "Node_A"}, `--host: host name "Node_A" is not a DNS label`},
		{[]string{"--workload", ""}, "--workload: workload name is empty"},
		{[]string{"--type", " "}, "--type is empty"},
		{[]string{"-f", "--since", "nope"}, `--since "nope"`},
		{[]string{"--limit", "x"}, "invalid value"},
		{[]string{"node-a"}, "unexpected arguments"},
	} {
		r := runCLI(t, f, "", append([]string{"events"}, tt.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.args, r.err, tt.want)
		}
	}
	// Several problems are reported together.
	r := runCLI(t, f, "", "events", "--since", "x", "--limit", "-2")
	if r.err == nil || !strings.Contains(r.err.Error(), "nothing was sent to the server") || !strings.Contains(r.err.Error(), "--since") || !strings.Contains(r.err.Error(), "--limit") {
		t.Errorf("error %v", r.err)
	}
	if reqs := f.requestLog(); len(reqs) != 0 {
		t.Errorf("requests %v, want none", reqs)
	}
}

// runFollow starts `bulwarkctl events --follow args...` in the background;
// cancel is Ctrl-C.
func runFollow(t *testing.T, f *fakeAPI, args ...string) (out *watchedBuffer, errb *bytes.Buffer, cancel func(), done <-chan error) {
	t.Helper()
	out, errb = &watchedBuffer{}, &bytes.Buffer{}
	app := NewApp(out, errb)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() {
		ch <- app.RunContext(ctx, append([]string{"bulwarkctl", "--api", f.url, "events", "--follow"}, args...))
	}()
	return out, errb, cancel, ch
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("the command did not end")
		return nil
	}
}

func TestEventsFollowTable(t *testing.T) {
	f := newFakeAPI(t)
	f.setEvents(testEvents[0])
	f.eventsFeed = make(chan api.Event)
	out, errb, cancel, done := runFollow(t, f, "--host", "node-a")

	header := "TIME              TYPE               HOST           WORKLOAD           MESSAGE\n"
	first := localTime(testTime) + "   host-lost          node-a         -                  no heartbeat for 10s\n"
	out.waitFor(t, header+first)
	// Printed as it comes; events of other hosts are not.
	f.eventsFeed <- api.Event{Time: testTime, Type: "fenced", Host: "node-b", Message: "other host"}
	f.eventsFeed <- testEvents[2]
	second := localTime(testEvents[2].Time) + "   rescheduling       node-a         web-1              moving to another host\n"
	out.waitFor(t, header+first+second)

	select {
	case err := <-done:
		t.Fatalf("ended while the stream was open: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Errorf("Ctrl-C: error %v, want none", err)
	}
	if errb.String() != "" {
		t.Errorf("stderr %q", errb.String())
	}
	if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/events?follow=true&host=node-a"}) {
		t.Errorf("requests %v", reqs)
	}
}

func TestEventsFollowJSON(t *testing.T) {
	f := newFakeAPI(t)
	f.setEvents(testEvents[:2]...)
	f.eventsFeed = make(chan api.Event)
	out, _, cancel, done := runFollow(t, f, "-o", "json")
	line := func(e api.Event) string {
		b, _ := json.Marshal(e)
		return string(b) + "\n"
	}
	out.waitFor(t, line(testEvents[0])+line(testEvents[1]))
	f.eventsFeed <- testEvents[2]
	out.waitFor(t, line(testEvents[0])+line(testEvents[1])+line(testEvents[2]))
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Errorf("Ctrl-C: error %v", err)
	}
}

func TestEventsFollowEndedByTheServer(t *testing.T) {
	f := newFakeAPI(t)
	f.setEvents(testEvents[0])
	f.eventsTail = `{"error":"the event stream ended: revision compacted; follow again from the last event's time","code":"unavailable"}` + "\n"
	out, _, _, done := runFollow(t, f, "-o", "json")
	err := waitDone(t, done)
	if err == nil || !strings.Contains(err.Error(), "revision compacted") || !strings.Contains(err.Error(), "run the command again, with --since") {
		t.Errorf("error %v", err)
	}
	if !strings.Contains(out.String(), "host-lost") {
		t.Errorf("stdout %q", out.String())
	}
}
