package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/bulwarkhq/bulwark/api"
)

// Replicated services: N copies of a workload template, kept running by the
// leader.

// ListServices returns GET /v1/services, sorted by name.
func (c *Client) ListServices(ctx context.Context) ([]api.ServiceView, error) {
	var out []api.ServiceView
	if err := c.do(ctx, http.MethodGet, "/v1/services", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetService returns GET /v1/services/{name}: the service, how many of its
// members run, and the members. 404 (api.CodeNotFound) for an unknown
// service.
func (c *Client) GetService(ctx context.Context, name string) (*api.ServiceView, error) {
	p, err := itemPath("/v1/services/", "service", name)
	if err != nil {
		return nil, err
	}
	var out api.ServiceView
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateService sends POST /v1/services. The server answers 201 with the
// new service (the leader creates its members afterwards), 400
// (api.CodeInvalid) for an invalid spec and 409 (api.CodeConflict) if a
// service of that name exists.
func (c *Client) CreateService(ctx context.Context, spec api.ServiceSpec) (*api.ServiceView, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding service spec: %w", err)
	}
	var out api.ServiceView
	if err := c.do(ctx, http.MethodPost, "/v1/services", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ScaleService sends PUT /v1/services/{name}/scale. The server answers 200
// with the service; 400 for a replica count out of range, 404 for an
// unknown service, 409 for a service being deleted.
func (c *Client) ScaleService(ctx context.Context, name string, replicas int) (*api.ServiceView, error) {
	p, err := itemPath("/v1/services/", "service", name)
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(api.ScaleRequest{Replicas: replicas})
	var out api.ServiceView
	if err := c.do(ctx, http.MethodPut, p+"/scale", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteService sends DELETE /v1/services/{name}. The server answers 202
// with the service marked deleting; the leader deletes its members, then
// the record (GET gives 404 once it is gone).
func (c *Client) DeleteService(ctx context.Context, name string) (*api.ServiceView, error) {
	p, err := itemPath("/v1/services/", "service", name)
	if err != nil {
		return nil, err
	}
	var out api.ServiceView
	if err := c.do(ctx, http.MethodDelete, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
