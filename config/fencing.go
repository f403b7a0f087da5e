package config

import (
	"fmt"
	"github.com/bulwarkhq/bulwark/internal/spelling"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bulwarkhq/bulwark/api"
)

// Fencing is how the cluster's leader fences lost hosts: the timing of
// fence operations, and each host's fence devices in level order (level 1
// is tried first; the next level only when the one before failed).
//
// Fence devices are server settings, not agent ones: the leader is what
// powers a lost host off, so the BMC passwords must be readable where the
// servers run, and nowhere near the host being fenced (which is the one
// that cannot be trusted or reached when it matters).
//
// The timing settings are ordinary settings (file, environment, flag). The
// per-host device list, fencing.hosts, can only be given in the file: it is
// a structure (hosts, each with an ordered list of devices, each with ten
// keys) that no single variable or flag expresses without an ad-hoc syntax,
// a flag would put it on every process listing, and one file is one place
// to review and audit which BMC fences which host.
type Fencing struct {
	// DeviceTimeout bounds one device's power-off, confirmation included,
	// and one device's health probe.
	DeviceTimeout time.Duration
	// RetryInterval paces new attempts after every device of a host failed.
	RetryInterval time.Duration
	// CheckInterval is how often the leader probes every host's devices.
	CheckInterval time.Duration
	// SuspectGrace is how long a host without heartbeat that runs workloads
	// stays suspect before it is lost (and fenced).
	SuspectGrace time.Duration
	// Hosts maps a host name to its fence devices, level 1 first. Empty: no
	// host has a fence device.
	Hosts map[string][]FenceDevice
}

// The fence device types; Redfish is the only one so far.
const FenceTypeRedfish = "redfish"

// MaxFenceLevels is the most fence devices a host may have.
const MaxFenceLevels = 8

// FenceDevice is one fence device of one host. It never holds a password:
// only where the password is (PasswordFile or PasswordEnv).
type FenceDevice struct {
	// Host is the host this device powers off; Level its 1-based position
	// in the host's list.
	Host  string
	Level int
	// Name identifies the device in fence records, events and logs: the
	// name: key, or <host>-level<N>.
	Name string
	// Type is FenceTypeRedfish.
	Type string
	// URL is the BMC's base URL, https://host[:port].
	URL      string
	Username string
	// PasswordFile (absolute; the whole file minus one trailing newline,
	// mode 0600 or 0400) or PasswordEnv (a variable of the server's
	// environment) holds the password: exactly one is set.
	PasswordFile string
	PasswordEnv  string
	// CAFile is a PEM bundle of the CAs that sign the BMC's certificate;
	// empty: the system's roots. Insecure skips verification; it cannot be
	// combined with CAFile.
	CAFile   string
	Insecure bool
	// SystemID selects the BMC's computer system; empty: the first.
	SystemID string
	// Auth is "session" (the default) or "basic".
	Auth string
}

// Key is the setting key of one of the device's keys (field "": of the
// device itself), as problems name it: fencing.hosts.host-1[1].url, where
// [1] is the level.
func (d FenceDevice) Key(field string) string {
	k := fmt.Sprintf("fencing.hosts.%s[%d]", d.Host, d.Level)
	if field != "" {
		k += "." + field
	}
	return k
}

// HostNames lists the hosts that have fence devices, sorted.
func (f Fencing) HostNames() []string {
	out := make([]string, 0, len(f.Hosts))
	for h := range f.Hosts {
		out = append(out, h)
	}
	sort.Strings(out)
	return out
}

// Devices is every configured device: hosts sorted, then by level.
func (f Fencing) Devices() []FenceDevice {
	var out []FenceDevice
	for _, h := range f.HostNames() {
		out = append(out, f.Hosts[h]...)
	}
	return out
}

func defaultFencing() Fencing {
	return Fencing{DeviceTimeout: 20 * time.Second, RetryInterval: 5 * time.Second, CheckInterval: 30 * time.Second,
		Hosts: map[string][]FenceDevice{}}
}

func fencingSchema(f func(c any) *Fencing) []setting {
	return []setting{
		durationSetting(Setting{Key: "fencing.device_timeout", Env: "BULWARK_FENCE_DEVICE_TIMEOUT", Flag: "fence-device-timeout", Default: "20s",
			Usage: "longest one fence device may take to power a host off and read it back as off (and to answer a health probe), 1s to 10m"},
			func(c any) *time.Duration { return &f(c).DeviceTimeout }, time.Second, 10*time.Minute),
		durationSetting(Setting{Key: "fencing.retry_interval", Env: "BULWARK_FENCE_RETRY_INTERVAL", Flag: "fence-retry-interval", Default: "5s",
			Usage: "pause before fencing a host again after every one of its devices failed, 1s to 10m"},
			func(c any) *time.Duration { return &f(c).RetryInterval }, time.Second, 10*time.Minute),
		durationSetting(Setting{Key: "fencing.check_interval", Env: "BULWARK_FENCE_CHECK_INTERVAL", Flag: "fence-check-interval", Default: "30s",
			Usage: "how often the leader probes every host's fence devices (log in, read the power state), 1s to 1h"},
			func(c any) *time.Duration { return &f(c).CheckInterval }, time.Second, time.Hour),
		durationSetting(Setting{Key: "fencing.suspect_grace", Env: "BULWARK_FENCE_SUSPECT_GRACE", Flag: "fence-suspect-grace", Default: "0s",
			Usage: "how long a host that runs workloads and lost its heartbeat stays suspect before it is fenced, 0 to 10m"},
			func(c any) *time.Duration { return &f(c).SuspectGrace }, 0, 10*time.Minute),
		{Setting: Setting{Key: "fencing.hosts", FileOnly: true,
			Usage: "each host's fence devices in level order (config file only)"},
			shape: tree,
			apply: func(any, value) error { return fmt.Errorf("fencing.hosts can only be given in the config file") },
			node: func(cfg any, n *yaml.Node, file string, o origins) []Problem {
				p := &fenceParser{file: file, o: o}
				hosts := p.hosts(n)
				if len(p.ps) == 0 {
					f(cfg).Hosts = hosts
				}
				return dedupe(p.ps)
			}},
	}
}

// fenceDeviceKeys are the keys of one fence device, in documentation order.
var fenceDeviceKeys = []string{"name", "type", "url", "username", "password_file", "password_env", "ca_file", "insecure", "system_id", "auth"}

type fenceParser struct {
	file string
	o    origins
	ps   []Problem
}

func (p *fenceParser) problem(n *yaml.Node, key, format string, args ...any) {
	p.ps = append(p.ps, Problem{Origin: nodeOrigin(p.file, n), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// hosts parses fencing.hosts: a mapping of host name to a list of devices.
func (p *fenceParser) hosts(n *yaml.Node) map[string][]FenceDevice {
	const key = "fencing.hosts"
	if n.Kind != yaml.MappingNode {
		p.problem(n, key, "expected a mapping of host names to their lists of fence devices (host-1: [...]), got %s", describe(n))
		return nil
	}
	out := map[string][]FenceDevice{}
	firstAt := map[string]int{}
	// Every device name, and every BMC system, once in the whole cluster.
	names := map[string]FenceDevice{}
	systems := map[string]FenceDevice{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := deref(n.Content[i]), deref(n.Content[i+1])
		if kn.Kind != yaml.ScalarNode {
			p.problem(kn, key, "a host name must be a plain name, not %s", describe(kn))
			continue
		}
		host := kn.Value
		hkey := key + "." + host
		if line, dup := firstAt[host]; dup {
			p.problem(kn, hkey, "host %q is listed twice (first on line %d); give all its devices in one list, in level order", host, line)
			continue
		}
		firstAt[host] = kn.Line
		if err := api.ValidateName("host", host); err != nil {
			p.problem(kn, hkey, "%v (the name the host's agent registers, as in `bulwarkctl node list`)", err)
			continue
		}
		p.o[hkey] = nodeOrigin(p.file, kn)
		switch {
		case isNull(vn) || vn.Kind == yaml.SequenceNode && len(vn.Content) == 0:
			p.problem(kn, hkey, "no fence devices: list them in level order (- type: redfish ...), or leave the host out")
			continue
		case vn.Kind == yaml.MappingNode:
			p.problem(vn, hkey, "expected a list of fence devices in level order, got a mapping: start each device with '- '")
			continue
		case vn.Kind != yaml.SequenceNode:
			p.problem(vn, hkey, "expected a list of fence devices in level order, got %s", describe(vn))
			continue
		case len(vn.Content) > MaxFenceLevels:
			p.problem(vn.Content[MaxFenceLevels], hkey, "%d fence devices; at most %d levels are allowed", len(vn.Content), MaxFenceLevels)
			continue
		}
		var devs []FenceDevice
		for idx, item := range vn.Content {
			d, at, ok := p.device(host, idx+1, deref(item))
			if !ok {
				continue
			}
			if prev, dup := names[d.Name]; dup {
				p.problem(nodeOr(at, "name"), d.Key("name"), "fence device name %q is already used by %s level %d; names identify devices in fence records and must be unique",
					d.Name, prev.Host, prev.Level)
			} else {
				names[d.Name] = d
			}
			sys := bmcSystem(d)
			if prev, dup := systems[sys]; dup && prev.Host == host {
				p.problem(nodeOr(at, "url"), d.Key("url"), "the same BMC system (%s, system_id %q) as level %d of this host: a further level must be another device",
					d.URL, d.SystemID, prev.Level)
			} else if dup {
				p.problem(nodeOr(at, "url"), d.Key("url"), "the same BMC system (%s, system_id %q) as host %s level %d: fencing one host through another host's BMC powers off the wrong machine; give each host its own BMC, or set system_id on a multi-node BMC",
					d.URL, d.SystemID, prev.Host, prev.Level)
			} else {
				systems[sys] = d
			}
			devs = append(devs, d)
		}
		out[host] = devs
	}
	return out
}

// nodeOr is the node of key's value, or the device's own node when the key
// was not given (a default name).
func nodeOr(at map[string]*yaml.Node, key string) *yaml.Node {
	if n := at[key]; n != nil {
		return n
	}
	return at[""]
}

// bmcSystem identifies the machine a device powers off: the BMC's address
// (default port made explicit, host lowercased) and the system ID.
func bmcSystem(d FenceDevice) string {
	u, err := url.Parse(d.URL)
	if err != nil {
		return d.URL + "\x00" + d.SystemID
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return strings.ToLower(u.Hostname()) + ":" + port + "\x00" + d.SystemID
}

// device parses one device at level of host. It returns the device, the
// nodes of its values by key (for later problems) and whether it is valid.
func (p *fenceParser) device(host string, level int, n *yaml.Node) (FenceDevice, map[string]*yaml.Node, bool) {
	d := FenceDevice{Host: host, Level: level}
	dkey := d.Key("")
	if n.Kind != yaml.MappingNode {
		p.problem(n, dkey, "expected a fence device (a mapping of type, url, username, ...), got %s", describe(n))
		return d, nil, false
	}
	p.o[dkey] = nodeOrigin(p.file, n)
	before := len(p.ps)
	fields := map[string]*yaml.Node{}
	p.collect(n, d, fields, map[*yaml.Node]bool{})

	at := map[string]*yaml.Node{"": n}
	str := func(name string, check func(string) error) string {
		vn := fields[name]
		if vn == nil || isNull(vn) {
			return ""
		}
		at[name] = vn
		if vn.Kind != yaml.ScalarNode {
			p.problem(vn, d.Key(name), "expected a single value, got %s", describe(vn))
			return ""
		}
		if check != nil {
			if err := check(vn.Value); err != nil {
				p.problem(vn, d.Key(name), "%v", err)
				return ""
			}
		}
		p.o[d.Key(name)] = nodeOrigin(p.file, vn)
		return vn.Value
	}
	d.Name = str("name", optional(checkDeviceName))
	d.Type = str("type", checkOneOf("fence device type", FenceTypeRedfish))
	d.URL = str("url", checkFenceURL)
	d.Username = str("username", checkUsername)
	d.PasswordFile = str("password_file", optional(checkAbsPath))
	d.PasswordEnv = str("password_env", optional(checkEnvName))
	d.CAFile = str("ca_file", optional(checkAbsPath))
	insecure := str("insecure", checkBool)
	d.Insecure = insecure == "true"
	d.SystemID = str("system_id", optional(checkSystemID))
	d.Auth = str("auth", checkOneOf("auth", "", "session", "basic"))
	if len(p.ps) > before {
		return d, at, false // one problem per key is enough
	}

	need := func(key, why string) {
		if at[key] == nil {
			p.problem(n, dkey, "%s is needed: %s", key, why)
		}
	}
	need("type", "redfish (the only type so far)")
	need("url", "the BMC's base URL, e.g. https://10.0.1.11")
	need("username", "a BMC account allowed to power the host off and read its power state")
	switch {
	case d.PasswordFile != "" && d.PasswordEnv != "":
		p.problem(at["password_env"], d.Key("password_env"), "password_file and password_env are both set: give exactly one")
	case d.PasswordFile == "" && d.PasswordEnv == "":
		p.problem(n, dkey, "no password: set password_file (a file only the server's user can read) or password_env (a variable of the server's environment)")
	}
	if d.Insecure && d.CAFile != "" {
		p.problem(at["insecure"], d.Key("insecure"), "ca_file and insecure: true contradict each other: verify the BMC's certificate with ca_file, or (only for a self-signed one you cannot replace) skip verification with insecure: true")
	}
	if len(p.ps) > before {
		return d, at, false
	}
	if d.Name == "" {
		d.Name = fmt.Sprintf("%s-level%d", host, level)
	}
	if d.Auth == "" {
		d.Auth = "session"
	}
	return d, at, true
}

// collect gathers a device mapping's keys into fields, following YAML merge
// keys (<<: *name): the mapping's own keys win over merged ones, and of
// several merged mappings the first wins. seen guards against cycles.
func (p *fenceParser) collect(m *yaml.Node, d FenceDevice, fields map[string]*yaml.Node, seen map[*yaml.Node]bool) {
	if seen[m] {
		return
	}
	seen[m] = true
	firstAt := map[string]int{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		kn, vn := m.Content[i], deref(m.Content[i+1])
		if kn.Kind == yaml.ScalarNode && kn.ShortTag() == "!!merge" {
			merges = append(merges, vn)
			continue
		}
		if kn.Kind != yaml.ScalarNode {
			p.problem(kn, d.Key(""), "a key must be a plain name, not %s", describe(kn))
			continue
		}
		name := kn.Value
		if line, dup := firstAt[name]; dup {
			p.problem(kn, d.Key(name), "duplicate key (first given on line %d)", line)
			continue
		}
		firstAt[name] = kn.Line
		if !knownDeviceKey(name) {
			p.problem(kn, d.Key(""), "%s", unknownDeviceKey(name))
			continue
		}
		if _, set := fields[name]; !set {
			fields[name] = vn
		}
	}
	for _, mv := range merges {
		switch mv.Kind {
		case yaml.MappingNode:
			p.collect(mv, d, fields, seen)
		case yaml.SequenceNode:
			for _, item := range mv.Content {
				if item = deref(item); item.Kind == yaml.MappingNode {
					p.collect(item, d, fields, seen)
				} else {
					p.problem(item, d.Key(""), "<< merges mappings (<<: *name), got %s", describe(item))
				}
			}
		default:
			p.problem(mv, d.Key(""), "<< merges a mapping (<<: *name), got %s", describe(mv))
		}
	}
}

func knownDeviceKey(k string) bool {
	for _, x := range fenceDeviceKeys {
		if k == x {
			return true
		}
	}
	return false
}

func unknownDeviceKey(k string) string {
	msg := fmt.Sprintf("unknown key %q", k)
	if k == "password" {
		return msg + ": a password is never written in the config file; put it in a file named by password_file, or in the server's environment named by password_env"
	}
	best, bestD := "", 3
	for _, c := range fenceDeviceKeys {
		if d := spelling.Distance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" {
		return fmt.Sprintf("%s (did you mean %q?)", msg, best)
	}
	return fmt.Sprintf("%s: a fence device has the keys %s", msg, strings.Join(fenceDeviceKeys, ", "))
}

// Value rules of fence devices.

func checkDeviceName(s string) error {
	if len(s) > 253 {
		return fmt.Errorf("fence device name %q is %d characters long; at most 253 are allowed", s, len(s))
	}
	for _, label := range strings.Split(s, ".") {
		if err := api.ValidateName("fence device", label); err != nil {
			return fmt.Errorf("fence device name %q is not a DNS name: use lowercase letters, digits, '-' and '.', e.g. host-1-bmc", s)
		}
	}
	return nil
}

func checkFenceURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not a URL like https://10.0.1.11", s)
	}
	if u.Scheme != "https" {
		return fmt.Errorf("%q: the scheme must be https: over plain http the BMC password would cross the network in clear", s)
	}
	if u.User != nil {
		return fmt.Errorf("%q: put the user in username and the password in password_file or password_env, not in the URL", s)
	}
	if u.Path == "/redfish/v1" || u.Path == "/redfish/v1/" {
		return fmt.Errorf("%q: give the BMC's base URL, without /redfish/v1", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: give only https://host[:port]", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
		}
	}
	return nil
}

func checkUsername(s string) error {
	if s == "" {
		return fmt.Errorf("the user name is empty")
	}
	return checkNoControl(s)
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func checkEnvName(s string) error {
	if !envName.MatchString(s) {
		return fmt.Errorf("%q is not an environment variable name (letters, digits and '_', not starting with a digit); it names the variable, it is not the password", s)
	}
	return nil
}

func checkBool(s string) error {
	if s != "true" && s != "false" {
		return fmt.Errorf("%q is not true or false", s)
	}
	return nil
}

func checkSystemID(s string) error {
	if strings.Contains(s, "/") {
		return fmt.Errorf("system ID %q: give the system's Id (e.g. 1 or System.Embedded.1), not its URI", s)
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("system ID %q has leading or trailing spaces", s)
	}
	return checkNoControl(s)
}

// dedupe drops repeated problems at the same place (a merged mapping is
// checked once per device that merges it).
func dedupe(ps []Problem) []Problem {
	type k struct {
		o   Origin
		msg string
	}
	seen := map[k]bool{}
	out := ps[:0:0]
	for _, p := range ps {
		if seen[k{p.Origin, p.Msg}] {
			continue
		}
		seen[k{p.Origin, p.Msg}] = true
		out = append(out, p)
	}
	return out
}
