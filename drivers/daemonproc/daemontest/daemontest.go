// Package daemontest shares one private daemon (containerd, libvirtd) among
// the tests of a test binary, and decides what a test does when the machine
// cannot run one: skip, saying loudly why, or fail under
// BULWARK_REQUIRE_REAL=1 (CI sets it, so there every real-daemon test runs).
package daemontest

import (
	"errors"
	"os"
	"sync"
	"testing"
)

// RequireEnv, set to 1, turns a missing prerequisite into a failure.
const RequireEnv = "BULWARK_REQUIRE_REAL"

// Daemon is what a shared daemon must offer.
type Daemon interface {
	LogPath() string
	Stop() error
}

// Unavailable is an error saying the machine cannot run the daemon (as
// opposed to the daemon failing): Shared.Get skips the test on it.
type Unavailable interface {
	error
	Unavailable() bool
}

// Shared is one daemon of the test binary, started by the first test that
// needs it and stopped when the last one has finished.
type Shared[D Daemon] struct {
	// Name prefixes messages, e.g. "containerdtest".
	Name string
	// Needs says what the machine lacks when a test skips, e.g. "root and
	// containerd".
	Needs string
	// Missing says what the machine lacks, or "".
	Missing func() string
	// Start starts the daemon.
	Start func() (D, error)
	// Tail returns the end of the daemon's log, shown when a test fails.
	Tail func(path string) string

	mu   sync.Mutex
	d    D
	refs int
}

// Get returns the running daemon for t, starting it if needed.
func (s *Shared[D]) Get(t testing.TB) D {
	t.Helper()
	if reason := s.Missing(); reason != "" {
		Skip(t, s.Name, s.Needs, reason)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs == 0 {
		d, err := s.Start()
		var u Unavailable
		if errors.As(err, &u) && u.Unavailable() {
			Skip(t, s.Name, s.Needs, err.Error())
		}
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		s.d = d
	}
	d := s.d
	s.refs++
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s: tail of %s:\n%s", s.Name, d.LogPath(), s.Tail(d.LogPath()))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.refs--
		if s.refs > 0 {
			return
		}
		if err := d.Stop(); err != nil {
			t.Errorf("%s: stop: %v", s.Name, err)
		}
	})
	return d
}

// Skip skips t because the machine lacks something, or fails it when
// RequireEnv is set.
func Skip(t testing.TB, name, needs, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s: %s=1 but this machine cannot run the real daemon: %s (run scripts/deps-real.sh as root)", name, RequireEnv, reason)
	}
	t.Skipf("SKIP: needs %s: %s (run scripts/deps-real.sh as root; set %s=1 to make this a failure)", needs, reason, RequireEnv)
}
