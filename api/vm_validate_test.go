package api

import (
	"fmt"
	"strings"
	"testing"
)

func goodVM() *VMSpec {
	return &VMSpec{
		Disks: []DiskSpec{
			{Path: "/srv/images/root.qcow2", Format: "qcow2"},
			{Path: "/srv/images/data.img"},
			{Path: "/dev/vg0/lv-data", Format: "raw", ReadOnly: true},
		},
		Kernel:   "/boot/vmlinuz-6.1.0-56-amd64",
		Initrd:   "/boot/initrd.img-6.1.0-56-amd64",
		Cmdline:  "console=ttyS0 root=/dev/vda1 ro",
		Networks: []NetworkSpec{{Bridge: "br0", MAC: "52:54:00:12:34:56"}, {Bridge: "vlan-100.br"}},
	}
}

func TestVMSpecValidateAccepts(t *testing.T) {
	cases := map[string]*VMSpec{
		"nil":                 nil,
		"empty":               {},
		"full":                goodVM(),
		"disk only":           {Disks: []DiskSpec{{Path: "/a"}}},
		"kernel only":         {Kernel: "/k"},
		"upper-case mac":      {Networks: []NetworkSpec{{Bridge: "br0", MAC: "52:54:00:AB:CD:EF"}}},
		"15-char bridge":      {Networks: []NetworkSpec{{Bridge: strings.Repeat("b", 15)}}},
		"longest cmdline":     {Kernel: "/k", Cmdline: strings.Repeat("x", MaxKernelCmdline)},
		"same bridge twice":   {Networks: []NetworkSpec{{Bridge: "br0"}, {Bridge: "br0"}}},
		"dots in file names":  {Disks: []DiskSpec{{Path: "/srv/a..b/.c/d.raw"}}},
		"max disks and nics":  maxed(),
		"bridge with dash":    {Networks: []NetworkSpec{{Bridge: "br-ex_1"}}},
		"cmdline with quotes": {Kernel: "/k", Cmdline: `init=/bin/sh "a b"`},
	}
	for name, v := range cases {
		t.Run(name, func(t *testing.T) {
			if err := v.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func maxed() *VMSpec {
	v := &VMSpec{}
	for i := 0; i < MaxVMDisks; i++ {
		v.Disks = append(v.Disks, DiskSpec{Path: fmt.Sprintf("/d/%d.raw", i)})
	}
	for i := 0; i < MaxVMNetworks; i++ {
		v.Networks = append(v.Networks, NetworkSpec{Bridge: "br0", MAC: fmt.Sprintf("52:54:00:00:00:%02x", i+1)})
	}
	return v
}

func TestVMSpecValidateRejects(t *testing.T) {
	cases := []struct {
		name string
		edit func(*VMSpec)
		want string // a fragment of the error
	}{
		{"relative disk", func(v *VMSpec) { v.Disks[0].Path = "images/root.qcow2" }, "disk 1: path \"images/root.qcow2\" is not absolute"},
		{"empty disk path", func(v *VMSpec) { v.Disks[1].Path = "" }, "disk 2: path is empty"},
		{"dotdot disk", func(v *VMSpec) { v.Disks[0].Path = "/srv/../etc/shadow" }, "\"..\" element"},
		{"directory disk", func(v *VMSpec) { v.Disks[0].Path = "/srv/images/" }, "names a directory"},
		{"newline in disk", func(v *VMSpec) { v.Disks[0].Path = "/srv/a\nb" }, "control character"},
		{"long disk path", func(v *VMSpec) { v.Disks[0].Path = "/" + strings.Repeat("a", maxPath) }, "bytes long"},
		{"same disk twice", func(v *VMSpec) { v.Disks[1].Path = "/srv/images//root.qcow2" }, "already disk 1"},
		{"vmdk", func(v *VMSpec) { v.Disks[0].Format = "vmdk" }, "format \"vmdk\" is not supported"},
		{"upper-case format", func(v *VMSpec) { v.Disks[0].Format = "QCOW2" }, "not supported"},
		{"too many disks", func(v *VMSpec) { *v = *maxed(); v.Disks = append(v.Disks, DiskSpec{Path: "/x"}) }, "17 disks; at most 16"},
		{"relative kernel", func(v *VMSpec) { v.Kernel = "vmlinuz" }, "kernel: path \"vmlinuz\" is not absolute"},
		{"relative initrd", func(v *VMSpec) { v.Initrd = "./initrd" }, "initrd: path"},
		{"initrd without kernel", func(v *VMSpec) { v.Kernel = "" }, "an initrd needs a kernel"},
		{"cmdline without kernel", func(v *VMSpec) { v.Kernel, v.Initrd = "", "" }, "command line needs a kernel"},
		{"long cmdline", func(v *VMSpec) { v.Cmdline = strings.Repeat("x", MaxKernelCmdline+1) }, "2048 bytes long; at most 2047"},
		{"newline in cmdline", func(v *VMSpec) { v.Cmdline = "a\nb" }, "control character at byte 1"},
		{"empty bridge", func(v *VMSpec) { v.Networks[0].Bridge = "" }, "network 1: bridge name is empty"},
		{"long bridge", func(v *VMSpec) { v.Networks[1].Bridge = strings.Repeat("b", 16) }, "network 2: bridge name"},
		{"slash in bridge", func(v *VMSpec) { v.Networks[0].Bridge = "br/0" }, "not a valid interface name"},
		{"space in bridge", func(v *VMSpec) { v.Networks[0].Bridge = "br 0" }, "not a valid interface name"},
		{"colon in bridge", func(v *VMSpec) { v.Networks[0].Bridge = "br0:1" }, "not a valid interface name"},
		{"dot bridge", func(v *VMSpec) { v.Networks[0].Bridge = "." }, "not a valid interface name"},
		{"non-ascii bridge", func(v *VMSpec) { v.Networks[0].Bridge = "brü" }, "non-ASCII"},
		{"bad mac", func(v *VMSpec) { v.Networks[0].MAC = "52:54:00:12:34" }, "not an Ethernet address"},
		{"dashed mac", func(v *VMSpec) { v.Networks[0].MAC = "52-54-00-12-34-56" }, "not an Ethernet address"},
		{"infiniband mac", func(v *VMSpec) { v.Networks[0].MAC = "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01" }, "not an Ethernet address"},
		{"multicast mac", func(v *VMSpec) { v.Networks[0].MAC = "01:00:5e:00:00:01" }, "multicast"},
		{"zero mac", func(v *VMSpec) { v.Networks[0].MAC = "00:00:00:00:00:00" }, "all zeros"},
		{"same mac twice", func(v *VMSpec) { v.Networks[1].MAC = "52:54:00:12:34:56" }, "already network 1's"},
		{"same mac other case", func(v *VMSpec) { v.Networks[1].MAC = "52:54:00:12:34:56"; v.Networks[0].MAC = "52:54:00:12:34:56" }, "already"},
		{"too many nics", func(v *VMSpec) { *v = *maxed(); v.Networks = append(v.Networks, NetworkSpec{Bridge: "br0"}) }, "9 networks; at most 8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := goodVM()
			c.edit(v)
			err := v.Validate()
			if err == nil {
				t.Fatalf("Validate accepted %+v", v)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestVMSpecValidateReportsEveryProblem(t *testing.T) {
	v := &VMSpec{
		Disks:    []DiskSpec{{Path: "rel", Format: "vdi"}},
		Initrd:   "/i",
		Networks: []NetworkSpec{{Bridge: "", MAC: "x"}},
	}
	err := v.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"not absolute", "\"vdi\"", "needs a kernel", "bridge name is empty", "mac \"x\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestParseMACCanonical(t *testing.T) {
	got, err := ParseMAC("52:54:00:AB:cd:EF")
	if err != nil || got != "52:54:00:ab:cd:ef" {
		t.Fatalf("ParseMAC = %q, %v", got, err)
	}
}

func TestWorkloadSpecValidateChecksVM(t *testing.T) {
	s := WorkloadSpec{Name: "web", Kind: KindVM, CPUs: 1, Memory: 128 * MiB,
		VM: &VMSpec{Disks: []DiskSpec{{Path: "relative.img"}}}}
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), "disk 1: path \"relative.img\" is not absolute") {
		t.Fatalf("WorkloadSpec.Validate = %v, want the disk path rejected", err)
	}
	s.VM.Disks[0].Path = "/srv/ok.img"
	if err := s.Validate(); err != nil {
		t.Fatalf("WorkloadSpec.Validate of a good VM: %v", err)
	}
}
