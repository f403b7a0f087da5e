package client

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var (
	fenceAt      = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	fenceRequest = api.FenceRequest{Schema: api.SchemaVersion, Host: "node-a", At: fenceAt}
	fenceRecord  = api.FenceRecord{Schema: api.SchemaVersion, Host: "node-a", Device: "operator", Action: "confirmed off by an operator",
		PowerState: "Off (operator)", Started: fenceAt, Confirmed: fenceAt}
)

func TestFenceNode(t *testing.T) {
	ctx := context.Background()
	t.Run("through the fence devices", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"POST /v1/nodes/node-a/fence": reply(202, fenceRequest),
		})
		got, err := c.FenceNode(ctx, "node-a", false)
		if err != nil {
			t.Fatal(err)
		}
		if got.Record != nil || got.Request == nil || !reflect.DeepEqual(*got.Request, fenceRequest) {
			t.Errorf("got %+v", got)
		}
		if rec.query[0] != "" || len(rec.bodies[0]) != 0 {
			t.Errorf("query %q body %q, want neither", rec.query[0], rec.bodies[0])
		}
	})
	t.Run("confirm off", func(t *testing.T) {
		c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"POST /v1/nodes/node-a/fence": reply(200, fenceRecord),
		})
		got, err := c.FenceNode(ctx, "node-a", true)
		if err != nil {
			t.Fatal(err)
		}
		if got.Request != nil || got.Record == nil || !reflect.DeepEqual(*got.Record, fenceRecord) {
			t.Errorf("got %+v", got)
		}
		if rec.got[0] != "POST /v1/nodes/node-a/fence" || rec.query[0] != "confirm-off=true" {
			t.Errorf("request %q query %q", rec.got[0], rec.query[0])
		}
	})
	t.Run("no fence device", func(t *testing.T) {
		c, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
			"POST /v1/nodes/node-a/fence": reply(409, api.Error{Message: `node "node-a" has no fence device`, Code: api.CodeConflict}),
		})
		_, err := c.FenceNode(ctx, "node-a", false)
		if !IsConflict(err) {
			t.Errorf("error %v, want a conflict", err)
		}
	})
}

func TestNodeActions(t *testing.T) {
	ctx := context.Background()
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"POST /v1/nodes/node-a/clear":    reply(200, map[string]string{"node": "node-a", "status": "cleared"}),
		"POST /v1/nodes/node-a/power-on": reply(200, map[string]string{"node": "node-a", "status": "powered on", "device": "node-a-bmc", "at": "2025-06-01T12:00:00Z"}),
		"POST /v1/nodes/node-b/power-on": reply(502, api.Error{Message: "power on node-b failed on every device: [timeout]", Code: api.CodeUnavailable}),
	})
	got, err := c.ClearNode(ctx, "node-a")
	if err != nil || !reflect.DeepEqual(got, &NodeActionResult{Node: "node-a", Status: "cleared"}) {
		t.Errorf("clear: %+v, %v", got, err)
	}
	got, err = c.PowerOnNode(ctx, "node-a")
	want := &NodeActionResult{Node: "node-a", Status: "powered on", Device: "node-a-bmc", At: "2025-06-01T12:00:00Z"}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("power-on: %+v, %v", got, err)
	}
	_, err = c.PowerOnNode(ctx, "node-b")
	if err == nil || err.Error() != "power on node-b failed on every device: [timeout] (HTTP 502, unavailable)" {
		t.Errorf("power-on failure: %v", err)
	}
	if want := []string{"POST /v1/nodes/node-a/clear", "POST /v1/nodes/node-a/power-on", "POST /v1/nodes/node-b/power-on"}; !reflect.DeepEqual(rec.got, want) {
		t.Errorf("requests %v, want %v", rec.got, want)
	}
}

func TestDevFault(t *testing.T) {
	ctx := context.Background()
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"POST /v1/dev/fault": func(w http.ResponseWriter, body []byte) {
			var req FaultRequest
			_ = json.Unmarshal(body, &req)
			writeJSON(w, 200, FaultResult{Host: req.Host, Fault: req.Fault, Status: "injected"})
		},
	})
	got, err := c.DevFault(ctx, "host-1", "partition")
	if err != nil || !reflect.DeepEqual(got, &FaultResult{Host: "host-1", Fault: "partition", Status: "injected"}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(rec.bodies[0])))
	dec.DisallowUnknownFields()
	var sent FaultRequest
	if err := dec.Decode(&sent); err != nil || sent != (FaultRequest{Host: "host-1", Fault: "partition"}) {
		t.Errorf("sent %s (%v)", rec.bodies[0], err)
	}
	if ct := rec.hdrs[0].Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}

	// Not a dev cluster: the server's catch-all answers.
	plain, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"POST /v1/dev/fault": reply(404, api.Error{Message: "no such endpoint: POST /v1/dev/fault", Code: api.CodeNotFound}),
		"GET /v1/nodes/x":    reply(404, api.Error{Message: `node "x" not found`, Code: api.CodeNotFound}),
	})
	_, err = plain.DevFault(ctx, "host-1", "crash")
	if !IsNoSuchEndpoint(err) || !IsNotFound(err) {
		t.Errorf("error %v: IsNoSuchEndpoint %v", err, IsNoSuchEndpoint(err))
	}
	_, err = plain.GetNode(ctx, "x")
	if IsNoSuchEndpoint(err) || !IsNotFound(err) {
		t.Errorf("a missing node is not a missing endpoint: %v", err)
	}
}

func TestFencingEmptyNamesSendNothing(t *testing.T) {
	c, rec := newTestClient(t, nil)
	ctx := context.Background()
	calls := map[string]func() error{
		"FenceNode":   func() error { _, err := c.FenceNode(ctx, "", false); return err },
		"ConfirmOff":  func() error { _, err := c.FenceNode(ctx, "", true); return err },
		"ClearNode":   func() error { _, err := c.ClearNode(ctx, ""); return err },
		"PowerOnNode": func() error { _, err := c.PowerOnNode(ctx, ""); return err },
		"DevFault":    func() error { _, err := c.DevFault(ctx, "", "crash"); return err },
		"DevFault no fault": func() error {
			_, err := c.DevFault(ctx, "host-1", "")
			return err
		},
	}
	for name, call := range calls {
		if err := call(); err == nil || !strings.Contains(err.Error(), "is empty") {
			t.Errorf("%s: error %v, want '... is empty'", name, err)
		}
	}
	// Names are path-escaped.
	_, _ = c.FenceNode(ctx, "a/b", false)
	if len(rec.got) != 1 || rec.got[0] != "POST /v1/nodes/a%2Fb/fence" {
		t.Errorf("requests %v", rec.got)
	}
}
