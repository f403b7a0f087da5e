package storage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Lease is what the on-storage lease file next to an exclusive volume says:
// which allocation (workload, host, epoch) holds the volume.
type Lease struct {
	Volume   string
	Workload string
	Host     string
	// Epoch is the allocation's epoch (the store revision that created it):
	// the only thing that decides between two holders.
	Epoch int64
	// Renewed is when the holder last wrote, on its own clock: every
	// write sets it to time.Now(), whatever the caller passed. For people
	// only: clocks of different hosts are never compared.
	Renewed time.Time
	// Released: the holder stopped cleanly. The epoch stays, so that an
	// older holder still finds itself superseded.
	Released bool
}

// ErrSuperseded: the lease file holds a newer epoch than ours. The error is
// a *SupersededError; an agent that gets it stops its workload at once.
var ErrSuperseded = errors.New("lease superseded")

// ErrLeaseConflict: the lease file holds our epoch for another host,
// workload or volume. Two allocations never share an epoch, so this is a
// misconfiguration (one lease path for two volumes) or a forged lease.
var ErrLeaseConflict = errors.New("lease epoch held by another holder")

// ErrLeaseBusy: another process kept the lease file locked for longer
// than a read-check-write takes (it was stopped in the middle of one).
// Nothing was read or written; try again later.
var ErrLeaseBusy = errors.New("lease file busy")

// SupersededError says who holds the volume now.
type SupersededError struct {
	Path string
	// Current is the lease found in the file.
	Current Lease
	// Ours is the lease we tried to write.
	Ours Lease
}

func (e *SupersededError) Error() string {
	return fmt.Sprintf("volume %s: lease at %s is held by %s on %s at epoch %d, newer than ours (%d)",
		e.Ours.Volume, e.Path, e.Current.Workload, e.Current.Host, e.Current.Epoch, e.Ours.Epoch)
}

func (e *SupersededError) Unwrap() error { return ErrSuperseded }

// ReadLease reads the lease file at path. ok is false if there is none (or
// it is empty: created, never written). A damaged file is an error wrapping
// ErrCorruptLease that names the path.
func ReadLease(path string) (l Lease, ok bool, err error) {
	bf, exists, err := openBlock(path, false, false, lockWait)
	if err != nil || !exists {
		return Lease{}, false, err
	}
	defer bf.Close()
	return bf.readLease()
}

// AcquireLease writes l to the lease file at path (creating it, 0600; its
// directory must exist) unless the file holds a newer epoch (a
// *SupersededError; nothing is written) or our epoch for someone else
// (ErrLeaseConflict; nothing is written). It then reads the block back and
// checks it is ours. A damaged file is refused: see ErrCorruptLease.
func AcquireLease(path string, l Lease) error {
	return update(path, l, opAcquire)
}

// RenewLease rewrites our lease with Renewed = now, after the same checks
// as AcquireLease. The holder (which has its lease in memory) may rewrite a
// torn block; any other damage is refused.
func RenewLease(path string, l Lease) error {
	return update(path, l, opRenew)
}

// ReleaseLease marks our lease released, keeping its epoch. A file that
// holds a newer epoch, or none, is left alone (nil).
func ReleaseLease(path string, l Lease) error {
	return update(path, l, opRelease)
}

type op int

const (
	opAcquire op = iota
	opRenew
	opRelease
)

func (o op) String() string {
	return [...]string{"acquire", "renew", "release"}[o]
}

func sameHolder(a, b Lease) bool {
	return a.Epoch == b.Epoch && a.Host == b.Host && a.Workload == b.Workload && a.Volume == b.Volume
}

// update is the read-check-write-verify every writer does, under the
// file's lock where the filesystem has coherent locks.
func update(path string, l Lease, o op) error {
	if err := checkNames(l); err != nil {
		return fmt.Errorf("%s lease %s: %w", o, path, err)
	}
	bf, exists, err := openBlock(path, true, o != opRelease, lockWait)
	if err != nil || !exists {
		return err
	}
	defer bf.Close()

	cur, have, err := bf.readLease()
	var corrupt *corruptError
	switch {
	case errors.As(err, &corrupt) && corrupt.torn && o != opAcquire:
		// Our own write, torn (a crash or power loss mid-write), or
		// zeroed: we hold this epoch in memory and put it back. An
		// acquirer has no such knowledge and refuses.
	case err != nil:
		return fmt.Errorf("%s lease for volume %s: %w", o, l.Volume, err)
	case have && cur.Epoch > l.Epoch:
		if o == opRelease {
			return nil
		}
		return &SupersededError{Path: path, Current: cur, Ours: l}
	case have && cur.Epoch == l.Epoch && !sameHolder(cur, l):
		return conflictError(path, cur, l)
	case !have && o == opRelease:
		return nil
	case have && o == opRelease && cur.Epoch == l.Epoch && cur.Released:
		return nil
	}

	next := l
	next.Renewed = time.Now()
	next.Released = o == opRelease
	encodeLease(bf.buf, next)
	var want [blockSize]byte
	copy(want[:], bf.buf)
	if err := bf.write(); err != nil {
		return err
	}

	// Read it back around the cache: on a filesystem without coherent
	// locks another host may have written between our read and our write.
	got, size, err := bf.read()
	if err != nil {
		return err
	}
	if size == blockSize && bytes.Equal(got, want[:]) {
		return nil
	}
	after, err := decodeLease(path, got, size)
	if err != nil {
		return fmt.Errorf("%s lease for volume %s: read back: %w", o, l.Volume, err)
	}
	if after.Epoch > l.Epoch {
		if o == opRelease {
			return nil
		}
		return &SupersededError{Path: path, Current: after, Ours: l}
	}
	return fmt.Errorf("%s lease for volume %s: read back %s on %s at epoch %d instead of what we wrote: another writer raced us; try again",
		o, l.Volume, after.Workload, after.Host, after.Epoch)
}

func conflictError(path string, cur, ours Lease) error {
	return fmt.Errorf("volume %s: lease at %s holds epoch %d for %s on %s (volume %s), not for %s on %s: %w; is one lease path used by two volumes?",
		ours.Volume, path, cur.Epoch, cur.Workload, cur.Host, cur.Volume, ours.Workload, ours.Host, ErrLeaseConflict)
}

// tornRetries are the pauses before reading a torn-looking block again: on
// a filesystem without coherent locks it may be another host's write still
// in flight, which settles within milliseconds. A torn block that stays is
// reported.
var tornRetries = [...]time.Duration{2 * time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond}

func (bf *blockFile) readLease() (Lease, bool, error) {
	for i := 0; ; i++ {
		buf, size, err := bf.read()
		if err != nil {
			return Lease{}, false, err
		}
		if size == 0 {
			return Lease{}, false, nil
		}
		l, err := decodeLease(bf.path, buf, size)
		var corrupt *corruptError
		if errors.As(err, &corrupt) && corrupt.torn && i < len(tornRetries) {
			time.Sleep(tornRetries[i])
			continue
		}
		if err != nil {
			return Lease{}, false, err
		}
		return l, true, nil
	}
}

// missingDirError explains an ENOENT from creating the lease file.
func missingDirError(path string, err error) error {
	dir := parentDir(path)
	if _, serr := os.Stat(dir); errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("lease directory %s does not exist (lease file %s)", dir, path)
	}
	return fmt.Errorf("create lease file: %w", err)
}

func parentDir(path string) string { return filepath.Dir(filepath.Clean(path)) }
