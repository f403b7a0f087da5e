package client

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

func TestWhatIf(t *testing.T) {
	ctx := context.Background()
	one := api.WhatIf{Failed: []string{"node-a", "node-b"}, Restarts: []api.WhatIfMove{{Order: 1, Workload: "web", Priority: 10, From: "node-a", To: "node-c"}},
		Unplaced: []api.WhatIfUnplaced{{Workload: "db", From: "node-b", Reason: "no host fits: cpu (1 host)"}}, ExpectedRecovery: api.Duration(5 * time.Second)}
	rep := api.WhatIfReport{Scenarios: []api.WhatIf{one}, UnsafeHosts: []string{"node-a"}}
	c, rec := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/whatif": func(w http.ResponseWriter, b []byte) {
			rec := reply(200, rep)
			if len(b) == 0 {
				rec(w, b)
			}
		},
	})
	got, err := c.WhatIfEach(ctx)
	if err != nil || !reflect.DeepEqual(got, &rep) {
		t.Fatalf("each: %+v %v", got, err)
	}
	if rec.query[0] != "" {
		t.Errorf("each: query %q", rec.query[0])
	}
	c2, rec2 := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/whatif": reply(200, one),
	})
	w, err := c2.WhatIf(ctx, "node-a", "node-b")
	if err != nil || !reflect.DeepEqual(w, &one) {
		t.Fatalf("fail: %+v %v", w, err)
	}
	if q, _ := url.ParseQuery(rec2.query[0]); q.Get("fail") != "node-a,node-b" {
		t.Errorf("query %q", rec2.query[0])
	}
	c3, _ := newTestClient(t, map[string]func(http.ResponseWriter, []byte){
		"GET /v1/whatif": reply(404, api.Error{Code: api.CodeNotFound, Message: `node "x" not found`}),
	})
	if _, err := c3.WhatIf(ctx, "x"); !IsNotFound(err) {
		t.Errorf("404: %v", err)
	}
}
