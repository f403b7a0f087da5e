// Package nettest gives a test a private network of simulated hosts (see
// package topo) and removes it when the test ends. A machine that cannot
// build one (not root, no ip or iptables) skips the test, saying so loudly,
// or fails it under BULWARK_REQUIRE_REAL=1 (CI sets it, so there every
// real-network test runs) — the convention of drivers/daemonproc/daemontest.
package nettest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/network/topo"
)

// RequireEnv, set to 1, turns a missing prerequisite into a failure. It is
// daemontest.RequireEnv.
const RequireEnv = "BULWARK_REQUIRE_REAL"

// NamePrefix starts the names of the namespaces nettest makes:
// NamePrefix<pid>-<n>-<node>.
const NamePrefix = "bwt"

var (
	seq       atomic.Int64
	sweepOnce sync.Once
	staleRE   = regexp.MustCompile(`^` + NamePrefix + `([0-9]+)-`)
)

// Missing says what the machine lacks for real-network tests, or "".
func Missing() string {
	var miss []string
	if os.Geteuid() != 0 {
		miss = append(miss, "not root")
	}
	for _, c := range []string{"ip", "iptables", "ip6tables", "iptables-save", "ip6tables-save"} {
		if _, err := exec.LookPath(c); err != nil {
			miss = append(miss, "no "+c)
		}
	}
	return strings.Join(miss, ", ")
}

// Require skips t (or fails it under BULWARK_REQUIRE_REAL=1) when the
// machine cannot run real-network tests.
func Require(t testing.TB) {
	t.Helper()
	if m := Missing(); m != "" {
		skip(t, m)
	}
}

func skip(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but this machine cannot run real-network tests: %s (they need root, iproute2 and iptables)", RequireEnv, reason)
	}
	t.Skipf("SKIPPING REAL-NETWORK TEST: %s; it needs root, iproute2 (ip) and iptables (set %s=1 to make this a failure)", reason, RequireEnv)
}

// Prefix returns a namespace name prefix no other topology of this or
// another running process uses.
func Prefix() string {
	return fmt.Sprintf("%s%d-%d-", NamePrefix, os.Getpid(), seq.Add(1))
}

// Topology creates hosts h1..h<hosts> (and a client when client is set) on
// one bridge, under a unique prefix, and destroys them when t ends.
// Leftovers of earlier test processes that were killed are removed first
// (once per process).
func Topology(t testing.TB, hosts int, client bool) *topo.Topology {
	t.Helper()
	Require(t)
	sweepOnce.Do(func() { removeDead(t) })
	s := topo.Spec{Prefix: Prefix(), Client: client}
	for i := 1; i <= hosts; i++ {
		s.Hosts = append(s.Hosts, "h"+strconv.Itoa(i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tp, err := topo.Create(ctx, s)
	if err != nil {
		if strings.Contains(err.Error(), "Operation not permitted") {
			skip(t, err.Error())
		}
		t.Fatalf("create test network: %v", err)
	}
	t.Cleanup(func() {
		if err := tp.Destroy(); err != nil {
			t.Errorf("destroy test network: %v", err)
		}
	})
	return tp
}

// removeDead deletes namespaces made by nettest in processes that are gone.
func removeDead(t testing.TB) {
	names, err := topo.Netns()
	if err != nil {
		t.Logf("nettest: %v", err)
		return
	}
	dead := map[string]bool{}
	for _, n := range names {
		m := staleRE.FindStringSubmatch(n)
		if m == nil || dead[m[0]] {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); os.IsNotExist(err) {
			dead[m[0]] = true
		}
	}
	for p := range dead {
		if err := topo.RemoveStale(p); err != nil {
			t.Logf("nettest: remove leftovers %s*: %v", p, err)
		}
	}
}
