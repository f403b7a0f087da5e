package server

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// workloadLogs proxies a workload's output from the agent of the host that
// runs it (`bulwarkctl workload logs NAME [--follow]`).
func (h *Handler) workloadLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := api.ValidateName("workload", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	kv, ok, _, err := h.store.Get(r.Context(), clusterstore.AllocationKey(name))
	if err != nil {
		h.storeError(w, "read allocation", err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("workload %q is not placed on any host, so it has no output", name))
		return
	}
	a, err := clusterstore.DecodeAllocation(kv)
	if err != nil {
		writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
		return
	}
	path := "/v1/logs/" + url.PathEscape(name)
	if r.URL.Query().Get("follow") == "true" {
		path += "?follow=true"
	}
	resp, err := h.agentRequest(r.Context(), a.Host, http.MethodGet, path, nil)
	if err != nil {
		writeAgentError(w, err)
		return
	}
	defer resp.Body.Close()
	// A followed log outlives the server's write timeout.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			if err != io.EOF {
				h.log.Debug("log stream ended", "workload", name, "err", err)
			}
			return
		}
	}
}
