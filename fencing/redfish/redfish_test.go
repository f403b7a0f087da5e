package redfish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/fencing"
	"github.com/bulwarkhq/bulwark/fencing/bmcemu"
)

// Distinctive so that a leak into any string is found.
const (
	user      = "fence-admin"
	password  = "Corr3ct-Horse-Battery"
	wrongPass = "Wr0ng-Staple-Pass"
)

// startBMC runs an emulator on a free loopback port; it is closed when the
// test ends, and it must end with no open session.
func startBMC(t *testing.T, mut ...func(*bmcemu.Config)) (*bmcemu.BMC, string) {
	t.Helper()
	certFile := filepath.Join(t.TempDir(), "bmc.pem")
	cfg := bmcemu.Config{Username: user, Password: password, CertFile: certFile}
	for _, m := range mut {
		m(&cfg)
	}
	b, err := bmcemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n := b.Stats().OpenSessions; n != 0 {
			t.Errorf("%d BMC session(s) left open", n)
		}
		_ = b.Close()
	})
	return b, certFile
}

// newDevice points a device at b, verifying b's certificate with certFile.
func newDevice(t *testing.T, b *bmcemu.BMC, certFile string, mut ...func(*Config)) *Device {
	t.Helper()
	cfg := Config{
		Name: "bmc-test", Endpoint: b.URL(), Username: user, Password: password, CAFile: certFile,
		Timeout: 5 * time.Second, RequestTimeout: 2 * time.Second, PollInterval: 10 * time.Millisecond,
		ResendAfter: 10 * time.Second,
	}
	for _, m := range mut {
		m(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, p := range []string{password, wrongPass} {
		if strings.Contains(s, p) {
			t.Fatalf("a password leaked into %q", s)
		}
	}
}

func TestPowerOffConfirmed(t *testing.T) {
	for _, auth := range []AuthMode{AuthSession, AuthBasic} {
		t.Run(string(auth), func(t *testing.T) {
			var hooks atomic.Int32
			b, ca := startBMC(t, func(c *bmcemu.Config) { c.OnPowerOff = func() { hooks.Add(1) } })
			d := newDevice(t, b, ca, func(c *Config) { c.Auth = auth })
			before := time.Now()
			ev, err := d.PowerOff(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if ev.Device != "bmc-test" || ev.Action != "ForceOff" || ev.PowerState != "Off" || ev.Attempts != 1 {
				t.Fatalf("evidence %+v", ev)
			}
			if ev.Started.Before(before) || ev.Confirmed.Before(ev.Started) {
				t.Fatalf("evidence times %+v", ev)
			}
			if b.Power() != fencing.Off || hooks.Load() != 1 {
				t.Fatalf("emulator power %s, OnPowerOff called %d times", b.Power(), hooks.Load())
			}
			st := b.Stats()
			if wantLogins := map[AuthMode]int{AuthSession: 1, AuthBasic: 0}[auth]; st.Logins != wantLogins || st.Logouts != wantLogins {
				t.Fatalf("%s auth: %d logins, %d logouts", auth, st.Logins, st.Logouts)
			}
		})
	}
}

func TestPowerStatePowerOnAndCheck(t *testing.T) {
	b, ca := startBMC(t, func(c *bmcemu.Config) { c.InitialPower = fencing.Off })
	d := newDevice(t, b, ca)
	ctx := ctxT(t)
	if st, err := d.PowerState(ctx); err != nil || st != fencing.Off {
		t.Fatalf("PowerState = %s, %v", st, err)
	}
	if err := d.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.PowerOn(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := d.PowerState(ctx); err != nil || st != fencing.On {
		t.Fatalf("after PowerOn: %s, %v", st, err)
	}
	// Check changes nothing.
	if err := d.Check(ctx); err != nil || b.Power() != fencing.On {
		t.Fatalf("Check: %v, power %s", err, b.Power())
	}
	if got := b.Stats().Resets; len(got) != 1 || got[0] != "On" {
		t.Fatalf("resets sent: %v", got)
	}
}

func TestWrongPasswordIsAuthAndNeverShown(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, ca := startBMC(t)
	for _, auth := range []AuthMode{AuthSession, AuthBasic} {
		d := newDevice(t, b, ca, func(c *Config) { c.Auth = auth; c.Password = wrongPass; c.Log = log })
		ctx := ctxT(t)
		_, err := d.PowerOff(ctx)
		if !errors.Is(err, fencing.ErrAuth) {
			t.Fatalf("%s: want ErrAuth, got %v", auth, err)
		}
		var de *fencing.DeviceError
		if !errors.As(err, &de) || de.Status != 401 {
			t.Fatalf("%s: want a DeviceError with status 401, got %#v", auth, err)
		}
		noSecrets(t, err.Error())
		noSecrets(t, fmt.Sprintf("%v %+v %#v", err, err, de))
		if err := d.Check(ctx); !errors.Is(err, fencing.ErrAuth) {
			t.Fatalf("%s: Check: want ErrAuth, got %v", auth, err)
		} else {
			noSecrets(t, err.Error())
		}
		noSecrets(t, fmt.Sprintf("%v %+v %#v %s", d, d, d, d))
		cfg := Config{Endpoint: b.URL(), Username: user, Password: wrongPass, Auth: auth}
		noSecrets(t, fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg, cfg))
		noSecrets(t, fmt.Sprint(cfg)+cfg.String()+cfg.GoString())
		log.Info("config", "cfg", cfg)
	}
	noSecrets(t, logs.String())
	if !strings.Contains(logs.String(), "[redacted]") {
		t.Fatalf("the logged config does not show a redacted password: %s", logs.String())
	}
	if len(b.Stats().Resets) != 0 {
		t.Fatal("a reset went through with a wrong password")
	}
}

func TestServerError(t *testing.T) {
	b, ca := startBMC(t)
	b.SetFault(bmcemu.Fault{ServerError: true})
	d := newDevice(t, b, ca)
	_, err := d.PowerOff(ctxT(t))
	var de *fencing.DeviceError
	if !errors.Is(err, fencing.ErrDevice) || !errors.As(err, &de) || de.Status != 500 {
		t.Fatalf("want ErrDevice with status 500, got %v", err)
	}
	if err := d.Check(ctxT(t)); !errors.Is(err, fencing.ErrDevice) {
		t.Fatalf("Check: want ErrDevice, got %v", err)
	}
	b.SetFault(bmcemu.Fault{})
	if err := d.Check(ctxT(t)); err != nil {
		t.Fatalf("Check after healing: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	b, ca := startBMC(t)
	d := newDevice(t, b, ca)
	b.SetFault(bmcemu.Fault{Unreachable: true})
	if _, err := d.PowerOff(ctxT(t)); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("connections dropped: want ErrUnreachable, got %v", err)
	}
	if err := d.Check(ctxT(t)); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("Check: want ErrUnreachable, got %v", err)
	}
	b.SetFault(bmcemu.Fault{})
	// Nothing listening any more: connection refused.
	b2, ca2 := startBMC(t)
	d2 := newDevice(t, b2, ca2)
	_ = b2.Close()
	if _, err := d2.PowerOff(ctxT(t)); !errors.Is(err, fencing.ErrUnreachable) {
		t.Fatalf("connection refused: want ErrUnreachable, got %v", err)
	}
}

func TestSlowBMC(t *testing.T) {
	b, ca := startBMC(t)
	b.SetFault(bmcemu.Fault{Delay: 20 * time.Millisecond})
	d := newDevice(t, b, ca)
	if _, err := d.PowerOff(ctxT(t)); err != nil {
		t.Fatalf("slow but within the timeout: %v", err)
	}

	b2, ca2 := startBMC(t)
	b2.SetFault(bmcemu.Fault{Delay: 10 * time.Second})
	for name, mut := range map[string]func(*Config){
		"operation timeout": func(c *Config) { c.Timeout = 300 * time.Millisecond },
		"request timeout":   func(c *Config) { c.RequestTimeout = 300 * time.Millisecond },
	} {
		d2 := newDevice(t, b2, ca2, mut)
		_, err := d2.PowerOff(ctxT(t))
		if !errors.Is(err, fencing.ErrTimeout) {
			t.Fatalf("%s: want ErrTimeout, got %v", name, err)
		}
	}
	// The caller's deadline counts as well.
	d3 := newDevice(t, b2, ca2)
	ctx, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	if err := d3.Check(ctx); !errors.Is(err, fencing.ErrTimeout) {
		t.Fatalf("caller deadline: want ErrTimeout, got %v", err)
	}
	if b2.Power() != fencing.On {
		t.Fatal("power changed although every request timed out")
	}
}

func TestPowerNeverChangesIsNotConfirmed(t *testing.T) {
	b, ca := startBMC(t)
	b.SetFault(bmcemu.Fault{StuckPower: true})
	d := newDevice(t, b, ca, func(c *Config) { c.Timeout = time.Second; c.ResendAfter = 50 * time.Millisecond })
	ev, err := d.PowerOff(ctxT(t))
	if !errors.Is(err, fencing.ErrNotConfirmed) {
		t.Fatalf("want ErrNotConfirmed, got %v (evidence %+v)", err, ev)
	}
	if ev != (fencing.Evidence{}) {
		t.Fatalf("evidence returned with an error: %+v", ev)
	}
	if !strings.Contains(err.Error(), "last read: On") {
		t.Fatalf("error does not say what was read: %v", err)
	}
	if n := len(b.Stats().Resets); n < 2 {
		t.Fatalf("ForceOff sent %d time(s); want it re-sent while the state reads On", n)
	}
}

// A BMC that drops the first ForceOff: the re-send powers the host off.
func TestDroppedResetIsResent(t *testing.T) {
	b, ca := startBMC(t)
	b.SetFault(bmcemu.Fault{StuckPower: true})
	d := newDevice(t, b, ca, func(c *Config) { c.ResendAfter = 50 * time.Millisecond })
	type result struct {
		ev  fencing.Evidence
		err error
	}
	res := make(chan result, 1)
	go func() {
		ev, err := d.PowerOff(ctxT(t))
		res <- result{ev, err}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for len(b.Stats().Resets) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	b.SetFault(bmcemu.Fault{})
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.ev.Attempts < 2 || b.Power() != fencing.Off {
		t.Fatalf("evidence %+v, power %s", r.ev, b.Power())
	}
}

func TestConflictCountsOnlyAfterReadingOff(t *testing.T) {
	t.Run("already off", func(t *testing.T) {
		b, ca := startBMC(t, func(c *bmcemu.Config) { c.InitialPower = fencing.Off })
		b.SetFault(bmcemu.Fault{ConflictWhenOff: true})
		ev, err := newDevice(t, b, ca).PowerOff(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if ev.PowerState != "Off" {
			t.Fatalf("evidence %+v", ev)
		}
	})
	t.Run("409 but on", func(t *testing.T) {
		b, ca := startBMC(t)
		b.SetFault(bmcemu.Fault{ConflictAlways: true})
		d := newDevice(t, b, ca, func(c *Config) { c.Timeout = time.Second })
		if _, err := d.PowerOff(ctxT(t)); !errors.Is(err, fencing.ErrNotConfirmed) {
			t.Fatalf("a 409 with the power on must not count: got %v", err)
		}
		if b.Power() != fencing.On {
			t.Fatal("power changed")
		}
	})
}

func TestPoweringOffIsRiddenOut(t *testing.T) {
	b, ca := startBMC(t, func(c *bmcemu.Config) { c.PowerOffDelay = 300 * time.Millisecond })
	// ResendAfter is shorter than the transition: PoweringOff must hold the
	// re-send back.
	d := newDevice(t, b, ca, func(c *Config) { c.ResendAfter = 50 * time.Millisecond })
	ev, err := d.PowerOff(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	st := b.Stats()
	if st.Reads[fencing.PoweringOff] == 0 {
		t.Fatalf("never read PoweringOff: %v", st.Reads)
	}
	if ev.Attempts != 1 || len(st.Resets) != 1 {
		t.Fatalf("ForceOff re-sent during PoweringOff: evidence %+v, resets %v", ev, st.Resets)
	}
	// And a deadline inside the transition is not success.
	b2, ca2 := startBMC(t, func(c *bmcemu.Config) { c.PowerOffDelay = 10 * time.Second })
	d2 := newDevice(t, b2, ca2, func(c *Config) { c.Timeout = time.Second })
	_, err = d2.PowerOff(ctxT(t))
	if !errors.Is(err, fencing.ErrNotConfirmed) {
		t.Fatalf("want ErrNotConfirmed, got %v", err)
	}
	if b2.Stats().Reads[fencing.PoweringOff] > 0 && !strings.Contains(err.Error(), "last read: PoweringOff") {
		t.Fatalf("the error does not say PoweringOff was read: %v", err)
	}
}

func TestCertificateVerification(t *testing.T) {
	b, ca := startBMC(t)
	if err := newDevice(t, b, ca).Check(ctxT(t)); err != nil {
		t.Fatalf("with the right CA: %v", err)
	}
	_, otherCA := startBMC(t)
	if err := newDevice(t, b, otherCA).Check(ctxT(t)); !errors.Is(err, fencing.ErrTLS) {
		t.Fatalf("with another BMC's CA: want ErrTLS, got %v", err)
	}
	if err := newDevice(t, b, "").Check(ctxT(t)); !errors.Is(err, fencing.ErrTLS) {
		t.Fatalf("with the system roots: want ErrTLS, got %v", err)
	}
	if err := newDevice(t, b, "", func(c *Config) { c.Insecure = true }).Check(ctxT(t)); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if len(b.Stats().Resets) != 0 || b.Stats().Logins != 2 {
		t.Fatalf("stats %+v", b.Stats())
	}
}

func TestSystemID(t *testing.T) {
	b, ca := startBMC(t, func(c *bmcemu.Config) { c.SystemID = "System.Embedded.1" })
	if err := newDevice(t, b, ca, func(c *Config) { c.SystemID = "System.Embedded.1" }).Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if err := newDevice(t, b, ca).Check(ctxT(t)); err != nil {
		t.Fatalf("default system: %v", err)
	}
	err := newDevice(t, b, ca, func(c *Config) { c.SystemID = "2" }).Check(ctxT(t))
	if !errors.Is(err, fencing.ErrConfig) || !strings.Contains(err.Error(), "System.Embedded.1") {
		t.Fatalf("unknown system: want ErrConfig naming the systems there are, got %v", err)
	}
}

// Levels: a refused password, a dead BMC, then a working one.
func TestLevelsFallThrough(t *testing.T) {
	good, goodCA := startBMC(t)
	dead, deadCA := startBMC(t)
	dead.SetFault(bmcemu.Fault{Unreachable: true})
	levels := fencing.Levels{
		newDevice(t, good, goodCA, func(c *Config) { c.Name = "wrong-password"; c.Password = wrongPass }),
		newDevice(t, dead, deadCA, func(c *Config) { c.Name = "dead-bmc" }),
		newDevice(t, good, goodCA, func(c *Config) { c.Name = "good-bmc" }),
	}
	ev, err := levels.Fence(ctxT(t), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Device != "good-bmc" || ev.Level != 3 || good.Power() != fencing.Off {
		t.Fatalf("evidence %+v, power %s", ev, good.Power())
	}

	good.SetPower(fencing.On)
	good.SetFault(bmcemu.Fault{StuckPower: true})
	_, err = fencing.FenceHost(ctxT(t), levels, time.Second)
	if !errors.Is(err, fencing.ErrFenceFailed) || !errors.Is(err, fencing.ErrAuth) ||
		!errors.Is(err, fencing.ErrUnreachable) || !errors.Is(err, fencing.ErrNotConfirmed) {
		t.Fatalf("want every failure kind in the error, got %v", err)
	}
	for _, name := range []string{"wrong-password", "dead-bmc", "good-bmc"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	noSecrets(t, err.Error())

	results := levels.Check(ctxT(t), 2*time.Second)
	if !errors.Is(results[0].Err, fencing.ErrAuth) || !errors.Is(results[1].Err, fencing.ErrUnreachable) || results[2].Err != nil {
		t.Fatalf("health probes %+v", results)
	}
}

func TestConfigValidation(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Config{Endpoint: "https://127.0.0.1:8443", Username: user, Password: password}
	for name, tc := range map[string]struct {
		mut func(*Config)
		ok  bool
	}{
		"ok":               {func(*Config) {}, true},
		"http":             {func(c *Config) { c.Endpoint = "http://127.0.0.1:8443" }, false},
		"path":             {func(c *Config) { c.Endpoint = "https://127.0.0.1/redfish/v1" }, false},
		"userinfo":         {func(c *Config) { c.Endpoint = "https://u:p@127.0.0.1" }, false},
		"no user":          {func(c *Config) { c.Username = "" }, false},
		"no password":      {func(c *Config) { c.Password = "" }, false},
		"two passwords":    {func(c *Config) { c.PasswordFile = pwFile }, false},
		"password file":    {func(c *Config) { c.Password = ""; c.PasswordFile = pwFile }, true},
		"missing file":     {func(c *Config) { c.Password = ""; c.PasswordFile = filepath.Join(dir, "nope") }, false},
		"env":              {func(c *Config) { c.Password = ""; c.PasswordEnv = "BULWARK_TEST_BMC_PW" }, true},
		"empty env":        {func(c *Config) { c.Password = ""; c.PasswordEnv = "BULWARK_TEST_BMC_PW_UNSET" }, false},
		"insecure with CA": {func(c *Config) { c.Insecure = true; c.CAFile = pwFile }, false},
		"CA not PEM":       {func(c *Config) { c.CAFile = pwFile }, false},
		"bad auth":         {func(c *Config) { c.Auth = "digest" }, false},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("BULWARK_TEST_BMC_PW", password)
			cfg := base
			tc.mut(&cfg)
			d, err := New(cfg)
			if tc.ok != (err == nil) {
				t.Fatalf("New: %v", err)
			}
			if err != nil {
				if !errors.Is(err, fencing.ErrConfig) {
					t.Fatalf("want ErrConfig, got %v", err)
				}
				noSecrets(t, err.Error())
				return
			}
			if pw, err := d.password(); err != nil || pw != password {
				t.Fatalf("password source: %v", err)
			}
			if d.Name() != "127.0.0.1:8443" {
				t.Fatalf("default name %q", d.Name())
			}
		})
	}
}

// The password file is read at each operation: fixing it needs no restart.
func TestPasswordFileReread(t *testing.T) {
	b, ca := startBMC(t)
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(wrongPass), 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDevice(t, b, ca, func(c *Config) { c.Password = ""; c.PasswordFile = pwFile })
	if err := d.Check(ctxT(t)); !errors.Is(err, fencing.ErrAuth) {
		t.Fatalf("want ErrAuth, got %v", err)
	}
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Check(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestCancelledContext(t *testing.T) {
	b, ca := startBMC(t)
	d := newDevice(t, b, ca)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.PowerOff(ctx); err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if b.Power() != fencing.On {
		t.Fatal("power changed with a cancelled context")
	}
}

// Failures and timeouts leave neither BMC sessions (checked by startBMC) nor
// goroutines behind.
func TestNothingLeaks(t *testing.T) {
	b, ca := startBMC(t, func(c *bmcemu.Config) { c.MaxSessions = 4 })
	d := newDevice(t, b, ca, func(c *Config) { c.Timeout = 300 * time.Millisecond })
	_ = d.Check(ctxT(t)) // warm up lazily started runtime goroutines
	time.Sleep(50 * time.Millisecond)
	baseline := runtime.NumGoroutine()

	b.SetFault(bmcemu.Fault{StuckPower: true})
	for range 6 { // more than MaxSessions: a leak would lock us out
		// Usually ErrNotConfirmed; on a loaded machine the deadline may
		// already pass during login.
		if _, err := d.PowerOff(ctxT(t)); !errors.Is(err, fencing.ErrNotConfirmed) && !errors.Is(err, fencing.ErrTimeout) {
			t.Fatalf("want ErrNotConfirmed, got %v", err)
		}
	}
	b.SetFault(bmcemu.Fault{})
	if err := d.Check(ctxT(t)); err != nil {
		t.Fatalf("locked out after timed-out operations: %v", err)
	}
	if st := b.Stats(); st.OpenSessions != 0 || st.Logins != st.Logouts {
		t.Fatalf("sessions: %+v", st)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > baseline && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines, %d before:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}
