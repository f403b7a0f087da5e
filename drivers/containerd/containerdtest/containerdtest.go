// Package containerdtest gives tests that need real containers a private
// containerd (package daemon), and builds a tiny OCI image archive from the
// host's busybox (see BuildBusyboxArchive), since the tests have no registry.
//
// Start either returns a running daemon reachable at Address() or ends the
// test: with t.Skip (saying loudly why) when the machine cannot run one, or
// with t.Fatal when the environment variable BULWARK_REQUIRE_REAL=1 says the
// real-daemon tests must run (CI sets it). scripts/deps-real.sh installs
// what is needed (containerd, runc, busybox-static). Within one test binary
// the daemon is shared, reference counted, and stopped when the last test
// using it has finished.
package containerdtest

import (
	"os"
	"sync"
	"testing"

	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
)

// RequireEnv, set to 1, turns a missing prerequisite into a failure.
const RequireEnv = "BULWARK_REQUIRE_REAL"

// LockPath is the machine-wide lock the daemon holds while it runs.
const LockPath = daemon.LockPath

// Daemon is the running private containerd.
type Daemon = daemon.Daemon

var (
	sharedMu sync.Mutex
	shared   *Daemon
	refs     int
)

// Start returns this test binary's containerd, starting it if none runs,
// and releases it when t (and every other test using it) has finished.
func Start(t testing.TB) *Daemon {
	t.Helper()
	if reason := daemon.Missing(); reason != "" {
		unavailable(t, reason)
	}
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared == nil {
		d, err := daemon.Start()
		if err != nil {
			t.Fatalf("containerdtest: %v", err)
		}
		shared = d
	}
	d := shared
	refs++
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("containerdtest: tail of %s:\n%s", d.LogPath(), daemon.Tail(d.LogPath(), 40))
		}
		sharedMu.Lock()
		defer sharedMu.Unlock()
		refs--
		if refs > 0 {
			return
		}
		shared = nil
		if err := d.Stop(); err != nil {
			t.Errorf("containerdtest: stop: %v", err)
		}
	})
	return d
}

// unavailable skips t, or fails it when RequireEnv is set.
func unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("containerdtest: %s=1 but a real containerd cannot run here: %s (run scripts/deps-real.sh as root)", RequireEnv, reason)
	}
	t.Skipf("SKIP: needs root, containerd, runc and busybox-static: %s (run scripts/deps-real.sh as root; set %s=1 to make this a failure)", reason, RequireEnv)
}
