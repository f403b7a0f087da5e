package ctl

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/bulwarkhq/bulwark/api"
)

// defaultVMMemory is the default --memory of `vm create` (--cpus is 1).
const defaultVMMemory = "256MiB"

func vmCommand() *cli.Command {
	return &cli.Command{
		Name:      "vm",
		UsageText: "bulwarkctl vm create NAME [options]",
		Aliases:   []string{"vms"},
		Usage:     "create virtual machines",
		Description: `Creates VM workloads from command-line flags. To list, inspect or delete
VMs use "bulwarkctl workload ...", which covers every kind of workload;
"bulwarkctl workload logs NAME" shows a VM's serial console.

Examples:
   bulwarkctl vm create web-1
   bulwarkctl vm create db-1 --cpus 4 --memory 8GiB
   bulwarkctl vm create web-2 --disk /srv/images/web2.qcow2:qcow2 --network br0`,
		Subcommands: []*cli.Command{vmCreateCommand()},
	}
}

func vmCreateCommand() *cli.Command {
	return &cli.Command{
		Name:      "create",
		Usage:     "create a VM workload",
		ArgsUsage: "NAME",
		Description: `Asks the cluster to run a virtual machine called NAME. The scheduler places
it on a ready node with enough free CPUs and memory; until then it is
"pending", and "bulwarkctl workload show NAME" says why.

` + nameHelp + `
--cpus: 1 to 4096, default 1.
--memory: at least 64MiB, default ` + defaultVMMemory + `. ` + memoryUnitsHelp + `
` + workloadFlagsHelp + `

Disks, boot and network (all optional). Every path is as the hosts see it:
absolute, on storage that every host that may run the VM can read (the VM
may move to another host). Bulwark does not copy or create images; whether
a file or bridge exists is found out by the host when it starts the VM.
--disk PATH[:FORMAT][:ro]: attach an existing disk image; repeat the flag
      for several (the first is vda, then vdb, ...; at most 16). FORMAT is
      raw (the default) or qcow2; ":ro" attaches it read-only. PATH may not
      hold ':' here (use "bulwarkctl apply" for such a path), e.g.
         --disk /srv/images/web1.qcow2:qcow2
         --disk /srv/images/data.img            (raw)
         --disk /srv/images/seed.iso:raw:ro
--kernel PATH: boot this kernel directly, without a bootloader, e.g.
      --kernel /srv/boot/vmlinuz-6.1
--initrd PATH: the initial ramdisk for --kernel, e.g.
      --initrd /srv/boot/initrd.img-6.1 (needs --kernel).
--cmdline STRING: the kernel command line for --kernel, e.g.
      --cmdline 'console=ttyS0 root=/dev/vda1' (needs --kernel; quote it).
--network BRIDGE[=MAC]: one virtio network card on the host bridge BRIDGE
      (a Linux interface name, e.g. br0); repeat the flag for several (at
      most 8). MAC is a unicast Ethernet address like 52:54:00:12:34:56;
      without it one is picked, e.g. --network br0 --network br1=52:54:00:ab:cd:01

` + sharedFlagsHelp + `
      A VM gets each volume as one more disk after its --disk disks, in
      the order given (with one --disk, the first volume is vdb), with the
      volume's format; read-only for a shared-read volume.

` + checkFlagsHelp(true) + `

The input is checked first; if it is invalid, nothing is sent to the server.

Examples:
   bulwarkctl vm create web-1
   bulwarkctl vm create db-1 --cpus 4 --memory 8GiB --label tier=db --priority 500
   bulwarkctl vm create web-2 --disk /srv/images/web2.qcow2:qcow2 --network br0
   bulwarkctl vm create fw-1 --kernel /srv/boot/vmlinuz --initrd /srv/boot/initrd.img --cmdline 'console=ttyS0' --disk /srv/images/fw-1.img
   bulwarkctl vm create db-2 --require 'rack in (r1,r2)' --require zone=eu-1 --prefer disk=ssd:50
   bulwarkctl vm create pg-1 --anti-affinity pg --spread-by rack --restart on-failure
   bulwarkctl vm create db-3 --memory 4GiB --disk /srv/images/db-3.qcow2:qcow2 --volume pg-data --vip 192.0.2.10
   bulwarkctl vm create web-4 --disk /srv/images/web4.qcow2:qcow2 --network br0 --check http:80/healthz
   bulwarkctl vm create web-3 --memory 1GiB -o json`,
		Flags: withGlobal(append(workloadFlags(defaultVMMemory),
			&cli.StringSliceFlag{Name: "disk", Usage: "disk image `PATH[:FORMAT][:ro]`, FORMAT raw (default) or qcow2, e.g. /srv/images/web1.qcow2:qcow2; repeat for more"},
			&cli.StringFlag{Name: "kernel", Usage: "boot the kernel at `PATH` directly, without a bootloader"},
			&cli.StringFlag{Name: "initrd", Usage: "initial ramdisk `PATH` for --kernel"},
			&cli.StringFlag{Name: "cmdline", Usage: "kernel command line `STRING` for --kernel"},
			&cli.StringSliceFlag{Name: "network", Aliases: []string{"net"}, Usage: "network card on host bridge `BRIDGE[=MAC]`, e.g. br0; repeat for more"},
		)...),
		Action: leaf(vmCreate),
	}
}

func vmCreate(c *cli.Context, args []string) error {
	name, err := oneName(c, args)
	if err != nil {
		return err
	}
	spec, err := vmSpecFromFlags(c, name)
	if err != nil {
		return err
	}
	return createWorkload(c, "vm", spec)
}

// vmSpecFromFlags builds and validates the spec, reporting every problem.
func vmSpecFromFlags(c *cli.Context, name string) (api.WorkloadSpec, error) {
	spec, flagErrs := specFromFlags(c, name, api.KindVM)
	vm := api.VMSpec{
		Kernel:  c.String("kernel"),
		Initrd:  c.String("initrd"),
		Cmdline: c.String("cmdline"),
	}
	for _, f := range []string{"kernel", "initrd", "cmdline"} {
		if c.IsSet(f) && c.String(f) == "" {
			flagErrs = append(flagErrs, fmt.Errorf("--%s is empty", f))
		}
	}
	// Every --disk and --network is kept, even one with a problem, so that
	// Validate's "disk N" and "network N" count the flags as given.
	for _, d := range c.StringSlice("disk") {
		disk, err := parseDisk(d)
		if err != nil {
			flagErrs = append(flagErrs, err)
		}
		vm.Disks = append(vm.Disks, disk)
	}
	for _, n := range c.StringSlice("network") {
		nic, err := parseNetwork(n)
		if err != nil {
			flagErrs = append(flagErrs, err)
		}
		vm.Networks = append(vm.Networks, nic)
	}
	if len(vm.Disks) > 0 || len(vm.Networks) > 0 || vm.Kernel != "" || vm.Initrd != "" || vm.Cmdline != "" {
		spec.VM = &vm
	}
	return spec, checkSpec("vm", spec, flagErrs)
}

// parseDisk reads --disk PATH[:FORMAT][:ro]. The path itself is checked
// by api.VMSpec.Validate. On an error the disk is returned with what could
// be read, and without the bad option.
func parseDisk(s string) (api.DiskSpec, error) {
	path, opts, hasOpts := strings.Cut(s, ":")
	d := api.DiskSpec{Path: path}
	if !hasOpts {
		return d, nil
	}
	for _, o := range strings.Split(opts, ":") {
		switch o {
		case api.DiskFormatRaw, api.DiskFormatQCOW2:
			if d.Format != "" {
				return d, fmt.Errorf("--disk %q: the format is given twice; use PATH[:FORMAT][:ro]", s)
			}
			if d.ReadOnly {
				return d, fmt.Errorf("--disk %q: the format comes before :ro, as in %s:%s:ro", s, path, o)
			}
			d.Format = o
		case "ro":
			if d.ReadOnly {
				return d, fmt.Errorf("--disk %q: :ro is given twice", s)
			}
			d.ReadOnly = true
		case "":
			return d, fmt.Errorf("--disk %q: empty option after ':'; use PATH[:FORMAT][:ro], e.g. --disk /srv/images/web1.qcow2:qcow2", s)
		default:
			return d, fmt.Errorf("--disk %q: format %q is not supported: use raw or qcow2 (and :ro for a read-only disk), e.g. --disk %s:qcow2; the path may not hold ':'", s, o, path)
		}
	}
	return d, nil
}

// parseNetwork reads --network BRIDGE[=MAC]. The bridge name and MAC are
// checked by api.VMSpec.Validate; a valid MAC is sent in canonical form.
func parseNetwork(s string) (api.NetworkSpec, error) {
	bridge, mac, hasMAC := strings.Cut(s, "=")
	n := api.NetworkSpec{Bridge: bridge, MAC: mac}
	if hasMAC && mac == "" {
		return n, fmt.Errorf("--network %q: the MAC after '=' is empty; give one like 52:54:00:12:34:56, or leave out '=' to have one picked", s)
	}
	if canon, err := api.ParseMAC(mac); hasMAC && err == nil {
		n.MAC = canon
	}
	return n, nil
}
