package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func durationPtr(d time.Duration) *Duration {
	v := Duration(d)
	return &v
}

func TestParseCheck(t *testing.T) {
	good := []struct {
		in   string
		want HealthCheck
	}{
		{"tcp:5432", HealthCheck{Type: CheckTCP, Port: 5432}},
		{"tcp:1", HealthCheck{Type: CheckTCP, Port: 1}},
		{"tcp:65535", HealthCheck{Type: CheckTCP, Port: 65535}},
		{"http:8080/health", HealthCheck{Type: CheckHTTP, Port: 8080, Path: "/health"}},
		{"http:8080", HealthCheck{Type: CheckHTTP, Port: 8080, Path: "/"}},
		{"http:80/", HealthCheck{Type: CheckHTTP, Port: 80, Path: "/"}},
		{"http:80/a/b?full=1&x=%20", HealthCheck{Type: CheckHTTP, Port: 80, Path: "/a/b?full=1&x=%20"}},
		{"exec:test -f /tmp/ready", HealthCheck{Type: CheckExec, Command: []string{"/bin/sh", "-c", "test -f /tmp/ready"}}},
		{"exec:pg_isready -h 127.0.0.1:5432", HealthCheck{Type: CheckExec, Command: []string{"/bin/sh", "-c", "pg_isready -h 127.0.0.1:5432"}}},
	}
	for _, tt := range good {
		got, err := ParseCheck(tt.in)
		if err != nil {
			t.Errorf("ParseCheck(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseCheck(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if got.Target() != tt.in && !(tt.in == "http:8080" && got.Target() == "http:8080/") {
			t.Errorf("ParseCheck(%q).Target() = %q", tt.in, got.Target())
		}
	}

	bad := []struct{ in, err string }{
		{"", "check is empty: use tcp:PORT, http:PORT/PATH or exec:COMMAND"},
		{"  ", "check is empty: use tcp:PORT, http:PORT/PATH or exec:COMMAND"},
		{"8080", `check "8080": expected TYPE:..., use tcp:PORT, http:PORT/PATH or exec:COMMAND`},
		{"udp:53", `check "udp:53": unknown type "udp": use tcp:PORT, http:PORT/PATH or exec:COMMAND`},
		{"TCP:80", `check "TCP:80": unknown type "TCP": use tcp:PORT, http:PORT/PATH or exec:COMMAND`},
		{"tcp:", `check "tcp:": the port is missing: use tcp:PORT, e.g. tcp:5432`},
		{"http:/health", `check "http:/health": the port is missing: use http:PORT/PATH, e.g. http:8080/health`},
		{"tcp:http", `check "tcp:http": port "http" is not a number from 1 to 65535`},
		{"tcp:80/health", `check "tcp:80/health": port "80/health" is not a number from 1 to 65535`},
		{"http:80health", `check "http:80health": port "80health" is not a number from 1 to 65535`},
		{"tcp:0", `check "tcp:0": port 0 is out of range: use 1 to 65535`},
		{"tcp:65536", `check "tcp:65536": port 65536 is out of range: use 1 to 65535`},
		{"http:-1/x", `check "http:-1/x": port -1 is out of range: use 1 to 65535`},
		{"http:80/a b", `check "http:80/a b": http path "/a b" may not hold spaces, control characters or '#'`},
		{"http:80/a#frag", `check "http:80/a#frag": http path "/a#frag" may not hold spaces, control characters or '#'`},
		{"exec:", `check "exec:": the command is empty: use exec:COMMAND, e.g. 'exec:test -f /tmp/ready'`},
		{"exec:   ", `check "exec:   ": the command is empty: use exec:COMMAND, e.g. 'exec:test -f /tmp/ready'`},
		{"http:80/" + strings.Repeat("a", MaxCheckPath), `check "http:80/` + strings.Repeat("a", MaxCheckPath) + `": http path is 1025 bytes long; at most 1024 are allowed`},
	}
	for _, tt := range bad {
		_, err := ParseCheck(tt.in)
		if err == nil || err.Error() != tt.err {
			t.Errorf("ParseCheck(%q) error\n got: %v\nwant: %s", tt.in, err, tt.err)
		}
	}
}

func TestHealthCheckValidate(t *testing.T) {
	tcp := func(mod func(*HealthCheck)) HealthCheck {
		c := HealthCheck{Type: CheckTCP, Port: 80}
		mod(&c)
		return c
	}
	for _, c := range []HealthCheck{
		tcp(func(*HealthCheck) {}),
		tcp(func(c *HealthCheck) { c.Interval = Duration(time.Second); c.Timeout = Duration(999 * time.Millisecond) }),
		tcp(func(c *HealthCheck) {
			c.Interval = Duration(time.Hour)
			c.Failures = 100
			c.Grace = durationPtr(time.Hour)
		}),
		tcp(func(c *HealthCheck) { c.Grace = durationPtr(0); c.Failures = 1 }),
		{Type: CheckExec, Command: []string{"/bin/check"}},
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, tt := range []struct {
		c   HealthCheck
		err string
	}{
		{HealthCheck{}, "check: type is missing: use tcp, http or exec"},
		{HealthCheck{Type: "grpc", Port: 9000}, `check: type "grpc" is unknown: use tcp, http or exec`},
		{HealthCheck{Type: CheckTCP}, "check: port 0 is out of range: use 1 to 65535"},
		{HealthCheck{Type: CheckTCP, Port: 80, Path: "/x"}, "check: a tcp check takes no path (use http:PORT/PATH for an HTTP request)"},
		{HealthCheck{Type: CheckHTTP, Port: 80}, `check: http path "" must start with '/'`},
		{HealthCheck{Type: CheckHTTP, Port: 80, Path: "health"}, `check: http path "health" must start with '/'`},
		{HealthCheck{Type: CheckHTTP, Port: 80, Path: "/", Command: []string{"x"}}, "check: a http check takes no command"},
		{HealthCheck{Type: CheckTCP, Port: 80, Command: []string{}}, "check: a tcp check takes no command"},
		{HealthCheck{Type: CheckExec}, `check: an exec check needs a command: its program first, e.g. ["/bin/sh", "-c", "test -f /tmp/ready"]`},
		{HealthCheck{Type: CheckExec, Command: []string{" ", "x"}}, `check: an exec check needs a command: its program first, e.g. ["/bin/sh", "-c", "test -f /tmp/ready"]`},
		{HealthCheck{Type: CheckExec, Command: []string{"/bin/x", "a\x00b"}}, "check: the exec command has a NUL character"},
		{HealthCheck{Type: CheckExec, Command: []string{"/bin/x"}, Port: 80}, "check: an exec check takes a command only (no port or path)"},
		{HealthCheck{Type: CheckExec, Command: []string{"/bin/x", strings.Repeat("a", MaxCheckCommand)}}, "check: the exec command is 4102 bytes long; at most 4096 are allowed"},
		{tcp(func(c *HealthCheck) { c.Interval = Duration(500 * time.Millisecond) }), "check: interval 500ms is too short: at least 1s"},
		{tcp(func(c *HealthCheck) { c.Interval = Duration(-time.Second) }), "check: interval -1s is too short: at least 1s"},
		{tcp(func(c *HealthCheck) { c.Interval = Duration(2 * time.Hour) }), "check: interval 2h0m0s is too long: at most 1h0m0s"},
		{tcp(func(c *HealthCheck) { c.Timeout = Duration(10 * time.Second) }), "check: timeout 10s must be shorter than the interval 10s"},
		{tcp(func(c *HealthCheck) { c.Interval = Duration(time.Second); c.Timeout = Duration(2 * time.Second) }), "check: timeout 2s must be shorter than the interval 1s"},
		{tcp(func(c *HealthCheck) { c.Timeout = Duration(time.Millisecond) }), "check: timeout 1ms is too short: at least 10ms"},
		{tcp(func(c *HealthCheck) { c.Failures = -1 }), "check: failures must be from 1 to 100, got -1"},
		{tcp(func(c *HealthCheck) { c.Failures = 101 }), "check: failures must be from 1 to 100, got 101"},
		{tcp(func(c *HealthCheck) { c.Grace = durationPtr(-time.Second) }), "check: grace -1s is negative"},
		{tcp(func(c *HealthCheck) { c.Grace = durationPtr(2 * time.Hour) }), "check: grace 2h0m0s is too long: at most 1h0m0s"},
		{HealthCheck{Type: CheckTCP, Port: 70000, Failures: 101}, "check: port 70000 is out of range: use 1 to 65535\ncheck: failures must be from 1 to 100, got 101"},
	} {
		err := tt.c.Validate()
		if err == nil || err.Error() != tt.err {
			t.Errorf("%+v: error\n got: %v\nwant: %s", tt.c, err, tt.err)
		}
	}
}

func TestWorkloadSpecCheck(t *testing.T) {
	ctr := WorkloadSpec{Name: "web", Kind: KindContainer, CPUs: 1, Memory: 64 * MiB, Image: "busybox",
		Check: &HealthCheck{Type: CheckExec, Command: []string{"/bin/sh", "-c", "true"}}}
	if err := ctr.Validate(); err != nil {
		t.Fatal(err)
	}
	vm := WorkloadSpec{Name: "db", Kind: KindVM, CPUs: 1, Memory: 64 * MiB, Check: &HealthCheck{Type: CheckTCP, Port: 5432}}
	if err := vm.Validate(); err != nil {
		t.Fatal(err)
	}
	vm.Check = &HealthCheck{Type: CheckExec, Command: []string{"true"}}
	if err := vm.Validate(); err == nil || err.Error() != "check: exec checks run inside containers; a VM's check must be tcp or http" {
		t.Fatalf("exec on a VM: %v", err)
	}
	vm.Check = &HealthCheck{Type: CheckTCP, Port: 0}
	if err := vm.Validate(); err == nil || err.Error() != "check: port 0 is out of range: use 1 to 65535" {
		t.Fatalf("bad port: %v", err)
	}
}

func TestHealthCheckDefaultsAndJSON(t *testing.T) {
	c := HealthCheck{Type: CheckHTTP, Port: 8080, Path: "/health"}
	if got, want := c.String(), "http:8080/health every 10s, timeout 2s, unhealthy after 3 failures, grace 30s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	c.Interval, c.Failures, c.Grace = Duration(time.Second), 1, durationPtr(0)
	if got, want := c.String(), "http:8080/health every 1s, timeout 500ms, unhealthy after 1 failure, grace 0s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if d := c.WithDefaults(); d.Validate() != nil {
		t.Errorf("defaults do not validate: %v", d.Validate())
	}
	e := HealthCheck{Type: CheckExec, Command: []string{"/bin/check", "--deep", "a b", ""}}
	if got, want := e.Target(), `exec:/bin/check --deep "a b" ""`; got != want {
		t.Errorf("Target() = %q, want %q", got, want)
	}

	// An explicit grace of 0 survives the round trip; a missing one is nil.
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"http","port":8080,"path":"/health","interval":"1s","failures":1,"grace":"0s"}`; string(b) != want {
		t.Errorf("JSON %s, want %s", b, want)
	}
	var back HealthCheck
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, c) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	var noGrace HealthCheck
	if err := json.Unmarshal([]byte(`{"type":"tcp","port":1}`), &noGrace); err != nil || noGrace.Grace != nil {
		t.Errorf("missing grace: %+v, %v", noGrace, err)
	}
}
