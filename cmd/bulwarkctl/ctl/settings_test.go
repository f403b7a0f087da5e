package ctl

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

var customSettings = api.Settings{
	Schema: api.SchemaVersion, Strategy: api.StrategySpread, Preemption: true,
	TolerateHostFailures: 1, ReservedCPUs: 2, ReservedMemory: 4 * api.GiB,
	FailureTimeout:     api.Duration(api.DefaultFailureTimeout),
	RebalanceThreshold: api.DefaultRebalanceThreshold, AutoRebalanceInterval: api.Duration(api.DefaultAutoRebalanceInterval),
}

// withDefaultFailureTimeout fills in the failure timeout a test case's
// settings leave out: the one of customSettings, which they start from.
func withDefaultFailureTimeout(s api.Settings) api.Settings {
	if s.FailureTimeout == 0 {
		s.FailureTimeout = customSettings.FailureTimeout
	}
	if s.RebalanceThreshold == 0 {
		s.RebalanceThreshold, s.AutoRebalanceInterval = customSettings.RebalanceThreshold, customSettings.AutoRebalanceInterval
	}
	return s
}

func TestSettingsShow(t *testing.T) {
	f := newFakeAPI(t)
	t.Run("defaults", func(t *testing.T) {
		r := runCLI(t, f, "", "settings", "show").mustSucceed(t)
		want := []string{
			"Strategy: binpack",
			"Preemption: false",
			"Tolerate host failures: 0",
			"Reserved CPUs: 0",
			"Reserved memory: 0B",
			"Watchdog fencing: false",
			"Watchdog timeout: 0s",
			"Failure timeout: 10m0s",
			"Rebalance threshold: 20 points",
			"Auto rebalance: false",
			"Auto rebalance interval: 10m0s",
		}
		if got := lines(r.stdout); !reflect.DeepEqual(got, want) {
			t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})
	f.setSettings(customSettings)
	t.Run("table", func(t *testing.T) {
		r := runCLI(t, f, "", "setting", "get").mustSucceed(t)
		out := strings.Join(lines(r.stdout), "\n")
		for _, w := range []string{"Strategy: spread", "Preemption: true", "Tolerate host failures: 1", "Reserved CPUs: 2", "Reserved memory: 4GiB"} {
			if !strings.Contains(out, w) {
				t.Errorf("output lacks %q:\n%s", w, r.stdout)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := runCLI(t, f, "", "settings", "show", "-o", "json").mustSucceed(t)
		var got api.Settings
		dec := json.NewDecoder(strings.NewReader(r.stdout))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("stdout is not one JSON settings object: %v\n%s", err, r.stdout)
		}
		if got != customSettings {
			t.Errorf("got %+v, want %+v", got, customSettings)
		}
		if !strings.Contains(r.stdout, `"reserved_memory": "4GiB"`) {
			t.Errorf("json:\n%s", r.stdout)
		}
	})
	if reqs := f.requestLog(); len(reqs) != 3 || reqs[0] != "GET /v1/settings" {
		t.Errorf("requests %v", reqs)
	}
}

func TestSettingsSet(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want api.Settings // starting from customSettings
		diff string
	}{
		{"strategy only", []string{"--strategy", "binpack"},
			api.Settings{Schema: 1, Strategy: api.StrategyBinpack, Preemption: true, TolerateHostFailures: 1, ReservedCPUs: 2, ReservedMemory: 4 * api.GiB},
			"settings updated: strategy spread -> binpack"},
		{"strategy in capitals", []string{"--strategy=BINPACK"},
			api.Settings{Schema: 1, Strategy: api.StrategyBinpack, Preemption: true, TolerateHostFailures: 1, ReservedCPUs: 2, ReservedMemory: 4 * api.GiB},
			"settings updated: strategy spread -> binpack"},
		{"preemption off", []string{"--preemption=false"},
			api.Settings{Schema: 1, Strategy: api.StrategySpread, Preemption: false, TolerateHostFailures: 1, ReservedCPUs: 2, ReservedMemory: 4 * api.GiB},
			"settings updated: preemption true -> false"},
		{"zero values are changes too", []string{"--tolerate-host-failures", "0", "--reserved-cpus=0", "--reserved-memory", "0"},
			api.Settings{Schema: 1, Strategy: api.StrategySpread, Preemption: true},
			"settings updated: tolerate-host-failures 1 -> 0, reserved-cpus 2 -> 0, reserved-memory 4GiB -> 0B"},
		{"everything", []string{"--strategy", "binpack", "--preemption=false", "--tolerate-host-failures", "3", "--reserved-cpus", "1", "--reserved-memory", "1.5GiB"},
			api.Settings{Schema: 1, Strategy: api.StrategyBinpack, TolerateHostFailures: 3, ReservedCPUs: 1, ReservedMemory: 1536 * api.MiB},
			"settings updated: strategy spread -> binpack, preemption true -> false, tolerate-host-failures 1 -> 3, reserved-cpus 2 -> 1, reserved-memory 4GiB -> 1536MiB"},
		{"same value", []string{"--strategy", "spread"}, customSettings,
			"settings unchanged: they already had these values"},
	}
	for _, tt := range tests {
		for _, where := range []string{"after set", "before set"} {
			t.Run(tt.name+" "+where, func(t *testing.T) {
				f := newFakeAPI(t)
				f.setSettings(customSettings)
				args := append([]string{"settings", "set"}, tt.args...)
				if where == "before set" {
					// Global options and the command's flags mixed, as
					// "bulwarkctl -o table settings set FLAGS".
					args = append([]string{"-o", "table"}, args...)
				}
				r := runCLI(t, f, "", args...).mustSucceed(t)
				if got, want := f.currentSettings(), withDefaultFailureTimeout(tt.want); got != want {
					t.Errorf("server has %+v, want %+v", got, tt.want)
				}
				if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/settings", "PUT /v1/settings"}) {
					t.Errorf("requests %v", reqs)
				}
				// The PUT body is the whole set: every field, strict JSON.
				puts := f.settingsPutBodies()
				var sent map[string]any
				if err := json.Unmarshal([]byte(puts[0]), &sent); err != nil {
					t.Fatal(err)
				}
				for _, k := range []string{"strategy", "preemption", "tolerate_host_failures", "reserved_cpus", "reserved_memory", "failure_timeout"} {
					if _, ok := sent[k]; !ok {
						t.Errorf("PUT body lacks %q: %s", k, puts[0])
					}
				}
				got := lines(r.stdout)
				if got[0] != tt.diff {
					t.Errorf("first line %q, want %q", got[0], tt.diff)
				}
				if len(got) != 12 || !strings.HasPrefix(got[1], "Strategy: ") {
					t.Errorf("settings table missing:\n%s", r.stdout)
				}
			})
		}
	}

	t.Run("json", func(t *testing.T) {
		f := newFakeAPI(t)
		r := runCLI(t, f, "", "settings", "set", "--preemption", "-o", "json").mustSucceed(t)
		var got api.Settings
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
			t.Fatalf("%v\n%s", err, r.stdout)
		}
		if want := (api.Settings{Schema: 1, Strategy: api.StrategyBinpack, Preemption: true, FailureTimeout: api.Duration(api.DefaultFailureTimeout),
			RebalanceThreshold: api.DefaultRebalanceThreshold, AutoRebalanceInterval: api.Duration(api.DefaultAutoRebalanceInterval)}); got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})
	t.Run("server refuses", func(t *testing.T) {
		// The server stores something the CLI would not have accepted;
		// writing it back is refused locally, after the GET only.
		f := newFakeAPI(t)
		bad := customSettings
		bad.TolerateHostFailures = 99
		f.setSettings(bad)
		r := runCLI(t, f, "", "settings", "set", "--strategy", "binpack")
		if r.err == nil || !strings.Contains(r.err.Error(), "nothing was changed: tolerate_host_failures must be from 0 to 16, got 99") {
			t.Errorf("error %v", r.err)
		}
		if reqs := f.requestLog(); !reflect.DeepEqual(reqs, []string{"GET /v1/settings"}) {
			t.Errorf("requests %v", reqs)
		}
	})
	t.Run("newer server", func(t *testing.T) {
		f := newFakeAPI(t)
		f.settingsExtra = map[string]any{"max_moves_per_minute": 5}
		r := runCLI(t, f, "", "settings", "set", "--strategy", "spread")
		if r.err == nil || !strings.Contains(r.err.Error(), `the server has a setting this client does not know ("max_moves_per_minute")`) {
			t.Errorf("error %v", r.err)
		}
		if puts := f.settingsPutBodies(); len(puts) != 0 {
			t.Errorf("settings were written: %v", puts)
		}
		// Showing them still works.
		runCLI(t, f, "", "settings", "show").mustSucceed(t)
	})
	t.Run("unreachable", func(t *testing.T) {
		dead := newFakeAPI(t)
		dead.srv.Close()
		r := runCLI(t, dead, "", "settings", "set", "--strategy", "spread")
		if r.err == nil || !strings.Contains(r.err.Error(), "cannot reach the Bulwark API") {
			t.Errorf("error %v", r.err)
		}
	})
}

// TestSettingsPutBodyIsStrict checks that what the CLI sends decodes with
// unknown fields refused, as the server decodes it.
func TestSettingsPutBodyIsStrict(t *testing.T) {
	f := newFakeAPI(t)
	runCLI(t, f, "", "settings", "set", "--reserved-memory", "512MiB").mustSucceed(t)
	body := f.settingsPutBodies()[0]
	dec := json.NewDecoder(bytes.NewReader([]byte(body)))
	dec.DisallowUnknownFields()
	var st api.Settings
	if err := dec.Decode(&st); err != nil || st.ReservedMemory != 512*api.MiB {
		t.Errorf("body %s: %v %+v", body, err, st)
	}
}

func TestSettingsWatchdog(t *testing.T) {
	withWatchdog := customSettings
	withWatchdog.WatchdogFencing, withWatchdog.WatchdogTimeout = true, api.Duration(time.Minute)
	t.Run("show", func(t *testing.T) {
		f := newFakeAPI(t)
		f.setSettings(withWatchdog)
		r := runCLI(t, f, "", "settings", "show").mustSucceed(t)
		got := lines(r.stdout)
		if len(got) != 11 || got[5] != "Watchdog fencing: true" || got[6] != "Watchdog timeout: 1m0s" {
			t.Errorf("got\n%s", r.stdout)
		}
		r = runCLI(t, f, "", "settings", "show", "-o", "json").mustSucceed(t)
		if !strings.Contains(r.stdout, `"watchdog_fencing": true`) || !strings.Contains(r.stdout, `"watchdog_timeout": "1m0s"`) {
			t.Errorf("json:\n%s", r.stdout)
		}
	})

	tests := []struct {
		name  string
		start api.Settings
		args  []string
		want  api.Settings
		diff  string
	}{
		{"turn on with a timeout", customSettings, []string{"--watchdog-fencing=true", "--watchdog-timeout", "60s"}, withWatchdog,
			"settings updated: watchdog-fencing false -> true, watchdog-timeout 0s -> 1m0s"},
		{"turn on, the server has a timeout", func() api.Settings { s := customSettings; s.WatchdogTimeout = api.Duration(time.Minute); return s }(),
			[]string{"--watchdog-fencing"}, withWatchdog, "settings updated: watchdog-fencing false -> true"},
		{"change the timeout", withWatchdog, []string{"--watchdog-timeout", "2m"},
			func() api.Settings { s := withWatchdog; s.WatchdogTimeout = api.Duration(2 * time.Minute); return s }(),
			"settings updated: watchdog-timeout 1m0s -> 2m0s"},
		{"turn off, keep the timeout", withWatchdog, []string{"--watchdog-fencing=false"},
			func() api.Settings { s := withWatchdog; s.WatchdogFencing = false; return s }(),
			"settings updated: watchdog-fencing true -> false"},
		{"turn off and unset", withWatchdog, []string{"--watchdog-fencing=false", "--watchdog-timeout", "0"}, customSettings,
			"settings updated: watchdog-fencing true -> false, watchdog-timeout 1m0s -> 0s"},
		{"the longest timeout", customSettings, []string{"--watchdog-timeout=1h"},
			func() api.Settings { s := customSettings; s.WatchdogTimeout = api.Duration(time.Hour); return s }(),
			"settings updated: watchdog-timeout 0s -> 1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.setSettings(tt.start)
			r := runCLI(t, f, "", append([]string{"settings", "set"}, tt.args...)...).mustSucceed(t)
			if got := f.currentSettings(); got != tt.want {
				t.Errorf("server has %+v, want %+v", got, tt.want)
			}
			if got := lines(r.stdout); got[0] != tt.diff {
				t.Errorf("first line %q, want %q", got[0], tt.diff)
			}
			// What is sent decodes strictly, with the watchdog fields
			// present exactly when set.
			body := f.settingsPutBodies()[0]
			dec := json.NewDecoder(strings.NewReader(body))
			dec.DisallowUnknownFields()
			var sent api.Settings
			if err := dec.Decode(&sent); err != nil || sent != tt.want {
				t.Errorf("PUT body %s: %v", body, err)
			}
		})
	}

	bad := []struct {
		name  string
		start api.Settings
		args  []string
		want  string
		gets  int // requests made: 0 when refused before anything is sent
	}{
		{"on without a timeout anywhere", customSettings, []string{"--watchdog-fencing=true"},
			"nothing was changed: watchdog_fencing needs watchdog_timeout: the hardware watchdog's timeout on the hosts (give --watchdog-timeout DURATION", 1},
		{"unset the timeout while on", withWatchdog, []string{"--watchdog-timeout", "0s"},
			"nothing was changed: watchdog_fencing needs watchdog_timeout", 1},
		{"on with a zero timeout", customSettings, []string{"--watchdog-fencing", "--watchdog-timeout", "0s"},
			"watchdog_fencing needs watchdog_timeout", 0},
		{"timeout too long", customSettings, []string{"--watchdog-timeout", "61m"}, "watchdog_timeout must be from 0 to 1h, got 1h1m0s", 0},
		{"negative timeout", customSettings, []string{"--watchdog-timeout=-5s"}, "watchdog_timeout must be from 0 to 1h, got -5s", 0},
		{"not a duration", customSettings, []string{"--watchdog-timeout", "60"}, `--watchdog-timeout: "60" is not a duration: use a number with a unit, e.g. 60s or 2m`, 0},
		{"bool without =", customSettings, []string{"--watchdog-fencing", "true"}, "write a true/false value with '='", 0},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeAPI(t)
			f.setSettings(tt.start)
			r := runCLI(t, f, "", append([]string{"settings", "set"}, tt.args...)...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Errorf("error %v, want %q", r.err, tt.want)
			}
			if reqs := f.requestLog(); len(reqs) != tt.gets {
				t.Errorf("requests %v, want %d GET and no PUT", reqs, tt.gets)
			}
			if got := f.currentSettings(); got != tt.start {
				t.Errorf("settings changed to %+v", got)
			}
		})
	}
}

// TestSettingsFailureTimeout: --failure-timeout sets the quiet period
// after which failure counts expire; 0 is never; bad values send nothing.
func TestSettingsFailureTimeout(t *testing.T) {
	for _, tt := range []struct {
		arg, diff string
		want      time.Duration
	}{
		{"30m", "settings updated: failure-timeout 10m0s -> 30m0s", 30 * time.Minute},
		{"0", "settings updated: failure-timeout 10m0s -> 0s (never)", 0},
	} {
		f := newFakeAPI(t)
		f.setSettings(customSettings)
		r := runCLI(t, f, "", "settings", "set", "--failure-timeout", tt.arg).mustSucceed(t)
		if got := lines(r.stdout); got[0] != tt.diff {
			t.Errorf("first line %q, want %q", got[0], tt.diff)
		}
		if got := f.currentSettings(); time.Duration(got.FailureTimeout) != tt.want {
			t.Errorf("server has %v, want %v", got.FailureTimeout, tt.want)
		}
	}
	f := newFakeAPI(t)
	f.setSettings(customSettings)
	for _, arg := range []string{"ten minutes", "-1m", "721h"} {
		r := runCLI(t, f, "", "settings", "set", "--failure-timeout", arg)
		if r.err == nil || !strings.Contains(r.err.Error(), "failure") {
			t.Errorf("--failure-timeout %q: error %v", arg, r.err)
		}
	}
	if reqs := f.requestLog(); len(reqs) != 0 {
		t.Errorf("bad values sent requests: %v", reqs)
	}
	r := runCLI(t, f, "", "settings", "show", "-o", "yaml").mustSucceed(t)
	if !strings.Contains(r.stdout, "failure_timeout: 10m0s\n") || !strings.Contains(r.stdout, "strategy: spread\n") {
		t.Errorf("yaml:\n%s", r.stdout)
	}
}
