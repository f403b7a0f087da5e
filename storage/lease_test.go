//go:build linux

package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// --- filesystems -------------------------------------------------------------

// testFS is a directory on one kind of filesystem: the test's temporary
// directory (a disk filesystem: O_DIRECT), a tmpfs where there is one, and
// a filesystem that refuses O_DIRECT (ramfs, mounted by the test when it
// may), for the synchronous fallback.
type testFS struct {
	name string
	dir  string
}

func filesystems(t testing.TB) []testFS {
	t.Helper()
	fss := []testFS{{"tempdir", t.TempDir()}}
	if isTmpfs("/dev/shm") {
		dir, err := os.MkdirTemp("/dev/shm", "bulwark-storage-test-")
		if err != nil {
			t.Fatalf("tmpfs dir: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		fss = append(fss, testFS{"tmpfs", dir})
	}
	if dir, why := noDirectFS(t); dir != "" {
		fss = append(fss, testFS{"no-odirect", dir})
	} else {
		t.Logf("NOTE: %s: the O_DIRECT fallback (O_DSYNC through the cache) is not exercised by this run", why)
	}
	return fss
}

// noDirectFS returns a directory on a filesystem that refuses O_DIRECT:
// /dev/shm on kernels before 6.6 (tmpfs learnt O_DIRECT then), else a
// ramfs the test mounts (root only).
func noDirectFS(t testing.TB) (dir, why string) {
	if isTmpfs("/dev/shm") && !supportsDirect(t, "/dev/shm") {
		d, err := os.MkdirTemp("/dev/shm", "bulwark-storage-test-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(d) })
			return d, ""
		}
	}
	d, err := os.MkdirTemp("", "bulwark-ramfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("ramfs", d, "ramfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		os.Remove(d)
		return "", fmt.Sprintf("no filesystem without O_DIRECT here (tmpfs supports it on this kernel; mounting a ramfs: %v)", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(d, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount test ramfs %s: %v", d, err)
		}
		os.Remove(d)
	})
	if supportsDirect(t, d) {
		return "", "the test ramfs accepts O_DIRECT"
	}
	return d, ""
}

func supportsDirect(t testing.TB, dir string) bool {
	f, err := os.CreateTemp(dir, "probe-")
	if err != nil {
		t.Fatal(err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	g, err := os.OpenFile(name, os.O_RDWR|unix.O_DIRECT, 0)
	if err == nil {
		g.Close()
	}
	return err == nil
}

func isTmpfs(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.TMPFS_MAGIC
}

func forEachFS(t *testing.T, fn func(t *testing.T, dir string)) {
	for _, fs := range filesystems(t) {
		t.Run(fs.name, func(t *testing.T) { fn(t, fs.dir) })
	}
}

// --- builders ------------------------------------------------------------------

func lease(epoch int64, host string) Lease {
	return Lease{Volume: "vol-a", Workload: "web", Host: host, Epoch: epoch}
}

func mustRead(t *testing.T, path string) Lease {
	t.Helper()
	l, ok, err := ReadLease(path)
	if err != nil || !ok {
		t.Fatalf("read lease: ok=%v err=%v", ok, err)
	}
	return l
}

func fileBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantIdentical(t *testing.T, path string, before []byte) {
	t.Helper()
	if after := fileBytes(t, path); !bytes.Equal(before, after) {
		t.Fatalf("lease file changed although nothing was to be written")
	}
}

func wantSuperseded(t *testing.T, err error, current, ours int64) *SupersededError {
	t.Helper()
	var se *SupersededError
	if !errors.Is(err, ErrSuperseded) || !errors.As(err, &se) {
		t.Fatalf("err = %v, want *SupersededError", err)
	}
	if se.Current.Epoch != current || se.Ours.Epoch != ours {
		t.Fatalf("superseded: current %d ours %d, want %d and %d", se.Current.Epoch, se.Ours.Epoch, current, ours)
	}
	return se
}

func sameFields(a, b Lease) bool {
	return sameHolder(a, b) && a.Released == b.Released
}

// --- round trip -------------------------------------------------------------------

func TestLeaseRoundTrip(t *testing.T) {
	forEachFS(t, func(t *testing.T, dir string) {
		path := filepath.Join(dir, "disk.img.bulwark-lease")
		if _, ok, err := ReadLease(path); ok || err != nil {
			t.Fatalf("missing file: ok=%v err=%v", ok, err)
		}
		before := time.Now()
		l := lease(42, "host-1")
		if err := AcquireLease(path, l); err != nil {
			t.Fatal(err)
		}
		got := mustRead(t, path)
		if !sameFields(got, l) {
			t.Fatalf("read %+v, want %+v", got, l)
		}
		if got.Renewed.Before(before) || got.Renewed.After(time.Now()) {
			t.Fatalf("renewed %v is not the time of the write", got.Renewed)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != blockSize || fi.Mode().Perm() != 0o600 {
			t.Fatalf("lease file: size %d mode %v, want %d and 0600", fi.Size(), fi.Mode().Perm(), blockSize)
		}

		// Acquiring again is harmless; renew moves the time on.
		if err := AcquireLease(path, l); err != nil {
			t.Fatalf("acquire again: %v", err)
		}
		first := mustRead(t, path).Renewed
		time.Sleep(time.Millisecond)
		if err := RenewLease(path, l); err != nil {
			t.Fatal(err)
		}
		if r := mustRead(t, path); !sameFields(r, l) || !r.Renewed.After(first) {
			t.Fatalf("after renew: %+v (renewed before: %v)", r, first)
		}

		// Release keeps the epoch.
		if err := ReleaseLease(path, l); err != nil {
			t.Fatal(err)
		}
		r := mustRead(t, path)
		if !r.Released || r.Epoch != 42 || r.Host != "host-1" {
			t.Fatalf("after release: %+v", r)
		}
		if err := ReleaseLease(path, l); err != nil {
			t.Fatalf("release twice: %v", err)
		}
		// The holder may take it back at the same epoch (a restart of the
		// same allocation).
		if err := AcquireLease(path, l); err != nil {
			t.Fatal(err)
		}
		if r := mustRead(t, path); r.Released {
			t.Fatalf("re-acquired lease still released: %+v", r)
		}
	})
}

// The filesystem decides how the block is written: around the page cache
// where O_DIRECT works, synchronously through it where it does not.
func TestLeaseIOMode(t *testing.T) {
	sawFallback := false
	for _, fs := range filesystems(t) {
		t.Run(fs.name, func(t *testing.T) {
			path := filepath.Join(fs.dir, "mode.lease")
			bf, _, err := openBlock(path, true, true, lockWait)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { bf.Close() })
			if want := supportsDirect(t, fs.dir); bf.direct != want {
				t.Fatalf("O_DIRECT=%v on a filesystem where it works=%v", bf.direct, want)
			}
			sawFallback = sawFallback || !bf.direct
			t.Logf("O_DIRECT=%v", bf.direct)
			if uintptr(unsafe.Pointer(&bf.buf[0]))%blockSize != 0 || len(bf.buf) != blockSize {
				t.Fatalf("block buffer not aligned")
			}
			// A filesystem that takes O_DIRECT at open but refuses the
			// I/O gets the same fallback on the open descriptor.
			if bf.direct {
				if err := bf.dropDirect(); err != nil {
					t.Fatal(err)
				}
				encodeLease(bf.buf, Lease{Volume: "v", Workload: "w", Host: "h", Epoch: 1, Renewed: time.Now()})
				if err := bf.write(); err != nil {
					t.Fatal(err)
				}
				bf.Close() // its lock would hold the reader off
				if got := mustRead(t, path); got.Epoch != 1 {
					t.Fatalf("after dropping O_DIRECT: %+v", got)
				}
			}
		})
	}
	if !sawFallback {
		t.Log("NOTE: every filesystem here took O_DIRECT; the open-time fallback was not exercised")
	}
}

func TestReadLeaseEmptyFileIsNone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "empty.lease")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := ReadLease(path); ok || err != nil {
		t.Fatalf("empty file: ok=%v err=%v, want none", ok, err)
	}
	if err := ReleaseLease(path, lease(3, "h")); err != nil {
		t.Fatal(err)
	}
	if b := fileBytes(t, path); len(b) != 0 {
		t.Fatal("release wrote into an empty lease file")
	}
	if err := AcquireLease(path, lease(3, "h")); err != nil {
		t.Fatal(err)
	}
}

// --- epochs decide ------------------------------------------------------------

func TestNewerEpochRefusesAndWritesNothing(t *testing.T) {
	forEachFS(t, func(t *testing.T, dir string) {
		path := filepath.Join(dir, "lease")
		if err := AcquireLease(path, lease(20, "host-2")); err != nil {
			t.Fatal(err)
		}
		before := fileBytes(t, path)
		old := lease(10, "host-1")

		se := wantSuperseded(t, AcquireLease(path, old), 20, 10)
		want := fmt.Sprintf("volume vol-a: lease at %s is held by web on host-2 at epoch 20, newer than ours (10)", path)
		if se.Error() != want || se.Path != path || se.Current.Host != "host-2" {
			t.Fatalf("error %q\nwant  %q", se.Error(), want)
		}
		wantIdentical(t, path, before)

		wantSuperseded(t, RenewLease(path, old), 20, 10)
		wantIdentical(t, path, before)

		if err := ReleaseLease(path, old); err != nil {
			t.Fatalf("release by an older epoch: %v, want nil", err)
		}
		wantIdentical(t, path, before)
	})
}

func TestOlderEpochIsOverwritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	if err := AcquireLease(path, lease(10, "host-1")); err != nil {
		t.Fatal(err)
	}
	if err := AcquireLease(path, lease(20, "host-2")); err != nil {
		t.Fatalf("newer epoch: %v", err)
	}
	if got := mustRead(t, path); got.Epoch != 20 || got.Host != "host-2" || got.Released {
		t.Fatalf("lease %+v, want epoch 20 on host-2", got)
	}
	// Even without a clean release; and over a released one.
	if err := ReleaseLease(path, lease(20, "host-2")); err != nil {
		t.Fatal(err)
	}
	if err := AcquireLease(path, lease(30, "host-3")); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, path); got.Epoch != 30 || got.Released {
		t.Fatalf("lease %+v, want epoch 30 held", got)
	}
}

func TestReleaseKeepsEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	l := lease(10, "host-1")
	if err := AcquireLease(path, l); err != nil {
		t.Fatal(err)
	}
	if err := ReleaseLease(path, l); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, path); got.Epoch != 10 || !got.Released {
		t.Fatalf("after release %+v", got)
	}
	// A released lease still supersedes every older epoch.
	before := fileBytes(t, path)
	wantSuperseded(t, AcquireLease(path, lease(9, "host-0")), 10, 9)
	wantIdentical(t, path, before)
	if err := AcquireLease(path, lease(11, "host-2")); err != nil {
		t.Fatal(err)
	}
	// The old holder releasing late leaves the new holder alone.
	before = fileBytes(t, path)
	if err := ReleaseLease(path, l); err != nil {
		t.Fatal(err)
	}
	wantIdentical(t, path, before)
	if got := mustRead(t, path); got.Epoch != 11 || got.Released {
		t.Fatalf("lease %+v, want epoch 11 held", got)
	}
}

func TestStaleHolderRenewAfterNewerAcquire(t *testing.T) {
	forEachFS(t, func(t *testing.T, dir string) {
		path := filepath.Join(dir, "lease")
		stale := lease(10, "host-1")
		if err := AcquireLease(path, stale); err != nil {
			t.Fatal(err)
		}
		if err := RenewLease(path, stale); err != nil {
			t.Fatal(err)
		}
		// host-1 freezes; the workload moves to host-2 under a new epoch.
		if err := AcquireLease(path, lease(25, "host-2")); err != nil {
			t.Fatal(err)
		}
		before := fileBytes(t, path)
		// host-1 resumes: its renew must tell it to stop, and write nothing.
		err := RenewLease(path, stale)
		wantSuperseded(t, err, 25, 10)
		wantIdentical(t, path, before)
	})
}

func TestSameEpochOtherHolderRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	if err := AcquireLease(path, lease(10, "host-1")); err != nil {
		t.Fatal(err)
	}
	before := fileBytes(t, path)
	for _, l := range []Lease{lease(10, "host-2"), {Volume: "vol-b", Workload: "web", Host: "host-1", Epoch: 10}} {
		for name, fn := range map[string]func(string, Lease) error{"acquire": AcquireLease, "renew": RenewLease, "release": ReleaseLease} {
			err := fn(path, l)
			if !errors.Is(err, ErrLeaseConflict) || errors.Is(err, ErrSuperseded) {
				t.Fatalf("%s %+v: %v, want ErrLeaseConflict", name, l, err)
			}
			wantIdentical(t, path, before)
		}
	}
}

func TestInvalidLeaseWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "lease")
	for _, l := range []Lease{
		{Volume: "v", Workload: "w", Host: "h", Epoch: 0},
		{Volume: "v", Workload: "w", Host: "h", Epoch: -1},
		{Volume: "v", Workload: "w", Epoch: 1},
		{Volume: "v", Host: "h", Epoch: 1},
		{Workload: "w", Host: "h", Epoch: 1},
		{Volume: strings.Repeat("v", 256), Workload: "w", Host: "h", Epoch: 1},
	} {
		if err := AcquireLease(path, l); err == nil {
			t.Fatalf("acquire %+v succeeded", l)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an invalid lease created the file: %v", err)
	}
	// The longest names fit.
	long := Lease{Volume: strings.Repeat("v", 255), Workload: strings.Repeat("w", 255), Host: strings.Repeat("h", 255), Epoch: 1 << 62}
	if err := AcquireLease(path, long); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, path); !sameFields(got, long) {
		t.Fatal("longest names did not round trip")
	}
}

func TestLeaseDirectoryMustExist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "disk.img.bulwark-lease")
	err := AcquireLease(path, lease(1, "h"))
	if err == nil || !strings.Contains(err.Error(), "lease directory "+filepath.Dir(path)+" does not exist") {
		t.Fatalf("err = %v", err)
	}
	if err := ReleaseLease(path, lease(1, "h")); err != nil {
		t.Fatalf("release without a file: %v", err)
	}
	if _, ok, err := ReadLease(path); ok || err != nil {
		t.Fatalf("read: ok=%v err=%v", ok, err)
	}
}

// --- the block, byte by byte ---------------------------------------------------

// TestFormatLayout pins the on-disk layout that docs/storage.md tables.
func TestFormatLayout(t *testing.T) {
	buf := make([]byte, blockSize)
	l := Lease{Volume: "vol", Workload: "db", Host: "h1", Epoch: 0x0102030405, Renewed: time.Unix(0, 1700000000123456789), Released: true}
	encodeLease(buf, l)
	le := binary.LittleEndian
	check := func(what string, got, want any) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	check("magic", string(buf[0:8]), "BWLEASE1")
	check("version", le.Uint16(buf[8:]), 1)
	check("flags", le.Uint16(buf[10:]), 1)
	check("reserved", le.Uint32(buf[12:]), 0)
	check("epoch", le.Uint64(buf[16:]), 0x0102030405)
	check("renewed", le.Uint64(buf[24:]), 1700000000123456789)
	check("host len", le.Uint16(buf[32:]), 2)
	check("host", string(buf[34:36]), "h1")
	check("workload len", le.Uint16(buf[36:]), 2)
	check("workload", string(buf[38:40]), "db")
	check("volume len", le.Uint16(buf[40:]), 3)
	check("volume", string(buf[42:45]), "vol")
	check("padding zero", isZero(buf[45:4092]), true)
	check("crc32c", le.Uint32(buf[4092:]), crc32.Checksum(buf[:4092], crc32.MakeTable(crc32.Castagnoli)))
	got, err := decodeLease("x", buf, blockSize)
	if err != nil || !sameFields(got, l) || !got.Renewed.Equal(l.Renewed) {
		t.Fatalf("decode: %+v %v", got, err)
	}
}

// --- damage ------------------------------------------------------------------

func TestCorruptLease(t *testing.T) {
	holder := lease(10, "host-1")
	valid := func(t *testing.T) []byte {
		b := make([]byte, blockSize)
		encodeLease(b, Lease{Volume: holder.Volume, Workload: holder.Workload, Host: holder.Host, Epoch: holder.Epoch, Renewed: time.Now()})
		return b
	}
	newer := func(t *testing.T) []byte {
		b := make([]byte, blockSize)
		encodeLease(b, Lease{Volume: "vol-a", Workload: "web", Host: "host-2", Epoch: 20, Renewed: time.Now()})
		return b
	}
	cases := []struct {
		name    string
		content func(t *testing.T) []byte
		want    string
		// torn: the holder of the epoch may rewrite it on renew; any
		// other damage is left for a person.
		torn bool
	}{
		{"bit flip", func(t *testing.T) []byte { b := valid(t); b[17] ^= 0x40; return b }, "checksum mismatch", true},
		{"torn: new first sector over an old block", func(t *testing.T) []byte {
			b := valid(t)
			copy(b[:512], newer(t)[:512])
			return b
		}, "checksum mismatch", true},
		{"torn: short file", func(t *testing.T) []byte { return valid(t)[:2048] }, "only 2048 of 4096 bytes", true},
		{"all zeros", func(t *testing.T) []byte { return make([]byte, blockSize) }, "all zeros", true},
		{"foreign content", func(t *testing.T) []byte { return bytes.Repeat([]byte("not a lease "), 400)[:blockSize] }, "not a Bulwark lease", false},
		{"too long", func(t *testing.T) []byte { return append(valid(t), make([]byte, 512)...) }, "not a Bulwark lease", false},
		{"unknown flag", func(t *testing.T) []byte {
			b := valid(t)
			b[offFlags] |= 0x80
			binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
			return b
		}, "unknown flags", false},
		{"name length out of bounds", func(t *testing.T) []byte {
			b := valid(t)
			binary.LittleEndian.PutUint16(b[offNames:], 4000)
			binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
			return b
		}, "bytes long", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lease")
			if err := os.WriteFile(path, tc.content(t), 0o600); err != nil {
				t.Fatal(err)
			}
			_, ok, err := ReadLease(path)
			if ok || !errors.Is(err, ErrCorruptLease) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read: ok=%v err=%v, want ErrCorruptLease naming %s and %q", ok, err, path, tc.want)
			}
			before := fileBytes(t, path)
			// Nobody acquires over damage, not even a newer epoch: the
			// damaged block might have held a newer one still.
			for _, l := range []Lease{holder, lease(99, "host-9")} {
				if err := AcquireLease(path, l); !errors.Is(err, ErrCorruptLease) {
					t.Fatalf("acquire %d: %v, want ErrCorruptLease", l.Epoch, err)
				}
				wantIdentical(t, path, before)
			}
			err = RenewLease(path, holder)
			if !tc.torn {
				if !errors.Is(err, ErrCorruptLease) {
					t.Fatalf("renew over foreign content: %v, want ErrCorruptLease", err)
				}
				wantIdentical(t, path, before)
				return
			}
			if err != nil {
				t.Fatalf("holder's renew over a torn block: %v", err)
			}
			if got := mustRead(t, path); !sameFields(got, holder) {
				t.Fatalf("after the holder's rewrite: %+v", got)
			}
		})
	}
}

func TestNewerFormatVersionRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	b := make([]byte, blockSize)
	encodeLease(b, lease(50, "host-5"))
	binary.LittleEndian.PutUint16(b[offVersion:], 2)
	binary.LittleEndian.PutUint32(b[offCRC:], crc32.Checksum(b[:offCRC], castagnoli))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadLease(path)
	if err == nil || !strings.Contains(err.Error(), "format version 2") || !strings.Contains(err.Error(), path) {
		t.Fatalf("read: %v", err)
	}
	for name, fn := range map[string]func(string, Lease) error{"acquire": AcquireLease, "renew": RenewLease, "release": ReleaseLease} {
		if err := fn(path, lease(60, "host-6")); err == nil {
			t.Fatalf("%s over a newer format succeeded", name)
		}
	}
	wantIdentical(t, path, b)
}

// A writer stopped in the middle of its read-check-write (SIGSTOP) holds
// the file's lock: others wait a bounded time, then give up without
// reading or writing.
func TestLeaseBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lease")
	if err := AcquireLease(path, lease(10, "host-1")); err != nil {
		t.Fatal(err)
	}
	stuck, _, err := openBlock(path, true, false, lockWait)
	if err != nil {
		t.Fatal(err)
	}
	for _, write := range []bool{true, false} {
		start := time.Now()
		_, _, err := openBlock(path, write, false, 50*time.Millisecond)
		if !errors.Is(err, ErrLeaseBusy) || !strings.Contains(err.Error(), path) {
			t.Fatalf("open (write %v) while another writer holds the lock: %v, want ErrLeaseBusy", write, err)
		}
		if d := time.Since(start); d < 50*time.Millisecond {
			t.Fatalf("gave up after %v, before its wait", d)
		}
	}
	stuck.Close()
	if err := RenewLease(path, lease(10, "host-1")); err != nil {
		t.Fatalf("renew once the lock is free: %v", err)
	}
}
