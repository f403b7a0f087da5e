//go:build linux

package storage

import (
	"fmt"
	"path/filepath"
	"testing"
)

// Each iteration is one complete call: open, lock, read, write (O_DIRECT
// and O_DSYNC, then fdatasync), read back, close. The figures depend on
// the device under the temporary directory; docs/benchmarks.md records them.

func BenchmarkAcquireLease(b *testing.B) {
	for _, fs := range filesystems(b) {
		b.Run(fs.name, func(b *testing.B) {
			path := filepath.Join(fs.dir, "bench.lease")
			epoch := int64(0)
			for b.Loop() {
				// A new holder every time: each call overwrites an older epoch.
				epoch++
				if err := AcquireLease(path, lease(epoch, fmt.Sprintf("host-%d", epoch%8))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkRenewLease(b *testing.B) {
	for _, fs := range filesystems(b) {
		b.Run(fs.name, func(b *testing.B) {
			path := filepath.Join(fs.dir, "bench.lease")
			l := lease(7, "host-1")
			if err := AcquireLease(path, l); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := RenewLease(path, l); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadLease(b *testing.B) {
	for _, fs := range filesystems(b) {
		b.Run(fs.name, func(b *testing.B) {
			path := filepath.Join(fs.dir, "bench.lease")
			if err := AcquireLease(path, lease(7, "host-1")); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := ReadLease(path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
