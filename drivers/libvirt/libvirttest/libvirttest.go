// Package libvirttest gives tests that need real QEMU guests a private
// libvirtd (package daemon, which explains how it is set up) and a bootable
// test guest (see BuildGuest).
//
// Start either returns a running daemon reachable at URI() or ends the test:
// with t.Skip (saying loudly why) when the machine cannot run one, or with
// t.Fatal when the environment variable BULWARK_REQUIRE_REAL=1 says the
// real-daemon tests must run (CI sets it). scripts/deps-real.sh installs
// what is needed. Within one test binary the daemon is shared, reference
// counted, and stopped when the last test using it has finished.
package libvirttest

import (
	"errors"
	"testing"

	"github.com/bulwarkhq/bulwark/drivers/daemonproc/daemontest"
	"github.com/bulwarkhq/bulwark/drivers/libvirt/daemon"
)

// LockPath is the file whose flock the running daemon holds.
const LockPath = daemon.LockPath

// RequireEnv, set to "1", turns every reason to skip into a test failure.
const RequireEnv = daemontest.RequireEnv

// Lines the test guest writes to its serial console.
const (
	// MarkerUp: userspace runs and handles the power button; the disk and
	// NIC lines follow it.
	MarkerUp = daemon.MarkerUp
	// MarkerDisks starts the line listing the guest's block devices,
	// e.g. "BULWARK-GUEST-DISKS: vda vdb".
	MarkerDisks = daemon.MarkerDisks
	// MarkerNICs starts the line listing its network interfaces.
	MarkerNICs = daemon.MarkerNICs
	// MarkerPoweroff: the guest got the ACPI power button and powers off.
	MarkerPoweroff = daemon.MarkerPoweroff
)

// Daemon is a running private libvirtd.
type Daemon = daemon.Daemon

// Guest is a bootable test guest: Debian's kernel and a busybox initramfs.
type Guest = daemon.Guest

const needs = "root and libvirt-daemon-driver-qemu"

var shared = &daemontest.Shared[*Daemon]{
	Name: "libvirttest", Needs: needs, Missing: daemon.Missing, Start: daemon.Start,
	Tail: func(path string) string { return daemon.Tail(path, 40) },
}

// Start returns this test binary's libvirtd, starting it if none runs, and
// releases it when t (and every other test using it) has finished.
func Start(t testing.TB) *Daemon {
	t.Helper()
	return shared.Get(t)
}

// BuildGuest writes a test guest into dir (see daemon.BuildGuest): a copy
// of the newest kernel in /boot and a busybox initramfs whose /init prints
// the markers above on the serial console. dir must be traversable by
// libvirt-qemu. Missing pieces skip (or fail, see RequireEnv) the test.
func BuildGuest(t testing.TB, dir string) Guest {
	t.Helper()
	g, err := daemon.BuildGuest(dir)
	var u daemon.UnavailableError
	if errors.As(err, &u) {
		Unavailable(t, string(u))
	}
	if err != nil {
		t.Fatalf("libvirttest: build guest: %v", err)
	}
	return g
}

// Unavailable skips t with a loud reason, or fails it when RequireEnv is
// set: for tests that need something of the real environment.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	daemontest.Skip(t, "libvirttest", needs, reason)
}
