package ctl

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

func TestCheckFlags(t *testing.T) {
	grace := func(d time.Duration) *api.Duration {
		g := api.Duration(d)
		return &g
	}
	good := []struct {
		name string
		args []string
		want *api.HealthCheck
	}{
		{"http with every setting", []string{"container", "run", "web-1", "--image", "nginx", "--check", "http:8080/health",
			"--check-interval", "5s", "--check-timeout", "1s", "--check-failures", "2", "--check-grace", "0s"},
			&api.HealthCheck{Type: api.CheckHTTP, Port: 8080, Path: "/health", Interval: api.Duration(5 * time.Second),
				Timeout: api.Duration(time.Second), Failures: 2, Grace: grace(0)}},
		{"tcp, defaults left to the server", []string{"container", "run", "--check=tcp:5432", "pg-1", "--image", "postgres:16"},
			&api.HealthCheck{Type: api.CheckTCP, Port: 5432}},
		{"exec through the shell", []string{"container", "run", "pg-2", "--image", "postgres:16", "--check", "exec:pg_isready -U app", "--check-grace", "2m", "--", "postgres"},
			&api.HealthCheck{Type: api.CheckExec, Command: []string{"/bin/sh", "-c", "pg_isready -U app"}, Grace: grace(2 * time.Minute)}},
		{"vm with tcp", []string{"vm", "create", "db-1", "--check", "tcp:22", "--check-interval", "30s"},
			&api.HealthCheck{Type: api.CheckTCP, Port: 22, Interval: api.Duration(30 * time.Second)}},
		{"no check", []string{"container", "run", "web-2", "--image", "nginx"}, nil},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			runCLI(t, f, "", tt.args...).mustSucceed(t)
			specs := f.createdSpecs()
			if len(specs) != 1 || !reflect.DeepEqual(specs[0].Check, tt.want) {
				t.Fatalf("server got %+v, want check %+v", specs, tt.want)
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"unknown type", []string{"container", "run", "w", "--image", "x", "--check", "udp:53"},
			`--check "udp:53": unknown type "udp": use tcp:PORT, http:PORT/PATH or exec:COMMAND`},
		{"port out of range", []string{"container", "run", "w", "--image", "x", "--check", "tcp:0"},
			`--check "tcp:0": port 0 is out of range: use 1 to 65535`},
		{"no port", []string{"container", "run", "w", "--image", "x", "--check", "http:/health"},
			`--check "http:/health": the port is missing: use http:PORT/PATH, e.g. http:8080/health`},
		{"empty exec", []string{"container", "run", "w", "--image", "x", "--check", "exec:"},
			`--check "exec:": the command is empty: use exec:COMMAND, e.g. 'exec:test -f /tmp/ready'`},
		{"empty check", []string{"container", "run", "w", "--image", "x", "--check", ""},
			`--check is empty: use tcp:PORT, http:PORT/PATH or exec:COMMAND`},
		{"tuning without a check", []string{"container", "run", "w", "--image", "x", "--check-interval", "5s"},
			`--check-interval tunes a health check: give the check too, e.g. --check http:8080/health`},
		{"not a duration", []string{"container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-interval", "often"},
			`--check-interval "often" is not a duration: use e.g. 10s, 1m or 1m30s`},
		{"interval too short", []string{"container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-interval", "500ms"},
			`check: interval 500ms is too short: at least 1s`},
		{"zero interval", []string{"container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-interval", "0"},
			`--check-interval 0s is too short: at least 1s`},
		{"timeout not under the interval", []string{"container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-timeout", "10s"},
			`check: timeout 10s must be shorter than the interval 10s`},
		{"zero failures", []string{"container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-failures", "0"},
			`--check-failures must be from 1 to 100, got 0`},
		{"negative grace", []string{"container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-grace", "-1s"},
			`check: grace -1s is negative`},
		{"exec on a vm", []string{"vm", "create", "v", "--check", "exec:true"},
			`check: exec checks run inside containers; a VM's check must be tcp or http`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			r := runCLI(t, f, "", tt.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) || !strings.Contains(r.err.Error(), "nothing was sent to the server") {
				t.Errorf("error %v, want %q", r.err, tt.want)
			}
			if specs := f.createdSpecs(); len(specs) != 0 {
				t.Errorf("sent %+v", specs)
			}
		})
	}

	// Two problems are both reported.
	r := runCLI(t, newFakeAPI(t), "", "container", "run", "w", "--image", "x", "--check", "tcp:80", "--check-interval", "2h", "--check-failures", "500")
	if r.err == nil || !strings.Contains(r.err.Error(), "--check-failures must be from 1 to 100, got 500") || !strings.Contains(r.err.Error(), "check: interval 2h0m0s is too long: at most 1h0m0s") {
		t.Errorf("error %v", r.err)
	}
}

func TestApplyCheck(t *testing.T) {
	f := newFakeAPI(t)
	body := `name: web-1
kind: container
cpus: 1
memory: 128MiB
image: nginx:1.27
check:
  type: http
  port: 8080
  path: /health
  interval: 5s
  failures: 2
  grace: 0s
`
	runCLI(t, f, body, "apply", "-f", "-").mustSucceed(t)
	g := api.Duration(0)
	want := &api.HealthCheck{Type: api.CheckHTTP, Port: 8080, Path: "/health", Interval: api.Duration(5 * time.Second), Failures: 2, Grace: &g}
	if specs := f.createdSpecs(); len(specs) != 1 || !reflect.DeepEqual(specs[0].Check, want) {
		t.Fatalf("server got %+v, want check %+v", specs, want)
	}

	f = newFakeAPI(t)
	r := runCLI(t, f, strings.Replace(body, "path: /health", "path: health", 1), "apply", "-f", "-")
	if r.err == nil || !strings.Contains(r.err.Error(), `check: http path "health" must start with '/'`) {
		t.Errorf("error %v", r.err)
	}
	if specs := f.createdSpecs(); len(specs) != 0 {
		t.Errorf("sent %+v", specs)
	}
}
