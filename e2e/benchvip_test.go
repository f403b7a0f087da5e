package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchFailoverVIP: the failover benchmark with a floating IP runs,
// reports the client-visible outage, and sees no address on two hosts.
func TestBenchFailoverVIP(t *testing.T) {
	needNetnsContainers(t)
	out, err := exec.Command(filepath.Join(binDir, "bulwarkd"), "bench", "failover", "--driver", "containerd", "--vip", "--rounds", "1", "--workloads", "2").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("bench failover --vip: %v", err)
	}
	for _, want := range []string{"client outage at 10.213.0.100", "vip_on_two_hosts=0", "double_runs=0 lost=0"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q", want)
		}
	}
}
