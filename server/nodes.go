package server

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// nodeExists answers 404 for an unknown node.
func (h *Handler) nodeExists(w http.ResponseWriter, r *http.Request, name string) bool {
	if err := api.ValidateName("node", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return false
	}
	_, ok, _, err := h.store.Get(r.Context(), clusterstore.NodeKey(name))
	if err != nil {
		h.storeError(w, "read node", err)
		return false
	}
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q not found", name))
	}
	return ok
}

// fenceNode asks the leader to fence a host through its fence devices. With
// ?confirm-off=true the operator instead declares the host powered off
// (when every fence device is broken), which is recorded as the fence
// record — refused while the host still holds its heartbeat lease.
func (h *Handler) fenceNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.nodeExists(w, r, name) {
		return
	}
	now := h.now().UTC()
	if r.URL.Query().Get("confirm-off") == "true" {
		rec := api.FenceRecord{Schema: api.SchemaVersion, Host: name, Device: "operator", Action: "confirmed off by an operator",
			PowerState: "Off (operator)", Started: now, Confirmed: now}
		ok, _, err := h.store.Txn(r.Context(),
			[]clusterstore.Cond{clusterstore.Missing(clusterstore.HeartbeatKey(name)), clusterstore.Missing(clusterstore.FencingKey(name))},
			[]clusterstore.Op{
				clusterstore.Put(clusterstore.FencingKey(name), clusterstore.Encode(rec)),
				eventOp(now, 0, "fenced", name, "", "an operator confirmed the host is powered off"),
			})
		if err != nil {
			h.storeError(w, "fence node", err)
			return
		}
		if !ok {
			writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("node %q still holds its heartbeat lease or is already fenced: it cannot be confirmed off", name))
			return
		}
		h.log.Warn("operator confirmed host off", "host", name)
		writeJSON(w, http.StatusOK, rec)
		return
	}
	if len(h.fence.devices(name)) == 0 {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("node %q has no fence device; if it is powered off, confirm it with `bulwarkctl node fence %s --confirm-off`", name, name))
		return
	}
	req := api.FenceRequest{Schema: api.SchemaVersion, Host: name, At: now}
	if _, _, err := h.store.Txn(r.Context(), nil, []clusterstore.Op{
		clusterstore.Put(clusterstore.FenceRequestKey(name), clusterstore.Encode(req)),
		eventOp(now, 0, "fence-requested", name, "", "an operator asked to fence the host"),
	}); err != nil {
		h.storeError(w, "fence node", err)
		return
	}
	h.log.Warn("operator asked to fence host", "host", name)
	writeJSON(w, http.StatusAccepted, req)
}

// clearNode lets a repaired host back in: the fence record, the fence
// request and the detector's stored state go.
func (h *Handler) clearNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.nodeExists(w, r, name) {
		return
	}
	now := h.now().UTC()
	if _, _, err := h.store.Txn(r.Context(), nil, []clusterstore.Op{
		clusterstore.Delete(clusterstore.FencingKey(name)),
		clusterstore.Delete(clusterstore.FenceRequestKey(name)),
		clusterstore.Delete(clusterstore.HostStateKey(name)),
		eventOp(now, 0, "cleared", name, "", "an operator cleared the host; it may run workloads again"),
	}); err != nil {
		h.storeError(w, "clear node", err)
		return
	}
	h.log.Warn("host cleared by an operator", "host", name)
	writeJSON(w, http.StatusOK, map[string]string{"node": name, "status": "cleared"})
}

// powerOnNode switches a fenced host back on through its first fence device
// that answers.
func (h *Handler) powerOnNode(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !h.nodeExists(w, r, name) {
		return
	}
	devs := h.fence.devices(name)
	if len(devs) == 0 {
		writeError(w, http.StatusConflict, api.CodeConflict, fmt.Sprintf("node %q has no fence device to power it on with", name))
		return
	}
	var errs []string
	for _, d := range devs {
		ctx, cancel := context.WithTimeout(r.Context(), h.fence.DeviceTimeout)
		err := d.PowerOn(ctx)
		cancel()
		if err == nil {
			now := h.now().UTC()
			_, _, _ = h.store.Txn(r.Context(), nil, []clusterstore.Op{eventOp(now, 0, "power-on", name, "", "powered on by "+d.Name())})
			writeJSON(w, http.StatusOK, map[string]string{"node": name, "status": "powered on", "device": d.Name(), "at": now.Format(time.RFC3339)})
			return
		}
		errs = append(errs, err.Error())
	}
	writeError(w, http.StatusBadGateway, api.CodeUnavailable, fmt.Sprintf("power on %s failed on every device: %v", name, errs))
}
