package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/scheduler"
)

func putEvents(t *testing.T, st clusterstore.Store, evs ...api.Event) {
	t.Helper()
	var ops []clusterstore.Op
	for i, e := range evs {
		ops = append(ops, eventOp(e.Time, i, e.Type, e.Host, e.Workload, e.Message))
	}
	if ok, _, err := st.Txn(context.Background(), nil, ops); err != nil || !ok {
		t.Fatalf("put events: %v %v", ok, err)
	}
}

func getEvents(t *testing.T, base, query string) []api.Event {
	t.Helper()
	code, body := do(t, "GET", base+"/v1/events"+query, "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/events%s: %d %s", query, code, body)
	}
	var out []api.Event
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if out == nil {
		t.Fatalf("GET /v1/events%s: null, want an array", query)
	}
	return out
}

func messages(evs []api.Event) string {
	var m []string
	for _, e := range evs {
		m = append(m, e.Message)
	}
	return strings.Join(m, ",")
}

func TestEventsList(t *testing.T) {
	st, ts := newAPI(t)
	if got := getEvents(t, ts.URL, ""); len(got) != 0 {
		t.Fatalf("empty store: %v", got)
	}
	now := time.Now()
	// Written out of order: the answer is by time.
	putEvents(t, st,
		api.Event{Time: now.Add(-5 * time.Minute), Type: "fenced", Host: "node-a", Message: "e4"},
		api.Event{Time: now.Add(-3 * time.Hour), Type: "host-suspect", Host: "node-a", Message: "e1"},
		api.Event{Time: now.Add(-2 * time.Hour), Type: "preempted", Host: "node-b", Workload: "web-1", Message: "e2"},
		api.Event{Time: now.Add(-30 * time.Minute), Type: "rescheduling", Host: "node-b", Workload: "db-1", Message: "e3"},
		api.Event{Time: now.Add(-time.Minute), Type: "rescheduling", Host: "node-a", Workload: "web-1", Message: "e5"},
	)
	for _, tt := range []struct{ query, want string }{
		{"", "e1,e2,e3,e4,e5"},
		{"?host=node-a", "e1,e4,e5"},
		{"?workload=web-1", "e2,e5"},
		{"?type=rescheduling", "e3,e5"},
		{"?since=1h", "e3,e4,e5"},
		{"?since=10m", "e4,e5"},
		{"?since=" + url.QueryEscape(now.Add(-150*time.Minute).Format(time.RFC3339)), "e2,e3,e4,e5"},
		{"?limit=2", "e4,e5"},
		{"?limit=10000", "e1,e2,e3,e4,e5"},
		{"?host=node-a&since=2h&limit=1", "e5"},
		{"?host=node-b&type=preempted&workload=web-1", "e2"},
		{"?host=node-c", ""},
		{"?follow=false&limit=1", "e5"},
	} {
		if got := messages(getEvents(t, ts.URL, tt.query)); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.query, got, tt.want)
		}
	}
	got := getEvents(t, ts.URL, "?limit=1")[0]
	if got.Schema != api.SchemaVersion || got.Type != "rescheduling" || got.Host != "node-a" || got.Workload != "web-1" || !got.Time.Equal(now.Add(-time.Minute)) {
		t.Errorf("event %+v", got)
	}
}

func TestEventsDefaultLimit(t *testing.T) {
	st, ts := newAPI(t)
	base := time.Now().Add(-time.Hour)
	var evs []api.Event
	for i := 0; i < 250; i++ {
		evs = append(evs, api.Event{Time: base.Add(time.Duration(i) * time.Second), Type: "fenced", Host: "node-a", Message: fmt.Sprint(i)})
	}
	putEvents(t, st, evs...)
	got := getEvents(t, ts.URL, "")
	if len(got) != DefaultEventLimit || got[0].Message != "50" || got[len(got)-1].Message != "249" {
		t.Fatalf("got %d events, %s..%s; want the newest 200 (50..249)", len(got), got[0].Message, got[len(got)-1].Message)
	}
}

func TestEventsBadQuery(t *testing.T) {
	_, ts := newAPI(t)
	for _, tt := range []struct{ query, want string }{
		{"limit=0", `invalid limit "0": want a whole number from 1 to 10000`},
		{"limit=-3", `invalid limit "-3"`},
		{"limit=ten", `invalid limit "ten"`},
		{"limit=10001", `invalid limit "10001"`},
		{"since=yesterday", `invalid since "yesterday": want a duration such as 10m`},
		{"since=-5m", `the duration must be positive`},
		{"since=", "since is empty"},
		{"since=2025-06-01", `invalid since "2025-06-01"`},
		{"host=Node_A", `host name "Node_A" is not a DNS label`},
		{"workload=", "workload name is empty"},
		{"type=", "type is empty"},
		{"follow=maybe", `invalid follow "maybe"`},
		{"hosts=node-a", `unknown query parameter "hosts"`},
		{"limit=1&limit=2", `query parameter "limit" is given 2 times`},
	} {
		code, body := do(t, "GET", ts.URL+"/v1/events?"+tt.query, "")
		var e api.Error
		if err := json.Unmarshal(body, &e); err != nil || code != http.StatusBadRequest || e.Code != api.CodeInvalid || !strings.Contains(e.Message, tt.want) {
			t.Errorf("%s: %d %s; want 400 invalid containing %q", tt.query, code, body, tt.want)
		}
	}
}

// hookStore runs afterList once, right after the first List of the events
// prefix: between the follow stream's snapshot and its watch.
type hookStore struct {
	clusterstore.Store
	once      sync.Once
	afterList func(rev int64)

	mu       sync.Mutex
	watchCtx context.Context // of the last Watch
}

func (s *hookStore) Watch(ctx context.Context, prefix string, fromRev int64) <-chan clusterstore.WatchResponse {
	s.mu.Lock()
	s.watchCtx = ctx
	s.mu.Unlock()
	return s.Store.Watch(ctx, prefix, fromRev)
}

func (s *hookStore) lastWatch() context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.watchCtx
}

func (s *hookStore) List(ctx context.Context, prefix string, rev int64) ([]clusterstore.KeyValue, int64, error) {
	kvs, at, err := s.Store.List(ctx, prefix, rev)
	if err == nil && prefix == clusterstore.EventsPrefix && s.afterList != nil {
		s.once.Do(func() { s.afterList(at) })
	}
	return kvs, at, err
}

func newHookedAPI(t *testing.T, mem *memory.Store, afterList func(rev int64)) *httptest.Server {
	ts, _ := newHookedAPIStore(t, mem, afterList)
	return ts
}

func newHookedAPIStore(t *testing.T, mem *memory.Store, afterList func(rev int64)) (*httptest.Server, *hookStore) {
	t.Helper()
	t.Cleanup(func() { mem.Close() })
	st := &hookStore{Store: mem, afterList: afterList}
	h := NewHandler(st, quietLog(), func(context.Context) api.Health { return api.Health{Status: "ok"} }, scheduler.New(scheduler.Options{}), FencingConfig{})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts, st
}

// openFollow starts GET /v1/events?follow=true&query and returns a line
// reader over the stream.
func openFollow(t *testing.T, ctx context.Context, base, query string) (*http.Response, *bufio.Scanner) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/v1/events?follow=true"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("follow: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return resp, bufio.NewScanner(resp.Body)
}

func nextLine(t *testing.T, sc *bufio.Scanner) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if sc.Scan() {
			got <- sc.Text()
		} else {
			got <- fmt.Sprintf("<end: %v>", sc.Err())
		}
	}()
	select {
	case l := <-got:
		return l
	case <-time.After(5 * time.Second):
		t.Fatal("no line within 5s")
		return ""
	}
}

func lineMessage(t *testing.T, line string) string {
	t.Helper()
	var e api.Event
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Message == "" {
		t.Fatalf("line %q is not an event: %v", line, err)
	}
	return e.Message
}

func TestEventsFollow(t *testing.T) {
	mem := memory.New()
	now := time.Now()
	putEvents(t, mem,
		api.Event{Time: now.Add(-3 * time.Minute), Type: "fenced", Host: "node-a", Message: "old-1"},
		api.Event{Time: now.Add(-2 * time.Minute), Type: "fenced", Host: "node-b", Message: "old-other-host"},
		api.Event{Time: now.Add(-time.Minute), Type: "fenced", Host: "node-a", Message: "old-2"},
	)
	// An event written between the snapshot and the watch: it must come
	// once, after the snapshot's events.
	ts := newHookedAPI(t, mem, func(int64) {
		putEvents(t, mem, api.Event{Time: now, Type: "cleared", Host: "node-a", Message: "at-the-seam"})
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, sc := openFollow(t, ctx, ts.URL, "&host=node-a")
	var got []string
	for range 3 {
		got = append(got, lineMessage(t, nextLine(t, sc)))
	}
	if strings.Join(got, ",") != "old-1,old-2,at-the-seam" {
		t.Fatalf("first lines %v", got)
	}
	// Written after the request started: a non-matching one, a matching
	// one, and a rewrite of an existing key (not a new event).
	putEvents(t, mem, api.Event{Time: time.Now(), Type: "fenced", Host: "node-b", Message: "new-other-host"})
	putEvents(t, mem, api.Event{Time: now, Type: "cleared", Host: "node-a", Message: "at-the-seam"})
	putEvents(t, mem, api.Event{Time: time.Now(), Type: "power-on", Host: "node-a", Message: "new-1"})
	if m := lineMessage(t, nextLine(t, sc)); m != "new-1" {
		t.Fatalf("next event %q, want new-1", m)
	}
	// Deletes (retention) are not events.
	if _, err := pruneEvents(context.Background(), mem, clusterstore.Missing("/nothing"), 1); err != nil {
		t.Fatal(err)
	}
	putEvents(t, mem, api.Event{Time: time.Now(), Type: "fenced", Host: "node-a", Message: "new-2"})
	if m := lineMessage(t, nextLine(t, sc)); m != "new-2" {
		t.Fatalf("next event %q, want new-2", m)
	}
}

func TestEventsFollowStartsEmptyAndEndsWithTheClient(t *testing.T) {
	mem := memory.New()
	ts, st := newHookedAPIStore(t, mem, nil)
	ctx, cancel := context.WithCancel(context.Background())
	// The header arrives although there is nothing to send yet.
	_, sc := openFollow(t, ctx, ts.URL, "&limit=5")
	putEvents(t, mem, api.Event{Time: time.Now(), Type: "fenced", Host: "node-a", Message: "first"})
	if m := lineMessage(t, nextLine(t, sc)); m != "first" {
		t.Fatalf("event %q", m)
	}
	cancel()
	// The handler's watch ends with the client.
	select {
	case <-st.lastWatch().Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the watch outlived the client")
	}
}

func TestEventsFollowCompacted(t *testing.T) {
	mem := memory.New()
	ts := newHookedAPI(t, mem, func(rev int64) {
		putEvents(t, mem, api.Event{Time: time.Now(), Type: "fenced", Host: "node-a", Message: "lost-1"})
		putEvents(t, mem, api.Event{Time: time.Now(), Type: "fenced", Host: "node-a", Message: "lost-2"})
		if err := mem.Compact(rev + 2); err != nil {
			t.Error(err)
		}
	})
	_, sc := openFollow(t, context.Background(), ts.URL, "")
	var e api.Error
	line := nextLine(t, sc)
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Code != api.CodeUnavailable || !strings.Contains(e.Message, "the event stream ended") {
		t.Fatalf("line %q, want an api.Error", line)
	}
	if l := nextLine(t, sc); !strings.HasPrefix(l, "<end") {
		t.Fatalf("after the error: %q", l)
	}
}

func TestPruneEvents(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.WithMaxTxnOps(pruneChunk))
	t.Cleanup(func() { mem.Close() })
	leaderKey := clusterstore.Prefix + "election/test"
	if _, _, err := mem.Txn(ctx, nil, []clusterstore.Op{clusterstore.Put(leaderKey, []byte("me"))}); err != nil {
		t.Fatal(err)
	}
	guard := clusterstore.Exists(leaderKey)
	base := time.Now().Add(-24 * time.Hour)
	const total = 9000
	for i := 0; i < total; i += 3000 {
		var evs []api.Event
		for j := i; j < i+3000; j++ {
			evs = append(evs, api.Event{Time: base.Add(time.Duration(j) * time.Second), Type: "fenced", Host: "node-a", Message: fmt.Sprint(j)})
		}
		putEvents(t, mem, evs...)
	}
	count := func() []clusterstore.KeyValue {
		kvs, _, err := mem.List(ctx, clusterstore.EventsPrefix, 0)
		if err != nil {
			t.Fatal(err)
		}
		return kvs
	}

	// Nothing to do under the limit, or with the default (10,000).
	if n, err := pruneEvents(ctx, mem, guard, total); n != 0 || err != nil {
		t.Fatalf("keep all: %d %v", n, err)
	}
	if n, err := pruneEvents(ctx, mem, guard, 0); n != 0 || err != nil {
		t.Fatalf("default keep: %d %v", n, err)
	}

	before := storeRev(t, mem)
	n, err := pruneEvents(ctx, mem, guard, 100)
	if err != nil || n != total-100 {
		t.Fatalf("prune: %d %v", n, err)
	}
	// 8,900 deletes in chunks of at most 4,096: three transactions.
	if txns := storeRev(t, mem) - before; txns != 3 {
		t.Errorf("%d transactions, want 3", txns)
	}
	left := count()
	if len(left) != 100 {
		t.Fatalf("%d events left", len(left))
	}
	var first api.Event
	if err := clusterstore.Decode(left[0], &first); err != nil || first.Message != "8900" {
		t.Errorf("oldest kept %q, %v; want 8900", first.Message, err)
	}

	// A leader that lost its key deletes nothing.
	if _, _, err := mem.Txn(ctx, nil, []clusterstore.Op{clusterstore.Delete(leaderKey)}); err != nil {
		t.Fatal(err)
	}
	if n, err := pruneEvents(ctx, mem, guard, 10); n != 0 || !errors.Is(err, errLostLeadership) {
		t.Fatalf("without leadership: %d %v", n, err)
	}
	if len(count()) != 100 {
		t.Error("events deleted without leadership")
	}
}
