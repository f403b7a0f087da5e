package libvirt

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"libvirt.org/go/libvirtxml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// vmTask builds a valid VM task; tests change what they need.
func vmTask(workload string, epoch int64, cpus int, mem api.ByteSize) drivers.Task {
	return drivers.Task{
		Workload: workload,
		Epoch:    epoch,
		Spec:     api.WorkloadSpec{Name: workload, Kind: api.KindVM, CPUs: cpus, Memory: mem},
	}
}

// vmTaskWith is vmTask with VM settings.
func vmTaskWith(workload string, epoch int64, cpus int, mem api.ByteSize, vm *api.VMSpec) drivers.Task {
	t := vmTask(workload, epoch, cpus, mem)
	t.Spec.VM = vm
	return t
}

func TestRenderDomainGolden(t *testing.T) {
	cases := []struct {
		golden string
		cfg    Config
		task   drivers.Task
	}{
		{
			golden: "kvm-minimal.xml",
			cfg:    Config{URI: "qemu:///system", Host: "node-1"},
			task:   vmTask("web", 42, 1, 128*api.MiB),
		},
		{
			golden: "qemu-emulator.xml",
			cfg: Config{URI: "qemu:///system?socket=/run/x/libvirt-sock", Host: "h2",
				DomainType: DomainTypeQEMU, Emulator: "/usr/bin/qemu-system-x86_64"},
			task: vmTask("db-primary", 9001, 4, 2*api.GiB),
		},
		{
			// Direct kernel boot, disks of each kind, two NICs and the
			// serial console logged to a file.
			golden: "qemu-kernel-boot.xml",
			cfg: Config{URI: "qemu:///system", Host: "node-2", DomainType: DomainTypeQEMU,
				ConsoleLogDir: "/var/log/bulwark/console"},
			task: vmTaskWith("appliance", 7, 2, 512*api.MiB, &api.VMSpec{
				Disks: []api.DiskSpec{
					{Path: "/srv/shared/appliance/root.qcow2", Format: "qcow2"},
					{Path: "/srv/shared/appliance/seed.img", ReadOnly: true},
					{Path: "/dev/vg0/appliance-data", Format: "raw"},
				},
				Kernel:  "/srv/shared/kernels/vmlinuz-6.1",
				Initrd:  "/srv/shared/kernels/initrd-6.1.img",
				Cmdline: `console=ttyS0 root=/dev/vda1 ro quiet "x=a b" <&>`,
				Networks: []api.NetworkSpec{
					{Bridge: "br-prod", MAC: "52:54:00:AB:cd:01"},
					{Bridge: "br-storage"},
				},
			}),
		},
		{
			// Boot from the first disk; a bridged NIC; no console log.
			golden: "kvm-disk-boot.xml",
			cfg:    Config{URI: "qemu:///system", Host: "node-1", DomainType: DomainTypeKVM},
			task: vmTaskWith("db", 3, 4, 4*api.GiB, &api.VMSpec{
				Disks:    []api.DiskSpec{{Path: "/srv/shared/db/root.qcow2", Format: "qcow2"}, {Path: "/srv/shared/db/data.raw"}},
				Networks: []api.NetworkSpec{{Bridge: "br0", MAC: "52:54:00:00:00:03"}},
			}),
		},
		{
			// Memory that is not a whole number of KiB rounds up.
			golden: "test-odd-memory.xml",
			cfg:    Config{URI: "test:///default", Host: "sim-3"},
			task:   vmTask("batch-7", 1, 2, 100*api.MiB+1),
		},
	}
	for _, c := range cases {
		t.Run(c.golden, func(t *testing.T) {
			got, err := RenderDomain(c.cfg, c.task)
			if err != nil {
				t.Fatalf("RenderDomain: %v", err)
			}
			again, err := RenderDomain(c.cfg, c.task)
			if err != nil || again != got {
				t.Fatalf("RenderDomain is not deterministic (err %v)", err)
			}
			path := filepath.Join("testdata", c.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden (run with -update to create it): %v", err)
			}
			if got != string(want) {
				t.Errorf("RenderDomain differs from %s (run with -update if intended)\n--- got\n%s\n--- want\n%s", path, got, want)
			}

			// The golden must also be a domain libvirtxml reads back as such.
			var dom libvirtxml.Domain
			if err := dom.Unmarshal(got); err != nil {
				t.Fatalf("unmarshal rendered XML: %v", err)
			}
			if dom.Name != domainName(c.cfg.Host, c.task.Workload) {
				t.Errorf("name %q", dom.Name)
			}
		})
	}
}

func TestRenderDomainMetadataRoundTrip(t *testing.T) {
	s, err := RenderDomain(Config{URI: "test:///default", Host: "h1"}, vmTask("web", 77, 1, 64*api.MiB))
	if err != nil {
		t.Fatal(err)
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(s); err != nil {
		t.Fatal(err)
	}
	if dom.Metadata == nil || !strings.Contains(dom.Metadata.XML, MetadataNamespace) {
		t.Fatalf("metadata %+v lacks the bulwark namespace", dom.Metadata)
	}
	m, err := parseMeta(dom.Metadata.XML)
	if err != nil {
		t.Fatal(err)
	}
	if m != (instanceMeta{Workload: "web", Epoch: 77, Host: "h1"}) {
		t.Errorf("metadata read back as %+v", m)
	}
}

func TestRenderDomainRejectsBadInput(t *testing.T) {
	good := Config{URI: "test:///default", Host: "h1"}
	cases := []struct {
		name string
		cfg  Config
		edit func(*drivers.Task)
	}{
		{"empty workload", good, func(t *drivers.Task) { t.Workload, t.Spec.Name = "", "" }},
		{"uppercase workload", good, func(t *drivers.Task) { t.Workload, t.Spec.Name = "Web", "Web" }},
		{"xml in workload", good, func(t *drivers.Task) { t.Workload, t.Spec.Name = "a<b>", "a<b>" }},
		{"slash in workload", good, func(t *drivers.Task) { t.Workload, t.Spec.Name = "../x", "../x" }},
		{"long workload", good, func(t *drivers.Task) { t.Workload = strings.Repeat("a", 64); t.Spec.Name = t.Workload }},
		{"spec name differs", good, func(t *drivers.Task) { t.Spec.Name = "other" }},
		{"container kind", good, func(t *drivers.Task) { t.Spec.Kind = api.KindContainer }},
		{"no kind", good, func(t *drivers.Task) { t.Spec.Kind = "" }},
		{"zero cpus", good, func(t *drivers.Task) { t.Spec.CPUs = 0 }},
		{"negative cpus", good, func(t *drivers.Task) { t.Spec.CPUs = -1 }},
		{"too many cpus", good, func(t *drivers.Task) { t.Spec.CPUs = api.MaxCPUs + 1 }},
		{"tiny memory", good, func(t *drivers.Task) { t.Spec.Memory = api.MiB }},
		{"negative memory", good, func(t *drivers.Task) { t.Spec.Memory = -api.GiB }},
		{"zero epoch", good, func(t *drivers.Task) { t.Epoch = 0 }},
		{"bad host", Config{URI: "test:///default", Host: "H_1"}, func(*drivers.Task) {}},
		{"no host", Config{URI: "test:///default"}, func(*drivers.Task) {}},
		{"bad domain type", Config{URI: "xen:///", Host: "h1", DomainType: "xen"}, func(*drivers.Task) {}},
		{"relative console log dir", Config{URI: "test:///default", Host: "h1", ConsoleLogDir: "logs"}, func(*drivers.Task) {}},
		{"relative disk", good, func(t *drivers.Task) { t.Spec.VM = &api.VMSpec{Disks: []api.DiskSpec{{Path: "a.img"}}} }},
		{"bad disk format", good, func(t *drivers.Task) {
			t.Spec.VM = &api.VMSpec{Disks: []api.DiskSpec{{Path: "/a.img", Format: "vmdk"}}}
		}},
		{"initrd without kernel", good, func(t *drivers.Task) { t.Spec.VM = &api.VMSpec{Initrd: "/i"} }},
		{"bad bridge name", good, func(t *drivers.Task) { t.Spec.VM = &api.VMSpec{Networks: []api.NetworkSpec{{Bridge: "a/b"}}} }},
		{"bad mac", good, func(t *drivers.Task) {
			t.Spec.VM = &api.VMSpec{Networks: []api.NetworkSpec{{Bridge: "br0", MAC: "01:00:5e:00:00:01"}}}
		}},
		{"too many disks", good, func(t *drivers.Task) {
			t.Spec.VM = &api.VMSpec{}
			for i := 0; i <= api.MaxVMDisks; i++ {
				t.Spec.VM.Disks = append(t.Spec.VM.Disks, api.DiskSpec{Path: fmt.Sprintf("/d%d", i)})
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			task := vmTask("web", 1, 1, 128*api.MiB)
			c.edit(&task)
			if s, err := RenderDomain(c.cfg, task); err == nil {
				t.Fatalf("RenderDomain accepted it:\n%s", s)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cases := map[string]string{
		"test:///default":        DomainTypeTest,
		"test:///tmp/h.xml":      DomainTypeTest,
		"qemu:///system":         DomainTypeKVM,
		"qemu+ssh://h/system":    DomainTypeKVM,
		"qemu:///session?x=test": DomainTypeKVM,
	}
	for uri, want := range cases {
		if got := (Config{URI: uri}).withDefaults().DomainType; got != want {
			t.Errorf("%s: domain type %q, want %q", uri, got, want)
		}
	}
	if got := (Config{URI: "qemu:///system", DomainType: "qemu"}).withDefaults().DomainType; got != "qemu" {
		t.Errorf("explicit domain type overridden: %q", got)
	}
}

// The goldens are checked against libvirt's own domain schema when its
// validator is installed (libvirt-clients + libxml2-utils).
func TestGoldenFilesMatchLibvirtSchema(t *testing.T) {
	for _, tool := range []string{"virt-xml-validate", "xmllint"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install libvirt-clients libxml2-utils): %v", tool, err)
		}
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, "virt-xml-validate", f, "domain").CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s does not validate: %v\n%s", f, err, out)
		}
	}
}
