package e2e

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
	"github.com/bulwarkhq/bulwark/network"
)

const svcVIP = "10.213.0.80"

// replicaCommand serves the copy's name (its hostname) on 18080 and a
// health page on 18081 from a second httpd, which the test kills to make
// one copy fail its check.
var replicaCommand = []string{"sh", "-c", "trap 'exit 0' TERM; busybox mkdir -p /www /hc; hostname > /www/index.html; echo ok > /hc/index.html; " +
	"httpd -p 18081 -h /hc; httpd -f -p 18080 -h /www & wait"}

// TestLoadBalancedService: a 3-copy busybox HTTP service behind one
// floating IP, on five hosts that are network namespaces on one bridge,
// with a client in its own namespace. The client reaches every copy; a
// copy that fails its check (the one whose host holds the address) leaves
// the pool (the client sees only the others, no request fails) and returns
// once healthy, the address staying where it is; the host holding the address is
// crashed and the service keeps answering from the address's new holder;
// scaling 3 -> 5 -> 2 converges, with the pool following.
func TestLoadBalancedService(t *testing.T) {
	needNetnsContainers(t)
	hosts := []string{"host-1", "host-2", "host-3", "host-4", "host-5"}
	apiURL, _, dataDir, etcdPort := startDevWith(t, len(hosts), "--driver", "containerd", "--netns")
	prefix := fmt.Sprintf("bwd%d-", etcdPort)
	client, err := network.Open(prefix + "client")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range hosts {
				b, _ := os.ReadFile(dataDir + "/hosts/" + h + "/agent.log")
				t.Logf("--- %s agent log (tail):\n%s", h, tail(string(b), 3000))
			}
		}
	})
	if out, errOut, code := ctl(t, apiURL, "vip", "create", svcVIP+"/24", "--network", "lan"); code != 0 {
		t.Fatalf("vip create: %s%s", out, errOut)
	}
	archive := dataDir + "/busybox-oci.tar"
	flags := [][2]string{{"--replicas", "3"}, {"--image-archive", archive}, {"--image", daemon.BusyboxRef}, {"--memory", "64MiB"},
		{"--vip", svcVIP}, {"--publish", "80:18080"}, {"--check", "http:18081/"}, {"--check-interval", "1s"}, {"--check-timeout", "900ms"},
		{"--check-failures", "2"}, {"--check-grace", "4s"}}
	// create is `service create NAME` with flags, one of them replaced.
	create := func(name, flag, value string) []string {
		args := []string{"service", "create", name}
		for _, f := range flags {
			if f[0] == flag {
				f[1] = value
			}
			args = append(args, f[0], f[1])
		}
		return append(append(args, "--"), replicaCommand...)
	}

	// Bad input: refused with a clear error, nothing sent or changed.
	rev := revision(t, apiURL)
	for _, c := range []struct {
		flag, value, want string
	}{
		{"--replicas", "-1", "replicas must be from 0 to 100, got -1"},
		{"--replicas", "101", "replicas must be from 0 to 100, got 101"},
		{"--publish", "80:70000", "ports must be from 1 to 65535"},
		{"--publish", "eighty", "use PORT:TARGETPORT"},
		{"--check", "http:70000/", "out of range"},
		{"--vip", "10.213.0.81", "floating IP 10.213.0.81 does not exist"},
	} {
		if out, errOut, code := ctl(t, apiURL, create("web", c.flag, c.value)...); code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("service create %s %s: exit %d %s%s; want an error with %q", c.flag, c.value, code, out, errOut, c.want)
		}
	}
	if r := revision(t, apiURL); r != rev {
		t.Fatalf("bad services changed the store: revision %d -> %d", rev, r)
	}

	if out, errOut, code := ctl(t, apiURL, create("web", "", "")...); code != 0 {
		t.Fatalf("service create: %s%s", out, errOut)
	}
	// A VIP in use is refused.
	if _, errOut, code := ctl(t, apiURL, create("web2", "", "")...); code == 0 || !strings.Contains(errOut, "already in use by service web") {
		t.Errorf("second service on the same VIP: exit %d %s", code, errOut)
	}

	watch := watchVIPs(t, prefix, hosts, svcVIP)
	var v api.ServiceView
	show := func() api.ServiceView {
		ctlJSON(t, apiURL, &v, "service", "show", "web")
		return v
	}
	// seen fetches the VIP n times and counts the answers by copy.
	seen := func(n int) (map[string]int, int) {
		out, failed := map[string]int{}, 0
		for i := 0; i < n; i++ {
			b, err := fetch(client, "http://"+svcVIP+"/")
			if err != nil {
				failed++
				continue
			}
			out[strings.TrimSpace(b)]++
		}
		return out, failed
	}
	inPool := func(v api.ServiceView) []string {
		var out []string
		if v.Pool != nil {
			for _, b := range v.Pool.Backends {
				out = append(out, b.Workload)
			}
		}
		return out
	}
	took := eventually(t, "3 healthy copies in the pool, the client reaching each", 90*time.Second, func() bool {
		v := show()
		if v.Running != 3 || len(inPool(v)) != 3 || watch.holder(svcVIP) == "" {
			return false
		}
		got, _ := seen(30)
		return len(got) == 3
	})
	got, failed := seen(60)
	t.Logf("3 copies serving through %s (held by %s) after %s; 60 requests: %v, %d failed", svcVIP, watch.holder(svcVIP), took, got, failed)
	if failed > 0 || len(got) != 3 {
		t.Fatalf("steady state: %v, %d failed", got, failed)
	}

	// One copy's check fails: it leaves the pool within interval x
	// failures (plus the time to notice), then, restarted by its host,
	// returns once healthy.
	v = show()
	// The copy whose host holds the address: its restart must not move it.
	victim := v.Instances[0]
	for _, m := range v.Instances {
		if m.Name == v.Anchor {
			victim = m
		}
	}
	holderBefore := watch.holder(svcVIP)
	// The health server alone (its argv, NUL-separated), not the shell
	// whose script mentions it.
	if err := killInNetns(prefix+victim.Host, "httpd\x00-p\x0018081\x00"); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	failedMeanwhile := 0
	left := eventually(t, victim.Name+" out of the client's answers", 20*time.Second, func() bool {
		got, failed := seen(20)
		failedMeanwhile += failed
		return got[victim.Name] == 0 && len(got) == 2
	})
	t.Logf("%s failed its check: the client stopped reaching it %s after its health server died (check interval 1s x 2 failures); %d requests failed meanwhile",
		victim.Name, left.Round(time.Millisecond), failedMeanwhile)
	if failedMeanwhile > 0 {
		t.Errorf("%d requests failed while %s left the pool: its web server still ran, so none should", failedMeanwhile, victim.Name)
	}
	eventually(t, victim.Name+" back in the pool", 60*time.Second, func() bool {
		got, _ := seen(30)
		return got[victim.Name] > 0 && len(got) == 3
	})
	t.Logf("%s back in the pool %s after it failed", victim.Name, time.Since(killed).Round(time.Millisecond))
	if h := watch.holder(svcVIP); h != holderBefore || show().Anchor != victim.Name {
		t.Errorf("the address moved from %s to %s (anchor %s) while its anchor %s restarted in place", holderBefore, h, v.Anchor, victim.Name)
	}

	// The host holding the address crashes: the address moves (after the
	// fence), and the service answers throughout from the others, then
	// from the new holder.
	holder := watch.holder(svcVIP)
	start := time.Now()
	devFault(t, apiURL, holder, "crash")
	var outage time.Duration
	lastOK := time.Now()
	eventually(t, svcVIP+" moved off "+holder+" and answering", 60*time.Second, func() bool {
		got, _ := seen(1)
		if len(got) > 0 {
			if gap := time.Since(lastOK); gap > outage {
				outage = gap
			}
			lastOK = time.Now()
		}
		h := watch.holder(svcVIP)
		return h != "" && h != holder && len(got) > 0
	})
	t.Logf("crash of %s: %s moved to %s %s later; longest gap between answers %s", holder, svcVIP, watch.holder(svcVIP), time.Since(start).Round(time.Millisecond), outage.Round(time.Millisecond))
	eventually(t, "3 copies serving again", 60*time.Second, func() bool {
		v := show()
		got, _ := seen(30)
		return v.Running == 3 && len(inPool(v)) == 3 && len(got) == 3
	})
	devFault(t, apiURL, holder, "heal")
	eventually(t, holder+" back", 60*time.Second, func() bool {
		apiCall(t, http.MethodPost, apiURL+"/v1/nodes/"+holder+"/power-on", nil, nil)
		code, _ := apiCall(t, http.MethodPost, apiURL+"/v1/nodes/"+holder+"/clear", nil, nil)
		return code < 300 && nodeByName(t, apiURL, holder).State == api.NodeReady
	})

	// Scale 3 -> 5 -> 2.
	for _, n := range []int{5, 2} {
		if out, errOut, code := ctl(t, apiURL, "service", "scale", "web", strconv.Itoa(n)); code != 0 {
			t.Fatalf("scale %d: %s%s", n, out, errOut)
		}
		failedMeanwhile, total := 0, 0
		took := eventually(t, fmt.Sprintf("%d copies serving", n), 90*time.Second, func() bool {
			v := show()
			got, failed := seen(10 * n)
			failedMeanwhile, total = failedMeanwhile+failed, total+10*n
			return v.Running == n && len(v.Members) == n && len(inPool(v)) == n && len(got) == n
		})
		t.Logf("scaled to %d: every copy answering after %s: %v; %d of %d requests failed meanwhile", n, took, inPool(show()), failedMeanwhile, total)
	}
	if code, body := apiCall(t, http.MethodDelete, apiURL+"/v1/vips/"+svcVIP, nil, nil); code != http.StatusConflict || !strings.Contains(body, "load-balanced address of service web") {
		t.Errorf("deleting the service's VIP: %d %s", code, body)
	}
	t.Logf("address watch: %d samples of every host namespace, never two holders", watch.samples.Load())
}

// killInNetns kills the processes whose command line contains cmd and
// that run in the named network namespace.
func killInNetns(netns, cmd string) error {
	var want syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+netns, &want); err != nil {
		return err
	}
	n := 0
	for _, pid := range pidsWith(cmd) {
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st); err != nil || st.Ino != want.Ino || st.Dev != want.Dev {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			n++
		}
	}
	if n == 0 {
		out, _ := exec.Command("ps", "-eo", "pid,args").CombinedOutput()
		return fmt.Errorf("no %q in netns %s:\n%s", cmd, netns, out)
	}
	return nil
}
