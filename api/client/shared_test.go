package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var (
	sharedAt = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	volume   = api.VolumeView{
		Volume: api.Volume{Schema: api.SchemaVersion, CreatedAt: sharedAt, VolumeSpec: api.VolumeSpec{
			Name: "pg-data", Path: "/srv/volumes/pg-data.img", Mode: api.VolumeExclusive, LeasePath: "/srv/volumes/pg-data.img.bulwark-lease", Format: "raw"}},
		Holder: &api.Claim{Schema: api.SchemaVersion, Resource: "pg-data", Workload: "db-1", Host: "node-a", Epoch: 42, Since: sharedAt},
		Users:  []string{"db-1"},
	}
	vip = api.VIPView{
		VIP:    api.VIP{Schema: api.SchemaVersion, CreatedAt: sharedAt, VIPSpec: api.VIPSpec{Address: "192.0.2.10/24", Interface: "eth0", Workload: "web"}},
		Holder: &api.Claim{Schema: api.SchemaVersion, Resource: "192.0.2.10", Workload: "web", Host: "node-a", Epoch: 7, Since: sharedAt},
	}
)

// jsonEqual reports whether body holds the same JSON value as want.
func jsonEqual(t *testing.T, body []byte, want string) {
	t.Helper()
	var got, w any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", body, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		t.Errorf("body %s, want %s", body, want)
	}
}

func TestVolumes(t *testing.T) {
	ctx := context.Background()
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/volumes":            reply(200, []api.VolumeView{volume}),
		"GET /v1/volumes/pg-data":    reply(200, volume),
		"POST /v1/volumes":           reply(201, api.VolumeView{Volume: volume.Volume}),
		"DELETE /v1/volumes/pg-data": func(w http.ResponseWriter, _ []byte) { w.WriteHeader(http.StatusNoContent) },
		"DELETE /v1/volumes/held": reply(409, api.Error{Code: api.CodeConflict,
			Message: "volume held is held by db-1 on node-a (epoch 42); delete or move that workload first"}),
	})
	list, err := c.ListVolumes(ctx)
	if err != nil || !reflect.DeepEqual(list, []api.VolumeView{volume}) {
		t.Errorf("list: %+v %v", list, err)
	}
	got, err := c.GetVolume(ctx, "pg-data")
	if err != nil || !reflect.DeepEqual(got, &volume) {
		t.Errorf("get: %+v %v", got, err)
	}
	created, err := c.CreateVolume(ctx, api.VolumeSpec{Name: "pg-data", Path: "/srv/volumes/pg-data.img"})
	if err != nil || !reflect.DeepEqual(created.Volume, volume.Volume) || created.Holder != nil {
		t.Errorf("create: %+v %v", created, err)
	}
	jsonEqual(t, rec.bodies[2], `{"name":"pg-data","path":"/srv/volumes/pg-data.img"}`)
	if ct := rec.hdrs[2].Get("Content-Type"); ct != "application/json" {
		t.Errorf("create: Content-Type %q", ct)
	}
	if err := c.DeleteVolume(ctx, "pg-data"); err != nil {
		t.Errorf("delete: %v", err)
	}
	err = c.DeleteVolume(ctx, "held")
	if !IsConflict(err) || !strings.Contains(err.Error(), "held by db-1 on node-a") {
		t.Errorf("delete held: %v", err)
	}
	if _, err := c.GetVolume(ctx, "nope"); !IsNotFound(err) {
		t.Errorf("get unknown: %v", err)
	}
	want := []string{"GET /v1/volumes", "GET /v1/volumes/pg-data", "POST /v1/volumes", "DELETE /v1/volumes/pg-data", "DELETE /v1/volumes/held", "GET /v1/volumes/nope"}
	if !reflect.DeepEqual(rec.got, want) {
		t.Errorf("requests %q, want %q", rec.got, want)
	}
}

func TestVIPs(t *testing.T) {
	ctx := context.Background()
	detached := vip
	detached.Workload = ""
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/vips":                      reply(200, []api.VIPView{vip}),
		"GET /v1/vips/192.0.2.10":           reply(200, vip),
		"POST /v1/vips":                     reply(201, api.VIPView{VIP: vip.VIP}),
		"POST /v1/vips/192.0.2.10/attach":   reply(200, vip),
		"POST /v1/vips/192.0.2.10/detach":   reply(200, detached),
		"DELETE /v1/vips/192.0.2.10":        func(w http.ResponseWriter, _ []byte) { w.WriteHeader(http.StatusNoContent) },
		"DELETE /v1/vips/2001:db8::10":      func(w http.ResponseWriter, _ []byte) { w.WriteHeader(http.StatusNoContent) },
		"POST /v1/vips/192.0.2.11/attach":   reply(404, api.Error{Code: api.CodeNotFound, Message: `workload "nope" not found`}),
		"DELETE /v1/vips/192.0.2.11":        reply(409, api.Error{Code: api.CodeConflict, Message: "floating IP 192.0.2.11 is attached to web; detach it first"}),
		"POST /v1/vips/192.0.2.12/detach":   reply(404, api.Error{Code: api.CodeNotFound, Message: "floating IP 192.0.2.12 not found"}),
		"POST /v1/vips/192.0.2.13/attach":   reply(409, api.Error{Code: api.CodeConflict, Message: "floating IP 192.0.2.13/24 is already attached to db"}),
		"GET /v1/vips/192.0.2.99":           reply(404, api.Error{Code: api.CodeNotFound, Message: "floating IP 192.0.2.99 not found"}),
		"POST /v1/vips/2001:db8::10/attach": reply(200, vip),
	})
	list, err := c.ListVIPs(ctx)
	if err != nil || !reflect.DeepEqual(list, []api.VIPView{vip}) {
		t.Errorf("list: %+v %v", list, err)
	}
	// The prefix length is not part of the path.
	got, err := c.GetVIP(ctx, "192.0.2.10/24")
	if err != nil || !reflect.DeepEqual(got, &vip) {
		t.Errorf("get: %+v %v", got, err)
	}
	created, err := c.CreateVIP(ctx, api.VIPSpec{Address: "192.0.2.10/24", Interface: "eth0", Workload: "web"})
	if err != nil || !reflect.DeepEqual(created.VIP, vip.VIP) {
		t.Errorf("create: %+v %v", created, err)
	}
	jsonEqual(t, rec.bodies[2], `{"address":"192.0.2.10/24","interface":"eth0","workload":"web"}`)
	attached, err := c.AttachVIP(ctx, "192.0.2.10", "web")
	if err != nil || attached.Workload != "web" {
		t.Errorf("attach: %+v %v", attached, err)
	}
	jsonEqual(t, rec.bodies[3], `{"workload":"web"}`)
	out, err := c.DetachVIP(ctx, "192.0.2.10")
	if err != nil || out.Workload != "" || out.Holder == nil {
		t.Errorf("detach: %+v %v", out, err)
	}
	if len(rec.bodies[4]) != 0 {
		t.Errorf("detach sent a body: %q", rec.bodies[4])
	}
	if err := c.DeleteVIP(ctx, "192.0.2.10"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := c.DeleteVIP(ctx, "2001:db8::10/64"); err != nil {
		t.Errorf("delete ipv6: %v", err)
	}
	if _, err := c.AttachVIP(ctx, "2001:db8::10", "web"); err != nil {
		t.Errorf("attach ipv6: %v", err)
	}

	if _, err := c.AttachVIP(ctx, "192.0.2.11", "nope"); !IsNotFound(err) || !strings.Contains(err.Error(), `workload "nope" not found`) {
		t.Errorf("attach unknown workload: %v", err)
	}
	if _, err := c.AttachVIP(ctx, "192.0.2.13", "web"); !IsConflict(err) {
		t.Errorf("attach taken: %v", err)
	}
	if err := c.DeleteVIP(ctx, "192.0.2.11"); !IsConflict(err) {
		t.Errorf("delete attached: %v", err)
	}
	if _, err := c.DetachVIP(ctx, "192.0.2.12"); !IsNotFound(err) {
		t.Errorf("detach unknown: %v", err)
	}
	if _, err := c.GetVIP(ctx, "192.0.2.99"); !IsNotFound(err) {
		t.Errorf("get unknown: %v", err)
	}
}

func TestNodeTasks(t *testing.T) {
	ctx := context.Background()
	tasks := []api.Task{{Workload: "web", Epoch: 7, State: "running", ID: "c0ffee"}, {Workload: "db", Epoch: 3, State: "stopped", Detail: "exit status 1"}}
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/nodes/node-a/tasks": reply(200, tasks),
		"GET /v1/nodes/node-b/tasks": reply(502, api.Error{Code: api.CodeUnavailable, Message: "the agent of node-b did not answer: connection refused"}),
		"GET /v1/nodes/node-c/tasks": reply(404, api.Error{Code: api.CodeNotFound, Message: `host "node-c" is not registered`}),
	})
	got, err := c.NodeTasks(ctx, "node-a")
	if err != nil || !reflect.DeepEqual(got, tasks) {
		t.Errorf("tasks: %+v %v", got, err)
	}
	_, err = c.NodeTasks(ctx, "node-b")
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Code != api.CodeUnavailable {
		t.Errorf("agent down: %v", err)
	}
	if _, err := c.NodeTasks(ctx, "node-c"); !IsNotFound(err) {
		t.Errorf("unknown host: %v", err)
	}
	if rec.got[0] != "GET /v1/nodes/node-a/tasks" {
		t.Errorf("request %q", rec.got[0])
	}
}

func TestSharedEmptyNamesSendNothing(t *testing.T) {
	c, rec := newTestClient(t, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"GetVolume":    func() error { _, err := c.GetVolume(ctx, ""); return err },
		"DeleteVolume": func() error { return c.DeleteVolume(ctx, "") },
		"GetVIP":       func() error { _, err := c.GetVIP(ctx, ""); return err },
		"GetVIP /24":   func() error { _, err := c.GetVIP(ctx, "/24"); return err },
		"DeleteVIP":    func() error { return c.DeleteVIP(ctx, " ") },
		"AttachVIP":    func() error { _, err := c.AttachVIP(ctx, "", "web"); return err },
		"AttachVIP no workload": func() error {
			_, err := c.AttachVIP(ctx, "192.0.2.10", "")
			return err
		},
		"DetachVIP": func() error { _, err := c.DetachVIP(ctx, ""); return err },
		"NodeTasks": func() error { _, err := c.NodeTasks(ctx, ""); return err },
	}
	for name, call := range calls {
		if err := call(); err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("%s: error %v, want '... is empty'", name, err)
		}
	}
	if len(rec.got) != 0 {
		t.Errorf("requests were sent: %v", rec.got)
	}
}

func TestSharedNamesArePathEscaped(t *testing.T) {
	c, rec := newTestClient(t, nil)
	ctx := context.Background()
	_, _ = c.GetVolume(ctx, "a/../b")
	_, _ = c.NodeTasks(ctx, "a/b")
	_, _ = c.GetVIP(ctx, "fe80::1%eth0")
	want := []string{"GET /v1/volumes/a%2F..%2Fb", "GET /v1/nodes/a%2Fb/tasks", "GET /v1/vips/fe80::1%25eth0"}
	if !reflect.DeepEqual(rec.got, want) {
		t.Errorf("requests %v, want %v", rec.got, want)
	}
}
