package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var events = []api.Event{
	{Schema: api.SchemaVersion, Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Type: "host-lost", Host: "node-a", Message: "no heartbeat for 10s"},
	{Schema: api.SchemaVersion, Time: time.Date(2025, 6, 1, 12, 0, 5, 0, time.UTC), Type: "rescheduling", Host: "node-a", Workload: "web", Message: "moving"},
}

func TestListEvents(t *testing.T) {
	ctx := context.Background()
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/events": reply(200, events),
	})
	got, err := c.ListEvents(ctx, EventFilter{})
	if err != nil || !reflect.DeepEqual(got, events) {
		t.Fatalf("got %v, %v", got, err)
	}
	since := time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		f    EventFilter
		want url.Values
	}{
		{EventFilter{}, url.Values{}},
		{EventFilter{Host: "node-a", Workload: "web", Type: "fenced", Limit: 5},
			url.Values{"host": {"node-a"}, "workload": {"web"}, "type": {"fenced"}, "limit": {"5"}}},
		{EventFilter{Last: 10 * time.Minute}, url.Values{"since": {"10m0s"}}},
		{EventFilter{Since: since}, url.Values{"since": {"2025-06-01T11:00:00Z"}}},
	} {
		rec.query = nil
		if _, err := c.ListEvents(ctx, tt.f); err != nil {
			t.Fatal(err)
		}
		q, _ := url.ParseQuery(rec.query[0])
		if !reflect.DeepEqual(q, tt.want) {
			t.Errorf("%+v: query %v, want %v", tt.f, q, tt.want)
		}
	}
}

func TestListEventsErrors(t *testing.T) {
	ctx := context.Background()
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/events": reply(400, api.Error{Message: `invalid limit "0"`, Code: api.CodeInvalid}),
	})
	_, err := c.ListEvents(ctx, EventFilter{Type: "x"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != api.CodeInvalid {
		t.Errorf("error %v", err)
	}
	if _, err := c.FollowEvents(ctx, EventFilter{Type: "x"}); !errors.As(err, &ae) || ae.Status != 400 {
		t.Errorf("follow: error %v", err)
	}
	n := len(rec.got)
	for _, f := range []EventFilter{{Limit: -1}, {Last: -time.Minute}, {Last: time.Minute, Since: time.Now()}} {
		if _, err := c.ListEvents(ctx, f); err == nil {
			t.Errorf("%+v: no error", f)
		}
		if _, err := c.FollowEvents(ctx, f); err == nil {
			t.Errorf("follow %+v: no error", f)
		}
	}
	if len(rec.got) != n {
		t.Errorf("invalid filters were sent: %v", rec.got[n:])
	}
}

// eventServer streams events as NDJSON: first, then (when next is closed)
// second, then the tail line if any, and holds the stream open if hold.
func eventServer(t *testing.T, first, second []api.Event, tail string, next <-chan struct{}, hold bool) (*httptest.Server, <-chan string) {
	t.Helper()
	query := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case query <- r.URL.RawQuery:
		default:
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		enc := json.NewEncoder(w)
		for _, e := range first {
			_ = enc.Encode(e)
		}
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		for _, e := range second {
			_ = enc.Encode(e)
		}
		_, _ = io.WriteString(w, tail)
		w.(http.Flusher).Flush()
		if hold {
			<-r.Context().Done()
		}
	}))
	t.Cleanup(srv.Close)
	return srv, query
}

func TestFollowEvents(t *testing.T) {
	next := make(chan struct{})
	srv, query := eventServer(t, events[:1], events[1:], "", next, false)
	// An overall timeout far shorter than the pause: it must not apply.
	c := New(srv.URL, &http.Client{Timeout: 50 * time.Millisecond})
	s, err := c.FollowEvents(context.Background(), EventFilter{Host: "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if e, err := s.Next(); err != nil || !reflect.DeepEqual(e, events[0]) {
		t.Fatalf("first: %v, %v", e, err)
	}
	if q := <-query; q != "follow=true&host=node-a" {
		t.Errorf("query %q", q)
	}
	time.Sleep(200 * time.Millisecond)
	close(next)
	if e, err := s.Next(); err != nil || !reflect.DeepEqual(e, events[1]) {
		t.Fatalf("second: %v, %v", e, err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("end: %v, want io.EOF", err)
	}
}

func TestFollowEventsServerError(t *testing.T) {
	next := make(chan struct{})
	close(next)
	srv, _ := eventServer(t, events, nil, `{"error":"the event stream ended: revision compacted","code":"unavailable"}`+"\n", next, false)
	s, err := New(srv.URL, nil).FollowEvents(context.Background(), EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range events {
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}
	_, err = s.Next()
	var ae *APIError
	if !errors.As(err, &ae) || ae.Code != api.CodeUnavailable || !strings.Contains(ae.Message, "revision compacted") {
		t.Errorf("error %v", err)
	}
}

func TestFollowEventsEndsWithTheContext(t *testing.T) {
	next := make(chan struct{})
	close(next)
	srv, _ := eventServer(t, events, nil, "", next, true)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := New(srv.URL, nil).FollowEvents(ctx, EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range events {
		if _, err := s.Next(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Next()
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Next ended with %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with the context")
	}
}
