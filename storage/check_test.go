//go:build linux

package storage

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/bulwarkhq/bulwark/api"
)

// checkCase is one CheckVolumePath call and the error it must give (a
// substring; empty: none).
type checkCase struct {
	Name string
	Spec api.VolumeSpec
	Want string
}

type checkResult struct {
	Name string
	Err  string
}

func runChecks(cases []checkCase) []checkResult {
	var out []checkResult
	for _, c := range cases {
		r := checkResult{Name: c.Name}
		if err := CheckVolumePath(c.Spec); err != nil {
			r.Err = err.Error()
		}
		out = append(out, r)
	}
	return out
}

func helperCheck(arg []byte) (any, error) {
	var cases []checkCase
	if err := json.Unmarshal(arg, &cases); err != nil {
		return nil, err
	}
	return runChecks(cases), nil
}

func wantChecks(t *testing.T, cases []checkCase, got []checkResult) {
	t.Helper()
	if len(got) != len(cases) {
		t.Fatalf("%d results for %d cases", len(got), len(cases))
	}
	for i, c := range cases {
		switch {
		case c.Want == "" && got[i].Err != "":
			t.Errorf("%s: %s, want no error", c.Name, got[i].Err)
		case c.Want != "" && !strings.Contains(got[i].Err, c.Want):
			t.Errorf("%s: error %q, want %q", c.Name, got[i].Err, c.Want)
		}
	}
}

// checkDir makes a directory every user can reach (the permission cases
// run as an unprivileged user when the test runs as root).
func checkDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bulwark-check-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mkfile(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte("disk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func mkdir(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func excl(name, path, lease string) api.VolumeSpec {
	return api.VolumeSpec{Name: name, Path: path, Mode: api.VolumeExclusive, LeasePath: lease}
}

func shared(name, path string) api.VolumeSpec {
	return api.VolumeSpec{Name: name, Path: path, Mode: api.VolumeSharedRead}
}

// Cases that permissions do not decide: they run as whoever runs the test.
func TestCheckVolumePath(t *testing.T) {
	dir := checkDir(t)
	img := mkfile(t, filepath.Join(dir, "disk.img"), 0o666)
	sub := mkdir(t, filepath.Join(dir, "images"), 0o755)
	missing := filepath.Join(dir, "missing.img")
	cases := []checkCase{
		{"exclusive, default lease path", excl("a", img, ""), ""},
		{"shared-read", shared("a", img), ""},
		{"missing", excl("a", missing, ""), "volume path " + missing + " does not exist"},
		{"missing, shared-read", shared("a", missing), "volume path " + missing + " does not exist"},
		{"directory", excl("a", sub, ""), "volume path " + sub + " is a directory"},
		{"character device", shared("a", "/dev/null"), "volume path /dev/null is not a regular file or block device (a character device)"},
		{"lease directory missing", excl("a", img, filepath.Join(dir, "nope", "a.lease")), "lease directory " + filepath.Join(dir, "nope") + " does not exist"},
		{"lease path is a directory", excl("a", img, sub), "lease path " + sub + " is not a regular file (a directory)"},
		{"unknown mode", api.VolumeSpec{Name: "a", Path: img, Mode: "shared-write"}, `mode "shared-write" is unknown`},
	}
	// An existing lease file is fine when it can be written.
	if err := AcquireLease(img+api.LeaseSuffix, lease(1, "h")); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, checkCase{"existing lease file", excl("a", img, ""), ""})
	wantChecks(t, cases, runChecks(cases))
}

func TestCheckVolumePathBlockDevice(t *testing.T) {
	dev := firstBlockDevice()
	if dev == "" {
		t.Skip("no block device under /dev to check against")
	}
	cases := []checkCase{
		{"exclusive block device without a lease path", excl("b", dev, ""), "an exclusive volume needs a lease path"},
	}
	if os.Geteuid() == 0 {
		// Opening read-only is all the check does with a shared-read volume.
		cases = append(cases, checkCase{"shared-read block device", shared("b", dev), ""})
	}
	t.Logf("block device %s", dev)
	wantChecks(t, cases, runChecks(cases))
}

func firstBlockDevice() string {
	entries, _ := os.ReadDir("/dev")
	for _, e := range entries {
		t := e.Type()
		if t&fs.ModeDevice != 0 && t&fs.ModeCharDevice == 0 {
			return filepath.Join("/dev", e.Name())
		}
	}
	return ""
}

// The permission cases. Root reads and writes everything, so when the test
// runs as root it runs these checks in a child process as nobody (65534).
func TestCheckVolumePathPermissions(t *testing.T) {
	dir := checkDir(t)
	rw := mkfile(t, filepath.Join(dir, "rw.img"), 0o666)
	ro := mkfile(t, filepath.Join(dir, "ro.img"), 0o444)
	none := mkfile(t, filepath.Join(dir, "none.img"), 0o000)
	roDir := mkdir(t, filepath.Join(dir, "leases-ro"), 0o555)
	roLease := mkfile(t, filepath.Join(dir, "ro.lease"), 0o444)
	cases := []checkCase{
		// The control: this user reaches the directory and may use a
		// file it may use, so the failures below are the files' modes.
		{"control: read-write file", excl("a", rw, ""), ""},
		{"control: shared-read", shared("a", rw), ""},
		{"unreadable, shared-read", shared("a", none), "volume path " + none + " is not readable by the agent: permission denied"},
		{"unreadable, exclusive", excl("a", none, ""), "volume path " + none + " is not readable by the agent: permission denied"},
		{"read-only file, shared-read", shared("a", ro), ""},
		{"read-only file, exclusive", excl("a", ro, ""), "volume path " + ro + " is not writable by the agent: permission denied"},
		{"lease directory not writable", excl("a", rw, filepath.Join(roDir, "a.lease")), "lease directory " + roDir + " is not writable by the agent: permission denied"},
		{"lease file not writable", excl("a", rw, roLease), "lease path " + roLease + " is not writable by the agent: permission denied"},
	}
	if os.Geteuid() != 0 {
		wantChecks(t, cases, runChecks(cases))
		return
	}
	bin := unprivilegedCopyOfTestBinary(t)
	cmd := helperCommand(t, bin, "check", cases)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("check as uid 65534: %v\n%s", err, ee.Stderr)
		}
		// Could not even start it as another user (no CAP_SETUID, a user
		// namespace without that uid): the permission cases cannot be
		// checked here at all.
		t.Skipf("SKIPPED, NOT CHECKED: running as root and cannot start a child as uid 65534 (%v), so permission errors cannot be observed", err)
	}
	var got []checkResult
	helperResult(t, out, &got)
	t.Logf("permission cases checked as uid 65534 in a child process")
	wantChecks(t, cases, got)
}

// unprivilegedCopyOfTestBinary copies this test binary where uid 65534 can
// run it (the build directory is private to root).
func unprivilegedCopyOfTestBinary(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := checkDir(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(self))
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}
