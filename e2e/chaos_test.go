package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
)

// TestChaosShort is the short seeded version of `make chaos`: random crash,
// hang and partition faults, some with the BMC down for a while, against a
// dev cluster; the truth is read from the hosts' drivers throughout. With
// containerd, the workloads are real containers that outlive a hung or
// partitioned agent, and the truth comes from containerd itself.
func TestChaosShort(t *testing.T) {
	for _, driver := range []string{"test", "containerd"} {
		t.Run(driver, func(t *testing.T) {
			if why := daemon.Missing(); driver == "containerd" && why != "" {
				if os.Getenv("BULWARK_REQUIRE_REAL") == "1" {
					t.Fatalf("BULWARK_REQUIRE_REAL=1 but containerd cannot run here: %s", why)
				}
				t.Skipf("SKIP: chaos with real containers needs root and containerd: %s", why)
			}
			cmd := exec.Command(filepath.Join(binDir, "bulwarkd"), "bench", "chaos", "--faults", "5", "--seed", "5", "--driver", driver)
			out, err := cmd.CombinedOutput()
			t.Logf("\n%s", out)
			if err != nil {
				t.Fatalf("chaos run failed: %v", err)
			}
			if !strings.Contains(string(out), "double_runs=0 lost=0") {
				t.Fatal("chaos run reported double runs or lost workloads")
			}
		})
	}
}
