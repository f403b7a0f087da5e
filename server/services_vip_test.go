package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
)

// vipWorld is a world whose hosts h1..h4 are on network "pub"
// (10.0.0.1N/24), with floating IPs 10.0.0.100 (free) and 10.0.0.101
// (attached to workload "solo"), serving the service and floating-IP routes.
func vipWorld(t *testing.T) (*world, string) {
	w := newWorld(t)
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("h%d", i)
		w.host(name, 4)
		n := api.Node{Schema: api.SchemaVersion, Name: name, CPUs: 4, Memory: 16 * api.GiB, Kinds: []api.Kind{api.KindVM, api.KindContainer},
			Networks: []api.HostNetwork{{Name: "pub", Interface: "eth0", Subnets: []string{fmt.Sprintf("10.0.0.1%d/24", i)}}}}
		w.txn(clusterstore.Put(clusterstore.NodeKey(name), clusterstore.Encode(n)))
	}
	for addr, wl := range map[string]string{"10.0.0.100": "", "10.0.0.101": "solo"} {
		v := api.VIP{Schema: api.SchemaVersion, VIPSpec: api.VIPSpec{Address: addr + "/24", Network: "pub", Workload: wl}, CreatedAt: w.clock()}
		w.txn(clusterstore.Put(clusterstore.VIPKey(addr), clusterstore.Encode(v)))
	}
	v := api.VIP{Schema: api.SchemaVersion, VIPSpec: api.VIPSpec{Address: "10.0.0.102/24", Interface: "eth0"}, CreatedAt: w.clock()}
	w.txn(clusterstore.Put(clusterstore.VIPKey("10.0.0.102"), clusterstore.Encode(v)))
	h := &Handler{store: w.st, log: quietLog(), now: w.clock}
	mux := &routedMux{ServeMux: http.NewServeMux()}
	h.routeServices(mux)
	h.routeShared(mux)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return w, ts.URL
}

const lbService = `{"name":"web","replicas":%d,"vip":"10.0.0.100","ports":[{"port":80,"target_port":8080}],
	"template":{"kind":"container","image":"busybox:1.36","cpus":1,"memory":"64MiB"}}`

func vipRecord(w *world, addr string) api.VIP {
	w.t.Helper()
	v, ok := w.snap().VIPs[addr]
	if !ok {
		w.t.Fatalf("floating IP %s is gone", addr)
	}
	return v.Value
}

// backends lists a pool's members as "workload@address".
func backends(v api.VIP) string {
	if v.Pool == nil {
		return "<no pool>"
	}
	var out []string
	for _, b := range v.Pool.Backends {
		out = append(out, b.Workload+"@"+b.Address)
	}
	return strings.Join(out, ",")
}

func hostAddr(host string) string { return "10.0.0.1" + strings.TrimPrefix(host, "h") }

// TestServiceVIPPool: the leader points a service's floating IP at one
// running member and keeps its pool to the running, healthy members on
// live hosts; the address stays with its anchor while that runs, moves when
// it is lost, and is freed when the service goes.
func TestServiceVIPPool(t *testing.T) {
	w, url := vipWorld(t)
	if code, b := do(t, "POST", url+"/v1/services", fmt.Sprintf(lbService, 3)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	w.settle()
	m := members(w, "web")
	spreadOK(t, m)
	v := vipRecord(w, "10.0.0.100")
	if v.Service != "web" || v.Workload != "web-1" {
		t.Fatalf("record: service %q anchor %q; want web, web-1", v.Service, v.Workload)
	}
	want := fmt.Sprintf("web-1@%s,web-2@%s,web-3@%s", hostAddr(m["web-1"]), hostAddr(m["web-2"]), hostAddr(m["web-3"]))
	if got := backends(v); got != want {
		t.Fatalf("pool %s, want %s", got, want)
	}
	if len(v.Pool.Ports) != 1 || v.Pool.Ports[0] != (api.ServicePort{Port: 80, TargetPort: 8080, Proto: "tcp"}) {
		t.Fatalf("pool ports %+v", v.Pool.Ports)
	}
	var view api.ServiceView
	if code := getJSON(t, url+"/v1/services/web", &view); code != 200 || view.Anchor != "web-1" || view.Pool == nil || len(view.Pool.Backends) != 3 || !view.Instances[1].InPool {
		t.Fatalf("service view: %d %+v", code, view)
	}

	// An unhealthy member leaves the pool; the anchor does not move.
	a := w.snap().Allocations["web-2"].Value
	w.report(m["web-2"], api.WorkloadStatus{Workload: "web-2", Epoch: a.Epoch, State: api.StateRunning, Health: api.HealthUnhealthy, UpdatedAt: w.clock()})
	w.settle()
	v = vipRecord(w, "10.0.0.100")
	want = fmt.Sprintf("web-1@%s,web-3@%s", hostAddr(m["web-1"]), hostAddr(m["web-3"]))
	if got := backends(v); got != want || v.Workload != "web-1" {
		t.Fatalf("after web-2 unhealthy: pool %s anchor %s; want %s, web-1", got, v.Workload, want)
	}
	if len(w.events("service-pool")) == 0 {
		t.Error("no service-pool event")
	}
	// Healthy again: back in.
	w.report(m["web-2"], api.WorkloadStatus{Workload: "web-2", Epoch: a.Epoch, State: api.StateRunning, Health: api.HealthHealthy, UpdatedAt: w.clock()})
	w.settle()
	if got := backends(vipRecord(w, "10.0.0.100")); strings.Count(got, "@") != 3 {
		t.Fatalf("after web-2 healthy again: %s", got)
	}
	// The anchor unhealthy: out of the pool, but it keeps the address
	// (moving it would cut the connections through its host).
	a1 := w.snap().Allocations["web-1"].Value
	w.report(m["web-1"], api.WorkloadStatus{Workload: "web-1", Epoch: a1.Epoch, State: api.StateRunning, Health: api.HealthUnhealthy, UpdatedAt: w.clock()})
	w.settle()
	v = vipRecord(w, "10.0.0.100")
	if strings.Contains(backends(v), "web-1@") || v.Workload != "web-1" {
		t.Fatalf("anchor unhealthy: pool %s anchor %s", backends(v), v.Workload)
	}
	// The anchor's host is lost: the address follows a healthy running
	// member at once (its host can claim it once the lost one is fenced).
	lost := m["web-1"]
	if err := w.st.Revoke(w.ctx, w.leases[lost]); err != nil {
		t.Fatal(err)
	}
	delete(w.leases, lost)
	w.advance(time.Second)
	v = vipRecord(w, "10.0.0.100")
	if v.Workload != "web-2" || strings.Contains(backends(v), "web-1@") {
		t.Fatalf("anchor host lost: anchor %s pool %s; want web-2 without web-1", v.Workload, backends(v))
	}
	// Scaling down keeps the anchor, whatever its number.
	if code, b := do(t, "PUT", url+"/v1/services/web/scale", `{"replicas":1}`); code != 200 {
		t.Fatalf("scale: %d %s", code, b)
	}
	w.settle()
	if got := names(members(w, "web")); got != "web-2" {
		t.Fatalf("after scale to 1: %s; want the anchor web-2 kept", got)
	}
	// Deleted: the address stays defined and is free again.
	if code, b := do(t, "DELETE", url+"/v1/services/web", ""); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, b)
	}
	rec := api.FenceRecord{Schema: api.SchemaVersion, Host: lost, Device: "operator", Action: "confirmed off", PowerState: "Off", Confirmed: w.clock()}
	w.txn(clusterstore.Put(clusterstore.FencingKey(lost), clusterstore.Encode(rec)))
	w.advance(time.Minute)
	if _, ok := w.snap().Services["web"]; ok {
		t.Fatal("service still there")
	}
	v = vipRecord(w, "10.0.0.100")
	if v.Service != "" || v.Workload != "" || v.Pool != nil {
		t.Fatalf("floating IP after the service: %+v", v)
	}
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	code, b := do(t, "GET", url, "")
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("GET %s: %d %s: %v", url, code, b, err)
	}
	return code
}

// TestServiceVIPRefusesBadInput: a floating IP that is missing or in use,
// and hand changes to a service's address, are refused; nothing changes.
func TestServiceVIPRefusesBadInput(t *testing.T) {
	w, url := vipWorld(t)
	if code, b := do(t, "POST", url+"/v1/services", fmt.Sprintf(lbService, 1)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	w.settle()
	svc := func(name, vip, ports string) string {
		return fmt.Sprintf(`{"name":%q,"replicas":1,"vip":%q,"ports":%s,"template":{"kind":"container","image":"busybox:1.36","cpus":1,"memory":"64MiB"}}`, name, vip, ports)
	}
	cases := []refusal{
		{"POST", "/v1/services", svc("api", "10.0.0.199", `[{"port":80,"target_port":80}]`), 400, "floating IP 10.0.0.199 does not exist"},
		{"POST", "/v1/services", svc("api", "10.0.0.101", `[{"port":80,"target_port":80}]`), 409, "already in use: attached to workload solo"},
		{"POST", "/v1/services", svc("api", "10.0.0.100", `[{"port":80,"target_port":80}]`), 409, "already in use by service web"},
		{"POST", "/v1/services", svc("api", "10.0.0.100", `[{"port":0,"target_port":80}]`), 400, "ports must be from 1 to 65535"},
		{"POST", "/v1/services", svc("api", "10.0.0.100", `[{"port":80,"target_port":70000}]`), 400, "ports must be from 1 to 65535"},
		{"POST", "/v1/services", svc("api", "10.0.0.100", `[]`), 400, "has no ports"},
		{"POST", "/v1/services", svc("api", "not-an-ip", `[{"port":80,"target_port":80}]`), 400, "is not an IP address"},
		{"POST", "/v1/services", svc("web", "10.0.0.100", `[{"port":80,"target_port":80}]`), 409, `service "web" already exists`},
		{"POST", "/v1/services", svc("api", "10.0.0.102", `[{"port":80,"target_port":80}]`), 400, "names no network"},
		{"POST", "/v1/services", strings.Replace(svc("api", "10.0.0.100", `[{"port":80,"target_port":80}]`), `"replicas":1,`, `"replicas":1,"anti_affinity":"none",`, 1), 400, "needs anti-affinity auto"},
		{"POST", "/v1/vips/10.0.0.100/attach", `{"workload":"other"}`, 409, "load-balanced address of service web"},
		{"POST", "/v1/vips/10.0.0.100/detach", ``, 409, "load-balanced address of service web"},
		{"DELETE", "/v1/vips/10.0.0.100", ``, 409, "load-balanced address of service web"},
	}
	expectRefused(t, w, url, cases)
}

// TestServiceVIPAnchorNeedsTheNetwork: a copy on a host that is not on the
// floating IP's network is neither in the pool nor ever the anchor (its
// host could not hold the address).
func TestServiceVIPAnchorNeedsTheNetwork(t *testing.T) {
	w, url := vipWorld(t)
	// h5 runs containers but is not on network "pub".
	w.host("h5", 4)
	n := api.Node{Schema: api.SchemaVersion, Name: "h5", CPUs: 4, Memory: 16 * api.GiB, Kinds: []api.Kind{api.KindVM, api.KindContainer}}
	w.txn(clusterstore.Put(clusterstore.NodeKey("h5"), clusterstore.Encode(n)))
	if code, b := do(t, "POST", url+"/v1/services", fmt.Sprintf(lbService, 5)); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	w.settle()
	m := members(w, "web")
	spreadOK(t, m)
	var off string
	for name, host := range m {
		if host == "h5" {
			off = name
		}
	}
	if off == "" {
		t.Fatalf("no copy on h5: %v", m)
	}
	check := func(when string) {
		v := vipRecord(w, "10.0.0.100")
		if m[v.Workload] == "h5" || strings.Contains(backends(v), off+"@") || strings.Count(backends(v), "@") != len(m)-1 {
			t.Fatalf("%s: anchor %s (on %s), pool %s; %s on h5 must be in neither", when, v.Workload, m[v.Workload], backends(v), off)
		}
	}
	check("steady")
	// Lose hosts until the copy on h5 is the only healthy copy off a lost
	// host besides one: the anchor still never goes to h5.
	for _, name := range []string{"web-1", "web-2", "web-3"} {
		host := m[name]
		if host == "h5" {
			continue
		}
		v := vipRecord(w, "10.0.0.100")
		if v.Workload != name {
			continue
		}
		if err := w.st.Revoke(w.ctx, w.leases[host]); err != nil {
			t.Fatal(err)
		}
		delete(w.leases, host)
		w.advance(time.Second)
		v = vipRecord(w, "10.0.0.100")
		if m[v.Workload] == "h5" {
			t.Fatalf("after losing %s the anchor went to %s on h5", host, v.Workload)
		}
	}
}
