// Package ui is the read-only web dashboard that `bulwarkd server` serves at
// /ui/: hosts, workloads, services, the latest events and the cluster health
// line, at a glance, updated live.
//
// The page is rendered on the server with html/template, so it is complete
// (and usable) without JavaScript; a small embedded script then follows
// /ui/stream (Server-Sent Events) and redraws the tables from the state
// documents it receives. Every asset is embedded: the page loads nothing from
// anywhere else, and its Content-Security-Policy says so.
//
// The handler reads the cluster only through a Source, which the server
// implements over its store; it never writes.
package ui

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Prefix is where the handler must be mounted. It routes on the full request
// path, so mount it without http.StripPrefix:
//
//	mux.Handle(ui.Prefix, ui.Handler(src, ui.Options{}))
//
// It also answers the bare "/ui" (with a redirect to "/ui/") if that path is
// routed to it; a ServeMux with only "/ui/" registered redirects it already.
const Prefix = "/ui/"

// Source is what the dashboard reads; the server implements it over its store.
type Source interface {
	Health(ctx context.Context) (api.Health, error)
	Nodes(ctx context.Context) ([]api.NodeView, error)
	Workloads(ctx context.Context) ([]api.WorkloadView, error)
	Services(ctx context.Context) ([]api.ServiceView, error)
	Events(ctx context.Context, limit int) ([]api.Event, error) // newest last
}

// Options tunes the dashboard. The zero value is ready to use.
type Options struct {
	// Poll is how often a live page's stream asks the Source for its health,
	// to see whether the revision moved (default 500ms).
	Poll time.Duration
	// Title heads the page (default "Bulwark").
	Title string
	// Events is how many of the latest events the page shows (default 50).
	Events int
	// Done, once closed, ends the open streams. http.Server.Shutdown waits
	// for running handlers, and a stream runs as long as its page is open:
	// pass the channel that says the server is stopping.
	Done <-chan struct{}
}

// State is the document that /ui/state.json serves and /ui/stream sends:
// everything the page shows.
type State struct {
	Health    api.Health         `json:"health"`
	Nodes     []api.NodeView     `json:"nodes"`
	Workloads []api.WorkloadView `json:"workloads"`
	Services  []api.ServiceView  `json:"services"`
	// Events are the latest events, newest last.
	Events []api.Event `json:"events"`
}

const (
	defaultPoll      = 500 * time.Millisecond
	defaultTitle     = "Bulwark"
	defaultEvents    = 50
	defaultHeartbeat = 15 * time.Second
	// readTimeout bounds one read of the Source, so that a hung store
	// cannot pin a request (or every live stream) forever.
	readTimeout = 10 * time.Second
)

// Handler serves, under Prefix (see there for how to mount it):
//
//	GET /ui/            the page
//	GET /ui/state.json  the State as one JSON document
//	GET /ui/stream      Server-Sent Events: an event "state" (id: the store
//	                    revision, data: the State) whenever the Source's health
//	                    changes (its revision, or the leader), checked every
//	                    Options.Poll; an event "unavailable" (data:
//	                    api.Error) when the Source fails; a comment line as a
//	                    heartbeat every 15s. It ends when the client goes,
//	                    or when Options.Done is closed.
//	GET /ui/static/...  the embedded stylesheet, script and icon
//
// HEAD works wherever GET does; every other method gets 405.
func Handler(src Source, opts Options) http.Handler {
	return newHandler(src, opts, defaultHeartbeat)
}

//go:embed templates static
var assets embed.FS

type handler struct {
	src       Source
	opts      Options
	heartbeat time.Duration
	page      *pageTemplate
	static    map[string]asset
	cache     stateCache
}

// asset is one embedded static file, with the ETag that lets a browser
// revalidate it cheaply (the content changes only with the binary).
type asset struct {
	body  []byte
	ctype string
	etag  string
}

func newHandler(src Source, opts Options, heartbeat time.Duration) *handler {
	if opts.Poll <= 0 {
		opts.Poll = defaultPoll
	}
	if opts.Title == "" {
		opts.Title = defaultTitle
	}
	if opts.Events <= 0 {
		opts.Events = defaultEvents
	}
	return &handler{
		src:       src,
		opts:      opts,
		heartbeat: heartbeat,
		page:      mustParsePage(),
		static:    mustLoadStatic(),
	}
}

func mustLoadStatic() map[string]asset {
	types := map[string]string{
		".css": "text/css; charset=utf-8",
		".js":  "text/javascript; charset=utf-8",
		".svg": "image/svg+xml",
	}
	out := map[string]asset{}
	err := fs.WalkDir(assets, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := types[path.Ext(p)]
		if !ok {
			return fmt.Errorf("ui: no content type for embedded %s", p)
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "static/")] = asset{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic(err) // the embedded files are part of the binary: a bug, not a condition
	}
	return out
}

// contentSecurityPolicy allows only the page's own embedded assets: no inline
// script or style, no other origin, no framing.
const contentSecurityPolicy = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: the dashboard is read-only", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	switch {
	case p == strings.TrimSuffix(Prefix, "/"):
		u := Prefix
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, u, http.StatusMovedPermanently)
	case p == Prefix:
		h.servePage(w, r)
	case p == Prefix+"state.json":
		h.serveState(w, r)
	case p == Prefix+"stream":
		h.serveStream(w, r)
	case strings.HasPrefix(p, Prefix+"static/"):
		h.serveStatic(w, r, strings.TrimPrefix(p, Prefix+"static/"))
	default:
		http.NotFound(w, r)
	}
}

// readState reads everything the page shows. Nodes, workloads and services
// are sorted by name whatever order the Source returns them in, so that the
// page does not reshuffle between updates.
func (h *handler) readState(ctx context.Context) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, readTimeout)
	defer cancel()
	hl, err := h.src.Health(ctx)
	if err != nil {
		return State{}, fmt.Errorf("read health: %w", err)
	}
	return h.readStateAt(ctx, hl)
}

// readStateAt reads the rest of the state, for a health already read.
func (h *handler) readStateAt(ctx context.Context, hl api.Health) (State, error) {
	st := State{Health: hl}
	var err error
	if st.Nodes, err = h.src.Nodes(ctx); err != nil {
		return State{}, fmt.Errorf("read nodes: %w", err)
	}
	if st.Workloads, err = h.src.Workloads(ctx); err != nil {
		return State{}, fmt.Errorf("read workloads: %w", err)
	}
	if st.Services, err = h.src.Services(ctx); err != nil {
		return State{}, fmt.Errorf("read services: %w", err)
	}
	if st.Events, err = h.src.Events(ctx, h.opts.Events); err != nil {
		return State{}, fmt.Errorf("read events: %w", err)
	}
	// Empty lists are [] in the JSON, never null: the script need not care.
	if st.Nodes == nil {
		st.Nodes = []api.NodeView{}
	}
	if st.Workloads == nil {
		st.Workloads = []api.WorkloadView{}
	}
	if st.Services == nil {
		st.Services = []api.ServiceView{}
	}
	if st.Events == nil {
		st.Events = []api.Event{}
	}
	if len(st.Events) > h.opts.Events {
		st.Events = st.Events[len(st.Events)-h.opts.Events:]
	}
	slices.SortStableFunc(st.Nodes, func(a, b api.NodeView) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(st.Workloads, func(a, b api.WorkloadView) int { return strings.Compare(a.Name, b.Name) })
	slices.SortStableFunc(st.Services, func(a, b api.ServiceView) int { return strings.Compare(a.Name, b.Name) })
	return st, nil
}

func (h *handler) serveState(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	st, err := h.readState(r.Context())
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, api.Error{Message: "dashboard: " + err.Error(), Code: api.CodeUnavailable})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func (h *handler) serveStatic(w http.ResponseWriter, r *http.Request, name string) {
	a, ok := h.static[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("ETag", a.etag)
	hdr.Set("Cache-Control", "no-cache") // revalidate: a new binary may bring new assets
	if r.Header.Get("If-None-Match") == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", fmt.Sprint(len(a.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
}
