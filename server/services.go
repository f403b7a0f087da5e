package server

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"slices"
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
	inPool := map[string]bool{}
	if vip, ok := snap.VIPs[s.VIP]; ok && s.VIP != "" && vip.Value.Service == s.Name {
		v.Anchor, v.Pool = vip.Value.Workload, vip.Value.Pool
		if c, held := snap.VIPClaims[s.VIP]; held {
			v.VIPHolder = c.Value.Host
		}
		if v.Pool != nil {
			for _, b := range v.Pool.Backends {
				inPool[b.Workload] = true
			}
		}
	}
	for _, m := range serviceMembers(snap, s.Name) {
		wv := workloadView(snap, m.w.Value)
		v.Members = append(v.Members, wv.Name)
		v.Instances = append(v.Instances, api.ServiceMember{Name: wv.Name, State: wv.State, Host: wv.Host, Health: wv.Health, Deleting: wv.Deleting, InPool: inPool[wv.Name]})
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
	conds := []clusterstore.Cond{clusterstore.Missing(key)}
	ops := []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))}
	if spec.VIP != "" {
		snap, ok := h.snapshot(w, r)
		if !ok {
			return
		}
		if _, exists := snap.Services[spec.Name]; exists {
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("service %q already exists", spec.Name))
			return
		}
		v, found := snap.VIPs[spec.VIP]
		switch {
		case !found:
			writeError(w, http.StatusBadRequest, api.CodeInvalid, fmt.Sprintf("floating IP %s does not exist (create it first: bulwarkctl vip create %s/PREFIX --network NAME)", spec.VIP, spec.VIP))
			return
		case v.Value.Service != "":
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s is already in use by service %s", spec.VIP, v.Value.Service))
			return
		case v.Value.Workload != "":
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s is already in use: attached to workload %s (detach it first: bulwarkctl vip detach %s)", spec.VIP, v.Value.Workload, spec.VIP))
			return
		case v.Value.Network == "":
			writeError(w, http.StatusBadRequest, api.CodeInvalid, fmt.Sprintf("floating IP %s names no network (it was created with --interface only): a service's address needs one, to find each copy's host address on it; create one with --network NAME", spec.VIP))
			return
		}
		if _, held := snap.VIPClaims[spec.VIP]; held {
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s is still held by a host; wait until it is released", spec.VIP))
			return
		}
		vrec := v.Value
		vrec.Service = spec.Name
		vkey := clusterstore.VIPKey(spec.VIP)
		conds = append(conds, clusterstore.ModRevisionIs(vkey, v.ModRevision), clusterstore.Missing(clusterstore.VIPClaimKey(spec.VIP)))
		ops = append(ops, clusterstore.Put(vkey, clusterstore.Encode(vrec)))
	}
	done, _, err := h.store.Txn(r.Context(), conds, ops)
	if err != nil {
		h.storeError(w, "create service", err)
		return
	}
	if !done {
		what := fmt.Sprintf("service %q already exists", spec.Name)
		if spec.VIP != "" {
			what = fmt.Sprintf("service %q already exists, or floating IP %s changed meanwhile; look again", spec.Name, spec.VIP)
		}
		writeError(w, http.StatusConflict, api.CodeConflict, what)
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
	anchor := ""
	if v, ok := snap.VIPs[s.VIP]; ok && s.VIP != "" && v.Value.Service == s.Name {
		anchor = v.Value.Workload
	}
	for _, m := range members {
		if m.w.Value.Deleting {
			continue
		}
		if m.w.Value.Name == anchor {
			// The member whose host holds the service's address is kept
			// when scaling down: moving the address breaks connections.
			live = append([]serviceMember{m}, live...)
			continue
		}
		live = append(live, m)
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
		// Every member is gone: the record goes too, and its floating IP
		// stays defined, free.
		ops = append(ops, clusterstore.Delete(clusterstore.ServiceKey(s.Name)), event("service-deleted", "", fmt.Sprintf("service %s deleted", s.Name)))
		if v, ok := snap.VIPs[s.VIP]; ok && s.VIP != "" && v.Value.Service == s.Name {
			rec := v.Value
			rec.Service, rec.Workload, rec.Pool = "", "", nil
			conds = append(conds, clusterstore.ModRevisionIs(clusterstore.VIPKey(s.VIP), v.ModRevision))
			ops = append(ops, clusterstore.Put(clusterstore.VIPKey(s.VIP), clusterstore.Encode(rec)))
		}
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

// pools brings the floating IPs of load-balanced services in line with
// their copies. It runs after failover in each evaluation and does not end
// it: a pool write touches only the floating IP's record, so it neither
// waits for nor delays fencing and placement. A lost race is left to the
// next evaluation.
func (l *leader) pools(ctx context.Context, snap *clusterstore.Snapshot, now time.Time) error {
	names := make([]string, 0, len(snap.Services))
	for name := range snap.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		svc := snap.Services[name]
		conds, ops := l.poolStep(snap, svc.Value, now)
		if len(ops) == 0 {
			continue
		}
		conds = append(conds, clusterstore.ModRevisionIs(clusterstore.ServiceKey(name), svc.ModRevision))
		if ok, err := l.commit(ctx, conds, ops); err != nil {
			return err
		} else if !ok {
			l.log.Info("service pool update lost a race; next evaluation", "service", name)
		}
	}
	return nil
}

// poolStep keeps a load-balanced service's floating IP in line with its
// members: Workload names the anchor (the member whose host holds the
// address) and Pool the members that take new connections. It writes only
// when something changed.
func (l *leader) poolStep(snap *clusterstore.Snapshot, s api.Service, now time.Time) ([]clusterstore.Cond, []clusterstore.Op) {
	if s.VIP == "" || s.Deleting {
		return nil, nil
	}
	v, ok := snap.VIPs[s.VIP]
	if !ok || v.Value.Service != s.Name {
		return nil, nil
	}
	rec := servicePool(snap, s, v.Value)
	if rec.Workload == v.Value.Workload && reflect.DeepEqual(rec.Pool, v.Value.Pool) {
		return nil, nil
	}
	key := clusterstore.VIPKey(s.VIP)
	var names []string
	for _, b := range rec.Pool.Backends {
		names = append(names, b.Workload)
	}
	msg := fmt.Sprintf("service %s: %s serves %d of %d: %s", s.Name, s.VIP, len(names), s.Replicas, strings.Join(names, ", "))
	if len(names) == 0 {
		msg = fmt.Sprintf("service %s: %s has no healthy member to forward to", s.Name, s.VIP)
	}
	if rec.Workload != v.Value.Workload {
		msg += fmt.Sprintf("; the address follows %s (was %s)", rec.Workload, cmp.Or(v.Value.Workload, "none"))
	}
	l.log.Info("service pool changed", "service", s.Name, "vip", s.VIP, "anchor", rec.Workload, "backends", names)
	return []clusterstore.Cond{clusterstore.ModRevisionIs(key, v.ModRevision)},
		[]clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec)), eventOp(now, 600, "service-pool", "", "", msg)}
}

// servicePool computes the record: the anchor stays while it is allocated
// to a live host that has not given up on it (moving the address drops the
// connections through it), else it becomes the first running member,
// preferring healthy ones; the pool is every running, healthy
// member on a live host with an address on the floating IP's network.
func servicePool(snap *clusterstore.Snapshot, s api.Service, v api.VIP) api.VIP {
	vip, _ := netip.ParseAddr(s.VIP)
	pool := &api.Pool{Ports: slices.Clone(s.Ports), Backends: []api.Backend{}}
	var live []string
	running := map[string]bool{}
	healthy := map[string]bool{}
	// kept: allocated to a live host that has not given up on it. The
	// anchor stays while kept: its host holds the address even while the
	// anchor restarts there (see nodeagent syncVIPs).
	kept := map[string]bool{}
	for _, m := range serviceMembers(snap, s.Name) {
		if m.w.Value.Deleting {
			continue
		}
		name := m.w.Value.Name
		live = append(live, name)
		view := workloadView(snap, m.w.Value)
		_, alive := snap.Heartbeats[view.Host]
		if a, placed := snap.Allocations[name]; placed && alive {
			st, reported := snap.Statuses[a.Value.Host][name]
			kept[name] = !reported || st.Value.Epoch != a.Value.Epoch || !st.Value.GaveUp
		}
		addr := hostAddressFor(snap, view.Host, v, vip)
		if addr == "" {
			// Its host is not on the address's network: it can neither
			// hold the address nor be forwarded to.
			kept[name] = false
			continue
		}
		if view.State != api.StateRunning || !alive {
			continue
		}
		running[name] = true
		if view.Health != "" && view.Health != api.HealthHealthy {
			continue
		}
		healthy[name] = true
		pool.Backends = append(pool.Backends, api.Backend{Workload: name, Host: view.Host, Address: addr})
	}
	anchor := v.Workload
	if !kept[anchor] {
		pick := func(ok func(string) bool) string {
			for _, n := range live {
				if ok(n) {
					return n
				}
			}
			return ""
		}
		next := cmp.Or(pick(func(n string) bool { return healthy[n] }), pick(func(n string) bool { return running[n] }))
		switch {
		case next != "":
			anchor = next
		case !slices.Contains(live, anchor) && len(live) > 0:
			anchor = live[0]
		case !slices.Contains(live, anchor):
			anchor = ""
		}
	}
	v.Workload, v.Pool = anchor, pool
	return v
}

// hostAddressFor is a host's own address on the subnet of a floating IP:
// where the address's holder forwards connections for that host's member.
func hostAddressFor(snap *clusterstore.Snapshot, host string, v api.VIP, vip netip.Addr) string {
	n, ok := snap.Nodes[host]
	if !ok {
		return ""
	}
	for _, hn := range n.Value.Networks {
		if v.Network != "" && hn.Name != v.Network {
			continue
		}
		if v.Network == "" && v.Interface != "" && hn.Interface != v.Interface {
			continue
		}
		for _, sub := range hn.Subnets {
			p, err := netip.ParsePrefix(sub)
			if err != nil || !p.Contains(vip) {
				continue
			}
			if _, floating := snap.VIPs[p.Addr().String()]; floating {
				continue // a floating IP it happened to hold when it registered
			}
			return p.Addr().String()
		}
	}
	return ""
}
