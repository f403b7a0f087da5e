package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// newAgentClient is the client of every call to an agent; requests carry
// their own deadlines (followed logs have none). An agent registers an
// https:// URL when it serves TLS (production: its host's agent
// certificate), and its certificate is verified against tlsConfig's
// RootCAs (the cluster CA: agents.ca_file, by default etcd.ca_file; nil:
// the system's CAs) and the address in the URL. Verification is never
// skipped: the request carries the agent's token, and the answer may be a
// workload's logs. An http:// URL (a dev cluster's agents on loopback, or
// an agent with http_insecure) is called as it is.
func newAgentClient(tlsConfig *tls.Config) *http.Client {
	var t *http.Transport
	if d, ok := http.DefaultTransport.(*http.Transport); ok {
		t = d.Clone()
	} else {
		// Something (a test) wrapped the default transport: start from
		// the same defaults.
		t = &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: time.Second,
		}
	}
	// Straight to the agent, never through an HTTP proxy from the
	// environment: the request carries the agent's token.
	t.Proxy = nil
	if tlsConfig != nil {
		t.TLSClientConfig = tlsConfig.Clone()
		t.TLSClientConfig.InsecureSkipVerify = false
	}
	return &http.Client{Transport: t}
}

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
	resp, err := h.agents.Do(req)
	if err != nil {
		return nil, &agentError{http.StatusBadGateway, fmt.Sprintf("the agent of %s did not answer: %v%s", host, err, certHint(err))}
	}
	return resp, nil
}

// certHint explains a failure to verify an agent's certificate.
func certHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var name x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return " (the agent's certificate is not signed by the CA the servers trust for agents: agents.ca_file, by default etcd.ca_file)"
	case errors.As(err, &name):
		return " (the agent's certificate does not name the address it registered: issue it with --host for that address)"
	}
	return ""
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
