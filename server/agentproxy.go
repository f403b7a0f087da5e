package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// agentClient is used for every call to an agent; requests carry their own
// deadlines (followed logs have none).
var agentClient = &http.Client{}

// agentCallTimeout bounds a short call to an agent (tasks, checks).
const agentCallTimeout = 5 * time.Second

// agentError is a failure to reach a host's agent, with the HTTP status the
// API answers with.
type agentError struct {
	status int
	msg    string
}

func (e *agentError) Error() string { return e.msg }

// agentRequest sends an authenticated request to the agent of host. The
// token and address come from the store, where the agent published them.
func (h *Handler) agentRequest(ctx context.Context, host, method, path string, body io.Reader) (*http.Response, error) {
	nkv, ok, _, err := h.store.Get(ctx, clusterstore.NodeKey(host))
	var n api.Node
	if err == nil && ok {
		err = clusterstore.Decode(nkv, &n)
	}
	if err != nil {
		return nil, &agentError{http.StatusServiceUnavailable, fmt.Sprintf("read host %s: %v", host, err)}
	}
	if !ok {
		return nil, &agentError{http.StatusNotFound, fmt.Sprintf("host %q is not registered", host)}
	}
	if n.AgentURL == "" {
		return nil, &agentError{http.StatusServiceUnavailable, fmt.Sprintf("the agent of %s serves no API (no agent address registered)", host)}
	}
	token, err := clusterstore.AgentToken(ctx, h.store, host)
	if err != nil {
		return nil, &agentError{http.StatusServiceUnavailable, err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, method, n.AgentURL+path, body)
	if err != nil {
		return nil, &agentError{http.StatusInternalServerError, err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := agentClient.Do(req)
	if err != nil {
		return nil, &agentError{http.StatusBadGateway, fmt.Sprintf("the agent of %s did not answer: %v", host, err)}
	}
	return resp, nil
}

func writeAgentError(w http.ResponseWriter, err error) {
	if ae, ok := err.(*agentError); ok {
		code := api.CodeUnavailable
		if ae.status == http.StatusNotFound {
			code = api.CodeNotFound
		}
		writeError(w, ae.status, code, ae.msg)
		return
	}
	writeError(w, http.StatusInternalServerError, api.CodeInternal, err.Error())
}

// nodeTasks proxies GET /v1/tasks of a host's agent: what its driver really
// runs there (`bulwarkctl node tasks HOST`).
func (h *Handler) nodeTasks(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := api.ValidateName("node", name); err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), agentCallTimeout)
	defer cancel()
	resp, err := h.agentRequest(ctx, name, http.MethodGet, "/v1/tasks", nil)
	if err != nil {
		writeAgentError(w, err)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, io.LimitReader(resp.Body, 64<<20))
}
