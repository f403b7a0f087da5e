package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/bulwarkhq/bulwark/api"
)

// CheckVolumePath checks that this process can use volume v the way an
// agent must: the path exists and is a regular file or a block device that
// opens read-write (exclusive) or read-only (shared-read), and, for an
// exclusive volume, its lease file can be written (the file itself if it
// exists, else its directory). Nothing is written.
func CheckVolumePath(v api.VolumeSpec) error {
	v.Normalize()
	if v.Mode != api.VolumeExclusive && v.Mode != api.VolumeSharedRead {
		return fmt.Errorf("volume %s: mode %q is unknown: use exclusive or shared-read", v.Name, v.Mode)
	}
	fi, err := os.Stat(v.Path)
	if err != nil {
		return pathError("volume path", v.Path, err)
	}
	switch t := fi.Mode().Type(); {
	case t&fs.ModeDir != 0:
		return fmt.Errorf("volume path %s is a directory", v.Path)
	case t == 0, t&fs.ModeDevice != 0 && t&fs.ModeCharDevice == 0:
	default:
		return fmt.Errorf("volume path %s is not a regular file or block device (%s)", v.Path, describeType(t))
	}
	if v.Mode == api.VolumeExclusive && v.LeasePath == "" {
		return fmt.Errorf("volume %s: %s is a block device: an exclusive volume needs a lease path on a shared filesystem", v.Name, v.Path)
	}
	// Read first, so that a file nobody may read says so, not "not writable".
	if err := tryOpen(v.Path, os.O_RDONLY); err != nil {
		return pathError("volume path", v.Path, err)
	}
	if v.Mode == api.VolumeSharedRead {
		return nil
	}
	if err := tryOpen(v.Path, os.O_RDWR); err != nil {
		return accessError("volume path", v.Path, "writable", err)
	}
	return checkLeasePath(v.LeasePath)
}

func checkLeasePath(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("lease path %s is not a regular file (%s)", path, describeType(fi.Mode().Type()))
	case err == nil:
		if err := tryOpen(path, os.O_RDWR); err != nil {
			return accessError("lease path", path, "writable", err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return pathError("lease path", path, err)
	}
	dir := parentDir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return pathError("lease directory", dir, err)
	}
	if !di.IsDir() {
		return fmt.Errorf("lease directory %s is not a directory", dir)
	}
	// Effective ids, as the open that creates the file will use them;
	// faccessat also says EROFS for a read-only mount.
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return accessError("lease directory", dir, "writable", err)
	}
	return nil
}

// tryOpen opens and closes path. O_NONBLOCK keeps it from waiting on
// anything (a device, a FIFO that slipped through).
func tryOpen(path string, flags int) error {
	f, err := os.OpenFile(path, flags|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func pathError(what, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s %s does not exist", what, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s is not readable by the agent: permission denied", what, path)
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}

func accessError(what, path, how string, err error) error {
	switch {
	case errors.Is(err, unix.EROFS):
		return fmt.Errorf("%s %s is on a read-only filesystem", what, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s %s is not %s by the agent: permission denied", what, path, how)
	}
	return fmt.Errorf("%s %s: %w", what, path, err)
}

func describeType(t fs.FileMode) string {
	switch {
	case t&fs.ModeCharDevice != 0:
		return "a character device"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDir != 0:
		return "a directory"
	}
	return "not a regular file"
}
