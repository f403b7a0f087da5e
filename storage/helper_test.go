//go:build linux

package storage

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// helperEnv names what a child process started by these tests is to do;
// its argument (JSON) is in helperArgEnv. A child prints its results as
// lines starting with helperMark on stdout.
const (
	helperEnv    = "BULWARK_STORAGE_TEST_HELPER"
	helperArgEnv = "BULWARK_STORAGE_TEST_ARG"
	helperMark   = "HELPER-RESULT "
)

// TestHelperProcess is not a test: it is the body of the child processes
// the tests start by running this test binary again.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		return // a helper for other tests: it works only in their child processes
	}
	arg := []byte(os.Getenv(helperArgEnv))
	var out any
	var err error
	switch role {
	case "writers":
		out, err = helperWriters(arg)
	case "check":
		out, err = helperCheck(arg)
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	b, _ := json.Marshal(out)
	fmt.Println(helperMark + string(b))
	os.Exit(0)
}

// helperCommand runs this test binary as a child doing role with arg.
func helperCommand(t testing.TB, binary, role string, arg any) *exec.Cmd {
	t.Helper()
	b, err := json.Marshal(arg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperArgEnv+"="+string(b))
	return cmd
}

// helperResult reads a child's result from its output.
func helperResult(t testing.TB, out []byte, v any) {
	t.Helper()
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, helperMark); ok {
			if err := json.Unmarshal([]byte(rest), v); err != nil {
				t.Fatalf("helper result: %v", err)
			}
			return
		}
	}
	t.Fatalf("helper printed no result:\n%s", out)
}
