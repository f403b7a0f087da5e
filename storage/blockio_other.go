//go:build !linux

package storage

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// lockWait: no locks here.
const lockWait = 0

// blockFile on systems other than Linux (which Bulwark's agent does not run
// on) has no O_DIRECT and no locks: it reads through the cache and writes
// synchronously. It exists so that tools can read leases anywhere.
type blockFile struct {
	f      *os.File
	path   string
	direct bool
	buf    []byte
}

func openBlock(path string, write, create bool, _ time.Duration) (*blockFile, bool, error) {
	flags := os.O_RDONLY
	if write {
		flags = os.O_RDWR | os.O_SYNC
		if create {
			flags |= os.O_CREATE
		}
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			if !create {
				return nil, false, nil
			}
			return nil, false, missingDirError(path, err)
		}
		return nil, false, fmt.Errorf("open lease file: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, false, fmt.Errorf("lease path %s is not a regular file", path)
	}
	return &blockFile{f: f, path: path, buf: make([]byte, blockSize)}, true, nil
}

func (bf *blockFile) Close() error { return bf.f.Close() }

func (bf *blockFile) read() ([]byte, int64, error) {
	n, err := bf.f.ReadAt(bf.buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, 0, fmt.Errorf("read lease file %s: %w", bf.path, err)
	}
	size := int64(n)
	if n == blockSize {
		fi, err := bf.f.Stat()
		if err != nil {
			return nil, 0, fmt.Errorf("lease file %s: %w", bf.path, err)
		}
		size = fi.Size()
	}
	return bf.buf, size, nil
}

func (bf *blockFile) write() error {
	if _, err := bf.f.WriteAt(bf.buf, 0); err != nil {
		return fmt.Errorf("write lease file %s: %w", bf.path, err)
	}
	if err := bf.f.Sync(); err != nil {
		return fmt.Errorf("sync lease file %s: %w", bf.path, err)
	}
	return nil
}
