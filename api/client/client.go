// Package client is a small Go client for the Bulwark HTTP API (/v1/...).
//
// Every method takes a context and returns the api wire types. A response that
// is not 2xx becomes an *APIError carrying the HTTP status and the api.Error
// body the server sent; use errors.As to inspect it, or the IsNotFound and
// IsConflict helpers. A request that never got an answer (connection refused,
// DNS failure, timeout) becomes an *UnreachableError whose message tells the
// user how to point the client at a server.
//
// Standard library only.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Size limits for response bodies. A body larger than the limit is an error
// rather than being read into memory.
const (
	// MaxResponseBytes bounds a successful response body.
	MaxResponseBytes = 32 << 20
	// maxErrorBytes bounds the body of a non-2xx response.
	maxErrorBytes = 64 << 10
)

// DefaultTimeout is the overall per-request timeout of the *http.Client that
// New builds when it is given nil.
const DefaultTimeout = 30 * time.Second

// Client talks to one Bulwark API server. It is safe for concurrent use.
type Client struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	hc   *http.Client
	// stream is hc without its overall timeout, for responses that last as
	// long as the caller wants (Logs with follow). Its transport, and so
	// its dial, TLS and response-header timeouts, are hc's.
	stream    *http.Client
	userAgent string
	token     string
}

// New returns a client for the API at baseURL, e.g. "http://127.0.0.1:7370".
// A baseURL without a scheme gets "http://". If hc is nil the client uses an
// *http.Client with DefaultTimeout and bounded dial, TLS and header timeouts.
// An unusable baseURL is reported by the first request. Streamed responses
// (Logs) are not cut by hc's overall Timeout; only the caller's context
// ends them.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = defaultHTTPClient()
	}
	stream := *hc
	stream.Timeout = 0
	return &Client{base: normalizeBase(baseURL), hc: hc, stream: &stream, userAgent: "bulwark-client"}
}

// SetUserAgent sets the User-Agent header sent with every request. Call it
// before the client is shared between goroutines.
func (c *Client) SetUserAgent(ua string) { c.userAgent = ua }

// SetToken sets the bearer token sent with every request. Call it before
// the client is shared between goroutines.
func (c *Client) SetToken(tok string) { c.token = strings.TrimSpace(tok) }

// SetRootCAs makes the client trust the given CA pool for https:// APIs.
// Call it before the client is shared between goroutines.
func (c *Client) SetRootCAs(pool *x509.CertPool) {
	for _, hc := range []*http.Client{c.hc, c.stream} {
		tr, ok := hc.Transport.(*http.Transport)
		if !ok || tr == nil {
			tr = baseTransport()
		} else {
			tr = tr.Clone()
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
}

// BaseURL returns the base URL requests are sent to.
func (c *Client) BaseURL() string { return c.base }

func normalizeBase(s string) string {
	s = strings.TrimSpace(s)
	if s != "" && !strings.Contains(s, "://") {
		s = "http://" + s
	}
	return strings.TrimRight(s, "/")
}

func defaultHTTPClient() *http.Client {
	tr := baseTransport()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = 20 * time.Second
	tr.MaxIdleConnsPerHost = 4
	return &http.Client{Timeout: DefaultTimeout, Transport: tr}
}

// ErrorBody is api.Error under a name that can be embedded in APIError: an
// embedded field called Error would clash with the Error method.
type ErrorBody = api.Error

// APIError is a non-2xx answer from the server. Message and Code are the
// fields of the api.Error body; Code is one of the api.Code... constants (when
// the body was not an api.Error it is derived from the status).
type APIError struct {
	// Status is the HTTP status code, e.g. 404.
	Status int
	ErrorBody
}

// Error renders the server's message with the status and code, e.g.
// `workload "web" already exists (HTTP 409, conflict)`.
func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (HTTP %d, %s)", msg, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
}

// Unwrap exposes the body so that errors.As(err, new(*api.Error)) also works.
func (e *APIError) Unwrap() error { return &e.ErrorBody }

// UnreachableError means the request got no HTTP answer at all: the server is
// not running, the address is wrong, or the network or a timeout failed.
type UnreachableError struct {
	// BaseURL is the API address the client was configured with.
	BaseURL string
	Err     error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach the Bulwark API at %s: %v; is `bulwarkd dev` or a server running? set --api or BULWARK_API", e.BaseURL, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// IsNotFound reports whether err is an *APIError with status 404.
func IsNotFound(err error) bool { return hasStatus(err, http.StatusNotFound) }

// IsConflict reports whether err is an *APIError with status 409.
func IsConflict(err error) bool { return hasStatus(err, http.StatusConflict) }

// IsNoSuchEndpoint reports whether err is the server's answer to a path it
// does not serve at all (404 "no such endpoint: ..."), as opposed to a 404
// for a missing object: the server is older than the client, or (for the
// /v1/dev endpoints) not a `bulwarkd dev` cluster.
func IsNoSuchEndpoint(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Message, "no such endpoint")
}

func hasStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// Health returns GET /v1/health.
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	if err := c.do(ctx, http.MethodGet, "/v1/health", nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// ListNodes returns GET /v1/nodes.
func (c *Client) ListNodes(ctx context.Context) ([]api.NodeView, error) {
	var out []api.NodeView
	if err := c.do(ctx, http.MethodGet, "/v1/nodes", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetNode returns GET /v1/nodes/{name}.
func (c *Client) GetNode(ctx context.Context, name string) (*api.NodeView, error) {
	p, err := itemPath("/v1/nodes/", "node", name)
	if err != nil {
		return nil, err
	}
	var out api.NodeView
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWorkloads returns GET /v1/workloads.
func (c *Client) ListWorkloads(ctx context.Context) ([]api.WorkloadView, error) {
	var out []api.WorkloadView
	if err := c.do(ctx, http.MethodGet, "/v1/workloads", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetWorkload returns GET /v1/workloads/{name}.
func (c *Client) GetWorkload(ctx context.Context, name string) (*api.WorkloadView, error) {
	p, err := itemPath("/v1/workloads/", "workload", name)
	if err != nil {
		return nil, err
	}
	var out api.WorkloadView
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateWorkload sends POST /v1/workloads. The server answers 201 with the new
// workload, 400 (api.CodeInvalid) for an invalid spec and 409
// (api.CodeConflict) if a workload of that name exists.
func (c *Client) CreateWorkload(ctx context.Context, spec api.WorkloadSpec) (*api.WorkloadView, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding workload spec: %w", err)
	}
	var out api.WorkloadView
	if err := c.do(ctx, http.MethodPost, "/v1/workloads", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteWorkload sends DELETE /v1/workloads/{name}. The server answers 202
// with the workload in state "stopping"; the record disappears (GET gives 404)
// once nothing runs it any more.
func (c *Client) DeleteWorkload(ctx context.Context, name string) (*api.WorkloadView, error) {
	p, err := itemPath("/v1/workloads/", "workload", name)
	if err != nil {
		return nil, err
	}
	var out api.WorkloadView
	if err := c.do(ctx, http.MethodDelete, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListAllocations returns GET /v1/allocations.
func (c *Client) ListAllocations(ctx context.Context) ([]api.Allocation, error) {
	var out []api.Allocation
	if err := c.do(ctx, http.MethodGet, "/v1/allocations", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// Explain returns GET /v1/workloads/{name}/explain: why the workload is
// placed where it is, or why it is pending, with a verdict for every host.
// The server answers 404 (api.CodeNotFound) if there is no such workload.
func (c *Client) Explain(ctx context.Context, name string) (*api.Explanation, error) {
	p, err := itemPath("/v1/workloads/", "workload", name)
	if err != nil {
		return nil, err
	}
	var out api.Explanation
	if err := c.do(ctx, http.MethodGet, p+"/explain", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Logs sends GET /v1/workloads/{name}/logs and returns the workload's
// output (container stdout and stderr, a VM's serial console) as the server
// streams it, as text. With follow the stream stays open and carries what
// the workload writes from then on, like tail -f, until ctx is done or the
// server ends it; without, it ends after the output so far. The caller must
// close the returned body. Reading it after ctx is done returns an error.
//
// The client's overall request timeout does not apply to the stream, but
// connecting and waiting for the response header are still bounded. The
// server answers 404 (api.CodeNotFound) if the workload is not placed on
// any host (including when there is no such workload), and 502 or 503
// (api.CodeUnavailable) if the agent of its host cannot be reached.
func (c *Client) Logs(ctx context.Context, name string, follow bool) (io.ReadCloser, error) {
	p, err := itemPath("/v1/workloads/", "workload", name)
	if err != nil {
		return nil, err
	}
	p += "/logs"
	if follow {
		p += "?follow=true"
	}
	req, err := c.newRequest(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain, application/json")
	resp, err := c.send(c.stream, req, p)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return resp.Body, nil
}

// GetSettings returns GET /v1/settings, the cluster-wide scheduling
// settings (api.DefaultSettings until an operator changed them).
func (c *Client) GetSettings(ctx context.Context) (*api.Settings, error) {
	var out api.Settings
	if err := c.do(ctx, http.MethodGet, "/v1/settings", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PutSettings sends PUT /v1/settings. The body is the whole setting set:
// the server resets every field of its settings to the value sent (a field
// the server knows but this client does not is reset to its default). It
// answers 200 with the stored settings, or 400 (api.CodeInvalid). To change
// some fields only, use UpdateSettings.
func (c *Client) PutSettings(ctx context.Context, s api.Settings) (*api.Settings, error) {
	body, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encoding settings: %w", err)
	}
	var out api.Settings
	if err := c.do(ctx, http.MethodPut, "/v1/settings", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateSettings reads the settings, lets change modify them and writes
// the whole set back; it returns the settings before and after. If change
// returns an error, nothing is written. Because PUT replaces every field,
// UpdateSettings refuses to write when the server sent a field that
// api.Settings lacks (a newer server): the write would silently reset it.
//
// The read and the write are not atomic: a change that another client
// makes in between is overwritten.
func (c *Client) UpdateSettings(ctx context.Context, change func(*api.Settings) error) (before, after *api.Settings, err error) {
	var cur api.Settings
	if err := c.exchange(ctx, http.MethodGet, "/v1/settings", nil, &cur, true); err != nil {
		var uf *unknownFieldError
		if errors.As(err, &uf) {
			return nil, nil, fmt.Errorf("the server has a setting this client does not know (%s); writing the settings back would reset it, so nothing was changed: use a client as new as the server", uf.field)
		}
		return nil, nil, err
	}
	next := cur
	if err := change(&next); err != nil {
		return &cur, nil, err
	}
	after, err = c.PutSettings(ctx, next)
	if err != nil {
		return &cur, nil, err
	}
	return &cur, after, nil
}

// FenceResult is the answer to FenceNode. Exactly one field is set:
// Request when the leader was asked to fence the host through its fence
// devices (HTTP 202), Record when the operator's confirmation that the host
// is powered off was recorded (confirmOff, HTTP 200).
type FenceResult struct {
	Request *api.FenceRequest `json:"request,omitempty"`
	Record  *api.FenceRecord  `json:"record,omitempty"`
}

// FenceNode sends POST /v1/nodes/{name}/fence. Without confirmOff the leader
// powers the host off through its fence devices and the server answers 202
// with the fence request; 409 (api.CodeConflict) if the host has no fence
// device. With confirmOff the operator declares that the host is already
// powered off: the server answers 200 with the fence record, or 409 if the
// host still holds its heartbeat lease or is already fenced. 404
// (api.CodeNotFound) for an unknown node.
func (c *Client) FenceNode(ctx context.Context, name string, confirmOff bool) (*FenceResult, error) {
	p, err := itemPath("/v1/nodes/", "node", name)
	if err != nil {
		return nil, err
	}
	if confirmOff {
		var rec api.FenceRecord
		if err := c.do(ctx, http.MethodPost, p+"/fence?confirm-off=true", nil, &rec); err != nil {
			return nil, err
		}
		return &FenceResult{Record: &rec}, nil
	}
	var req api.FenceRequest
	if err := c.do(ctx, http.MethodPost, p+"/fence", nil, &req); err != nil {
		return nil, err
	}
	return &FenceResult{Request: &req}, nil
}

// NodeActionResult is the answer to ClearNode and PowerOnNode.
type NodeActionResult struct {
	Node   string `json:"node"`
	Status string `json:"status"`
	// Device is the fence device that powered the host on (PowerOnNode).
	Device string `json:"device,omitempty"`
	// At is when it did, as RFC 3339 text (PowerOnNode).
	At string `json:"at,omitempty"`
}

// ClearNode sends POST /v1/nodes/{name}/clear: a repaired host that was
// fenced may run workloads again. The server answers 200 with status
// "cleared", 404 (api.CodeNotFound) for an unknown node.
func (c *Client) ClearNode(ctx context.Context, name string) (*NodeActionResult, error) {
	return c.nodeAction(ctx, name, "clear")
}

// PowerOnNode sends POST /v1/nodes/{name}/power-on: the server switches the
// host on through the first of its fence devices that answers. It answers
// 200 with the device used, 409 (api.CodeConflict) if the host has no fence
// device, 502 if every device failed, 404 for an unknown node.
func (c *Client) PowerOnNode(ctx context.Context, name string) (*NodeActionResult, error) {
	return c.nodeAction(ctx, name, "power-on")
}

func (c *Client) nodeAction(ctx context.Context, name, action string) (*NodeActionResult, error) {
	p, err := itemPath("/v1/nodes/", "node", name)
	if err != nil {
		return nil, err
	}
	var out NodeActionResult
	if err := c.do(ctx, http.MethodPost, p+"/"+action, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FaultRequest is the body of POST /v1/dev/fault.
type FaultRequest struct {
	Host  string `json:"host"`
	Fault string `json:"fault"`
}

// FaultResult is the answer to DevFault.
type FaultResult struct {
	Host   string `json:"host"`
	Fault  string `json:"fault"`
	Status string `json:"status"`
}

// DevFault sends POST /v1/dev/fault, which injects a fault into a host of a
// `bulwarkd dev` cluster: crash, hang, partition, bmc-down, or heal. Other
// servers answer 404 with a message starting "no such endpoint" (see
// IsNoSuchEndpoint).
func (c *Client) DevFault(ctx context.Context, host, fault string) (*FaultResult, error) {
	if host == "" {
		return nil, errors.New("host name is empty")
	}
	if fault == "" {
		return nil, errors.New("fault is empty")
	}
	body, err := json.Marshal(FaultRequest{Host: host, Fault: fault})
	if err != nil {
		return nil, fmt.Errorf("encoding fault request: %w", err)
	}
	var out FaultResult
	if err := c.do(ctx, http.MethodPost, "/v1/dev/fault", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// itemPath builds prefix+name, refusing an empty name (which would address
// the collection instead of an item).
func itemPath(prefix, what, name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%s name is empty", what)
	}
	return prefix + url.PathEscape(name), nil
}

// do sends one request and decodes a 2xx JSON body into out.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	return c.exchange(ctx, method, path, body, out, false)
}

// unknownFieldError is a strict decode that met a field out does not have.
type unknownFieldError struct{ field string }

func (e *unknownFieldError) Error() string { return "unknown field " + e.field }

// exchange sends one request and decodes a 2xx JSON body into out (if not
// nil). With strict, a field that out lacks is an *unknownFieldError.
func (c *Client) exchange(ctx context.Context, method, path string, body []byte, out any, strict bool) error {
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.send(c.hc, req, path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(resp)
	}
	data, err := readLimited(resp.Body, MaxResponseBytes)
	if err != nil {
		return fmt.Errorf("reading response to %s %s: %w", method, path, err)
	}
	if out == nil {
		return nil
	}
	if strict {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		err = dec.Decode(out)
		if f, ok := strings.CutPrefix(fmt.Sprint(err), "json: unknown field "); ok {
			err = &unknownFieldError{field: f}
		}
	} else {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		return fmt.Errorf("decoding response to %s %s (HTTP %d): %w", method, path, resp.StatusCode, err)
	}
	return nil
}

// newRequest builds a request for path (with its query, if any) on the
// base URL, with the JSON and User-Agent headers set.
func (c *Client) newRequest(ctx context.Context, method, path string, body []byte) (*http.Request, error) {
	if c.base == "" {
		return nil, errors.New("no Bulwark API URL configured: set --api or BULWARK_API, e.g. http://127.0.0.1:7370")
	}
	u, err := url.Parse(c.base + path)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid Bulwark API URL %q: want http://HOST:PORT or https://HOST:PORT", c.base)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("building request %s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send sends req, for path, with hc. A request that got no answer becomes
// an *UnreachableError, unless the caller's context ended it.
func (c *Client) send(hc *http.Client, req *http.Request, path string) (*http.Response, error) {
	resp, err := hc.Do(req)
	if err != nil {
		// A cancelled or expired caller context is the caller's doing, not a
		// sign that the server is missing.
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, path, ctxErr)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &UnreachableError{BaseURL: c.base, Err: err}
	}
	return resp, nil
}

// readLimited reads r to the end, failing if it holds more than limit bytes.
func readLimited(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("response body exceeds %d bytes", limit)
	}
	return data, nil
}

// decodeError turns a non-2xx response into an *APIError. A body that is not
// an api.Error (a proxy's HTML page, say) is kept, shortened, as the message.
func decodeError(resp *http.Response) error {
	ae := &APIError{Status: resp.StatusCode}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body api.Error
	if err := json.Unmarshal(data, &body); err == nil && (body.Message != "" || body.Code != "") {
		ae.ErrorBody = body
	} else {
		ae.Message = shorten(strings.TrimSpace(string(data)), 200)
	}
	if ae.Code == "" {
		ae.Code = codeForStatus(resp.StatusCode)
	}
	return ae
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return api.CodeInvalid
	case http.StatusNotFound:
		return api.CodeNotFound
	case http.StatusConflict:
		return api.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return api.CodeTooLarge
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		return api.CodeUnavailable
	case http.StatusInternalServerError:
		return api.CodeInternal
	}
	return ""
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "..."
}

// baseTransport is a copy of net/http's default transport (or a plain one
// if a program replaced http.DefaultTransport with something else).
func baseTransport() *http.Transport {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		return t.Clone()
	}
	return &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true, MaxIdleConns: 100, IdleConnTimeout: 90 * time.Second}
}
