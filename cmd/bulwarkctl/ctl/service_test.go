package ctl

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

// fakeServices serves the service routes from memory and records what it
// was sent.
type fakeServices struct {
	mu       sync.Mutex
	url      string
	svcs     map[string]api.ServiceView
	requests []string
	// goneAfter: GETs of a deleting service before it answers 404.
	goneAfter int
}

func newFakeServices(t *testing.T) *fakeServices {
	t.Helper()
	f := &fakeServices{svcs: map[string]api.ServiceView{}, goneAfter: 2}
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter, name string) {
		reply(w, 404, api.Error{Message: "service \"" + name + "\" not found", Code: api.CodeNotFound})
	}
	mux := http.NewServeMux()
	// Workloads a --vm-template may name.
	mux.HandleFunc("GET /v1/workloads/{name}", func(w http.ResponseWriter, r *http.Request) {
		vm := api.WorkloadSpec{Name: "base", Kind: api.KindVM, CPUs: 2, Memory: api.GiB, AntiAffinity: "g", VIPs: []string{"192.0.2.9"},
			Labels: map[string]string{"tier": "app"}, VM: &api.VMSpec{Kernel: "/srv/vmlinuz"}}
		switch name := r.PathValue("name"); name {
		case "base":
			reply(w, 200, api.WorkloadView{Workload: api.Workload{WorkloadSpec: vm}})
		case "ctr":
			reply(w, 200, api.WorkloadView{Workload: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "ctr", Kind: api.KindContainer, Image: "busybox", CPUs: 1, Memory: 64 * api.MiB}}})
		default:
			reply(w, 404, api.Error{Message: "workload \"" + name + "\" not found", Code: api.CodeNotFound})
		}
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		out := []api.ServiceView{}
		for _, v := range f.svcs {
			out = append(out, v)
		}
		reply(w, 200, out)
	})
	mux.HandleFunc("POST /v1/services", func(w http.ResponseWriter, r *http.Request) {
		var spec api.ServiceSpec
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&spec); err != nil {
			reply(w, 400, api.Error{Message: err.Error(), Code: api.CodeInvalid})
			return
		}
		if _, ok := f.svcs[spec.Name]; ok {
			reply(w, 409, api.Error{Message: "service \"" + spec.Name + "\" already exists", Code: api.CodeConflict})
			return
		}
		v := api.ServiceView{Service: api.Service{Schema: 1, ServiceSpec: spec, CreatedAt: testTime}, Members: []string{}}
		f.svcs[spec.Name] = v
		reply(w, 201, v)
	})
	mux.HandleFunc("GET /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := f.svcs[r.PathValue("name")]
		if !ok {
			notFound(w, r.PathValue("name"))
			return
		}
		if v.Deleting {
			if f.goneAfter--; f.goneAfter < 0 {
				delete(f.svcs, v.Name)
				notFound(w, v.Name)
				return
			}
		}
		reply(w, 200, v)
	})
	mux.HandleFunc("PUT /v1/services/{name}/scale", func(w http.ResponseWriter, r *http.Request) {
		v, ok := f.svcs[r.PathValue("name")]
		if !ok {
			notFound(w, r.PathValue("name"))
			return
		}
		var req api.ScaleRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		v.Replicas = req.Replicas
		f.svcs[v.Name] = v
		reply(w, 200, v)
	})
	mux.HandleFunc("DELETE /v1/services/{name}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := f.svcs[r.PathValue("name")]
		if !ok {
			notFound(w, r.PathValue("name"))
			return
		}
		v.Deleting = true
		f.svcs[v.Name] = v
		reply(w, 202, v)
	})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		f.mu.Lock()
		defer f.mu.Unlock()
		f.requests = append(f.requests, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(b)))
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

func runSvc(t *testing.T, f *fakeServices, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	app := NewApp(&out, &errb)
	err := app.Run(append([]string{"bulwarkctl", "--api", f.url}, args...))
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

func TestServiceCreateBadInputSendsNothing(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"web", "--replicas", "-1", "--vm"}, "replicas must be from 0 to 100, got -1"},
		{[]string{"web", "--replicas", "101", "--vm"}, "replicas must be from 0 to 100, got 101"},
		{[]string{"web", "--vm"}, "--replicas is missing"},
		{[]string{"web", "--replicas", "3"}, "say what the copies run"},
		{[]string{"web", "--replicas", "3", "--vm", "--image", "busybox:1.36"}, "either --vm or --image"},
		{[]string{"web", "--replicas", "3", "--image", "busybox:1.36", "--disk", "/srv/a.img"}, "--disk is for VMs"},
		{[]string{"web", "--replicas", "3", "--vm", "--", "sh"}, "are for containers, not VMs"},
		{[]string{"Web", "--replicas", "3", "--vm"}, "not a DNS label"},
		{[]string{strings.Repeat("a", 60), "--replicas", "3", "--vm"}, "at most 59 are allowed"},
		{[]string{"web", "--replicas", "3", "--vm", "--anti-affinity", "soft"}, `anti-affinity "soft" is unknown`},
		{[]string{"web", "--replicas", "3", "--vm", "--cpus", "0"}, "template: cpus must be"},
		{[]string{"web", "--replicas", "3", "--image", ""}, "--image is empty"},
		{[]string{"--replicas", "3", "--vm"}, "missing NAME"},
		{[]string{"web", "--replicas", "3", "--image", "busybox:1.36", "--vip", "192.0.2.80"}, "has no ports"},
		{[]string{"web", "--replicas", "3", "--image", "busybox:1.36", "--publish", "80:8080"}, "ports need a vip"},
		{[]string{"web", "--replicas", "3", "--image", "busybox:1.36", "--vip", "192.0.2.80", "--publish", "80:0"}, "ports must be from 1 to 65535"},
		{[]string{"web", "--replicas", "3", "--image", "busybox:1.36", "--vip", "192.0.2.80", "--publish", "http"}, "use PORT:TARGETPORT"},
		{[]string{"web", "--replicas", "3", "--image", "busybox:1.36", "--vip", "192.0.2.80/24", "--publish", "80"}, "is not an IP address"},
		{[]string{"web", "--replicas", "3", "--vm", "--vip", "192.0.2.80", "--publish", "80"}, "for container services"},
	}
	for _, c := range cases {
		f := newFakeServices(t)
		r := runSvc(t, f, append([]string{"service", "create"}, c.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, r.err, c.want)
		}
		if len(f.requests) > 0 {
			t.Errorf("%v: sent %v", c.args, f.requests)
		}
	}
	for _, args := range [][]string{{"scale", "web", "-1"}, {"scale", "web", "101"}, {"scale", "web", "x"}, {"scale", "web"}, {"show", "Bad_Name"}, {"delete", "Bad_Name"}} {
		f := newFakeServices(t)
		if r := runSvc(t, f, append([]string{"service"}, args...)...); r.err == nil || len(f.requests) > 0 {
			t.Errorf("%v: error %v, sent %v", args, r.err, f.requests)
		}
	}
}

func TestServiceCreate(t *testing.T) {
	f := newFakeServices(t)
	r := runSvc(t, f, "service", "create", "echo", "--replicas", "3", "--image", "busybox:1.36", "--env", "A=b", "--check", "tcp:8080", "--", "httpd", "-f", "-p", "8080").mustSucceed(t)
	if !strings.Contains(r.stdout, `service "echo" created: 3 copies of container busybox:1.36 (1 CPU, 128MiB)`) {
		t.Errorf("stdout %q", r.stdout)
	}
	var spec api.ServiceSpec
	body := strings.TrimPrefix(f.requests[0], "POST /v1/services ")
	if err := json.Unmarshal([]byte(body), &spec); err != nil {
		t.Fatal(err)
	}
	tm := spec.Template
	if spec.Name != "echo" || spec.Replicas != 3 || spec.AntiAffinity != "auto" || tm.Name != "" || tm.Kind != api.KindContainer ||
		tm.Image != "busybox:1.36" || strings.Join(tm.Command, " ") != "httpd -f -p 8080" || tm.Env["A"] != "b" || tm.Check == nil || tm.AntiAffinity != "" || tm.Memory != 128*api.MiB {
		t.Errorf("sent %s", body)
	}

	r = runSvc(t, f, "service", "create", "app", "--vm", "-r", "2", "--memory", "1GiB", "--anti-affinity", "none", "--disk", "/srv/app.qcow2:qcow2:ro").mustSucceed(t)
	body = strings.TrimPrefix(f.requests[1], "POST /v1/services ")
	spec = api.ServiceSpec{}
	if err := json.Unmarshal([]byte(body), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.Template.Kind != api.KindVM || spec.AntiAffinity != "none" || spec.Template.Memory != api.GiB || spec.Template.VM == nil || !spec.Template.VM.Disks[0].ReadOnly {
		t.Errorf("sent %s", body)
	}

	runSvc(t, f, "service", "create", "lb", "-r", "2", "--image", "busybox:1.36", "--vip", "192.0.2.80", "--publish", "80:8080", "-p", "53:5353/udp").mustSucceed(t)
	spec = api.ServiceSpec{}
	if err := json.Unmarshal([]byte(strings.TrimPrefix(f.requests[2], "POST /v1/services ")), &spec); err != nil {
		t.Fatal(err)
	}
	if spec.VIP != "192.0.2.80" || len(spec.Ports) != 2 || spec.Ports[0] != (api.ServicePort{Port: 80, TargetPort: 8080, Proto: "tcp"}) || spec.Ports[1] != (api.ServicePort{Port: 53, TargetPort: 5353, Proto: "udp"}) {
		t.Errorf("sent vip %q ports %+v", spec.VIP, spec.Ports)
	}

	r = runSvc(t, f, "service", "create", "app", "--vm", "-r", "2")
	if r.err == nil || !strings.Contains(r.err.Error(), `a service named "app" already exists`) {
		t.Errorf("conflict: %v", r.err)
	}
}

func TestServiceListShowScaleDelete(t *testing.T) {
	fixClock(t)
	f := newFakeServices(t)
	f.svcs["web"] = api.ServiceView{
		Service: api.Service{Schema: 1, CreatedAt: testTime, ServiceSpec: api.ServiceSpec{Name: "web", Replicas: 3, AntiAffinity: "auto",
			Template: api.WorkloadSpec{Kind: api.KindVM, CPUs: 2, Memory: 512 * api.MiB}}},
		Running: 2,
		Members: []string{"web-1", "web-2", "web-3"},
		Instances: []api.ServiceMember{{Name: "web-1", State: api.StateRunning, Host: "node-a"}, {Name: "web-2", State: api.StateRunning, Host: "node-b"},
			{Name: "web-3", State: api.StatePending}},
	}
	r := runSvc(t, f, "service", "list").mustSucceed(t)
	wantLines(t, r.stdout,
		"NAME REPLICAS RUNNING KIND SPREAD STATE MEMBERS",
		"web 3 2 vm auto active web-1,web-2,web-3")
	r = runSvc(t, f, "service", "show", "web").mustSucceed(t)
	wantContains(t, "show", r.stdout, "Replicas: 3", "Running: 2", "Each copy: vm (2 CPUs, 512MiB)", "web-1 running node-a", "web-3 pending -")
	r = runSvc(t, f, "service", "show", "nope")
	if r.err == nil || !strings.Contains(r.err.Error(), `service "nope" not found (list them with: bulwarkctl service list)`) {
		t.Errorf("show nope: %v", r.err)
	}
	r = runSvc(t, f, "service", "scale", "web", "5").mustSucceed(t)
	if !strings.Contains(r.stdout, `service "web" scaled to 5`) || f.requests[len(f.requests)-1] != `PUT /v1/services/web/scale {"replicas":5}` {
		t.Errorf("scale: %q %v", r.stdout, f.requests)
	}
	r = runSvc(t, f, "service", "delete", "web", "--wait").mustSucceed(t)
	if !strings.Contains(r.stdout, `service "web" deleted`) {
		t.Errorf("delete: %q", r.stdout)
	}
	r = runSvc(t, f, "service", "list").mustSucceed(t)
	if !strings.Contains(r.stderr, "no services yet") {
		t.Errorf("empty list: %q", r.stderr)
	}
	for _, args := range [][]string{{"service", "--help"}, {"service", "create", "--help"}, {"service", "create", "web", "-h"}, {"service", "scale", "--help"}} {
		r := runSvc(t, f, args...).mustSucceed(t)
		if !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%v: no examples in\n%s", args, r.stdout)
		}
	}
}

func TestServiceCreateFromVMTemplate(t *testing.T) {
	f := newFakeServices(t)
	runSvc(t, f, "service", "create", "app", "--replicas", "3", "--vm-template", "base", "--spread-by", "rack").mustSucceed(t)
	var spec api.ServiceSpec
	if err := json.Unmarshal([]byte(strings.TrimPrefix(f.requests[len(f.requests)-1], "POST /v1/services ")), &spec); err != nil {
		t.Fatal(err)
	}
	tm := spec.Template
	if spec.Replicas != 3 || tm.Kind != api.KindVM || tm.CPUs != 2 || tm.Memory != api.GiB || tm.VM == nil || tm.VM.Kernel != "/srv/vmlinuz" ||
		tm.Name != "" || tm.AntiAffinity != "" || len(tm.VIPs) != 0 || tm.Labels["tier"] != "app" || tm.SpreadBy != "rack" {
		t.Errorf("sent %+v", spec)
	}
	for _, c := range []struct {
		args []string
		want string
		sent bool
	}{
		{[]string{"app", "--replicas", "3", "--vm-template", "base", "--cpus", "4"}, "--cpus cannot go with --vm-template", false},
		{[]string{"app", "--replicas", "3", "--vm-template", "base", "--vm"}, "--vm cannot go with --vm-template", false},
		{[]string{"app", "--vm-template", "base"}, "--replicas is missing", false},
		{[]string{"app", "--replicas", "3", "--vm-template", "Bad_Name"}, "--vm-template", false},
		{[]string{"app", "--replicas", "3", "--vm-template", "ctr"}, "not a VM", true},
		{[]string{"app", "--replicas", "3", "--vm-template", "nope"}, "not found", true},
	} {
		f := newFakeServices(t)
		r := runSvc(t, f, append([]string{"service", "create"}, c.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, r.err, c.want)
		}
		for _, req := range f.requests {
			if strings.HasPrefix(req, "POST") || !c.sent {
				t.Errorf("%v: sent %s", c.args, req)
			}
		}
	}
}
