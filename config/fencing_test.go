package config

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

const fencingHead = "kind: server\nfencing:\n  hosts:\n"

func TestFencingHosts(t *testing.T) {
	body := fencingHead + `    host-1:
      - &bmc
        name: host-1-bmc
        type: redfish
        url: https://10.0.1.11
        username: fence
        password_file: /etc/bulwark/bmc/host-1.password
        ca_file: /etc/bulwark/bmc/ca.pem
        system_id: ""
        auth: session
      - type: redfish
        url: https://pdu.example:8443/
        username: "admin"
        password_env: PDU_PASSWORD
        insecure: true
        system_id: System.Embedded.1
        auth: basic
    host-2:
      - <<: *bmc
        name: ~
        url: https://10.0.1.12
        password_file: /etc/bulwark/bmc/host-2.password
  # a comment
`
	p := writeFile(t, t.TempDir(), "s.yaml", body)
	cfg, err := LoadServer(Inputs{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]FenceDevice{
		"host-1": {
			{Host: "host-1", Level: 1, Name: "host-1-bmc", Type: "redfish", URL: "https://10.0.1.11", Username: "fence",
				PasswordFile: "/etc/bulwark/bmc/host-1.password", CAFile: "/etc/bulwark/bmc/ca.pem", Auth: "session"},
			{Host: "host-1", Level: 2, Name: "host-1-level2", Type: "redfish", URL: "https://pdu.example:8443/", Username: "admin",
				PasswordEnv: "PDU_PASSWORD", Insecure: true, SystemID: "System.Embedded.1", Auth: "basic"},
		},
		// The merge gives everything but what host-2's device says itself;
		// name: ~ (no value) takes the default name.
		"host-2": {
			{Host: "host-2", Level: 1, Name: "host-2-level1", Type: "redfish", URL: "https://10.0.1.12", Username: "fence",
				PasswordFile: "/etc/bulwark/bmc/host-2.password", CAFile: "/etc/bulwark/bmc/ca.pem", Auth: "session"},
		},
	}
	if !reflect.DeepEqual(cfg.Fencing.Hosts, want) {
		t.Errorf("got\n%+v\nwant\n%+v", cfg.Fencing.Hosts, want)
	}
	if got := cfg.Fencing.HostNames(); !reflect.DeepEqual(got, []string{"host-1", "host-2"}) {
		t.Errorf("HostNames %v", got)
	}
	if got := len(cfg.Fencing.Devices()); got != 3 {
		t.Errorf("Devices: %d", got)
	}
	// The timing keeps its defaults.
	if f := cfg.Fencing; f.DeviceTimeout != 20*time.Second || f.RetryInterval != 5*time.Second || f.CheckInterval != 30*time.Second || f.SuspectGrace != 0 {
		t.Errorf("timing %+v", f)
	}
	// Spot checks of where values came from (file:line:column).
	for key, at := range map[string]string{
		"fencing.hosts":                         p + ":4:5",
		"fencing.hosts.host-1":                  p + ":4:5",
		"fencing.hosts.host-1[1]":               p + ":5:9",
		"fencing.hosts.host-1[1].password_file": p + ":10:24",
		"fencing.hosts.host-1[2]":               p + ":14:9",
		"fencing.hosts.host-1[2].password_env":  p + ":17:23",
		"fencing.hosts.host-1[2].insecure":      p + ":18:19",
		"fencing.hosts.host-2[1].url":           p + ":24:14",
		"fencing.hosts.host-2[1].ca_file":       p + ":11:18", // from the anchor
		"fencing.hosts.host-2[1].password_file": p + ":25:24",
		"fencing.hosts.host-2[1].name":          "default",
	} {
		if got := cfg.Origin(key).String(); got != at {
			t.Errorf("origin of %s: %s, want %s", key, got, at)
		}
	}
}

// TestFencingHostsFileOnly: the device list has no variable and no flag;
// the timing settings do (TestPrecedence).
func TestFencingHostsFileOnly(t *testing.T) {
	var st Setting
	for _, s := range Settings(KindServer) {
		if s.Key == "fencing.hosts" {
			st = s
		}
	}
	if !st.FileOnly || st.Env != "" || st.Flag != "" {
		t.Fatalf("fencing.hosts: %+v", st)
	}
	_, err := LoadServer(Inputs{DefaultPath: "/nonexistent/x", Flags: map[string][]string{"fence-hosts": {"host-1=https://x"}}})
	if err == nil || err.Error() != "--fence-hosts: not a server setting" {
		t.Errorf("flag: %v", err)
	}
	cfg, err := LoadServer(Inputs{DefaultPath: "/nonexistent/x", Env: envMap(map[string]string{"BULWARK_FENCE_HOSTS": "host-1"})})
	if err != nil || len(cfg.Fencing.Hosts) != 0 {
		t.Errorf("env: %v %+v", err, cfg.Fencing.Hosts)
	}
	s, _ := lookupSetting(KindServer, "fencing.hosts")
	if err := applyStrings(s, DefaultServer(), []string{"x"}); err == nil {
		t.Error("applyStrings on a file-only setting: no error")
	}
	// An agent file has no fencing section.
	p := writeFile(t, t.TempDir(), "a.yaml", "kind: agent\nfencing:\n  hosts: {}\n")
	_, err = LoadAgent(Inputs{Path: p})
	if err == nil || err.Error() != p+`:2:1: unknown key "fencing": that is a server setting; this is an agent config` {
		t.Errorf("agent: %v", err)
	}
	// The timing settings come from the environment and flags too, over
	// the file, next to a device list from the file.
	p = writeFile(t, t.TempDir(), "s.yaml", fencingHead+okDevice("host-1", "10.0.1.11")+"  device_timeout: 10s\n  check_interval: 1m\n")
	cfg, err = LoadServer(Inputs{Path: p, Env: envMap(map[string]string{"BULWARK_FENCE_DEVICE_TIMEOUT": "15s", "BULWARK_FENCE_RETRY_INTERVAL": "3s"}),
		Flags: map[string][]string{"fence-device-timeout": {"25s"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Fencing
	if f.DeviceTimeout != 25*time.Second || f.RetryInterval != 3*time.Second || f.CheckInterval != time.Minute || len(f.Hosts["host-1"]) != 1 {
		t.Errorf("got %+v", f)
	}
	for key, src := range map[string]Source{"fencing.device_timeout": FromFlag, "fencing.retry_interval": FromEnv,
		"fencing.check_interval": FromFile, "fencing.suspect_grace": FromDefault, "fencing.hosts": FromFile} {
		if got := cfg.Origin(key).Source; got != src {
			t.Errorf("%s from %s, want %s", key, got, src)
		}
	}
}

func okDevice(host, ip string) string {
	return "    " + host + ":\n      - type: redfish\n        url: https://" + ip + "\n        username: fence\n" +
		"        password_file: /etc/bulwark/bmc/" + host + ".password\n"
}

// TestFencingInvalid tries every rule. The problem is expected on the line
// marked "# <-" (or, with line set, on that line), at column col, about key.
func TestFencingInvalid(t *testing.T) {
	dev := func(lines ...string) string {
		// A valid device of host-1 with lines replacing or adding keys.
		keys := []string{"type: redfish", "url: https://10.0.1.11", "username: fence", "password_file: /etc/bulwark/bmc/host-1.password"}
		for _, l := range lines {
			k, _, _ := strings.Cut(l, ":")
			replaced := false
			for i, x := range keys {
				if strings.HasPrefix(x, k+":") {
					keys[i], replaced = l, true
				}
			}
			if !replaced {
				keys = append(keys, l)
			}
		}
		var out []string
		for _, k := range keys {
			if strings.HasPrefix(k, "-") {
				continue // "-key" drops key
			}
			drop := false
			for _, l := range lines {
				if strings.HasPrefix(l, "-") && strings.HasPrefix(k, l[1:]+":") {
					drop = true
				}
			}
			if !drop {
				out = append(out, k)
			}
		}
		return "    host-1:\n      - " + strings.Join(out, "\n        ") + "\n"
	}
	cases := []struct {
		name string
		body string // after "fencing:\n  hosts:\n"
		line int    // 0: the line marked "# <-"
		col  int
		key  string
		want string
	}{
		// The shape of the section.
		{"hosts not a mapping", "    - host-1\n", 4, 5, "fencing.hosts", "expected a mapping of host names to their lists of fence devices"},
		{"host name not a DNS label", strings.Replace(dev(), "host-1:", "Host_1:", 1), 4, 5, "fencing.hosts.Host_1", `host name "Host_1" is not a DNS label`},
		{"host key not plain", "    [a]: []\n", 4, 5, "fencing.hosts", "a host name must be a plain name, not a list"},
		{"host twice", dev() + okDevice("host-1", "10.0.1.12")[:len("    host-1:\n")] + "      - type: redfish # <-\n", 9, 5, "fencing.hosts.host-1",
			`host "host-1" is listed twice (first on line 4)`},
		{"host without devices", "    host-1:\n", 4, 5, "fencing.hosts.host-1", "no fence devices: list them in level order"},
		{"host with an empty list", "    host-1: []\n", 4, 5, "fencing.hosts.host-1", "no fence devices"},
		{"device not in a list", "    host-1:\n      type: redfish\n      url: https://10.0.1.11\n", 5, 7, "fencing.hosts.host-1", "start each device with '- '"},
		{"devices a scalar", "    host-1: https://10.0.1.11\n", 4, 13, "fencing.hosts.host-1", `expected a list of fence devices in level order, got "https://10.0.1.11"`},
		{"too many levels", "    host-1:\n" + strings.Repeat("      - {type: redfish}\n", 9), 13, 9, "fencing.hosts.host-1", "9 fence devices; at most 8 levels are allowed"},
		{"device a scalar", "    host-1:\n      - https://10.0.1.11\n", 5, 9, "fencing.hosts.host-1[1]", `expected a fence device (a mapping of type, url, username, ...), got "https://10.0.1.11"`},
		// Keys.
		{"unknown key, suggestion", dev("usr: fence # <-"), 0, 9, "fencing.hosts.host-1[1]", `unknown key "usr" (did you mean "url"?)`},
		{"unknown key, suggestion 2", dev("usernme: fence # <-"), 0, 9, "fencing.hosts.host-1[1]", `unknown key "usernme" (did you mean "username"?)`},
		{"unknown key", dev("colour: blue # <-"), 0, 9, "fencing.hosts.host-1[1]", `unknown key "colour": a fence device has the keys name, type, url, username, password_file, password_env, ca_file, insecure, system_id, auth`},
		{"a password in the file", dev("password: hunter2 # <-"), 0, 9, "fencing.hosts.host-1[1]", `unknown key "password": a password is never written in the config file; put it in a file named by password_file`},
		{"duplicate key", "    host-1:\n      - type: redfish\n        url: https://10.0.1.11\n        username: fence\n        password_file: /pw\n        url: https://10.0.1.12 # <-\n", 0, 9, "fencing.hosts.host-1[1].url", "duplicate key (first given on line 6)"},
		{"key not plain", dev("[a]: b # <-"), 0, 9, "fencing.hosts.host-1[1]", "a key must be a plain name, not a list"},
		{"value not a scalar", dev("url: [https://10.0.1.11] # <-"), 0, 14, "fencing.hosts.host-1[1].url", "expected a single value, got a list"},
		// Required keys.
		{"no type", dev("-type"), 5, 9, "fencing.hosts.host-1[1]", "type is needed: redfish (the only type so far)"},
		{"no url", dev("-url"), 5, 9, "fencing.hosts.host-1[1]", "url is needed: the BMC's base URL, e.g. https://10.0.1.11"},
		{"no username", dev("-username"), 5, 9, "fencing.hosts.host-1[1]", "username is needed"},
		{"empty username", dev(`username: "" # <-`), 0, 19, "fencing.hosts.host-1[1].username", "the user name is empty"},
		{"control character in the username", dev(`username: "a\tb" # <-`), 0, 19, "fencing.hosts.host-1[1].username", "contains a control character"},
		// type
		{"other type", dev("type: ipmi # <-"), 0, 15, "fencing.hosts.host-1[1].type", `fence device type "ipmi": use redfish`},
		// url
		{"url http", dev("url: http://10.0.1.11 # <-"), 0, 14, "fencing.hosts.host-1[1].url", `"http://10.0.1.11": the scheme must be https: over plain http the BMC password would cross the network in clear`},
		{"url not a URL", dev("url: 10.0.1.11 # <-"), 0, 14, "fencing.hosts.host-1[1].url", `"10.0.1.11" is not a URL like https://10.0.1.11`},
		{"url with a user", dev("url: https://root:pw@10.0.1.11 # <-"), 0, 14, "fencing.hosts.host-1[1].url", "put the user in username and the password in password_file or password_env, not in the URL"},
		{"url with the Redfish root", dev("url: https://10.0.1.11/redfish/v1 # <-"), 0, 14, "fencing.hosts.host-1[1].url", "give the BMC's base URL, without /redfish/v1"},
		{"url with a path", dev("url: https://10.0.1.11/x # <-"), 0, 14, "fencing.hosts.host-1[1].url", "give only https://host[:port]"},
		{"url with a query", dev("url: https://10.0.1.11?a=b # <-"), 0, 14, "fencing.hosts.host-1[1].url", "give only https://host[:port]"},
		{"url port 0", dev("url: https://10.0.1.11:0 # <-"), 0, 14, "fencing.hosts.host-1[1].url", `port "0" is not a number from 1 to 65535`},
		{"url port too big", dev("url: https://10.0.1.11:70000 # <-"), 0, 14, "fencing.hosts.host-1[1].url", `port "70000" is not a number from 1 to 65535`},
		// The password: exactly one source.
		{"no password", dev("-password_file"), 5, 9, "fencing.hosts.host-1[1]", "no password: set password_file (a file only the server's user can read) or password_env"},
		{"two passwords", dev("password_env: BMC_PW # <-"), 0, 23, "fencing.hosts.host-1[1].password_env", "password_file and password_env are both set: give exactly one"},
		{"password file relative", dev("password_file: bmc/host-1.password # <-"), 0, 24, "fencing.hosts.host-1[1].password_file", `"bmc/host-1.password" is not an absolute path`},
		{"password env a bad name", dev("-password_file", "password_env: bmc-pw # <-"), 0, 23, "fencing.hosts.host-1[1].password_env", `"bmc-pw" is not an environment variable name`},
		{"password env a value", dev("-password_file", "password_env: $BMC_PW # <-"), 0, 23, "fencing.hosts.host-1[1].password_env", "it names the variable, it is not the password"},
		// TLS.
		{"ca file relative", dev("ca_file: ca.pem # <-"), 0, 18, "fencing.hosts.host-1[1].ca_file", `"ca.pem" is not an absolute path`},
		{"ca file and insecure", dev("ca_file: /etc/bulwark/bmc/ca.pem", "insecure: true # <-"), 0, 19, "fencing.hosts.host-1[1].insecure", "ca_file and insecure: true contradict each other"},
		{"insecure not a bool", dev("insecure: yes # <-"), 0, 19, "fencing.hosts.host-1[1].insecure", `"yes" is not true or false`},
		// Names.
		{"name not DNS-ish", dev("name: Host 1 BMC # <-"), 0, 15, "fencing.hosts.host-1[1].name", `fence device name "Host 1 BMC" is not a DNS name`},
		{"name with an empty label", dev("name: bmc..host-1 # <-"), 0, 15, "fencing.hosts.host-1[1].name", "is not a DNS name"},
		{"name too long", dev("name: " + strings.Repeat("a.", 127) + "ab # <-"), 0, 15, "fencing.hosts.host-1[1].name", "at most 253 are allowed"},
		{"name used twice", dev("name: bmc") + "    host-2:\n      - type: redfish\n        url: https://10.0.1.12\n        username: fence\n        password_env: PW\n        name: bmc # <-\n",
			0, 15, "fencing.hosts.host-2[1].name", `fence device name "bmc" is already used by host-1 level 1`},
		{"name taken from a default name", dev("name: host-2-level1") + "    host-2:\n      - type: redfish # <-\n        url: https://10.0.1.12\n        username: fence\n        password_env: PW\n",
			0, 9, "fencing.hosts.host-2[1].name", `fence device name "host-2-level1" is already used by host-1 level 1`},
		// The same BMC for two hosts, or twice for one.
		{"same BMC for two hosts", dev() + "    host-2:\n      - type: redfish\n        url: https://10.0.1.11:443/ # <-\n        username: fence\n        password_env: PW\n",
			0, 14, "fencing.hosts.host-2[1].url", `the same BMC system (https://10.0.1.11:443/, system_id "") as host host-1 level 1: fencing one host through another host's BMC powers off the wrong machine`},
		{"same BMC twice for one host", dev() + "      - type: redfish\n        url: https://10.0.1.11 # <-\n        username: other\n        password_env: PW\n",
			0, 14, "fencing.hosts.host-1[2].url", `the same BMC system (https://10.0.1.11, system_id "") as level 1 of this host: a further level must be another device`},
		// system_id, auth.
		{"system id a URI", dev("system_id: /redfish/v1/Systems/1 # <-"), 0, 20, "fencing.hosts.host-1[1].system_id", "give the system's Id (e.g. 1 or System.Embedded.1), not its URI"},
		{"system id with spaces", dev(`system_id: " 1" # <-`), 0, 20, "fencing.hosts.host-1[1].system_id", "has leading or trailing spaces"},
		{"auth", dev("auth: digest # <-"), 0, 15, "fencing.hosts.host-1[1].auth", `auth "digest": use session or basic`},
		// Merge keys.
		{"merge of a scalar", dev("<<: x # <-"), 0, 13, "fencing.hosts.host-1[1]", `<< merges a mapping (<<: *name), got "x"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := fencingHead + c.body
			line := c.line
			if line == 0 {
				for i, l := range strings.Split(body, "\n") {
					if strings.HasSuffix(l, "# <-") {
						line = i + 1
					}
				}
			}
			p := writeFile(t, t.TempDir(), "s.yaml", body)
			_, err := LoadServer(Inputs{Path: p})
			ps := problemsOf(t, err)
			prefix := fmt.Sprintf("%s:%d:%d: %s: ", p, line, c.col, c.key)
			if len(ps) != 1 || !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got\n%v\nwant one problem:\n%s...%s...\nin:\n%s", err, prefix, c.want, body)
			}
			// config check reports the same.
			if _, err2 := CheckFile(p, ""); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("CheckFile: %v", err2)
			}
		})
	}
}

// Every bad device is reported, each once, also when a merged mapping with
// a problem is used by several devices.
func TestFencingEveryProblemReported(t *testing.T) {
	body := fencingHead + `    host-1:
      - &common
        type: redfish
        url: http://10.0.1.11
        username: fence
        password_file: /pw
    host-2:
      - <<: *common
        url: https://10.0.1.12
        colour: blue
    host-3:
      - <<: *common
        auth: digest
`
	p := writeFile(t, t.TempDir(), "s.yaml", body)
	_, err := LoadServer(Inputs{Path: p})
	want := []string{
		p + `:7:14: fencing.hosts.host-1[1].url: "http://10.0.1.11": the scheme must be https`,
		p + `:13:9: fencing.hosts.host-2[1]: unknown key "colour"`,
		p + `:16:15: fencing.hosts.host-3[1].auth: auth "digest": use session or basic`,
	}
	ps := problemsOf(t, err)
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(ps[i].Error(), w) {
			t.Errorf("problem %d: %q, want %q...", i, ps[i].Error(), w)
		}
	}
}

// Merge keys: a list of mappings merges with the first one winning, the
// device's own keys win over all of them, and ~ unsets a merged key.
func TestFencingMergeKeys(t *testing.T) {
	body := fencingHead + `    host-1:
      - &a {type: redfish, url: "https://10.0.1.11", username: a, password_file: /a, auth: basic}
    host-2:
      - &b {type: redfish, url: "https://10.0.1.12", username: b, password_env: B, system_id: "2"}
    host-3:
      - <<: [*b, *a]
        url: https://10.0.1.13
        password_env: ~
`
	p := writeFile(t, t.TempDir(), "s.yaml", body)
	cfg, err := LoadServer(Inputs{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	want := FenceDevice{Host: "host-3", Level: 1, Name: "host-3-level1", Type: "redfish", URL: "https://10.0.1.13", Username: "b",
		PasswordFile: "/a", SystemID: "2", Auth: "basic"}
	if got := cfg.Fencing.Hosts["host-3"]; len(got) != 1 || got[0] != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	// An empty mapping of hosts is no fencing at all.
	p = writeFile(t, t.TempDir(), "s.yaml", fencingHead[:len(fencingHead)-1]+" {}\n")
	if cfg, err := LoadServer(Inputs{Path: p}); err != nil || len(cfg.Fencing.Hosts) != 0 || cfg.Origin("fencing.hosts").Source != FromFile {
		t.Errorf("hosts: {}: %v", err)
	}
}
