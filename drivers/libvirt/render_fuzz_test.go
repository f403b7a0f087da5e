package libvirt

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"libvirt.org/go/libvirtxml"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

var fuzzDomainTypes = []string{"", DomainTypeKVM, DomainTypeQEMU, DomainTypeTest, "xen"}

// FuzzRenderDomain renders a domain for any VM spec built from the fuzzer's
// strings. RenderDomain never panics; for a spec the API accepts (on a
// valid host config, at a positive epoch) it succeeds, and its output is
// well-formed XML that libvirtxml decodes, whose name is the Bulwark name,
// and which carries every string of the spec back unchanged, in its place:
// no spec string can add or close an element or an attribute. `go test`
// runs the committed seeds in testdata/fuzz/FuzzRenderDomain; `make fuzz`
// explores further.
func FuzzRenderDomain(f *testing.F) {
	f.Fuzz(func(t *testing.T, host, workload string, epoch int64, cpus int, memory int64,
		kernel, initrd, cmdline, disk1, format1, disk2 string, readOnly bool,
		bridge, mac, consoleDir string, domType uint8) {
		vm := &api.VMSpec{Kernel: kernel, Initrd: initrd, Cmdline: cmdline}
		if disk1 != "" {
			vm.Disks = append(vm.Disks, api.DiskSpec{Path: disk1, Format: format1, ReadOnly: readOnly})
		}
		if disk2 != "" {
			vm.Disks = append(vm.Disks, api.DiskSpec{Path: disk2})
		}
		if bridge != "" || mac != "" {
			vm.Networks = append(vm.Networks, api.NetworkSpec{Bridge: bridge, MAC: mac})
		}
		spec := api.WorkloadSpec{Name: workload, Kind: api.KindVM, CPUs: cpus, Memory: api.ByteSize(memory), VM: vm}
		cfg := Config{URI: "qemu:///system", Host: host, ConsoleLogDir: consoleDir,
			DomainType: fuzzDomainTypes[int(domType)%len(fuzzDomainTypes)]}
		task := drivers.Task{Workload: workload, Epoch: epoch, Spec: spec}

		out, err := RenderDomain(cfg, task)
		acceptable := spec.Validate() == nil && epoch > 0 &&
			cfg.withDefaults().validate() == nil
		if err != nil {
			if acceptable {
				t.Fatalf("RenderDomain refused a spec the API accepts: %v\nspec %#v\nvm %#v", err, spec, *vm)
			}
			return
		}
		if !acceptable {
			t.Fatalf("RenderDomain rendered what the API refuses: spec %#v, vm %#v, cfg %#v", spec, *vm, cfg)
		}
		checkWellFormed(t, out)

		var dom libvirtxml.Domain
		if err := dom.Unmarshal(out); err != nil {
			t.Fatalf("libvirtxml cannot decode the rendered domain: %v\n%s", err, out)
		}
		name := domainName(host, workload)
		if dom.Name != name || !strings.HasPrefix(dom.Name, namePrefix) {
			t.Fatalf("domain name %q, want %q", dom.Name, name)
		}
		if dom.Metadata == nil {
			t.Fatalf("no metadata:\n%s", out)
		}
		meta, err := parseMeta(strings.TrimSpace(dom.Metadata.XML))
		if err != nil || meta != (instanceMeta{Workload: workload, Epoch: epoch, Host: host}) {
			t.Fatalf("metadata %+v, %v; want %s at %d on %s:\n%s", meta, err, workload, epoch, host, out)
		}
		if dom.VCPU == nil || dom.VCPU.Value != uint(cpus) || dom.Memory == nil || uint64(dom.Memory.Value)*1024 < uint64(memory) {
			t.Fatalf("vcpu %+v memory %+v for %d CPUs and %d bytes", dom.VCPU, dom.Memory, cpus, memory)
		}
		if dom.OS == nil {
			t.Fatalf("no <os>:\n%s", out)
		}
		// Every spec string comes back as itself: none was cut short,
		// altered or turned into markup.
		if kernel != "" {
			if dom.OS.Kernel != kernel || dom.OS.Initrd != initrd || dom.OS.Cmdline != cmdline {
				t.Fatalf("boot: kernel %q initrd %q cmdline %q; want %q %q %q\n%s",
					dom.OS.Kernel, dom.OS.Initrd, dom.OS.Cmdline, kernel, initrd, cmdline, out)
			}
		}
		if dom.Devices == nil || len(dom.Devices.Disks) != len(vm.Disks) || len(dom.Devices.Interfaces) != len(vm.Networks) ||
			len(dom.Devices.Serials) != 1 || len(dom.Devices.Consoles) != 1 {
			t.Fatalf("devices do not match the spec's %d disks and %d NICs:\n%s", len(vm.Disks), len(vm.Networks), out)
		}
		for i, d := range vm.Disks {
			src := dom.Devices.Disks[i].Source
			got := ""
			switch {
			case src == nil:
			case src.File != nil:
				got = src.File.File
			case src.Block != nil:
				got = src.Block.Dev
			}
			if got != d.Path {
				t.Fatalf("disk %d: source %q, want %q\n%s", i+1, got, d.Path, out)
			}
			if drv := dom.Devices.Disks[i].Driver; drv == nil || drv.Type == "" || (d.Format != "" && drv.Type != d.Format) {
				t.Fatalf("disk %d: driver %+v, format %q", i+1, drv, d.Format)
			}
		}
		for i, n := range vm.Networks {
			src := dom.Devices.Interfaces[i].Source
			if src == nil || src.Bridge == nil || src.Bridge.Bridge != n.Bridge {
				t.Fatalf("nic %d: source %+v, want bridge %q\n%s", i+1, src, n.Bridge, out)
			}
		}
		if consoleDir != "" {
			want := filepath.Join(consoleDir, name+".log")
			if l := dom.Devices.Serials[0].Log; l == nil || l.File != want {
				t.Fatalf("console log %+v, want %q", l, want)
			}
		}
	})
}

// checkWellFormed reads the whole document strictly: one root element, every
// element closed, nothing but whitespace around it.
func checkWellFormed(t *testing.T, doc string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader([]byte(doc)))
	dec.Strict = true
	depth, roots := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered domain is not well-formed XML: %v\n%s", err, doc)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
			}
			depth++
		case xml.EndElement:
			depth--
		case xml.CharData:
			if depth == 0 && len(bytes.TrimSpace(tk)) > 0 {
				t.Fatalf("text outside the root element: %q", tk)
			}
		}
	}
	if depth != 0 || roots != 1 {
		t.Fatalf("rendered domain has %d root elements, depth %d at the end:\n%s", roots, depth, doc)
	}
}
