package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/api/client"
)

var (
	// host1 is alive; host2 is lost (no heartbeat) and has a fence device;
	// host3 is lost and has none.
	host1 = api.NodeView{Node: api.Node{Schema: 1, Name: "host-1", CPUs: 8, Memory: 8 * api.GiB}, State: api.NodeReady, Fencing: "ok"}
	host2 = api.NodeView{Node: api.Node{Schema: 1, Name: "host-2", CPUs: 8, Memory: 8 * api.GiB}, State: api.NodeLost, Fencing: "ok",
		Reason: "heartbeat lease expired at 2025-06-01T12:00:00Z"}
	host3 = api.NodeView{Node: api.Node{Schema: 1, Name: "host-3", CPUs: 8, Memory: 8 * api.GiB}, State: api.NodeLost, Fencing: "none"}
)

const (
	fenceWarning      = "This powers off host-2 through its BMC; every workload on it will be restarted elsewhere once the power-off is confirmed."
	confirmOffWarning = "Only do this if you have checked the host is powered off: Bulwark will restart its workloads elsewhere."
	confirmPrompt     = "Type the host name to confirm:"
)

// fencingAPI is a fake cluster with host1, host2 and host3.
func fencingAPI(t *testing.T) *fakeAPI {
	f := newFakeAPI(t)
	for _, n := range []api.NodeView{host1, host2, host3} {
		f.addNode(n)
	}
	f.addFenceDevice("host-1")
	f.addFenceDevice("host-2")
	return f
}

// runCLIWith runs bulwarkctl against f with in as its standard input and
// ctx as its context.
func runCLIWith(t *testing.T, ctx context.Context, f *fakeAPI, in io.Reader, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	app := NewApp(&out, &errb)
	app.Reader = in
	err := app.RunContext(ctx, append([]string{"bulwarkctl", "--api", f.url}, args...))
	return result{stdout: out.String(), stderr: errb.String(), err: err}
}

func wantRequests(t *testing.T, f *fakeAPI, want ...string) {
	t.Helper()
	got := f.requestLog()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("requests %q, want %q", got, want)
	}
}

func wantErr(t *testing.T, r result, parts ...string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("no error; stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	for _, p := range parts {
		if !strings.Contains(r.err.Error(), p) {
			t.Errorf("error lacks %q:\n%v", p, r.err)
		}
	}
	if r.stdout != "" {
		t.Errorf("stdout not empty on error:\n%s", r.stdout)
	}
}

func TestNodeFence(t *testing.T) {
	const sent = "POST /v1/nodes/host-2/fence"
	t.Run("typed host name", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "host-2\n", "node", "fence", "host-2").mustSucceed(t)
		wantRequests(t, f, sent)
		if !strings.Contains(r.stderr, fenceWarning+"\n"+confirmPrompt) {
			t.Errorf("stderr lacks the warning and the question:\n%s", r.stderr)
		}
		for _, w := range []string{"fencing of host-2 requested", "bulwarkctl node show host-2"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
			}
		}
	})
	t.Run("answer without newline and with spaces", func(t *testing.T) {
		f := fencingAPI(t)
		runCLI(t, f, "  host-2 ", "node", "fence", "host-2").mustSucceed(t)
		wantRequests(t, f, sent)
	})
	for _, args := range [][]string{
		{"node", "fence", "host-2", "--yes"},
		{"node", "fence", "--yes", "host-2"},
		{"node", "fence", "-y", "host-2"},
		{"nodes", "fence", "host-2", "-y=true"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			f := fencingAPI(t)
			r := runCLI(t, f, "", args...).mustSucceed(t)
			wantRequests(t, f, sent)
			if strings.Contains(r.stderr, confirmPrompt) {
				t.Errorf("asked despite --yes:\n%s", r.stderr)
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "fence", "host-2", "--yes", "-o", "json").mustSucceed(t)
		var got api.FenceRequest
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Host != "host-2" || !got.At.Equal(testTime) {
			t.Errorf("%v %+v\n%s", err, got, r.stdout)
		}
	})

	// Every answer but the host name cancels, and nothing is sent.
	for _, tt := range []struct {
		name, stdin string
		want        []string
	}{
		{"no", "no\n", []string{"fence host-2 cancelled (nothing was sent to the server)"}},
		{"n", "N\n", []string{"fence host-2 cancelled (nothing was sent to the server)"}},
		{"wrong host name", "host-3\n", []string{`fence host-2 cancelled: you typed "host-3", not the host name "host-2" (nothing was sent to the server)`}},
		{"yes instead of the name", "yes\n", []string{`type the host name "host-2" itself, not "yes"`, "nothing was sent"}},
		{"empty line", "\n", []string{"no host name was typed", "nothing was sent"}},
		{"end of input", "", []string{"no answer on standard input", "--yes", "nothing was sent"}},
		{"name in other case", "HOST-2\n", []string{`you typed "HOST-2"`}},
	} {
		t.Run("cancelled: "+tt.name, func(t *testing.T) {
			f := fencingAPI(t)
			r := runCLI(t, f, tt.stdin, "node", "fence", "host-2")
			wantErr(t, r, tt.want...)
			wantRequests(t, f)
			if !strings.Contains(r.stderr, confirmPrompt) {
				t.Errorf("not asked:\n%s", r.stderr)
			}
		})
	}

	t.Run("standard input not a terminal", func(t *testing.T) {
		f := fencingAPI(t)
		p := filepath.Join(t.TempDir(), "answer")
		if err := os.WriteFile(p, []byte("host-2\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		r := runCLIWith(t, context.Background(), f, in, "node", "fence", "host-2")
		wantErr(t, r, "standard input is not a terminal", "add --yes to fence host-2", "nothing was sent")
		wantRequests(t, f)
		// A pipe is no terminal either.
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		_, _ = pw.WriteString("host-2\n")
		pw.Close()
		r = runCLIWith(t, context.Background(), f, pr, "node", "clear", "host-2")
		wantErr(t, r, "standard input is not a terminal", "add --yes to clear host-2")
		wantRequests(t, f)
	})
	t.Run("interrupted while asking", func(t *testing.T) {
		f := fencingAPI(t)
		pr, pw := io.Pipe() // nobody answers
		defer pw.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		r := runCLIWith(t, ctx, f, pr, "node", "fence", "host-2")
		wantErr(t, r, "fence host-2 cancelled: interrupted (nothing was sent to the server)")
		wantRequests(t, f)
	})

	t.Run("confirm-off", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "host-3\n", "node", "fence", "host-3", "--confirm-off").mustSucceed(t)
		wantRequests(t, f, "POST /v1/nodes/host-3/fence?confirm-off=true")
		for _, w := range []string{confirmOffWarning, "records that host-3 is powered off", "run twice", confirmPrompt} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "through its BMC") {
			t.Errorf("confirm-off shows the BMC warning:\n%s", r.stderr)
		}
		for _, w := range []string{"host-3 is recorded as powered off (Off (operator))", "bulwarkctl node clear host-3"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
			}
		}
		if !f.isFenced("host-3") {
			t.Error("host-3 not fenced")
		}
	})
	t.Run("confirm-off json, flags first", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "-o", "json", "node", "fence", "--confirm-off", "--yes", "host-3").mustSucceed(t)
		var got api.FenceRecord
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Host != "host-3" || got.Device != "operator" {
			t.Errorf("%v %+v\n%s", err, got, r.stdout)
		}
		wantRequests(t, f, "POST /v1/nodes/host-3/fence?confirm-off=true")
	})
	t.Run("confirm-off answered no", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "no\n", "node", "fence", "host-3", "--confirm-off")
		wantErr(t, r, "confirming host-3 off cancelled (nothing was sent to the server)")
		wantRequests(t, f)
		if !strings.Contains(r.stderr, confirmOffWarning) {
			t.Errorf("stderr lacks the confirm-off warning:\n%s", r.stderr)
		}
	})
	t.Run("confirm-off of a live host is refused", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "fence", "host-1", "--confirm-off", "--yes")
		wantErr(t, r, "refused to record host-1 as powered off", "still holds its heartbeat lease", "bulwarkctl node show host-1", "HTTP 409")
		if f.isFenced("host-1") {
			t.Error("host-1 fenced")
		}
	})
	t.Run("confirm-off of a fenced host is refused", func(t *testing.T) {
		f := fencingAPI(t)
		f.setFenced("host-3")
		r := runCLI(t, f, "", "node", "fence", "host-3", "--confirm-off", "--yes")
		wantErr(t, r, "already fenced")
	})
	t.Run("no fence device", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "fence", "host-3", "--yes")
		wantErr(t, r, "host-3 has no fence device, so Bulwark cannot power it off", "bulwarkctl node fence host-3 --confirm-off")
	})
	t.Run("unknown node", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "fence", "host-9", "--yes")
		wantErr(t, r, `node "host-9" not found (list them with: bulwarkctl node list)`)
	})
	t.Run("server without fencing", func(t *testing.T) {
		// A route the fake lacks answers like an older server.
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "fence", "host-2", "--yes", "--api", f.url+"/old")
		wantErr(t, r, "does not offer this request", "upgrade it")
	})
}

func TestNodeClear(t *testing.T) {
	t.Run("typed host name", func(t *testing.T) {
		f := fencingAPI(t)
		f.setFenced("host-2")
		r := runCLI(t, f, "host-2\n", "node", "clear", "host-2").mustSucceed(t)
		wantRequests(t, f, "POST /v1/nodes/host-2/clear")
		if f.isFenced("host-2") {
			t.Error("host-2 still fenced")
		}
		for _, w := range []string{"This lets host-2 run workloads again", "Only do this once the host is repaired", confirmPrompt} {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
			}
		}
		if !strings.Contains(r.stdout, "host-2 cleared: it may run workloads again") {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("yes and json", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "clear", "host-2", "--yes", "-o", "json").mustSucceed(t)
		var got client.NodeActionResult
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got != (client.NodeActionResult{Node: "host-2", Status: "cleared"}) {
			t.Errorf("%v %+v\n%s", err, got, r.stdout)
		}
		if strings.Contains(r.stderr, confirmPrompt) {
			t.Errorf("asked despite --yes:\n%s", r.stderr)
		}
	})
	for _, stdin := range []string{"no\n", "host-1\n", ""} {
		t.Run("cancelled "+strings.TrimSpace(stdin), func(t *testing.T) {
			f := fencingAPI(t)
			f.setFenced("host-2")
			r := runCLI(t, f, stdin, "node", "clear", "host-2")
			wantErr(t, r, "clear host-2 cancelled", "nothing was sent to the server")
			wantRequests(t, f)
			if !f.isFenced("host-2") {
				t.Error("host-2 cleared")
			}
		})
	}
	t.Run("unknown node", func(t *testing.T) {
		f := fencingAPI(t)
		wantErr(t, runCLI(t, f, "", "node", "clear", "host-9", "-y"), `node "host-9" not found`)
	})
}

func TestNodePowerOn(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "power-on", "host-2").mustSucceed(t)
		wantRequests(t, f, "POST /v1/nodes/host-2/power-on")
		for _, w := range []string{"host-2 powered on by host-2-bmc at 2025-06-01T12:00:00Z", "bulwarkctl node clear host-2"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
			}
		}
		if r.stderr != "" {
			t.Errorf("power-on asked or warned: %q", r.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		f := fencingAPI(t)
		r := runCLI(t, f, "", "node", "power-on", "-o", "json", "host-2").mustSucceed(t)
		var got map[string]string
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got["device"] != "host-2-bmc" || got["status"] != "powered on" || got["node"] != "host-2" {
			t.Errorf("%v %v\n%s", err, got, r.stdout)
		}
	})
	t.Run("no fence device", func(t *testing.T) {
		f := fencingAPI(t)
		wantErr(t, runCLI(t, f, "", "node", "power-on", "host-3"), "host-3 has no fence device to power it on with: switch it on by hand", "HTTP 409")
	})
	t.Run("every device failed", func(t *testing.T) {
		f := fencingAPI(t)
		f.powerOnFails = true
		wantErr(t, runCLI(t, f, "", "node", "power-on", "host-2"),
			"every fence device of host-2 failed to power it on", "connection refused", "HTTP 502")
	})
	t.Run("unknown node", func(t *testing.T) {
		f := fencingAPI(t)
		wantErr(t, runCLI(t, f, "", "node", "power-on", "host-9"), `node "host-9" not found`)
	})
}

func TestDevFault(t *testing.T) {
	for _, kind := range []string{"crash", "hang", "partition", "bmc-down", "heal"} {
		t.Run(kind, func(t *testing.T) {
			f := fencingAPI(t)
			f.dev = true
			r := runCLI(t, f, "", "dev", "fault", "host-1", kind).mustSucceed(t)
			wantRequests(t, f, "POST /v1/dev/fault")
			if got := f.injectedFaults(); !reflect.DeepEqual(got, []string{"host-1 " + kind}) {
				t.Errorf("faults %v", got)
			}
			if !strings.HasPrefix(r.stdout, "host-1: "+kind+" injected\n") {
				t.Errorf("stdout %q", r.stdout)
			}
		})
	}
	t.Run("upper case, flags after, json", func(t *testing.T) {
		f := fencingAPI(t)
		f.dev = true
		r := runCLI(t, f, "", "dev", "fault", "host-1", "Partition", "-o", "json").mustSucceed(t)
		var got client.FaultResult
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got != (client.FaultResult{Host: "host-1", Fault: "partition", Status: "injected"}) {
			t.Errorf("%v %+v\n%s", err, got, r.stdout)
		}
	})
	t.Run("not a dev cluster", func(t *testing.T) {
		f := fencingAPI(t)
		wantErr(t, runCLI(t, f, "", "dev", "fault", "host-1", "crash"), "this is not a `bulwarkd dev` cluster", f.url)
		wantRequests(t, f, "POST /v1/dev/fault")
	})
	t.Run("unknown host", func(t *testing.T) {
		f := fencingAPI(t)
		f.dev = true
		wantErr(t, runCLI(t, f, "", "dev", "fault", "host-9", "crash"), `node "host-9" not found (list them with: bulwarkctl node list)`)
	})
}

// TestFencingBadInputSendsNothing is TestBadInputSendsNothing for the
// fencing and dev commands.
func TestFencingBadInputSendsNothing(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"fence without host", []string{"node", "fence", "--yes"}, []string{"missing HOST", "bulwarkctl node fence [options] HOST"}},
		{"fence two hosts", []string{"node", "fence", "host-1", "host-2", "--yes"}, []string{"too many arguments", "expected only HOST"}},
		{"fence bad name", []string{"node", "fence", "Host_2", "--yes"}, []string{`node name "Host_2" is not a DNS label`, "nothing was sent"}},
		{"fence unknown flag", []string{"node", "fence", "host-2", "--force"}, []string{"flag provided but not defined: --force", "bulwarkctl node fence --help"}},
		{"fence bad -o", []string{"node", "fence", "host-2", "--yes", "-o", "xml"}, []string{`invalid output format "xml"`}},
		{"fence bad bool", []string{"node", "fence", "host-2", "--confirm-off=maybe"}, []string{`invalid value "maybe"`}},
		{"clear without host", []string{"node", "clear", "-y"}, []string{"missing HOST"}},
		{"clear bad name", []string{"node", "clear", "-bad-", "-y"}, []string{"flag provided but not defined: -bad-"}},
		{"clear bad name after --", []string{"node", "clear", "host-2", "--", "-bad-"}, []string{"too many arguments"}},
		{"clear name too long", []string{"node", "clear", strings.Repeat("h", 64), "--yes"}, []string{"at most 63", "nothing was sent"}},
		{"power-on without host", []string{"node", "power-on"}, []string{"missing HOST", "bulwarkctl node power-on [options] HOST"}},
		{"power-on takes no --yes", []string{"node", "power-on", "host-2", "--yes"}, []string{"flag provided but not defined: --yes"}},
		{"power-on bad name", []string{"node", "power-on", "host.2"}, []string{"not a DNS label"}},
		{"fault invalid kind", []string{"dev", "fault", "host-1", "explode"}, []string{`unknown fault "explode": use one of crash, hang, partition, bmc-down, heal (nothing was sent to the server)`}},
		{"fault missing kind", []string{"dev", "fault", "host-1"}, []string{"missing FAULT (one of crash, hang, partition, bmc-down, heal)", "bulwarkctl dev fault [options] HOST FAULT"}},
		{"fault missing both", []string{"dev", "fault"}, []string{"missing HOST and FAULT"}},
		{"fault too many", []string{"dev", "fault", "host-1", "crash", "hang"}, []string{"too many arguments"}},
		{"fault bad host", []string{"dev", "fault", "Host_1", "crash"}, []string{"not a DNS label", "nothing was sent"}},
		{"dev unknown subcommand", []string{"dev", "faults", "host-1", "crash"}, []string{`unknown command "faults" for 'bulwarkctl dev'`, `did you mean "fault"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := fencingAPI(t)
			f.dev = true
			r := runCLI(t, f, "host-1\nhost-2\n", tt.args...)
			wantErr(t, r, tt.want...)
			wantRequests(t, f)
		})
	}
}

func TestNodeStatesAndFencing(t *testing.T) {
	f := fencingAPI(t)
	fenced := api.NodeView{Node: api.Node{Schema: 1, Name: "host-4", CPUs: 4, Memory: 4 * api.GiB}, State: api.NodeFenced,
		Fencing: "unfenceable: host-4-bmc: dial tcp 10.0.0.4:443: connect: connection refused",
		Reason:  "fenced by operator at 2025-06-01T12:00:00Z (power Off (operator)); clear with `bulwarkctl node clear host-4` once repaired"}
	f.addNode(fenced)
	timed := host1
	timed.Name, timed.LeaseTTL, timed.SelfFenceAfter, timed.State, timed.Fencing = "host-5", api.Duration(10*time.Second), api.Duration(6*time.Second), api.NodeSuspect, ""
	f.addNode(timed)

	r := runCLI(t, f, "", "node", "list").mustSucceed(t)
	want := []string{
		"NAME STATE FENCING CPU MEMORY WORKLOADS",
		"host-1 ready ok 0/8 0B/8GiB 0",
		"host-2 lost ok 0/8 0B/8GiB 0",
		"host-3 lost none 0/8 0B/8GiB 0",
		"host-4 fenced unfenceable: host-4-bmc: dial tcp 10.... 0/4 0B/4GiB 0",
		"host-5 suspect - 0/8 0B/8GiB 0",
	}
	if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	r = runCLI(t, f, "", "node", "show", "host-4").mustSucceed(t)
	out := strings.Join(lines(r.stdout), "\n")
	for _, w := range []string{
		"State: fenced",
		"Reason: fenced by operator at 2025-06-01T12:00:00Z (power Off (operator)); clear with `bulwarkctl node clear host-4` once repaired",
		"Fencing: unfenceable: host-4-bmc: dial tcp 10.0.0.4:443: connect: connection refused",
		"Lease TTL: -",
		"Self-fence after: -",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("show host-4 lacks %q:\n%s", w, r.stdout)
		}
	}
	r = runCLI(t, f, "", "node", "show", "host-5").mustSucceed(t)
	out = strings.Join(lines(r.stdout), "\n")
	for _, w := range []string{"State: suspect", "Reason: -", "Fencing: - (not checked yet)", "Lease TTL: 10s", "Self-fence after: 6s"} {
		if !strings.Contains(out, w) {
			t.Errorf("show host-5 lacks %q:\n%s", w, r.stdout)
		}
	}
	r = runCLI(t, f, "", "node", "show", "host-3").mustSucceed(t)
	if !strings.Contains(strings.Join(lines(r.stdout), "\n"), "Fencing: none (no fence device") {
		t.Errorf("show host-3:\n%s", r.stdout)
	}
	r = runCLI(t, f, "", "node", "show", "host-5", "-o", "json").mustSucceed(t)
	var raw map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil || raw["lease_ttl"] != "10s" || raw["self_fence_after"] != "6s" || raw["state"] != "suspect" {
		t.Errorf("%v %v", err, raw)
	}
}

func TestFencingHelp(t *testing.T) {
	r := runCLI(t, nil, "", "dev", "fault", "--help").mustSucceed(t)
	for _, w := range []string{"crash", "kills the host's agent process", "hang", "SIGSTOP", "partition", "connection to etcd", "workloads keep", "self-fencing",
		"bmc-down", "emulated BMC unreachable", "heal", "undoes all", "Examples:"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("dev fault help lacks %q:\n%s", w, r.stdout)
		}
	}
	r = runCLI(t, nil, "", "node", "fence", "host-2", "-h").mustSucceed(t)
	for _, w := range []string{"--confirm-off", "--yes", "Only do this", "node clear", "Examples:"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("node fence help lacks %q:\n%s", w, r.stdout)
		}
	}
	r = runCLI(t, nil, "", "node", "list", "--help").mustSucceed(t)
	for _, w := range []string{"FENCING", "suspect", "lost", "fencing", "fenced", "recovered", "unfenceable"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("node list help lacks %q", w)
		}
	}
	r = runCLI(t, nil, "", "--help").mustSucceed(t)
	for _, w := range []string{"dev", "node fence"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("app help lacks %q", w)
		}
	}
}
