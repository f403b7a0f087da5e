package ctl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Volumes, floating IPs, node tasks, and the --volume, --vip and --publish
// flags of vm create and container run.

var (
	pgData = api.VolumeView{
		Volume: api.Volume{Schema: 1, CreatedAt: testTime, VolumeSpec: api.VolumeSpec{
			Name: "pg-data", Path: "/srv/volumes/pg-data.img", Mode: api.VolumeExclusive,
			LeasePath: "/srv/volumes/pg-data.img.bulwark-lease", Format: "raw"}},
		Holder: &api.Claim{Schema: 1, Resource: "pg-data", Workload: "db-1", Host: "node-a", Epoch: 42, Since: testTime.Add(-5 * time.Minute)},
	}
	isoLib = api.VolumeView{
		Volume: api.Volume{Schema: 1, CreatedAt: testTime, VolumeSpec: api.VolumeSpec{
			Name: "iso-lib", Path: "/srv/images/tools.iso", Mode: api.VolumeSharedRead, Format: "raw"}},
	}
	vip10 = api.VIPView{
		VIP:    api.VIP{Schema: 1, CreatedAt: testTime, VIPSpec: api.VIPSpec{Address: "192.0.2.10/24", Interface: "eth0", Workload: "web-1"}},
		Holder: &api.Claim{Schema: 1, Resource: "192.0.2.10", Workload: "web-1", Host: "node-a", Epoch: 7, Since: testTime.Add(-3 * time.Hour)},
	}
	vip9 = api.VIPView{
		VIP: api.VIP{Schema: 1, CreatedAt: testTime, VIPSpec: api.VIPSpec{Address: "192.0.2.9/24", Network: "public"}},
		// Detached, not yet released by its old host.
		Holder: &api.Claim{Schema: 1, Resource: "192.0.2.9", Workload: "old-1", Host: "node-b", Epoch: 3, Since: testTime.Add(-time.Hour)},
	}
	vip6 = api.VIPView{
		VIP: api.VIP{Schema: 1, CreatedAt: testTime, VIPSpec: api.VIPSpec{Address: "2001:db8::10/64", Interface: "br0", Network: "public"}},
	}
)

// fixClock makes "now" testTime for the ages printed.
func fixClock(t *testing.T) {
	t.Helper()
	old := timeNow
	timeNow = func() time.Time { return testTime }
	t.Cleanup(func() { timeNow = old })
}

func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	if g := lines(got); !reflect.DeepEqual(g, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(want, "\n"))
	}
}

func wantContains(t *testing.T, what, got string, want ...string) {
	t.Helper()
	flat := strings.Join(lines(got), "\n")
	for _, w := range want {
		if !strings.Contains(flat, w) {
			t.Errorf("%s lacks %q:\n%s", what, w, got)
		}
	}
}

// wantSent checks the one request the command sent and its JSON body.
func wantSent(t *testing.T, f *fakeAPI, req, body string) {
	t.Helper()
	wantRequests(t, f, req)
	bodies := f.requestBodies()
	if len(bodies) != 1 {
		return
	}
	if body == "" {
		if bodies[0] != "" {
			t.Errorf("body %q, want none", bodies[0])
		}
		return
	}
	var got, want any
	if err := json.Unmarshal([]byte(bodies[0]), &got); err != nil {
		t.Fatalf("body %q: %v", bodies[0], err)
	}
	if err := json.Unmarshal([]byte(body), &want); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %s, want %s", bodies[0], body)
	}
}

func TestVolumeCreate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		body string
		want []string
	}{
		{"defaults", []string{"volume", "create", "pg-data", "--path", "/srv/volumes/pg-data.img"},
			`{"name":"pg-data","path":"/srv/volumes/pg-data.img"}`,
			[]string{`volume "pg-data" created`, "Name: pg-data", "Path: /srv/volumes/pg-data.img", "Mode: exclusive (one workload at a time",
				"Format: raw", "Lease path: /srv/volumes/pg-data.img.bulwark-lease", "Holder: - (no workload holds it now)",
				"Users: - (no workload attaches it)", "Created: 2025-06-01T12:00:00Z", "bulwarkctl vm create NAME --volume pg-data"}},
		{"flags before the name", []string{"vol", "create", "--path=/srv/volumes/pg.qcow2", "--format", "qcow2", "pg-qcow"},
			`{"name":"pg-qcow","path":"/srv/volumes/pg.qcow2","format":"qcow2"}`,
			[]string{`volume "pg-qcow" created`, "Format: qcow2"}},
		{"block device with lease path", []string{"volume", "create", "san-1", "--path", "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "--lease-path", "/srv/leases/san-1.lease"},
			`{"name":"san-1","path":"/dev/disk/by-id/wwn-0x5000c500a1b2c3d4","lease_path":"/srv/leases/san-1.lease"}`,
			[]string{"Lease path: /srv/leases/san-1.lease"}},
		{"shared-read", []string{"volume", "create", "iso-lib", "--path", "/srv/images/tools.iso", "--mode", "shared-read"},
			`{"name":"iso-lib","path":"/srv/images/tools.iso","mode":"shared-read"}`,
			[]string{"Mode: shared-read (any number of workloads, read-only)", "Lease path: - (shared-read volumes have no lease)",
				"Holder: - (shared-read volumes are not locked)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, "", tt.args...).mustSucceed(t)
			wantSent(t, f, "POST /v1/volumes", tt.body)
			wantContains(t, "stdout", r.stdout, tt.want...)
		})
	}
	t.Run("json", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "volume", "create", "pg-data", "--path", "/srv/volumes/pg-data.img", "-o", "json").mustSucceed(t)
		var got api.VolumeView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not one JSON volume: %v\n%s", err, r.stdout)
		}
		if got.Name != "pg-data" || got.Mode != api.VolumeExclusive || got.LeasePath != "/srv/volumes/pg-data.img.bulwark-lease" {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("name taken", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVolume(pgData)
		r := runCLI(t, f, "", "volume", "create", "pg-2", "--path", "/srv/volumes/pg-data.img")
		wantErr(t, r, "the server refused to create volume pg-2", "path /srv/volumes/pg-data.img is already volume pg-data", "HTTP 409", "bulwarkctl volume list")
	})
}

func TestVIPCreate(t *testing.T) {
	tests := []struct {
		name string
		args []string
		body string
		want []string
	}{
		{"interface", []string{"vip", "create", "192.0.2.10/24", "--interface", "eth0"},
			`{"address":"192.0.2.10/24","interface":"eth0"}`,
			[]string{"floating IP 192.0.2.10/24 created", "Address: 192.0.2.10/24", "Interface: eth0", "Network: -",
				"Workload: - (not attached: no host carries it)", "Holder: - (no host holds it now)",
				"bulwarkctl vip attach 192.0.2.10 WORKLOAD"}},
		{"network and workload", []string{"vips", "create", "--network", "public", "192.0.2.11/24", "--workload", "web-1"},
			`{"address":"192.0.2.11/24","network":"public","workload":"web-1"}`,
			[]string{"floating IP 192.0.2.11/24 created", "Interface: - (each host's own interface to network public)", "Network: public",
				"Workload: web-1", "Holder: - (no host holds it now: web-1 is not running, or its host has not taken the address yet)"}},
		{"ipv6", []string{"vip", "create", "2001:db8::10/64", "--net", "public"},
			`{"address":"2001:db8::10/64","network":"public"}`,
			[]string{"floating IP 2001:db8::10/64 created"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.addWorkload(web1)
			r := runCLI(t, f, "", tt.args...).mustSucceed(t)
			wantSent(t, f, "POST /v1/vips", tt.body)
			wantContains(t, "stdout", r.stdout, tt.want...)
		})
	}
	t.Run("json", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "vip", "create", "192.0.2.10/24", "--interface", "eth0", "-o", "json").mustSucceed(t)
		var got api.VIPView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Address != "192.0.2.10/24" || got.Interface != "eth0" {
			t.Errorf("%v %+v\n%s", err, got, r.stdout)
		}
	})
	t.Run("unknown workload", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "vip", "create", "192.0.2.10/24", "--interface", "eth0", "--workload", "nope")
		wantErr(t, r, `workload "nope" not found`, "bulwarkctl workload list")
	})
	t.Run("address taken", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(vip10)
		r := runCLI(t, f, "", "vip", "create", "192.0.2.10/25", "--interface", "eth1")
		wantErr(t, r, "the server refused to create floating IP 192.0.2.10", "already exists (192.0.2.10/24)", "HTTP 409", "bulwarkctl vip list")
	})
}

// TestSharedBadInputSendsNothing checks that invalid input gives a clear
// error and that the server sees no request at all.
func TestSharedBadInputSendsNothing(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"volume without path", []string{"volume", "create", "pg-data"},
			[]string{"invalid volume: a volume needs --path PATH", "e.g. --path /srv/volumes/pg-data.img", "nothing was sent"}},
		{"volume without name", []string{"volume", "create", "--path", "/srv/a.img"}, []string{"missing NAME", "bulwarkctl volume create [options] NAME --path PATH"}},
		{"volume relative path", []string{"volume", "create", "pg-data", "--path", "pg.img"}, []string{`path "pg.img" is not absolute`, "nothing was sent"}},
		{"volume bad mode", []string{"volume", "create", "pg-data", "--path", "/srv/a.img", "--mode", "shared"},
			[]string{`volume mode "shared" is unknown: use exclusive or shared-read`}},
		{"volume empty mode", []string{"volume", "create", "pg-data", "--path", "/srv/a.img", "--mode="}, []string{"--mode is empty"}},
		{"volume bad format", []string{"volume", "create", "pg-data", "--path", "/srv/a.img", "--format", "vmdk"},
			[]string{`volume format "vmdk" is unknown: use raw or qcow2`}},
		{"volume block device without lease path", []string{"volume", "create", "san-1", "--path", "/dev/sdb"},
			[]string{"a block device needs --lease-path"}},
		{"shared-read with lease path", []string{"volume", "create", "iso", "--path", "/srv/a.iso", "--mode", "shared-read", "--lease-path", "/srv/a.lease"},
			[]string{"shared-read volumes have no lease"}},
		{"volume bad name", []string{"volume", "create", "PG_data", "--path", "/srv/a.img"}, []string{"PG_data", "nothing was sent"}},
		{"volume several problems", []string{"volume", "create", "PG", "--format", "vmdk"},
			[]string{"invalid volume (nothing was sent to the server):", "--path PATH", "vmdk"}},
		{"volume show bad name", []string{"volume", "show", "A/B"}, []string{"nothing was sent"}},
		{"volume delete two names", []string{"volume", "delete", "a", "b"}, []string{"too many arguments"}},

		{"vip without prefix", []string{"vip", "create", "192.0.2.10", "--interface", "eth0"},
			[]string{"invalid floating IP", `"192.0.2.10" is not an IP address with a prefix length (like 192.0.2.10/24`}},
		{"vip without interface or network", []string{"vip", "create", "192.0.2.10/24"},
			[]string{"a floating IP needs --interface IFACE or --network NAME", "nothing was sent"}},
		{"vip network address", []string{"vip", "create", "192.0.2.0/24", "--interface", "eth0"}, []string{"network address"}},
		{"vip bad interface", []string{"vip", "create", "192.0.2.10/24", "--interface", "eth0:1"}, []string{"interface:"}},
		{"vip missing address", []string{"vip", "create", "--interface", "eth0"}, []string{"missing ADDR/PREFIX"}},
		{"vip workload as argument", []string{"vip", "create", "192.0.2.10/24", "web-1", "--interface", "eth0"}, []string{"--workload NAME"}},
		{"vip show not an address", []string{"vip", "show", "web-1"}, []string{`"web-1" is not an IP address`, "nothing was sent"}},
		{"vip attach without workload", []string{"vip", "attach", "192.0.2.10"}, []string{"missing WORKLOAD after 192.0.2.10", "bulwarkctl vip attach [options] ADDR WORKLOAD"}},
		{"vip attach bad workload", []string{"vip", "attach", "192.0.2.10", "Web_1"}, []string{"Web_1", "nothing was sent"}},
		{"vip detach nothing", []string{"vip", "detach"}, []string{"missing ADDR"}},

		{"node tasks without host", []string{"node", "tasks"}, []string{"missing HOST"}},

		{"publish malformed", []string{"container", "run", "web-1", "--image", "nginx:1.27", "--vip", "192.0.2.10", "--publish", "192.0.2.10:80"},
			[]string{`invalid container: --publish "192.0.2.10:80": use VIP:PORT:CONTAINERPORT[/tcp|/udp], e.g. 192.0.2.10:80:8080`, "nothing was sent"}},
		{"publish bad port", []string{"container", "run", "web-1", "--image", "nginx:1.27", "--vip", "192.0.2.10", "-p", "192.0.2.10:80:70000"},
			[]string{`--publish "192.0.2.10:80:70000": ports must be from 1 to 65535`}},
		{"publish bad protocol", []string{"container", "run", "web-1", "--image", "nginx:1.27", "--vip", "192.0.2.10", "--publish", "192.0.2.10:53:53/sctp"},
			[]string{`--publish "192.0.2.10:53:53/sctp"`, `protocol "sctp" is unknown: use tcp or udp`}},
		{"publish without its vip", []string{"container", "run", "web-1", "--image", "nginx:1.27", "--publish", "192.0.2.10:80:8080"},
			[]string{"192.0.2.10 is not one of the workload's floating IPs (add --vip 192.0.2.10)"}},
		{"vip not an address", []string{"vm", "create", "web-1", "--vip", "web"}, []string{`vip "web" is not an IP address`}},
		{"volume twice", []string{"vm", "create", "web-1", "--volume", "pg-data", "--volume", "pg-data"}, []string{"volume pg-data is attached twice"}},
		{"volume bad name on vm", []string{"vm", "create", "web-1", "--volume", "PG"}, []string{"PG", "nothing was sent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, "", tt.args...)
			wantErr(t, r, tt.want...)
			wantRequests(t, f)
		})
	}
}

func TestVolumeList(t *testing.T) {
	fixClock(t)
	f := newFakeAPI(t)
	f.addVolume(pgData)
	f.addVolume(isoLib)
	f.addWorkload(api.WorkloadView{Workload: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "db-1", Kind: api.KindVM, CPUs: 1, Memory: api.GiB, Volumes: []string{"pg-data"}}}})
	f.addWorkload(api.WorkloadView{Workload: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "db-2", Kind: api.KindVM, CPUs: 1, Memory: api.GiB, Volumes: []string{"pg-data"}}}})

	r := runCLI(t, f, "", "volume", "list").mustSucceed(t)
	wantRequests(t, f, "GET /v1/volumes")
	wantLines(t, r.stdout,
		"NAME MODE PATH HOLDER EPOCH SINCE USERS",
		"iso-lib shared-read /srv/images/tools.iso - - - -",
		"pg-data exclusive /srv/volumes/pg-data.img db-1@node-a 42 5m db-1,db-2",
	)
	for _, args := range [][]string{{"volume", "list", "-o", "json"}, {"-o", "json", "volumes", "ls"}} {
		r = runCLI(t, f, "", args...).mustSucceed(t)
		var got []api.VolumeView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not a JSON array of volumes: %v\n%s", err, r.stdout)
		}
		if len(got) != 2 || got[0].Name != "iso-lib" || got[1].Holder == nil || got[1].Holder.Epoch != 42 || len(got[1].Users) != 2 {
			t.Errorf("got %+v", got)
		}
	}
	t.Run("empty", func(t *testing.T) {
		empty := newFakeAPI(t)
		r := runCLI(t, empty, "", "volume", "list").mustSucceed(t)
		if r.stdout != "" || !strings.Contains(r.stderr, "no volumes yet; define one with: bulwarkctl volume create NAME --path PATH") {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
		r = runCLI(t, empty, "", "volume", "list", "-o", "json").mustSucceed(t)
		if strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("empty json list is %q, want []", r.stdout)
		}
	})
}

func TestVolumeShow(t *testing.T) {
	fixClock(t)
	f := newFakeAPI(t)
	f.addVolume(pgData)
	f.addWorkload(api.WorkloadView{Workload: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "db-1", Kind: api.KindVM, CPUs: 1, Memory: api.GiB, Volumes: []string{"pg-data"}}}})
	r := runCLI(t, f, "", "volume", "show", "pg-data").mustSucceed(t)
	wantRequests(t, f, "GET /v1/volumes/pg-data")
	wantLines(t, r.stdout,
		"Name: pg-data",
		"Path: /srv/volumes/pg-data.img",
		"Mode: exclusive (one workload at a time, read and write)",
		"Format: raw",
		"Lease path: /srv/volumes/pg-data.img.bulwark-lease",
		"Holder: db-1 on node-a (epoch 42, since 2025-06-01T11:55:00Z, 5m ago)",
		"Users: db-1",
		"Created: 2025-06-01T12:00:00Z",
	)
	r = runCLI(t, f, "", "volume", "get", "pg-data", "-o", "json").mustSucceed(t)
	var got api.VolumeView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.LeasePath != pgData.LeasePath || got.Holder == nil || got.Holder.Workload != "db-1" {
		t.Errorf("%v %+v\n%s", err, got, r.stdout)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(r.stdout), &raw)
	for _, k := range []string{"name", "path", "mode", "lease_path", "format", "holder", "users", "created_at"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("json lacks %q: %s", k, r.stdout)
		}
	}
	r = runCLI(t, f, "", "volume", "show", "nope")
	wantErr(t, r, `volume "nope" not found (list them with: bulwarkctl volume list)`)
}

func TestVolumeDelete(t *testing.T) {
	t.Run("deleted", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVolume(isoLib)
		r := runCLI(t, f, "", "volume", "rm", "iso-lib").mustSucceed(t)
		wantSent(t, f, "DELETE /v1/volumes/iso-lib", "")
		wantContains(t, "stdout", r.stdout, `volume "iso-lib" deleted; its data on storage is left as it is`)
		if f.hasVolume("iso-lib") {
			t.Error("volume still there")
		}
		// -o json prints nothing: there is no record left to print.
		f.addVolume(isoLib)
		r = runCLI(t, f, "", "volume", "delete", "iso-lib", "-o", "json").mustSucceed(t)
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("held", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVolume(pgData)
		r := runCLI(t, f, "", "volume", "delete", "pg-data")
		wantErr(t, r, "the server refused to delete volume pg-data: volume pg-data is held by db-1 on node-a (epoch 42); delete or move that workload first",
			"HTTP 409", "bulwarkctl volume show pg-data")
		if !f.hasVolume("pg-data") {
			t.Error("volume deleted")
		}
	})
	t.Run("attached", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVolume(isoLib)
		f.addWorkload(api.WorkloadView{Workload: api.Workload{WorkloadSpec: api.WorkloadSpec{Name: "tools", Kind: api.KindVM, CPUs: 1, Memory: api.GiB, Volumes: []string{"iso-lib"}}}})
		r := runCLI(t, f, "", "volume", "delete", "iso-lib")
		wantErr(t, r, "volume iso-lib is attached to tools; delete those workloads first")
	})
	t.Run("unknown", func(t *testing.T) {
		f := newFakeAPI(t)
		wantErr(t, runCLI(t, f, "", "volume", "delete", "nope"), `volume "nope" not found (list them with: bulwarkctl volume list)`)
	})
}

func TestVIPList(t *testing.T) {
	f := newFakeAPI(t)
	f.addVIP(vip10)
	f.addVIP(vip9)
	f.addVIP(vip6)
	r := runCLI(t, f, "", "vip", "list").mustSucceed(t)
	wantRequests(t, f, "GET /v1/vips")
	// Sorted by address as numbers: .9 before .10, IPv4 before IPv6.
	wantLines(t, r.stdout,
		"ADDRESS INTERFACE/NETWORK WORKLOAD HOST EPOCH",
		"192.0.2.9/24 network public - node-b (for old-1) 3",
		"192.0.2.10/24 eth0 web-1 node-a 7",
		"2001:db8::10/64 br0 (network public) - - -",
	)
	r = runCLI(t, f, "", "vip", "ls", "-o", "json").mustSucceed(t)
	var got []api.VIPView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 3 || got[0].Address != "192.0.2.9/24" || got[1].Holder.Host != "node-a" {
		t.Errorf("%v %+v\n%s", err, got, r.stdout)
	}
	t.Run("empty", func(t *testing.T) {
		empty := newFakeAPI(t)
		r := runCLI(t, empty, "", "vip", "list").mustSucceed(t)
		if r.stdout != "" || !strings.Contains(r.stderr, "no floating IPs yet") {
			t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
		}
	})
}

func TestVIPShow(t *testing.T) {
	fixClock(t)
	f := newFakeAPI(t)
	f.addVIP(vip10)
	f.addVIP(vip9)
	// With or without the prefix, the address alone goes in the path.
	r := runCLI(t, f, "", "vip", "show", "192.0.2.10/24").mustSucceed(t)
	wantRequests(t, f, "GET /v1/vips/192.0.2.10")
	wantLines(t, r.stdout,
		"Address: 192.0.2.10/24",
		"Interface: eth0",
		"Network: -",
		"Workload: web-1",
		"Holder: web-1 on node-a (epoch 7, since 2025-06-01T09:00:00Z, 3h ago)",
		"Created: 2025-06-01T12:00:00Z",
	)
	r = runCLI(t, f, "", "vip", "show", "192.0.2.9").mustSucceed(t)
	wantContains(t, "stdout", r.stdout, "Workload: - (not attached: no host carries it)",
		"Holder: old-1 on node-b (epoch 3, since 2025-06-01T11:00:00Z, 1h ago); it is released once old-1 has stopped there")
	r = runCLI(t, f, "", "vip", "show", "192.0.2.10", "-o", "json").mustSucceed(t)
	var got api.VIPView
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Address != "192.0.2.10/24" || got.Holder == nil || got.Holder.Epoch != 7 {
		t.Errorf("%v %+v\n%s", err, got, r.stdout)
	}
	wantErr(t, runCLI(t, f, "", "vip", "show", "192.0.2.99"), `vip "192.0.2.99" not found (list them with: bulwarkctl vip list)`)

	// A service's load-balanced address says so, with its pool.
	lb := vip10
	lb.Address, lb.Service = "192.0.2.80/24", "www"
	lb.Pool = &api.Pool{Ports: []api.ServicePort{{Port: 80, TargetPort: 8080, Proto: "tcp"}},
		Backends: []api.Backend{{Workload: "www-1", Host: "node-a", Address: "192.0.2.11"}, {Workload: "www-2", Host: "node-b", Address: "192.0.2.12"}}}
	lb.Workload = "www-1"
	f.addVIP(lb)
	r = runCLI(t, f, "", "vip", "show", "192.0.2.80").mustSucceed(t)
	wantContains(t, "stdout", r.stdout, "Service: www (load-balanced: bulwarkctl service show www)",
		"Pool: ports 80:8080/tcp to www-1@192.0.2.11, www-2@192.0.2.12",
		"Workload: www-1 (the copy of service www whose host holds the address; the cluster chooses it)")
}

func TestVIPAttachDetachDelete(t *testing.T) {
	free := api.VIPView{VIP: api.VIP{Schema: 1, CreatedAt: testTime, VIPSpec: api.VIPSpec{Address: "192.0.2.20/24", Interface: "eth0"}}}
	t.Run("attach", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		f.addVIP(free)
		r := runCLI(t, f, "", "vip", "attach", "192.0.2.20", "web-1").mustSucceed(t)
		wantSent(t, f, "POST /v1/vips/192.0.2.20/attach", `{"workload":"web-1"}`)
		wantContains(t, "stdout", r.stdout, "floating IP 192.0.2.20 now follows web-1: the host that runs web-1 takes it.",
			"Follow it with: bulwarkctl vip show 192.0.2.20")
		if v, _ := f.getVIP("192.0.2.20"); v.Workload != "web-1" {
			t.Errorf("not attached: %+v", v)
		}
	})
	t.Run("attach while the old holder has it", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		f.addVIP(vip9)
		r := runCLI(t, f, "", "vip", "attach", "192.0.2.9/24", "web-1").mustSucceed(t)
		wantRequests(t, f, "POST /v1/vips/192.0.2.9/attach")
		wantContains(t, "stdout", r.stdout, "node-b still holds it for old-1; it moves once old-1 has stopped there or node-b has been fenced.")
	})
	t.Run("attach json", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		f.addVIP(free)
		r := runCLI(t, f, "", "vip", "attach", "192.0.2.20", "web-1", "-o", "json").mustSucceed(t)
		var got api.VIPView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Workload != "web-1" {
			t.Errorf("%v %+v\n%s", err, got, r.stdout)
		}
	})
	t.Run("attach to another", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(db1)
		f.addVIP(vip10)
		r := runCLI(t, f, "", "vip", "attach", "192.0.2.10", "db-1")
		wantErr(t, r, "the server refused to attach floating IP 192.0.2.10: floating IP 192.0.2.10/24 is already attached to web-1 (detach it first: bulwarkctl vip detach 192.0.2.10)", "HTTP 409")
	})
	t.Run("attach to unknown workload", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(free)
		wantErr(t, runCLI(t, f, "", "vip", "attach", "192.0.2.20", "nope"), `workload "nope" not found (list them with: bulwarkctl workload list)`)
	})
	t.Run("attach unknown address", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		wantErr(t, runCLI(t, f, "", "vip", "attach", "192.0.2.99", "web-1"), `vip "192.0.2.99" not found (list them with: bulwarkctl vip list)`)
	})
	t.Run("detach", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(vip10)
		r := runCLI(t, f, "", "vip", "detach", "192.0.2.10").mustSucceed(t)
		wantSent(t, f, "POST /v1/vips/192.0.2.10/detach", "")
		wantContains(t, "stdout", r.stdout, "floating IP 192.0.2.10 follows no workload now.",
			"node-a removes it from its interface and releases it (it held it for web-1); check with: bulwarkctl vip show 192.0.2.10")
		if v, _ := f.getVIP("192.0.2.10"); v.Workload != "" {
			t.Errorf("still attached: %+v", v)
		}
	})
	t.Run("delete", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(free)
		r := runCLI(t, f, "", "vip", "delete", "192.0.2.20/24").mustSucceed(t)
		wantSent(t, f, "DELETE /v1/vips/192.0.2.20", "")
		wantContains(t, "stdout", r.stdout, "floating IP 192.0.2.20 deleted")
		if _, ok := f.getVIP("192.0.2.20"); ok {
			t.Error("still there")
		}
	})
	t.Run("delete attached", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(vip10)
		r := runCLI(t, f, "", "vip", "rm", "192.0.2.10")
		wantErr(t, r, "the server refused to delete floating IP 192.0.2.10: floating IP 192.0.2.10 is attached to web-1; detach it first (bulwarkctl vip detach 192.0.2.10)")
	})
	t.Run("delete held", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(vip9)
		r := runCLI(t, f, "", "vip", "delete", "192.0.2.9")
		wantErr(t, r, "floating IP 192.0.2.9 is still held by old-1 on node-b; wait until it is released", "bulwarkctl vip show 192.0.2.9")
	})
	t.Run("ipv6", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addVIP(vip6)
		runCLI(t, f, "", "vip", "delete", "2001:DB8::10").mustSucceed(t)
		wantRequests(t, f, "DELETE /v1/vips/2001:db8::10")
	})
}

func TestNodeTasks(t *testing.T) {
	f := newFakeAPI(t)
	f.addNode(nodeA)
	f.addNode(nodeB)
	f.setTasks("node-a",
		api.Task{Workload: "web-1", Epoch: 42, State: "running", ID: "0f4c2a3e-1b7d-4d6e-9c1a-2b3c4d5e6f70"},
		api.Task{Workload: "db-1", Epoch: 17, State: "stopped", Detail: "exit status 1:\nout of memory"},
	)
	r := runCLI(t, f, "", "node", "tasks", "node-a").mustSucceed(t)
	wantRequests(t, f, "GET /v1/nodes/node-a/tasks")
	wantLines(t, r.stdout,
		"WORKLOAD EPOCH STATE ID DETAIL",
		"db-1 17 stopped - exit status 1: out of memory",
		"web-1 42 running 0f4c2a3e-1b7d-4d6e-9c1a-2b3c4d5e6f70 -",
	)
	r = runCLI(t, f, "", "node", "ps", "node-a", "-o", "json").mustSucceed(t)
	var got []api.Task
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || len(got) != 2 || got[0].Workload != "db-1" || got[0].Detail != "exit status 1:\nout of memory" {
		t.Errorf("%v %+v\n%s", err, got, r.stdout)
	}

	r = runCLI(t, f, "", "node", "tasks", "node-b").mustSucceed(t)
	if r.stdout != "" || !strings.Contains(r.stderr, "the driver of node-b runs no workloads") {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = runCLI(t, f, "", "node", "tasks", "node-b", "-o", "json").mustSucceed(t)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("empty json list is %q, want []", r.stdout)
	}

	wantErr(t, runCLI(t, f, "", "node", "tasks", "node-z"), `node "node-z" is not registered (list them with: bulwarkctl node list)`)
	f.agentDown = true
	wantErr(t, runCLI(t, f, "", "node", "tasks", "node-a"), "could not ask the agent of node-a what it runs",
		"the agent of node-a did not answer", "HTTP 502", "bulwarkctl node show node-a")
}

func TestWorkloadSharedFlags(t *testing.T) {
	setup := func(t *testing.T) *fakeAPI {
		f := newFakeAPI(t)
		f.addVolume(pgData)
		f.addVolume(isoLib)
		f.addVIP(api.VIPView{VIP: api.VIP{Schema: 1, VIPSpec: api.VIPSpec{Address: "192.0.2.20/24", Interface: "eth0"}}})
		f.addVIP(vip6)
		return f
	}
	tests := []struct {
		name string
		args []string
		want api.WorkloadSpec
		line string
	}{
		{"vm", []string{"vm", "create", "db-3", "--volume", "pg-data", "--volume", "iso-lib", "--vip", "192.0.2.20"},
			api.WorkloadSpec{Name: "db-3", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, Volumes: []string{"pg-data", "iso-lib"}, VIPs: []string{"192.0.2.20"}},
			`vm "db-3" created with volumes pg-data, iso-lib and floating IP 192.0.2.20`},
		{"vm flags before the name, vip with prefix", []string{"vm", "create", "--vip", "192.0.2.20/24", "--volume=pg-data", "db-3"},
			api.WorkloadSpec{Name: "db-3", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, Volumes: []string{"pg-data"}, VIPs: []string{"192.0.2.20"}},
			`vm "db-3" created with volume pg-data and floating IP 192.0.2.20`},
		{"container", []string{"container", "run", "web-3", "--image", "nginx:1.27", "--vip", "192.0.2.20", "--publish", "192.0.2.20:80:8080",
			"-p", "192.0.2.20:53:5353/udp", "--vip", "2001:DB8::10", "--publish", "[2001:db8::10]:443:8443/tcp", "--volume", "iso-lib", "--", "nginx", "-g", "daemon off;"},
			api.WorkloadSpec{Name: "web-3", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "nginx:1.27", Command: []string{"nginx", "-g", "daemon off;"},
				Volumes: []string{"iso-lib"}, VIPs: []string{"192.0.2.20", "2001:db8::10"},
				Publish: []api.Publish{{VIP: "192.0.2.20", Port: 80, ContainerPort: 8080}, {VIP: "192.0.2.20", Port: 53, ContainerPort: 5353, Proto: "udp"},
					{VIP: "2001:db8::10", Port: 443, ContainerPort: 8443, Proto: "tcp"}}},
			`container "web-3" created with volume iso-lib; floating IPs 192.0.2.20, 2001:db8::10 and published ports 192.0.2.20:80->8080/tcp, 192.0.2.20:53->5353/udp, [2001:db8::10]:443->8443/tcp`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			r := runCLI(t, f, "", tt.args...).mustSucceed(t)
			specs := f.createdSpecs()
			if len(specs) != 1 || !reflect.DeepEqual(specs[0], tt.want) {
				t.Fatalf("server got %+v, want %+v", specs, tt.want)
			}
			wantContains(t, "stdout", r.stdout, tt.line)
			for _, a := range tt.want.VIPs {
				if v, _ := f.getVIP(a); v.Workload != tt.want.Name {
					t.Errorf("vip %s follows %q, want %q", a, v.Workload, tt.want.Name)
				}
			}
		})
	}
	t.Run("unknown volume", func(t *testing.T) {
		f := setup(t)
		r := runCLI(t, f, "", "vm", "create", "db-3", "--volume", "nope")
		wantErr(t, r, "volume nope does not exist (create it with: bulwarkctl volume create nope --path PATH)")
	})
	t.Run("vip of another workload", func(t *testing.T) {
		f := setup(t)
		f.addVIP(vip10)
		r := runCLI(t, f, "", "container", "run", "web-3", "--image", "nginx:1.27", "--vip", "192.0.2.10")
		wantErr(t, r, "the server refused to create container web-3: floating IP 192.0.2.10 is already attached to web-1", "HTTP 409")
	})
	t.Run("no shared flags: the spec has none", func(t *testing.T) {
		f := setup(t)
		r := runCLI(t, f, "", "vm", "create", "web-9").mustSucceed(t)
		s := f.createdSpecs()[0]
		if s.Volumes != nil || s.VIPs != nil || s.Publish != nil {
			t.Errorf("spec %+v", s)
		}
		if !strings.Contains(r.stdout, `vm "web-9" created`+"\n") {
			t.Errorf("stdout %q", r.stdout)
		}
		if b := f.requestBodies()[0]; strings.Contains(b, "volumes") || strings.Contains(b, "vips") || strings.Contains(b, "publish") {
			t.Errorf("body %s", b)
		}
	})
}

func TestSharedHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"volume"}, []string{"exclusive", "shared-read", "on-storage lease", "/volumes/NAME", "extra disk", "docs/storage.md", "fenced"}},
		{[]string{"volume", "list", "--help"}, []string{"NAME", "MODE", "PATH", "HOLDER", "WORKLOAD@HOST", "EPOCH", "SINCE", "USERS"}},
		{[]string{"volume", "create", "--help"}, []string{"--path PATH (required)", "--lease-path", "--format", "qcow2", "Examples:"}},
		{[]string{"volume", "delete", "--help"}, []string{"refuses", "left as they are"}},
		{[]string{"vip"}, []string{"follows a workload", "released it", "fenced", "docs/networking.md", "--publish"}},
		{[]string{"vip", "list", "--help"}, []string{"ADDRESS", "INTERFACE/NETWORK", "WORKLOAD", "HOST", "EPOCH", "(for W)"}},
		{[]string{"vip", "create", "--help"}, []string{"--interface IFACE", "--network NAME", "bulwarkd agent --network NAME=IFACE", "--workload NAME"}},
		{[]string{"node", "tasks", "--help"}, []string{"WORKLOAD", "EPOCH", "STATE", "ID", "DETAIL", "the host's own truth"}},
		{[]string{"vm", "create", "--help"}, []string{"--volume NAME", "--vip ADDR", "vdb"}},
		{[]string{"container", "run", "--help"}, []string{"--volume NAME", "--vip ADDR", "--publish VIP:PORT:CONTAINERPORT[/PROTO]", "/volumes/NAME", "[2001:db8::10]:443:8443"}},
	}
	for _, tt := range tests {
		r := runCLI(t, nil, "", tt.args...).mustSucceed(t)
		for _, w := range tt.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%v: help lacks %q", tt.args, w)
			}
		}
	}
	r := runCLI(t, nil, "", "--help").mustSucceed(t)
	for _, w := range []string{"volume", "vip"} {
		if !strings.Contains(r.stdout, "   "+w+", ") {
			t.Errorf("app help does not list %q:\n%s", w, r.stdout)
		}
	}
}

func TestAge(t *testing.T) {
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-time.Minute, "0s"}, // the server's clock is ahead
		{0, "0s"},
		{45 * time.Second, "45s"},
		{12*time.Minute + 30*time.Second, "12m"},
		{3 * time.Hour, "3h"},
		{3*time.Hour + 5*time.Minute, "3h5m"},
		{48 * time.Hour, "2d"},
		{52*time.Hour + 59*time.Minute, "2d4h"},
	}
	for _, tt := range tests {
		if got := age(testTime.Add(-tt.ago), testTime); got != tt.want {
			t.Errorf("age(%v ago) = %q, want %q", tt.ago, got, tt.want)
		}
	}
	if got := age(time.Time{}, testTime); got != "-" {
		t.Errorf("age(zero) = %q", got)
	}
}
