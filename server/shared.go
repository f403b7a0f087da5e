package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// Volumes and floating IPs: definitions written by the API; claims (locks)
// taken and released by agents, and by the leader after fencing.

func (h *Handler) routeShared(mux *routedMux) {
	mux.HandleFunc("GET /v1/volumes", h.listVolumes)
	mux.HandleFunc("POST /v1/volumes", h.createVolume)
	mux.HandleFunc("GET /v1/volumes/{name}", h.getVolume)
	mux.HandleFunc("DELETE /v1/volumes/{name}", h.deleteVolume)
	mux.HandleFunc("GET /v1/vips", h.listVIPs)
	mux.HandleFunc("POST /v1/vips", h.createVIP)
	mux.HandleFunc("GET /v1/vips/{addr}", h.getVIP)
	mux.HandleFunc("DELETE /v1/vips/{addr}", h.deleteVIP)
	mux.HandleFunc("POST /v1/vips/{addr}/attach", h.attachVIP)
	mux.HandleFunc("POST /v1/vips/{addr}/detach", h.detachVIP)
}

func volumeView(snap *clusterstore.Snapshot, v api.Volume) api.VolumeView {
	out := api.VolumeView{Volume: v}
	if c, ok := snap.Locks[v.Name]; ok {
		c := c.Value
		out.Holder = &c
	}
	for name, w := range snap.Workloads {
		if slices.Contains(w.Value.Volumes, v.Name) {
			out.Users = append(out.Users, name)
		}
	}
	sort.Strings(out.Users)
	return out
}

func (h *Handler) listVolumes(w http.ResponseWriter, r *http.Request) {
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	out := make([]api.VolumeView, 0, len(snap.Volumes))
	for _, v := range snap.Volumes {
		out = append(out, volumeView(snap, v.Value))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getVolume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	v, found := snap.Volumes[name]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("volume %q not found", name))
		return
	}
	writeJSON(w, http.StatusOK, volumeView(snap, v.Value))
}

// createVolume checks the spec, then asks every ready host's agent whether
// it can use the path (exists, right type, readable/writable, lease
// directory writable), and only then stores the volume.
func (h *Handler) createVolume(w http.ResponseWriter, r *http.Request) {
	var spec api.VolumeSpec
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &spec); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid volume spec: "+err.Error())
		return
	}
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	if _, exists := snap.Volumes[spec.Name]; exists {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("volume %q already exists", spec.Name))
		return
	}
	for _, v := range snap.Volumes {
		if v.Value.Path == spec.Path {
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("path %s is already volume %s", spec.Path, v.Value.Name))
			return
		}
	}
	if status, msg := h.checkVolumeOnHosts(r.Context(), snap, spec); status != 0 {
		code := api.CodeInvalid
		if status == http.StatusServiceUnavailable {
			code = api.CodeUnavailable
		}
		writeError(w, status, code, msg)
		return
	}
	rec := api.Volume{Schema: api.SchemaVersion, VolumeSpec: spec, CreatedAt: h.now().UTC()}
	key := clusterstore.VolumeKey(spec.Name)
	done, _, err := h.store.Txn(r.Context(), []clusterstore.Cond{clusterstore.Missing(key)}, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))})
	if err != nil {
		h.storeError(w, "create volume", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("volume %q already exists", spec.Name))
		return
	}
	h.log.Info("volume created", "volume", spec.Name, "path", spec.Path, "mode", spec.Mode)
	writeJSON(w, http.StatusCreated, api.VolumeView{Volume: rec})
}

// checkVolumeOnHosts asks the agent of every ready host to check the
// volume; status 0 means every one can use it.
func (h *Handler) checkVolumeOnHosts(ctx context.Context, snap *clusterstore.Snapshot, spec api.VolumeSpec) (int, string) {
	var hosts []string
	for name := range snap.Nodes {
		if hostReady(snap, name) {
			hosts = append(hosts, name)
		}
	}
	sort.Strings(hosts)
	if len(hosts) == 0 {
		return http.StatusServiceUnavailable, "no host is ready to check the volume's path on; try again once a host is up"
	}
	body, _ := json.Marshal(spec)
	ctx, cancel := context.WithTimeout(ctx, agentCallTimeout)
	defer cancel()
	errs := make([]string, len(hosts))
	var wg sync.WaitGroup
	for i, host := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.agentRequest(ctx, host, http.MethodPost, "/v1/check/volume", bytes.NewReader(body))
			if err != nil {
				errs[i] = fmt.Sprintf("host %s could not check it: %v", host, err)
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode == http.StatusNoContent {
				return
			}
			var e api.Error
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			if json.Unmarshal(b, &e) != nil || e.Message == "" {
				e.Message = fmt.Sprintf("HTTP %d", resp.StatusCode)
			}
			errs[i] = fmt.Sprintf("on host %s: %s", host, e.Message)
		}()
	}
	wg.Wait()
	var bad []string
	for _, e := range errs {
		if e != "" {
			bad = append(bad, e)
		}
	}
	if len(bad) > 0 {
		return http.StatusBadRequest, "volume " + spec.Name + " cannot be used " + strings.Join(bad, "; ")
	}
	return 0, ""
}

// deleteVolume refuses while a workload attaches the volume or a host holds
// its lock.
func (h *Handler) deleteVolume(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	v, found := snap.Volumes[name]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("volume %q not found", name))
		return
	}
	view := volumeView(snap, v.Value)
	if view.Holder != nil {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("volume %s is held by %s on %s (epoch %d); delete or move that workload first", name, view.Holder.Workload, view.Holder.Host, view.Holder.Epoch))
		return
	}
	if len(view.Users) > 0 {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("volume %s is attached to %s; delete those workloads first", name, strings.Join(view.Users, ", ")))
		return
	}
	// A workload created meanwhile rewrites the volume record (see
	// sharedGuards), so this fails rather than orphan it.
	done, _, err := h.store.Txn(r.Context(),
		[]clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.VolumeKey(name), v.ModRevision), clusterstore.Missing(clusterstore.LockKey(name))},
		[]clusterstore.Op{clusterstore.Delete(clusterstore.VolumeKey(name))})
	if err != nil {
		h.storeError(w, "delete volume", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("volume %s changed meanwhile (attached or locked); look again", name))
		return
	}
	h.log.Info("volume deleted", "volume", name)
	w.WriteHeader(http.StatusNoContent)
}

// sharedGuards checks a new workload's volumes and floating IPs and returns
// the conditions and writes that go into its creation: each volume record
// is rewritten (so a concurrent volume delete fails) and each floating IP
// is attached to it.
func (h *Handler) sharedGuards(snap *clusterstore.Snapshot, spec api.WorkloadSpec) ([]clusterstore.Cond, []clusterstore.Op, int, error) {
	var conds []clusterstore.Cond
	var ops []clusterstore.Op
	for _, name := range spec.Volumes {
		v, ok := snap.Volumes[name]
		if !ok {
			return nil, nil, http.StatusBadRequest, fmt.Errorf("volume %s does not exist (create it with: bulwarkctl volume create %s --path PATH)", name, name)
		}
		key := clusterstore.VolumeKey(name)
		conds = append(conds, clusterstore.ModRevisionIs(key, v.ModRevision))
		ops = append(ops, clusterstore.Put(key, clusterstore.Encode(v.Value)))
	}
	for _, addr := range spec.VIPs {
		a, _ := netip.ParseAddr(addr)
		v, ok := snap.VIPs[a.String()]
		if !ok {
			return nil, nil, http.StatusBadRequest, fmt.Errorf("floating IP %s does not exist (create it with: bulwarkctl vip create %s/PREFIX --interface IFACE)", addr, addr)
		}
		if v.Value.Service != "" {
			return nil, nil, http.StatusConflict, fmt.Errorf("floating IP %s is in use: it is the load-balanced address of service %s", addr, v.Value.Service)
		}
		if v.Value.Workload != "" && v.Value.Workload != spec.Name {
			return nil, nil, http.StatusConflict, fmt.Errorf("floating IP %s is already attached to %s", addr, v.Value.Workload)
		}
		rec := v.Value
		rec.Workload = spec.Name
		key := clusterstore.VIPKey(a.String())
		conds = append(conds, clusterstore.ModRevisionIs(key, v.ModRevision))
		ops = append(ops, clusterstore.Put(key, clusterstore.Encode(rec)))
	}
	return conds, ops, 0, nil
}

func vipView(snap *clusterstore.Snapshot, v api.VIP) api.VIPView {
	out := api.VIPView{VIP: v}
	p, _ := netip.ParsePrefix(v.Address)
	if c, ok := snap.VIPClaims[p.Addr().String()]; ok {
		c := c.Value
		out.Holder = &c
	}
	return out
}

func (h *Handler) listVIPs(w http.ResponseWriter, r *http.Request) {
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	out := make([]api.VIPView, 0, len(snap.VIPs))
	for _, v := range snap.VIPs {
		out = append(out, vipView(snap, v.Value))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	writeJSON(w, http.StatusOK, out)
}

// vipFromPath reads the {addr} path element ("192.0.2.10" or with a
// prefix) and finds the VIP.
func (h *Handler) vipFromPath(w http.ResponseWriter, r *http.Request) (*clusterstore.Snapshot, clusterstore.Versioned[api.VIP], string, bool) {
	raw := r.PathValue("addr")
	if i := strings.IndexByte(raw, '/'); i >= 0 {
		raw = raw[:i]
	}
	a, err := netip.ParseAddr(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, fmt.Sprintf("%q is not an IP address", r.PathValue("addr")))
		return nil, clusterstore.Versioned[api.VIP]{}, "", false
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return nil, clusterstore.Versioned[api.VIP]{}, "", false
	}
	v, found := snap.VIPs[a.String()]
	if !found {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("floating IP %s not found", a))
		return nil, v, "", false
	}
	return snap, v, a.String(), true
}

func (h *Handler) getVIP(w http.ResponseWriter, r *http.Request) {
	if snap, v, _, ok := h.vipFromPath(w, r); ok {
		writeJSON(w, http.StatusOK, vipView(snap, v.Value))
	}
}

// checkVIPAgainstHosts refuses an address no host could ever hold: an
// unknown network or interface, or an address outside the network.
func checkVIPAgainstHosts(snap *clusterstore.Snapshot, spec api.VIPSpec, p netip.Prefix) error {
	if spec.Network != "" {
		var subnets []string
		onNet := false
		for _, n := range snap.Nodes {
			for _, hn := range n.Value.Networks {
				if hn.Name != spec.Network || spec.Interface != "" && hn.Interface != spec.Interface {
					continue
				}
				onNet = true
				for _, s := range hn.Subnets {
					sp, err := netip.ParsePrefix(s)
					if err != nil {
						continue
					}
					if sp.Masked().Contains(p.Addr()) {
						return nil
					}
					subnets = append(subnets, sp.Masked().String())
				}
			}
		}
		if !onNet {
			if spec.Interface != "" {
				return fmt.Errorf("no host is attached to network %s through interface %s (hosts declare networks with: bulwarkd agent --network NAME=IFACE)", spec.Network, spec.Interface)
			}
			return fmt.Errorf("no host is attached to network %s (hosts declare networks with: bulwarkd agent --network NAME=IFACE)", spec.Network)
		}
		slices.Sort(subnets)
		return fmt.Errorf("%s is outside network %s (%s)", p.Addr(), spec.Network, strings.Join(slices.Compact(subnets), ", "))
	}
	for _, n := range snap.Nodes {
		if ok, _ := scheduler.HostCanHold(n.Value, api.VIP{VIPSpec: spec}); ok {
			return nil
		}
	}
	return fmt.Errorf("no host has interface %s", spec.Interface)
}

func (h *Handler) createVIP(w http.ResponseWriter, r *http.Request) {
	var spec api.VIPSpec
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &spec); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid floating IP spec: "+err.Error())
		return
	}
	if err := spec.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	p, _ := api.ParseVIPPrefix(spec.Address)
	spec.Address = p.String()
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	addr := p.Addr().String()
	if old, exists := snap.VIPs[addr]; exists {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s already exists (%s)", addr, old.Value.Address))
		return
	}
	if err := checkVIPAgainstHosts(snap, spec, p); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	key := clusterstore.VIPKey(addr)
	conds := []clusterstore.Cond{clusterstore.Missing(key)}
	if spec.Workload != "" {
		c, status, err := attachGuard(snap, spec.Workload, api.VIP{VIPSpec: spec})
		if err != nil {
			writeError(w, status, codeFor(status), err.Error())
			return
		}
		conds = append(conds, c)
	}
	rec := api.VIP{Schema: api.SchemaVersion, VIPSpec: spec, CreatedAt: h.now().UTC()}
	done, _, err := h.store.Txn(r.Context(), conds, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))})
	if err != nil {
		h.storeError(w, "create floating IP", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s or its workload changed meanwhile; look again", addr))
		return
	}
	h.log.Info("floating IP created", "vip", spec.Address, "interface", spec.Interface, "network", spec.Network, "workload", spec.Workload)
	writeJSON(w, http.StatusCreated, api.VIPView{VIP: rec})
}

func codeFor(status int) string {
	switch status {
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusConflict:
		return api.CodeConflict
	}
	return api.CodeInvalid
}

// attachGuard checks that a workload can take a floating IP and returns the
// condition that keeps that true until the write.
func attachGuard(snap *clusterstore.Snapshot, workload string, v api.VIP) (clusterstore.Cond, int, error) {
	wl, ok := snap.Workloads[workload]
	if !ok {
		return clusterstore.Cond{}, http.StatusNotFound, fmt.Errorf("workload %q not found", workload)
	}
	if wl.Value.Deleting {
		return clusterstore.Cond{}, http.StatusConflict, fmt.Errorf("workload %s is being deleted", workload)
	}
	if a, placed := snap.Allocations[workload]; placed {
		if n, ok := snap.Nodes[a.Value.Host]; ok {
			if can, why := scheduler.HostCanHold(n.Value, v); !can {
				return clusterstore.Cond{}, http.StatusConflict, fmt.Errorf("%s runs on %s, which cannot hold %s: %s", workload, a.Value.Host, v.Address, why)
			}
		}
	}
	return clusterstore.ModRevisionIs(clusterstore.WorkloadKey(workload), wl.ModRevision), 0, nil
}

type attachRequest struct {
	Workload string `json:"workload"`
}

func (h *Handler) attachVIP(w http.ResponseWriter, r *http.Request) {
	var req attachRequest
	if err := decodeStrict(http.MaxBytesReader(w, r.Body, maxBody), &req); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "invalid attach request: "+err.Error())
		return
	}
	if err := api.ValidateName("workload", req.Workload); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	h.changeVIP(w, r, func(snap *clusterstore.Snapshot, v *api.VIP) ([]clusterstore.Cond, int, error) {
		if err := serviceOwned(v); err != nil {
			return nil, http.StatusConflict, err
		}
		if v.Workload == req.Workload {
			return nil, 0, errUnchanged
		}
		if v.Workload != "" {
			return nil, http.StatusConflict, fmt.Errorf("floating IP %s is already attached to %s (detach it first: bulwarkctl vip detach %s)", v.Address, v.Workload, strings.Split(v.Address, "/")[0])
		}
		c, status, err := attachGuard(snap, req.Workload, *v)
		if err != nil {
			return nil, status, err
		}
		v.Workload = req.Workload
		return []clusterstore.Cond{c}, 0, nil
	})
}

func (h *Handler) detachVIP(w http.ResponseWriter, r *http.Request) {
	h.changeVIP(w, r, func(_ *clusterstore.Snapshot, v *api.VIP) ([]clusterstore.Cond, int, error) {
		if err := serviceOwned(v); err != nil {
			return nil, http.StatusConflict, err
		}
		if v.Workload == "" {
			return nil, 0, errUnchanged
		}
		v.Workload = ""
		return nil, 0, nil
	})
}

var errUnchanged = errors.New("unchanged")

// serviceOwned refuses to change by hand a floating IP that a service's
// leader keeps.
func serviceOwned(v *api.VIP) error {
	if v.Service == "" {
		return nil
	}
	return fmt.Errorf("floating IP %s is the load-balanced address of service %s; the cluster moves it between the service's copies (delete the service to free it)", strings.Split(v.Address, "/")[0], v.Service)
}

// changeVIP applies change to a VIP record in one guarded transaction.
func (h *Handler) changeVIP(w http.ResponseWriter, r *http.Request, change func(*clusterstore.Snapshot, *api.VIP) ([]clusterstore.Cond, int, error)) {
	snap, v, addr, ok := h.vipFromPath(w, r)
	if !ok {
		return
	}
	rec := v.Value
	conds, status, err := change(snap, &rec)
	if errors.Is(err, errUnchanged) {
		writeJSON(w, http.StatusOK, vipView(snap, rec))
		return
	}
	if err != nil {
		writeError(w, status, codeFor(status), err.Error())
		return
	}
	key := clusterstore.VIPKey(addr)
	conds = append(conds, clusterstore.ModRevisionIs(key, v.ModRevision))
	done, _, err := h.store.Txn(r.Context(), conds, []clusterstore.Op{clusterstore.Put(key, clusterstore.Encode(rec))})
	if err != nil {
		h.storeError(w, "change floating IP", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s or its workload changed meanwhile; look again", addr))
		return
	}
	h.log.Info("floating IP changed", "vip", rec.Address, "workload", rec.Workload)
	writeJSON(w, http.StatusOK, vipView(snap, rec))
}

func (h *Handler) deleteVIP(w http.ResponseWriter, r *http.Request) {
	snap, v, addr, ok := h.vipFromPath(w, r)
	if !ok {
		return
	}
	if err := serviceOwned(&v.Value); err != nil {
		writeError(w, http.StatusConflict, api.CodeConflict, err.Error())
		return
	}
	if v.Value.Workload != "" {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s is attached to %s; detach it first (bulwarkctl vip detach %s)", addr, v.Value.Workload, addr))
		return
	}
	if c, held := snap.VIPClaims[addr]; held {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s is still held by %s on %s; wait until it is released", addr, c.Value.Workload, c.Value.Host))
		return
	}
	done, _, err := h.store.Txn(r.Context(),
		[]clusterstore.Cond{clusterstore.ModRevisionIs(clusterstore.VIPKey(addr), v.ModRevision), clusterstore.Missing(clusterstore.VIPClaimKey(addr))},
		[]clusterstore.Op{clusterstore.Delete(clusterstore.VIPKey(addr))})
	if err != nil {
		h.storeError(w, "delete floating IP", err)
		return
	}
	if !done {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("floating IP %s changed meanwhile; look again", addr))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
