package nodeagent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/drivers"
	"github.com/bulwarkhq/bulwark/network"
	"github.com/bulwarkhq/bulwark/storage"
)

// Shared resources on a host: exclusive volumes (an etcd lock plus an
// on-storage lease, both carrying the allocation's epoch) and floating IPs
// (an etcd claim, then the address on the interface). The order is always
// claim first, use second; stop first, release second. See docs/storage.md
// and docs/networking.md.

// sharedState is what the agent holds, kept in memory for the lease
// renewals and for dropping addresses fast when it fences itself. The
// store is the truth for claims; this is the agent's working copy.
type sharedState struct {
	// leases by workload: the on-storage leases it renews.
	leases map[string]heldLeases
	// vips by address: floating IPs on this host's interfaces.
	vips map[string]heldVIP
	// forwards last installed, and whether they ever were.
	forwards     []network.Forward
	forwardsOnce bool
	// balances last installed (load-balanced service addresses), and
	// whether they ever were.
	balances     []network.Balance
	balancesOnce bool
}

type heldLeases struct {
	epoch  int64
	leases []heldLease
}

type heldLease struct {
	path  string
	lease storage.Lease
}

type heldVIP struct {
	workload string
	epoch    int64
	prefix   netip.Prefix
	iface    string
}

// clusterShared is the part of the store the shared-resource logic reads
// each reconcile.
type clusterShared struct {
	volumes   map[string]api.Volume
	vips      map[string]api.VIP
	locks     map[string]clusterstore.Versioned[api.Claim]
	vipClaims map[string]clusterstore.Versioned[api.Claim]
}

func readShared(ctx context.Context, s clusterstore.Store, rev int64) (clusterShared, error) {
	cs := clusterShared{volumes: map[string]api.Volume{}, vips: map[string]api.VIP{},
		locks: map[string]clusterstore.Versioned[api.Claim]{}, vipClaims: map[string]clusterstore.Versioned[api.Claim]{}}
	for _, p := range []string{clusterstore.VolumesPrefix, clusterstore.VIPsPrefix, clusterstore.LocksPrefix, clusterstore.VIPClaimsPrefix} {
		kvs, _, err := s.List(ctx, p, rev)
		if err != nil {
			return cs, fmt.Errorf("list %s: %w", p, err)
		}
		for _, kv := range kvs {
			name := strings.TrimPrefix(kv.Key, p)
			var err error
			switch p {
			case clusterstore.VolumesPrefix:
				var v api.Volume
				if err = clusterstore.Decode(kv, &v); err == nil {
					cs.volumes[name] = v
				}
			case clusterstore.VIPsPrefix:
				var v api.VIP
				if err = clusterstore.Decode(kv, &v); err == nil {
					cs.vips[name] = v
				}
			default:
				var c api.Claim
				if err = clusterstore.Decode(kv, &c); err == nil {
					m := cs.locks
					if p == clusterstore.VIPClaimsPrefix {
						m = cs.vipClaims
					}
					m[name] = clusterstore.Versioned[api.Claim]{Value: c, CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision}
				}
			}
			if err != nil {
				return cs, err
			}
		}
	}
	return cs, nil
}

// holdVolumes takes the etcd lock and then the on-storage lease of every
// exclusive volume of a workload, before it starts, and adds the volumes to
// the task. wait is a reason to try again later (another holder); a non-nil
// error is a failure to report.
func (a *Agent) holdVolumes(ctx context.Context, d desired, task *drivers.Task) (wait string, err error) {
	if len(d.spec.Volumes) == 0 {
		return "", nil
	}
	name, epoch := d.alloc.Workload, d.alloc.Epoch
	held := heldLeases{epoch: epoch}
	var vm *api.VMSpec
	if task.Spec.Kind == api.KindVM {
		vm = &api.VMSpec{}
		if task.Spec.VM != nil {
			*vm = *task.Spec.VM
			vm.Disks = slices.Clone(task.Spec.VM.Disks)
		}
		task.Spec.VM = vm
	}
	for _, vname := range d.spec.Volumes {
		v, ok := d.volumes[vname]
		if !ok {
			return "", fmt.Errorf("volume %s does not exist", vname)
		}
		readOnly := v.Mode == api.VolumeSharedRead
		if !readOnly {
			c := api.Claim{Resource: vname, Workload: name, Host: a.cfg.Host, Epoch: epoch}
			if _, err := clusterstore.AcquireClaim(ctx, a.cfg.Store, clusterstore.LockKey(vname), c, a.cfg.now()); err != nil {
				var he *clusterstore.HeldError
				switch {
				case errors.As(err, &he):
					return fmt.Sprintf("waiting for volume %s: held by %s on %s (epoch %d)", vname, he.Holder.Workload, he.Holder.Host, he.Holder.Epoch), nil
				case errors.Is(err, clusterstore.ErrStaleEpoch):
					return "allocation superseded; waiting for the next reconcile", nil
				}
				return fmt.Sprintf("volume %s: lock: %v", vname, err), nil
			}
			l := storage.Lease{Volume: vname, Workload: name, Host: a.cfg.Host, Epoch: epoch, Renewed: a.cfg.now()}
			if err := storage.AcquireLease(v.LeasePath, l); err != nil {
				if errors.Is(err, storage.ErrLeaseBusy) {
					return fmt.Sprintf("waiting for volume %s: its on-storage lease is busy", vname), nil
				}
				return "", fmt.Errorf("volume %s: on-storage lease: %w", vname, err)
			}
			held.leases = append(held.leases, heldLease{path: v.LeasePath, lease: l})
		}
		if vm != nil {
			vm.Disks = append(vm.Disks, api.DiskSpec{Path: v.Path, Format: v.Format, ReadOnly: readOnly})
		} else {
			task.Mounts = append(task.Mounts, drivers.Mount{Source: v.Path, Target: "/volumes/" + vname, ReadOnly: readOnly})
		}
	}
	a.mu.Lock()
	a.shared.leases[name] = held
	a.mu.Unlock()
	return "", nil
}

// releaseVolumes marks the on-storage leases released and drops the etcd
// locks of a workload that is confirmed stopped on this host at epoch.
func (a *Agent) releaseVolumes(ctx context.Context, cs clusterShared, name string, epoch int64) {
	a.mu.Lock()
	delete(a.shared.leases, name)
	a.mu.Unlock()
	for vname, lk := range cs.locks {
		c := lk.Value
		if c.Host != a.cfg.Host || c.Workload != name || c.Epoch != epoch {
			continue
		}
		if v, ok := cs.volumes[vname]; ok && v.LeasePath != "" {
			l := storage.Lease{Volume: vname, Workload: name, Host: a.cfg.Host, Epoch: epoch, Renewed: a.cfg.now()}
			if err := storage.ReleaseLease(v.LeasePath, l); err != nil {
				a.log.Warn("release on-storage lease", "volume", vname, "err", err)
			}
		}
		if err := clusterstore.ReleaseClaim(ctx, a.cfg.Store, clusterstore.LockKey(vname), c); err != nil {
			a.log.Warn("release volume lock", "volume", vname, "err", err)
			continue
		}
		a.log.Info("volume released", "volume", vname, "workload", name, "epoch", epoch)
	}
}

// releaseLeftovers drops the claims this host holds for workloads it
// neither runs nor should run at that epoch (an agent that died between
// stopping a workload and releasing its claims).
func (a *Agent) releaseLeftovers(ctx context.Context, cs clusterShared, want map[string]desired, present map[string]drivers.Status) {
	done := map[string]bool{}
	for _, lk := range cs.locks {
		c := lk.Value
		if c.Host != a.cfg.Host || done[c.Workload] {
			continue
		}
		if d, ok := want[c.Workload]; ok && d.alloc.Epoch == c.Epoch {
			continue
		}
		if s, ok := present[c.Workload]; ok && s.Epoch == c.Epoch {
			continue
		}
		done[c.Workload] = true
		a.releaseVolumes(ctx, cs, c.Workload, c.Epoch)
	}
}

// renewLeases rewrites the on-storage lease of every volume this host
// holds. A lease that shows a newer epoch means another host has the
// volume: the workload is destroyed at once, and the lease is not touched.
func (a *Agent) renewLeases(ctx context.Context) {
	a.mu.Lock()
	held := make(map[string]heldLeases, len(a.shared.leases))
	for k, v := range a.shared.leases {
		held[k] = v
	}
	a.mu.Unlock()
	names := make([]string, 0, len(held))
	for n := range held {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		for _, hl := range held[name].leases {
			l := hl.lease
			l.Renewed = a.cfg.now()
			err := storage.RenewLease(hl.path, l)
			if err == nil {
				continue
			}
			if !errors.Is(err, storage.ErrSuperseded) {
				a.log.Warn("renew on-storage lease", "volume", l.Volume, "workload", name, "err", err)
				continue
			}
			a.metrics.superseded.Inc()
			a.log.Error("VOLUME SUPERSEDED: another host holds it at a newer epoch; destroying our copy now", "volume", l.Volume, "workload", name, "epoch", l.Epoch, "err", err)
			if derr := a.cfg.Driver.Destroy(ctx, name); derr != nil && !errors.Is(derr, drivers.ErrNotFound) {
				a.log.Error("destroy superseded workload", "workload", name, "err", derr)
				continue
			}
			a.mu.Lock()
			delete(a.shared.leases, name)
			a.mu.Unlock()
			break
		}
	}
}

// ifaceFor is the interface a floating IP goes on here: the one named, or
// this host's interface on the named network.
func (a *Agent) ifaceFor(v api.VIP) string {
	if v.Network != "" {
		if iface, ok := a.cfg.Networks[v.Network]; ok && (v.Interface == "" || v.Interface == iface) {
			return iface
		}
		return ""
	}
	return v.Interface
}

// syncVIPs makes this host carry exactly the floating IPs of the workloads
// it runs: claim, then add and announce; and for the rest, remove, then
// release. running maps a workload to the epoch it runs at here.
func (a *Agent) syncVIPs(ctx context.Context, cs clusterShared, running, allocated map[string]int64) {
	if a.net == nil {
		return
	}
	type want struct {
		v     api.VIP
		p     netip.Prefix
		iface string
		epoch int64
	}
	desired := map[string]want{}
	for addr, v := range cs.vips {
		epoch, ok := running[v.Workload]
		if v.Service != "" {
			// A service's address balances for every copy: its anchor's
			// host keeps it while the anchor is allocated here, even
			// while the anchor itself restarts.
			epoch, ok = allocated[v.Workload]
		}
		if v.Workload == "" || !ok {
			continue
		}
		p, err := netip.ParsePrefix(v.Address)
		iface := a.ifaceFor(v)
		if err != nil || iface == "" {
			a.log.Warn("floating IP cannot go on this host", "vip", v.Address, "workload", v.Workload)
			continue
		}
		desired[addr] = want{v, p, iface, epoch}
	}
	// Remove first: what we must not carry any more goes before anything
	// new is claimed.
	for addr, v := range cs.vips {
		if _, keep := desired[addr]; keep {
			continue
		}
		p, err := netip.ParsePrefix(v.Address)
		if err != nil {
			continue
		}
		absent := a.dropAddress(addr, p, a.ifaceFor(v))
		if c, ok := cs.vipClaims[addr]; ok && c.Value.Host == a.cfg.Host && absent {
			if err := clusterstore.ReleaseClaim(ctx, a.cfg.Store, clusterstore.VIPClaimKey(addr), c.Value); err != nil {
				a.log.Warn("release floating IP", "vip", addr, "err", err)
			} else {
				a.log.Info("floating IP released", "vip", addr, "workload", c.Value.Workload)
			}
		}
	}
	var fwds []network.Forward
	var lbs []network.Balance
	addrs := make([]string, 0, len(desired))
	for addr := range desired {
		addrs = append(addrs, addr)
	}
	sort.Strings(addrs)
	for _, addr := range addrs {
		w := desired[addr]
		c := api.Claim{Resource: addr, Workload: w.v.Workload, Host: a.cfg.Host, Epoch: w.epoch}
		_, err := clusterstore.AcquireClaim(ctx, a.cfg.Store, clusterstore.VIPClaimKey(addr), c, a.cfg.now())
		var held *clusterstore.HeldError
		if errors.As(err, &held) && held.Holder.Host == a.cfg.Host && held.Holder.Workload == c.Workload && held.Holder.Epoch < c.Epoch {
			// Our own claim for the same workload's earlier run here (it
			// came back at a new epoch before the old claim went): the
			// address never left this host; hand the claim over.
			if err = clusterstore.ReleaseClaim(ctx, a.cfg.Store, clusterstore.VIPClaimKey(addr), held.Holder); err == nil {
				_, err = clusterstore.AcquireClaim(ctx, a.cfg.Store, clusterstore.VIPClaimKey(addr), c, a.cfg.now())
			}
		}
		if err != nil {
			a.log.Info("floating IP not ours yet", "vip", addr, "workload", w.v.Workload, "why", err)
			continue
		}
		a.mu.Lock()
		_, had := a.shared.vips[addr]
		a.mu.Unlock()
		present, err := a.hasAddress(w.iface, w.p)
		if err != nil {
			a.log.Error("floating IP", "vip", addr, "err", err)
			continue
		}
		if !present {
			if err := a.net.AddAddress(w.iface, w.p); err != nil {
				a.log.Error("add floating IP", "vip", w.p, "interface", w.iface, "err", err)
				continue
			}
		}
		if !present || !had {
			if err := a.net.Announce(context.WithoutCancel(ctx), w.iface, w.p.Addr(), network.AnnounceOptions{}); err != nil {
				a.log.Warn("announce floating IP", "vip", addr, "err", err)
			}
			a.metrics.vipMoves.Inc()
			a.log.Info("floating IP up", "vip", w.p, "interface", w.iface, "workload", w.v.Workload, "epoch", w.epoch)
		}
		a.mu.Lock()
		a.shared.vips[addr] = heldVIP{workload: w.v.Workload, epoch: w.epoch, prefix: w.p, iface: w.iface}
		a.mu.Unlock()
		for _, pub := range a.publishOf(w.v.Workload) {
			pa, err := netip.ParseAddr(pub.VIP)
			if err != nil || pa != w.p.Addr() {
				continue
			}
			fwds = append(fwds, network.Forward{Workload: w.v.Workload, VIP: pa, Proto: orTCP(pub.Proto), Port: uint16(pub.Port), ToPort: uint16(pub.ContainerPort)})
		}
		lbs = append(lbs, poolBalances(w.v, w.p.Addr())...)
	}
	a.syncForwards(fwds)
	a.syncBalances(lbs)
}

// poolBalances are the load-balancing rules of a service's floating IP
// this host holds: each port to every backend in the leader's pool.
func poolBalances(v api.VIP, vip netip.Addr) []network.Balance {
	if v.Service == "" || v.Pool == nil {
		return nil
	}
	var out []network.Balance
	for _, p := range v.Pool.Ports {
		b := network.Balance{Name: v.Service, VIP: vip, Proto: orTCP(p.Proto), Port: uint16(p.Port)}
		for _, be := range v.Pool.Backends {
			if a, err := netip.ParseAddr(be.Address); err == nil && a.Is4() == vip.Is4() {
				b.Targets = append(b.Targets, netip.AddrPortFrom(a, uint16(p.TargetPort)))
			}
		}
		// No healthy backend: no rule, so connections are refused at
		// once rather than sent nowhere.
		if len(b.Targets) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// syncBalances installs the load-balancing rules when they changed.
func (a *Agent) syncBalances(lbs []network.Balance) {
	slices.SortFunc(lbs, func(x, y network.Balance) int {
		return cmp.Or(x.VIP.Compare(y.VIP), cmp.Compare(x.Port, y.Port), cmp.Compare(x.Proto, y.Proto))
	})
	a.mu.Lock()
	same := a.shared.balancesOnce && reflect.DeepEqual(lbs, a.shared.balances)
	a.mu.Unlock()
	if same || (len(lbs) == 0 && !a.shared.balancesOnce && !a.balancesLeft()) {
		a.mu.Lock()
		a.shared.balancesOnce = true
		a.mu.Unlock()
		return
	}
	if err := a.net.SyncBalances(lbs); err != nil {
		a.log.Error("load-balanced service addresses", "err", err)
		return
	}
	a.log.Info("load-balancing rules installed", "balances", len(lbs))
	a.mu.Lock()
	a.shared.balances, a.shared.balancesOnce = lbs, true
	a.mu.Unlock()
}

// balancesLeft says whether an earlier run left load-balancing rules; a
// host that cannot read them (no iptables) has none of ours.
func (a *Agent) balancesLeft() bool {
	old, err := a.net.Balances()
	return err == nil && len(old) > 0
}

func orTCP(p string) string {
	if p == "" {
		return "tcp"
	}
	return p
}

// publishOf returns the published ports of a workload this host runs.
func (a *Agent) publishOf(workload string) []api.Publish {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.publish[workload]
}

func (a *Agent) syncForwards(fwds []network.Forward) {
	sort.Slice(fwds, func(i, j int) bool { return fwds[i].String() < fwds[j].String() })
	a.mu.Lock()
	same := a.shared.forwardsOnce && slices.Equal(fwds, a.shared.forwards)
	a.mu.Unlock()
	if same {
		return
	}
	if len(fwds) == 0 && !a.shared.forwardsOnce {
		// Nothing to forward and never forwarded: clear what an earlier
		// run may have left, without needing iptables when unused.
		if old, err := a.net.Forwards(); err != nil || len(old) == 0 {
			a.mu.Lock()
			a.shared.forwardsOnce = true
			a.mu.Unlock()
			return
		}
	}
	if err := a.net.SyncForwards(fwds); err != nil {
		a.log.Error("port forwards", "err", err)
		return
	}
	a.mu.Lock()
	a.shared.forwards, a.shared.forwardsOnce = fwds, true
	a.mu.Unlock()
}

func (a *Agent) hasAddress(iface string, p netip.Prefix) (bool, error) {
	have, err := a.net.Addresses(iface)
	if err != nil {
		return false, err
	}
	for _, h := range have {
		if h.Addr() == p.Addr() {
			return true, nil
		}
	}
	return false, nil
}

// dropAddress removes a floating IP from this host if it is on an
// interface, and reports whether the address is confirmed absent (only then
// may its claim be released). An unknown interface means: look on all.
func (a *Agent) dropAddress(addr string, p netip.Prefix, iface string) (absent bool) {
	a.mu.Lock()
	if h, ok := a.shared.vips[addr]; ok && iface == "" {
		iface = h.iface
	}
	delete(a.shared.vips, addr)
	a.mu.Unlock()
	ifaces := []string{iface}
	if iface == "" {
		all, err := a.net.Interfaces()
		if err != nil {
			a.log.Error("floating IP: list interfaces", "vip", p, "err", err)
			return false
		}
		ifaces = ifaces[:0]
		for _, i := range all {
			ifaces = append(ifaces, i.Name)
		}
	}
	for _, ifn := range ifaces {
		present, err := a.hasAddress(ifn, p)
		if err != nil {
			a.log.Error("floating IP: read addresses", "vip", p, "interface", ifn, "err", err)
			return false
		}
		if !present {
			continue
		}
		if err := a.net.DelAddress(ifn, p); err != nil {
			a.log.Error("remove floating IP", "vip", p, "interface", ifn, "err", err)
			return false
		}
		a.log.Info("floating IP down", "vip", p, "interface", ifn)
	}
	return true
}

// dropAllVIPs removes every floating IP this host carries and its port
// forwards, without asking the store: the first step of self-fencing.
func (a *Agent) dropAllVIPs() {
	if a.net == nil {
		return
	}
	a.mu.Lock()
	held := make(map[string]heldVIP, len(a.shared.vips))
	for k, v := range a.shared.vips {
		held[k] = v
	}
	a.mu.Unlock()
	for addr, h := range held {
		a.dropAddress(addr, h.prefix, h.iface)
	}
	a.mu.Lock()
	fwds, lbs := len(a.shared.forwards) > 0, len(a.shared.balances) > 0
	a.shared.forwards, a.shared.balances = nil, nil
	a.mu.Unlock()
	if fwds {
		if err := a.net.ClearForwards(); err != nil {
			a.log.Error("self-fence: clear port forwards", "err", err)
		}
	}
	if lbs {
		if err := a.net.ClearBalances(); err != nil {
			a.log.Error("self-fence: clear load-balancing rules", "err", err)
		}
	}
}

// hostNetworks describes this host's interfaces and configured networks for
// its registration.
func (a *Agent) hostNetworks() (ifaces []string, nets []api.HostNetwork, err error) {
	if a.net == nil {
		return nil, nil, nil
	}
	all, err := a.net.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	byName := map[string]network.Interface{}
	for _, i := range all {
		ifaces = append(ifaces, i.Name)
		byName[i.Name] = i
	}
	sort.Strings(ifaces)
	names := make([]string, 0, len(a.cfg.Networks))
	for n := range a.cfg.Networks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		iface := a.cfg.Networks[n]
		i, ok := byName[iface]
		if !ok {
			return nil, nil, fmt.Errorf("network %s: interface %s does not exist%s", n, iface, inNetns(a.cfg.Netns))
		}
		hn := api.HostNetwork{Name: n, Interface: iface}
		for _, p := range i.Addrs {
			if p.Addr().IsLinkLocalUnicast() {
				continue
			}
			hn.Subnets = append(hn.Subnets, p.String())
		}
		nets = append(nets, hn)
	}
	return ifaces, nets, nil
}

func inNetns(ns string) string {
	if ns == "" {
		return ""
	}
	return " in network namespace " + ns
}

// leaseRenewEvery is how often the on-storage leases are rewritten.
const leaseRenewEvery = time.Second

// A copy of a load-balanced service that this host is to stop (moved,
// scaled down, deleted) keeps running while a pool still forwards to it,
// and poolDrainGrace longer once it has left, so that the holder's rules
// change before its connections are refused; never longer than
// poolDrainMax in all.
const (
	poolDrainGrace = time.Second
	poolDrainMax   = 5 * time.Second
)

type poolDrain struct {
	since, left time.Time
}

// poolDrainingWait reports whether the planned stop of a workload should
// wait for load balancers, given whether a pool still lists it here.
func poolDrainingWait(d *poolDrain, inPool bool, now time.Time) bool {
	if d.since.IsZero() {
		d.since = now
	}
	if now.Sub(d.since) >= poolDrainMax {
		return false
	}
	if inPool {
		d.left = time.Time{}
		return true
	}
	if d.left.IsZero() {
		d.left = now
	}
	return now.Sub(d.left) < poolDrainGrace
}

// forgetDrains drops the drain timers of workloads no longer due to stop
// (gone by themselves, or wanted here again).
func (a *Agent) forgetDrains(due []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for name := range a.draining {
		if !slices.Contains(due, name) {
			delete(a.draining, name)
		}
	}
}

// poolDraining: see poolDrainingWait. Only workloads that were in a pool
// when their stop was first due wait at all.
func (a *Agent) poolDraining(cs clusterShared, name string) bool {
	inPool := false
	for _, v := range cs.vips {
		if v.Pool == nil {
			continue
		}
		for _, b := range v.Pool.Backends {
			if b.Workload == name && b.Host == a.cfg.Host {
				inPool = true
			}
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining == nil {
		a.draining = map[string]*poolDrain{}
	}
	d, tracked := a.draining[name]
	if !tracked && !inPool {
		return false
	}
	if !tracked {
		d = &poolDrain{}
		a.draining[name] = d
		a.log.Info("stopping it once load balancers have taken it out of their pools", "workload", name)
	}
	if poolDrainingWait(d, inPool, a.cfg.now()) {
		// Look again soon: the wait ends on a clock, not on an event.
		time.AfterFunc(poolDrainGrace/4, a.health.poke)
		return true
	}
	delete(a.draining, name)
	return false
}
