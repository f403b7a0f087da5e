package scheduler

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"

	"github.com/bulwarkhq/bulwark/api"
)

// Shared resources: exclusive volumes (one workload at a time, wherever it
// runs) and floating IPs (only hosts on the address's network can hold it).

// volHolder is the workload that has an exclusive volume, and where.
type volHolder struct{ workload, host string }

// volumeHolders indexes who has each exclusive volume: the holder of its
// lock first (it may still be stopping somewhere), then any placed workload
// whose spec attaches it. Built on first use.
func (t *Tracker) volumeHolders() map[string]volHolder {
	if t.volHolders != nil {
		return t.volHolders
	}
	t.volHolders = map[string]volHolder{}
	for v, c := range t.st.VolumeLocks {
		t.volHolders[v] = volHolder{c.Workload, c.Host}
	}
	if len(t.st.Volumes) == 0 {
		return t.volHolders
	}
	names := make([]string, 0, len(t.st.Allocations))
	for name := range t.st.Allocations {
		names = append(names, name)
	}
	sort.Strings(names) // deterministic when a spec conflicts (never by construction)
	for _, name := range names {
		w, ok := t.st.Workloads[name]
		if !ok {
			continue
		}
		for _, v := range w.Volumes {
			if t.exclusive(v) {
				if _, held := t.volHolders[v]; !held {
					t.volHolders[v] = volHolder{name, t.st.Allocations[name].Host}
				}
			}
		}
	}
	return t.volHolders
}

func (t *Tracker) exclusive(volume string) bool {
	v, ok := t.st.Volumes[volume]
	return ok && v.Mode != api.VolumeSharedRead
}

// volumeConflict says why w cannot be placed anywhere because of its
// volumes, or "" if it can.
func (t *Tracker) volumeConflict(w *api.Workload) string {
	if len(w.Volumes) == 0 {
		return ""
	}
	holders := t.volumeHolders()
	for _, v := range w.Volumes {
		if _, ok := t.st.Volumes[v]; !ok {
			return fmt.Sprintf("volume %s does not exist", v)
		}
		if h, held := holders[v]; held && h.workload != w.Name && t.exclusive(v) {
			return fmt.Sprintf("volume %s held by %s on %s", v, h.workload, h.host)
		}
	}
	return ""
}

// claimVolumes records w as the holder of its exclusive volumes.
func (t *Tracker) claimVolumes(w *api.Workload, host string) {
	if len(w.Volumes) == 0 {
		return
	}
	holders := t.volumeHolders()
	for _, v := range w.Volumes {
		if _, held := holders[v]; !held && t.exclusive(v) {
			holders[v] = volHolder{w.Name, host}
		}
	}
}

// vipNeed is one floating IP a candidate must be able to hold.
type vipNeed struct {
	addr    string
	iface   string
	network string
	prefix  netip.Prefix
}

// vipNeeds lists the floating IPs attached to a workload.
func (t *Tracker) vipNeeds(workload string) []vipNeed {
	if len(t.st.VIPs) == 0 {
		return nil
	}
	if t.vipsByWorkload == nil {
		t.vipsByWorkload = map[string][]vipNeed{}
		addrs := make([]string, 0, len(t.st.VIPs))
		for a := range t.st.VIPs {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		for _, a := range addrs {
			v := t.st.VIPs[a]
			if v.Workload == "" {
				continue
			}
			p, _ := netip.ParsePrefix(v.Address)
			t.vipsByWorkload[v.Workload] = append(t.vipsByWorkload[v.Workload], vipNeed{addr: a, iface: v.Interface, network: v.Network, prefix: p})
		}
	}
	return t.vipsByWorkload[workload]
}

// HostCanHold reports whether a host can hold a floating IP, and if not,
// why.
func HostCanHold(n api.Node, v api.VIP) (bool, string) {
	p, _ := netip.ParsePrefix(v.Address)
	return hostCanHold(n, vipNeed{addr: p.Addr().String(), iface: v.Interface, network: v.Network, prefix: p})
}

func hostCanHold(n api.Node, need vipNeed) (bool, string) {
	if need.network != "" {
		for _, hn := range n.Networks {
			if hn.Name == need.network && (need.iface == "" || hn.Interface == need.iface) {
				return true, ""
			}
		}
		if need.iface != "" {
			return false, fmt.Sprintf("not on network %s through %s for floating IP %s", need.network, need.iface, need.addr)
		}
		return false, fmt.Sprintf("not on network %s for floating IP %s", need.network, need.addr)
	}
	if slices.Contains(n.Interfaces, need.iface) {
		return true, ""
	}
	return false, fmt.Sprintf("no interface %s for floating IP %s", need.iface, need.addr)
}

// vipCheck keeps a workload with floating IPs on hosts that can hold them.
type vipCheck struct{}

func (vipCheck) ok(t *Tracker, h int, c *candidate) bool {
	for _, need := range c.vips {
		if ok, _ := hostCanHold(t.nodes[h].Node, need); !ok {
			return false
		}
	}
	return true
}

func (vipCheck) why(t *Tracker, h int, c *candidate) (string, string) {
	for _, need := range c.vips {
		if ok, why := hostCanHold(t.nodes[h].Node, need); !ok {
			return why, why
		}
	}
	return "", ""
}
