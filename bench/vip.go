package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/devcluster"
	"github.com/bulwarkhq/bulwark/network"
)

// The floating IP the failover benchmark's web workload carries (with
// --vip), on the dev cluster's test-only network namespaces.
const (
	benchVIP      = "10.213.0.100"
	benchWorkload = "web"
)

// vipProbe polls the web workload through its floating IP from the client
// namespace, and samples every host namespace's addresses, so that a round
// can report the outage a client saw and whether the address was ever on
// two hosts.
type vipProbe struct {
	client *network.Host
	hosts  map[string]*network.Host
	mu     sync.Mutex
	lastOK time.Time
	// twice counts samples with the address on more than one host.
	twice   int
	samples int
	stop    chan struct{}
	done    chan struct{}
}

// addVIPWorkload creates the floating IP and a busybox httpd behind it.
func (r *rig) addVIPWorkload(ctx context.Context) error {
	if _, err := r.api.CreateVIP(ctx, api.VIPSpec{Address: benchVIP + "/24", Network: devcluster.NetworkName}); err != nil {
		return fmt.Errorf("create floating IP: %w", err)
	}
	spec := api.WorkloadSpec{Name: benchWorkload, Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB,
		Image:   "oci-archive:" + r.cl.BusyboxArchive(),
		Command: []string{"sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 18080 -h /www"},
		VIPs:    []string{benchVIP}, Publish: []api.Publish{{VIP: benchVIP, Port: 80, ContainerPort: 18080}}, Priority: 500}
	if _, err := r.api.CreateWorkload(ctx, spec); err != nil {
		return fmt.Errorf("create %s: %w", benchWorkload, err)
	}
	r.names = append(r.names, benchWorkload)
	return nil
}

func startVIPProbe(cl *devcluster.Cluster) (*vipProbe, error) {
	t := cl.Topology()
	if t == nil || t.Client == nil {
		return nil, fmt.Errorf("the dev cluster has no network namespaces")
	}
	p := &vipProbe{hosts: map[string]*network.Host{}, stop: make(chan struct{}), done: make(chan struct{})}
	var err error
	if p.client, err = network.Open(t.Client.Netns); err != nil {
		return nil, err
	}
	for _, n := range t.Hosts {
		h, err := network.Open(n.Netns)
		if err != nil {
			p.close()
			return nil, err
		}
		p.hosts[n.Name] = h
	}
	vip := netip.MustParseAddr(benchVIP)
	go func() {
		defer close(p.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
			holders := 0
			for _, h := range p.hosts {
				addrs, _ := h.Addresses("eth0")
				for _, a := range addrs {
					if a.Addr() == vip {
						holders++
					}
				}
			}
			ok := i%2 == 0 && get(p.client, "http://"+benchVIP+"/") == nil
			p.mu.Lock()
			p.samples++
			if holders > 1 {
				p.twice++
			}
			if ok {
				p.lastOK = time.Now()
			}
			p.mu.Unlock()
		}
	}()
	return p, nil
}

// waitServed waits until the client gets an answer after since.
func (p *vipProbe) waitServed(ctx context.Context, since time.Time, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		p.mu.Lock()
		last := p.lastOK
		p.mu.Unlock()
		if last.After(since) {
			return last, nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("the client got no answer at %s within %s", benchVIP, timeout)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (p *vipProbe) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
		if p.client != nil {
			<-p.done
		}
	}
	if p.client != nil {
		p.client.Close()
	}
	for _, h := range p.hosts {
		h.Close()
	}
}

// get fetches url from inside the client namespace; the connection is made
// on the thread that is in it.
func get(client *network.Host, url string) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Close = true
	var conn net.Conn
	if err := client.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", net.JoinHostPort(req.URL.Hostname(), "80"), 200*time.Millisecond)
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(300 * time.Millisecond))
	if err := req.Write(conn); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || !strings.Contains(string(b), "ok") {
		return fmt.Errorf("unexpected answer %q: %v", b, err)
	}
	return nil
}
