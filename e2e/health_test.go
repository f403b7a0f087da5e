package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
	"github.com/bulwarkhq/bulwark/drivers/containerd"
	"github.com/bulwarkhq/bulwark/drivers/containerd/containerdtest"
)

// httpdCommand serves /www on port with busybox httpd; with removeAfter
// set, /www/health is deleted that long after each start. sh (pid 1)
// exits on SIGTERM, so a stop is quick.
func httpdCommand(port, removeAfter string) []string {
	script := "trap 'exit 0' TERM; busybox mkdir -p /www; echo ok > /www/health; "
	if removeAfter != "" {
		script += "(sleep " + removeAfter + "; busybox rm -f /www/health) & "
	}
	script += "httpd -f -p " + port + " -h /www & wait"
	return []string{"sh", "-c", script}
}

// TestHealthCheckRestartsThenMoves: real containers (busybox httpd) with
// HTTP health checks. One serves /health for 3s after each start only: it
// goes unhealthy, is restarted by its host (3 times), then its host gives
// up and it moves to the other host, with "unhealthy" events on the way.
// The other stays healthy and is never restarted; a third, with an exec
// check run inside it, is healthy. Bad checks are refused by the API (and
// by bulwarkctl) and change nothing.
func TestHealthCheckRestartsThenMoves(t *testing.T) {
	c := newContainerCluster(t, "h1", "h2")
	archive, ref := containerdtest.BuildBusyboxArchive(t, t.TempDir())
	image := containerd.ArchivePrefix + archive + "#" + ref
	ctx := context.Background()
	grace := api.Duration(time.Second)
	fast := func(port int) *api.HealthCheck {
		return &api.HealthCheck{Type: api.CheckHTTP, Port: port, Path: "/health", Interval: api.Duration(time.Second),
			Timeout: api.Duration(900 * time.Millisecond), Failures: 2, Grace: &grace}
	}
	spec := func(name string, check *api.HealthCheck, cmd []string) api.WorkloadSpec {
		return api.WorkloadSpec{Name: name, Kind: api.KindContainer, CPUs: 1, Memory: 64 * api.MiB, Image: image, Command: cmd, Check: check}
	}

	// Bad checks: refused, nothing created.
	for _, bad := range []struct {
		spec api.WorkloadSpec
		want string
	}{
		{spec("bad1", &api.HealthCheck{Type: api.CheckHTTP, Port: 70000, Path: "/"}, nil), "check: port 70000 is out of range: use 1 to 65535"},
		{spec("bad2", &api.HealthCheck{Type: api.CheckHTTP, Port: 80, Path: "health"}, nil), `check: http path "health" must start with '/'`},
		{spec("bad3", &api.HealthCheck{Type: api.CheckExec}, nil), "check: an exec check needs a command"},
		{spec("bad4", &api.HealthCheck{Type: api.CheckTCP, Port: 80, Interval: api.Duration(100 * time.Millisecond)}, nil), "check: interval 100ms is too short: at least 1s"},
		{spec("bad5", &api.HealthCheck{Type: api.CheckTCP, Port: 80, Timeout: api.Duration(10 * time.Second)}, nil), "check: timeout 10s must be shorter than the interval 10s"},
		{spec("bad6", &api.HealthCheck{Type: "grpc", Port: 80}, nil), `check: type "grpc" is unknown`},
		{api.WorkloadSpec{Name: "bad7", Kind: api.KindVM, CPUs: 1, Memory: 64 * api.MiB, Check: &api.HealthCheck{Type: api.CheckExec, Command: []string{"true"}}},
			"check: exec checks run inside containers"},
	} {
		_, err := c.api.CreateWorkload(ctx, bad.spec)
		var ae *client.APIError
		if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || !strings.Contains(ae.Message, bad.want) {
			t.Errorf("%s: error %v, want invalid_argument with %q", bad.spec.Name, err, bad.want)
		}
	}
	if ws, err := c.api.ListWorkloads(ctx); err != nil || len(ws) != 0 {
		t.Fatalf("after bad input: %d workloads, %v", len(ws), err)
	}
	// The same, through bulwarkctl: nothing is sent.
	if _, errOut, code := ctl(t, c.api.BaseURL(), "container", "run", "bad8", "--image-archive", archive, "--image", ref, "--check", "http:18080health"); code == 0 ||
		!strings.Contains(errOut, `--check "http:18080health": port "18080health" is not a number from 1 to 65535`) || !strings.Contains(errOut, "nothing was sent") {
		t.Errorf("bulwarkctl with a bad check: exit %d: %s", code, errOut)
	}

	// steady keeps its /health; flaky loses it 3s after each start.
	if _, err := c.api.CreateWorkload(ctx, spec("steady", fast(18081), httpdCommand("18081", ""))); err != nil {
		t.Fatal(err)
	}
	flakyArgs := append([]string{"container", "run", "flaky", "--image-archive", archive, "--image", ref, "--memory", "64MiB",
		"--check", "http:18080/health", "--check-interval", "1s", "--check-timeout", "900ms", "--check-failures", "2", "--check-grace", "1s", "--"}, httpdCommand("18080", "3")...)
	if out, errOut, code := ctl(t, c.api.BaseURL(), flakyArgs...); code != 0 {
		t.Fatalf("bulwarkctl container run flaky: exit %d: %s%s", code, out, errOut)
	}

	// An exec check runs inside the container (through the host's driver
	// set, to containerd).
	ready, err := api.ParseCheck("exec:test -f /tmp/ready")
	if err != nil {
		t.Fatal(err)
	}
	ready.Interval, ready.Timeout, ready.Grace = api.Duration(time.Second), api.Duration(900*time.Millisecond), &grace
	if _, err := c.api.CreateWorkload(ctx, spec("execok", &ready, []string{"sh", "-c", "trap 'exit 0' TERM; echo > /tmp/ready; sleep 600 & wait"})); err != nil {
		t.Fatal(err)
	}

	// Watch both until flaky has moved, sampling what `workload show`
	// reports.
	var (
		// steadyHealth is the sequence of steady's health, repeats left out.
		steadyHealth []string
		flakyHealth  = map[string]bool{}
		flakyReasons []string
	)
	var first string
	eventually(t, "flaky placed", 20*time.Second, func() bool { first = c.show("flaky").Host; return first != "" })
	steady := c.show("steady")
	took := eventually(t, "flaky moved to the other host", 90*time.Second, func() bool {
		s, f := c.show("steady"), c.show("flaky")
		if n := len(steadyHealth); n == 0 || steadyHealth[n-1] != s.Health {
			steadyHealth = append(steadyHealth, s.Health)
		}
		if f.Host == first {
			flakyHealth[f.Health] = true
		}
		if strings.Contains(f.Reason, "unhealthy") && (len(flakyReasons) == 0 || flakyReasons[len(flakyReasons)-1] != f.Reason) {
			flakyReasons = append(flakyReasons, f.Reason)
		}
		return f.Host != "" && f.Host != first
	})
	t.Logf("flaky moved from %s after %s; its health there: %v; reasons: %q", first, took.Round(time.Millisecond), flakyHealth, flakyReasons)
	if !flakyHealth[api.HealthHealthy] {
		t.Error("flaky was never reported healthy")
	}
	if w := c.show("flaky"); w.Reschedules != 1 {
		t.Errorf("flaky reschedules %d, want 1", w.Reschedules)
	}

	// A host that lost its lease (a machine too loaded to renew it in
	// time) fenced itself and killed everything it ran, steady too: say
	// so, since what follows then fails for that reason.
	if all, err := c.api.ListEvents(ctx, client.EventFilter{}); err == nil {
		for _, e := range all {
			if strings.HasPrefix(e.Type, "host-") && e.Message != "now ready" {
				t.Logf("NOTE: %s %s: %s (the checks below assume the hosts kept their leases)", e.Type, e.Host, e.Message)
			}
		}
	}

	// Events: unhealthy on the first host, the reschedule, and (for the
	// restarts that passed their checks) healthy again.
	evs, err := c.api.ListEvents(ctx, client.EventFilter{Workload: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	types, unhealthyOnFirst := map[string]int{}, 0
	for _, e := range evs {
		types[e.Type]++
		if e.Type == "rescheduling" && !strings.Contains(e.Message, "gave up after 3 restarts on "+first+": unhealthy: 2 checks failed in a row") {
			t.Errorf("rescheduling event: %+v", e)
		}
		if e.Type != "unhealthy" {
			continue
		}
		if e.Host == first {
			unhealthyOnFirst++
		}
		if !strings.Contains(e.Message, "GET http://127.0.0.1:18080/health: HTTP 404") {
			t.Errorf("unhealthy event: %+v", e)
		}
	}
	t.Logf("flaky's events by type: %v", types)
	// Unhealthy once per run on the first host (the first run and each
	// restart); healthy again at least once (a restart that passed).
	if unhealthyOnFirst != api.RestartLimit+1 || types["healthy"] < 1 || types["rescheduling"] != 1 {
		t.Errorf("flaky's events by type: %v, %d unhealthy on %s; want %d unhealthy there, a healthy one and 1 rescheduling", types, unhealthyOnFirst, first, api.RestartLimit+1)
	}

	// steady: healthy from its first passing check on, never restarted,
	// no health events. (Its very first report, before its check starts,
	// may have no health yet.)
	if i := slices.Index(steadyHealth, api.HealthHealthy); i < 0 || i != len(steadyHealth)-1 || slices.Contains(steadyHealth, api.HealthUnhealthy) {
		t.Errorf("steady's health while flaky failed: %q", steadyHealth)
	}
	if s := c.show("steady"); s.Epoch != steady.Epoch || s.State != api.StateRunning || s.Health != api.HealthHealthy || s.HealthDetail != "" {
		t.Errorf("steady now: %+v (epoch before %d)", s, steady.Epoch)
	}
	if evs, err := c.api.ListEvents(ctx, client.EventFilter{Workload: "steady"}); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range evs {
			if e.Type != "placed" {
				t.Errorf("steady event: %+v", e)
			}
		}
	}
	if w := c.show("execok"); w.Health != api.HealthHealthy || w.State != api.StateRunning {
		t.Errorf("exec check: %+v", w)
	}
	// `workload show -o json` carries the health.
	out, errOut, code := ctl(t, c.api.BaseURL(), "workload", "show", "steady", "-o", "json")
	var raw map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &raw) != nil || raw["health"] != api.HealthHealthy {
		t.Errorf("workload show steady -o json: exit %d: %s%s", code, out, errOut)
	}
	if chk, _ := raw["check"].(map[string]any); chk["type"] != "http" || chk["path"] != "/health" {
		t.Errorf("workload show steady -o json: check %v", raw["check"])
	}
}
