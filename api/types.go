// Package api holds the plain types that the server, the agents, the store and
// the CLI exchange, and their validation. Standard library only.
//
// Records stored in the cluster store carry a schema version so that later
// releases can migrate them; see SchemaVersion.
package api

import "time"

// SchemaVersion is the version written into every stored record.
const SchemaVersion = 1

// Kind is what a workload runs as.
type Kind string

const (
	KindVM        Kind = "vm"
	KindContainer Kind = "container"
)

// State is the lifecycle state of a workload as the user sees it.
type State string

const (
	StatePending  State = "pending"
	StateStarting State = "starting"
	StateRunning  State = "running"
	StateStopping State = "stopping"
	StateStopped  State = "stopped"
	StateFailed   State = "failed"
)

// NodeState is the state of a host as the user sees it.
type NodeState string

const (
	// NodeReady: the host's heartbeat lease is alive.
	NodeReady NodeState = "ready"
	// NodeDown: the host is registered but holds no heartbeat lease, and
	// runs nothing the cluster cares about.
	NodeDown NodeState = "down"
	// The failure detector's states (see docs/failover.md).
	NodeSuspect   NodeState = "suspect"
	NodeLost      NodeState = "lost"
	NodeFencing   NodeState = "fencing"
	NodeFenced    NodeState = "fenced"
	NodeRecovered NodeState = "recovered"
)

// HostState is the leader's failure-detector state of a host, stored at
// /bulwark/v1/hoststate/<host> on every transition so that every replica
// (and `node list`) can show it.
type HostState struct {
	Schema int       `json:"schema"`
	Host   string    `json:"host"`
	State  NodeState `json:"state"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// FenceRequest is an operator's request to fence a host
// (`bulwarkctl node fence`), stored at /bulwark/v1/fencerequests/<host>.
type FenceRequest struct {
	Schema int       `json:"schema"`
	Host   string    `json:"host"`
	At     time.Time `json:"at"`
}

// FenceHealth is the leader's latest probe of a host's fence devices,
// stored at /bulwark/v1/fencehealth/<host> when it changes.
type FenceHealth struct {
	Schema int    `json:"schema"`
	Host   string `json:"host"`
	// Devices is how many fence devices the host has.
	Devices int `json:"devices"`
	// OK: at least one device answered with a power state.
	OK      bool      `json:"ok"`
	Error   string    `json:"error,omitempty"`
	Checked time.Time `json:"checked"`
}

// WorkloadSpec is what a user asks for: the body of POST /v1/workloads and the
// content of an `apply` file. Unknown fields are rejected where it is decoded.
type WorkloadSpec struct {
	Name     string            `json:"name"`
	Kind     Kind              `json:"kind"`
	CPUs     int               `json:"cpus"`
	Memory   ByteSize          `json:"memory"`
	Labels   map[string]string `json:"labels,omitempty"`
	Priority int               `json:"priority,omitempty"`
	// Require are hard host-label constraints: "key=value", "key!=value",
	// "key in (a,b)", "key notin (a,b)".
	Require []string `json:"require,omitempty"`
	// Prefer are soft host-label preferences: "key=value[:weight]".
	Prefer []string `json:"prefer,omitempty"`
	// AntiAffinity names a group: no two members on one host (hard).
	AntiAffinity string `json:"anti_affinity,omitempty"`
	// SpreadBy is a host label key: the members of the AntiAffinity group
	// spread evenly over its values, e.g. racks (soft). Needs AntiAffinity.
	SpreadBy string `json:"spread_by,omitempty"`
	// VM holds disks, direct kernel boot and NICs (VMs only).
	VM *VMSpec `json:"vm,omitempty"`
	// Image is the container image reference (containers only).
	Image string `json:"image,omitempty"`
	// Command overrides the image's entrypoint (containers only).
	Command []string `json:"command,omitempty"`
	// Env is the container's environment (containers only).
	Env map[string]string `json:"env,omitempty"`
	// Restart is the policy on the host: "always" (default), "on-failure"
	// (not after a clean exit) or "never". After RestartLimit restarts the
	// host gives up and the leader reschedules it elsewhere, at most
	// RescheduleLimit times, with backoff.
	Restart RestartPolicy `json:"restart,omitempty"`
	// Volumes names the shared volumes the workload uses: a VM gets each as
	// a disk after VM.Disks, a container gets it bind-mounted at
	// /volumes/<name>. Exclusive volumes are locked to it while it runs.
	Volumes []string `json:"volumes,omitempty"`
	// VIPs are floating IP addresses (without prefix) attached to the
	// workload at creation; the host that runs it holds them.
	VIPs []string `json:"vips,omitempty"`
	// Publish forwards ports of the workload's floating IPs to the
	// container's ports (containers only).
	Publish []Publish `json:"publish,omitempty"`
	// Check is the workload's health check, run by its host (see
	// HealthCheck); nil: none.
	Check *HealthCheck `json:"check,omitempty"`
}

// RestartPolicy says when a host restarts a workload that stopped.
type RestartPolicy string

const (
	RestartAlways    RestartPolicy = "always"
	RestartOnFailure RestartPolicy = "on-failure"
	RestartNever     RestartPolicy = "never"
)

// Restart and reschedule limits (the Nomad split, with defaults that keep a
// workload alive longer than Proxmox's one restart then manual).
const (
	// RestartLimit is how many times a host restarts a workload at one
	// epoch before it gives up (backoff 1s, 2s, 4s...).
	RestartLimit = 3
	// RescheduleLimit is how many times the leader moves a workload that
	// its host gave up on (backoff 5s, 10s, 20s...).
	RescheduleLimit = 3
)

// Workload is the stored record of a desired workload: the spec plus what the
// server adds. Stored at /bulwark/v1/workloads/<name>.
type Workload struct {
	Schema int `json:"schema"`
	WorkloadSpec
	CreatedAt time.Time `json:"created_at"`
	// Deleting is set by DELETE: the leader removes the allocation, the agent
	// stops the workload, and the record goes once nothing runs any more.
	Deleting bool `json:"deleting,omitempty"`
}

// Node is a host's registration, written by its agent at start-up. Stored at
// /bulwark/v1/nodes/<name>. Liveness is the separate lease-bound heartbeat key.
type Node struct {
	Schema int               `json:"schema"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	CPUs   int               `json:"cpus"`
	Memory ByteSize          `json:"memory"`
	// Driver names the workload driver the agent runs (e.g. "libvirt").
	Driver string `json:"driver,omitempty"`
	// Kinds lists the workload kinds the host runs (empty: VMs only, as
	// registered by agents from before containers).
	Kinds []Kind `json:"kinds,omitempty"`
	// Detail is free text the agent reports about the host (hypervisor, version).
	Detail string `json:"detail,omitempty"`
	// AgentURL is where the agent serves its own small API (task list,
	// later logs), if it does.
	AgentURL string `json:"agent_url,omitempty"`
	// LeaseTTL (T) and SelfFenceAfter (T_self) are the agent's timing: the
	// leader needs them for watchdog fencing (T + T_self + watchdog).
	// Networks are the networks the host is attached to, and Interfaces
	// every network interface it has (floating IPs need them).
	Networks       []HostNetwork `json:"networks,omitempty"`
	Interfaces     []string      `json:"interfaces,omitempty"`
	LeaseTTL       Duration      `json:"lease_ttl,omitempty"`
	SelfFenceAfter Duration      `json:"self_fence_after,omitempty"`
	RegisteredAt   time.Time     `json:"registered_at"`
}

// Task is one workload as a host's driver reports it: the truth on the host,
// not Bulwark's bookkeeping. Served by the agent at GET /v1/tasks.
type Task struct {
	Workload string `json:"workload"`
	Epoch    int64  `json:"epoch"`
	State    string `json:"state"`
	Detail   string `json:"detail,omitempty"`
	ID       string `json:"id,omitempty"`
}

// Heartbeat is the value of the lease-bound key /bulwark/v1/heartbeats/<host>.
type Heartbeat struct {
	Schema  int       `json:"schema"`
	Host    string    `json:"host"`
	Lease   int64     `json:"lease"`
	Started time.Time `json:"started"`
}

// Allocation binds a workload to a host. Written only by the leader, in a
// transaction guarded by its leadership key. Stored at
// /bulwark/v1/allocations/<workload>.
type Allocation struct {
	Schema   int    `json:"schema"`
	Workload string `json:"workload"`
	Host     string `json:"host"`
	// CPUs and Memory are the resources reserved on Host.
	CPUs   int      `json:"cpus"`
	Memory ByteSize `json:"memory"`
	// Reschedules counts how often this workload was moved after its host
	// gave up on it.
	Reschedules int `json:"reschedules,omitempty"`
	// Epoch is the fencing token: the store revision that created this
	// allocation. It is not stored in the value; readers fill it in from the
	// key's create revision.
	Epoch     int64     `json:"epoch"`
	CreatedAt time.Time `json:"created_at"`
}

// WorkloadStatus is what an agent reports about one workload it runs. Stored
// at /bulwark/v1/status/<host>/<workload>, bound to the agent's lease so that
// it vanishes with the host.
type WorkloadStatus struct {
	Schema    int       `json:"schema"`
	Workload  string    `json:"workload"`
	Host      string    `json:"host"`
	Epoch     int64     `json:"epoch"`
	State     State     `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
	// GaveUp: the host reached the restart limit; the leader may
	// reschedule the workload elsewhere.
	GaveUp bool `json:"gave_up,omitempty"`
	// Runtime is the driver's own record of the running instance.
	Runtime *RuntimeRef `json:"runtime,omitempty"`
	// Health is the result of the workload's health check (HealthHealthy,
	// HealthUnhealthy, HealthStarting, HealthUnknown; "" without a check)
	// and HealthDetail the last failure or why the check cannot run.
	Health       string `json:"health,omitempty"`
	HealthDetail string `json:"health_detail,omitempty"`
}

// RuntimeRef is what a host's driver knows of one running instance: enough
// to find it again (the driver re-attaches from the runtime's own metadata,
// which carries workload and epoch; this copy in the store is for operators
// and for checking that a re-attached instance is the same one).
type RuntimeRef struct {
	Driver string `json:"driver"`
	// ID is the runtime's identifier: domain UUID, container ID.
	ID string `json:"id,omitempty"`
}

// PendingReason records why the leader could not place a workload. Stored at
// /bulwark/v1/pending/<workload>, removed when the workload is placed.
type PendingReason struct {
	Schema   int       `json:"schema"`
	Workload string    `json:"workload"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
	// Displaced marks a workload that was running and lost its place
	// (preempted, or recovered from a fenced host): admission control,
	// which keeps room for failures, must not hold it back.
	Displaced bool `json:"displaced,omitempty"`
	// Reschedules, AvoidHost and NotBefore carry a reschedule after a host
	// gave up on the workload: the count so far, the host it failed on
	// (not used for its next placement), and the end of the backoff.
	Reschedules int       `json:"reschedules,omitempty"`
	AvoidHost   string    `json:"avoid_host,omitempty"`
	NotBefore   time.Time `json:"not_before,omitempty"`
	// StoppingOn is the live host the workload was taken from (preempted,
	// drained) and that may still be stopping it. Should that host lose
	// its lease first, the workload waits for the host's fence record:
	// its status vanishing with the lease proves nothing.
	StoppingOn string `json:"stopping_on,omitempty"`
}

// FenceRecord is the evidence that a host was powered off. Stored at
// /bulwark/v1/fencing/<host> before any recovery of its workloads starts.
type FenceRecord struct {
	Schema     int       `json:"schema"`
	Host       string    `json:"host"`
	Device     string    `json:"device"`
	Action     string    `json:"action"`
	PowerState string    `json:"power_state"`
	Started    time.Time `json:"started"`
	Confirmed  time.Time `json:"confirmed"`
	// Epoch is the store revision at which the host was declared lost.
	Epoch int64 `json:"epoch"`
}

// Event is one entry of the bounded event history at /bulwark/v1/events/<rev>.
type Event struct {
	Schema   int       `json:"schema"`
	Time     time.Time `json:"time"`
	Type     string    `json:"type"`
	Host     string    `json:"host,omitempty"`
	Workload string    `json:"workload,omitempty"`
	Message  string    `json:"message"`
}

// NodeView is a node as the API returns it: registration plus live state and
// the resources its allocations use.
type NodeView struct {
	Node
	State NodeState `json:"state"`
	// Reason explains a state other than ready.
	Reason string `json:"reason,omitempty"`
	// Fencing is "ok", "none" (no device) or "unfenceable: <why>".
	Fencing    string   `json:"fencing,omitempty"`
	CPUsUsed   int      `json:"cpus_used"`
	MemoryUsed ByteSize `json:"memory_used"`
	Workloads  int      `json:"workloads"`
	// Maintenance is set while the host is in maintenance (and holds the
	// drain, if one was started).
	Maintenance *Maintenance `json:"maintenance,omitempty"`
}

// WorkloadView is a workload as the API returns it.
type WorkloadView struct {
	Workload
	State State  `json:"state"`
	Host  string `json:"host"`
	Epoch int64  `json:"epoch,omitempty"`
	// Reschedules counts moves after a host gave up on the workload.
	Reschedules int `json:"reschedules,omitempty"`
	// Reason explains a pending or failed state.
	Reason string `json:"reason,omitempty"`
	// Health and HealthDetail are the host's health check result for the
	// current allocation (see WorkloadStatus).
	Health       string `json:"health,omitempty"`
	HealthDetail string `json:"health_detail,omitempty"`
	// Runtime is the host driver's record of the running instance.
	Runtime *RuntimeRef `json:"runtime,omitempty"`
}

// Health is the body of GET /v1/health.
type Health struct {
	Status   string `json:"status"`
	Server   string `json:"server"`
	Leader   string `json:"leader"`
	IsLeader bool   `json:"is_leader"`
	Revision int64  `json:"revision"`
}

// Error is the body of every non-2xx API response.
type Error struct {
	Message string `json:"error"`
	Code    string `json:"code"`
}

func (e *Error) Error() string { return e.Message }

// Error codes.
const (
	CodeInvalid     = "invalid_argument"
	CodeNotFound    = "not_found"
	CodeConflict    = "conflict"
	CodeUnavailable = "unavailable"
	CodeInternal    = "internal"
	CodeTooLarge    = "too_large"
)
