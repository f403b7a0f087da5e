package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// serveStream sends the state as Server-Sent Events: once at the start
// (unless the client already shows that revision) and again whenever the
// Source's health changes. Only the health is read every poll, which is one
// cheap store read; the rest is read when it moved, once for all the streams
// (see stateCache).
//
// Where the stream starts: the Last-Event-ID header of a reconnecting
// EventSource, else the rev query parameter (the revision the page was
// drawn at), else nothing, and then the first state goes out at once.
func (h *handler) serveStream(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout.
	_ = rc.SetWriteDeadline(time.Time{})
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no") // a proxy in front must not hold events back
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// retry: how long an EventSource waits before it reconnects.
	if _, err := fmt.Fprint(w, "retry: 2000\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	s := &stream{h: h, w: w, rc: rc, shown: clientRevision(r)}
	poll := time.NewTicker(h.opts.Poll)
	defer poll.Stop()
	beat := time.NewTicker(h.heartbeat)
	defer beat.Stop()
	ctx := r.Context()
	for {
		if s.check(ctx) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-h.opts.Done:
			return
		case <-beat.C:
			// A comment: keeps proxies and the browser from timing out an
			// idle connection, and finds a client that went away.
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-poll.C:
		}
	}
}

func clientRevision(r *http.Request) int64 {
	for _, v := range []string{r.Header.Get("Last-Event-ID"), r.URL.Query().Get("rev")} {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// stream is one client's stream.
type stream struct {
	h  *handler
	w  http.ResponseWriter
	rc *http.ResponseController
	// shown is the revision the client showed when it connected (0: none).
	shown int64
	// last is the health of the last state sent; sent says there was one.
	last api.Health
	sent bool
	// problem is the last error sent, so that a lasting outage is told once.
	problem string
}

// check reads the health and sends the state if it changed. It returns an
// error only when the client cannot be written to.
func (s *stream) check(reqCtx context.Context) error {
	ctx, cancel := context.WithTimeout(reqCtx, readTimeout)
	defer cancel()
	hl, err := s.h.src.Health(ctx)
	if err == nil {
		if s.sent && hl == s.last {
			return nil
		}
		if !s.sent && s.shown != 0 && hl.Revision == s.shown {
			s.last, s.sent = hl, true // the page shows this already
			return nil
		}
		var doc []byte
		if doc, err = s.h.cache.get(ctx, hl, s.h.stateJSON); err == nil {
			s.last, s.sent, s.problem = hl, true, ""
			return s.send(fmt.Sprintf("id: %d\nevent: state\ndata: %s\n\n", hl.Revision, doc))
		}
	} else {
		err = fmt.Errorf("read health: %w", err)
	}
	if reqCtx.Err() != nil {
		return reqCtx.Err() // the client went away mid-read: nobody to tell
	}
	if err.Error() == s.problem {
		return nil
	}
	s.problem = err.Error()
	// Send the same state again once the source recovers.
	s.sent = false
	s.shown = 0
	b, _ := json.Marshal(api.Error{Message: err.Error(), Code: api.CodeUnavailable})
	return s.send(fmt.Sprintf("event: unavailable\ndata: %s\n\n", b))
}

func (s *stream) send(msg string) error {
	if _, err := fmt.Fprint(s.w, msg); err != nil {
		return err
	}
	return s.rc.Flush()
}

// stateJSON reads the state for the health hl and encodes it on one line
// (encoding/json never writes a raw newline, which would end an SSE field).
func (h *handler) stateJSON(ctx context.Context, hl api.Health) ([]byte, error) {
	st, err := h.readStateAt(ctx, hl)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// stateCache holds the encoded state of the latest health, so that when the
// revision moves the handler reads the store once, not once per open page.
type stateCache struct {
	mu     sync.Mutex
	health api.Health
	doc    []byte
}

func (c *stateCache) get(ctx context.Context, hl api.Health, read func(context.Context, api.Health) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.doc != nil && c.health == hl {
		return c.doc, nil
	}
	doc, err := read(ctx, hl)
	if err != nil {
		return nil, err
	}
	c.health, c.doc = hl, doc
	return doc, nil
}
