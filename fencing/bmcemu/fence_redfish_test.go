package bmcemu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/fencing"
)

// Cross-check against an independent Redfish client: Debian's fence_redfish
// (package fence-agents), the agent Pacemaker clusters fence with.

// fenceRedfish finds the agent or skips loudly; with BULWARK_REQUIRE_REAL=1 a
// missing agent is a failure.
func fenceRedfish(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("fence_redfish")
	if err == nil {
		return p
	}
	const msg = "*** NOT RUN: fence_redfish is not installed, so the BMC emulator was NOT cross-checked " +
		"against an independent Redfish client. Install it with `scripts/deps.sh test` or " +
		"`apt-get install --no-install-recommends fence-agents`. ***"
	if os.Getenv("BULWARK_REQUIRE_REAL") == "1" {
		t.Fatal(msg + " (BULWARK_REQUIRE_REAL=1)")
	}
	t.Skip(msg)
	return ""
}

type agentResult struct {
	out  string
	code int
}

// runAgent runs fence_redfish against b with args and returns its combined
// output and exit code.
func runAgent(t *testing.T, agent string, b *BMC, env []string, args ...string) agentResult {
	t.Helper()
	_, port, _ := strings.Cut(b.Addr(), ":")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"--ip", "127.0.0.1", "--ipport", port, "--username", user}, args...)
	cmd := exec.CommandContext(ctx, agent, full...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return agentResult{string(out), 0}
	case errors.As(err, &exit):
		return agentResult{string(out), exit.ExitCode()}
	default:
		t.Fatalf("fence_redfish %v: %v\n%s", args, err, out)
		return agentResult{}
	}
}

func TestFenceRedfishDrivesTheEmulator(t *testing.T) {
	agent := fenceRedfish(t)
	certFile := filepath.Join(t.TempDir(), "bmc.pem")
	var offs, ons atomic.Int32
	b := start(t, func(c *Config) {
		c.CertFile = certFile
		c.SystemID = "System.Embedded.1"
		c.OnPowerOff = func() { offs.Add(1) }
		c.OnPowerOn = func() { ons.Add(1) }
	})
	insecure := []string{"--password", pass, "--ssl-insecure"}
	steps := []struct {
		action string
		code   int // fence agents exit 2 for "status: off"
		out    string
		power  fencing.PowerState
	}{
		{"status", 0, "Status: ON", fencing.On},
		{"off", 0, "Success: Powered OFF", fencing.Off},
		{"status", 2, "Status: OFF", fencing.Off},
		{"off", 0, "Success: Already OFF", fencing.Off},
		{"on", 0, "Success: Powered ON", fencing.On},
		{"reboot", 0, "Success: Rebooted", fencing.On},
	}
	for _, s := range steps {
		r := runAgent(t, agent, b, nil, append(insecure, "-o", s.action)...)
		if r.code != s.code || !strings.Contains(r.out, s.out) || b.Power() != s.power {
			t.Fatalf("fence_redfish -o %s: exit %d, output %q, power %s; want exit %d, %q, %s",
				s.action, r.code, r.out, b.Power(), s.code, s.out, s.power)
		}
	}
	if offs.Load() != 2 || ons.Load() != 2 {
		t.Fatalf("hooks: %d offs, %d ons; want 2 and 2", offs.Load(), ons.Load())
	}

	// Certificate verification by OpenSSL (python-requests) with the
	// emulator's certificate as CA, and an explicit systems URI.
	r := runAgent(t, agent, b, []string{"REQUESTS_CA_BUNDLE=" + certFile},
		"--password", pass, "--ssl-secure", "--systems-uri", "/redfish/v1/Systems/System.Embedded.1", "-o", "status")
	if r.code != 0 || !strings.Contains(r.out, "Status: ON") {
		t.Fatalf("verified TLS: exit %d, %q", r.code, r.out)
	}
	// With another BMC's certificate as CA it is rejected.
	otherCA := filepath.Join(t.TempDir(), "other.pem")
	if _, err := New(Config{Username: user, Password: pass, CertFile: otherCA}); err != nil {
		t.Fatal(err)
	}
	r = runAgent(t, agent, b, []string{"REQUESTS_CA_BUNDLE=" + otherCA},
		"--password", pass, "--ssl-secure", "-o", "status")
	if r.code == 0 || !strings.Contains(r.out, "CERTIFICATE_VERIFY_FAILED") {
		t.Fatalf("a certificate signed by another CA was accepted: exit %d, %q", r.code, r.out)
	}

	// A wrong password fails (fence_redfish does not look at the status
	// code; it trips over the error body instead) and changes nothing.
	before := len(b.Stats().Resets)
	r = runAgent(t, agent, b, nil, "--password", "wrong-password", "--ssl-insecure", "-o", "off")
	if r.code == 0 || b.Power() != fencing.On || len(b.Stats().Resets) != before {
		t.Fatalf("wrong password: exit %d, power %s, output %q", r.code, b.Power(), r.out)
	}
	if st := b.Stats(); st.Logins != 0 || st.FailedLogins == 0 {
		t.Fatalf("fence_redfish uses Basic auth only: %+v", st)
	}
}

// fence_redfish polls once a second while the emulator reads PoweringOff.
func TestFenceRedfishWaitsOutPoweringOff(t *testing.T) {
	agent := fenceRedfish(t)
	b := start(t, func(c *Config) { c.PowerOffDelay = 1500 * time.Millisecond })
	r := runAgent(t, agent, b, nil, "--password", pass, "--ssl-insecure", "-o", "off")
	if r.code != 0 || !strings.Contains(r.out, "Success: Powered OFF") || b.Power() != fencing.Off {
		t.Fatalf("exit %d, output %q, power %s", r.code, r.out, b.Power())
	}
	if b.Stats().Reads[fencing.PoweringOff] == 0 {
		t.Fatal("fence_redfish never saw PoweringOff")
	}
}
