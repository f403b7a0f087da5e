package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var (
	nodeC = api.NodeView{
		Node:  api.Node{Schema: 1, Name: "node-c", CPUs: 4, Memory: 8 * api.GiB},
		State: api.NodeFenced, Fencing: "unfenceable: node-c-bmc: connection refused",
		Reason: "powered off by node-c-bmc; waiting for `node clear`",
	}
	failed1 = api.WorkloadView{
		Workload: api.Workload{Schema: 1, CreatedAt: testTime, WorkloadSpec: api.WorkloadSpec{
			Name: "batch-1", Kind: api.KindContainer, CPUs: 1, Memory: api.GiB,
		}},
		State: api.StateFailed, Reason: "exited with status 2, 3 times in 10m",
	}
	pendingHigh = api.WorkloadView{
		Workload: api.Workload{Schema: 1, CreatedAt: testTime, WorkloadSpec: api.WorkloadSpec{
			Name: "zz-important", Kind: api.KindVM, CPUs: 1, Memory: api.GiB, Priority: 100,
		}},
		State: api.StatePending, Reason: "every ready node is full",
	}
)

// statusFake is a cluster with a ready, a down and a fenced host, two
// pending workloads, a running one and a failed one, and events of which
// only some are failures or fencing.
func statusFake(t *testing.T) *fakeAPI {
	f := newFakeAPI(t)
	for _, n := range []api.NodeView{nodeA, nodeB, nodeC} {
		f.addNode(n)
	}
	for _, w := range []api.WorkloadView{web1, db1, failed1, pendingHigh} {
		f.addWorkload(w)
	}
	evs := []api.Event{{Time: testTime, Type: "placed", Workload: "web-1", Message: "placed on node-a"}}
	for i := 0; i < 12; i++ {
		evs = append(evs, api.Event{Time: testTime.Add(time.Duration(i) * time.Second), Type: "host-lost", Host: "node-c", Message: "lost #" + string(rune('a'+i))})
	}
	evs = append(evs,
		api.Event{Time: testTime.Add(20 * time.Second), Type: "fenced", Host: "node-c", Message: "powered off by node-c-bmc"},
		api.Event{Time: testTime.Add(21 * time.Second), Type: "host-ready", Host: "node-a", Message: "back"},
	)
	f.setEvents(evs...)
	return f
}

// section returns the lines of the table section that starts with title.
func section(t *testing.T, out, title string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "\n"+title)
	if !ok {
		t.Fatalf("no section %q in:\n%s", title, out)
	}
	body, _, _ := strings.Cut(rest, "\n\n")
	lines := strings.Split(body, "\n")
	return lines[1:] // after the title line
}

func TestStatusTable(t *testing.T) {
	f := statusFake(t)
	r := runCLI(t, f, "", "status").mustSucceed(t)
	out := r.stdout
	if !strings.HasPrefix(out, "API server: "+f.url+" (fake)   Leader: fake (this server)   Revision: 0") {
		t.Errorf("header:\n%s", out)
	}
	// Sections in order.
	last := -1
	for _, s := range []string{"\nHOSTS (3)\n", "\nWORKLOADS BY STATE (4)\n", "\nPENDING AND FAILED (3)\n", "\nRECENT FAILURES AND FENCING (10)\n"} {
		i := strings.Index(out, s)
		if i <= last {
			t.Fatalf("section %q missing or out of order:\n%s", s, out)
		}
		last = i
	}
	// Hosts not ready first, with their reason; ready ones after.
	hosts := section(t, out, "HOSTS")
	if len(hosts) != 4 || !strings.HasPrefix(hosts[0], "NAME") || !strings.Contains(hosts[0], "REASON") {
		t.Fatalf("hosts:\n%s", strings.Join(hosts, "\n"))
	}
	for i, want := range [][]string{
		{"node-b", "down", "0/8", "0B/32GiB"},
		{"node-c", "fenced", "unfenceable: node-c-bmc", "0/4", "waiting for `node clear`"},
		{"node-a", "ready", "ok", "3/16", "1.5GiB/16GiB", "2"},
	} {
		for _, w := range want {
			if !strings.Contains(hosts[i+1], w) {
				t.Errorf("host line %d %q lacks %q", i+1, hosts[i+1], w)
			}
		}
	}
	if !strings.HasPrefix(hosts[1], "node-b") || !strings.HasPrefix(hosts[3], "node-a") {
		t.Errorf("host order:\n%s", strings.Join(hosts, "\n"))
	}
	if got := section(t, out, "WORKLOADS BY STATE"); len(got) != 1 || strings.TrimSpace(got[0]) != "running 1   pending 2   failed 1" {
		t.Errorf("by state: %q", got)
	}
	// Pending by priority with the reason, then failed with the reason.
	pend := section(t, out, "PENDING AND FAILED")
	if len(pend) != 4 {
		t.Fatalf("pending:\n%s", strings.Join(pend, "\n"))
	}
	for i, want := range [][]string{
		{"NAME", "STATE", "PRIORITY", "REASON"},
		{"zz-important", "pending", "100", "every ready node is full"},
		{"db-1", "pending", "0", "no ready node has 8 free CPUs"},
		{"batch-1", "failed", "exited with status 2"},
	} {
		if !strings.HasPrefix(pend[i], want[0]) {
			t.Errorf("pending line %d %q: want %q first", i, pend[i], want[0])
		}
		for _, w := range want {
			if !strings.Contains(pend[i], w) {
				t.Errorf("pending line %d %q lacks %q", i, pend[i], w)
			}
		}
	}
	if strings.Contains(strings.Join(pend, "\n"), "web-1") {
		t.Errorf("running workload listed as pending")
	}
	// The last 10 failure/fencing events, oldest first; others left out.
	evs := strings.TrimRight(strings.Join(section(t, out, "RECENT FAILURES AND FENCING"), "\n"), "\n")
	lines := strings.Split(evs, "\n")
	if len(lines) != 11 || !strings.Contains(lines[1], "lost #d") || !strings.Contains(lines[10], "fenced") {
		t.Errorf("events:\n%s", evs)
	}
	if strings.Contains(evs, "placed") || strings.Contains(evs, "host-ready") || strings.Contains(evs, "lost #c") {
		t.Errorf("events include others:\n%s", evs)
	}
	if strings.Contains(out, clearScreen) || r.stderr != "" {
		t.Errorf("stdout %q stderr %q", out, r.stderr)
	}
}

func TestStatusEmptyCluster(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, f, "", "status").mustSucceed(t)
	for _, want := range []string{"HOSTS (0)\n   none registered yet", "WORKLOADS BY STATE (0)\n   none", "PENDING AND FAILED (0)\n   none", "RECENT FAILURES AND FENCING (0)\n   none"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestStatusJSON(t *testing.T) {
	f := statusFake(t)
	r := runCLI(t, f, "", "status", "-o", "json").mustSucceed(t)
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatalf("stdout %s: %v", r.stdout, err)
	}
	for _, k := range []string{"api", "server", "leader", "is_leader", "revision", "hosts", "workloads_by_state", "pending", "failed", "recent_events"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("json lacks %q: %s", k, r.stdout)
		}
	}
	var got clusterStatus
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.API != f.url || got.Leader != "fake" || !got.IsLeader || len(got.Hosts) != 3 || got.Hosts[0].Name != "node-b" ||
		got.WorkloadsByState["pending"] != 2 || got.WorkloadsByState["running"] != 1 || got.WorkloadsByState["failed"] != 1 ||
		len(got.Pending) != 2 || got.Pending[0].Name != "zz-important" || got.Pending[1].Reason != db1.Reason ||
		len(got.Failed) != 1 || got.Failed[0].Reason != failed1.Reason ||
		len(got.RecentEvents) != 10 || got.RecentEvents[9].Type != "fenced" {
		t.Errorf("got %+v", got)
	}
	// Empty sections are [] or {}, not null.
	r = runCLI(t, newFakeAPI(t), "", "status", "-o", "json").mustSucceed(t)
	for _, want := range []string{`"hosts": []`, `"workloads_by_state": {}`, `"pending": []`, `"failed": []`, `"recent_events": []`} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("empty json lacks %s:\n%s", want, r.stdout)
		}
	}
}

func TestStatusUsageAndErrors(t *testing.T) {
	f := newFakeAPI(t)
	r := runCLI(t, f, "", "status", "node-a")
	if r.err == nil || !strings.Contains(r.err.Error(), "unexpected arguments") {
		t.Errorf("error %v", r.err)
	}
	r = runCLI(t, f, "", "status", "-o", "xml")
	if r.err == nil || !strings.Contains(r.err.Error(), "invalid output format") {
		t.Errorf("error %v", r.err)
	}
	if reqs := f.requestLog(); len(reqs) != 0 {
		t.Errorf("requests %v, want none", reqs)
	}
	r = runCLI(t, nil, "", "--api", "http://127.0.0.1:1", "status")
	if r.err == nil {
		t.Errorf("unreachable server: no error")
	}
}

// runStatusWatch starts `bulwarkctl status --watch args...` in the
// background; cancel is Ctrl-C.
func runStatusWatch(t *testing.T, f *fakeAPI, args ...string) (out *watchedBuffer, errb *bytes.Buffer, cancel func(), done <-chan error) {
	t.Helper()
	out, errb = &watchedBuffer{}, &bytes.Buffer{}
	app := NewApp(out, errb)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch := make(chan error, 1)
	go func() {
		ch <- app.RunContext(ctx, append([]string{"bulwarkctl", "--api", f.url, "status", "--watch"}, args...))
	}()
	return out, errb, cancel, ch
}

func waitUntil(t *testing.T, w *watchedBuffer, what string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if ok(w.String()) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: stdout is\n%s", what, w.String())
}

func setStatusRefresh(t *testing.T, d time.Duration) {
	old := statusRefresh
	statusRefresh = d
	t.Cleanup(func() { statusRefresh = old })
}

const separator = "------------------------------------------------------------------------------\n"

func TestStatusWatchRedrawsOnEvent(t *testing.T) {
	setStatusRefresh(t, time.Hour) // only events redraw
	f := newFakeAPI(t)
	f.addNode(nodeA)
	f.eventsFeed = make(chan api.Event)
	out, errb, cancel, done := runStatusWatch(t, f)

	waitUntil(t, out, "first screen", func(s string) bool { return strings.Contains(s, "RECENT FAILURES AND FENCING (0)") })
	time.Sleep(50 * time.Millisecond)
	if s := out.String(); strings.Count(s, "HOSTS (") != 1 || strings.Contains(s, separator) || strings.Contains(s, clearScreen) {
		t.Fatalf("before any event:\n%s", s)
	}

	// The cluster changes, and an event says so.
	f.addWorkload(db1)
	ev := api.Event{Time: testTime, Type: "host-lost", Host: "node-b", Message: "no heartbeat"}
	f.setEvents(ev)
	f.eventsFeed <- ev
	waitUntil(t, out, "redraw after the event", func(s string) bool {
		return strings.Count(s, "HOSTS (") == 2 && strings.Contains(s, "RECENT FAILURES AND FENCING (1)")
	})
	s := out.String()
	_, second, ok := strings.Cut(s, separator)
	if !ok || !strings.HasPrefix(second, "API server: ") || !strings.Contains(second, "db-1") || !strings.Contains(second, "no heartbeat") {
		t.Errorf("second screen:\n%s", s)
	}

	select {
	case err := <-done:
		t.Fatalf("ended while watching: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Errorf("Ctrl-C: error %v, want none", err)
	}
	if errb.String() != "" {
		t.Errorf("stderr %q", errb.String())
	}
	reqs := f.requestLog()
	if len(reqs) == 0 || reqs[0] != "GET /v1/events?follow=true&limit=1" {
		t.Errorf("requests %v", reqs)
	}
}

func TestStatusWatchRedrawsPeriodically(t *testing.T) {
	setStatusRefresh(t, 20*time.Millisecond)
	f := newFakeAPI(t)
	f.eventsFeed = make(chan api.Event)
	out, _, cancel, done := runStatusWatch(t, f, "-o", "json")
	waitUntil(t, out, "first snapshot", func(s string) bool { return strings.Contains(s, `"hosts":[]`) })
	// A state change without an event shows up on the next redraw.
	f.addWorkload(db1)
	waitUntil(t, out, "periodic redraw", func(s string) bool { return strings.Contains(s, `"name":"db-1"`) })
	cancel()
	if err := waitDone(t, done); err != nil {
		t.Errorf("Ctrl-C: error %v", err)
	}
	// One JSON object per line.
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		var st clusterStatus
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			t.Errorf("line %q: %v", l, err)
		}
	}
}

func TestStatusWatchStreamEnded(t *testing.T) {
	setStatusRefresh(t, time.Hour)
	f := newFakeAPI(t)
	f.eventsTail = `{"error":"the event stream ended: revision compacted","code":"unavailable"}` + "\n"
	_, _, _, done := runStatusWatch(t, f)
	err := waitDone(t, done)
	if err == nil || !strings.Contains(err.Error(), "revision compacted") {
		t.Errorf("error %v", err)
	}
}

func TestStatusServices(t *testing.T) {
	f := statusFake(t)
	f.services = []api.ServiceView{
		{Service: api.Service{ServiceSpec: api.ServiceSpec{Name: "www", Replicas: 3, VIP: "192.0.2.80"}}, Running: 3, VIPHolder: "node-a",
			Pool: &api.Pool{Backends: []api.Backend{{Workload: "www-1"}, {Workload: "www-2"}}}},
		{Service: api.Service{ServiceSpec: api.ServiceSpec{Name: "batch", Replicas: 2}}, Running: 1},
	}
	var out, errb bytes.Buffer
	if err := NewApp(&out, &errb).Run([]string{"bulwarkctl", "--api", f.url, "status"}); err != nil {
		t.Fatal(err)
	}
	lines := section(t, out.String(), "SERVICES (2)")
	want := [][]string{{"NAME", "REPLICAS", "RUNNING", "IN", "POOL", "VIP", "HELD", "BY"}, {"www", "3", "3", "2", "192.0.2.80", "node-a"}, {"batch", "2", "1", "-", "-", "-"}}
	if len(lines) != len(want) {
		t.Fatalf("services section:\n%s", strings.Join(lines, "\n"))
	}
	for i, w := range want {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("line %d: %q, want %q", i, got, w)
		}
	}
	// Without services (or from a server without them) the section is left out.
	f.services = nil
	out.Reset()
	if err := NewApp(&out, &errb).Run([]string{"bulwarkctl", "--api", f.url, "status"}); err != nil || strings.Contains(out.String(), "SERVICES") {
		t.Fatalf("%v\n%s", err, out.String())
	}
}
