package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/bulwarkhq/bulwark/api"
)

// RebalancePlan returns GET /v1/rebalance: the moves that would even out
// the load of the hosts in service now, the store revision they were
// computed at, and the rebalance under way or the last one. Nothing is
// changed.
func (c *Client) RebalancePlan(ctx context.Context) (*api.RebalancePlan, error) {
	var out api.RebalancePlan
	if err := c.do(ctx, http.MethodGet, "/v1/rebalance", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartRebalance sends POST /v1/rebalance with the plan the operator
// reviewed. The server answers 202 with the run the leader now carries
// out, 200 with nothing stored if the plan is empty, or 409
// (api.CodeConflict) if the plan changed meanwhile or a rebalance or a
// drain is under way.
func (c *Client) StartRebalance(ctx context.Context, req api.RebalanceRequest) (*api.Rebalance, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding rebalance request: %w", err)
	}
	var out api.Rebalance
	if err := c.do(ctx, http.MethodPost, "/v1/rebalance", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
