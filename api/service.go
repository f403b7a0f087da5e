package api

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Replicated services: N copies of one workload template, kept running by
// the leader. The copies (members) are ordinary workloads named
// "<service>-<n>", labelled ServiceLabel=<service>, so placement, failover,
// restart policy and health checks treat them like any other workload.

const (
	// MaxReplicas is the most replicas a service may ask for.
	MaxReplicas = 100
	// MaxServicePorts bounds a service's load-balanced ports.
	MaxServicePorts = 32
	// MaxMemberIndex bounds member names: "<service>-<n>" with n at most
	// this (indexes of members still stopping are not reused at once).
	MaxMemberIndex = 999
	// MaxServiceName keeps "<service>-<n>" a valid workload name (a DNS
	// label of at most 63 characters) for every n up to MaxMemberIndex.
	MaxServiceName = 63 - 1 - 3
	// ServiceLabel marks a member workload with its service's name.
	ServiceLabel = "bulwark.io/service"
	// AntiAffinityAuto: the members form the hard anti-affinity group
	// ServiceGroup(name): no two on one host. The default.
	AntiAffinityAuto = "auto"
	// AntiAffinityNone: the members may share hosts.
	AntiAffinityNone = "none"
)

// ServiceSpec is what a user asks for: the body of POST /v1/services.
type ServiceSpec struct {
	Name     string `json:"name"`
	Replicas int    `json:"replicas"`
	// Template is every member's workload spec, without a name: members
	// are named "<name>-<n>".
	Template WorkloadSpec `json:"template"`
	// AntiAffinity is "auto" (the default: hard anti-affinity group
	// "svc-<name>") or "none" (no spread).
	AntiAffinity string `json:"anti_affinity,omitempty"`
	// VIP is a floating IP (created with `vip create`, attached to nothing)
	// that spreads new connections over the healthy members: one host holds
	// it, and forwards each port in Ports to the members' hosts.
	VIP string `json:"vip,omitempty"`
	// Ports are the VIP's load-balanced ports; they need VIP.
	Ports []ServicePort `json:"ports,omitempty"`
}

// ServicePort is one load-balanced port: connections to VIP:Port go to
// TargetPort on a healthy member's host (members of a container service
// share their host's network).
type ServicePort struct {
	Port       int    `json:"port"`
	TargetPort int    `json:"target_port"`
	Proto      string `json:"proto,omitempty"`
}

func (p ServicePort) String() string {
	return fmt.Sprintf("%d:%d/%s", p.Port, p.TargetPort, p.Proto)
}

// ParseServicePort reads "PORT:TARGETPORT[/tcp|/udp]" (or "PORT", which
// means the same port on the members).
func ParseServicePort(s string) (ServicePort, error) {
	bad := fmt.Errorf("port %q: use PORT:TARGETPORT[/tcp|/udp], e.g. 80:8080 or 53:5353/udp", s)
	body, proto, hasProto := strings.Cut(s, "/")
	if hasProto && proto != "tcp" && proto != "udp" {
		return ServicePort{}, fmt.Errorf("port %q: protocol %q is unknown: use tcp or udp", s, proto)
	}
	a, b, two := strings.Cut(body, ":")
	if !two {
		b = a
	}
	port, err1 := strconv.Atoi(a)
	target, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return ServicePort{}, bad
	}
	p := ServicePort{Port: port, TargetPort: target, Proto: proto}
	p.normalize()
	if err := p.Validate(); err != nil {
		return ServicePort{}, err
	}
	return p, nil
}

func (p *ServicePort) normalize() {
	if p.Proto == "" {
		p.Proto = "tcp"
	}
}

// Validate checks one port.
func (p *ServicePort) Validate() error {
	if p.Port < 1 || p.Port > 65535 || p.TargetPort < 1 || p.TargetPort > 65535 {
		return fmt.Errorf("port %d:%d: ports must be from 1 to 65535", p.Port, p.TargetPort)
	}
	if p.Proto != "tcp" && p.Proto != "udp" {
		return fmt.Errorf("port %d:%d: protocol %q is unknown: use tcp or udp", p.Port, p.TargetPort, p.Proto)
	}
	return nil
}

// Pool is what the leader keeps in a service's floating IP: the ports and
// the members that take new connections (running, healthy, on a live
// host). The host holding the address forwards to exactly these.
type Pool struct {
	Ports    []ServicePort `json:"ports"`
	Backends []Backend     `json:"backends"`
}

// Backend is one member in a pool: its host's address on the floating
// IP's network.
type Backend struct {
	Workload string `json:"workload"`
	Host     string `json:"host"`
	Address  string `json:"address"`
}

// Service is the stored record of a service, at
// /bulwark/v1/services/<name>.
type Service struct {
	Schema int `json:"schema"`
	ServiceSpec
	CreatedAt time.Time `json:"created_at"`
	// Deleting is set by DELETE: the leader deletes every member, then
	// the record.
	Deleting bool `json:"deleting,omitempty"`
}

// ServiceMember is one member as the API shows it.
type ServiceMember struct {
	Name     string `json:"name"`
	State    State  `json:"state"`
	Host     string `json:"host,omitempty"`
	Health   string `json:"health,omitempty"`
	Deleting bool   `json:"deleting,omitempty"`
	// InPool: it takes new connections of the service's VIP.
	InPool bool `json:"in_pool,omitempty"`
}

// ServiceView is a service as the API returns it: the record, how many
// members run, and the members (by index).
type ServiceView struct {
	Service
	Running   int             `json:"running"`
	Members   []string        `json:"members"`
	Instances []ServiceMember `json:"instances,omitempty"`
	// With a load-balanced VIP: the member it follows (Anchor), the host
	// holding it now (VIPHolder, empty while none does), and the members
	// taking new connections (Pool).
	Anchor    string `json:"anchor,omitempty"`
	VIPHolder string `json:"vip_holder,omitempty"`
	Pool      *Pool  `json:"pool,omitempty"`
}

// ScaleRequest is the body of PUT /v1/services/{name}/scale.
type ScaleRequest struct {
	Replicas int `json:"replicas"`
}

// ServiceGroup is the anti-affinity group of a service's members.
func ServiceGroup(service string) string { return "svc-" + service }

// MemberName is the workload name of a service's member n (from 1).
func MemberName(service string, n int) string { return service + "-" + strconv.Itoa(n) }

// MemberIndex says whether a workload is a member of service and which:
// it carries the service label and is named "<service>-<n>".
func MemberIndex(service string, w *WorkloadSpec) (int, bool) {
	if w.Labels[ServiceLabel] != service {
		return 0, false
	}
	rest, ok := strings.CutPrefix(w.Name, service+"-")
	if !ok || rest == "" || rest[0] == '0' {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// Normalize fills in defaults.
func (s *ServiceSpec) Normalize() {
	if s.AntiAffinity == "" {
		s.AntiAffinity = AntiAffinityAuto
	}
	if a, err := netip.ParseAddr(s.VIP); err == nil {
		s.VIP = a.Unmap().String()
	}
	for i := range s.Ports {
		s.Ports[i].normalize()
	}
}

// Member returns the workload spec of member n.
func (s *ServiceSpec) Member(n int) WorkloadSpec {
	m := s.Template
	m.Name = MemberName(s.Name, n)
	m.Labels = maps.Clone(s.Template.Labels)
	if m.Labels == nil {
		m.Labels = map[string]string{}
	}
	m.Labels[ServiceLabel] = s.Name
	if s.AntiAffinity != AntiAffinityNone {
		m.AntiAffinity = ServiceGroup(s.Name)
	}
	return m
}

// ValidateReplicas checks a replica count.
func ValidateReplicas(n int) error {
	if n < 0 || n > MaxReplicas {
		return fmt.Errorf("replicas must be from 0 to %d, got %d", MaxReplicas, n)
	}
	return nil
}

// Validate checks a service spec (after Normalize) and returns every
// problem found, joined.
func (s *ServiceSpec) Validate() error {
	var errs []error
	nameOK := true
	if err := ValidateName("service", s.Name); err != nil {
		errs = append(errs, err)
		nameOK = false
	} else if len(s.Name) > MaxServiceName {
		errs = append(errs, fmt.Errorf("service name %q is %d characters long; at most %d are allowed, so that member names \"%s-N\" stay valid workload names", s.Name, len(s.Name), MaxServiceName, s.Name))
		nameOK = false
	}
	if err := ValidateReplicas(s.Replicas); err != nil {
		errs = append(errs, err)
	}
	switch s.AntiAffinity {
	case AntiAffinityAuto, AntiAffinityNone:
	default:
		errs = append(errs, fmt.Errorf("anti-affinity %q is unknown: use auto (no two replicas on one host) or none", s.AntiAffinity))
	}
	t := &s.Template
	if t.Name != "" {
		errs = append(errs, fmt.Errorf("the template has a name (%q): leave it out, members are named \"<service>-N\"", t.Name))
	}
	if t.AntiAffinity != "" {
		errs = append(errs, errors.New("the template's anti_affinity must be empty: the service's anti_affinity (auto or none) sets it"))
	}
	if _, ok := t.Labels[ServiceLabel]; ok {
		errs = append(errs, fmt.Errorf("the template may not set the label %s: Bulwark sets it on every member", ServiceLabel))
	}
	if len(t.VIPs) > 0 || len(t.Publish) > 0 {
		errs = append(errs, errors.New("the template has floating IPs or published ports, which follow one workload: give the service a load-balanced address with vip and ports instead"))
	}
	errs = append(errs, s.validateVIP()...)
	if len(t.Volumes) > 0 {
		errs = append(errs, errors.New("volumes are not supported for services yet: give each member's data to a separate workload"))
	}
	if nameOK {
		m := s.Member(1)
		if s.AntiAffinity == AntiAffinityNone && m.SpreadBy != "" {
			errs = append(errs, errors.New("template spread_by needs anti-affinity auto"))
			m.SpreadBy = ""
		}
		if err := m.Validate(); err != nil {
			for _, e := range flattenErrs(err) {
				errs = append(errs, fmt.Errorf("template: %w", e))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *ServiceSpec) validateVIP() []error {
	var errs []error
	switch {
	case s.VIP == "" && len(s.Ports) > 0:
		errs = append(errs, errors.New("ports need a vip: the address whose ports are load-balanced"))
	case s.VIP != "" && len(s.Ports) == 0:
		errs = append(errs, fmt.Errorf("vip %s has no ports: say which ports to load-balance, e.g. 80:8080", s.VIP))
	}
	if s.VIP != "" {
		if a, err := netip.ParseAddr(s.VIP); err != nil || a.Zone() != "" {
			errs = append(errs, fmt.Errorf("vip %q is not an IP address (give the floating IP's address, without prefix length)", s.VIP))
		}
	}
	if len(s.Ports) > MaxServicePorts {
		errs = append(errs, fmt.Errorf("%d ports: at most %d are allowed", len(s.Ports), MaxServicePorts))
	}
	seen := map[string]bool{}
	for _, p := range s.Ports {
		if err := p.Validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		k := fmt.Sprintf("%d/%s", p.Port, p.Proto)
		if seen[k] {
			errs = append(errs, fmt.Errorf("port %s is given twice", k))
		}
		seen[k] = true
	}
	if s.VIP != "" && s.AntiAffinity == AntiAffinityNone {
		errs = append(errs, errors.New("a load-balanced vip needs anti-affinity auto: the copies use their host's network, so two on one host would want the same port"))
	}
	if s.VIP != "" && s.Template.Kind == KindVM {
		errs = append(errs, errors.New("a load-balanced vip is for container services (members use their host's network); VMs have their own addresses"))
	}
	return errs
}

func flattenErrs(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flattenErrs(e)...)
		}
		return out
	}
	return []error{err}
}
