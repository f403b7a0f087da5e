// Package clusterstore is Bulwark's view of its replicated state: a revisioned
// key-value store with guarded multi-key commits, watches from a revision and
// TTL leases. It is implemented over etcd (clusterstore/etcd, the only importer
// of etcd) and in memory (clusterstore/memory, for deterministic tests).
//
// Sessions (a lease kept alive by this process) and leader election are built
// once, here, on top of the Store primitives, so both backends share them.
package clusterstore

import (
	"context"
	"errors"
	"time"
)

// Prefix is the root of every key Bulwark writes.
const Prefix = "/bulwark/v1/"

// Key prefixes under Prefix.
const (
	NodesPrefix         = Prefix + "nodes/"
	HeartbeatsPrefix    = Prefix + "heartbeats/"
	WorkloadsPrefix     = Prefix + "workloads/"
	AllocationsPrefix   = Prefix + "allocations/"
	StatusPrefix        = Prefix + "status/"
	PendingPrefix       = Prefix + "pending/"
	FencingPrefix       = Prefix + "fencing/"
	LocksPrefix         = Prefix + "locks/"
	VIPsPrefix          = Prefix + "vips/"
	VolumesPrefix       = Prefix + "volumes/"
	VIPClaimsPrefix     = Prefix + "vipclaims/"
	AgentTokensPrefix   = Prefix + "agenttokens/"
	TokensPrefix        = Prefix + "tokens/"
	EventsPrefix        = Prefix + "events/"
	ElectionPrefix      = Prefix + "election/"
	HostStatePrefix     = Prefix + "hoststate/"
	FenceRequestsPrefix = Prefix + "fencerequests/"
	FenceHealthPrefix   = Prefix + "fencehealth/"
	MaintenancePrefix   = Prefix + "maintenance/"
	ResetsPrefix        = Prefix + "resets/"
	ServicesPrefix      = Prefix + "services/"
)

// LeaseID identifies a TTL lease. 0 means no lease.
type LeaseID int64

// KeyValue is one key at one revision.
type KeyValue struct {
	Key   string
	Value []byte
	// CreateRevision is the revision of the put that created the key; it
	// is the fencing token of whatever the key represents.
	CreateRevision int64
	// ModRevision is the revision of the last put to the key.
	ModRevision int64
	// Version counts puts since creation.
	Version int64
	Lease   LeaseID
}

// Target says which field of a key a condition compares.
type Target int

const (
	TargetCreateRevision Target = iota
	TargetModRevision
	TargetValue
)

// Comparison is the relation a condition checks.
type Comparison int

const (
	Equal Comparison = iota
	NotEqual
	Greater
	Less
)

// Cond is one guard of a transaction. A missing key has create and mod
// revision 0.
type Cond struct {
	Key    string
	Target Target
	Cmp    Comparison
	Rev    int64  // for revision targets
	Value  []byte // for TargetValue (Equal / NotEqual only)
}

// Missing holds when key does not exist.
func Missing(key string) Cond {
	return Cond{Key: key, Target: TargetCreateRevision, Cmp: Equal, Rev: 0}
}

// Exists holds when key exists.
func Exists(key string) Cond {
	return Cond{Key: key, Target: TargetCreateRevision, Cmp: Greater, Rev: 0}
}

// ModRevisionIs holds when key was last written at rev (0: key is missing).
func ModRevisionIs(key string, rev int64) Cond {
	return Cond{Key: key, Target: TargetModRevision, Cmp: Equal, Rev: rev}
}

// CreateRevisionIs holds when key was created at rev (0: key is missing).
func CreateRevisionIs(key string, rev int64) Cond {
	return Cond{Key: key, Target: TargetCreateRevision, Cmp: Equal, Rev: rev}
}

// OpType is the kind of a write.
type OpType int

const (
	OpPut OpType = iota
	OpDelete
	// OpDeletePrefix deletes every key starting with Key.
	OpDeletePrefix
)

// Op is one write of a transaction.
type Op struct {
	Type  OpType
	Key   string
	Value []byte
	// Lease binds a put key to a lease: it is deleted when the lease ends.
	Lease LeaseID
}

// Put writes key.
func Put(key string, value []byte) Op { return Op{Type: OpPut, Key: key, Value: value} }

// PutWithLease writes key bound to lease.
func PutWithLease(key string, value []byte, lease LeaseID) Op {
	return Op{Type: OpPut, Key: key, Value: value, Lease: lease}
}

// Delete removes key (no error if missing).
func Delete(key string) Op { return Op{Type: OpDelete, Key: key} }

// DeletePrefix removes every key under prefix.
func DeletePrefix(prefix string) Op { return Op{Type: OpDeletePrefix, Key: prefix} }

// EventType is the kind of a watch event.
type EventType int

const (
	EventPut EventType = iota
	EventDelete
)

// Event is one change seen by a watch. For a delete, KV.Key is set and
// KV.ModRevision is the revision of the delete; PrevValue may be nil.
type Event struct {
	Type EventType
	KV   KeyValue
}

// WatchResponse is a batch of events that happened at one revision, in
// revision order. Err is set (and the channel then closed) when the watch
// cannot continue, e.g. ErrCompacted.
type WatchResponse struct {
	Revision int64
	Events   []Event
	Err      error
}

// Store is the primitive interface each backend implements.
type Store interface {
	// Get reads one key at the latest revision. ok is false if missing.
	Get(ctx context.Context, key string) (kv KeyValue, ok bool, rev int64, err error)
	// List reads every key under prefix, sorted by key, at revision rev
	// (0: the latest). It returns the revision it read at, so that several
	// prefixes can be read as one consistent snapshot.
	List(ctx context.Context, prefix string, rev int64) (kvs []KeyValue, atRev int64, err error)
	// Txn applies ops atomically if every cond holds. It returns whether it
	// did and the store revision after it (the revision of the ops if any
	// were applied and succeeded).
	Txn(ctx context.Context, conds []Cond, ops []Op) (succeeded bool, rev int64, err error)
	// Watch streams changes under prefix from revision fromRev (inclusive;
	// 0: from now). The channel is closed when ctx ends or after a response
	// with Err set.
	Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse
	// Grant creates a lease with the given TTL.
	Grant(ctx context.Context, ttl time.Duration) (LeaseID, error)
	// KeepAliveOnce renews a lease once and returns its new TTL.
	// ErrLeaseNotFound means it has expired or was revoked.
	KeepAliveOnce(ctx context.Context, id LeaseID) (time.Duration, error)
	// Revoke ends a lease now, deleting the keys bound to it.
	Revoke(ctx context.Context, id LeaseID) error
	// Close releases the backend's resources.
	Close() error
}

var (
	// ErrLeaseNotFound: the lease expired or was revoked.
	ErrLeaseNotFound = errors.New("lease not found")
	// ErrCompacted: a read or watch asked for a revision that was compacted.
	ErrCompacted = errors.New("revision compacted")
	// ErrFutureRevision: a read asked for a revision not yet written.
	ErrFutureRevision = errors.New("revision not yet written")
	// ErrTooManyOps: a transaction had more operations than the store allows.
	ErrTooManyOps = errors.New("too many operations in one transaction")
	// ErrSessionDone: the session's lease is gone.
	ErrSessionDone = errors.New("session lease lost")
)
