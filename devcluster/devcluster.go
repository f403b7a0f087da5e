// Package devcluster runs a whole Bulwark cluster on one machine: an embedded
// etcd, one server in this process, and N simulated hosts, each its own
// `bulwarkd agent` OS process with a private libvirt test-driver hypervisor
// (or, with Config.Driver, real containers in a private containerd or real
// QEMU guests under a private libvirtd), so that one host can be killed on
// its own.
package devcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	etcdstore "github.com/bulwarkhq/bulwark/clusterstore/etcd"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/drivers/containerd"
	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
	"github.com/bulwarkhq/bulwark/drivers/libvirt"
	lvdaemon "github.com/bulwarkhq/bulwark/drivers/libvirt/daemon"
	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/fencing/bmcemu"
	"github.com/bulwarkhq/bulwark/fencing/redfish"
	"github.com/bulwarkhq/bulwark/network"
	"github.com/bulwarkhq/bulwark/network/topo"
	"github.com/bulwarkhq/bulwark/server"
)

// Config configures a dev cluster.
type Config struct {
	Hosts   int
	DataDir string
	// APIAddr is where the server listens, e.g. 127.0.0.1:7370.
	APIAddr string
	// EtcdPort is the embedded etcd's client port on 127.0.0.1 (the peer port is picked free).
	EtcdPort int
	// HostCPUs and HostMemory size each simulated host.
	HostCPUs   int
	HostMemory api.ByteSize
	// SessionTTL is used by the server and every agent.
	SessionTTL time.Duration
	// Binary is the bulwarkd executable the agents run (default: this one).
	Binary string
	// BMCLatency is how long each emulated BMC takes to power a host off.
	BMCLatency time.Duration
	// Driver is what the simulated hosts run workloads with: DriverTest
	// (libvirt's test driver inside each agent; no root needed) or
	// DriverContainerd (real containers in a private containerd, each host
	// its own namespace; needs root) or DriverQEMU (real QEMU guests under
	// one private libvirtd, each host's domains named for it; needs root).
	// Their workloads outlive a hung, crashed or partitioned agent, as on a
	// real host.
	Driver string
	// Netns gives every simulated host a network namespace of its own on
	// one bridge (plus a "client" namespace), so that floating IPs really
	// move between hosts: agents run with --netns and --network lan=eth0,
	// containers join their host's namespace, and a power-off takes the
	// host's link down. Needs root and iproute2.
	Netns bool
	Log   *slog.Logger
}

// NetworkName is the network every simulated host is on with Netns.
const NetworkName = "lan"

// Drivers a dev cluster can run.
const (
	DriverTest       = "test"
	DriverContainerd = "containerd"
	DriverQEMU       = "qemu"
)

// Cluster is a running dev cluster.
type Cluster struct {
	ctrd    *daemon.Daemon
	lvd     *lvdaemon.Daemon
	cfg     Config
	etcd    *etcdstore.Embedded
	store   clusterstore.Store
	cancel  context.CancelFunc
	srvDone chan error
	mu      sync.Mutex
	hosts   map[string]*Host
	apiURL  string
	// topo holds the hosts' network namespaces (Netns only).
	topo *topo.Topology
	// adminToken is an admin API token, also written to AdminTokenFile.
	adminToken string
}

// AdminTokenFile is where a dev cluster writes its admin API token, under
// its data dir; bulwarkctl looks there by default.
const AdminTokenFile = "admin.token"

// Host is one simulated host: an agent process behind its own etcd proxy,
// with its own emulated BMC.
type Host struct {
	Name    string
	Dir     string
	LogPath string
	URI     string
	BMC     *bmcemu.BMC
	proxy   *proxy
	// ctr reads and kills the host's containers directly (a power cut, and
	// the truth for the invariant checker); nil with the test driver.
	ctr *containerd.Driver
	// vms does the same for the host's QEMU guests (domains named
	// bulwark-<host>-*) in the shared libvirtd; nil unless DriverQEMU.
	vms   *libvirt.Driver
	fence fencing.Device
	cmd   *exec.Cmd
	done  chan struct{}
}

// Start brings the cluster up and returns once every host is ready or ctx ends.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if cfg.Hosts < 1 || cfg.Hosts > 64 {
		return nil, fmt.Errorf("dev: --hosts must be from 1 to 64, got %d", cfg.Hosts)
	}
	if cfg.HostCPUs == 0 {
		cfg.HostCPUs = 8
	}
	if cfg.HostMemory == 0 {
		cfg.HostMemory = 16 * api.GiB
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 3 * time.Second
	}
	if cfg.EtcdPort == 0 {
		cfg.EtcdPort = 7379
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BMCLatency == 0 {
		cfg.BMCLatency = time.Second
	}
	switch cfg.Driver {
	case "":
		cfg.Driver = DriverTest
	case DriverTest:
	case DriverContainerd:
		if why := daemon.Missing(); why != "" {
			return nil, fmt.Errorf("dev --driver containerd: %s (run as root after scripts/deps-real.sh)", why)
		}
	case DriverQEMU:
		if why := lvdaemon.Missing(); why != "" {
			return nil, fmt.Errorf("dev --driver qemu: %s (run as root after scripts/deps-real.sh)", why)
		}
		if why := lvdaemon.GuestMissing(); why != "" {
			return nil, fmt.Errorf("dev --driver qemu: guest kernel and initramfs: %s (run scripts/deps-real.sh)", why)
		}
	default:
		return nil, fmt.Errorf("dev: --driver %q: use test, containerd or qemu", cfg.Driver)
	}
	if cfg.Binary == "" {
		if cfg.Binary, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("dev: find own executable: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("dev: data dir: %w", err)
	}
	if cfg.Driver == DriverQEMU {
		// QEMU runs as libvirt-qemu and must reach the guest's kernel.
		if err := qemuTraversable(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	c := &Cluster{cfg: cfg, hosts: map[string]*Host{}}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()

	// The API address is checked first: a busy port is the most common
	// mistake and should fail before anything starts.
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("dev: API address %s: %w (is another `bulwarkd dev` running? use --api-addr)", cfg.APIAddr, err)
	}
	c.apiURL = "http://" + ln.Addr().String()

	c.etcd, err = etcdstore.StartEmbedded(etcdstore.EmbeddedConfig{
		Dir:       filepath.Join(cfg.DataDir, "etcd"),
		Name:      "dev",
		ClientURL: fmt.Sprintf("http://127.0.0.1:%d", cfg.EtcdPort),
		// The peer port is internal to this single member: picked free.
	})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("dev: embedded etcd on port %d: %w (use --etcd-port to pick another)", cfg.EtcdPort, err)
	}
	c.store, err = etcdstore.Dial(ctx, c.etcd.Endpoints(), 5*time.Second)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("dev: connect to embedded etcd: %w", err)
	}

	if cfg.Driver == DriverContainerd {
		if c.ctrd, err = daemon.Start(); err != nil {
			ln.Close()
			return nil, fmt.Errorf("dev: private containerd: %w", err)
		}
		if _, err := daemon.WriteBusyboxArchive(c.BusyboxArchive()); err != nil {
			ln.Close()
			return nil, fmt.Errorf("dev: busybox image archive: %w", err)
		}
	}
	if cfg.Driver == DriverQEMU {
		if c.lvd, err = lvdaemon.Start(); err != nil {
			ln.Close()
			return nil, fmt.Errorf("dev: private libvirtd: %w", err)
		}
		if err := writeGuest(c.guestDir()); err != nil {
			ln.Close()
			return nil, err
		}
	}
	if cfg.Netns {
		prefix := fmt.Sprintf("bwd%d-", cfg.EtcdPort)
		if err := topo.RemoveStale(prefix); err != nil {
			ln.Close()
			return nil, fmt.Errorf("dev --netns: %w", err)
		}
		var names []string
		for i := 1; i <= cfg.Hosts; i++ {
			names = append(names, fmt.Sprintf("host-%d", i))
		}
		if c.topo, err = topo.Create(ctx, topo.Spec{Prefix: prefix, Hosts: names, Client: true}); err != nil {
			ln.Close()
			return nil, fmt.Errorf("dev --netns: %w (needs root and iproute2)", err)
		}
	}
	for i := 1; i <= cfg.Hosts; i++ {
		if err := c.addHost(fmt.Sprintf("host-%d", i)); err != nil {
			ln.Close()
			return nil, err
		}
	}
	// An admin token for the operator, as in production (where `bulwarkd
	// token create` makes them): the API refuses requests without one.
	if c.adminToken, _, err = clusterstore.CreateToken(ctx, c.store, fmt.Sprintf("dev-admin-%d", time.Now().UnixNano()), api.RoleAdmin, 0, time.Now()); err != nil {
		ln.Close()
		return nil, fmt.Errorf("dev: admin token: %w", err)
	}
	if err := writeSecret(filepath.Join(cfg.DataDir, AdminTokenFile), c.adminToken); err != nil {
		ln.Close()
		return nil, fmt.Errorf("dev: admin token: %w", err)
	}
	srv, err := server.New(server.Config{
		Name: "dev-server", Listener: ln, Store: c.store, SessionTTL: cfg.SessionTTL, Log: cfg.Log, Auth: server.AuthConfig{Required: true},
		Fencing:     server.FencingConfig{Devices: c.fenceDevices, DeviceTimeout: 15 * time.Second, CheckInterval: 10 * time.Second},
		WrapHandler: c.wrapHandler,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.srvDone = make(chan error, 1)
	go func() { c.srvDone <- srv.Run(sctx) }()

	for _, name := range c.HostNames() {
		if err := c.StartHost(name); err != nil {
			return nil, err
		}
	}
	if err := c.waitReady(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// AdminToken is an admin API token for this cluster.
func (c *Cluster) AdminToken() string { return c.adminToken }

// writeSecret writes a file only its owner can read, atomically.
func writeSecret(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// APIURL is the server's base URL.
func (c *Cluster) APIURL() string { return c.apiURL }

// EtcdEndpoints are the embedded etcd's client URLs.
func (c *Cluster) EtcdEndpoints() []string { return c.etcd.Endpoints() }

// Store is the dev cluster's store connection.
func (c *Cluster) Store() clusterstore.Store { return c.store }

// HostNames lists the simulated hosts.
func (c *Cluster) HostNames() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, 0, len(c.hosts))
	for n := range c.hosts {
		names = append(names, n)
	}
	// host-2 before host-10.
	sort.Slice(names, func(i, j int) bool {
		if len(names[i]) != len(names[j]) {
			return len(names[i]) < len(names[j])
		}
		return names[i] < names[j]
	})
	return names
}

// Host returns a simulated host by name.
func (c *Cluster) Host(name string) (*Host, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.hosts[name]
	return h, ok
}

// addHost prepares a simulated host: its directory, hypervisor definition,
// etcd proxy, emulated BMC and the fence device that drives it.
func (c *Cluster) addHost(name string) error {
	dir := filepath.Join(c.cfg.DataDir, "hosts", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev: host dir: %w", err)
	}
	h := &Host{Name: name, Dir: dir, LogPath: filepath.Join(dir, "agent.log"), done: make(chan struct{})}
	if c.lvd != nil {
		h.URI = c.lvd.URI()
	} else {
		xml := filepath.Join(dir, "hypervisor.xml")
		if err := libvirt.WriteTestHostXML(xml, c.cfg.HostCPUs, c.cfg.HostMemory); err != nil {
			return fmt.Errorf("dev: %s hypervisor: %w", name, err)
		}
		h.URI = "test://" + xml
	}
	close(h.done) // not started yet
	var err error
	if h.proxy, err = newProxy(strings.TrimPrefix(c.etcd.Endpoints()[0], "http://")); err != nil {
		return fmt.Errorf("dev: %s etcd proxy: %w", name, err)
	}
	password := randomSecret()
	certFile := filepath.Join(dir, "bmc-ca.pem")
	h.BMC, err = bmcemu.New(bmcemu.Config{
		Username: "admin", Password: password, SystemID: name, PowerOffDelay: c.cfg.BMCLatency, CertFile: certFile,
		// A power cut: the agent and every workload it runs (the test
		// driver's domains live inside it) die at once.
		OnPowerOff: func() { c.powerCut(name) },
		OnPowerOn: func() {
			if c.topo != nil {
				if err := c.topo.PowerOn(name); err != nil {
					c.cfg.Log.Error("power on: link up", "host", name, "err", err)
				}
			}
			if err := c.StartHost(name); err != nil {
				c.cfg.Log.Error("power on: start agent", "host", name, "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("dev: %s BMC: %w", name, err)
	}
	if err := h.BMC.Start("127.0.0.1:0"); err != nil {
		return fmt.Errorf("dev: %s BMC: %w", name, err)
	}
	if c.ctrd != nil {
		if h.ctr, err = containerd.New(containerd.Config{Address: c.ctrd.Address(), Host: name, StateDir: filepath.Join(dir, "containers")}); err != nil {
			return fmt.Errorf("dev: %s containerd: %w", name, err)
		}
	}
	if c.lvd != nil {
		// No console log dir: a power cut leaves the guest's console log
		// for the curious.
		if h.vms, err = libvirt.New(libvirt.Config{URI: c.lvd.URI(), Host: name}); err != nil {
			return fmt.Errorf("dev: %s libvirt: %w", name, err)
		}
	}
	h.fence, err = redfish.New(redfish.Config{Name: name + "-bmc", Endpoint: h.BMC.URL(), Username: "admin", Password: password,
		CAFile: certFile, SystemID: name, Timeout: 15 * time.Second, PollInterval: 100 * time.Millisecond})
	if err != nil {
		return fmt.Errorf("dev: %s fence device: %w", name, err)
	}
	c.mu.Lock()
	c.hosts[name] = h
	c.mu.Unlock()
	return nil
}

// rackOf spreads simulated hosts over two racks: host-1 and host-3 in r1,
// host-2 in r2, and so on.
func rackOf(host string) string {
	n, err := strconv.Atoi(strings.TrimPrefix(host, "host-"))
	if err != nil {
		return "r1"
	}
	return "r" + strconv.Itoa((n-1)%2+1)
}

func randomSecret() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (c *Cluster) fenceDevices(host string) []fencing.Device {
	if h, ok := c.Host(host); ok {
		return []fencing.Device{h.fence}
	}
	return nil
}

// StartHost starts (or restarts) the agent process of a simulated host;
// it does nothing if the agent is running.
func (c *Cluster) StartHost(name string) error {
	h, ok := c.Host(name)
	if !ok {
		return fmt.Errorf("no host %q", name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-h.done:
	default:
		return nil // running
	}
	if xml, ok := strings.CutPrefix(h.URI, "test://"); ok {
		// A fresh hypervisor, as after a reboot.
		if err := libvirt.WriteTestHostXML(xml, c.cfg.HostCPUs, c.cfg.HostMemory); err != nil {
			return fmt.Errorf("dev: %s hypervisor: %w", name, err)
		}
	}
	logf, err := os.OpenFile(h.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("dev: %s log: %w", name, err)
	}
	done := make(chan struct{})
	args := []string{"--libvirt-uri", h.URI}
	if c.ctrd != nil {
		args = []string{"--libvirt-uri", "none", "--containerd-address", c.ctrd.Address(), "--containerd-state-dir", filepath.Join(h.Dir, "containers")}
	}
	if c.topo != nil {
		n, _ := c.topo.Host(name)
		args = append(args, "--netns", n.Netns, "--network", NetworkName+"="+n.Iface)
	}
	cmd := exec.Command(c.cfg.Binary, append([]string{"agent",
		"--name", name,
		"--etcd", h.proxy.URL(),
		"--label", "dev=true",
		"--label", "rack=" + rackOf(name),
		"--config", "/dev/null", // a host's /etc/bulwark/agent.yaml is not for dev agents
		"--console-log-dir", filepath.Join(h.Dir, "console"),
		"--cpus", strconv.Itoa(c.cfg.HostCPUs), "--memory", c.cfg.HostMemory.String(),
		"--session-ttl", c.cfg.SessionTTL.String(),
		"--http-listen", "127.0.0.1:0",
	}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, and killed if we die: a dev cluster never leaves
	// agents behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("dev: start %s agent: %w", name, err)
	}
	h.cmd, h.done = cmd, done
	go func() {
		err := cmd.Wait()
		logf.Close()
		c.cfg.Log.Info("host agent exited", "host", name, "pid", cmd.Process.Pid, "status", exitText(err))
		close(done)
	}()
	return nil
}

// killHost ends a host's agent at once (SIGKILL to its process group, after
// SIGCONT in case it is frozen) and waits for it to be gone.
func (c *Cluster) killHost(name string) {
	h, ok := c.Host(name)
	if !ok {
		return
	}
	c.mu.Lock()
	cmd, done := h.cmd, h.done
	c.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// powerCut ends everything a host runs: its agent and, with containerd or
// QEMU, its containers or guests (which, like VMs on a real host, outlive
// the agent).
func (c *Cluster) powerCut(name string) {
	if c.topo != nil {
		// Off the wire first, as a powered-off NIC is.
		if err := c.topo.PowerOff(name); err != nil {
			c.cfg.Log.Error("power cut: link down", "host", name, "err", err)
		}
	}
	c.killHost(name)
	h, ok := c.Host(name)
	if !ok {
		return
	}
	c.destroyWorkloads(h, "power cut")
	if c.topo != nil {
		c.forgetNetworkState(name)
	}
}

// forgetNetworkState drops what a host's network held only in memory —
// addresses beyond its own and port forwards — as a power cut does. The
// BMC reads Off only after this returns.
func (c *Cluster) forgetNetworkState(name string) {
	n, ok := c.topo.Host(name)
	if !ok {
		return
	}
	h, err := network.Open(n.Netns)
	if err != nil {
		c.cfg.Log.Error("power cut: open network", "host", name, "err", err)
		return
	}
	defer h.Close()
	addrs, err := h.Addresses(n.Iface)
	if err != nil {
		c.cfg.Log.Error("power cut: addresses", "host", name, "err", err)
	}
	for _, p := range addrs {
		if p.Addr() == n.Addr4.Addr() || p.Addr() == n.Addr6.Addr() || p.Addr().IsLinkLocalUnicast() {
			continue
		}
		if err := h.DelAddress(n.Iface, p); err != nil {
			c.cfg.Log.Error("power cut: remove address", "host", name, "addr", p, "err", err)
		}
	}
	if err := h.ClearForwards(); err != nil {
		c.cfg.Log.Error("power cut: clear port forwards", "host", name, "err", err)
	}
}

// Topology is the hosts' network namespaces (nil without Netns).
func (c *Cluster) Topology() *topo.Topology { return c.topo }

// destroyWorkloads kills and removes every container or guest of a host
// through its own driver handle (not its agent).
func (c *Cluster) destroyWorkloads(h *Host, why string) {
	var d interface {
		List(context.Context) ([]drivers.Status, error)
		Destroy(context.Context, string) error
	}
	switch {
	case h.ctr != nil:
		d = h.ctr
	case h.vms != nil:
		d = h.vms
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tasks, err := d.List(ctx)
	if err != nil {
		c.cfg.Log.Error(why+": list workloads", "host", h.Name, "err", err)
	}
	for _, t := range tasks {
		if err := d.Destroy(ctx, t.Workload); err != nil {
			c.cfg.Log.Error(why+": destroy workload", "host", h.Name, "workload", t.Workload, "err", err)
		}
	}
}

// BusyboxArchive is an OCI image archive of busybox the dev cluster writes
// with the containerd driver, for trying containers without a registry.
func (c *Cluster) BusyboxArchive() string { return filepath.Join(c.cfg.DataDir, "busybox-oci.tar") }

// guestDir holds the test guest the dev cluster writes with the QEMU driver.
func (c *Cluster) guestDir() string { return filepath.Join(c.cfg.DataDir, "guest") }

// GuestKernel and GuestInitrd are a bootable guest (Debian's kernel and a
// busybox initramfs whose /init prints lvdaemon.MarkerUp on the serial
// console) the dev cluster writes with the QEMU driver; boot it with
// GuestCmdline.
func (c *Cluster) GuestKernel() string { return filepath.Join(c.guestDir(), "vmlinuz") }

// GuestInitrd: see GuestKernel.
func (c *Cluster) GuestInitrd() string { return filepath.Join(c.guestDir(), "initramfs.cpio") }

// GuestCmdline is the kernel command line for the dev cluster's guest.
const GuestCmdline = "console=ttyS0"

// writeGuest writes the test guest into dir, readable by libvirt-qemu.
func writeGuest(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("dev: guest dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("dev: guest dir: %w", err)
	}
	if _, _, err := lvdaemon.WriteGuest(dir); err != nil {
		return fmt.Errorf("dev: guest kernel and initramfs: %w", err)
	}
	return nil
}

// qemuTraversable lets QEMU, which runs as libvirt-qemu, reach files under
// dataDir: dataDir becomes 0711 (enter, not list), and every directory
// above it must already let others through.
func qemuTraversable(dataDir string) error {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("dev: data dir: %w", err)
	}
	if err := os.Chmod(abs, fi.Mode().Perm()|0o011); err != nil {
		return fmt.Errorf("dev: data dir: %w", err)
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("dev: data dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("dev --driver qemu: %s (mode %s) does not let QEMU (user libvirt-qemu) reach the guest kernel in %s: use a --data-dir whose parents are world-traversable (o+x), such as one under /tmp", dir, fi.Mode().Perm(), abs)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

func exitText(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		snap, _, err := clusterstore.ReadSnapshot(ctx, c.store)
		if err == nil && len(snap.Heartbeats) >= c.cfg.Hosts {
			return nil
		}
		c.mu.Lock()
		hosts := make([]*Host, 0, len(c.hosts))
		for _, h := range c.hosts {
			hosts = append(hosts, h)
		}
		c.mu.Unlock()
		for _, h := range hosts {
			select {
			case <-h.done:
				tail, _ := tailFile(h.LogPath, 2048)
				return fmt.Errorf("dev: agent of %s exited during start-up; its log (%s) ends:\n%s", h.Name, h.LogPath, tail)
			default:
			}
		}
		if time.Now().After(deadline) {
			return errors.New("dev: hosts not ready after 60s; see the agent logs under " + filepath.Join(c.cfg.DataDir, "hosts"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tailFile(path string, n int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if st.Size() > n {
		_, _ = f.Seek(st.Size()-n, io.SeekStart)
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// Stop ends every process the cluster started: agents first (SIGTERM, then
// SIGKILL after 5 s), then the server, then etcd.
func (c *Cluster) Stop() {
	c.mu.Lock()
	hosts := make([]*Host, 0, len(c.hosts))
	for _, h := range c.hosts {
		hosts = append(hosts, h)
	}
	c.mu.Unlock()
	for _, h := range hosts {
		if h.cmd != nil {
			_ = h.cmd.Process.Signal(syscall.SIGCONT) // a frozen agent cannot exit
			_ = h.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, h := range hosts {
		select {
		case <-h.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
			<-h.done
		}
		// Power hooks must not restart anything from here on.
		h.BMC.Close()
		h.proxy.close()
	}
	if c.cancel != nil {
		c.cancel()
		<-c.srvDone
	}
	if c.store != nil {
		_ = c.store.Close()
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
	// Guests outlive libvirtd: destroy them while it still runs.
	for _, h := range hosts {
		if h.vms != nil {
			c.destroyWorkloads(h, "stop")
		}
	}
	for _, h := range hosts {
		if h.ctr != nil {
			h.ctr.Close()
		}
		if h.vms != nil {
			h.vms.Close()
		}
	}
	if c.lvd != nil {
		if err := c.lvd.Stop(); err != nil {
			c.cfg.Log.Error("stop private libvirtd", "err", err)
		}
	}
	if c.ctrd != nil {
		if err := c.ctrd.Stop(); err != nil {
			c.cfg.Log.Error("stop private containerd", "err", err)
		}
	}
	if c.topo != nil {
		if err := c.topo.Destroy(); err != nil {
			c.cfg.Log.Error("remove network namespaces", "err", err)
		}
	}
}
