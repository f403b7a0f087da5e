package containerdtest

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/bulwarkhq/bulwark/drivers/containerd/daemon"
)

// BusyboxRef is the name of the image in the busybox archive.
const BusyboxRef = daemon.BusyboxRef

// BuildBusyboxArchive writes the busybox OCI image archive (see
// daemon.WriteBusyboxArchive) to dir/busybox-oci.tar (dir "" means a
// temporary directory of t) and returns its path and image reference.
// Without busybox-static, t is skipped (or failed under
// BULWARK_REQUIRE_REAL=1).
func BuildBusyboxArchive(t testing.TB, dir string) (path, ref string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	path = filepath.Join(dir, "busybox-oci.tar")
	ref, err := daemon.WriteBusyboxArchive(path)
	if err != nil {
		if errors.Is(err, daemon.ErrNoBusybox) {
			unavailable(t, err.Error())
		}
		t.Fatalf("containerdtest: build busybox archive: %v", err)
	}
	return path, ref
}
