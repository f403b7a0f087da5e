package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwarkhq/bulwark/api"
)

// Setting describes one setting for help texts and documentation: its YAML
// key, environment variable, flag and default.
type Setting struct {
	// Key is the YAML key, dotted for nesting (etcd.ca_file).
	Key string
	// Env is the environment variable, e.g. BULWARK_ETCD_CA_FILE.
	Env string
	// Flag is the command-line flag without dashes, e.g. etcd-ca-file.
	Flag string
	// Default is the default as text ("" when the default is empty).
	Default string
	Usage   string
	// Repeatable: the flag may be given several times (lists, labels); the
	// environment variable and a scalar in the file take comma-separated
	// values.
	Repeatable bool
	// Bool: the flag takes no value (--bmc-insecure or --bmc-insecure=false).
	Bool bool
	// FileOnly: only the config file can give this setting; Env and Flag
	// are empty (fencing.hosts: see Fencing).
	FileOnly bool
}

// Settings lists every setting of a kind in file order.
func Settings(k Kind) []Setting {
	var out []Setting
	for _, s := range schema(k) {
		out = append(out, s.Setting)
	}
	return out
}

// shape is the form a value takes in the file.
type shape int

const (
	scalar shape = iota // one value
	list                // a YAML sequence, or a comma-separated scalar
	pairs               // a YAML mapping of key: value
	tree                // a structure only a file can give, parsed by setting.node
)

// value is one raw value from a file, a variable or flags.
type value struct {
	scalar string
	list   []string
	pairs  [][2]string
}

type setting struct {
	Setting
	shape shape
	// apply parses v, checks it and stores it in cfg (*Server or *Agent).
	apply func(cfg any, v value) error
	// node parses, checks and stores a tree setting from its YAML node,
	// recording the origins of what it holds in o; it reports every
	// problem with its place in file.
	node func(cfg any, n *yaml.Node, file string, o origins) []Problem
}

// schema builds the settings of a kind (cheap; built per call so that no
// package state exists).
func schema(k Kind) []setting {
	if k == KindAgent {
		return agentSchema()
	}
	return serverSchema()
}

func lookupSetting(k Kind, key string) (setting, bool) {
	for _, s := range schema(k) {
		if s.Key == key {
			return s, true
		}
	}
	return setting{}, false
}

// sections are the keys that hold other keys.
func sections(k Kind) map[string]bool {
	m := map[string]bool{}
	for _, s := range schema(k) {
		parts := strings.Split(s.Key, ".")
		for i := 1; i < len(parts); i++ {
			m[strings.Join(parts[:i], ".")] = true
		}
	}
	return m
}

func serverSchema() []setting {
	srv := func(c any) *Server { return c.(*Server) }
	s := []setting{
		stringSetting(Setting{Key: "name", Env: "BULWARK_SERVER_NAME", Flag: "name", Default: "",
			Usage: "replica name, a DNS label (default: this machine's host name)"},
			func(c any) *string { return &srv(c).Name }, checkName("server")),
		stringSetting(Setting{Key: "listen", Env: "BULWARK_LISTEN", Flag: "listen", Default: "127.0.0.1:7370",
			Usage: "API listen address, host:port"},
			func(c any) *string { return &srv(c).Listen }, checkHostPort),
		logLevelSetting(func(c any) *string { return &srv(c).LogLevel }),
		sessionTTLSetting("5s", "leadership lease TTL: how long a dead leader keeps leadership",
			func(c any) *time.Duration { return &srv(c).SessionTTL }),
		boolSetting(Setting{Key: "auth.required", Env: "BULWARK_AUTH_REQUIRED", Flag: "auth-required", Default: "true",
			Usage: "API requests need a bearer token with a role (create them with: bulwarkd token create); false only on a closed test network"},
			func(c any) *bool { return &srv(c).AuthRequired }),
		stringSetting(Setting{Key: "tls.cert_file", Env: "BULWARK_TLS_CERT_FILE", Flag: "tls-cert-file", Default: "",
			Usage: "PEM certificate of the API (HTTPS); empty: plain HTTP"},
			func(c any) *string { return &srv(c).TLSCertFile }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "tls.key_file", Env: "BULWARK_TLS_KEY_FILE", Flag: "tls-key-file", Default: "",
			Usage: "PEM key of tls.cert_file (mode 0600)"},
			func(c any) *string { return &srv(c).TLSKeyFile }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "agents.ca_file", Env: "BULWARK_AGENTS_CA_FILE", Flag: "agents-ca-file", Default: "",
			Usage: "PEM CA bundle that signed the agents' API certificates, which are verified on every call to an agent over HTTPS (default: etcd.ca_file, the cluster CA)"},
			func(c any) *string { return &srv(c).AgentsCAFile }, optional(checkAbsPath)),
	}
	s = append(s, etcdSchema(KindServer, func(c any) *Etcd { return &srv(c).Etcd })...)
	return append(s, fencingSchema(func(c any) *Fencing { return &srv(c).Fencing })...)
}

func agentSchema() []setting {
	ag := func(c any) *Agent { return c.(*Agent) }
	s := []setting{
		stringSetting(Setting{Key: "name", Env: "BULWARK_HOST_NAME", Flag: "name", Default: "",
			Usage: "host name, a DNS label (default: this machine's host name)"},
			func(c any) *string { return &ag(c).Name }, checkName("host")),
		logLevelSetting(func(c any) *string { return &ag(c).LogLevel }),
		sessionTTLSetting("3s", "heartbeat lease TTL (T); the agent fences itself after 0.6 T without renewal: how long after the agent dies its host counts as alive",
			func(c any) *time.Duration { return &ag(c).SessionTTL }),
	}
	s = append(s, etcdSchema(KindAgent, func(c any) *Etcd { return &ag(c).Etcd })...)
	return append(s,
		stringSetting(Setting{Key: "libvirt.uri", Env: "BULWARK_LIBVIRT_URI", Flag: "libvirt-uri", Default: "qemu:///system",
			Usage: "libvirt connection URI (test:///path/host.xml for a simulated hypervisor; none: this host runs no VMs)"},
			func(c any) *string { return &ag(c).LibvirtURI }, checkLibvirtURI),
		stringSetting(Setting{Key: "libvirt.domain_type", Env: "BULWARK_DOMAIN_TYPE", Flag: "domain-type", Default: "",
			Usage: "libvirt domain type: kvm, qemu or test (default: detected from the URI and the host)"},
			func(c any) *string { return &ag(c).DomainType }, checkOneOf("domain type", "", "kvm", "qemu", "test")),
		labelsSetting(Setting{Key: "labels", Env: "BULWARK_LABELS", Flag: "label", Default: "",
			Usage: "host label key=value, used by placement constraints (repeatable; replaces the file's labels)"},
			func(c any) *map[string]string { return &ag(c).Labels }),
		durationSetting(Setting{Key: "self_fence_after", Env: "BULWARK_SELF_FENCE_AFTER", Flag: "self-fence-after", Default: "0s",
			Usage: "T_self: kill every workload after this long without an acknowledged keepalive; 0s: 0.6 x session_ttl (must be between a third of session_ttl and session_ttl)"},
			func(c any) *time.Duration { return &ag(c).SelfFenceAfter }, 0, time.Hour),
		stringSetting(Setting{Key: "watchdog_device", Env: "BULWARK_WATCHDOG_DEVICE", Flag: "watchdog-device", Default: "",
			Usage: "hardware watchdog to feed while the heartbeat lease is healthy, e.g. /dev/watchdog (never disarmed); empty: none"},
			func(c any) *string { return &ag(c).WatchdogDevice }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "libvirt.console_log_dir", Env: "BULWARK_CONSOLE_LOG_DIR", Flag: "console-log-dir", Default: "/var/log/bulwark/console",
			Usage: "where each VM's serial console is logged (served by bulwarkctl workload logs); empty: not logged"},
			func(c any) *string { return &ag(c).ConsoleLogDir }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "containerd.address", Env: "BULWARK_CONTAINERD_ADDRESS", Flag: "containerd-address", Default: "",
			Usage: "containerd's socket, e.g. /run/containerd/containerd.sock: this host then runs containers too; empty: VMs only"},
			func(c any) *string { return &ag(c).ContainerdAddress }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "containerd.state_dir", Env: "BULWARK_CONTAINERD_STATE_DIR", Flag: "containerd-state-dir", Default: "/var/lib/bulwark/containerd",
			Usage: "where containers' stdout and stderr are kept"},
			func(c any) *string { return &ag(c).ContainerdStateDir }, checkAbsPath),
		stringSetting(Setting{Key: "http_listen", Env: "BULWARK_AGENT_LISTEN", Flag: "http-listen", Default: "",
			Usage: "address of the agent's own API (tasks, logs; the servers call it), host:port: this host's cluster address; empty: off"},
			func(c any) *string { return &ag(c).HTTPListen }, optional(checkHostPort)),
		stringSetting(Setting{Key: "http_tls.cert_file", Env: "BULWARK_AGENT_TLS_CERT_FILE", Flag: "http-tls-cert-file", Default: "",
			Usage: "PEM certificate the agent's API serves HTTPS with (with http_tls.key_file; default: etcd.cert_file, the host's agent certificate)"},
			func(c any) *string { return &ag(c).HTTPTLSCertFile }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "http_tls.key_file", Env: "BULWARK_AGENT_TLS_KEY_FILE", Flag: "http-tls-key-file", Default: "",
			Usage: "PEM key of http_tls.cert_file (not readable by everyone; default: etcd.key_file)"},
			func(c any) *string { return &ag(c).HTTPTLSKeyFile }, optional(checkAbsPath)),
		boolSetting(Setting{Key: "http_insecure", Env: "BULWARK_AGENT_HTTP_INSECURE", Flag: "http-insecure", Default: "false",
			Usage: "serve the agent's API over plain HTTP even on an address that is not loopback (its token and workload logs cross the network in clear); without it such an agent needs a certificate"},
			func(c any) *bool { return &ag(c).HTTPInsecure }),
		labelsSetting(Setting{Key: "networks", Env: "BULWARK_NETWORKS", Flag: "network", Default: "",
			Usage: "a network this host is attached to, NAME=INTERFACE, e.g. public=eth1: floating IPs of that network can go here (repeatable)"},
			func(c any) *map[string]string { return &ag(c).Networks }),
		stringSetting(Setting{Key: "netns", Env: "BULWARK_NETNS", Flag: "netns", Default: "",
			Usage: "named network namespace that holds this host's interfaces (simulated hosts; containers join it too); empty: the agent's own"},
			func(c any) *string { return &ag(c).Netns }, checkNoControl),
		intSetting(Setting{Key: "cpus", Env: "BULWARK_CPUS", Flag: "cpus", Default: "0",
			Usage: "CPUs offered to the scheduler; 0: what libvirt reports"},
			func(c any) *int { return &ag(c).CPUs }, 0, api.MaxCPUs),
		byteSizeSetting(Setting{Key: "memory", Env: "BULWARK_MEMORY", Flag: "memory", Default: "0",
			Usage: "memory offered to the scheduler, e.g. 64GiB; 0: what libvirt reports"},
			func(c any) *api.ByteSize { return &ag(c).Memory }),
		stringSetting(Setting{Key: "bmc.url", Env: "BULWARK_BMC_URL", Flag: "bmc-url", Default: "",
			Usage: "DEPRECATED, ignored: fence devices are configured on the server (fencing.hosts in server.yaml)"},
			func(c any) *string { return &ag(c).BMC.URL }, optional(checkBMCURL)),
		stringSetting(Setting{Key: "bmc.username", Env: "BULWARK_BMC_USERNAME", Flag: "bmc-username", Default: "",
			Usage: "DEPRECATED, ignored (see bmc.url)"},
			func(c any) *string { return &ag(c).BMC.Username }, checkNoControl),
		stringSetting(Setting{Key: "bmc.password_file", Env: "BULWARK_BMC_PASSWORD_FILE", Flag: "bmc-password-file", Default: "",
			Usage: "DEPRECATED, ignored (see bmc.url)"},
			func(c any) *string { return &ag(c).BMC.PasswordFile }, optional(checkAbsPath)),
		boolSetting(Setting{Key: "bmc.insecure", Env: "BULWARK_BMC_INSECURE", Flag: "bmc-insecure", Default: "false",
			Usage: "DEPRECATED, ignored (see bmc.url)"},
			func(c any) *bool { return &ag(c).BMC.Insecure }),
	)
}

func etcdSchema(k Kind, e func(c any) *Etcd) []setting {
	certUsage := "PEM client certificate this server presents to etcd: its own, not a host's agent certificate " +
		"(bulwarkd cert issue server-HOST --kind client; see docs/security.md)"
	if k == KindAgent {
		certUsage = "PEM client certificate this agent presents to etcd, and its API serves HTTPS with unless http_tls is set: " +
			"this host's (bulwarkd cert issue HOST --kind agent --host HOST --host IP; see docs/security.md)"
	}
	return []setting{
		listSetting(Setting{Key: "etcd.endpoints", Env: "BULWARK_ETCD", Flag: "etcd", Default: "http://127.0.0.1:2379",
			Usage: "etcd client URLs (repeat or comma-separate for several members)"},
			func(c any) *[]string { return &e(c).Endpoints }, checkEndpoints),
		stringSetting(Setting{Key: "etcd.ca_file", Env: "BULWARK_ETCD_CA_FILE", Flag: "etcd-ca-file", Default: "",
			Usage: "PEM CA bundle that signed the etcd members' certificates (with https:// endpoints; empty: the system's CAs)"},
			func(c any) *string { return &e(c).CAFile }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "etcd.cert_file", Env: "BULWARK_ETCD_CERT_FILE", Flag: "etcd-cert-file", Default: "",
			Usage: certUsage},
			func(c any) *string { return &e(c).CertFile }, optional(checkAbsPath)),
		stringSetting(Setting{Key: "etcd.key_file", Env: "BULWARK_ETCD_KEY_FILE", Flag: "etcd-key-file", Default: "",
			Usage: "PEM key of etcd.cert_file (not readable by everyone)"},
			func(c any) *string { return &e(c).KeyFile }, optional(checkAbsPath)),
		durationSetting(Setting{Key: "etcd.dial_timeout", Env: "BULWARK_ETCD_DIAL_TIMEOUT", Flag: "etcd-dial-timeout", Default: "5s",
			Usage: "how long to wait for etcd at start"},
			func(c any) *time.Duration { return &e(c).DialTimeout }, 100*time.Millisecond, time.Minute),
	}
}

func logLevelSetting(f func(c any) *string) setting {
	s := stringSetting(Setting{Key: "log_level", Env: "BULWARK_LOG_LEVEL", Flag: "log-level", Default: "info",
		Usage: "debug, info, warn or error"}, f, checkOneOf("log level", "debug", "info", "warn", "error"))
	return s
}

func sessionTTLSetting(def, usage string, f func(c any) *time.Duration) setting {
	return durationSetting(Setting{Key: "session_ttl", Env: "BULWARK_SESSION_TTL", Flag: "session-ttl", Default: def,
		Usage: usage}, f, time.Second, time.Hour)
}

// Setting constructors: each parses its shape, checks the value and stores it.

func stringSetting(s Setting, field func(any) *string, check func(string) error) setting {
	return setting{Setting: s, shape: scalar, apply: func(cfg any, v value) error {
		if err := check(v.scalar); err != nil {
			return err
		}
		*field(cfg) = v.scalar
		return nil
	}}
}

func durationSetting(s Setting, field func(any) *time.Duration, lo, hi time.Duration) setting {
	return setting{Setting: s, shape: scalar, apply: func(cfg any, v value) error {
		d, err := time.ParseDuration(strings.TrimSpace(v.scalar))
		if err != nil {
			return fmt.Errorf("%q is not a duration: use a number with a unit, e.g. 5s or 500ms", v.scalar)
		}
		if d < lo || d > hi {
			return fmt.Errorf("%s is out of range: use %s to %s", v.scalar, fmtDuration(lo), fmtDuration(hi))
		}
		*field(cfg) = d
		return nil
	}}
}

func intSetting(s Setting, field func(any) *int, lo, hi int) setting {
	return setting{Setting: s, shape: scalar, apply: func(cfg any, v value) error {
		n, err := strconv.Atoi(strings.TrimSpace(v.scalar))
		if err != nil {
			return fmt.Errorf("%q is not a whole number", v.scalar)
		}
		if n < lo || n > hi {
			return fmt.Errorf("%d is out of range: use %d to %d", n, lo, hi)
		}
		*field(cfg) = n
		return nil
	}}
}

func boolSetting(s Setting, field func(any) *bool) setting {
	s.Bool = true
	return setting{Setting: s, shape: scalar, apply: func(cfg any, v value) error {
		switch strings.TrimSpace(v.scalar) {
		case "true":
			*field(cfg) = true
		case "false":
			*field(cfg) = false
		default:
			return fmt.Errorf("%q is not true or false", v.scalar)
		}
		return nil
	}}
}

func byteSizeSetting(s Setting, field func(any) *api.ByteSize) setting {
	return setting{Setting: s, shape: scalar, apply: func(cfg any, v value) error {
		if t := strings.TrimSpace(v.scalar); t == "" || t == "0" {
			*field(cfg) = 0
			return nil
		}
		b, err := api.ParseByteSize(v.scalar)
		if err != nil {
			return err
		}
		if b < api.MiB {
			return fmt.Errorf("size %q is under 1MiB (use 0 for what libvirt reports)", v.scalar)
		}
		*field(cfg) = b
		return nil
	}}
}

func listSetting(s Setting, field func(any) *[]string, check func([]string) error) setting {
	s.Repeatable = true
	return setting{Setting: s, shape: list, apply: func(cfg any, v value) error {
		if err := check(v.list); err != nil {
			return err
		}
		*field(cfg) = v.list
		return nil
	}}
}

func labelsSetting(s Setting, field func(any) *map[string]string) setting {
	s.Repeatable = true
	return setting{Setting: s, shape: pairs, apply: func(cfg any, v value) error {
		m := map[string]string{}
		for _, p := range v.pairs {
			if _, dup := m[p[0]]; dup {
				return fmt.Errorf("label %q is given twice", p[0])
			}
			m[p[0]] = p[1]
		}
		if err := api.ValidateLabels(m); err != nil {
			return err
		}
		*field(cfg) = m
		return nil
	}}
}

// fromStrings turns a variable's or the flags' text into a value of the
// setting's shape: lists and labels are comma-separated.
func fromStrings(sh shape, in []string) (value, error) {
	switch sh {
	case list:
		return value{list: splitList(in)}, nil
	case pairs:
		var v value
		for _, item := range splitList(in) {
			k, val, ok := strings.Cut(item, "=")
			if !ok {
				return value{}, fmt.Errorf("label %q: expected key=value", item)
			}
			v.pairs = append(v.pairs, [2]string{strings.TrimSpace(k), strings.TrimSpace(val)})
		}
		return v, nil
	}
	if len(in) == 0 {
		return value{}, nil
	}
	return value{scalar: in[len(in)-1]}, nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			out = append(out, strings.TrimSpace(p))
		}
	}
	return out
}

// Value rules.

func optional(check func(string) error) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return check(s)
	}
}

func checkName(what string) func(string) error {
	return func(s string) error {
		if s == "" {
			return nil
		}
		return api.ValidateName(what, s)
	}
}

func checkOneOf(what string, allowed ...string) func(string) error {
	return func(s string) error {
		for _, a := range allowed {
			if s == a {
				return nil
			}
		}
		var shown []string
		for _, a := range allowed {
			if a != "" {
				shown = append(shown, a)
			}
		}
		return fmt.Errorf("%s %q: use %s", what, s, orList(shown))
	}
}

func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port (e.g. 0.0.0.0:7370 or [::1]:7370)", s)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: %q is not a host name or address", s, host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 0 to 65535", s, port)
	}
	return nil
}

func checkAbsPath(s string) error {
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute path", s)
	}
	return nil
}

func checkNoControl(s string) error {
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%q contains a control character", s)
		}
	}
	return nil
}

func checkEndpoints(eps []string) error {
	if len(eps) == 0 {
		return errors.New("at least one etcd endpoint is needed")
	}
	seen := map[string]bool{}
	schemes := map[string]bool{}
	for _, ep := range eps {
		if ep == "" {
			return errors.New("an empty endpoint (stray comma?)")
		}
		u, err := url.Parse(ep)
		if err != nil || u.Host == "" || u.Opaque != "" {
			return fmt.Errorf("endpoint %q is not a URL like https://10.0.0.1:2379", ep)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("endpoint %q: the scheme must be http or https", ep)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("endpoint %q: give only scheme://host:port", ep)
		}
		port := u.Port()
		if port == "" {
			return fmt.Errorf("endpoint %q has no port (etcd's client port is usually 2379)", ep)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("endpoint %q: port %q is not a number from 1 to 65535", ep, port)
		}
		if seen[ep] {
			return fmt.Errorf("endpoint %q is listed twice", ep)
		}
		seen[ep] = true
		schemes[u.Scheme] = true
	}
	if len(schemes) > 1 {
		return errors.New("endpoints mix http and https; use one scheme for all members")
	}
	return nil
}

func checkLibvirtURI(s string) error {
	if s == "none" {
		return nil // a host without VMs
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("%q is not a libvirt URI such as qemu:///system", s)
	}
	driver, _, _ := strings.Cut(u.Scheme, "+")
	if driver != "qemu" && driver != "test" {
		return fmt.Errorf("%q: libvirt driver %q is not supported; use qemu (qemu:///system) or test (test:///default)", s, driver)
	}
	return nil
}

func checkBMCURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL like https://10.0.1.11", s)
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("%q: the scheme must be https (or http for a lab emulator)", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q: put the user in bmc.username and the password in bmc.password_file, not in the URL", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: give only scheme://host[:port]", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
		}
	}
	return nil
}

func fmtDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
