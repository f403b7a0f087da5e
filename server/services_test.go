package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// serviceAPI serves the service routes of a world's store on its clock.
func serviceAPI(w *world) string {
	h := &Handler{store: w.st, log: quietLog(), now: w.clock}
	mux := &routedMux{ServeMux: http.NewServeMux()}
	h.routeServices(mux)
	ts := httptest.NewServer(mux)
	w.t.Cleanup(ts.Close)
	return ts.URL
}

// members returns the live (not deleting) members of a service and the
// host each is allocated to ("" if none).
func members(w *world, service string) map[string]string {
	s := w.snap()
	out := map[string]string{}
	for name, wl := range s.Workloads {
		if _, ok := api.MemberIndex(service, &wl.Value.WorkloadSpec); !ok || wl.Value.Deleting {
			continue
		}
		out[name] = ""
		if a, ok := s.Allocations[name]; ok {
			out[name] = a.Value.Host
		}
	}
	return out
}

func names(m map[string]string) string {
	var out []string
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// spreadOK fails unless every member is placed, each on its own host.
func spreadOK(t *testing.T, m map[string]string) {
	t.Helper()
	seen := map[string]string{}
	for name, host := range m {
		if host == "" {
			t.Fatalf("%s is not placed: %v", name, m)
		}
		if other, dup := seen[host]; dup {
			t.Fatalf("%s and %s both on %s (anti-affinity)", name, other, host)
		}
		seen[host] = name
	}
}

const webService = `{"name":"web","replicas":%d,"template":{"kind":"vm","cpus":1,"memory":"256MiB"}}`

func TestServiceScaleAndDelete(t *testing.T) {
	w := newWorld(t)
	url := serviceAPI(w)
	for i := 1; i <= 5; i++ {
		w.host(fmt.Sprintf("h%d", i), 4)
	}
	if code, b := do(t, "POST", url+"/v1/services", fmt.Sprintf(webService, 3)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	w.settle()
	m := members(w, "web")
	if got := names(m); got != "web-1,web-2,web-3" {
		t.Fatalf("members after create: %s", got)
	}
	spreadOK(t, m)
	if len(w.events("service-member-created")) != 3 || len(w.events("service-scaled")) != 1 {
		t.Fatalf("events: %d created, %d scaled", len(w.events("service-member-created")), len(w.events("service-scaled")))
	}
	var v api.ServiceView
	code, b := do(t, "GET", url+"/v1/services/web", "")
	if err := json.Unmarshal(b, &v); code != 200 || err != nil || v.Running != 3 || strings.Join(v.Members, ",") != "web-1,web-2,web-3" || v.AntiAffinity != "auto" {
		t.Fatalf("get: %d %s", code, b)
	}

	if code, b := do(t, "PUT", url+"/v1/services/web/scale", `{"replicas":5}`); code != 200 {
		t.Fatalf("scale 5: %d %s", code, b)
	}
	w.settle()
	m = members(w, "web")
	if got := names(m); got != "web-1,web-2,web-3,web-4,web-5" {
		t.Fatalf("members after scale 5: %s", got)
	}
	spreadOK(t, m)

	if code, b := do(t, "PUT", url+"/v1/services/web/scale", `{"replicas":2}`); code != 200 {
		t.Fatalf("scale 2: %d %s", code, b)
	}
	w.settle()
	if got := names(members(w, "web")); got != "web-1,web-2" {
		t.Fatalf("members after scale 2: %s (the highest indexes go first)", got)
	}
	s := w.snap()
	for _, gone := range []string{"web-3", "web-4", "web-5"} {
		if _, ok := s.Workloads[gone]; ok {
			t.Fatalf("%s still has a record", gone)
		}
	}
	if len(s.Allocations) != 2 {
		t.Fatalf("%d allocations", len(s.Allocations))
	}

	// Scaling up again takes the lowest free indexes.
	if code, b := do(t, "PUT", url+"/v1/services/web/scale", `{"replicas":3}`); code != 200 {
		t.Fatalf("scale 3: %d %s", code, b)
	}
	w.settle()
	if got := names(members(w, "web")); got != "web-1,web-2,web-3" {
		t.Fatalf("members after scale 3: %s", got)
	}

	if code, b := do(t, "DELETE", url+"/v1/services/web", ""); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, b)
	}
	if code, _ := do(t, "PUT", url+"/v1/services/web/scale", `{"replicas":4}`); code != http.StatusConflict {
		t.Fatalf("scale while deleting: %d", code)
	}
	w.settle()
	s = w.snap()
	if len(s.Workloads) != 0 || len(s.Allocations) != 0 || len(s.Services) != 0 {
		t.Fatalf("after delete: %d workloads, %d allocations, %d services", len(s.Workloads), len(s.Allocations), len(s.Services))
	}
	if len(w.events("service-deleted")) != 1 {
		t.Fatal("no service-deleted event")
	}
	if code, _ := do(t, "GET", url+"/v1/services/web", ""); code != http.StatusNotFound {
		t.Fatalf("get after delete: %d", code)
	}
}

// TestServiceSkipsTakenNames: a workload that is not a member keeps its
// name; the service takes the next free index.
func TestServiceSkipsTakenNames(t *testing.T) {
	w := newWorld(t)
	url := serviceAPI(w)
	w.host("h1", 8)
	w.vm("web-1", 1) // not labelled: not a member
	if code, b := do(t, "POST", url+"/v1/services", `{"name":"web","replicas":2,"anti_affinity":"none","template":{"kind":"vm","cpus":1,"memory":"256MiB"}}`); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	w.settle()
	m := members(w, "web")
	if got := names(m); got != "web-2,web-3" {
		t.Fatalf("members: %s", got)
	}
	if m["web-2"] != "h1" || m["web-3"] != "h1" {
		t.Fatalf("anti-affinity none: %v", m)
	}
	if w.snap().Workloads["web-1"].Value.Deleting {
		t.Fatal("the service touched a workload that is not its member")
	}
}

// TestServiceMemberFailsOver: a member on a lost, fenced host is recovered
// elsewhere by the ordinary failover, not replaced by a second copy.
func TestServiceMemberFailsOver(t *testing.T) {
	w := newWorld(t)
	url := serviceAPI(w)
	for i := 1; i <= 4; i++ {
		w.host(fmt.Sprintf("h%d", i), 4)
	}
	if code, b := do(t, "POST", url+"/v1/services", fmt.Sprintf(webService, 3)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	w.settle()
	m := members(w, "web")
	spreadOK(t, m)
	lost := m["web-1"]
	if err := w.st.Revoke(w.ctx, w.leases[lost]); err != nil {
		t.Fatal(err)
	}
	delete(w.leases, lost)
	w.advance(time.Minute)
	if got := names(members(w, "web")); got != "web-1,web-2,web-3" {
		t.Fatalf("members while %s is lost: %s (no replacement before the fence)", lost, got)
	}
	rec := api.FenceRecord{Schema: api.SchemaVersion, Host: lost, Device: "operator", Action: "confirmed off", PowerState: "Off", Confirmed: w.clock()}
	w.txn(clusterstore.Put(clusterstore.FencingKey(lost), clusterstore.Encode(rec)))
	w.advance(time.Minute)
	m = members(w, "web")
	if got := names(m); got != "web-1,web-2,web-3" {
		t.Fatalf("members after failover: %s", got)
	}
	spreadOK(t, m)
	if m["web-1"] == lost {
		t.Fatalf("web-1 still on %s", lost)
	}
}

// TestServiceAPIRefusesBadInput: each bad request is refused with a clear
// message and the store is not written.
func TestServiceAPIRefusesBadInput(t *testing.T) {
	w := newWorld(t)
	url := serviceAPI(w)
	w.host("h1", 4)
	if code, b := do(t, "POST", url+"/v1/services", fmt.Sprintf(webService, 1)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	cases := []refusal{
		{"POST", "/v1/services", fmt.Sprintf(webService, -1), 400, "replicas must be from 0 to 100, got -1"},
		{"POST", "/v1/services", `{"name":"db","replicas":101,"template":{"kind":"vm","cpus":1,"memory":"256MiB"}}`, 400, "replicas must be from 0 to 100, got 101"},
		{"POST", "/v1/services", `{"name":"Bad_Name","replicas":1,"template":{"kind":"vm","cpus":1,"memory":"256MiB"}}`, 400, "not a DNS label"},
		{"POST", "/v1/services", `{"name":"db","replicas":1,"template":{"name":"db-1","kind":"vm","cpus":1,"memory":"256MiB"}}`, 400, "the template has a name"},
		{"POST", "/v1/services", `{"name":"db","replicas":1,"template":{"kind":"vm","cpus":0,"memory":"256MiB"}}`, 400, "template: cpus must be"},
		{"POST", "/v1/services", `{"name":"db","replicas":1,"anti_affinity":"maybe","template":{"kind":"vm","cpus":1,"memory":"256MiB"}}`, 400, `anti-affinity "maybe" is unknown`},
		{"POST", "/v1/services", `{"name":"db","replicas":1,"bogus":1,"template":{"kind":"vm","cpus":1,"memory":"256MiB"}}`, 400, "unknown field"},
		{"POST", "/v1/services", fmt.Sprintf(webService, 2), 409, `service "web" already exists`},
		{"PUT", "/v1/services/web/scale", `{"replicas":-3}`, 400, "replicas must be from 0 to 100, got -3"},
		{"PUT", "/v1/services/web/scale", `{"replicas":1000}`, 400, "replicas must be from 0 to 100, got 1000"},
		{"PUT", "/v1/services/web/scale", `{"replicas":"two"}`, 400, "invalid scale request"},
		{"PUT", "/v1/services/nope/scale", `{"replicas":2}`, 404, `service "nope" not found`},
		{"DELETE", "/v1/services/nope", "", 404, `service "nope" not found`},
	}
	expectRefused(t, w, url, cases)
}

// refusal is a request that must be refused with code and a message
// containing want.
type refusal struct {
	method, path, body string
	code               int
	want               string
}

// expectRefused sends each request and checks it is refused as said and
// that the store did not change.
func expectRefused(t *testing.T, w *world, url string, cases []refusal) {
	t.Helper()
	for _, c := range cases {
		_, _, before, _ := w.st.Get(w.ctx, "/probe")
		code, b := do(t, c.method, url+c.path, c.body)
		var e api.Error
		_ = json.Unmarshal(b, &e)
		if code != c.code || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s %s %s: %d %s; want %d with %q", c.method, c.path, c.body, code, b, c.code, c.want)
		}
		if _, _, after, _ := w.st.Get(w.ctx, "/probe"); after != before {
			t.Errorf("%s %s %s: the store changed (revision %d -> %d)", c.method, c.path, c.body, before, after)
		}
	}
}
