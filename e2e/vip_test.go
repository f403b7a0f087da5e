package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
	"github.com/bulwarkhq/bulwark/network"
	"github.com/bulwarkhq/bulwark/network/nettest"
)

const (
	vip4 = "10.213.0.100"
	vip6 = "fd00:b1:1::100"
)

// vipWatch samples every host namespace's addresses and fails the test if
// a floating IP is ever on two hosts at once.
type vipWatch struct {
	t       *testing.T
	hosts   map[string]*network.Host
	samples atomic.Int64
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	holders map[string]string // vip -> host, last seen
}

func watchVIPs(t *testing.T, prefix string, hosts []string, vips ...string) *vipWatch {
	w := &vipWatch{t: t, hosts: map[string]*network.Host{}, stop: make(chan struct{}), done: make(chan struct{}), holders: map[string]string{}}
	for _, h := range hosts {
		nh, err := network.Open(prefix + h)
		if err != nil {
			t.Fatal(err)
		}
		w.hosts[h] = nh
	}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			seen := map[string][]string{}
			for name, nh := range w.hosts {
				addrs, _ := nh.Addresses("eth0")
				for _, p := range addrs {
					for _, v := range vips {
						if p.Addr().String() == v {
							seen[v] = append(seen[v], name)
						}
					}
				}
			}
			w.samples.Add(1)
			w.mu.Lock()
			for _, v := range vips {
				if len(seen[v]) > 1 {
					t.Errorf("floating IP %s is on %d hosts at once: %v", v, len(seen[v]), seen[v])
				}
				if len(seen[v]) == 1 {
					w.holders[v] = seen[v][0]
				} else {
					w.holders[v] = ""
				}
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(w.close)
	return w
}

func (w *vipWatch) holder(vip string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holders[vip]
}

func (w *vipWatch) close() {
	select {
	case <-w.stop:
		return
	default:
	}
	close(w.stop)
	<-w.done
	for _, h := range w.hosts {
		h.Close()
	}
}

// fetch GETs url from inside the client namespace. The connection is made
// on the thread that is in the namespace (an http.Transport would dial from
// another goroutine, outside it); a socket stays in the namespace it was
// made in.
func fetch(client *network.Host, url string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Close = true
	host := req.URL.Host
	if req.URL.Port() == "" {
		host = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	var conn net.Conn
	if err := client.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", host, 300*time.Millisecond)
		return err
	}); err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// TestFloatingIP: a container with an IPv4 and an IPv6 floating IP and a
// published port, on three hosts that are network namespaces on one
// bridge; a client polls it. The holder is crashed, then partitioned from
// etcd: each time the address moves only after the old holder is fenced
// (or has dropped it itself), is never on two hosts, and the client
// reaches the new holder soon after the workload runs again.
func TestFloatingIP(t *testing.T) {
	needNetnsContainers(t)
	apiURL, _, dataDir, etcdPort := startDevWith(t, 3, "--driver", "containerd", "--netns")
	prefix := fmt.Sprintf("bwd%d-", etcdPort)
	client, err := network.Open(prefix + "client")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// Bad input: clear errors, nothing changed.
	rev := revision(t, apiURL)
	for _, c := range []struct {
		spec api.VIPSpec
		want string
	}{
		{api.VIPSpec{Address: "10.213.0.300/24", Network: "lan"}, "is not an IP address with a prefix length"},
		{api.VIPSpec{Address: "10.213.0.50", Network: "lan"}, "is not an IP address with a prefix length"},
		{api.VIPSpec{Address: "10.213.0.50/24", Interface: "eth9"}, "no host has interface eth9"},
		{api.VIPSpec{Address: "192.0.2.10/24", Network: "lan"}, "outside network lan (10.213.0.0/24"},
		{api.VIPSpec{Address: "10.213.0.50/24", Network: "wan"}, "no host is attached to network wan"},
		{api.VIPSpec{Address: "10.213.0.50/24"}, "needs --interface IFACE or --network NAME"},
	} {
		if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/vips", c.spec, nil); code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("vip %+v: HTTP %d %s (want 400 with %q)", c.spec, code, body, c.want)
		}
	}
	if r := revision(t, apiURL); r != rev {
		t.Fatalf("bad floating IPs changed the store: revision %d -> %d", rev, r)
	}
	for _, v := range []api.VIPSpec{{Address: vip4 + "/24", Network: "lan"}, {Address: vip6 + "/64", Interface: "eth0"}} {
		if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/vips", v, nil); code != http.StatusCreated {
			t.Fatalf("create vip %s: %d %s", v.Address, code, body)
		}
	}
	image := "oci-archive:" + dataDir + "/busybox-oci.tar"
	web := api.WorkloadSpec{Name: "web", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: image,
		Command: []string{"sh", "-c", "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 18080 -h /www"},
		VIPs:    []string{vip4, vip6}, Publish: []api.Publish{{VIP: vip4, Port: 80, ContainerPort: 18080}}}
	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/workloads", web, nil); code != http.StatusCreated {
		t.Fatalf("create web: %d %s", code, body)
	}
	other := api.WorkloadSpec{Name: "other", Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: image, VIPs: []string{vip4}}
	if code, body := apiCall(t, http.MethodPost, apiURL+"/v1/workloads", other, nil); code != http.StatusConflict || !strings.Contains(body, "already attached to web") {
		t.Fatalf("second workload on one VIP: %d %s", code, body)
	}
	if code, _ := apiCall(t, http.MethodGet, apiURL+"/v1/workloads/other", nil, nil); code != http.StatusNotFound {
		t.Fatalf("the refused workload exists: HTTP %d", code)
	}

	watch := watchVIPs(t, prefix, []string{"host-1", "host-2", "host-3"}, vip4, vip6)
	urls := []string{"http://" + vip4 + "/", "http://" + vip4 + ":18080/", "http://[" + vip6 + "]:18080/"}
	reachAll := func() bool {
		for _, u := range urls {
			if b, err := fetch(client, u); err != nil || !strings.Contains(b, "hello from web") {
				return false
			}
		}
		return true
	}
	var w api.WorkloadView
	t.Cleanup(func() {
		if t.Failed() {
			for _, h := range []string{"host-1", "host-2", "host-3"} {
				b, _ := os.ReadFile(dataDir + "/hosts/" + h + "/agent.log")
				t.Logf("--- %s agent log (tail):\n%s", h, tail(string(b), 3000))
			}
		}
	})
	eventually(t, "web reachable at its floating IPs", 30*time.Second, func() bool {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/web", nil, &w)
		return w.State == api.StateRunning && watch.holder(vip4) == w.Host && watch.holder(vip6) == w.Host && reachAll()
	})
	var vv api.VIPView
	apiCall(t, http.MethodGet, apiURL+"/v1/vips/"+vip4, nil, &vv)
	if vv.Holder == nil || vv.Holder.Host != w.Host || vv.Holder.Epoch != w.Epoch || vv.Workload != "web" {
		t.Fatalf("vip show: %+v holder %+v", vv, vv.Holder)
	}

	// An agent restart within its lease leaves one rule, not two.
	holderNS := prefix + w.Host
	devFault(t, apiURL, w.Host, "crash")
	devFault(t, apiURL, w.Host, "heal")
	time.Sleep(3 * time.Second) // a few reconciles of the new agent
	out, err := exec.Command("ip", "netns", "exec", holderNS, "iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v %s", err, out)
	}
	if n := strings.Count(string(out), "bulwark:web"); n != 1 {
		t.Fatalf("after an agent restart the nat table has %d rules for web:\n%s", n, out)
	}
	if n := strings.Count(string(out), "-j BULWARK-DNAT"); n != 2 {
		t.Fatalf("want one jump from PREROUTING and one from OUTPUT, got %d:\n%s", n, out)
	}

	for _, fault := range []string{"crash", "partition"} {
		apiCall(t, http.MethodGet, apiURL+"/v1/workloads/web", nil, &w)
		old := w
		start := time.Now()
		devFault(t, apiURL, old.Host, fault)
		var runningAt time.Time
		eventually(t, "web running on another host after "+fault, 40*time.Second, func() bool {
			apiCall(t, http.MethodGet, apiURL+"/v1/workloads/web", nil, &w)
			if w.State == api.StateRunning && w.Host != old.Host && runningAt.IsZero() {
				runningAt = time.Now()
			}
			return !runningAt.IsZero()
		})
		reachable := time.Now()
		for !reachAll() {
			if time.Since(reachable) > 20*time.Second {
				t.Fatalf("%s: client cannot reach web on %s at its floating IPs", fault, w.Host)
			}
			time.Sleep(10 * time.Millisecond)
		}
		reached := time.Now()
		if h := watch.holder(vip4); h != w.Host {
			t.Fatalf("%s: %s is on %q, web on %s", fault, vip4, h, w.Host)
		}
		t.Logf("%s of %s: web moved to %s (epoch %d -> %d); client outage %s; client reached it %s after the workload was running again",
			fault, old.Host, w.Host, old.Epoch, w.Epoch, reached.Sub(start).Round(time.Millisecond), reached.Sub(runningAt).Round(time.Millisecond))
		devFault(t, apiURL, old.Host, "heal")
		// Bring the fenced host back for the next round.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for ctx.Err() == nil {
			if code, _ := apiCall(t, http.MethodPost, apiURL+"/v1/nodes/"+old.Host+"/power-on", nil, nil); code < 300 {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		cancel()
		eventually(t, old.Host+" cleared", 30*time.Second, func() bool {
			code, _ := apiCall(t, http.MethodPost, apiURL+"/v1/nodes/"+old.Host+"/clear", nil, nil)
			return code < 300 && nodeByName(t, apiURL, old.Host).State == api.NodeReady
		})
	}
	t.Logf("address watch: %d samples of every host namespace, never two holders", watch.samples.Load())
	_ = netip.Addr{}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// needNetnsContainers skips a test that needs root, containerd and
// iproute2 where they are missing, loudly, or fails it under
// BULWARK_REQUIRE_REAL=1 (as in CI).
func needNetnsContainers(t *testing.T) {
	t.Helper()
	why := daemon.Missing()
	if why == "" {
		why = nettest.Missing()
	}
	if why == "" {
		return
	}
	if os.Getenv(requireRealEnv) == "1" {
		t.Fatalf("needs root, containerd and iproute2: %s", why)
	}
	t.Skipf("SKIPPING REAL-NETWORK TEST: needs root, containerd and iproute2: %s (set %s=1 to make this a failure)", why, requireRealEnv)
}
