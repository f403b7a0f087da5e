package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/bulwarkhq/bulwark/api"
)

// Shared resources: volumes and floating IPs (VIPs), and the task list a
// host's driver reports.

// ListVolumes returns GET /v1/volumes, sorted by name.
func (c *Client) ListVolumes(ctx context.Context) ([]api.VolumeView, error) {
	var out []api.VolumeView
	if err := c.do(ctx, http.MethodGet, "/v1/volumes", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetVolume returns GET /v1/volumes/{name}: the volume, its current holder
// (lock), if any, and the workloads whose spec attaches it. 404
// (api.CodeNotFound) for an unknown volume.
func (c *Client) GetVolume(ctx context.Context, name string) (*api.VolumeView, error) {
	p, err := itemPath("/v1/volumes/", "volume", name)
	if err != nil {
		return nil, err
	}
	var out api.VolumeView
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateVolume sends POST /v1/volumes. The server fills in the defaults,
// asks the agent of every ready host whether it can use the path, and
// answers 201 with the new volume; 400 (api.CodeInvalid) for an invalid
// spec or a path some host cannot use, 409 (api.CodeConflict) if the name
// or the path is taken, 503 if no host is ready to check the path.
func (c *Client) CreateVolume(ctx context.Context, spec api.VolumeSpec) (*api.VolumeView, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding volume spec: %w", err)
	}
	var out api.VolumeView
	if err := c.do(ctx, http.MethodPost, "/v1/volumes", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVolume sends DELETE /v1/volumes/{name}. The server forgets the
// volume (the data on storage is left alone) and answers 204; 409
// (api.CodeConflict) while a workload attaches it or a host holds its lock,
// 404 for an unknown volume.
func (c *Client) DeleteVolume(ctx context.Context, name string) error {
	p, err := itemPath("/v1/volumes/", "volume", name)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// ListVIPs returns GET /v1/vips, sorted by address.
func (c *Client) ListVIPs(ctx context.Context) ([]api.VIPView, error) {
	var out []api.VIPView
	if err := c.do(ctx, http.MethodGet, "/v1/vips", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetVIP returns GET /v1/vips/{addr}: the floating IP and the host that
// holds it now, if any. addr is the address, with or without its prefix
// length ("192.0.2.10" or "192.0.2.10/24"). 404 (api.CodeNotFound) for an
// unknown address.
func (c *Client) GetVIP(ctx context.Context, addr string) (*api.VIPView, error) {
	p, err := vipPath(addr)
	if err != nil {
		return nil, err
	}
	var out api.VIPView
	if err := c.do(ctx, http.MethodGet, p, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateVIP sends POST /v1/vips. The server answers 201 with the new
// floating IP; 400 (api.CodeInvalid) for an invalid spec or one that no
// host could hold (unknown interface or network, address outside the
// network), 409 (api.CodeConflict) if the address exists or the workload
// to attach cannot take it, 404 if that workload does not exist.
func (c *Client) CreateVIP(ctx context.Context, spec api.VIPSpec) (*api.VIPView, error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encoding floating IP spec: %w", err)
	}
	var out api.VIPView
	if err := c.do(ctx, http.MethodPost, "/v1/vips", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteVIP sends DELETE /v1/vips/{addr}. The server answers 204; 409
// (api.CodeConflict) while the address is attached to a workload or still
// held by a host, 404 for an unknown address.
func (c *Client) DeleteVIP(ctx context.Context, addr string) error {
	p, err := vipPath(addr)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodDelete, p, nil, nil)
}

// vipAttachRequest is the body of POST /v1/vips/{addr}/attach.
type vipAttachRequest struct {
	Workload string `json:"workload"`
}

// AttachVIP sends POST /v1/vips/{addr}/attach: the address follows
// workload from then on. The server answers 200 with the floating IP (also
// when it was attached to workload already); 409 (api.CodeConflict) if it is
// attached to another workload, or the workload is being deleted or runs on
// a host that cannot hold the address; 404 (api.CodeNotFound) for an
// unknown address or workload (the message says which).
func (c *Client) AttachVIP(ctx context.Context, addr, workload string) (*api.VIPView, error) {
	p, err := vipPath(addr)
	if err != nil {
		return nil, err
	}
	if workload == "" {
		return nil, errors.New("workload name is empty")
	}
	body, err := json.Marshal(vipAttachRequest{Workload: workload})
	if err != nil {
		return nil, fmt.Errorf("encoding attach request: %w", err)
	}
	var out api.VIPView
	if err := c.do(ctx, http.MethodPost, p+"/attach", body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DetachVIP sends POST /v1/vips/{addr}/detach: the address follows no
// workload any more; the host that holds it releases it. The server answers
// 200 with the floating IP (also when it was not attached); its Holder is
// the claim as it was when the server answered. 404 for an unknown address.
func (c *Client) DetachVIP(ctx context.Context, addr string) (*api.VIPView, error) {
	p, err := vipPath(addr)
	if err != nil {
		return nil, err
	}
	var out api.VIPView
	if err := c.do(ctx, http.MethodPost, p+"/detach", nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// NodeTasks returns GET /v1/nodes/{name}/tasks: the workloads the host's
// driver reports it runs, as the server fetched them from the host's agent
// just now. 404 (api.CodeNotFound) for a host that is not registered, 502
// or 503 (api.CodeUnavailable) if its agent cannot be asked.
func (c *Client) NodeTasks(ctx context.Context, name string) ([]api.Task, error) {
	p, err := itemPath("/v1/nodes/", "node", name)
	if err != nil {
		return nil, err
	}
	var out []api.Task
	if err := c.do(ctx, http.MethodGet, p+"/tasks", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// vipPath is /v1/vips/{addr} for an address given with or without its
// prefix length: the server keys floating IPs by the address alone.
func vipPath(addr string) (string, error) {
	a, _, _ := strings.Cut(strings.TrimSpace(addr), "/")
	if a == "" {
		return "", errors.New("floating IP address is empty")
	}
	return "/v1/vips/" + url.PathEscape(a), nil
}
