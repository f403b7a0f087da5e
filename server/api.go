package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// maxBody bounds every request body.
const maxBody = 1 << 20

// Handler serves the /v1 API. Every replica serves it; writes of desired
// state (workloads) go straight to the store, and only the leader turns them
// into allocations.
type Handler struct {
	store  clusterstore.Store
	log    *slog.Logger
	now    func() time.Time
	health func(ctx context.Context) api.Health
	sched  scheduler.Scheduler
	fence  FencingConfig
	// agents calls the hosts' agents (agentproxy.go).
	agents *http.Client
}

// explainer is implemented by schedulers that explain their decisions.
type explainer interface {
	Explain(st *scheduler.State, name string) api.Explanation
}

// NewHandler builds the API handler. health reports leadership for /v1/health.
// Agents serving HTTPS are verified against the system's CAs; a Server
// passes its Config.AgentTLS instead.
func NewHandler(store clusterstore.Store, log *slog.Logger, health func(ctx context.Context) api.Health, sched scheduler.Scheduler, fence FencingConfig) http.Handler {
	return newHandler(store, log, health, sched, fence, newAgentClient(nil))
}

func newHandler(store clusterstore.Store, log *slog.Logger, health func(ctx context.Context) api.Health, sched scheduler.Scheduler, fence FencingConfig, agents *http.Client) http.Handler {
	fence.defaults()
	h := &Handler{store: store, log: log, now: time.Now, health: health, sched: sched, fence: fence, agents: agents}
	mux := &routedMux{ServeMux: http.NewServeMux()}
	mux.HandleFunc("GET /v1/health", h.getHealth)
	mux.HandleFunc("GET /v1/nodes", h.listNodes)
	mux.HandleFunc("GET /v1/nodes/{name}", h.getNode)
	mux.HandleFunc("GET /v1/nodes/{name}/tasks", h.nodeTasks)
	mux.HandleFunc("POST /v1/nodes/{name}/fence", h.fenceNode)
	mux.HandleFunc("POST /v1/nodes/{name}/clear", h.clearNode)
	mux.HandleFunc("POST /v1/nodes/{name}/power-on", h.powerOnNode)
	mux.HandleFunc("GET /v1/workloads", h.listWorkloads)
	mux.HandleFunc("POST /v1/workloads", h.createWorkload)
	mux.HandleFunc("GET /v1/workloads/{name}", h.getWorkload)
	mux.HandleFunc("DELETE /v1/workloads/{name}", h.deleteWorkload)
	mux.HandleFunc("GET /v1/workloads/{name}/explain", h.explainWorkload)
	mux.HandleFunc("GET /v1/workloads/{name}/logs", h.workloadLogs)
	mux.HandleFunc("GET /v1/allocations", h.listAllocations)
	mux.HandleFunc("GET /v1/settings", h.getSettings)
	mux.HandleFunc("PUT /v1/settings", h.putSettings)
	mux.HandleFunc("GET /v1/events", h.listEvents)
	mux.HandleFunc("GET /v1/whatif", h.whatIf)
	h.routeShared(mux)
	h.routeMaintenance(mux)
	h.routeServices(mux)
	h.routeRebalance(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// routedMux is the API's mux. It remembers its routes (a test checks each
// has an access rule), and Pattern tells the auth middleware which route a
// request goes to.
type routedMux struct {
	*http.ServeMux
	patterns []string
}

// HandleFunc registers a route.
func (m *routedMux) HandleFunc(pattern string, fn func(http.ResponseWriter, *http.Request)) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, fn)
}

// Pattern is the route pattern that serves r ("" if none).
func (m *routedMux) Pattern(r *http.Request) string {
	_, p := m.Handler(r)
	return p
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, api.Error{Message: msg, Code: code})
}

// storeError answers a failed store call: the store being unreachable is a 503.
func (h *Handler) storeError(w http.ResponseWriter, op string, err error) {
	h.log.Error("store call failed", "op", op, "err", err)
	writeError(w, http.StatusServiceUnavailable, api.CodeUnavailable, fmt.Sprintf("%s: cluster store unavailable: %v", op, err))
}

func (h *Handler) snapshot(w http.ResponseWriter, r *http.Request) (*clusterstore.Snapshot, bool) {
	snap, bad, err := clusterstore.ReadSnapshot(r.Context(), h.store)
	if err != nil {
		h.storeError(w, "read", err)
		return nil, false
	}
	for _, e := range bad {
		h.log.Warn("skipping unreadable record", "err", e)
	}
	return snap, true
}

func (h *Handler) getHealth(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.health(r.Context()))
}

func (h *Handler) listNodes(w http.ResponseWriter, r *http.Request) {
	if snap, ok := h.snapshot(w, r); ok {
		writeJSON(w, http.StatusOK, nodeViews(snap))
	}
}

func (h *Handler) getNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	for _, v := range nodeViews(snap) {
		if v.Name == name {
			writeJSON(w, http.StatusOK, v)
			return
		}
	}
	writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q not found", name))
}

func (h *Handler) listWorkloads(w http.ResponseWriter, r *http.Request) {
	if snap, ok := h.snapshot(w, r); ok {
		writeJSON(w, http.StatusOK, workloadViews(snap))
	}
}

func (h *Handler) getWorkload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	wl, found := snap.Workloads[name]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, workloadView(snap, wl.Value))
}

// explainWorkload answers, per host, why the scheduler would or would not
// place the workload there, computed from live state by the same code that
// places; it changes nothing.
func (h *Handler) explainWorkload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	ex, ok := h.sched.(explainer)
	if !ok {
		writeError(w, http.StatusNotImplemented, api.CodeInternal, "this server's scheduler does not explain its decisions")
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	wl, found := snap.Workloads[name]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %q not found", name))
		return
	}
	e := ex.Explain(SchedulerState(snap), name)
	// The agent's report is the truth about the state; the engine only
	// knows placed or not.
	v := workloadView(snap, wl.Value)
	e.State, e.Host = v.State, v.Host
	if v.State == api.StatePending && v.Reason != "" && !strings.HasPrefix(e.Summary, "pending") {
		e.Summary = "pending: " + v.Reason
	}
	writeJSON(w, http.StatusOK, e)
}

func (h *Handler) listAllocations(w http.ResponseWriter, r *http.Request) {
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	out := make([]api.Allocation, 0, len(snap.Allocations))
	for _, a := range snap.Allocations {
		out = append(out, a.Value)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getSettings(w http.ResponseWriter, r *http.Request) {
	kv, found, _, err := h.store.Get(r.Context(), clusterstore.SettingsKey)
	if err != nil {
		h.storeError(w, "read settings", err)
		return
	}
	st := api.DefaultSettings()
	if found {
		if err := clusterstore.Decode(kv, &st); err != nil {
			writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// putSettings replaces the cluster settings. Fields left out keep their
// defaults, not their current values: the body is the whole setting set.
func (h *Handler) putSettings(w http.ResponseWriter, r *http.Request) {
	st := api.DefaultSettings()
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &st); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid settings: "+err.Error())
		return
	}
	st.Schema = api.SchemaVersion
	if err := st.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	if _, _, err := h.store.Txn(r.Context(), nil, []clusterstore.Op{clusterstore.Put(clusterstore.SettingsKey, clusterstore.Encode(st))}); err != nil {
		h.storeError(w, "write settings", err)
		return
	}
	h.log.Info("cluster settings changed", "strategy", st.Strategy, "preemption", st.Preemption, "tolerate_host_failures", st.TolerateHostFailures)
	writeJSON(w, http.StatusOK, st)
}

func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, maxBody+1))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value in the body")
	}
	return nil
}

// DecodeSpec reads a workload spec strictly: unknown fields, trailing data and
// oversized bodies are errors.
func DecodeSpec(r io.Reader) (api.WorkloadSpec, error) {
	var spec api.WorkloadSpec
	if err := decodeStrict(r, &spec); err != nil {
		return spec, fmt.Errorf("invalid workload spec: %w", err)
	}
	return spec, nil
}

func (h *Handler) createWorkload(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > maxBody {
		writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, fmt.Sprintf("request body over %d bytes", maxBody))
		return
	}
	spec, err := DecodeSpec(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, api.CodeTooLarge, fmt.Sprintf("request body over %d bytes", maxBody))
			return
		}
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	if err := spec.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	rec := api.Workload{Schema: api.SchemaVersion, WorkloadSpec: spec, CreatedAt: h.now().UTC()}
	key := clusterstore.WorkloadKey(spec.Name)
	conds := []clusterstore.Cond{clusterstore.Missing(key)}
	ops := []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))}
	if len(spec.Volumes) > 0 || len(spec.VIPs) > 0 {
		snap, ok := h.snapshot(w, r)
		if !ok {
			return
		}
		c, o, status, err := h.sharedGuards(snap, spec)
		if err != nil {
			writeError(w, status, codeFor(status), err.Error())
			return
		}
		conds, ops = append(conds, c...), append(ops, o...)
	}
	ok, _, err := h.store.Txn(r.Context(), conds, ops)
	if err != nil {
		h.storeError(w, "create workload", err)
		return
	}
	if !ok {
		if _, exists, _, _ := h.store.Get(r.Context(), key); !exists {
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("a volume or floating IP of %s changed meanwhile; try again", spec.Name))
			return
		}
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("workload %q already exists", spec.Name))
		return
	}
	h.log.Info("workload created", "workload", spec.Name, "kind", spec.Kind, "cpus", spec.CPUs, "memory", spec.Memory.String())
	writeJSON(w, http.StatusCreated, api.WorkloadView{Workload: rec, State: api.StatePending, Reason: "waiting for the scheduler"})
}

func (h *Handler) deleteWorkload(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	key := clusterstore.WorkloadKey(name)
	// Mark, don't remove: the leader and the agent finish the job, and the
	// record stays visible ("stopping") until nothing runs.
	for attempt := 0; attempt < 5; attempt++ {
		kv, found, _, err := h.store.Get(r.Context(), key)
		if err != nil {
			h.storeError(w, "delete workload", err)
			return
		}
		if !found {
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %q not found", name))
			return
		}
		var rec api.Workload
		if err := clusterstore.Decode(kv, &rec); err != nil {
			writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
			return
		}
		if rec.Deleting {
			writeJSON(w, http.StatusAccepted, api.WorkloadView{Workload: rec, State: api.StateStopping, Reason: "deleting"})
			return
		}
		rec.Deleting = true
		ok, _, err := h.store.Txn(r.Context(), []clusterstore.Cond{clusterstore.ModRevisionIs(key, kv.ModRevision)}, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))})
		if err != nil {
			h.storeError(w, "delete workload", err)
			return
		}
		if ok {
			h.log.Info("workload delete requested", "workload", name)
			writeJSON(w, http.StatusAccepted, api.WorkloadView{Workload: rec, State: api.StateStopping, Reason: "deleting"})
			return
		}
	}
	writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("workload %q is changing too fast; try again", name))
}
