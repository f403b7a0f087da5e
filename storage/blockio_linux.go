package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// blockFile is an open lease file. Reads and writes go around the page
// cache (O_DIRECT) where the filesystem allows it, so a stale cached copy
// on this host cannot hide another host's write; where it does not
// (tmpfs: EINVAL), writes are synchronous (O_DSYNC, then fdatasync) and
// reads go through the cache, which on such filesystems is the data.
type blockFile struct {
	f      *os.File
	path   string
	direct bool
	// buf is one block, aligned for O_DIRECT.
	buf []byte
}

// lockWait bounds how long a reader or writer waits for another process's
// read-check-write to finish. Those take milliseconds; a holder stopped
// inside one (SIGSTOP) must not block the agent forever.
const lockWait = 5 * time.Second

// openBlock opens path for reading, or for writing (creating it, 0600, if
// create is set). The file is locked (a shared lock for readers, an
// exclusive one for writers) before it returns. ok is false if the file
// does not exist and was not to be created.
func openBlock(path string, write, create bool, wait time.Duration) (bf *blockFile, ok bool, err error) {
	flags := os.O_RDONLY
	if write {
		flags = os.O_RDWR | unix.O_DSYNC
		if create {
			flags |= os.O_CREATE
		}
	}
	created := false
	if create {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			created = true
		}
	}
	bf = &blockFile{path: path, buf: alignedBlock()}
	f, err := os.OpenFile(path, flags|unix.O_DIRECT, 0o600)
	bf.direct = err == nil
	if errors.Is(err, unix.EINVAL) {
		f, err = os.OpenFile(path, flags, 0o600)
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if !create {
				return nil, false, nil
			}
			return nil, false, missingDirError(path, err)
		}
		return nil, false, fmt.Errorf("open lease file: %w", err)
	}
	bf.f = f
	if fi, err := f.Stat(); err != nil {
		f.Close()
		return nil, false, fmt.Errorf("lease file %s: %w", path, err)
	} else if !fi.Mode().IsRegular() {
		f.Close()
		return nil, false, fmt.Errorf("lease path %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if created {
		// Make the new name durable: a lease that vanishes after a crash
		// would let an older epoch in.
		if err := syncDir(path); err != nil {
			f.Close()
			return nil, false, err
		}
	}
	if err := bf.lock(write, wait); err != nil {
		f.Close()
		return nil, false, err
	}
	return bf, true, nil
}

func (bf *blockFile) Close() error { return bf.f.Close() }

// lock takes an open-file-description lock on the whole file, so that the
// read-check-write of one writer is atomic with respect to every other
// writer on this host, and on every host where the filesystem's locks are
// coherent (NFS with its lock manager, GFS2, OCFS2). Filesystems without
// locks (ENOLCK, EOPNOTSUPP) are used without: epochs still decide, only
// the race window of a concurrent read-check-write reopens
// (docs/storage.md).
func (bf *blockFile) lock(write bool, wait time.Duration) error {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: io.SeekStart}
	if write {
		lk.Type = unix.F_WRLCK
	}
	deadline := time.Now().Add(wait)
	pause := 50 * time.Microsecond
	for {
		err := unix.FcntlFlock(bf.f.Fd(), unix.F_OFD_SETLK, &lk)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
			return nil
		case !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINTR):
			return fmt.Errorf("lock lease file %s: %w", bf.path, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lease file %s: another process has held its lock for %v (a writer stopped mid-update?): %w", bf.path, wait, ErrLeaseBusy)
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
}

// read returns the block and the file's size (0: never written).
func (bf *blockFile) read() ([]byte, int64, error) {
	n, err := bf.f.ReadAt(bf.buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read lease file %s: %w", bf.path, err)
	}
	size := int64(n)
	if n == blockSize {
		// A file longer than a block is not ours; ReadAt cannot tell.
		fi, err := bf.f.Stat()
		if err != nil {
			return nil, 0, fmt.Errorf("lease file %s: %w", bf.path, err)
		}
		size = fi.Size()
	}
	return bf.buf, size, nil
}

// write writes one block (already in bf.buf) at offset 0 and makes it
// durable.
func (bf *blockFile) write() error {
	n, err := bf.f.WriteAt(bf.buf, 0)
	if errors.Is(err, unix.EINVAL) && bf.direct {
		// Accepted O_DIRECT at open but not this I/O: write through the
		// cache instead, synchronously.
		if ferr := bf.dropDirect(); ferr != nil {
			return ferr
		}
		n, err = bf.f.WriteAt(bf.buf, 0)
	}
	if err == nil && n != blockSize {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write lease file %s: %w", bf.path, err)
	}
	// O_DSYNC already waited for the data; fdatasync also covers the
	// file size of a first write, and filesystems that ignore O_DSYNC.
	if err := unix.Fdatasync(int(bf.f.Fd())); err != nil {
		return fmt.Errorf("sync lease file %s: %w", bf.path, err)
	}
	return nil
}

// dropDirect turns O_DIRECT off on the open file (keeping its lock, which
// belongs to this open file description).
func (bf *blockFile) dropDirect() error {
	fd := int(bf.f.Fd())
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(fd), unix.F_SETFL, fl&^unix.O_DIRECT)
	}
	if err != nil {
		return fmt.Errorf("lease file %s: turn off O_DIRECT: %w", bf.path, err)
	}
	bf.direct = false
	return nil
}

// alignedBlock returns blockSize bytes aligned to blockSize, as O_DIRECT
// wants on every sector size up to 4 KiB. The Go heap does not move.
func alignedBlock() []byte {
	b := make([]byte, 2*blockSize)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (blockSize - 1))
	if off != 0 {
		off = blockSize - off
	}
	return b[off : off+blockSize : off+blockSize]
}

func syncDir(path string) error {
	dir := parentDir(path)
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync lease directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("sync lease directory %s: %w", dir, err)
	}
	return nil
}
