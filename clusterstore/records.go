package clusterstore

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Key builders. Names are validated DNS labels, so they never contain '/'.

func NodeKey(host string) string         { return NodesPrefix + host }
func HeartbeatKey(host string) string    { return HeartbeatsPrefix + host }
func WorkloadKey(name string) string     { return WorkloadsPrefix + name }
func AllocationKey(name string) string   { return AllocationsPrefix + name }
func PendingKey(name string) string      { return PendingPrefix + name }
func FencingKey(host string) string      { return FencingPrefix + host }
func HostStateKey(host string) string    { return HostStatePrefix + host }
func FenceRequestKey(host string) string { return FenceRequestsPrefix + host }
func FenceHealthKey(host string) string  { return FenceHealthPrefix + host }
func VolumeKey(name string) string       { return VolumesPrefix + name }
func LockKey(volume string) string       { return LocksPrefix + volume }
func VIPKey(addr string) string          { return VIPsPrefix + addr }
func VIPClaimKey(addr string) string     { return VIPClaimsPrefix + addr }
func AgentTokenKey(host string) string   { return AgentTokensPrefix + host }
func MaintenanceKey(host string) string  { return MaintenancePrefix + host }
func ResetKey(workload string) string    { return ResetsPrefix + workload }
func TokenKey(id string) string          { return TokensPrefix + id }
func ServiceKey(name string) string      { return ServicesPrefix + name }
func HostStatusPrefix(host string) string {
	return StatusPrefix + host + "/"
}
func StatusKey(host, workload string) string { return HostStatusPrefix(host) + workload }

// EventKey orders events by time, then seq; the hash of what the event
// says tells apart different events written at the same instant (a frozen
// test clock, or two writers), so none overwrites another.
func EventKey(t time.Time, seq int, what string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(what))
	return fmt.Sprintf("%s%020d-%04d-%08x", EventsPrefix, t.UnixNano(), seq, h.Sum32())
}

// SettingsKey holds the cluster-wide scheduling settings.
const SettingsKey = Prefix + "settings/cluster"

// Encode renders a record as stored JSON. Records carry their own schema field.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only programming errors (unsupported types) get here.
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return b
}

// Decode reads a stored record, refusing schema versions this build does not know.
func Decode(kv KeyValue, v any) error {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		return fmt.Errorf("decode %s: %w", kv.Key, err)
	}
	var s struct {
		Schema int `json:"schema"`
	}
	_ = json.Unmarshal(kv.Value, &s)
	if s.Schema > api.SchemaVersion {
		return fmt.Errorf("decode %s: schema version %d is newer than this build understands (%d)", kv.Key, s.Schema, api.SchemaVersion)
	}
	return nil
}

// DecodeAllocation reads an allocation and fills in its epoch from the key's
// create revision: the fencing token.
func DecodeAllocation(kv KeyValue) (api.Allocation, error) {
	var a api.Allocation
	if err := Decode(kv, &a); err != nil {
		return a, err
	}
	a.Epoch = kv.CreateRevision
	return a, nil
}

// Versioned is a decoded record with the revisions of its key.
type Versioned[T any] struct {
	Value          T
	CreateRevision int64
	ModRevision    int64
}

// Snapshot is every record that placement and the API views depend on, read
// at one revision.
type Snapshot struct {
	Revision    int64
	Nodes       map[string]Versioned[api.Node]
	Heartbeats  map[string]Versioned[api.Heartbeat]
	Workloads   map[string]Versioned[api.Workload]
	Allocations map[string]Versioned[api.Allocation]
	// Statuses by host, then workload.
	Statuses map[string]map[string]Versioned[api.WorkloadStatus]
	Pending  map[string]Versioned[api.PendingReason]
	// Fencing holds the fence records: proof that a host was powered off.
	Fencing       map[string]Versioned[api.FenceRecord]
	FenceRequests map[string]Versioned[api.FenceRequest]
	FenceHealth   map[string]Versioned[api.FenceHealth]
	HostStates    map[string]Versioned[api.HostState]
	// Settings are the cluster settings (defaults when never set);
	// SettingsRevision is the key's mod revision (0: defaults).
	Settings         api.Settings
	SettingsRevision int64
	// Volumes and VIPs are the shared resources; Locks (by volume) and
	// VIPClaims (by address) say which allocation holds each.
	Volumes   map[string]Versioned[api.Volume]
	Locks     map[string]Versioned[api.Claim]
	VIPs      map[string]Versioned[api.VIP]
	VIPClaims map[string]Versioned[api.Claim]
	// Maintenance holds the hosts in maintenance (with their drains), by
	// host; Resets the operators' requests to clear failure counts, by
	// workload.
	Maintenance map[string]Versioned[api.Maintenance]
	Resets      map[string]Versioned[api.ResetRequest]
	// Services are the replicated services, by name.
	Services map[string]Versioned[api.Service]
}

// snapshotPrefixes are the prefixes a Snapshot holds.
var snapshotPrefixes = []string{NodesPrefix, HeartbeatsPrefix, WorkloadsPrefix, AllocationsPrefix, StatusPrefix, PendingPrefix,
	FencingPrefix, FenceRequestsPrefix, FenceHealthPrefix, HostStatePrefix, SettingsKey,
	VolumesPrefix, LocksPrefix, VIPsPrefix, VIPClaimsPrefix, MaintenancePrefix, ResetsPrefix, ServicesPrefix}

// ReadSnapshot reads every prefix of a Snapshot at one revision. Records that
// fail to decode are skipped and returned as errors in bad, so that one
// corrupt key cannot stop the cluster; callers log them.
func ReadSnapshot(ctx context.Context, s Store) (snap *Snapshot, bad []error, err error) {
	snap = &Snapshot{
		Nodes:         map[string]Versioned[api.Node]{},
		Heartbeats:    map[string]Versioned[api.Heartbeat]{},
		Workloads:     map[string]Versioned[api.Workload]{},
		Allocations:   map[string]Versioned[api.Allocation]{},
		Statuses:      map[string]map[string]Versioned[api.WorkloadStatus]{},
		Pending:       map[string]Versioned[api.PendingReason]{},
		Fencing:       map[string]Versioned[api.FenceRecord]{},
		FenceRequests: map[string]Versioned[api.FenceRequest]{},
		FenceHealth:   map[string]Versioned[api.FenceHealth]{},
		HostStates:    map[string]Versioned[api.HostState]{},
		Settings:      api.DefaultSettings(),
		Volumes:       map[string]Versioned[api.Volume]{},
		Locks:         map[string]Versioned[api.Claim]{},
		VIPs:          map[string]Versioned[api.VIP]{},
		VIPClaims:     map[string]Versioned[api.Claim]{},
		Maintenance:   map[string]Versioned[api.Maintenance]{},
		Resets:        map[string]Versioned[api.ResetRequest]{},
		Services:      map[string]Versioned[api.Service]{},
	}
	// Every prefix at one revision: one consistent read that skips the
	// event history and the election keys.
	var kvs []KeyValue
	rev := int64(0)
	for _, p := range snapshotPrefixes {
		part, at, err := s.List(ctx, p, rev)
		if err != nil {
			return nil, nil, fmt.Errorf("read snapshot: %w", err)
		}
		rev = at
		kvs = append(kvs, part...)
	}
	snap.Revision = rev
	for _, kv := range kvs {
		rest := strings.TrimPrefix(kv.Key, Prefix)
		kind, name, _ := strings.Cut(rest, "/")
		var derr error
		switch kind {
		case "nodes":
			derr = decodeInto(kv, snap.Nodes, name)
		case "heartbeats":
			derr = decodeInto(kv, snap.Heartbeats, name)
		case "workloads":
			derr = decodeInto(kv, snap.Workloads, name)
		case "pending":
			derr = decodeInto(kv, snap.Pending, name)
		case "fencing":
			derr = decodeInto(kv, snap.Fencing, name)
		case "fencerequests":
			derr = decodeInto(kv, snap.FenceRequests, name)
		case "fencehealth":
			derr = decodeInto(kv, snap.FenceHealth, name)
		case "hoststate":
			derr = decodeInto(kv, snap.HostStates, name)
		case "volumes":
			derr = decodeInto(kv, snap.Volumes, name)
		case "locks":
			derr = decodeInto(kv, snap.Locks, name)
		case "vips":
			derr = decodeInto(kv, snap.VIPs, name)
		case "vipclaims":
			derr = decodeInto(kv, snap.VIPClaims, name)
		case "maintenance":
			derr = decodeInto(kv, snap.Maintenance, name)
		case "resets":
			derr = decodeInto(kv, snap.Resets, name)
		case "services":
			derr = decodeInto(kv, snap.Services, name)
		case "allocations":
			a, e := DecodeAllocation(kv)
			if derr = e; e == nil {
				snap.Allocations[name] = Versioned[api.Allocation]{a, kv.CreateRevision, kv.ModRevision}
			}
		case "settings":
			if kv.Key == SettingsKey {
				if derr = Decode(kv, &snap.Settings); derr == nil {
					snap.SettingsRevision = kv.ModRevision
				}
			}
		case "status":
			host, wl, ok := strings.Cut(name, "/")
			if !ok {
				continue
			}
			if snap.Statuses[host] == nil {
				snap.Statuses[host] = map[string]Versioned[api.WorkloadStatus]{}
			}
			derr = decodeInto(kv, snap.Statuses[host], wl)
		}
		if derr != nil {
			bad = append(bad, derr)
		}
	}
	return snap, bad, nil
}

func decodeInto[T any](kv KeyValue, m map[string]Versioned[T], name string) error {
	var v T
	if err := Decode(kv, &v); err != nil {
		return err
	}
	m[name] = Versioned[T]{v, kv.CreateRevision, kv.ModRevision}
	return nil
}
