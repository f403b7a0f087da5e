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
	"testing"

	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
	"github.com/bulwarkhq/bulwark/drivers/daemonproc/daemontest"
)

// RequireEnv, set to 1, turns a missing prerequisite into a failure.
const RequireEnv = daemontest.RequireEnv

// LockPath is the machine-wide lock the daemon holds while it runs.
const LockPath = daemon.LockPath

// Daemon is the running private containerd.
type Daemon = daemon.Daemon

const needs = "root, containerd, runc and busybox-static"

var shared = &daemontest.Shared[*Daemon]{
	Name: "containerdtest", Needs: needs, Missing: daemon.Missing, Start: daemon.Start,
	Tail: func(path string) string { return daemon.Tail(path, 40) },
}

// Start returns this test binary's containerd, starting it if none runs,
// and releases it when t (and every other test using it) has finished.
func Start(t testing.TB) *Daemon {
	t.Helper()
	return shared.Get(t)
}

// unavailable skips t, or fails it when RequireEnv is set.
func unavailable(t testing.TB, reason string) {
	t.Helper()
	daemontest.Skip(t, "containerdtest", needs, reason)
}
