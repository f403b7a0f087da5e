package api

// VMSpec is what a VM needs beyond CPUs and memory. Every path is as seen
// from the hosts (shared storage for disks).
type VMSpec struct {
	// Disks are existing images attached in order (vda, vdb, ...).
	Disks []DiskSpec `json:"disks,omitempty"`
	// Kernel, Initrd and Cmdline boot the guest directly, without a bootloader.
	Kernel  string `json:"kernel,omitempty"`
	Initrd  string `json:"initrd,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
	// Networks attach one virtio NIC per entry to a host bridge.
	Networks []NetworkSpec `json:"networks,omitempty"`
}

// DiskSpec is one disk image.
type DiskSpec struct {
	Path string `json:"path"`
	// Format is "raw" or "qcow2" (default raw).
	Format   string `json:"format,omitempty"`
	ReadOnly bool   `json:"read_only,omitempty"`
}

// NetworkSpec attaches a NIC to a named host bridge.
type NetworkSpec struct {
	Bridge string `json:"bridge"`
	// MAC is optional; libvirt picks one when empty.
	MAC string `json:"mac,omitempty"`
}
