package nodeagent

import (
	"context"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/clusterstore/memory"
	"github.com/bulwarkhq/bulwark/network"
	"github.com/bulwarkhq/bulwark/network/nettest"
)

// TestVIPClaimHandedOverToANewEpoch: in a real network namespace, a
// floating IP's claim held here for its workload's earlier run (the
// workload came back to this host at a new epoch before the old claim was
// released) is handed over to the new epoch; the address stays up.
func TestVIPClaimHandedOverToANewEpoch(t *testing.T) {
	tp := nettest.Topology(t, 1, false)
	h1, _ := tp.Host("h1")
	st := memory.New()
	defer st.Close()
	d := newDriver(t, "h1")
	runAgentWith(t, Config{Host: "h1", Store: st, Driver: d, SessionTTL: 2 * time.Second, Resync: 100 * time.Millisecond,
		Netns: h1.Netns, Networks: map[string]string{"lan": "eth0"}})

	const vip = "10.213.0.100"
	put(t, st, clusterstore.VIPKey(vip), api.VIP{Schema: 1, VIPSpec: api.VIPSpec{Address: vip + "/24", Network: "lan", Workload: "w"}})
	put(t, st, clusterstore.WorkloadKey("w"), api.Workload{Schema: 1, WorkloadSpec: api.WorkloadSpec{Name: "w", Kind: api.KindVM, CPUs: 1, Memory: 256 * api.MiB}})
	claim := func() (api.Claim, bool) {
		kv, ok, _, err := st.Get(context.Background(), clusterstore.VIPClaimKey(vip))
		var c api.Claim
		if err != nil || !ok || clusterstore.Decode(kv, &c) != nil {
			return c, false
		}
		return c, true
	}
	// The workload comes back at a new epoch while a claim for an earlier
	// one (this host's) is still there.
	old := api.Claim{Schema: 1, Resource: vip, Workload: "w", Host: "h1", Epoch: 1, Since: time.Now().UTC()}
	put(t, st, clusterstore.VIPClaimKey(vip), old)
	epoch := put(t, st, clusterstore.AllocationKey("w"), api.Allocation{Schema: 1, Workload: "w", Host: "h1"})
	waitFor(t, "the claim handed over to the new epoch", func() bool {
		c, ok := claim()
		return ok && c.Epoch == epoch && c.Host == "h1"
	})
	nh, err := network.Open(h1.Netns)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	waitFor(t, vip+" up on h1", func() bool {
		addrs, _ := nh.Addresses("eth0")
		for _, p := range addrs {
			if p.Addr().String() == vip {
				return true
			}
		}
		return false
	})
}
