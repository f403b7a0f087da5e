package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// TestReplicatedService: a dev cluster of 3 hosts (libvirt's test driver)
// keeps 3 copies of a VM service, one per host; scaling to 2 removes the
// highest-numbered copy; a crashed host's copy is restarted on the host
// left free once it is fenced; deleting the service removes every copy.
func TestReplicatedService(t *testing.T) {
	apiURL, _, _ := startDev(t, 3)
	if out, errOut, code := ctl(t, apiURL, "service", "create", "web", "--replicas", "3", "--vm", "--memory", "256MiB"); code != 0 {
		t.Fatal(errOut)
	} else if !strings.Contains(out, `service "web" created`) {
		t.Fatalf("create said %q", out)
	}
	var v api.ServiceView
	// running returns the hosts of the service's running copies, by copy.
	running := func() map[string]string {
		ctlJSON(t, apiURL, &v, "service", "show", "web")
		out := map[string]string{}
		for _, m := range v.Instances {
			if m.State == api.StateRunning && !m.Deleting {
				out[m.Name] = m.Host
			}
		}
		return out
	}
	spread := func(m map[string]string) bool {
		seen := map[string]bool{}
		for _, h := range m {
			if seen[h] {
				return false
			}
			seen[h] = true
		}
		return true
	}
	var hosts map[string]string
	took := eventually(t, "3 copies running", 30*time.Second, func() bool {
		hosts = running()
		return len(hosts) == 3 && v.Running == 3
	})
	t.Logf("3 copies running after %s: %v", took, hosts)
	if !spread(hosts) {
		t.Fatalf("two copies on one host: %v", hosts)
	}
	if strings.Join(v.Members, ",") != "web-1,web-2,web-3" {
		t.Fatalf("members %v", v.Members)
	}
	var w api.WorkloadView
	ctlJSON(t, apiURL, &w, "workload", "show", "web-2")
	if w.Labels[api.ServiceLabel] != "web" || w.AntiAffinity != "svc-web" {
		t.Fatalf("web-2: labels %v, anti-affinity %q", w.Labels, w.AntiAffinity)
	}

	if _, errOut, code := ctl(t, apiURL, "service", "scale", "web", "2"); code != 0 {
		t.Fatal(errOut)
	}
	eventually(t, "web-3 gone", 30*time.Second, func() bool {
		ctlJSON(t, apiURL, &v, "service", "show", "web")
		return strings.Join(v.Members, ",") == "web-1,web-2" && v.Running == 2
	})
	free := hosts["web-3"]

	// The host of web-1 crashes: once it is fenced, web-1 runs on the
	// host web-3 left free (the third one has web-2).
	victim := hosts["web-1"]
	devFault(t, apiURL, victim, "crash")
	took = eventually(t, "web-1 running again", 60*time.Second, func() bool {
		h := running()
		return len(h) == 2 && h["web-1"] != victim && h["web-1"] != ""
	})
	h := running()
	t.Logf("web-1 moved from %s to %s after %s", victim, h["web-1"], took)
	if h["web-1"] != free || !spread(h) || strings.Join(v.Members, ",") != "web-1,web-2" {
		t.Fatalf("after the crash: %v (members %v), want web-1 on %s", h, v.Members, free)
	}

	if _, errOut, code := ctl(t, apiURL, "service", "delete", "web", "--wait", "--timeout", "60s"); code != 0 {
		t.Fatal(errOut)
	}
	var wls []api.WorkloadView
	ctlJSON(t, apiURL, &wls, "workload", "list")
	if len(wls) != 0 {
		t.Fatalf("workloads left after the service was deleted: %v", wls)
	}
	if _, errOut, code := ctl(t, apiURL, "service", "show", "web"); code == 0 || !strings.Contains(errOut, "not found") {
		t.Fatalf("service show after delete: exit %d: %s", code, errOut)
	}
}
