package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
	"github.com/bulwarkhq/bulwark/network/nettest"
)

// TestBenchFailoverVIP: the failover benchmark with a floating IP runs,
// reports the client-visible outage, and sees no address on two hosts.
func TestBenchFailoverVIP(t *testing.T) {
	why := daemon.Missing()
	if why == "" {
		why = nettest.Missing()
	}
	if why != "" {
		if os.Getenv(requireRealEnv) == "1" {
			t.Fatalf("needs root, containerd and iproute2: %s", why)
		}
		t.Skipf("SKIPPING REAL-NETWORK TEST: needs root, containerd and iproute2: %s (set %s=1 to make this a failure)", why, requireRealEnv)
	}
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
