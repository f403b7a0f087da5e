package client

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
)

// WhatIf returns GET /v1/whatif?fail=HOST,...: what would restart where,
// and what would not, if those hosts failed now. Nothing is changed. The
// server answers 404 (api.CodeNotFound) for a host that is not registered.
func (c *Client) WhatIf(ctx context.Context, hosts ...string) (*api.WhatIf, error) {
	var out api.WhatIf
	p := "/v1/whatif?" + url.Values{"fail": {strings.Join(hosts, ",")}}.Encode()
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// WhatIfEach returns GET /v1/whatif: for each ready host that runs
// something, what would happen if it alone failed now (an N+1 check), and
// which hosts are unsafe to lose.
func (c *Client) WhatIfEach(ctx context.Context) (*api.WhatIfReport, error) {
	var out api.WhatIfReport
	if err := c.do(ctx, http.MethodGet, "/v1/whatif", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
