package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// valueOf reads one setting from a *Server or *Agent by key.
func valueOf(cfg any, key string) any {
	var e Etcd
	switch c := cfg.(type) {
	case *Server:
		e = c.Etcd
		switch key {
		case "name":
			return c.Name
		case "listen":
			return c.Listen
		case "auth.required":
			return c.AuthRequired
		case "tls.cert_file":
			return c.TLSCertFile
		case "tls.key_file":
			return c.TLSKeyFile
		case "agents.ca_file":
			return c.AgentsCAFile
		case "log_level":
			return c.LogLevel
		case "session_ttl":
			return c.SessionTTL
		case "fencing.device_timeout":
			return c.Fencing.DeviceTimeout
		case "fencing.retry_interval":
			return c.Fencing.RetryInterval
		case "fencing.check_interval":
			return c.Fencing.CheckInterval
		case "fencing.suspect_grace":
			return c.Fencing.SuspectGrace
		case "fencing.hosts":
			return c.Fencing.Hosts
		}
	case *Agent:
		e = c.Etcd
		switch key {
		case "name":
			return c.Name
		case "log_level":
			return c.LogLevel
		case "session_ttl":
			return c.SessionTTL
		case "libvirt.uri":
			return c.LibvirtURI
		case "libvirt.domain_type":
			return c.DomainType
		case "self_fence_after":
			return c.SelfFenceAfter
		case "watchdog_device":
			return c.WatchdogDevice
		case "libvirt.console_log_dir":
			return c.ConsoleLogDir
		case "containerd.address":
			return c.ContainerdAddress
		case "containerd.state_dir":
			return c.ContainerdStateDir
		case "labels":
			return c.Labels
		case "http_listen":
			return c.HTTPListen
		case "http_tls.cert_file":
			return c.HTTPTLSCertFile
		case "http_tls.key_file":
			return c.HTTPTLSKeyFile
		case "http_insecure":
			return c.HTTPInsecure
		case "networks":
			return c.Networks
		case "netns":
			return c.Netns
		case "cpus":
			return c.CPUs
		case "memory":
			return c.Memory
		case "bmc.url":
			return c.BMC.URL
		case "bmc.username":
			return c.BMC.Username
		case "bmc.password_file":
			return c.BMC.PasswordFile
		case "bmc.insecure":
			return c.BMC.Insecure
		}
	}
	switch key {
	case "etcd.endpoints":
		return e.Endpoints
	case "etcd.ca_file":
		return e.CAFile
	case "etcd.cert_file":
		return e.CertFile
	case "etcd.key_file":
		return e.KeyFile
	case "etcd.dial_timeout":
		return e.DialTimeout
	}
	panic("valueOf: no setting " + key)
}

func load(kind Kind, in Inputs) (any, error) {
	if kind == KindAgent {
		return LoadAgent(in)
	}
	return LoadServer(in)
}

func defaults(kind Kind) any {
	if kind == KindAgent {
		return DefaultAgent()
	}
	return DefaultServer()
}

func origin(cfg any, key string) Origin {
	if a, ok := cfg.(*Agent); ok {
		return a.Origin(key)
	}
	return cfg.(*Server).Origin(key)
}

func envMap(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("no error, want problems")
	}
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %T %q is not a *config.Error", err, err)
	}
	return ce.Problems
}

// yamlFor renders key: value, nesting dotted keys.
func yamlFor(key, val string) string {
	parts := strings.Split(key, ".")
	var b strings.Builder
	for i, p := range parts {
		b.WriteString(strings.Repeat("  ", i) + p + ":")
		if i == len(parts)-1 {
			b.WriteString(" " + val)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// sample is three valid values of one setting: from the file, the
// environment and a flag.
type sample struct {
	key              string
	file             string // YAML value text
	env              string
	flag             []string
	fileV, envV, flV any
	// with are flags other settings need for this one to be valid.
	with map[string][]string
	// coupled: the settings in with are invalid without this one.
	coupled bool
}

func samples(kind Kind) []sample {
	s := []sample{
		{key: "name", file: "f-name", env: "e-name", flag: []string{"x-name"}, fileV: "f-name", envV: "e-name", flV: "x-name"},
		{key: "log_level", file: "debug", env: "warn", flag: []string{"error"}, fileV: "debug", envV: "warn", flV: "error"},
		{key: "session_ttl", file: "2s", env: "3s", flag: []string{"4s"}, fileV: 2 * time.Second, envV: 3 * time.Second, flV: 4 * time.Second},
		{key: "etcd.endpoints", file: "\n    - http://f1:2379\n    - http://f2:2379", env: "http://e1:2379, http://e2:2379",
			flag:  []string{"http://x1:2379", "http://x2:2379,http://x3:2379"},
			fileV: []string{"http://f1:2379", "http://f2:2379"}, envV: []string{"http://e1:2379", "http://e2:2379"},
			flV: []string{"http://x1:2379", "http://x2:2379", "http://x3:2379"}},
		{key: "etcd.ca_file", file: "/f/ca.pem", env: "/e/ca.pem", flag: []string{"/x/ca.pem"}, fileV: "/f/ca.pem", envV: "/e/ca.pem", flV: "/x/ca.pem",
			with: map[string][]string{"etcd": {"https://c:2379"}}},
		{key: "etcd.cert_file", file: "/f/c.pem", env: "/e/c.pem", flag: []string{"/x/c.pem"}, fileV: "/f/c.pem", envV: "/e/c.pem", flV: "/x/c.pem",
			with: map[string][]string{"etcd": {"https://c:2379"}, "etcd-key-file": {"/k.pem"}}, coupled: true},
		{key: "etcd.key_file", file: "/f/k.pem", env: "/e/k.pem", flag: []string{"/x/k.pem"}, fileV: "/f/k.pem", envV: "/e/k.pem", flV: "/x/k.pem",
			with: map[string][]string{"etcd": {"https://c:2379"}, "etcd-cert-file": {"/c.pem"}}, coupled: true},
		{key: "etcd.dial_timeout", file: "1s", env: "2s", flag: []string{"3s"}, fileV: time.Second, envV: 2 * time.Second, flV: 3 * time.Second},
	}
	if kind == KindServer {
		return append(s,
			sample{key: "listen", file: "0.0.0.0:7001", env: "0.0.0.0:7002", flag: []string{"[::1]:7003"}, fileV: "0.0.0.0:7001", envV: "0.0.0.0:7002", flV: "[::1]:7003"},
			sample{key: "auth.required", file: "false", env: "true", flag: []string{"false"}, fileV: false, envV: true, flV: false},
			sample{key: "tls.cert_file", file: "/f/api.pem", env: "/e/api.pem", flag: []string{""}, fileV: "/f/api.pem", envV: "/e/api.pem", flV: ""},
			sample{key: "tls.key_file", file: "/f/api-key.pem", env: "/e/api-key.pem", flag: []string{""}, fileV: "/f/api-key.pem", envV: "/e/api-key.pem", flV: ""},
			sample{key: "agents.ca_file", file: "/f/ca.pem", env: "/e/ca.pem", flag: []string{"/x/ca.pem"}, fileV: "/f/ca.pem", envV: "/e/ca.pem", flV: "/x/ca.pem"},
			sample{key: "fencing.device_timeout", file: "30s", env: "45s", flag: []string{"1m"}, fileV: 30 * time.Second, envV: 45 * time.Second, flV: time.Minute},
			sample{key: "fencing.retry_interval", file: "2s", env: "10s", flag: []string{"1s"}, fileV: 2 * time.Second, envV: 10 * time.Second, flV: time.Second},
			sample{key: "fencing.check_interval", file: "1m", env: "10s", flag: []string{"1h"}, fileV: time.Minute, envV: 10 * time.Second, flV: time.Hour},
			sample{key: "fencing.suspect_grace", file: "2s", env: "500ms", flag: []string{"0s"}, fileV: 2 * time.Second, envV: 500 * time.Millisecond, flV: time.Duration(0)},
		)
	}
	bmc := func(except string) map[string][]string {
		m := map[string][]string{"bmc-url": {"https://bmc"}, "bmc-username": {"u"}, "bmc-password-file": {"/p"}}
		delete(m, except)
		return m
	}
	return append(s,
		sample{key: "libvirt.uri", file: "test:///default", env: "qemu:///session", flag: []string{"qemu+ssh://h/system"},
			fileV: "test:///default", envV: "qemu:///session", flV: "qemu+ssh://h/system"},
		sample{key: "libvirt.domain_type", file: "kvm", env: "qemu", flag: []string{"test"}, fileV: "kvm", envV: "qemu", flV: "test"},
		sample{key: "labels", file: "\n  rack: r1\n  zone: a", env: "rack=r2,zone=b", flag: []string{"rack=r3"},
			fileV: map[string]string{"rack": "r1", "zone": "a"}, envV: map[string]string{"rack": "r2", "zone": "b"}, flV: map[string]string{"rack": "r3"}},
		sample{key: "self_fence_after", file: "2s", env: "1500ms", flag: []string{"1s"}, fileV: 2 * time.Second, envV: 1500 * time.Millisecond, flV: time.Second},
		sample{key: "watchdog_device", file: "/dev/watchdog", env: "/dev/watchdog1", flag: []string{""}, fileV: "/dev/watchdog", envV: "/dev/watchdog1", flV: ""},
		sample{key: "libvirt.console_log_dir", file: "/f/console", env: "/e/console", flag: []string{""}, fileV: "/f/console", envV: "/e/console", flV: ""},
		sample{key: "containerd.address", file: "/f/c.sock", env: "/e/c.sock", flag: []string{""}, fileV: "/f/c.sock", envV: "/e/c.sock", flV: ""},
		sample{key: "containerd.state_dir", file: "/f/state", env: "/e/state", flag: []string{"/x/state"}, fileV: "/f/state", envV: "/e/state", flV: "/x/state"},
		sample{key: "http_listen", file: "127.0.0.1:7371", env: "127.0.0.1:7372", flag: []string{""}, fileV: "127.0.0.1:7371", envV: "127.0.0.1:7372", flV: ""},
		sample{key: "http_tls.cert_file", file: "/f/a.pem", env: "/e/a.pem", flag: []string{"/x/a.pem"}, fileV: "/f/a.pem", envV: "/e/a.pem", flV: "/x/a.pem",
			with: map[string][]string{"http-tls-key-file": {"/k.pem"}}, coupled: true},
		sample{key: "http_tls.key_file", file: "/f/a-key.pem", env: "/e/a-key.pem", flag: []string{"/x/a-key.pem"}, fileV: "/f/a-key.pem", envV: "/e/a-key.pem", flV: "/x/a-key.pem",
			with: map[string][]string{"http-tls-cert-file": {"/a.pem"}}, coupled: true},
		sample{key: "http_insecure", file: "true", env: "false", flag: []string{"true"}, fileV: true, envV: false, flV: true},
		sample{key: "networks", file: "\n  public: eth1", env: "public=eth2", flag: []string{"public=eth3"},
			fileV: map[string]string{"public": "eth1"}, envV: map[string]string{"public": "eth2"}, flV: map[string]string{"public": "eth3"}},
		sample{key: "netns", file: "h1", env: "h2", flag: []string{""}, fileV: "h1", envV: "h2", flV: ""},
		sample{key: "cpus", file: "8", env: "16", flag: []string{"32"}, fileV: 8, envV: 16, flV: 32},
		sample{key: "memory", file: "1GiB", env: "2GiB", flag: []string{"0"}, fileV: api.GiB, envV: 2 * api.GiB, flV: api.ByteSize(0)},
		sample{key: "bmc.url", file: "https://10.0.1.11", env: "https://bmc-e:8443", flag: []string{"http://127.0.0.1:8000"},
			fileV: "https://10.0.1.11", envV: "https://bmc-e:8443", flV: "http://127.0.0.1:8000", with: bmc("bmc-url"), coupled: true},
		sample{key: "bmc.username", file: "fence", env: "admin", flag: []string{"root"}, fileV: "fence", envV: "admin", flV: "root", with: bmc("bmc-username"), coupled: true},
		sample{key: "bmc.password_file", file: "/f/pw", env: "/e/pw", flag: []string{"/x/pw"}, fileV: "/f/pw", envV: "/e/pw", flV: "/x/pw", with: bmc("bmc-password-file"), coupled: true},
		sample{key: "bmc.insecure", file: "true", env: "false", flag: []string{"true"}, fileV: true, envV: false, flV: true, with: bmc("")},
	)
}

func TestPrecedence(t *testing.T) {
	for _, kind := range []Kind{KindServer, KindAgent} {
		covered := map[string]bool{}
		for _, s := range samples(kind) {
			covered[s.key] = true
			t.Run(string(kind)+"/"+s.key, func(t *testing.T) {
				st, ok := lookupSetting(kind, s.key)
				if !ok {
					t.Fatalf("no setting %s", s.key)
				}
				dir := t.TempDir()
				file := writeFile(t, dir, "c.yaml", "kind: "+string(kind)+"\n"+yamlFor(s.key, s.file))
				missing := filepath.Join(dir, "missing.yaml")
				flags := func(own bool) map[string][]string {
					m := map[string][]string{}
					for k, v := range s.with {
						m[k] = v
					}
					if own {
						m[st.Flag] = s.flag
					}
					return m
				}
				env := envMap(map[string]string{st.Env: s.env})
				steps := []struct {
					name string
					in   Inputs
					want any
					src  Source
				}{
					{"default", Inputs{DefaultPath: missing, Flags: flags(false)}, valueOf(defaults(kind), s.key), FromDefault},
					{"file", Inputs{Path: file, Flags: flags(false)}, s.fileV, FromFile},
					{"env over file", Inputs{Path: file, Env: env, Flags: flags(false)}, s.envV, FromEnv},
					{"flag over env and file", Inputs{Path: file, Env: env, Flags: flags(true)}, s.flV, FromFlag},
					{"flag over env", Inputs{DefaultPath: missing, Env: env, Flags: flags(true)}, s.flV, FromFlag},
					{"env over default", Inputs{DefaultPath: missing, Env: env, Flags: flags(false)}, s.envV, FromEnv},
				}
				for _, step := range steps {
					if step.src == FromDefault && s.coupled {
						continue // its companions are invalid without it
					}
					cfg, err := load(kind, step.in)
					if err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
					if got := valueOf(cfg, s.key); !reflect.DeepEqual(got, step.want) {
						t.Errorf("%s: %s = %#v, want %#v", step.name, s.key, got, step.want)
					}
					o := origin(cfg, s.key)
					if o.Source != step.src {
						t.Errorf("%s: %s comes from %s, want %s", step.name, s.key, o.Source, step.src)
					}
					switch step.src {
					case FromFile:
						if o.File != file || o.Line < 2 {
							t.Errorf("%s: origin %s, want %s at line 2 or later", step.name, o, file)
						}
					case FromEnv:
						if o.String() != "$"+st.Env {
							t.Errorf("%s: origin %s, want $%s", step.name, o, st.Env)
						}
					case FromFlag:
						if o.String() != "--"+st.Flag {
							t.Errorf("%s: origin %s, want --%s", step.name, o, st.Flag)
						}
					}
				}
			})
		}
		for _, s := range Settings(kind) {
			if s.FileOnly {
				if s.Env != "" || s.Flag != "" {
					t.Errorf("%s setting %s is file-only but has a variable or flag", kind, s.Key)
				}
				continue // TestFencingHostsFileOnly
			}
			if !covered[s.Key] {
				t.Errorf("%s setting %s has no precedence sample", kind, s.Key)
			}
		}
	}
}

func TestEmptyEnvIsUnset(t *testing.T) {
	cfg, err := LoadServer(Inputs{DefaultPath: "/nonexistent/x.yaml", Env: envMap(map[string]string{"BULWARK_LISTEN": "", "BULWARK_ETCD": ""})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7370" || cfg.Origin("listen").Source != FromDefault {
		t.Errorf("listen = %s from %s, want the default", cfg.Listen, cfg.Origin("listen"))
	}
}

func TestNullValueKeepsDefault(t *testing.T) {
	p := writeFile(t, t.TempDir(), "s.yaml", "kind: server\nlisten:\netcd:\n  endpoints: ~\n")
	cfg, err := LoadServer(Inputs{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, DefaultServer()) {
		t.Errorf("got %+v, want the defaults", cfg)
	}
}

func TestSettingDefaultsMatch(t *testing.T) {
	for _, kind := range []Kind{KindServer, KindAgent} {
		for _, s := range schema(kind) {
			if s.Default == "" {
				if v := reflect.ValueOf(valueOf(defaults(kind), s.Key)); !v.IsZero() && v.Kind() != reflect.Map {
					t.Errorf("%s %s: documented default is empty, real one is %v", kind, s.Key, v)
				}
				continue
			}
			cfg := defaults(kind)
			before := valueOf(cfg, s.Key)
			if err := applyStrings(s, cfg, []string{s.Default}); err != nil {
				t.Errorf("%s %s: documented default %q: %v", kind, s.Key, s.Default, err)
				continue
			}
			if got := valueOf(cfg, s.Key); !reflect.DeepEqual(got, before) {
				t.Errorf("%s %s: documented default %q gives %#v, the real default is %#v", kind, s.Key, s.Default, got, before)
			}
		}
	}
}

// invalid is one invalid value, tried from the file, the environment and
// a flag.
type invalid struct {
	kind Kind
	key  string
	val  string // for the environment and a flag
	yaml string // YAML value text; empty: val, quoted
	want string // in the message
	// fileWant replaces want for the file, when it differs.
	fileWant string
	// only limits the sources tried: "file", "env+flag".
	only string
}

func invalidValues() []invalid {
	var out []invalid
	common := []invalid{
		{key: "log_level", val: "loud", want: `log level "loud": use debug, info, warn or error`},
		{key: "log_level", val: "INFO", want: `log level "INFO"`},
		{key: "session_ttl", val: "5", want: `"5" is not a duration`},
		{key: "session_ttl", val: "500ms", want: "500ms is out of range: use 1s to 1h"},
		{key: "session_ttl", val: "2h", want: "2h is out of range"},
		{key: "session_ttl", val: "-5s", want: "-5s is out of range"},
		{key: "etcd.endpoints", val: "", yaml: `""`, want: "an empty endpoint", only: "file"},
		{key: "etcd.endpoints", val: "http://a:2379,", want: "an empty endpoint (stray comma?)"},
		{key: "etcd.endpoints", val: "x", yaml: "[]", want: "at least one etcd endpoint is needed", only: "file"},
		{key: "etcd.endpoints", val: "10.0.0.1:2379", want: `endpoint "10.0.0.1:2379" is not a URL`},
		{key: "etcd.endpoints", val: "ftp://a:2379", want: "the scheme must be http or https"},
		{key: "etcd.endpoints", val: "http://a", want: "has no port (etcd's client port is usually 2379)"},
		{key: "etcd.endpoints", val: "http://a:0", want: `port "0" is not a number from 1 to 65535`},
		{key: "etcd.endpoints", val: "http://a:99999", want: `port "99999" is not a number from 1 to 65535`},
		{key: "etcd.endpoints", val: "http://a:2379/v3", want: "give only scheme://host:port"},
		{key: "etcd.endpoints", val: "http://u:p@a:2379", want: "give only scheme://host:port"},
		{key: "etcd.endpoints", val: "http://a:2379,http://a:2379", want: `endpoint "http://a:2379" is listed twice`},
		{key: "etcd.endpoints", val: "http://a:2379,https://b:2379", want: "endpoints mix http and https"},
		{key: "etcd.ca_file", val: "ca.pem", want: `"ca.pem" is not an absolute path`},
		{key: "etcd.cert_file", val: "tls/c.pem", want: `"tls/c.pem" is not an absolute path`},
		{key: "etcd.key_file", val: "./k.pem", want: `"./k.pem" is not an absolute path`},
		{key: "etcd.dial_timeout", val: "0s", want: "0s is out of range: use 100ms to 1m"},
		{key: "etcd.dial_timeout", val: "2m", want: "2m is out of range"},
		{key: "etcd.dial_timeout", val: "forever", want: `"forever" is not a duration`},
	}
	for _, kind := range []Kind{KindServer, KindAgent} {
		for _, c := range common {
			c.kind = kind
			out = append(out, c)
		}
	}
	out = append(out,
		invalid{kind: KindServer, key: "name", val: "Host_1", want: `server name "Host_1" is not a DNS label`},
		invalid{kind: KindServer, key: "name", val: strings.Repeat("a", 64), want: "at most 63 are allowed"},
		invalid{kind: KindServer, key: "listen", val: "7370", want: `"7370" is not host:port`},
		invalid{kind: KindServer, key: "listen", val: "", yaml: `""`, want: `"" is not host:port`, only: "file"},
		invalid{kind: KindServer, key: "listen", val: "0.0.0.0:http", want: `port "http" is not a number from 0 to 65535`},
		invalid{kind: KindServer, key: "listen", val: "0.0.0.0:70000", want: `port "70000"`},
		invalid{kind: KindServer, key: "listen", val: "a b:1", want: `"a b" is not a host name or address`},
		invalid{kind: KindServer, key: "fencing.device_timeout", val: "20", want: `"20" is not a duration`},
		invalid{kind: KindServer, key: "fencing.device_timeout", val: "500ms", want: "500ms is out of range: use 1s to 10m"},
		invalid{kind: KindServer, key: "fencing.device_timeout", val: "11m", want: "11m is out of range"},
		invalid{kind: KindServer, key: "fencing.retry_interval", val: "0s", want: "0s is out of range: use 1s to 10m"},
		invalid{kind: KindServer, key: "fencing.retry_interval", val: "soon", want: `"soon" is not a duration`},
		invalid{kind: KindServer, key: "fencing.check_interval", val: "100ms", want: "100ms is out of range: use 1s to 1h"},
		invalid{kind: KindServer, key: "fencing.check_interval", val: "2h", want: "2h is out of range"},
		invalid{kind: KindServer, key: "fencing.suspect_grace", val: "-1s", want: "-1s is out of range: use 0s to 10m"},
		invalid{kind: KindServer, key: "fencing.suspect_grace", val: "1h", want: "1h is out of range"},

		invalid{kind: KindAgent, key: "name", val: "-host", want: `host name "-host" is not a DNS label`},
		invalid{kind: KindAgent, key: "libvirt.uri", val: "not a uri", want: "is not a libvirt URI such as qemu:///system"},
		invalid{kind: KindAgent, key: "libvirt.uri", val: "xen:///system", want: `libvirt driver "xen" is not supported`},
		invalid{kind: KindAgent, key: "libvirt.uri", val: "", yaml: `""`, want: "is not a libvirt URI", only: "file"},
		invalid{kind: KindAgent, key: "libvirt.domain_type", val: "hvm", want: `domain type "hvm": use kvm, qemu or test`},
		invalid{kind: KindAgent, key: "labels", val: "rack", want: `label "rack": expected key=value`, only: "env+flag"},
		invalid{kind: KindAgent, key: "labels", val: "bad key!=v", yaml: "{'bad key!': v}", want: `label key "bad key!"`},
		invalid{kind: KindAgent, key: "labels", val: "rack=a/b", yaml: "{rack: a/b}", want: `label rack="a/b"`},
		invalid{kind: KindAgent, key: "labels", val: "rack=a,rack=b", want: `label "rack" is given twice`, only: "env+flag"},
		invalid{kind: KindAgent, key: "http_listen", val: "nope", want: `"nope" is not host:port`},
		invalid{kind: KindAgent, key: "cpus", val: "many", want: `"many" is not a whole number`},
		invalid{kind: KindAgent, key: "cpus", val: "-1", want: "-1 is out of range: use 0 to 4096"},
		invalid{kind: KindAgent, key: "cpus", val: "5000", want: "5000 is out of range"},
		invalid{kind: KindAgent, key: "cpus", val: "1.5", want: `"1.5" is not a whole number`},
		invalid{kind: KindAgent, key: "memory", val: "lots", want: `size "lots": must start with a number`},
		invalid{kind: KindAgent, key: "memory", val: "64XB", want: `unknown unit "XB"`},
		invalid{kind: KindAgent, key: "memory", val: "512KiB", want: `size "512KiB" is under 1MiB`},
		invalid{kind: KindAgent, key: "memory", val: "-1GiB", want: "must start with a number"},
		invalid{kind: KindAgent, key: "bmc.url", val: "bmc.example", want: `"bmc.example" is not a URL like https://10.0.1.11`},
		invalid{kind: KindAgent, key: "bmc.url", val: "ftp://bmc", want: "the scheme must be https (or http for a lab emulator)"},
		invalid{kind: KindAgent, key: "bmc.url", val: "https://root:calvin@bmc", want: "put the user in bmc.username"},
		invalid{kind: KindAgent, key: "bmc.url", val: "https://bmc/?x=1", want: "give only scheme://host[:port]"},
		invalid{kind: KindAgent, key: "bmc.url", val: "https://bmc:0", want: `port "0"`},
		invalid{kind: KindAgent, key: "bmc.username", val: "a\tb", want: "contains a control character"},
		invalid{kind: KindAgent, key: "bmc.password_file", val: "pw.txt", want: `"pw.txt" is not an absolute path`},
		invalid{kind: KindAgent, key: "bmc.insecure", val: "yes", want: `"yes" is not true or false`},
		invalid{kind: KindAgent, key: "bmc.insecure", val: "maybe", want: `"maybe" is not true or false`},
	)
	return out
}

func TestInvalidValues(t *testing.T) {
	for i, c := range invalidValues() {
		t.Run(fmt.Sprintf("%s/%s/%d", c.kind, c.key, i), func(t *testing.T) {
			st, ok := lookupSetting(c.kind, c.key)
			if !ok {
				t.Fatalf("no setting %s", c.key)
			}
			dir := t.TempDir()
			missing := filepath.Join(dir, "missing.yaml")
			if c.only != "env+flag" {
				y := c.yaml
				if y == "" {
					y = strconv.Quote(c.val)
				}
				p := writeFile(t, dir, "c.yaml", "kind: "+string(c.kind)+"\n"+yamlFor(c.key, y))
				_, err := load(c.kind, Inputs{Path: p})
				ps := problemsOf(t, err)
				want := c.want
				if c.fileWant != "" {
					want = c.fileWant
				}
				line := 1 + len(strings.Split(c.key, "."))
				if len(ps) != 1 || ps[0].Key != c.key || ps[0].Origin.File != p || ps[0].Origin.Line != line || !strings.Contains(ps[0].Msg, want) {
					t.Errorf("file: got %q, want one problem with %s at %s:%d saying %q", err, c.key, p, line, want)
				}
				if !strings.HasPrefix(err.Error(), fmt.Sprintf("%s:%d:", p, line)) {
					t.Errorf("file: message %q does not start with file:line", err)
				}
			}
			if c.only == "file" {
				return
			}
			_, err := load(c.kind, Inputs{DefaultPath: missing, Env: envMap(map[string]string{st.Env: c.val})})
			ps := problemsOf(t, err)
			if len(ps) != 1 || ps[0].Origin.Source != FromEnv || ps[0].Origin.Name != st.Env || !strings.Contains(ps[0].Msg, c.want) {
				t.Errorf("env: got %q, want one problem from $%s saying %q", err, st.Env, c.want)
			}
			if want := fmt.Sprintf("$%s (%s): ", st.Env, c.key); !strings.HasPrefix(err.Error(), want) {
				t.Errorf("env: message %q does not start with %q", err, want)
			}
			_, err = load(c.kind, Inputs{DefaultPath: missing, Flags: map[string][]string{st.Flag: {c.val}}})
			ps = problemsOf(t, err)
			if len(ps) != 1 || ps[0].Origin.Source != FromFlag || ps[0].Origin.Name != st.Flag || !strings.Contains(ps[0].Msg, c.want) {
				t.Errorf("flag: got %q, want one problem from --%s saying %q", err, st.Flag, c.want)
			}
			if !strings.HasPrefix(err.Error(), "--"+st.Flag+": ") {
				t.Errorf("flag: message %q does not start with --%s", err, st.Flag)
			}
		})
	}
}

func TestInvalidShapes(t *testing.T) {
	cases := []struct {
		kind      Kind
		body      string
		line, col int
		key, want string
	}{
		{KindServer, "listen: [a, b]", 2, 9, "listen", "expected a single value, got a list"},
		{KindServer, "listen: {a: b}", 2, 9, "listen", "expected a single value, got a mapping"},
		{KindServer, "etcd: http://a:2379", 2, 7, "etcd", "expected a mapping of etcd settings"},
		{KindServer, "etcd:\n  endpoints: {a: b}", 3, 14, "etcd.endpoints", "expected a list, got a mapping"},
		{KindServer, "etcd:\n  endpoints:\n    - {a: b}", 4, 7, "etcd.endpoints", "got an item that is a mapping"},
		{KindServer, "etcd:\n  endpoints:\n    - ~", 4, 7, "etcd.endpoints", "got an item that is no value"},
		{KindAgent, "labels: [rack=r1]", 2, 9, "labels", "expected a mapping (key: value on separate lines), got a list"},
		{KindAgent, "labels:\n  rack: [a]", 3, 9, "labels", "expected key: value with plain values"},
		{KindAgent, "bmc: true", 2, 6, "bmc", "expected a mapping of bmc settings"},
		{KindAgent, "libvirt: [qemu]", 2, 10, "libvirt", "expected a mapping of libvirt settings, got a list"},
		{KindAgent, "cpus: 8\ncpus: 9", 3, 1, "cpus", "duplicate key (first given on line 2)"},
		{KindAgent, "[a]: 1", 2, 1, "", "a key must be a plain name, not a list"},
	}
	for _, c := range cases {
		p := writeFile(t, t.TempDir(), "c.yaml", "kind: "+string(c.kind)+"\n"+c.body+"\n")
		_, err := load(c.kind, Inputs{Path: p})
		ps := problemsOf(t, err)
		want := Problem{Origin: Origin{Source: FromFile, File: p, Line: c.line, Column: c.col}, Key: c.key}
		if len(ps) != 1 || ps[0].Origin != want.Origin || ps[0].Key != c.key || !strings.Contains(ps[0].Msg, c.want) {
			t.Errorf("%q: got %q, want %s: %s: ...%s", c.body, err, want.Origin, c.key, c.want)
		}
	}
}

func TestCrossChecks(t *testing.T) {
	cases := []struct {
		kind     Kind
		body     string
		line     int
		key      string
		want     string
		flagsToo map[string][]string
	}{
		{KindServer, "etcd:\n  endpoints: [https://a:2379]\n  cert_file: /c.pem", 4, "etcd.cert_file", "etcd.key_file is needed with etcd.cert_file", nil},
		{KindServer, "etcd:\n  endpoints: [https://a:2379]\n  key_file: /k.pem", 4, "etcd.key_file", "etcd.cert_file is needed with etcd.key_file", nil},
		{KindAgent, "etcd:\n  endpoints: [http://a:2379]\n  ca_file: /ca.pem", 3, "etcd.endpoints", `endpoint "http://a:2379" is plain http but etcd TLS files are set`, nil},
		{KindServer, "etcd:\n  ca_file: /ca.pem", 0, "etcd.endpoints", `endpoint "http://127.0.0.1:2379" is plain http`, nil},
		{KindAgent, "bmc:\n  url: https://bmc\n  password_file: /p", 3, "bmc.url", "bmc.username is needed with bmc.url", nil},
		{KindAgent, "bmc:\n  url: https://bmc\n  username: u", 3, "bmc.url", "bmc.password_file is needed with bmc.url", nil},
		{KindAgent, "bmc:\n  username: u", 3, "bmc.username", "bmc.username is set but bmc.url is not", nil},
		{KindAgent, "bmc:\n  password_file: /p", 3, "bmc.password_file", "bmc.password_file is set but bmc.url is not", nil},
		{KindAgent, "bmc:\n  insecure: true", 3, "bmc.insecure", "bmc.insecure is set but bmc.url is not", nil},
	}
	for _, c := range cases {
		p := writeFile(t, t.TempDir(), "c.yaml", "kind: "+string(c.kind)+"\n"+c.body+"\n")
		_, err := load(c.kind, Inputs{Path: p})
		ps := problemsOf(t, err)
		if len(ps) != 1 || ps[0].Key != c.key || ps[0].Origin.Line != c.line || !strings.Contains(ps[0].Msg, c.want) {
			t.Errorf("%q: got %q, want %s at line %d saying %q", c.body, err, c.key, c.line, c.want)
		}
	}
	// A flag can complete what the file lacks: the rules apply to the
	// merged configuration.
	p := writeFile(t, t.TempDir(), "c.yaml", "kind: agent\nbmc:\n  url: https://bmc\n  username: u\n")
	if _, err := LoadAgent(Inputs{Path: p, Flags: map[string][]string{"bmc-password-file": {"/p"}}}); err != nil {
		t.Errorf("file + flag: %v", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	body := `kind: server
listn: 0.0.0.0:7370
etcd:
  endpoints: [http://a:2379]
  cafile: /ca.pem
  bogus: 1
ca_file: /x
bmc:
  url: https://bmc
Name: x
`
	p := writeFile(t, t.TempDir(), "server.yaml", body)
	_, err := LoadServer(Inputs{Path: p})
	ps := problemsOf(t, err)
	want := []string{
		p + `:2:1: unknown key "listn" (did you mean "listen"?)`,
		p + `:5:3: unknown key "etcd.cafile" (did you mean "etcd.ca_file"?)`,
		p + `:6:3: unknown key "etcd.bogus"`,
		p + `:7:1: unknown key "ca_file" (did you mean "etcd.ca_file"?)`,
		p + `:8:1: unknown key "bmc": that is an agent setting; this is a server config (and a deprecated one: give each host's fence devices here, under fencing.hosts)`,
		p + `:10:1: unknown key "Name" (did you mean "name"?)`,
	}
	var got []string
	for _, pr := range ps {
		got = append(got, pr.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The same in an agent file, with the server-only key.
	p = writeFile(t, t.TempDir(), "agent.yaml", "kind: agent\nlibvirt:\n  url: qemu:///system\nlisten: 1.2.3.4:1\n")
	_, err = LoadAgent(Inputs{Path: p})
	want = []string{
		p + `:3:3: unknown key "libvirt.url" (did you mean "libvirt.uri"?)`,
		p + `:4:1: unknown key "listen": that is a server setting; this is an agent config`,
	}
	got = nil
	for _, pr := range problemsOf(t, err) {
		got = append(got, pr.Error())
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestEveryProblemReported(t *testing.T) {
	p := writeFile(t, t.TempDir(), "s.yaml", "kind: server\nlisten: x\nsession_ttl: 0s\nfoo: 1\n")
	_, err := LoadServer(Inputs{Path: p, Env: envMap(map[string]string{"BULWARK_ETCD": "ftp://a:1"}),
		Flags: map[string][]string{"log-level": {"chatty"}}})
	ps := problemsOf(t, err)
	if len(ps) != 5 {
		t.Fatalf("got %d problems, want 5 (3 in the file, 1 env, 1 flag):\n%v", len(ps), err)
	}
	lines := strings.Split(err.Error(), "\n")
	for i, prefix := range []string{p + ":2:9: listen:", p + ":3:14: session_ttl:", p + ":4:1: unknown key", "$BULWARK_ETCD (etcd.endpoints):", "--log-level:"} {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d %q, want it to start with %q", i, lines[i], prefix)
		}
	}
}

func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.yaml")
	// The default file may be missing: defaults apply.
	for _, kind := range []Kind{KindServer, KindAgent} {
		cfg, err := load(kind, Inputs{DefaultPath: missing})
		if err != nil {
			t.Fatalf("%s, missing default file: %v", kind, err)
		}
		if !reflect.DeepEqual(cfg, defaults(kind)) {
			t.Errorf("%s, missing default file: %+v, want the defaults", kind, cfg)
		}
		// A file named explicitly must exist.
		_, err = load(kind, Inputs{Path: missing})
		ps := problemsOf(t, err)
		if len(ps) != 1 || err.Error() != missing+": config file does not exist" {
			t.Errorf("%s, missing named file: %q", kind, err)
		}
		// ... and the other sources are still checked and reported.
		_, err = load(kind, Inputs{Path: missing, Flags: map[string][]string{"session-ttl": {"x"}}})
		if ps := problemsOf(t, err); len(ps) != 2 {
			t.Errorf("%s: %q, want the missing file and the flag", kind, err)
		}
	}
	if _, err := CheckFile(missing, KindServer); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("CheckFile on a missing file: %v", err)
	}
	// A directory cannot be read.
	_, err := LoadServer(Inputs{Path: dir})
	if ps := problemsOf(t, err); len(ps) != 1 || !strings.Contains(ps[0].Msg, "cannot read the config file") {
		t.Errorf("directory: %q", err)
	}
}

func TestEmptyFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"empty.yaml":    "",
		"comments.yaml": "# nothing\n  # at all\n",
		"null.yaml":     "~\n",
		"kindonly.yaml": "kind: server\n",
	} {
		p := writeFile(t, dir, name, body)
		cfg, err := LoadServer(Inputs{Path: p})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(cfg, DefaultServer()) {
			t.Errorf("%s: %+v, want the defaults", name, cfg)
		}
	}
	if _, err := LoadAgent(Inputs{Path: os.DevNull}); err != nil {
		t.Errorf("/dev/null: %v", err)
	}
}

func TestSyntaxErrors(t *testing.T) {
	cases := []struct{ body, want string }{
		{"kind: server\netcd:\n\tendpoints: x\n", ":3: not valid YAML: found character that cannot start any token"},
		{"kind: server\nlisten: [a\n", ": not valid YAML"},
		{"kind: server\n---\nkind: agent\n", ":2:1: a second YAML document (after ---); a config file holds one"},
		{"- a\n- b\n", ":1:1: the file must be a mapping of settings (key: value), not a list"},
		{"just text\n", `:1:1: the file must be a mapping of settings (key: value), not "just text"`},
	}
	for _, c := range cases {
		p := writeFile(t, t.TempDir(), "bad.yaml", c.body)
		_, err := LoadServer(Inputs{Path: p})
		if err == nil || !strings.HasPrefix(err.Error(), p+c.want[:strings.Index(c.want, " ")]) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want %s%s", c.body, err, p, c.want)
		}
	}
}

func TestKind(t *testing.T) {
	dir := t.TempDir()
	agentFile := writeFile(t, dir, "a.yaml", "kind: agent\nname: h1\n")
	noKind := writeFile(t, dir, "n.yaml", "name: h1\n")
	badKind := writeFile(t, dir, "b.yaml", "kind: both\n")

	_, err := LoadServer(Inputs{Path: agentFile})
	if err == nil || err.Error() != agentFile+":1:7: kind: this is an agent config, but a server config is being read" {
		t.Errorf("agent file read as server: %v", err)
	}
	if _, err := LoadAgent(Inputs{Path: noKind}); err != nil {
		t.Errorf("a daemon's file needs no kind: %v", err)
	}
	_, err = LoadAgent(Inputs{Path: badKind})
	if err == nil || err.Error() != badKind+`:1:7: kind: "both" is not a kind: use server or agent` {
		t.Errorf("bad kind: %v", err)
	}

	cfg, err := CheckFile(agentFile, "")
	if err != nil || cfg.Kind() != KindAgent || cfg.(*Agent).Name != "h1" {
		t.Errorf("CheckFile kind from file: %v %v", cfg, err)
	}
	if _, err := CheckFile(noKind, ""); err == nil || !strings.Contains(err.Error(), "cannot tell a server config from an agent config") {
		t.Errorf("CheckFile without kind: %v", err)
	}
	if cfg, err := CheckFile(noKind, KindAgent); err != nil || cfg.Kind() != KindAgent {
		t.Errorf("CheckFile --kind agent: %v %v", cfg, err)
	}
	if _, err := CheckFile(agentFile, KindServer); err == nil || !strings.Contains(err.Error(), "this is an agent config, but a server config is being read") {
		t.Errorf("CheckFile kind mismatch: %v", err)
	}
	if _, err := CheckFile(agentFile, "both"); err == nil {
		t.Error("CheckFile with an invalid kind: no error")
	}
	if _, err := ParseKind("both"); err == nil {
		t.Error("ParseKind(both): no error")
	}
}

// The packaged files must load, and the defaults file must document every
// setting and change nothing.
func TestPackagedConfigs(t *testing.T) {
	root := filepath.Join("..", "packaging")
	defaultsFiles := map[Kind]string{KindServer: "etc/bulwark/server.yaml", KindAgent: "etc/bulwark/agent.yaml"}
	for kind, rel := range defaultsFiles {
		p := filepath.Join(root, rel)
		cfg, err := CheckFile(p, "")
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if cfg.Kind() != kind {
			t.Errorf("%s: kind %s", p, cfg.Kind())
		}
		if got, want := valuesOf(cfg), valuesOf(defaults(kind)); !reflect.DeepEqual(got, want) {
			t.Errorf("%s changes defaults:\n got %v\nwant %v", p, got, want)
		}
		data, _ := os.ReadFile(p)
		text := string(data)
		for _, s := range Settings(kind) {
			last := s.Key[strings.LastIndex(s.Key, ".")+1:]
			if s.FileOnly {
				if !strings.Contains(text, "#"+last+":") {
					t.Errorf("%s does not document %s (#%s:)", p, s.Key, last)
				}
				continue
			}
			if !strings.Contains(text, "#"+last+":") || !strings.Contains(text, s.Env) || !strings.Contains(text, "--"+s.Flag) {
				t.Errorf("%s does not document %s (#%s:, %s, --%s)", p, s.Key, last, s.Env, s.Flag)
			}
		}
	}
	examples, _ := filepath.Glob(filepath.Join(root, "examples", "*", "*.yaml"))
	if len(examples) < 4 {
		t.Fatalf("examples: %v, want a server and three agents", examples)
	}
	for _, p := range examples {
		cfg, err := CheckFile(p, "")
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		want := KindServer
		if strings.Contains(filepath.Base(p), "agent") {
			want = KindAgent
			a := cfg.(*Agent)
			// The agent's bmc settings are deprecated: the examples
			// configure fencing on the server.
			if a.BMC != (BMC{}) || a.Name == "" || len(a.Etcd.Endpoints) != 3 || !a.Etcd.TLSEnabled() {
				t.Errorf("%s: want a named host without bmc: and 3 etcd members over TLS: %+v", p, a)
			}
		} else if s := cfg.(*Server); len(s.Etcd.Endpoints) != 3 || !s.Etcd.TLSEnabled() {
			t.Errorf("%s: want 3 etcd members over TLS: %+v", p, s)
		} else if hosts := s.Fencing.HostNames(); !reflect.DeepEqual(hosts, []string{"host-1", "host-2", "host-3"}) {
			t.Errorf("%s: want fence devices for host-1..3, got %v", p, hosts)
		} else {
			for _, d := range s.Fencing.Devices() {
				if d.Type != FenceTypeRedfish || d.PasswordFile == "" || d.CAFile == "" || d.Insecure || !strings.HasPrefix(d.URL, "https://10.0.1.") {
					t.Errorf("%s: %s: want a verified redfish BMC with a password file: %+v", p, d.Key(""), d)
				}
			}
		}
		if cfg.Kind() != want {
			t.Errorf("%s: kind %s, want %s", p, cfg.Kind(), want)
		}
	}
}

func valuesOf(cfg any) map[string]any {
	m := map[string]any{}
	k := KindServer
	if _, ok := cfg.(*Agent); ok {
		k = KindAgent
	}
	for _, s := range Settings(k) {
		m[s.Key] = valueOf(cfg, s.Key)
	}
	return m
}

func TestOriginString(t *testing.T) {
	for o, want := range map[Origin]string{
		{}:                                     "default",
		{Source: FromFile, File: "f"}:          "f",
		{Source: FromFile, File: "f", Line: 3}: "f:3",
		{Source: FromFile, File: "f", Line: 3, Column: 4}: "f:3:4",
		{Source: FromEnv, Name: "BULWARK_X"}:              "$BULWARK_X",
		{Source: FromFlag, Name: "x"}:                     "--x",
	} {
		if o.String() != want {
			t.Errorf("%#v: %q, want %q", o, o.String(), want)
		}
	}
	if got := (Problem{Key: "bmc.url", Msg: "m"}).Error(); got != "bmc.url: m" {
		t.Errorf("default-origin problem: %q", got)
	}
}

func TestUnknownFlagIsAnError(t *testing.T) {
	_, err := LoadServer(Inputs{DefaultPath: "/nonexistent/x", Flags: map[string][]string{"bmc-url": {"https://x"}}})
	if err == nil || err.Error() != "--bmc-url: not a server setting" {
		t.Errorf("got %v", err)
	}
}
