package server

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// Replicated services. The API stores the service record; the leader keeps
// its members — ordinary workloads named "<service>-<n>" — in line with it.
// Placement, failover and restarts then treat members like any workload.

func (h *Handler) routeServices(mux *routedMux) {
	mux.HandleFunc("GET /v1/services", h.listServices)
	mux.HandleFunc("POST /v1/services", h.createService)
	mux.HandleFunc("GET /v1/services/{name}", h.getService)
	mux.HandleFunc("DELETE /v1/services/{name}", h.deleteService)
	mux.HandleFunc("PUT /v1/services/{name}/scale", h.scaleService)
}

// serviceMember is a member workload with its index.
type serviceMember struct {
	n int
	w clusterstore.Versioned[api.Workload]
}

// serviceMembers lists a service's members by index, deleting ones too.
func serviceMembers(snap *clusterstore.Snapshot, service string) []serviceMember {
	var out []serviceMember
	for _, w := range snap.Workloads {
		if n, ok := api.MemberIndex(service, &w.Value.WorkloadSpec); ok {
			out = append(out, serviceMember{n, w})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].n < out[j].n })
	return out
}

func serviceView(snap *clusterstore.Snapshot, s api.Service) api.ServiceView {
	v := api.ServiceView{Service: s, Members: []string{}}
	for _, m := range serviceMembers(snap, s.Name) {
		wv := workloadView(snap, m.w.Value)
		v.Members = append(v.Members, wv.Name)
		v.Instances = append(v.Instances, api.ServiceMember{Name: wv.Name, State: wv.State, Host: wv.Host, Deleting: wv.Deleting})
		if wv.State == api.StateRunning && !wv.Deleting {
			v.Running++
		}
	}
	return v
}

func (h *Handler) listServices(w http.ResponseWriter, r *http.Request) {
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	out := make([]api.ServiceView, 0, len(snap.Services))
	for _, s := range snap.Services {
		out = append(out, serviceView(snap, s.Value))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getService(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	s, found := snap.Services[name]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("service %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, serviceView(snap, s.Value))
}

func (h *Handler) createService(w http.ResponseWriter, r *http.Request) {
	var spec api.ServiceSpec
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &spec); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid service spec: "+err.Error())
		return
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	rec := api.Service{Schema: api.SchemaVersion, ServiceSpec: spec, CreatedAt: h.now().UTC()}
	key := clusterstore.ServiceKey(spec.Name)
	done, _, err := h.store.Txn(r.Context(), []clusterstore.Cond{clusterstore.Missing(key)}, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))})
	if err != nil {
		h.storeError(w, "create service", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("service %q already exists", spec.Name))
		return
	}
	h.log.Info("service created", "service", spec.Name, "replicas", spec.Replicas, "kind", spec.Template.Kind)
	writeJSON(w, http.StatusCreated, api.ServiceView{Service: rec, Members: []string{}})
}

// changeService applies change to a service record in one transaction
// guarded by its mod revision, retrying a few times on a race.
func (h *Handler) changeService(w http.ResponseWriter, r *http.Request, status int, change func(*api.Service) error) {
	name := r.PathValue("name")
	key := clusterstore.ServiceKey(name)
	for attempt := 0; attempt < 5; attempt++ {
		snap, ok := h.snapshot(w, r)
		if !ok {
			return
		}
		s, found := snap.Services[name]
		if !found {
			writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("service %q not found", name))
			return
		}
		rec := s.Value
		if err := change(&rec); err == errUnchanged {
			writeJSON(w, status, serviceView(snap, rec))
			return
		} else if err != nil {
			writeError(w, http.StatusConflict, api.CodeConflict, err.Error())
			return
		}
		done, _, err := h.store.Txn(r.Context(), []clusterstore.Cond{clusterstore.ModRevisionIs(key, s.ModRevision)}, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))})
		if err != nil {
			h.storeError(w, "change service", err)
			return
		}
		if done {
			writeJSON(w, status, serviceView(snap, rec))
			return
		}
	}
	writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("service %q is changing too fast; try again", name))
}

func (h *Handler) deleteService(w http.ResponseWriter, r *http.Request) {
	h.changeService(w, r, http.StatusAccepted, func(s *api.Service) error {
		if s.Deleting {
			return errUnchanged
		}
		s.Deleting = true
		h.log.Info("service delete requested", "service", s.Name)
		return nil
	})
}

func (h *Handler) scaleService(w http.ResponseWriter, r *http.Request) {
	var req api.ScaleRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid scale request: "+err.Error())
		return
	}
	if err := api.ValidateReplicas(req.Replicas); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	h.changeService(w, r, http.StatusOK, func(s *api.Service) error {
		if s.Deleting {
			return fmt.Errorf("service %s is being deleted", s.Name)
		}
		if s.Replicas == req.Replicas {
			return errUnchanged
		}
		h.log.Info("service scaled", "service", s.Name, "from", s.Replicas, "to", req.Replicas)
		s.Replicas = req.Replicas
		return nil
	})
}

// services brings every service's members in line with its record: it
// creates missing members (lowest free index first), marks surplus ones
// deleting (highest index first), and for a service being deleted marks
// every member deleting and removes the record once none is left. Each
// service is one transaction guarded by leadership and by the service
// record's mod revision (and each member's). changed says something was
// written (or lost a race): evaluate again on fresh state.
func (l *leader) services(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) (changed bool, err error) {
	names := make([]string, 0, len(snap.Services))
	for name := range snap.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	// Each member written takes one op and one event, and one condition.
	limit := max(1, (l.cfg.MaxTxnOps-4)/2)
	for _, name := range names {
		svc := snap.Services[name]
		conds, ops := l.serviceStep(snap, svc, now, limit)
		if len(ops) == 0 {
			continue
		}
		conds = append([]clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.ServiceKey(name), svc.ModRevision)}, conds...)
		ok, err := l.commit(ctx, conds, ops)
		if err != nil {
			return false, err
		}
		if !ok {
			l.log.Info("service reconcile lost a race; re-evaluating", "service", name)
		}
		changed = true
	}
	return changed, nil
}

// serviceStep decides one service's writes: at most limit members.
func (l *leader) serviceStep(snap *clusterstore.Snapshot, svc clusterstore.Versioned[api.Service], now time.Time, limit int) ([]clusterstore.Cond, []clusterstore.Op) {
	s := svc.Value
	members := serviceMembers(snap, s.Name)
	var live []serviceMember
	for _, m := range members {
		if !m.w.Value.Deleting {
			live = append(live, m)
		}
	}
	seq := 0
	event := func(typ, workload, msg string) clusterstore.Op {
		seq++
		return eventOp(now, 500+seq, typ, "", workload, msg)
	}
	var conds []clusterstore.Cond
	var ops []clusterstore.Op
	markDeleting := func(ms []serviceMember, why string) {
		for _, m := range ms {
			rec := m.w.Value
			rec.Deleting = true
			key := clusterstore.WorkloadKey(rec.Name)
			conds = append(conds, clusterstore.ModRevisionIs(key, m.w.ModRevision))
			ops = append(ops, clusterstore.Put(key, clusterstore.Encode(rec)), event("service-member-removed", rec.Name, fmt.Sprintf("%s: removing %s (%s)", s.Name, rec.Name, why)))
			l.log.Info("service member removed", "service", s.Name, "workload", rec.Name, "why", why)
		}
	}
	want := s.Replicas
	if s.Deleting {
		want = 0
	}
	switch {
	case s.Deleting && len(members) == 0:
		// Every member is gone: the record goes too.
		ops = append(ops, clusterstore.Delete(clusterstore.ServiceKey(s.Name)), event("service-deleted", "", fmt.Sprintf("service %s deleted", s.Name)))
		l.log.Info("service deleted", "service", s.Name)
	case len(live) > want:
		// Surplus: the highest indexes go first.
		surplus := live[want:]
		if len(surplus) > limit {
			surplus = surplus[len(surplus)-limit:]
		}
		why := fmt.Sprintf("scaled to %d", want)
		if s.Deleting {
			why = "service deleted"
		} else {
			ops = append(ops, event("service-scaled", "", fmt.Sprintf("service %s: %d running or starting, %d wanted: removing %d", s.Name, len(live), want, len(surplus))))
		}
		markDeleting(surplus, why)
	case len(live) < want:
		used := map[int]bool{}
		for _, m := range members {
			used[m.n] = true
		}
		var created []string
		for n := 1; len(live)+len(created) < want && len(created) < limit && n <= api.MaxMemberIndex; n++ {
			name := api.MemberName(s.Name, n)
			if _, taken := snap.Workloads[name]; taken || used[n] {
				continue // a member still stopping, or a workload of that name
			}
			spec := s.Member(n)
			if err := spec.Validate(); err != nil {
				l.log.Warn("service member spec invalid", "service", s.Name, "workload", name, "err", err)
				return nil, nil
			}
			key := clusterstore.WorkloadKey(name)
			rec := api.Workload{Schema: api.SchemaVersion, WorkloadSpec: spec, CreatedAt: now.UTC()}
			conds = append(conds, clusterstore.Missing(key))
			ops = append(ops, clusterstore.Put(key, clusterstore.Encode(rec)), event("service-member-created", name, fmt.Sprintf("%s: created %s", s.Name, name)))
			created = append(created, name)
			l.log.Info("service member created", "service", s.Name, "workload", name)
		}
		if len(created) == 0 {
			l.log.Warn("service cannot create members: no free member name", "service", s.Name)
			return nil, nil
		}
		ops = append(ops, event("service-scaled", "", fmt.Sprintf("service %s: %d running or starting, %d wanted: created %s", s.Name, len(live), want, strings.Join(created, ", "))))
	}
	return conds, ops
}
