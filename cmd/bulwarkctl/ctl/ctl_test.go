package ctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

func init() { pollInterval = 5 * time.Millisecond }

var (
	nodeA = api.NodeView{
		Node:  api.Node{Schema: 1, Name: "node-a", CPUs: 16, Memory: 16 * api.GiB, Driver: "libvirt", RegisteredAt: testTime},
		State: api.NodeReady, Fencing: "ok", CPUsUsed: 3, MemoryUsed: 1536 * api.MiB, Workloads: 2,
	}
	nodeB = api.NodeView{
		Node:  api.Node{Schema: 1, Name: "node-b", CPUs: 8, Memory: 32 * api.GiB},
		State: api.NodeDown,
	}
	web1 = api.WorkloadView{
		Workload: api.Workload{Schema: 1, CreatedAt: testTime, WorkloadSpec: api.WorkloadSpec{
			Name: "web-1", Kind: api.KindVM, CPUs: 2, Memory: api.GiB, Labels: map[string]string{"tier": "front"}, Priority: 10,
		}},
		State: api.StateRunning, Host: "node-a", Epoch: 42,
	}
	db1 = api.WorkloadView{
		Workload: api.Workload{Schema: 1, CreatedAt: testTime, WorkloadSpec: api.WorkloadSpec{
			Name: "db-1", Kind: api.KindVM, CPUs: 8, Memory: 64 * api.GiB,
		}},
		State:  api.StatePending,
		Reason: "no ready node has 8 free CPUs and 64GiB of free memory; the largest free is 13 CPUs and 14.5GiB on node-a",
	}
)

// lines splits output into lines with runs of spaces collapsed.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return out
}

func TestNodeList(t *testing.T) {
	f := newFakeAPI(t)
	f.addNode(nodeB)
	f.addNode(nodeA)

	t.Run("table", func(t *testing.T) {
		r := runCLI(t, f, "", "node", "list").mustSucceed(t)
		want := []string{
			"NAME STATE FENCING CPU MEMORY WORKLOADS",
			"node-a ready ok 3/16 1.5GiB/16GiB 2",
			"node-b down - 0/8 0B/32GiB 0",
		}
		if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	for _, args := range [][]string{
		{"-o", "json", "node", "list"},
		{"node", "list", "-o", "json"},
		{"node", "ls", "--output=json"},
	} {
		t.Run("json "+strings.Join(args, " "), func(t *testing.T) {
			r := runCLI(t, f, "", args...).mustSucceed(t)
			var got []api.NodeView
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not a JSON array of nodes: %v\n%s", err, r.stdout)
			}
			if !reflect.DeepEqual(got, []api.NodeView{nodeA, nodeB}) {
				t.Errorf("got %+v", got)
			}
			var raw []map[string]any
			_ = json.Unmarshal([]byte(r.stdout), &raw)
			if raw[0]["name"] != "node-a" || raw[0]["state"] != "ready" {
				t.Errorf("json lacks name/state: %v", raw[0])
			}
			if !strings.Contains(r.stdout, "\n  ") {
				t.Errorf("json is not indented:\n%s", r.stdout)
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		empty := newFakeAPI(t)
		r := runCLI(t, empty, "", "node", "list").mustSucceed(t)
		if r.stdout != "" || !strings.Contains(r.stderr, "no nodes") {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
		r = runCLI(t, empty, "", "-o", "json", "node", "list").mustSucceed(t)
		if strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("empty json list is %q, want []", r.stdout)
		}
	})
}

func TestNodeShow(t *testing.T) {
	f := newFakeAPI(t)
	f.addNode(nodeA)
	r := runCLI(t, f, "", "node", "show", "node-a").mustSucceed(t)
	for _, want := range []string{"Name: node-a", "State: ready", "CPU: 3/16 used", "Memory: 1.5GiB/16GiB used", "Driver: libvirt"} {
		if !strings.Contains(strings.Join(lines(r.stdout), "\n"), want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = runCLI(t, f, "", "node", "show", "node-z")
	if r.err == nil || !strings.Contains(r.err.Error(), `node "node-z" not found`) {
		t.Errorf("error %v", r.err)
	}
}

func TestVMCreate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want api.WorkloadSpec
	}{
		{"defaults", []string{"vm", "create", "web-1"},
			api.WorkloadSpec{Name: "web-1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}},
		{"flags after name", []string{"vm", "create", "db-1", "--cpus", "4", "--memory", "8GiB", "--label", "tier=db", "-l", "zone=a", "--priority", "500"},
			api.WorkloadSpec{Name: "db-1", Kind: api.KindVM, CPUs: 4, Memory: 8 * api.GiB, Labels: map[string]string{"tier": "db", "zone": "a"}, Priority: 500}},
		{"flags before name", []string{"vm", "create", "--cpus=2", "-m", "1.5GiB", "web-2"},
			api.WorkloadSpec{Name: "web-2", Kind: api.KindVM, CPUs: 2, Memory: 1536 * api.MiB}},
		{"flags on both sides", []string{"vm", "create", "--label", "a=1", "web-3", "--label", "b=2", "--memory=2G"},
			api.WorkloadSpec{Name: "web-3", Kind: api.KindVM, CPUs: 1, Memory: 2 * api.GiB, Labels: map[string]string{"a": "1", "b": "2"}}},
		{"placement flags after name", []string{"vm", "create", "pg-1", "--require", "rack in (r1,r2)", "--require", "zone=eu-1", "--prefer", "disk=ssd:50", "--prefer", "gpu=none", "--anti-affinity", "pg", "--spread-by", "rack"},
			api.WorkloadSpec{Name: "pg-1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB,
				Require: []string{"rack in (r1,r2)", "zone=eu-1"}, Prefer: []string{"disk=ssd:50", "gpu=none"}, AntiAffinity: "pg", SpreadBy: "rack"}},
		{"placement flags before name", []string{"vm", "create", "--require=rack notin (r9,r10)", "--require", "gpu!=none", "--prefer=disk=ssd", "--anti-affinity=pg", "--spread-by=topology.io/rack", "pg-2"},
			api.WorkloadSpec{Name: "pg-2", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB,
				Require: []string{"rack notin (r9,r10)", "gpu!=none"}, Prefer: []string{"disk=ssd"}, AntiAffinity: "pg", SpreadBy: "topology.io/rack"}},
		{"anti-affinity alone", []string{"vm", "create", "web-4", "--anti-affinity", "web"},
			api.WorkloadSpec{Name: "web-4", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, AntiAffinity: "web"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, "", tt.args...).mustSucceed(t)
			specs := f.createdSpecs()
			if len(specs) != 1 || !reflect.DeepEqual(specs[0], tt.want) {
				t.Fatalf("server got %+v, want %+v", specs, tt.want)
			}
			out := strings.Join(lines(r.stdout), "\n")
			for _, want := range []string{`vm "` + tt.want.Name + `" created`, "Name: " + tt.want.Name, "Kind: vm", "State: pending", "Memory: " + tt.want.Memory.String()} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}

	t.Run("json output", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "vm", "create", "web-1", "--memory", "1GiB", "-o", "json").mustSucceed(t)
		var got api.WorkloadView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not one JSON workload: %v\n%s", err, r.stdout)
		}
		if got.Name != "web-1" || got.Kind != api.KindVM || got.Memory != api.GiB || got.State != api.StatePending {
			t.Errorf("got %+v", got)
		}
	})
}

// TestBadInputSendsNothing checks that every invalid input gives a clear
// error and that the server sees no request at all.
func TestBadInputSendsNothing(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	yamlUnknown := write("unknown.yaml", "name: web-1\nkind: vm\ncpus: 1\nmemory: 256MiB\ncpu_pinning: true\n")
	jsonUnknown := write("unknown.json", `{"name": "web-1", "kind": "vm", "cpus": 1, "memory": "256MiB", "disk": "10GiB"}`)
	malformed := write("bad.yaml", "name: web-1\nkind: vm\n  cpus: 2\nmemory: [\n")
	malformedJSON := write("bad.json", `{"name": "web-1", "kind": "vm",`)
	syntaxJSON := write("syntax.json", "{\"name\": \"web-1\",\n \"kind\": vm}")
	wrongType := write("type.yaml", "name: web-1\nkind: vm\ncpus: two\nmemory: 1GiB\n")
	invalid := write("invalid.yaml", "name: Web_1\nkind: vm\ncpus: 0\nmemory: 10MiB\n")
	noImage := write("noimage.yaml", "name: app\nkind: container\ncpus: 1\nmemory: 128MiB\n")
	empty := write("empty.yaml", "# nothing here\n")
	twoDocs := write("two.yaml", "name: a\nkind: vm\ncpus: 1\nmemory: 1GiB\n---\nname: b\nkind: vm\ncpus: 1\nmemory: 1GiB\n")
	list := write("list.yaml", "- name: a\n")
	trailing := write("trailing.json", `{"name": "a", "kind": "vm", "cpus": 1, "memory": "1GiB"} {"name": "b"}`)
	dupKey := write("dup.yaml", "name: a\nkind: vm\ncpus: 1\ncpus: 2\nmemory: 1GiB\n")
	badPlacement := write("placement.yaml", "name: a\nkind: vm\ncpus: 1\nmemory: 1GiB\nrequire: [\"rack in r1\"]\nprefer: [\"ssd=true:0\"]\nanti_affinity: Web_Group\n")
	placementNotList := write("require.yaml", "name: a\nkind: vm\ncpus: 1\nmemory: 1GiB\nrequire: rack=r1\n")
	long := strings.Repeat("a", 64)

	tests := []struct {
		name  string
		stdin string
		args  []string
		want  []string // substrings of the error
	}{
		{"name with capital and underscore", "", []string{"vm", "create", "Web_1"}, []string{`workload name "Web_1" is not a DNS label`, "nothing was sent"}},
		{"64-char name", "", []string{"vm", "create", long}, []string{"is 64 characters long; at most 63"}},
		{"cpus 0", "", []string{"vm", "create", "web-1", "--cpus", "0"}, []string{"cpus must be a whole number from 1 to 4096, got 0"}},
		{"cpus not a number", "", []string{"vm", "create", "web-1", "--cpus", "two"}, []string{`invalid value "two" for flag --cpus`, "bulwarkctl vm create --help"}},
		{"memory too small", "", []string{"vm", "create", "web-1", "--memory", "10MiB"}, []string{"memory must be at least 64MiB, got 10MiB"}},
		{"memory not a size", "", []string{"vm", "create", "web-1", "--memory", "lots"}, []string{`--memory: size "lots": must start with a number`}},
		{"memory bad unit", "", []string{"vm", "create", "web-1", "--memory", "2GB!"}, []string{"unknown unit"}},
		{"label without =", "", []string{"vm", "create", "web-1", "--label", "tier"}, []string{`label "tier": expected key=value`}},
		{"label bad key", "", []string{"vm", "create", "web-1", "--label", "ti er=x"}, []string{`label key "ti er"`}},
		{"label given twice", "", []string{"vm", "create", "web-1", "-l", "a=1", "-l", "a=2"}, []string{`label key "a" is given twice`}},
		{"priority 5000", "", []string{"vm", "create", "web-1", "--priority", "5000"}, []string{"priority must be from 0 to 1000, got 5000"}},
		{"several problems at once", "", []string{"vm", "create", "Web_1", "--cpus", "0", "--memory", "lots"}, []string{"Web_1", "cpus must", "--memory", "\n  - "}},
		{"missing name", "", []string{"vm", "create", "--cpus", "2"}, []string{"missing NAME", "bulwarkctl vm create [options] NAME"}},
		{"two names", "", []string{"vm", "create", "a", "b"}, []string{"too many arguments"}},
		{"unknown flag", "", []string{"vm", "create", "web-1", "--gpu", "1"}, []string{"flag provided but not defined: --gpu"}},
		{"flag without value", "", []string{"vm", "create", "web-1", "--memory"}, []string{"flag needs an argument: --memory"}},
		{"apply unknown field yaml", "", []string{"apply", "-f", yamlUnknown}, []string{`unknown field "cpu_pinning"`, "known fields", "nothing was sent"}},
		{"apply unknown field json", "", []string{"apply", "-f", jsonUnknown}, []string{`unknown field "disk"`}},
		{"apply unknown field stdin", "name: a\nkind: vm\ncpus: 1\nmemory: 1GiB\nreplicas: 3\n", []string{"apply", "-f", "-"}, []string{"standard input", `unknown field "replicas"`}},
		{"apply malformed yaml", "", []string{"apply", "-f", malformed}, []string{"invalid YAML", "line 3"}},
		{"apply malformed json", "", []string{"apply", "-f", malformedJSON}, []string{"invalid JSON"}},
		{"apply json syntax error", "", []string{"apply", "-f", syntaxJSON}, []string{"invalid JSON: line 2: invalid character 'v'"}},
		{"apply wrong type", "", []string{"apply", "-f", wrongType}, []string{`field "cpus": expected a whole number, not text`}},
		{"apply invalid spec", "", []string{"apply", "-f", invalid}, []string{"invalid workload spec", "Web_1", "cpus must", "memory must"}},
		{"apply container without image", "", []string{"apply", "-f", noImage}, []string{"a container needs an image"}},
		{"apply empty file", "", []string{"apply", "-f", empty}, []string{"file is empty"}},
		{"apply two documents", "", []string{"apply", "-f", twoDocs}, []string{"several YAML documents"}},
		{"apply a list", "", []string{"apply", "-f", list}, []string{"single workload spec"}},
		{"apply trailing json", "", []string{"apply", "-f", trailing}, []string{"unexpected data after the workload object"}},
		{"apply duplicate key", "", []string{"apply", "-f", dupKey}, []string{"cpus", "already"}},
		{"apply missing file", "", []string{"apply", "-f", filepath.Join(dir, "nope.yaml")}, []string{"cannot read the workload file", "nope.yaml"}},
		{"apply without -f", "", []string{"apply"}, []string{"missing -f FILE"}},
		{"require without operator", "", []string{"vm", "create", "web-1", "--require", "rack"}, []string{`constraint "rack": no operator`, "key=value, key!=value, 'key in (a,b)'", "nothing was sent"}},
		{"require in without parentheses", "", []string{"vm", "create", "web-1", "--require", "rack in r1,r2"}, []string{`constraint "rack in r1,r2": the values must be in parentheses`}},
		{"require empty list value", "", []string{"vm", "create", "--require", "rack notin (r1,)", "web-1"}, []string{"empty value in the list"}},
		{"require two operators", "", []string{"vm", "create", "web-1", "--require", "a==b"}, []string{"more than one operator"}},
		{"require bad key", "", []string{"vm", "create", "web-1", "--require", "ra ck=r1"}, []string{`label key "ra ck" is not valid`}},
		{"require bad value", "", []string{"vm", "create", "web-1", "--require", "rack in (r1,r 2)"}, []string{`value "r 2" is not a valid label value`}},
		{"prefer weight 0", "", []string{"vm", "create", "web-1", "--prefer", "disk=ssd:0"}, []string{`preference "disk=ssd:0": weight must be a whole number from 1 to 100`}},
		{"prefer weight 101", "", []string{"vm", "create", "web-1", "--prefer", "disk=ssd:101"}, []string{"weight must be a whole number from 1 to 100"}},
		{"prefer weight not a number", "", []string{"vm", "create", "web-1", "--prefer", "disk=ssd:high"}, []string{`preference "disk=ssd:high": weight must be`}},
		{"prefer without =", "", []string{"vm", "create", "web-1", "--prefer", "ssd"}, []string{`preference "ssd": use key=value or key=value:weight`}},
		{"prefer empty value", "", []string{"vm", "create", "web-1", "--prefer", "disk=:5"}, []string{"not a valid label key=value"}},
		{"anti-affinity not a DNS label", "", []string{"vm", "create", "web-1", "--anti-affinity", "Web_Group"}, []string{`anti-affinity group name "Web_Group" is not a DNS label`}},
		{"anti-affinity too long", "", []string{"vm", "create", "web-1", "--anti-affinity", long}, []string{"anti-affinity group name", "at most 63"}},
		{"spread-by without anti-affinity", "", []string{"vm", "create", "web-1", "--spread-by", "rack"}, []string{"spread-by spreads the members of an anti-affinity group: set anti-affinity too"}},
		{"spread-by bad key", "", []string{"vm", "create", "web-1", "--anti-affinity", "g", "--spread-by", "ra ck"}, []string{`spread-by "ra ck" is not a valid label key`}},
		{"several placement problems", "", []string{"vm", "create", "web-1", "--require", "rack", "--prefer", "a=b:0", "--anti-affinity", "X"}, []string{"no operator", "weight must", "not a DNS label", "\n  - "}},
		{"apply bad placement", "", []string{"apply", "-f", badPlacement}, []string{"invalid workload spec", "values must be in parentheses", "weight must be", `"Web_Group" is not a DNS label`}},
		{"apply require not a list", "", []string{"apply", "-f", placementNotList}, []string{`field "require": expected a list, not text`}},
		{"explain bad name", "", []string{"explain", "Web_1"}, []string{"not a DNS label"}},
		{"explain without name", "", []string{"explain"}, []string{"missing NAME", "bulwarkctl explain [options] NAME"}},
		{"explain two names", "", []string{"explain", "a", "b"}, []string{"too many arguments"}},
		{"settings set nothing", "", []string{"settings", "set"}, []string{"nothing to change", "--strategy", "bulwarkctl settings set --help"}},
		{"settings set unknown strategy", "", []string{"settings", "set", "--strategy", "roundrobin"}, []string{`strategy "roundrobin" is unknown: use binpack or spread`, "nothing was sent"}},
		{"settings set tolerate 17", "", []string{"settings", "set", "--tolerate-host-failures", "17"}, []string{"tolerate_host_failures must be from 0 to 16, got 17"}},
		{"settings set tolerate negative", "", []string{"settings", "set", "--tolerate-host-failures=-1"}, []string{"tolerate_host_failures must be from 0 to 16, got -1"}},
		{"settings set reserved cpus", "", []string{"settings", "set", "--reserved-cpus", "5000"}, []string{"reserved_cpus must be from 0 to 4096, got 5000"}},
		{"settings set reserved memory not a size", "", []string{"settings", "set", "--reserved-memory", "lots"}, []string{`--reserved-memory: size "lots": must start with a number`}},
		{"settings set reserved memory too large", "", []string{"settings", "set", "--reserved-memory", "65TiB"}, []string{"reserved_memory must be from 0 to 64TiB, got 65TiB"}},
		{"settings set several problems", "", []string{"settings", "set", "--strategy", "x", "--reserved-cpus", "-1"}, []string{"invalid settings (nothing was sent to the server):", "strategy \"x\"", "reserved_cpus"}},
		{"settings set bool with space", "", []string{"settings", "set", "--preemption", "false"}, []string{`unexpected argument "false"`, "--preemption=false"}},
		{"settings set int not a number", "", []string{"settings", "set", "--reserved-cpus", "two"}, []string{`invalid value "two" for flag`, "reserved-cpus", "bulwarkctl settings set --help"}},
		{"settings set argument", "", []string{"settings", "set", "spread"}, []string{"unexpected arguments"}},
		{"settings show argument", "", []string{"settings", "show", "all"}, []string{"unexpected arguments"}},
		{"settings unknown subcommand", "", []string{"settings", "edit"}, []string{`unknown command "edit" for 'bulwarkctl settings'`}},
		{"show bad name", "", []string{"workload", "show", "Web_1"}, []string{"not a DNS label"}},
		{"delete bad name", "", []string{"workload", "delete", "x_"}, []string{"not a DNS label"}},
		{"delete wait bad timeout", "", []string{"workload", "delete", "web-1", "--wait", "--timeout", "0s"}, []string{"--timeout must be positive"}},
		{"node show without name", "", []string{"node", "show"}, []string{"missing NAME"}},
		{"list with argument", "", []string{"workload", "list", "web-1"}, []string{"unexpected arguments"}},
		{"bad -o before command", "", []string{"-o", "xml", "node", "list"}, []string{`invalid output format "xml": use -o table, -o json or -o yaml`}},
		{"bad -o after command", "", []string{"node", "list", "-o", "wide"}, []string{`invalid output format "wide"`}},
		{"bad -o on create", "", []string{"vm", "create", "web-1", "--output", "xml"}, []string{`invalid output format "xml"`}},
		{"unknown command", "", []string{"nodez", "list"}, []string{`unknown command "nodez"`, `did you mean "node"`}},
		{"unknown subcommand", "", []string{"workload", "remove", "web-1"}, []string{`unknown command "remove" for 'bulwarkctl workload'`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, tt.stdin, tt.args...)
			if r.err == nil {
				t.Fatalf("no error; stdout:\n%s", r.stdout)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, r.err)
				}
			}
			if reqs := f.requestLog(); len(reqs) != 0 {
				t.Errorf("requests were sent: %v", reqs)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty on error:\n%s", r.stdout)
			}
		})
	}
}

func TestConflict(t *testing.T) {
	f := newFakeAPI(t)
	f.addWorkload(web1)
	r := runCLI(t, f, "", "vm", "create", "web-1")
	if r.err == nil {
		t.Fatal("duplicate name accepted")
	}
	for _, want := range []string{`a workload named "web-1" already exists`, "bulwarkctl workload delete web-1"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, r.err)
		}
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	yamlSpec := "# a web server\nname: web-1\nkind: vm\ncpus: 2\nmemory: 1GiB\npriority: 10\nlabels:\n  tier: front\n"
	file := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(file, []byte(yamlSpec), 0o600); err != nil {
		t.Fatal(err)
	}
	want := web1.WorkloadSpec

	t.Run("create from yaml file", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "apply", "-f", file).mustSucceed(t)
		if specs := f.createdSpecs(); len(specs) != 1 || !reflect.DeepEqual(specs[0], want) {
			t.Errorf("server got %+v, want %+v", specs, want)
		}
		if !strings.Contains(r.stdout, `vm "web-1" created`) {
			t.Errorf("stdout:\n%s", r.stdout)
		}
	})
	t.Run("create from json on stdin", func(t *testing.T) {
		f := newFakeAPI(t)
		in := `{"name": "app-1", "kind": "container", "cpus": 1, "memory": 134217728, "image": "nginx:1.27", "command": ["nginx", "-g", "daemon off;"], "env": {"A": "1"}}`
		r := runCLI(t, f, in, "apply", "-f", "-", "-o", "json").mustSucceed(t)
		var got api.WorkloadView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if got.Name != "app-1" || got.Kind != api.KindContainer || got.Memory != 128*api.MiB || got.Image != "nginx:1.27" {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("identical existing spec is unchanged", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		r := runCLI(t, f, "", "apply", "-f", file).mustSucceed(t)
		if strings.TrimSpace(r.stdout) != `vm "web-1" unchanged` {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("different existing spec is refused", func(t *testing.T) {
		f := newFakeAPI(t)
		old := web1
		old.CPUs, old.Labels = 4, nil
		f.addWorkload(old)
		r := runCLI(t, f, "", "apply", "-f", file)
		if r.err == nil {
			t.Fatal("changed spec accepted")
		}
		for _, w := range []string{`workload "web-1" already exists with a different cpus, labels`, "not supported yet", "workload delete web-1 --wait"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, r.err)
			}
		}
	})
	t.Run("placement fields", func(t *testing.T) {
		f := newFakeAPI(t)
		in := "name: pg-1\nkind: vm\ncpus: 1\nmemory: 1GiB\nrequire:\n  - rack in (r1,r2)\n  - gpu!=none\nprefer:\n  - disk=ssd:50\nanti_affinity: pg\nspread_by: rack\n"
		runCLI(t, f, in, "apply", "-f", "-").mustSucceed(t)
		want := api.WorkloadSpec{Name: "pg-1", Kind: api.KindVM, CPUs: 1, Memory: api.GiB,
			Require: []string{"rack in (r1,r2)", "gpu!=none"}, Prefer: []string{"disk=ssd:50"}, AntiAffinity: "pg", SpreadBy: "rack"}
		if specs := f.createdSpecs(); len(specs) != 1 || !reflect.DeepEqual(specs[0], want) {
			t.Errorf("server got %+v, want %+v", specs, want)
		}
		r := runCLI(t, f, in, "apply", "-f", "-").mustSucceed(t)
		if !strings.Contains(r.stdout, "unchanged") {
			t.Errorf("second apply: %q", r.stdout)
		}
		r = runCLI(t, f, strings.Replace(in, "disk=ssd:50", "disk=ssd:60", 1), "apply", "-f", "-")
		if r.err == nil || !strings.Contains(r.err.Error(), "with a different prefer;") {
			t.Errorf("changed preference: %v", r.err)
		}
	})
	t.Run("existing workload being deleted", func(t *testing.T) {
		f := newFakeAPI(t)
		f.goneAfter = -1
		old := web1
		old.Deleting, old.State = true, api.StateStopping
		f.addWorkload(old)
		r := runCLI(t, f, "", "apply", "-f", file)
		if r.err == nil || !strings.Contains(r.err.Error(), "is being deleted") {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestWorkloadList(t *testing.T) {
	f := newFakeAPI(t)
	f.addWorkload(web1)
	f.addWorkload(db1)
	r := runCLI(t, f, "", "workload", "list").mustSucceed(t)
	got := lines(r.stdout)
	want := []string{
		"NAME KIND STATE HOST CPUS MEMORY PRIORITY REASON",
		"db-1 vm pending - 8 64GiB 0 no ready node has 8 free CPUs and 64GiB of free...",
		"web-1 vm running node-a 2 1GiB 10 -",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r = runCLI(t, f, "", "wl", "ls", "-o", "json").mustSucceed(t)
	var list []api.WorkloadView
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 2 || list[0].Name != "db-1" {
		t.Errorf("json list: %v %+v", err, list)
	}
}

func TestWorkloadShow(t *testing.T) {
	f := newFakeAPI(t)
	f.addWorkload(web1)
	f.addWorkload(db1)

	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "", "workload", "show", "web-1", "-o", "json").mustSucceed(t)
		var got map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		for k, v := range map[string]any{"name": "web-1", "kind": "vm", "state": "running", "host": "node-a", "memory": "1GiB"} {
			if got[k] != v {
				t.Errorf("%s = %v, want %v", k, got[k], v)
			}
		}
	})
	t.Run("table shows the full reason", func(t *testing.T) {
		r := runCLI(t, f, "", "workload", "show", "db-1").mustSucceed(t)
		out := strings.Join(lines(r.stdout), "\n")
		for _, w := range []string{"Name: db-1", "Kind: vm", "State: pending", "Host: -", "CPUs: 8", "Memory: 64GiB", "Reason: " + db1.Reason, "Created: 2025-06-01T12:00:00Z"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, r.stdout)
			}
		}
	})
	t.Run("placement rows only when set", func(t *testing.T) {
		r := runCLI(t, f, "", "workload", "show", "web-1").mustSucceed(t)
		for _, w := range []string{"Require:", "Prefer:", "Anti-affinity:", "Spread-by:"} {
			if strings.Contains(r.stdout, w) {
				t.Errorf("output has %q for a workload without placement rules:\n%s", w, r.stdout)
			}
		}
		pg := db1
		pg.Name = "pg-1"
		pg.Require = []string{"rack in (r1,r2)", "zone=eu-1"}
		pg.Prefer = []string{"disk=ssd:50"}
		pg.AntiAffinity, pg.SpreadBy = "pg", "rack"
		pg.Reason = "no host meets rack in (r1,r2)"
		f.addWorkload(pg)
		r = runCLI(t, f, "", "workload", "show", "pg-1").mustSucceed(t)
		want := []string{
			"Labels: -",
			"Require: rack in (r1,r2); zone=eu-1",
			"Prefer: disk=ssd:50",
			"Anti-affinity: pg",
			"Spread-by: rack",
		}
		got := lines(r.stdout)
		i := 0
		for ; i < len(got) && got[i] != want[0]; i++ {
		}
		if i+len(want) > len(got) || !reflect.DeepEqual(got[i:i+len(want)], want) {
			t.Errorf("got\n%s\nwant after Labels\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(r.stdout, "Reason:") || !strings.Contains(strings.Join(got, "\n"), "State: pending") {
			t.Errorf("pending reason missing:\n%s", r.stdout)
		}
	})
	t.Run("not found", func(t *testing.T) {
		r := runCLI(t, f, "", "workload", "show", "nope")
		if r.err == nil || !strings.Contains(r.err.Error(), `workload "nope" not found (list them with: bulwarkctl workload list)`) {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestWorkloadDelete(t *testing.T) {
	t.Run("no wait", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		r := runCLI(t, f, "", "workload", "delete", "web-1").mustSucceed(t)
		if !strings.Contains(r.stdout, `workload "web-1" is stopping`) {
			t.Errorf("stdout %q", r.stdout)
		}
		if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"DELETE /v1/workloads/web-1"}) {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("wait until gone", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		r := runCLI(t, f, "", "workload", "rm", "web-1", "--wait").mustSucceed(t)
		if !strings.Contains(r.stdout, `workload "web-1" deleted`) || !strings.Contains(r.stderr, "waiting up to 1m0s") {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
		reqs := f.requestLog()
		if len(reqs) != 4 || reqs[0] != "DELETE /v1/workloads/web-1" || reqs[3] != "GET /v1/workloads/web-1" {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("wait times out", func(t *testing.T) {
		f := newFakeAPI(t)
		f.goneAfter = -1
		f.addWorkload(web1)
		r := runCLI(t, f, "", "workload", "delete", "web-1", "--wait", "--timeout", "50ms")
		if r.err == nil || !strings.Contains(r.err.Error(), `workload "web-1" still exists after 50ms (state stopping)`) {
			t.Errorf("error %v", r.err)
		}
	})
	t.Run("json", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		r := runCLI(t, f, "", "-o", "json", "workload", "delete", "web-1").mustSucceed(t)
		var got api.WorkloadView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.State != api.StateStopping {
			t.Errorf("%v %+v", err, got)
		}
	})
	t.Run("missing", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "workload", "delete", "nope")
		if r.err == nil || !strings.Contains(r.err.Error(), `workload "nope" not found`) {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestServerErrors(t *testing.T) {
	t.Run("unreachable", func(t *testing.T) {
		dead := newFakeAPI(t)
		dead.srv.Close() // nothing listens there any more
		r := runCLI(t, dead, "", "node", "list")
		if r.err == nil {
			t.Fatal("no error")
		}
		for _, w := range []string{"cannot reach the Bulwark API at " + dead.url, "bulwarkd dev", "--api or BULWARK_API"} {
			if !strings.Contains(r.err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, r.err)
			}
		}
	})
	t.Run("server rejects spec", func(t *testing.T) {
		// The CLI validates like the server, so a 400 needs a rule only
		// the server knows; the fake is told to refuse every create.
		f := newFakeAPI(t)
		f.rejectCreate = "workload limit reached"
		r := runCLI(t, f, "", "vm", "create", "web-1")
		if r.err == nil || !strings.Contains(r.err.Error(), "the server rejected the request: workload limit reached (HTTP 400, invalid_argument)") {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestAPIAddress(t *testing.T) {
	f := newFakeAPI(t)
	f.addNode(nodeA)
	t.Run("from BULWARK_API", func(t *testing.T) {
		t.Setenv(EnvAPI, f.url)
		runCLI(t, nil, "", "node", "list").mustSucceed(t)
	})
	t.Run("--api beats BULWARK_API", func(t *testing.T) {
		t.Setenv(EnvAPI, "http://127.0.0.1:1")
		runCLI(t, nil, "", "--api", f.url, "node", "list").mustSucceed(t)
		runCLI(t, nil, "", "node", "list", "--api", f.url).mustSucceed(t)
	})
	t.Run("--api after the command beats --api before it", func(t *testing.T) {
		runCLI(t, nil, "", "--api", "http://127.0.0.1:1", "node", "list", "--api", f.url).mustSucceed(t)
	})
	t.Run("without scheme", func(t *testing.T) {
		runCLI(t, nil, "", "--api", strings.TrimPrefix(f.url, "http://"), "node", "list").mustSucceed(t)
	})
}

func TestVersion(t *testing.T) {
	defer func(v, c, d string) { Version, Commit, Date = v, c, d }(Version, Commit, Date)
	Version, Commit, Date = "v1.2.3", "abc1234", "2025-06-01T12:00:00Z"
	r := runCLI(t, nil, "", "--version").mustSucceed(t)
	if want := "bulwarkctl version v1.2.3 (commit abc1234, built 2025-06-01T12:00:00Z)\n"; r.stdout != want {
		t.Errorf("got %q, want %q", r.stdout, want)
	}
}

func TestHelp(t *testing.T) {
	r := runCLI(t, nil, "", "--help").mustSucceed(t)
	for _, w := range []string{"Exit status:", "0  success", "1  any error", "BULWARK_API", "http://127.0.0.1:7370", "node list", "vm create", "workload", "apply", "explain", "settings"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	for _, args := range [][]string{{"vm", "create", "--help"}, {"vm", "create", "web-1", "--help"}, {"apply", "-h"}, {"workload"},
		{"explain", "--help"}, {"explain", "web-1", "-h"}, {"settings"}, {"settings", "show", "--help"}, {"settings", "set", "--help"}, {"settings", "set", "--strategy", "spread", "-h"}} {
		r := runCLI(t, nil, "", args...).mustSucceed(t)
		if !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("%v: no examples in\n%s", args, r.stdout)
		}
	}
}

// TestEveryCommandIsDocumented walks the command tree: every command needs a
// usage line and a description with an example a newcomer can copy.
func TestEveryCommandIsDocumented(t *testing.T) {
	var walk func(prefix string, cmds []*cli.Command)
	walk = func(prefix string, cmds []*cli.Command) {
		for _, c := range cmds {
			name := prefix + " " + c.Name
			if c.Usage == "" {
				t.Errorf("%s: no Usage", name)
			}
			if !strings.Contains(c.Description, "Example") || !strings.Contains(c.Description, name) {
				t.Errorf("%s: Description has no example of %q", name, name)
			}
			walk(name, c.Subcommands)
		}
	}
	walk("bulwarkctl", NewApp(nil, nil).Commands)
}

func TestPermutedFlagsMatchFlagParsing(t *testing.T) {
	// "--" after the name keeps what follows positional.
	f := newFakeAPI(t)
	r := runCLI(t, f, "", "vm", "create", "web-1", "--", "--cpus")
	if r.err == nil || !strings.Contains(r.err.Error(), "too many arguments") {
		t.Errorf("error %v", r.err)
	}
	// A bool flag given as --wait=false after the name.
	f.addWorkload(web1)
	r = runCLI(t, f, "", "workload", "delete", "web-1", "--wait=false").mustSucceed(t)
	if !strings.Contains(r.stdout, "is stopping") {
		t.Errorf("stdout %q", r.stdout)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly-10", 10, "exactly-10"},
		{"this is longer", 10, "this is..."},
		{"multi\nline\ttext", 20, "multi line text"},
		{"ääääääääääää", 5, "ää..."},
	}
	for _, tt := range tests {
		if got := truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// TestApplyVMSection covers a nested section of the spec: it must round-trip
// through apply and take part in the "unchanged" comparison. The vm section
// is new in api; the test is skipped on a tree without it.
func TestApplyVMSection(t *testing.T) {
	if _, ok := reflect.TypeOf(api.WorkloadSpec{}).FieldByName("VM"); !ok {
		t.Skip("api.WorkloadSpec has no VM field")
	}
	spec := "name: vm-1\nkind: vm\ncpus: 1\nmemory: 512MiB\nvm:\n  kernel: /srv/vmlinuz\n  disks:\n    - path: /srv/vm-1.qcow2\n      format: qcow2\n"
	f := newFakeAPI(t)
	runCLI(t, f, spec, "apply", "-f", "-").mustSucceed(t)
	r := runCLI(t, f, spec, "apply", "-f", "-").mustSucceed(t)
	if !strings.Contains(r.stdout, "unchanged") {
		t.Errorf("second apply: %q", r.stdout)
	}
	r = runCLI(t, f, strings.Replace(spec, "vmlinuz", "vmlinuz-6.1", 1), "apply", "-f", "-")
	if r.err == nil || !strings.Contains(r.err.Error(), "with a different vm;") {
		t.Errorf("changed vm section: %v", r.err)
	}
	r = runCLI(t, f, spec+"  kernal: typo\n", "apply", "-f", "-")
	if r.err == nil || !strings.Contains(r.err.Error(), `unknown field "vm.kernal"`) && !strings.Contains(r.err.Error(), `unknown field "kernal"`) {
		t.Errorf("typo in vm section: %v", r.err)
	}
}
