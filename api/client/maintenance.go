package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bulwarkhq/bulwark/api"
)

// MaintenanceOn sends PUT /v1/nodes/{name}/maintenance: nothing new is
// placed on the host, nothing is moved off it. reason and by are notes for
// the record (either may be empty). A host already in maintenance keeps
// its record: the answer then has Changed false. 404 (api.CodeNotFound)
// for an unknown node.
func (c *Client) MaintenanceOn(ctx context.Context, host, reason, by string) (*api.MaintenanceResult, error) {
	p, err := itemPath("/v1/nodes/", "node", host)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(api.MaintenanceRequest{Reason: reason, By: by})
	if err != nil {
		return nil, fmt.Errorf("encoding maintenance request: %w", err)
	}
	var out api.MaintenanceResult
	if err := c.do(ctx, http.MethodPut, p+"/maintenance", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// MaintenanceOff sends DELETE /v1/nodes/{name}/maintenance: the host takes
// workloads again, and a drain under way stops (moves already started
// finish). Changed is false if the host was not in maintenance.
func (c *Client) MaintenanceOff(ctx context.Context, host, by string) (*api.MaintenanceResult, error) {
	p, err := itemPath("/v1/nodes/", "node", host)
	if err != nil {
		return nil, err
	}
	p += "/maintenance"
	if by != "" {
		p += "?" + url.Values{"by": {by}}.Encode()
	}
	var out api.MaintenanceResult
	if err := c.do(ctx, http.MethodDelete, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DrainPlan returns GET /v1/nodes/{name}/drain/plan?batch=N: what a drain
// of the host would move where, in which batch, and what would stay and
// why. Nothing is changed.
func (c *Client) DrainPlan(ctx context.Context, host string, batch int) (*api.DrainPlan, error) {
	p, err := itemPath("/v1/nodes/", "node", host)
	if err != nil {
		return nil, err
	}
	p += "/drain/plan"
	if batch > 0 {
		p += "?batch=" + strconv.Itoa(batch)
	}
	var out api.DrainPlan
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartDrain sends POST /v1/nodes/{name}/drain: the host goes in
// maintenance and the leader moves its workloads, a batch at a time. The
// server answers 202 with the drain's status; 409 (api.CodeConflict) if a
// drain is already under way or the host is not ready.
func (c *Client) StartDrain(ctx context.Context, host string, req api.DrainRequest) (*api.DrainStatus, error) {
	p, err := itemPath("/v1/nodes/", "node", host)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding drain request: %w", err)
	}
	var out api.DrainStatus
	if err := c.do(ctx, http.MethodPost, p+"/drain", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DrainStatus returns GET /v1/nodes/{name}/drain: the drain's progress.
// 404 (api.CodeNotFound) if the host has no drain.
func (c *Client) DrainStatus(ctx context.Context, host string) (*api.DrainStatus, error) {
	p, err := itemPath("/v1/nodes/", "node", host)
	if err != nil {
		return nil, err
	}
	var out api.DrainStatus
	if err := c.do(ctx, http.MethodGet, p+"/drain", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ResetWorkload sends POST /v1/workloads/{name}/reset: the leader clears
// the workload's failure count (its reschedules), and a workload whose host
// gave up on it is placed again. The server waits briefly for the leader
// and says whether it has applied the reset. 404 for an unknown workload.
func (c *Client) ResetWorkload(ctx context.Context, name, by string) (*api.ResetResult, error) {
	p, err := itemPath("/v1/workloads/", "workload", name)
	if err != nil {
		return nil, err
	}
	p += "/reset"
	if by != "" {
		p += "?" + url.Values{"by": {by}}.Encode()
	}
	var out api.ResetResult
	if err := c.do(ctx, http.MethodPost, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
