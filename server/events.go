package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// Event history limits.
const (
	// DefaultEventLimit is how many events GET /v1/events returns when the
	// request does not say (the newest that match).
	DefaultEventLimit = 200
	// MaxEventLimit is the largest limit a request may ask for.
	MaxEventLimit = 10000
	// DefaultEventRetention is how many events the leader keeps; older ones
	// are deleted by pruneEvents.
	DefaultEventRetention = 10000
	// pruneChunk is the most deletes pruneEvents puts in one transaction.
	pruneChunk = 4096
)

// eventQuery is a parsed GET /v1/events query.
type eventQuery struct {
	host, workload, typ string
	since               time.Time // zero: no lower bound
	limit               int
	follow              bool
}

// eventParams are the query parameters GET /v1/events knows.
var eventParams = map[string]bool{"host": true, "workload": true, "type": true, "since": true, "limit": true, "follow": true}

// parseEventQuery validates the query of GET /v1/events. since is a
// duration before now ("10m") or an RFC 3339 time.
func parseEventQuery(q url.Values, now time.Time) (eventQuery, error) {
	eq := eventQuery{limit: DefaultEventLimit}
	for k, v := range q {
		if !eventParams[k] {
			return eq, fmt.Errorf("unknown query parameter %q: use host, workload, type, since, limit or follow", k)
		}
		if len(v) > 1 {
			return eq, fmt.Errorf("query parameter %q is given %d times; give it once", k, len(v))
		}
	}
	eq.host, eq.workload, eq.typ = q.Get("host"), q.Get("workload"), q.Get("type")
	if q.Has("host") {
		if err := api.ValidateName("host", eq.host); err != nil {
			return eq, err
		}
	}
	if q.Has("workload") {
		if err := api.ValidateName("workload", eq.workload); err != nil {
			return eq, err
		}
	}
	if q.Has("type") && eq.typ == "" {
		return eq, fmt.Errorf("type is empty: give an event type such as fenced or host-lost")
	}
	if s := q.Get("since"); s != "" {
		t, err := parseSince(s, now)
		if err != nil {
			return eq, err
		}
		eq.since = t
	} else if q.Has("since") {
		return eq, fmt.Errorf("since is empty: give a duration such as 10m or an RFC 3339 time")
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > MaxEventLimit {
			return eq, fmt.Errorf("invalid limit %q: want a whole number from 1 to %d", q.Get("limit"), MaxEventLimit)
		}
		eq.limit = n
	}
	if q.Has("follow") {
		b, err := strconv.ParseBool(q.Get("follow"))
		if err != nil {
			return eq, fmt.Errorf("invalid follow %q: want true or false", q.Get("follow"))
		}
		eq.follow = b
	}
	return eq, nil
}

// parseSince reads a ?since= value: a positive duration before
// now ("90s", "10m", "2h") or an RFC 3339 time ("2025-06-01T12:00:00Z").
func parseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("invalid since %q: the duration must be positive, e.g. 10m", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("invalid since %q: want a duration such as 10m or 2h, or an RFC 3339 time such as 2025-06-01T12:00:00Z", s)
}

func (eq eventQuery) match(e api.Event) bool {
	return (eq.host == "" || e.Host == eq.host) &&
		(eq.workload == "" || e.Workload == eq.workload) &&
		(eq.typ == "" || e.Type == eq.typ) &&
		(eq.since.IsZero() || !e.Time.Before(eq.since))
}

// listEvents serves GET /v1/events: the newest `limit` events that match,
// oldest first, as a JSON array. With follow=true it streams them as NDJSON
// (one event per line) and then every matching event written after them,
// in the order they are written, until the client goes away. If the
// stream cannot continue (the store compacted the revisions it needed, or
// became unavailable) its last line is an api.Error object
// ({"error": "...", "code": "unavailable"}) and the response ends: the
// client may start again with since= the time of the last event it got.
func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) {
	eq, err := parseEventQuery(r.URL.Query(), h.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	kvs, rev, err := h.store.List(r.Context(), clusterstore.EventsPrefix, 0)
	if err != nil {
		h.storeError(w, "list events", err)
		return
	}
	// Keys sort by time: skip the ones before since without decoding them.
	start := 0
	if !eq.since.IsZero() && eq.since.UnixNano() > 0 {
		first := fmt.Sprintf("%s%020d", clusterstore.EventsPrefix, eq.since.UnixNano())
		start = sort.Search(len(kvs), func(i int) bool { return kvs[i].Key >= first })
	}
	out := []api.Event{}
	for _, kv := range kvs[start:] {
		e, ok := h.decodeEvent(kv)
		if ok && eq.match(e) {
			out = append(out, e)
		}
	}
	if len(out) > eq.limit {
		out = out[len(out)-eq.limit:]
	}
	if !eq.follow {
		writeJSON(w, http.StatusOK, out)
		return
	}
	h.followEvents(w, r, eq, out, rev)
}

// followEvents streams initial, then every matching event the watch from
// just after rev delivers: no event is missed or sent twice at the seam.
func (h *Handler) followEvents(w http.ResponseWriter, r *http.Request, eq eventQuery, initial []api.Event, rev int64) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	wch := h.store.Watch(ctx, clusterstore.EventsPrefix, rev+1)
	// The stream outlives the server's write timeout.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	for _, e := range initial {
		if enc.Encode(e) != nil {
			return
		}
	}
	// Flush even with nothing to send: the client waits for the header.
	if rc.Flush() != nil {
		return
	}
	for {
		var resp clusterstore.WatchResponse
		var ok bool
		select {
		case <-ctx.Done():
			return
		case resp, ok = <-wch:
		}
		if !ok {
			if ctx.Err() == nil {
				_ = enc.Encode(api.Error{Message: "the event stream ended: the cluster store closed the watch", Code: api.CodeUnavailable})
				_ = rc.Flush()
			}
			return
		}
		if resp.Err != nil {
			h.log.Warn("event stream ended", "err", resp.Err)
			_ = enc.Encode(api.Error{Message: fmt.Sprintf("the event stream ended: %v; follow again from the last event's time", resp.Err), Code: api.CodeUnavailable})
			_ = rc.Flush()
			return
		}
		sent := false
		for _, ev := range resp.Events {
			// Deletes are retention; a put over an existing key repeats an
			// event already seen.
			if ev.Type != clusterstore.EventPut || ev.KV.Version > 1 {
				continue
			}
			e, ok := h.decodeEvent(ev.KV)
			if !ok || !eq.match(e) {
				continue
			}
			if enc.Encode(e) != nil {
				return
			}
			sent = true
		}
		if sent && rc.Flush() != nil {
			return
		}
	}
}

func (h *Handler) decodeEvent(kv clusterstore.KeyValue) (api.Event, bool) {
	var e api.Event
	if err := clusterstore.Decode(kv, &e); err != nil {
		h.log.Warn("skipping unreadable event", "err", err)
		return e, false
	}
	return e, true
}

// pruneEvents deletes the oldest events beyond the newest keep (keep <= 0:
// DefaultEventRetention), at most pruneChunk per transaction, each guarded
// by guard (leadership). It returns how many it deleted, and
// errLostLeadership if the guard no longer held.
func pruneEvents(ctx context.Context, store clusterstore.Store, guard clusterstore.Cond, keep int) (int, error) {
	if keep <= 0 {
		keep = DefaultEventRetention
	}
	kvs, _, err := store.List(ctx, clusterstore.EventsPrefix, 0)
	if err != nil {
		return 0, fmt.Errorf("prune events: %w", err)
	}
	if len(kvs) <= keep {
		return 0, nil
	}
	victims := kvs[:len(kvs)-keep] // keys sort oldest first
	deleted := 0
	for len(victims) > 0 {
		n := min(len(victims), pruneChunk)
		ops := make([]clusterstore.Op, n)
		for i, kv := range victims[:n] {
			ops[i] = clusterstore.Delete(kv.Key)
		}
		ok, _, err := store.Txn(ctx, []clusterstore.Cond{guard}, ops)
		if err != nil {
			return deleted, fmt.Errorf("prune events: %w", err)
		}
		if !ok {
			return deleted, errLostLeadership
		}
		deleted += n
		victims = victims[n:]
	}
	return deleted, nil
}
