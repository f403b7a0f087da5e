// Package config reads the configuration of `bulwarkd server` and
// `bulwarkd agent`: a YAML file, environment variables and command-line
// flags, merged with this precedence (highest first):
//
//	flag > environment variable > config file > built-in default
//
// Every setting has one YAML key (dotted here for nesting: etcd.ca_file is
// the key ca_file under etcd:), one environment variable (BULWARK_...) and
// one flag; Settings lists them. The exception is the server's per-host
// fence device list (fencing.hosts), which only a file can give: see
// Fencing. The file is decoded strictly: an unknown key, a duplicate key, a
// value of the wrong shape or an invalid value is a Problem naming the
// file, line, column and reason. Values from the
// environment and from flags are checked by the same rules and name the
// variable or flag instead. All problems found are reported together.
//
// The package knows nothing of the command-line library: the caller passes
// the flags that were given (by name) and an environment lookup.
package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// Kind tells a server configuration from an agent one. A file may say
// which it is with a top-level `kind:` key.
type Kind string

const (
	KindServer Kind = "server"
	KindAgent  Kind = "agent"
)

// Default file locations. A missing default file is fine (defaults apply);
// a file named explicitly must exist.
const (
	DefaultServerPath = "/etc/bulwark/server.yaml"
	DefaultAgentPath  = "/etc/bulwark/agent.yaml"
)

// DefaultPath is the file read when none is named.
func (k Kind) DefaultPath() string {
	if k == KindAgent {
		return DefaultAgentPath
	}
	return DefaultServerPath
}

// article is "a server" or "an agent".
func (k Kind) article() string {
	if k == KindAgent {
		return "an agent"
	}
	return "a " + string(k)
}

func (k Kind) valid() bool { return k == KindServer || k == KindAgent }

// ParseKind reads "server" or "agent".
func ParseKind(s string) (Kind, error) {
	k := Kind(strings.TrimSpace(s))
	if !k.valid() {
		return "", fmt.Errorf("kind %q: use server or agent", s)
	}
	return k, nil
}

// Etcd is how a daemon reaches the cluster's etcd.
type Etcd struct {
	// Endpoints are client URLs of the etcd members.
	Endpoints []string
	// CAFile, CertFile and KeyFile are PEM files for TLS to etcd: the CA
	// that signed the members' certificates, and this daemon's client
	// certificate and key. With any of them set, every endpoint must be
	// https:// and the daemon connects over TLS, presenting the certificate
	// (cmd/bulwarkd dialEtcd, clusterstore/etcd DialTLS); the daemons and
	// `bulwarkd config check` check the files first (CheckFiles). An
	// agent presents its host's certificate (CN = the host name), a server
	// one of its own (e.g. CN=server-host-1), which etcd's users and roles
	// (bulwarkd etcd-auth) tell apart: see docs/security.md.
	CAFile, CertFile, KeyFile string
	// DialTimeout bounds connecting to etcd at start.
	DialTimeout time.Duration
}

// TLSEnabled reports whether any TLS file is set.
func (e Etcd) TLSEnabled() bool { return e.CAFile != "" || e.CertFile != "" || e.KeyFile != "" }

// Server is the configuration of `bulwarkd server`.
type Server struct {
	// Name is the replica name (a DNS label). Empty: the host name.
	Name string
	// Listen is the API listen address, host:port.
	Listen   string
	LogLevel string
	// SessionTTL is the leadership lease TTL.
	SessionTTL time.Duration
	Etcd       Etcd
	// Fencing is how the leader fences lost hosts: timing, and each host's
	// fence devices.
	Fencing Fencing
	// AuthRequired: API requests need a bearer token (bulwarkd token
	// create); off only for a closed test network.
	AuthRequired bool
	// TLSCertFile and TLSKeyFile, if set, serve the API over HTTPS.
	TLSCertFile string
	TLSKeyFile  string
	// AgentsCAFile is the CA bundle the agents' API certificates are
	// verified against when the server calls an agent over HTTPS (node
	// tasks, workload logs, volume checks); empty: Etcd.CAFile. See
	// AgentCAFile.
	AgentsCAFile string

	origins origins
}

// AgentCAFile is the CA bundle that verifies the agents' API
// certificates, and the key of the setting it comes from: agents.ca_file,
// else etcd.ca_file (the cluster CA, which signs the agents' certificates
// too). "" means the system's CAs: verification is never skipped.
func (s *Server) AgentCAFile() (path, key string) {
	if s.AgentsCAFile != "" {
		return s.AgentsCAFile, "agents.ca_file"
	}
	return s.Etcd.CAFile, "etcd.ca_file"
}

// BMC is the agent's old `bmc:` section.
//
// Deprecated: fence devices are configured on the server (Fencing, the
// fencing.hosts key of server.yaml): the leader is what fences a lost host,
// so the BMC password must live where the leader runs, not on the host that
// is being fenced. The agent still accepts and checks the values, so that
// an agent.yaml of an earlier release keeps loading after an upgrade, but
// ignores them, and `bulwarkd config check` and the agent's log say so.
type BMC struct {
	// URL is the BMC's base URL, e.g. https://10.0.1.11 (the Redfish
	// service root is URL/redfish/v1). Empty: no BMC configured.
	URL      string
	Username string
	// PasswordFile holds the password on its first line; it must not be
	// readable by everyone.
	PasswordFile string
	// Insecure skips verification of the BMC's TLS certificate (most BMCs
	// ship a self-signed one).
	Insecure bool
}

// Agent is the configuration of `bulwarkd agent`.
type Agent struct {
	// Name is the host name (a DNS label). Empty: the host name.
	Name       string
	LogLevel   string
	SessionTTL time.Duration
	Etcd       Etcd
	// LibvirtURI is the libvirt connection URI.
	LibvirtURI string
	// DomainType is kvm, qemu or test; empty: detected from the URI.
	DomainType string
	// SelfFenceAfter is T_self; 0: 0.6 SessionTTL.
	SelfFenceAfter time.Duration
	// WatchdogDevice is fed while the lease is healthy; empty: none.
	WatchdogDevice string
	// ConsoleLogDir receives each VM's serial console log.
	ConsoleLogDir string
	// ContainerdAddress, if set, makes the host run containers too.
	ContainerdAddress  string
	ContainerdStateDir string
	// Labels are used by placement constraints.
	Labels map[string]string
	// HTTPListen is the agent's own API address; empty: off.
	HTTPListen string
	// HTTPTLSCertFile and HTTPTLSKeyFile are the certificate and key the
	// agent's API serves HTTPS with; empty: the etcd client certificate
	// (Etcd.CertFile and KeyFile: `bulwarkd cert issue HOST --kind agent`
	// makes one for both). See HTTPCertFiles.
	HTTPTLSCertFile, HTTPTLSKeyFile string
	// HTTPInsecure serves the agent's API over plain HTTP, also on an
	// address that is not loopback, even if a certificate is at hand.
	// Without it an agent whose API listens beyond loopback with no
	// certificate does not start.
	HTTPInsecure bool
	// Netns is the named network namespace holding the host's interfaces
	// (simulated hosts); empty: the agent's own.
	Netns string
	// Networks maps network names to this host's interfaces.
	Networks map[string]string
	// CPUs and Memory override what libvirt reports; 0: what it reports.
	CPUs   int
	Memory api.ByteSize
	// BMC is deprecated and ignored; see BMC.
	BMC BMC

	origins origins
}

// DefaultServer returns a server configuration with every default.
func DefaultServer() *Server {
	return &Server{
		Listen:       "127.0.0.1:7370",
		LogLevel:     "info",
		SessionTTL:   5 * time.Second,
		Etcd:         defaultEtcd(),
		Fencing:      defaultFencing(),
		AuthRequired: true,
		origins:      origins{},
	}
}

// DefaultAgent returns an agent configuration with every default.
func DefaultAgent() *Agent {
	return &Agent{
		LogLevel:           "info",
		SessionTTL:         3 * time.Second,
		Etcd:               defaultEtcd(),
		LibvirtURI:         "qemu:///system",
		ConsoleLogDir:      "/var/log/bulwark/console",
		ContainerdStateDir: "/var/lib/bulwark/containerd",
		Labels:             map[string]string{},
		origins:            origins{},
	}
}

func defaultEtcd() Etcd {
	return Etcd{Endpoints: []string{"http://127.0.0.1:2379"}, DialTimeout: 5 * time.Second}
}

// HTTPCertFiles returns the certificate and key the agent's API serves
// HTTPS with, and the section of the settings that named them (http_tls
// or etcd); all "" when the API is off or plain HTTP.
func (a *Agent) HTTPCertFiles() (cert, key, section string) {
	switch {
	case a.HTTPListen == "" || a.HTTPInsecure:
		return "", "", ""
	case a.HTTPTLSCertFile != "" || a.HTTPTLSKeyFile != "":
		return a.HTTPTLSCertFile, a.HTTPTLSKeyFile, "http_tls"
	case a.Etcd.CertFile != "":
		return a.Etcd.CertFile, a.Etcd.KeyFile, "etcd"
	}
	return "", "", ""
}

// Origin returns where the setting with this key got its value.
func (s *Server) Origin(key string) Origin { return s.origins.get(key) }

// Origin returns where the setting with this key got its value.
func (a *Agent) Origin(key string) Origin { return a.origins.get(key) }

// Source says where a value came from.
type Source int

const (
	FromDefault Source = iota
	FromFile
	FromEnv
	FromFlag
)

func (s Source) String() string {
	return [...]string{"default", "file", "environment", "flag"}[s]
}

// Origin is where one value came from: a default, a place in a file, an
// environment variable or a flag.
type Origin struct {
	Source       Source
	File         string // FromFile
	Line, Column int    // FromFile; 0 when not known
	Name         string // FromEnv: the variable; FromFlag: the flag without dashes
}

func (o Origin) String() string {
	switch o.Source {
	case FromFile:
		switch {
		case o.Line > 0 && o.Column > 0:
			return fmt.Sprintf("%s:%d:%d", o.File, o.Line, o.Column)
		case o.Line > 0:
			return fmt.Sprintf("%s:%d", o.File, o.Line)
		}
		return o.File
	case FromEnv:
		return "$" + o.Name
	case FromFlag:
		return "--" + o.Name
	}
	return "default"
}

type origins map[string]Origin

func (o origins) get(key string) Origin { return o[key] }
