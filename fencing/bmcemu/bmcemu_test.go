package bmcemu

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bulwarkhq/bulwark/fencing"
)

const (
	user = "admin"
	pass = "emulator-Pa55"
)

func start(t *testing.T, mut ...func(*Config)) *BMC {
	t.Helper()
	cfg := Config{Username: user, Password: pass}
	for _, m := range mut {
		m(&cfg)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// client trusts b's certificate and nothing else.
type client struct {
	t   *testing.T
	b   *BMC
	hc  *http.Client
	tok string // X-Auth-Token when set
	bas bool   // send Basic credentials
}

func newClient(t *testing.T, b *BMC) *client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CertPEM()) {
		t.Fatal("CertPEM is not PEM")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return &client{t: t, b: b, hc: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *client) do(method, path, body string) (*http.Response, map[string]any) {
	c.t.Helper()
	resp, m, err := c.try(method, path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, m
}

func (c *client) try(method, path, body string) (*http.Response, map[string]any, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.b.URL()+path, rd)
	if err != nil {
		return nil, nil, err
	}
	if c.tok != "" {
		req.Header.Set("X-Auth-Token", c.tok)
	}
	if c.bas {
		req.SetBasicAuth(user, pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, nil, err
		}
	}
	return resp, m, nil
}

func (c *client) reset(t *testing.T, resetType string) int {
	t.Helper()
	resp, _ := c.do(http.MethodPost, "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", `{"ResetType":"`+resetType+`"}`)
	return resp.StatusCode
}

func TestServiceRootAndAuth(t *testing.T) {
	b := start(t)
	c := newClient(t, b)
	resp, root := c.do(http.MethodGet, "/redfish/v1/", "")
	if resp.StatusCode != 200 || resp.Header.Get("OData-Version") != "4.0" {
		t.Fatalf("service root: %d %v", resp.StatusCode, resp.Header)
	}
	links := root["Links"].(map[string]any)["Sessions"].(map[string]any)["@odata.id"]
	if root["Systems"].(map[string]any)["@odata.id"] != "/redfish/v1/Systems" || links != "/redfish/v1/SessionService/Sessions" {
		t.Fatalf("service root %v", root)
	}
	if resp, _ := c.do(http.MethodGet, "/redfish", ""); resp.StatusCode != 200 {
		t.Fatalf("/redfish: %d", resp.StatusCode)
	}
	resp, body := c.do(http.MethodGet, "/redfish/v1/Systems", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || body["error"] == nil {
		t.Fatalf("unauthenticated: %d %v", resp.StatusCode, body)
	}
	c.bas = true
	resp, body = c.do(http.MethodGet, "/redfish/v1/Systems", "")
	if resp.StatusCode != 200 || body["Members@odata.count"].(float64) != 1 {
		t.Fatalf("basic auth: %d %v", resp.StatusCode, body)
	}
	resp, body = c.do(http.MethodGet, "/redfish/v1/Managers/BMC", "")
	if resp.StatusCode != 200 || body["ManagerType"] != "BMC" {
		t.Fatalf("manager: %d %v", resp.StatusCode, body)
	}
	if resp, _ := c.do(http.MethodGet, "/redfish/v1/Nothing", ""); resp.StatusCode != 404 {
		t.Fatalf("unknown resource: %d", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodDelete, "/redfish/v1/Systems/1", ""); resp.StatusCode != 405 {
		t.Fatalf("DELETE on the system: %d", resp.StatusCode)
	}
	c.bas = false
	c.tok = "not-a-session"
	if resp, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", ""); resp.StatusCode != 401 {
		t.Fatalf("bogus token: %d", resp.StatusCode)
	}
}

func TestSessions(t *testing.T) {
	b := start(t, func(c *Config) { c.MaxSessions = 2 })
	c := newClient(t, b)
	if resp, _ := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"nope"}`); resp.StatusCode != 401 {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	login := `{"UserName":"admin","Password":"` + pass + `"}`
	resp, body := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", login)
	tok, loc := resp.Header.Get("X-Auth-Token"), resp.Header.Get("Location")
	if resp.StatusCode != 201 || tok == "" || !strings.HasPrefix(loc, "/redfish/v1/SessionService/Sessions/") || body["@odata.id"] != loc {
		t.Fatalf("login: %d token %q location %q %v", resp.StatusCode, tok, loc, body)
	}
	c.tok = tok
	resp, sys := c.do(http.MethodGet, "/redfish/v1/Systems/1", "")
	if resp.StatusCode != 200 || sys["PowerState"] != "On" {
		t.Fatalf("system with a session: %d %v", resp.StatusCode, sys)
	}
	if _, list := c.do(http.MethodGet, "/redfish/v1/SessionService/Sessions", ""); list["Members@odata.count"].(float64) != 1 {
		t.Fatalf("sessions %v", list)
	}
	// The limit: a second session fits, a third does not.
	if resp, _ := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", login); resp.StatusCode != 201 {
		t.Fatalf("second login: %d", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", login); resp.StatusCode != 503 {
		t.Fatalf("login over the limit: %d", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodDelete, loc, ""); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", ""); resp.StatusCode != 401 {
		t.Fatalf("token still valid after logout: %d", resp.StatusCode)
	}
	st := b.Stats()
	if st.Logins != 2 || st.Logouts != 1 || st.OpenSessions != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestResetTypes(t *testing.T) {
	var mu sync.Mutex
	var events []string
	rec := func(s string) func() {
		return func() { mu.Lock(); events = append(events, s); mu.Unlock() }
	}
	b := start(t, func(c *Config) { c.OnPowerOff, c.OnPowerOn = rec("off"), rec("on") })
	c := newClient(t, b)
	c.bas = true
	_, sys := c.do(http.MethodGet, "/redfish/v1/Systems/1", "")
	reset := sys["Actions"].(map[string]any)["#ComputerSystem.Reset"].(map[string]any)
	var allowed []string
	for _, v := range reset["ResetType@Redfish.AllowableValues"].([]any) {
		allowed = append(allowed, v.(string))
	}
	if reset["target"] != "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset" || !slices.Equal(allowed, ResetTypes()) {
		t.Fatalf("reset action %v", reset)
	}
	for _, step := range []struct {
		reset string
		code  int
		power fencing.PowerState
	}{
		{"ForceOff", 204, fencing.Off},
		{"ForceOff", 204, fencing.Off}, // idempotent unless ConflictWhenOff
		{"On", 204, fencing.On},
		{"GracefulShutdown", 204, fencing.Off},
		{"PowerCycle", 204, fencing.On}, // from off: just on
		{"ForceRestart", 204, fencing.On},
		{"Nmi", 400, fencing.On},
	} {
		if code := c.reset(t, step.reset); code != step.code || b.Power() != step.power {
			t.Fatalf("%s: %d, power %s; want %d, %s", step.reset, code, b.Power(), step.code, step.power)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"off", "on", "off", "on", "off", "on"}; !slices.Equal(events, want) {
		t.Fatalf("hooks ran %v, want %v", events, want)
	}
	if got := b.Stats().Resets; len(got) != 7 || got[6] != "Nmi" {
		t.Fatalf("resets recorded %v", got)
	}
}

// With a delay the state reads PoweringOff first; the hook runs before Off
// is shown, so "Off" means the hook is done.
func TestPowerOffDelayAndHookOrder(t *testing.T) {
	var b *BMC
	hookSaw := make(chan fencing.PowerState, 1)
	b = start(t, func(c *Config) {
		c.PowerOffDelay = 100 * time.Millisecond
		c.OnPowerOff = func() { hookSaw <- b.Power() }
	})
	c := newClient(t, b)
	c.bas = true
	if code := c.reset(t, "ForceOff"); code != 204 {
		t.Fatalf("ForceOff: %d", code)
	}
	if _, sys := c.do(http.MethodGet, "/redfish/v1/Systems/1", ""); sys["PowerState"] != "PoweringOff" {
		t.Fatalf("right after ForceOff: %v", sys["PowerState"])
	}
	if code := c.reset(t, "ForceOff"); code != 204 {
		t.Fatalf("ForceOff while PoweringOff: %d", code)
	}
	if code := c.reset(t, "On"); code != 409 {
		t.Fatalf("On while PoweringOff: %d, want 409", code)
	}
	select {
	case st := <-hookSaw:
		if st != fencing.PoweringOff {
			t.Fatalf("hook ran with the power already %s", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnPowerOff never ran")
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.Power() != fencing.Off && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if b.Power() != fencing.Off {
		t.Fatalf("power %s", b.Power())
	}
}

func TestFaults(t *testing.T) {
	b := start(t, func(c *Config) { c.InitialPower = fencing.Off })
	c := newClient(t, b)
	c.bas = true

	b.SetFault(Fault{ServerError: true})
	if resp, _ := c.do(http.MethodGet, "/redfish/v1/", ""); resp.StatusCode != 500 {
		t.Fatalf("ServerError: %d", resp.StatusCode)
	}
	b.SetFault(Fault{Unauthorized: true})
	if resp, _ := c.do(http.MethodGet, "/redfish/v1/Systems/1", ""); resp.StatusCode != 401 {
		t.Fatalf("Unauthorized: %d", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodPost, "/redfish/v1/SessionService/Sessions", `{"UserName":"admin","Password":"`+pass+`"}`); resp.StatusCode != 401 {
		t.Fatalf("Unauthorized login: %d", resp.StatusCode)
	}
	b.SetFault(Fault{Unreachable: true})
	if _, _, err := c.try(http.MethodGet, "/redfish/v1/", ""); err == nil {
		t.Fatal("Unreachable: a request got an answer")
	}
	b.SetFault(Fault{ConflictWhenOff: true})
	if code := c.reset(t, "ForceOff"); code != 409 || b.Power() != fencing.Off {
		t.Fatalf("ConflictWhenOff: %d", code)
	}
	b.SetFault(Fault{ConflictAlways: true})
	if code := c.reset(t, "On"); code != 409 || b.Power() != fencing.Off {
		t.Fatalf("ConflictAlways: %d, power %s", code, b.Power())
	}
	b.SetFault(Fault{StuckPower: true})
	if code := c.reset(t, "On"); code != 204 || b.Power() != fencing.Off {
		t.Fatalf("StuckPower: %d, power %s", code, b.Power())
	}
	b.SetFault(Fault{})
	if code := c.reset(t, "On"); code != 204 || b.Power() != fencing.On {
		t.Fatalf("healed: %d, power %s", code, b.Power())
	}
	if b.Fault() != (Fault{}) {
		t.Fatalf("fault %+v", b.Fault())
	}
}

// A slow BMC does not hold Close up, and nothing runs after Close.
func TestCloseEndsDelayedRequests(t *testing.T) {
	b, err := New(Config{Username: user, Password: pass, PowerOffDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, b)
	c.bas = true
	if code := c.reset(t, "ForceOff"); code != 204 || b.Power() != fencing.PoweringOff {
		t.Fatalf("ForceOff: %d %s", code, b.Power())
	}
	b.SetFault(Fault{Delay: time.Hour})
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.try(http.MethodGet, "/redfish/v1/", "")
		errc <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); b.Stats().Requests < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the delayed request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- b.Close() }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on a delayed request or a pending power transition")
	}
	select {
	case <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("the delayed request never ended")
	}
	if _, err := net.DialTimeout("tcp", b.Addr(), time.Second); err == nil {
		t.Fatal("still listening after Close")
	}
}

func TestCertificate(t *testing.T) {
	certFile := filepath.Join(t.TempDir(), "ca.pem")
	b := start(t, func(c *Config) { c.CertFile = certFile; c.Hosts = []string{"bmc1.lab", "10.9.8.7"} })
	raw, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		t.Fatal("cert file is not PEM")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA || !cert.IsCA {
		t.Fatalf("certificate: %v, CA %t", cert.PublicKeyAlgorithm, cert.IsCA)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "bmc1.lab", "10.9.8.7"} {
		if err := cert.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	conn, err := tls.Dial("tcp", b.Addr(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("the written certificate does not verify the server: %v", err)
	}
	_ = conn.Close()
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no user":       {Password: "p"},
		"no password":   {Username: "u"},
		"bad system id": {Username: "u", Password: "p", SystemID: "a/b"},
		"bad power":     {Username: "u", Password: "p", InitialPower: fencing.PoweringOff},
		"negative":      {Username: "u", Password: "p", PowerOffDelay: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	b, err := New(Config{Username: "u", Password: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if err := b.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start accepted")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var d net.Dialer
	if _, err := d.DialContext(ctx, "tcp", b.Addr()); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want connection refused after Close, got %v", err)
	}
}
