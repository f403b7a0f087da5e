package ctl

import (
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

func TestContainerRun(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want api.WorkloadSpec
	}{
		{"image only", []string{"container", "run", "app-1", "--image", "docker.io/library/nginx:1.27"},
			api.WorkloadSpec{Name: "app-1", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "docker.io/library/nginx:1.27"}},
		{"command env and restart", []string{"container", "run", "app-2", "--image", "nginx:1.27", "--env", "A=1", "-e", "B=x=y", "--env", "EMPTY=",
			"--restart", "on-failure", "--", "nginx", "-g", "daemon off;"},
			api.WorkloadSpec{Name: "app-2", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "nginx:1.27",
				Command: []string{"nginx", "-g", "daemon off;"}, Env: map[string]string{"A": "1", "B": "x=y", "EMPTY": ""}, Restart: api.RestartOnFailure}},
		{"flags before the name", []string{"container", "run", "--image=busybox:1.36", "--cpus", "2", "-m", "256MiB", "--restart", "never", "job-1", "--", "sh", "-c", "echo hi"},
			api.WorkloadSpec{Name: "job-1", Kind: api.KindContainer, CPUs: 2, Memory: 256 * api.MiB, Image: "busybox:1.36",
				Command: []string{"sh", "-c", "echo hi"}, Restart: api.RestartNever}},
		{"flag-like words after -- belong to the command", []string{"container", "run", "job-2", "-i", "busybox", "--", "ls", "--cpus", "3", "-h", "--", "-o"},
			api.WorkloadSpec{Name: "job-2", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "busybox",
				Command: []string{"ls", "--cpus", "3", "-h", "--", "-o"}}},
		{"labels priority and placement as vm create", []string{"container", "run", "api-1", "--image", "registry.example/api:2.0", "--label", "tier=api", "-l", "zone=a",
			"--priority", "500", "--require", "rack in (r1,r2)", "--prefer", "disk=ssd:50", "--anti-affinity", "api", "--spread-by", "rack"},
			api.WorkloadSpec{Name: "api-1", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "registry.example/api:2.0",
				Labels: map[string]string{"tier": "api", "zone": "a"}, Priority: 500,
				Require: []string{"rack in (r1,r2)"}, Prefer: []string{"disk=ssd:50"}, AntiAffinity: "api", SpreadBy: "rack"}},
		{"archive with an image name", []string{"container", "run", "web-1", "--image-archive", "/srv/images/web.tar", "--image", "web:1.4"},
			api.WorkloadSpec{Name: "web-1", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "oci-archive:/srv/images/web.tar#web:1.4"}},
		{"archive alone: its first image", []string{"container", "run", "--image-archive=/srv/images/web.tar", "web-2"},
			api.WorkloadSpec{Name: "web-2", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB, Image: "oci-archive:/srv/images/web.tar"}},
		{"archive path is cleaned", []string{"container", "run", "web-3", "--image-archive", "/srv//images/old/../web.tar", "--image", "docker.io/library/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
			api.WorkloadSpec{Name: "web-3", Kind: api.KindContainer, CPUs: 1, Memory: 128 * api.MiB,
				Image: "oci-archive:/srv/images/web.tar#docker.io/library/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
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
			for _, want := range []string{`container "` + tt.want.Name + `" created`, "Name: " + tt.want.Name, "Kind: container",
				"State: pending", "Image: " + tt.want.Image, "Memory: " + tt.want.Memory.String()} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, r.stdout)
				}
			}
		})
	}

	t.Run("json output", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "container", "run", "app-1", "--image", "busybox:1.36", "-o", "json", "--", "sleep", "60").mustSucceed(t)
		var got api.WorkloadView
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("stdout is not one JSON workload: %v\n%s", err, r.stdout)
		}
		if got.Name != "app-1" || got.Kind != api.KindContainer || got.Image != "busybox:1.36" || !reflect.DeepEqual(got.Command, []string{"sleep", "60"}) {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("name taken", func(t *testing.T) {
		f := newFakeAPI(t)
		f.addWorkload(web1)
		r := runCLI(t, f, "", "container", "run", "web-1", "--image", "nginx")
		if r.err == nil || !strings.Contains(r.err.Error(), `a workload named "web-1" already exists`) {
			t.Errorf("error %v", r.err)
		}
	})
}

func TestVMCreateDisksBootAndNetworks(t *testing.T) {
	want := api.WorkloadSpec{Name: "fw-1", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB, Restart: api.RestartNever,
		VM: &api.VMSpec{
			Disks: []api.DiskSpec{
				{Path: "/srv/images/fw-1.qcow2", Format: "qcow2"},
				{Path: "/srv/images/seed.iso", Format: "raw", ReadOnly: true},
				{Path: "/srv/images/data.img"},
				{Path: "/srv/images/shared.img", ReadOnly: true},
			},
			Kernel:   "/srv/boot/vmlinuz",
			Initrd:   "/srv/boot/initrd.img",
			Cmdline:  "console=ttyS0 root=/dev/vda1",
			Networks: []api.NetworkSpec{{Bridge: "br0"}, {Bridge: "br1", MAC: "52:54:00:ab:cd:01"}},
		}}
	for name, args := range map[string][]string{
		"after the name": {"vm", "create", "fw-1", "--disk", "/srv/images/fw-1.qcow2:qcow2", "--disk", "/srv/images/seed.iso:raw:ro",
			"--disk", "/srv/images/data.img", "--disk", "/srv/images/shared.img:ro", "--kernel", "/srv/boot/vmlinuz", "--initrd", "/srv/boot/initrd.img",
			"--cmdline", "console=ttyS0 root=/dev/vda1", "--network", "br0", "--net", "br1=52:54:00:AB:CD:01", "--restart", "never"},
		"before the name": {"vm", "create", "--disk=/srv/images/fw-1.qcow2:qcow2", "--disk", "/srv/images/seed.iso:raw:ro",
			"--disk", "/srv/images/data.img", "--disk", "/srv/images/shared.img:ro", "--kernel=/srv/boot/vmlinuz", "--initrd", "/srv/boot/initrd.img",
			"--cmdline=console=ttyS0 root=/dev/vda1", "--network=br0", "--network", "br1=52:54:00:ab:cd:01", "--restart=never", "fw-1"},
	} {
		t.Run(name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, "", args...).mustSucceed(t)
			if specs := f.createdSpecs(); len(specs) != 1 || !reflect.DeepEqual(specs[0], want) {
				t.Fatalf("server got %+v, want %+v", specs, want)
			}
			out := strings.Join(lines(r.stdout), "\n")
			for _, w := range []string{
				`vm "fw-1" created`,
				"Disks: /srv/images/fw-1.qcow2 (qcow2); /srv/images/seed.iso (raw, read-only); /srv/images/data.img (raw); /srv/images/shared.img (raw, read-only)",
				"Kernel: /srv/boot/vmlinuz", "Initrd: /srv/boot/initrd.img", "Cmdline: console=ttyS0 root=/dev/vda1",
				"Networks: br0; br1 (52:54:00:ab:cd:01)", "Restart: never",
			} {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
	t.Run("no vm section without vm flags", func(t *testing.T) {
		f := newFakeAPI(t)
		runCLI(t, f, "", "vm", "create", "web-1").mustSucceed(t)
		if specs := f.createdSpecs(); len(specs) != 1 || specs[0].VM != nil {
			t.Errorf("server got %+v", specs)
		}
	})
}

// TestBadWorkloadFlagsSendNothing is TestBadInputSendsNothing for the
// container, VM disk/boot/network, restart and logs flags.
func TestBadWorkloadFlagsSendNothing(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of the error
	}{
		// container run
		{"relative archive", []string{"container", "run", "app-1", "--image-archive", "images/app.tar"},
			[]string{`--image-archive "images/app.tar" is a relative path`, "absolute path", "nothing was sent"}},
		{"dot-relative archive", []string{"container", "run", "app-1", "--image-archive", "./app.tar", "--image", "app:1"}, []string{`"./app.tar" is a relative path`}},
		{"archive is a directory", []string{"container", "run", "app-1", "--image-archive", "/srv/images/"}, []string{"names a directory"}},
		{"archive with #", []string{"container", "run", "app-1", "--image-archive", "/srv/a#b.tar"}, []string{"may not hold '#'"}},
		{"empty archive", []string{"container", "run", "app-1", "--image-archive", ""}, []string{"--image-archive is empty"}},
		{"no image", []string{"container", "run", "app-1"}, []string{"a container needs an image: give --image REF", "--image-archive PATH", "nothing was sent"}},
		{"empty image", []string{"container", "run", "app-1", "--image", ""}, []string{"--image is empty"}},
		{"blank image", []string{"container", "run", "app-1", "--image", "  "}, []string{"--image is empty"}},
		{"image with a space", []string{"container", "run", "app-1", "--image", "nginx 1.27"}, []string{`--image "nginx 1.27": an image reference has no spaces`}},
		{"archive given as --image with --image-archive", []string{"container", "run", "app-1", "--image-archive", "/srv/a.tar", "--image", "oci-archive:/srv/b.tar"},
			[]string{"names the image inside the archive"}},
		{"env without =", []string{"container", "run", "app-1", "--image", "nginx", "--env", "LOG_LEVEL"}, []string{`--env "LOG_LEVEL": expected NAME=VALUE`}},
		{"env without name", []string{"container", "run", "app-1", "--image", "nginx", "-e", "=debug"}, []string{`--env "=debug": the name before '=' is empty`}},
		{"env name with a space", []string{"container", "run", "app-1", "--image", "nginx", "-e", "LOG LEVEL=debug"}, []string{`the name "LOG LEVEL" has a space`}},
		{"env twice", []string{"container", "run", "app-1", "--image", "nginx", "-e", "A=1", "-e", "A=2"}, []string{"--env: A is given twice"}},
		{"container bad restart", []string{"container", "run", "app-1", "--image", "nginx", "--restart", "sometimes"},
			[]string{`restart policy "sometimes" is unknown: use always, on-failure or never`, "nothing was sent"}},
		{"container empty restart", []string{"container", "run", "app-1", "--image", "nginx", "--restart="}, []string{"--restart is empty"}},
		{"empty program after --", []string{"container", "run", "app-1", "--image", "nginx", "--", ""}, []string{`the command after "--" starts with an empty program name`}},
		{"container several problems", []string{"container", "run", "App_1", "--image-archive", "app.tar", "-e", "X", "--cpus", "0"},
			[]string{"invalid container (nothing was sent to the server):", "App_1", "relative path", `--env "X"`, "cpus must", "\n  - "}},
		{"container bad placement", []string{"container", "run", "app-1", "--image", "nginx", "--require", "rack", "--spread-by", "rack"},
			[]string{"no operator", "set anti-affinity too"}},
		{"container memory too small", []string{"container", "run", "app-1", "--image", "nginx", "--memory", "16MiB"}, []string{"memory must be at least 64MiB"}},
		{"name after --", []string{"container", "run", "--image", "busybox", "--", "sh"}, []string{`missing NAME before "--"`}},
		{"command without --", []string{"container", "run", "job-1", "--image", "busybox", "sleep", "60"},
			[]string{"too many arguments", `give the command after "--", e.g. bulwarkctl container run job-1 --image busybox:1.36 -- sleep 60`}},
		{"command with flags without --", []string{"container", "run", "job-1", "--image", "busybox", "sh", "-c", "echo hi"},
			[]string{"flag provided but not defined: -c", `the command to run and its arguments go after "--"`}},
		{"container without name", []string{"container", "run", "--image", "busybox"}, []string{"missing NAME", "bulwarkctl container run [options] NAME [-- CMD ARGS...]"}},
		{"container unknown flag", []string{"container", "run", "app-1", "--image", "nginx", "--port", "80"}, []string{"flag provided but not defined: --port", "bulwarkctl container run --help"}},
		{"container flag without value", []string{"container", "run", "app-1", "--image"}, []string{"flag needs an argument: --image"}},
		{"container cpus not a number", []string{"container", "run", "app-1", "--cpus", "two", "--image", "nginx"}, []string{`invalid value "two" for flag --cpus`}},
		{"container bad -o", []string{"container", "run", "app-1", "--image", "nginx", "-o", "xml"}, []string{`invalid output format "xml"`}},
		// vm create
		{"disk bad format", []string{"vm", "create", "web-1", "--disk", "/srv/images/web1.img:vmdk"},
			[]string{`--disk "/srv/images/web1.img:vmdk": format "vmdk" is not supported: use raw or qcow2`, "nothing was sent"}},
		{"disk relative path", []string{"vm", "create", "web-1", "--disk", "images/web1.qcow2:qcow2"}, []string{`vm: disk 1: path "images/web1.qcow2" is not absolute`}},
		{"second disk relative", []string{"vm", "create", "web-1", "--disk", "/srv/a.img", "--disk", "b.img"}, []string{`vm: disk 2: path "b.img" is not absolute`}},
		{"disk empty path", []string{"vm", "create", "web-1", "--disk", ":qcow2"}, []string{"vm: disk 1: path is empty"}},
		{"disk trailing colon", []string{"vm", "create", "web-1", "--disk", "/srv/a.img:"}, []string{`--disk "/srv/a.img:": empty option`}},
		{"disk format twice", []string{"vm", "create", "web-1", "--disk", "/srv/a.img:raw:qcow2"}, []string{"the format is given twice"}},
		{"disk ro before format", []string{"vm", "create", "web-1", "--disk", "/srv/a.img:ro:qcow2"}, []string{"the format comes before :ro, as in /srv/a.img:qcow2:ro"}},
		{"disk twice", []string{"vm", "create", "web-1", "--disk", "/srv/a.img", "--disk", "/srv/a.img:ro"}, []string{`vm: disk 2: path "/srv/a.img" is already disk 1`}},
		{"initrd without kernel", []string{"vm", "create", "web-1", "--initrd", "/srv/boot/initrd.img"}, []string{"vm: an initrd needs a kernel to boot with", "nothing was sent"}},
		{"cmdline without kernel", []string{"vm", "create", "web-1", "--cmdline", "console=ttyS0"}, []string{"vm: a kernel command line needs a kernel"}},
		{"relative kernel", []string{"vm", "create", "web-1", "--kernel", "vmlinuz"}, []string{`vm: kernel: path "vmlinuz" is not absolute`}},
		{"empty kernel", []string{"vm", "create", "web-1", "--kernel="}, []string{"--kernel is empty"}},
		{"network bad bridge", []string{"vm", "create", "web-1", "--network", "br 0"}, []string{`vm: network 1: bridge name "br 0" is not a valid interface name`}},
		{"network empty bridge", []string{"vm", "create", "web-1", "--network", "=52:54:00:12:34:56"}, []string{"vm: network 1: bridge name is empty"}},
		{"network bad mac", []string{"vm", "create", "web-1", "--network", "br0=52:54:00:12:34"}, []string{`vm: network 1: mac "52:54:00:12:34" is not an Ethernet address`}},
		{"network empty mac", []string{"vm", "create", "web-1", "--network", "br0="}, []string{`--network "br0=": the MAC after '=' is empty`}},
		{"vm bad restart", []string{"vm", "create", "web-1", "--restart", "Always"}, []string{`restart policy "Always" is unknown`}},
		{"vm several disk problems", []string{"vm", "create", "web-1", "--disk", "a.img:vmdk", "--initrd", "/i", "--network", "br0=zz"},
			[]string{"invalid vm (nothing was sent to the server):", `format "vmdk"`, `path "a.img" is not absolute`, "initrd needs a kernel", `mac "zz"`}},
		// workload logs
		{"logs bad name", []string{"workload", "logs", "Web_1"}, []string{"not a DNS label"}},
		{"logs without name", []string{"workload", "logs", "--follow"}, []string{"missing NAME", "bulwarkctl workload logs [options] NAME"}},
		{"logs two names", []string{"workload", "logs", "a", "b"}, []string{"too many arguments"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, "", tt.args...)
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

func TestWorkloadShowRestartImageAndVM(t *testing.T) {
	f := newFakeAPI(t)
	f.addWorkload(web1)
	vm := db1
	vm.Name, vm.Restart, vm.Reschedules = "fw-1", api.RestartOnFailure, 2
	vm.VM = &api.VMSpec{
		Disks:    []api.DiskSpec{{Path: "/srv/images/fw-1.qcow2", Format: "qcow2"}, {Path: "/srv/images/seed.iso", ReadOnly: true}},
		Kernel:   "/srv/boot/vmlinuz",
		Networks: []api.NetworkSpec{{Bridge: "br0", MAC: "52:54:00:12:34:56"}},
	}
	f.addWorkload(vm)
	app := web1
	app.Name, app.Kind, app.Labels = "app-1", api.KindContainer, nil
	app.Image, app.Command, app.Env = "oci-archive:/srv/images/app.tar#app:1.4", []string{"/app/server", "--port", "8080"}, map[string]string{"B": "2", "A": "1"}
	f.addWorkload(app)

	show := func(name string) string {
		t.Helper()
		return strings.Join(lines(runCLI(t, f, "", "workload", "show", name).mustSucceed(t).stdout), "\n")
	}
	out := show("fw-1")
	for _, w := range []string{
		"Disks: /srv/images/fw-1.qcow2 (qcow2); /srv/images/seed.iso (raw, read-only)",
		"Kernel: /srv/boot/vmlinuz",
		"Networks: br0 (52:54:00:12:34:56)",
		"Restart: on-failure",
		"Reschedules: 2 (at most 3)",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("fw-1: output lacks %q:\n%s", w, out)
		}
	}
	for _, w := range []string{"Initrd:", "Cmdline:", "Image:"} {
		if strings.Contains(out, w) {
			t.Errorf("fw-1: output has %q, which is not set:\n%s", w, out)
		}
	}

	out = show("web-1")
	for _, w := range []string{"Restart: always (default)", "Reschedules: 0 (at most 3)"} {
		if !strings.Contains(out, w) {
			t.Errorf("web-1: output lacks %q:\n%s", w, out)
		}
	}
	if m := regexp.MustCompile(`(?m)^(Disks|Kernel|Networks|Image):`).FindString(out); m != "" {
		t.Errorf("web-1: output has %q for a VM without those settings:\n%s", m, out)
	}

	out = show("app-1")
	for _, w := range []string{"Kind: container", "Image: oci-archive:/srv/images/app.tar#app:1.4", "Command: /app/server --port 8080", "Env: A=1,B=2", "Restart: always (default)"} {
		if !strings.Contains(out, w) {
			t.Errorf("app-1: output lacks %q:\n%s", w, out)
		}
	}
}

// TestApplyHelpExamplesAreValid applies the example files of
// `apply --help`.
func TestApplyHelpExamplesAreValid(t *testing.T) {
	help := applyCommand().Description
	files := regexp.MustCompile(`(?s)Example file (\S+):\n(.*?)\n\n`).FindAllStringSubmatch(help, -1)
	if len(files) < 2 {
		t.Fatalf("found %d example files in the apply help, want a VM and a container", len(files))
	}
	kinds := map[api.Kind]bool{}
	for _, m := range files {
		var body strings.Builder
		for _, l := range strings.Split(m[2], "\n") {
			body.WriteString(strings.TrimPrefix(l, "   ") + "\n")
		}
		f := newFakeAPI(t)
		runCLI(t, f, body.String(), "apply", "-f", "-").mustSucceed(t)
		specs := f.createdSpecs()
		if len(specs) != 1 {
			t.Fatalf("%s: server got %+v", m[1], specs)
		}
		kinds[specs[0].Kind] = true
		if specs[0].Kind == api.KindVM && (specs[0].VM == nil || len(specs[0].VM.Disks) == 0 || specs[0].Restart == "") {
			t.Errorf("%s: the VM example shows no vm section or restart: %+v", m[1], specs[0])
		}
		if specs[0].Kind == api.KindContainer && (specs[0].Image == "" || len(specs[0].Command) == 0 || len(specs[0].Env) == 0) {
			t.Errorf("%s: the container example shows no image, command or env: %+v", m[1], specs[0])
		}
	}
	if !kinds[api.KindVM] || !kinds[api.KindContainer] {
		t.Errorf("example kinds %v, want vm and container", kinds)
	}
	for _, field := range []string{"restart", "vm", "disks", "read_only", "kernel", "initrd", "cmdline", "networks", "bridge", "mac", "image", "oci-archive:", "command", "env"} {
		if !strings.Contains(help, field) {
			t.Errorf("apply help does not mention %q", field)
		}
	}
}

func TestNewCommandsHelp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		leaf bool
		want []string
	}{
		{[]string{"container", "run", "--help"}, true, []string{"--image-archive PATH", "-- CMD ARGS...", "--env NAME=VALUE", "default 128MiB", "--restart POLICY", "--require EXPR", "Examples:"}},
		{[]string{"container", "run", "app-1", "--image", "x", "-h"}, true, []string{"bulwarkctl container run - run a container workload", "Examples:"}},
		{[]string{"container"}, false, []string{"container run", "Examples:"}},
		{[]string{"vm", "create", "-h"}, true, []string{"--disk PATH[:FORMAT][:ro]", "--disk /srv/images/web1.qcow2:qcow2", "--kernel PATH", "--initrd PATH", "--cmdline STRING",
			"--network BRIDGE[=MAC]", "--network br0", "--restart POLICY", "default 256MiB", "Examples:"}},
		{[]string{"vm", "create", "web-1", "-h"}, true, []string{"--disk PATH[:FORMAT][:ro]", "Examples:"}},
		{[]string{"workload", "logs", "--help"}, true, []string{"--follow", "Ctrl-C", "Examples:"}},
		{[]string{"apply", "--help"}, true, []string{"restart", "read_only", "oci-archive:/srv/images/app.tar#app:1.4", "Examples:"}},
		{[]string{"--help"}, false, []string{"container", "workload logs"}},
	} {
		r := runCLI(t, nil, "", tt.args...).mustSucceed(t)
		for _, w := range tt.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("%v: help lacks %q", tt.args, w)
			}
		}
		if tt.leaf && strings.Contains(r.stdout, "COMMANDS:") {
			t.Errorf("%v: the help of a leaf command lists subcommands:\n%s", tt.args, r.stdout)
		}
	}
}
