package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// EventFilter selects events of the cluster's event history. Zero fields
// select everything.
type EventFilter struct {
	// Host, Workload and Type keep the events of that host, workload and
	// type (e.g. "fenced", "host-lost").
	Host, Workload, Type string
	// Since keeps the events at or after this time.
	Since time.Time
	// Last keeps the events of the last Last, by the server's clock. At
	// most one of Since and Last may be set.
	Last time.Duration
	// Limit is how many events to return at most: the newest that match
	// (0: the server's default, 200; at most 10,000). FollowEvents applies
	// it to the events sent before the new ones.
	Limit int
}

func (f EventFilter) query(follow bool) (string, error) {
	q := url.Values{}
	if f.Host != "" {
		q.Set("host", f.Host)
	}
	if f.Workload != "" {
		q.Set("workload", f.Workload)
	}
	if f.Type != "" {
		q.Set("type", f.Type)
	}
	switch {
	case !f.Since.IsZero() && f.Last != 0:
		return "", errors.New("event filter: set Since or Last, not both")
	case f.Last < 0:
		return "", fmt.Errorf("event filter: Last is negative (%v)", f.Last)
	case f.Last > 0:
		q.Set("since", f.Last.String())
	case !f.Since.IsZero():
		q.Set("since", f.Since.Format(time.RFC3339Nano))
	}
	if f.Limit < 0 {
		return "", fmt.Errorf("event filter: Limit is negative (%d)", f.Limit)
	}
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if follow {
		q.Set("follow", "true")
	}
	if len(q) == 0 {
		return "", nil
	}
	return "?" + q.Encode(), nil
}

// ListEvents returns GET /v1/events: the newest events that match f (at
// most f.Limit), oldest first. The server answers 400 (api.CodeInvalid)
// for an invalid filter.
func (c *Client) ListEvents(ctx context.Context, f EventFilter) ([]api.Event, error) {
	q, err := f.query(false)
	if err != nil {
		return nil, err
	}
	var out []api.Event
	if err := c.do(ctx, http.MethodGet, "/v1/events"+q, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// EventStream is a followed event history (FollowEvents). It is not safe
// for concurrent use; Close it when done.
type EventStream struct {
	ctx  context.Context
	body io.ReadCloser
	dec  *json.Decoder
	path string
}

// streamLine is one line of the stream: an event, or (last) an api.Error
// saying why the server ended it.
type streamLine struct {
	api.Event
	Error string `json:"error"`
	Code  string `json:"code"`
}

// Next waits for the next event. It returns io.EOF if the server closed
// the stream, an *APIError (status 200) if the server ended it with an
// error (e.g. the store compacted the history it needed: follow again
// with Since set to the last event's time), and ctx's error once ctx is
// done.
func (s *EventStream) Next() (api.Event, error) {
	var l streamLine
	err := s.dec.Decode(&l)
	if cerr := s.ctx.Err(); cerr != nil {
		return api.Event{}, cerr
	}
	if errors.Is(err, io.EOF) {
		return api.Event{}, io.EOF
	}
	if err != nil {
		return api.Event{}, fmt.Errorf("reading the event stream of %s: %w", s.path, err)
	}
	if l.Error != "" {
		code := l.Code
		if code == "" {
			code = api.CodeUnavailable
		}
		return api.Event{}, &APIError{Status: http.StatusOK, ErrorBody: api.Error{Message: l.Error, Code: code}}
	}
	return l.Event, nil
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }

// FollowEvents sends GET /v1/events?follow=true: the stream first carries
// the newest events that match f (as ListEvents returns them), then every
// matching event as it is written, until ctx is done, Close is called, or
// the server ends it. As with Logs, the client's overall request timeout
// does not apply to the stream, but connecting and waiting for the
// response header are still bounded. An invalid filter is an *APIError
// with status 400, returned here.
func (c *Client) FollowEvents(ctx context.Context, f EventFilter) (*EventStream, error) {
	q, err := f.query(true)
	if err != nil {
		return nil, err
	}
	p := "/v1/events" + q
	req, err := c.newRequest(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/x-ndjson, application/json")
	resp, err := c.send(c.stream, req, p)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return &EventStream{ctx: ctx, body: resp.Body, dec: json.NewDecoder(resp.Body), path: "/v1/events"}, nil
}
