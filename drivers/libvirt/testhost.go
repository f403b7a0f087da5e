package libvirt

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bulwarkhq/bulwark/api"
)

// testNode is the node definition libvirt's test driver reads from a file
// (test:///abs/path): /node/cpu/{nodes,sockets,cores,threads,active,mhz,model}
// and /node/memory in KiB. Any <domain>, <network>, <pool>... children would
// become objects of the simulated host, so none are written: the host starts
// empty.
type testNode struct {
	XMLName xml.Name    `xml:"node"`
	Comment xml.Comment `xml:",comment"`
	CPU     testNodeCPU `xml:"cpu"`
	// Memory is in KiB.
	Memory uint64 `xml:"memory"`
}

type testNodeCPU struct {
	MHz     int    `xml:"mhz"`
	Model   string `xml:"model"`
	Nodes   int    `xml:"nodes"`
	Sockets int    `xml:"sockets"`
	Cores   int    `xml:"cores"`
	Threads int    `xml:"threads"`
	// Active caps nodes*sockets*cores*threads; it is what NodeGetInfo reports.
	Active int `xml:"active"`
}

// WriteTestHostXML writes a node definition for libvirt's test driver with
// the given capacity. Opening test:///<abs path> then gives a simulated host
// whose NodeGetInfo reports cpus and memory (rounded down to KiB). The test
// driver does no capacity checks of its own.
func WriteTestHostXML(path string, cpus int, memory api.ByteSize) error {
	if cpus < 1 || cpus > api.MaxCPUs {
		return fmt.Errorf("write test host %s: cpus must be from 1 to %d, got %d", path, api.MaxCPUs, cpus)
	}
	if memory < api.KiB {
		return fmt.Errorf("write test host %s: memory must be at least 1KiB, got %s", path, memory)
	}
	n := testNode{
		Comment: xml.Comment(" libvirt test driver host, written by Bulwark "),
		CPU: testNodeCPU{
			MHz: 2000, Model: "x86_64",
			Nodes: 1, Sockets: 1, Cores: cpus, Threads: 1, Active: cpus,
		},
		Memory: uint64(memory / api.KiB),
	}
	b, err := xml.MarshalIndent(n, "", "  ")
	if err != nil {
		return fmt.Errorf("write test host %s: %w", path, err)
	}
	b = append([]byte(xml.Header), b...)
	b = append(b, '\n')
	// Write then rename, so that a concurrent open never reads half a file.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".host-*.xml")
	if err != nil {
		return fmt.Errorf("write test host %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write test host %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write test host %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write test host %s: %w", path, err)
	}
	return nil
}

// TestHostURI returns the test-driver URI for a node file written by
// WriteTestHostXML. The test driver needs an absolute path.
func TestHostURI(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("test host uri %s: %w", path, err)
	}
	return "test://" + filepath.ToSlash(abs), nil
}
