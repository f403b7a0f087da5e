// Package storage guards shared volumes with the second of their two locks:
// an on-storage lease next to each exclusive disk.
//
// The first lock is the claim in the store (clusterstore.AcquireClaim at
// /bulwark/v1/locks/<volume>), carrying the allocation's epoch. The lease
// here carries the same epoch on the storage itself, so that a host which
// has lost etcd but still reaches the storage can tell that a newer holder
// owns the disk: it refuses to open a volume whose lease shows a newer
// epoch, and a holder that finds its own epoch superseded stops its
// workload at once. Only epochs decide who holds a volume; the timestamps in
// the lease are for people (docs/storage.md).
package storage
