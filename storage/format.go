package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"
)

// The lease is one 4096-byte block, written with one aligned write so that
// it is a single sector-aligned I/O (docs/storage.md has the table):
//
//	0     8  magic "BWLEASE1"
//	8     2  format version (1), little endian like every integer here
//	10    2  flags: bit 0 = released; other bits must be zero
//	12    4  reserved, zero
//	16    8  epoch (int64)
//	24    8  renewed, Unix nanoseconds of the writer's clock (int64)
//	32    2+n host, then workload, then volume: uint16 length, then bytes (n <= 255)
//	...      zero up to 4092
//	4092  4  CRC32C (Castagnoli) of bytes 0..4091
//
// The magic and the trailing checksum stay where they are in every future
// version, so that a newer format is told apart from a torn block.
const (
	blockSize     = 4096
	leaseMagic    = "BWLEASE1"
	formatVersion = 1
	flagReleased  = 1 << 0
	maxNameLen    = 255
	offVersion    = 8
	offFlags      = 10
	offEpoch      = 16
	offRenewed    = 24
	offNames      = 32
	offCRC        = blockSize - 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptLease: the lease file holds a block that does not check out (a
// torn or otherwise damaged write, or something that is not a Bulwark lease
// at all). Nobody acquires over it; see docs/storage.md for the repair.
var ErrCorruptLease = errors.New("corrupt lease")

// corruptError is a damaged lease block. torn says whether it starts like a
// lease of ours (magic, or all zeros: a write that never completed), so the
// holder of the epoch in its memory may rewrite it; foreign content is never
// overwritten.
type corruptError struct {
	path   string
	reason string
	torn   bool
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("lease file %s is corrupt: %s", e.path, e.reason)
}

func (e *corruptError) Unwrap() error { return ErrCorruptLease }

// versionError is a lease written in a format this build does not know.
type versionError struct {
	path    string
	version uint16
}

func (e *versionError) Error() string {
	return fmt.Sprintf("lease file %s has format version %d; this build understands %d: upgrade this agent", e.path, e.version, formatVersion)
}

func checkNames(l Lease) error {
	for _, f := range []struct{ what, v string }{{"host", l.Host}, {"workload", l.Workload}, {"volume", l.Volume}} {
		if f.v == "" {
			return fmt.Errorf("lease: %s is empty", f.what)
		}
		if len(f.v) > maxNameLen {
			return fmt.Errorf("lease: %s %q is %d bytes long; at most %d fit in a lease", f.what, f.v, len(f.v), maxNameLen)
		}
	}
	if l.Epoch <= 0 {
		return fmt.Errorf("lease for %s: epoch %d is not a store revision", l.Volume, l.Epoch)
	}
	return nil
}

// encodeLease fills buf (blockSize bytes) with l. l must pass checkNames.
func encodeLease(buf []byte, l Lease) {
	clear(buf[:blockSize])
	copy(buf, leaseMagic)
	le := binary.LittleEndian
	le.PutUint16(buf[offVersion:], formatVersion)
	var flags uint16
	if l.Released {
		flags |= flagReleased
	}
	le.PutUint16(buf[offFlags:], flags)
	le.PutUint64(buf[offEpoch:], uint64(l.Epoch))
	le.PutUint64(buf[offRenewed:], uint64(l.Renewed.UnixNano()))
	off := offNames
	for _, s := range []string{l.Host, l.Workload, l.Volume} {
		le.PutUint16(buf[off:], uint16(len(s)))
		off += 2
		off += copy(buf[off:], s)
	}
	le.PutUint32(buf[offCRC:], crc32.Checksum(buf[:offCRC], castagnoli))
}

// decodeLease reads a block. n is how many bytes the file held (at most
// blockSize are looked at; size is the file's size).
func decodeLease(path string, buf []byte, size int64) (Lease, error) {
	switch {
	case size > blockSize:
		return Lease{}, &corruptError{path: path, reason: fmt.Sprintf("it is %d bytes long, a lease is %d: this is not a Bulwark lease", size, blockSize)}
	case size < blockSize:
		b := buf[:size]
		if bytes.HasPrefix(b, []byte(leaseMagic)) || isZero(b) {
			return Lease{}, &corruptError{path: path, reason: fmt.Sprintf("only %d of %d bytes were written (torn write)", size, blockSize), torn: true}
		}
		return Lease{}, &corruptError{path: path, reason: "it does not start with " + leaseMagic + ": this is not a Bulwark lease"}
	}
	buf = buf[:blockSize]
	if string(buf[:len(leaseMagic)]) != leaseMagic {
		if isZero(buf) {
			return Lease{}, &corruptError{path: path, reason: "the block is all zeros (a first write that never completed)", torn: true}
		}
		return Lease{}, &corruptError{path: path, reason: "it does not start with " + leaseMagic + ": this is not a Bulwark lease"}
	}
	le := binary.LittleEndian
	if want, got := le.Uint32(buf[offCRC:]), crc32.Checksum(buf[:offCRC], castagnoli); want != got {
		return Lease{}, &corruptError{path: path, reason: fmt.Sprintf("checksum mismatch (stored %08x, computed %08x): a torn or damaged write", want, got), torn: true}
	}
	if v := le.Uint16(buf[offVersion:]); v != formatVersion {
		return Lease{}, &versionError{path: path, version: v}
	}
	bad := func(why string) error { return &corruptError{path: path, reason: why} }
	flags := le.Uint16(buf[offFlags:])
	if flags&^flagReleased != 0 {
		return Lease{}, bad(fmt.Sprintf("unknown flags %#x", flags))
	}
	l := Lease{
		Epoch:    int64(le.Uint64(buf[offEpoch:])),
		Renewed:  time.Unix(0, int64(le.Uint64(buf[offRenewed:]))),
		Released: flags&flagReleased != 0,
	}
	off := offNames
	var names [3]string
	for i := range names {
		n := int(le.Uint16(buf[off:]))
		off += 2
		if n > maxNameLen || off+n > offCRC {
			return Lease{}, bad(fmt.Sprintf("name %d is %d bytes long", i, n))
		}
		names[i] = string(buf[off : off+n])
		off += n
	}
	l.Host, l.Workload, l.Volume = names[0], names[1], names[2]
	if err := checkNames(l); err != nil {
		return Lease{}, bad(err.Error())
	}
	return l, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
