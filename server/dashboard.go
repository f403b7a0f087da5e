package server

import (
	"context"
	"fmt"
	"sort"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// dashboardSource feeds the read-only web dashboard (/ui/) from the same
// views as the API.
type dashboardSource struct{ s *Server }

func (d dashboardSource) Health(ctx context.Context) (api.Health, error) { return d.s.health(ctx), nil }

func (d dashboardSource) snapshot(ctx context.Context) (*clusterstore.Snapshot, error) {
	snap, bad, err := clusterstore.ReadSnapshot(ctx, d.s.cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("cluster store unavailable: %w", err)
	}
	for _, e := range bad {
		d.s.log.Warn("skipping unreadable record", "err", e)
	}
	return snap, nil
}

func (d dashboardSource) Nodes(ctx context.Context) ([]api.NodeView, error) {
	snap, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return nodeViews(snap), nil
}

func (d dashboardSource) Workloads(ctx context.Context) ([]api.WorkloadView, error) {
	snap, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	return workloadViews(snap), nil
}

// Services are the services as the API lists them (serviceView), sorted
// by name.
func (d dashboardSource) Services(ctx context.Context) ([]api.ServiceView, error) {
	snap, err := d.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.ServiceView, 0, len(snap.Services))
	for _, s := range snap.Services {
		out = append(out, serviceView(snap, s.Value))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Events decodes only the newest limit events (keys sort by time).
func (d dashboardSource) Events(ctx context.Context, limit int) ([]api.Event, error) {
	kvs, _, err := d.s.cfg.Store.List(ctx, clusterstore.EventsPrefix, 0)
	if err != nil {
		return nil, fmt.Errorf("cluster store unavailable: %w", err)
	}
	if len(kvs) > limit {
		kvs = kvs[len(kvs)-limit:]
	}
	out := make([]api.Event, 0, len(kvs))
	for _, kv := range kvs {
		var e api.Event
		if err := clusterstore.Decode(kv, &e); err != nil {
			d.s.log.Warn("skipping unreadable event", "err", err)
			continue
		}
		out = append(out, e)
	}
	return out, nil
}
