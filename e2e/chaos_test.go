package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestChaosShort is the short seeded version of `make chaos`: random crash,
// hang and partition faults, some with the BMC down for a while, against a
// dev cluster; the truth is read from the hosts' drivers throughout.
func TestChaosShort(t *testing.T) {
	cmd := exec.Command(filepath.Join(binDir, "bulwarkd"), "bench", "chaos", "--faults", "5", "--seed", "5")
	out, err := cmd.CombinedOutput()
	t.Logf("\n%s", out)
	if err != nil {
		t.Fatalf("chaos run failed: %v", err)
	}
	if !strings.Contains(string(out), "double_runs=0 lost=0") {
		t.Fatal("chaos run reported double runs or lost workloads")
	}
}
