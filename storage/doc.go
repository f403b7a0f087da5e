// Package storage will hold shared-storage locks: etcd locks carrying the
// allocation's epoch as fencing token, plus an on-storage lease next to each
// disk. Empty until the storage issue lands.
package storage
