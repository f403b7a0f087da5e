// Package redfish is a fencing.Device that switches a host's power through
// its BMC's Redfish API (gofish).
//
// Every operation opens its own connection: service root, login (a Redfish
// session, or HTTP Basic auth), the operation, logout. Nothing stays open
// between operations, so no BMC session is leaked even when an operation
// times out (the logout runs on its own short deadline after the caller's
// context has ended).
//
// PowerOff sends ComputerSystem.Reset with ResetType ForceOff and then reads
// PowerState until it is Off. An HTTP 409 answer ("already off" on some BMCs)
// is not believed by itself: it counts only once Off has been read. PoweringOff
// is waited out. If Off is not read before the deadline the answer is
// fencing.ErrNotConfirmed, never success.
package redfish

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stmcginnis/gofish"
	"github.com/stmcginnis/gofish/schemas"

	"github.com/bulwarkhq/bulwark/fencing"
)

// AuthMode is how the device authenticates to the BMC.
type AuthMode string

const (
	// AuthSession logs in through the SessionService (X-Auth-Token) and logs
	// out after each operation. The default.
	AuthSession AuthMode = "session"
	// AuthBasic sends HTTP Basic credentials with every request; for BMCs
	// whose session service is broken or limited.
	AuthBasic AuthMode = "basic"
)

// Defaults for the zero values in Config.
const (
	DefaultTimeout        = 60 * time.Second
	DefaultRequestTimeout = 10 * time.Second
	DefaultPollInterval   = 500 * time.Millisecond
	DefaultResendAfter    = 5 * time.Second
)

// Config describes one BMC. Exactly one of Password, PasswordFile and
// PasswordEnv gives the password; the password never appears in logs, errors
// or the Config's own String/GoString/LogValue.
type Config struct {
	// Name identifies the device in evidence and logs; default: the
	// endpoint's host:port.
	Name string
	// Endpoint is the BMC's base URL, https://host[:port]. Plain http is
	// refused: the password would cross the network in clear.
	Endpoint string
	Username string
	Password string
	// PasswordFile is read at every operation (so a fixed file is picked
	// up without a restart); one trailing newline is ignored.
	PasswordFile string
	// PasswordEnv is the name of an environment variable holding the
	// password.
	PasswordEnv string
	// CAFile is a PEM file of the CAs that sign the BMC's certificate;
	// default: the system's roots.
	CAFile string
	// Insecure skips certificate verification. It must be asked for
	// explicitly and cannot be combined with CAFile.
	Insecure bool
	// SystemID selects the ComputerSystem by Id (or the last element of its
	// URI). Empty: the first member of the Systems collection, which is the
	// only one on a typical BMC (with several, a warning names the one used;
	// note that fence_redfish picks the LAST one instead).
	SystemID string
	// Auth is AuthSession (default) or AuthBasic.
	Auth AuthMode
	// Timeout bounds one whole operation, confirmation included (default
	// DefaultTimeout); the caller's context may end it earlier.
	Timeout time.Duration
	// RequestTimeout bounds each HTTP request (default DefaultRequestTimeout).
	RequestTimeout time.Duration
	// PollInterval is the pause between power-state reads while waiting for
	// a change (default DefaultPollInterval).
	PollInterval time.Duration
	// ResendAfter: while the state still reads On (not PoweringOff) this
	// long after a reset was sent, or the send failed, it is sent again;
	// BMCs do drop commands. Default DefaultResendAfter.
	ResendAfter time.Duration
	// Log receives operation records (never credentials); default: discard.
	Log *slog.Logger
}

// String describes the config with the password redacted.
func (c Config) String() string {
	return fmt.Sprintf("redfish.Config{Name:%q Endpoint:%q Username:%q Password:%s PasswordFile:%q PasswordEnv:%q CAFile:%q Insecure:%t SystemID:%q Auth:%q Timeout:%s RequestTimeout:%s PollInterval:%s ResendAfter:%s}",
		c.Name, c.Endpoint, c.Username, redactedMark(c.Password), c.PasswordFile, c.PasswordEnv, c.CAFile,
		c.Insecure, c.SystemID, c.Auth, c.Timeout, c.RequestTimeout, c.PollInterval, c.ResendAfter)
}

// GoString is String, so %#v redacts too.
func (c Config) GoString() string { return c.String() }

// Format makes every verb (%v, %+v, %#v, %s, %q) print the redacted form.
func (c Config) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", c.String())
		return
	}
	_, _ = io.WriteString(f, c.String())
}

// LogValue redacts the password for log/slog.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", c.Name), slog.String("endpoint", c.Endpoint), slog.String("username", c.Username),
		slog.String("password", redactedMark(c.Password)), slog.String("password_file", c.PasswordFile),
		slog.String("password_env", c.PasswordEnv), slog.String("ca_file", c.CAFile), slog.Bool("insecure", c.Insecure),
		slog.String("system_id", c.SystemID), slog.String("auth", string(c.Auth)),
	)
}

func redactedMark(p string) string {
	if p == "" {
		return "(none)"
	}
	return "[redacted]"
}

// Device is a fencing.Device over one BMC's Redfish API.
type Device struct {
	cfg       Config
	name      string
	base      string // scheme://host:port
	roots     *x509.CertPool
	log       *slog.Logger
	warnMulti sync.Once
	secret    func() (string, error)
}

var _ fencing.Device = (*Device)(nil)

// New checks cfg and returns the device. It reads the password once to find
// a misconfiguration now rather than at fencing time, but does not contact
// the BMC (Check does).
func New(cfg Config) (*Device, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("redfish device %s: %w: %s", cfg.Endpoint, fencing.ErrConfig, fmt.Sprintf(format, a...))
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return nil, bad("endpoint must be a URL like https://bmc.example:443")
	}
	if u.Scheme != "https" {
		return nil, bad("endpoint must use https (Redfish over plain http would send the password in clear)")
	}
	if u.User != nil {
		return nil, bad("put the credentials in Username/PasswordFile, not in the endpoint URL")
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, bad("endpoint is the BMC's base URL (https://host:port), without a path")
	}
	if cfg.Username == "" {
		return nil, bad("a username is required")
	}
	sources := 0
	for _, s := range []string{cfg.Password, cfg.PasswordFile, cfg.PasswordEnv} {
		if s != "" {
			sources++
		}
	}
	if sources != 1 {
		return nil, bad("give exactly one of a password, a password file or a password environment variable")
	}
	if cfg.Insecure && cfg.CAFile != "" {
		return nil, bad("a CA file and insecure (no verification) contradict each other; choose one")
	}
	switch cfg.Auth {
	case "":
		cfg.Auth = AuthSession
	case AuthSession, AuthBasic:
	default:
		return nil, bad("auth %q: use %q or %q", cfg.Auth, AuthSession, AuthBasic)
	}
	if cfg.Timeout < 0 || cfg.RequestTimeout < 0 || cfg.PollInterval < 0 || cfg.ResendAfter < 0 {
		return nil, bad("durations cannot be negative")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.ResendAfter == 0 {
		cfg.ResendAfter = DefaultResendAfter
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	d := &Device{cfg: cfg, base: u.Scheme + "://" + u.Host, name: cfg.Name}
	if d.name == "" {
		d.name = u.Host
	}
	d.log = cfg.Log.With("device", d.name)
	if cfg.CAFile != "" {
		pemBytes, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, bad("read CA file: %v", err)
		}
		d.roots = x509.NewCertPool()
		if !d.roots.AppendCertsFromPEM(pemBytes) {
			return nil, bad("CA file %s holds no PEM certificate", cfg.CAFile)
		}
	}
	d.secret = passwordSource(cfg)
	d.cfg.Password = ""
	if _, err := d.password(); err != nil {
		return nil, bad("%v", err)
	}
	return d, nil
}

// Name is the device's name (Config.Name or the endpoint's host:port).
func (d *Device) Name() string { return d.name }

// String names the device and its endpoint; no credentials.
func (d *Device) String() string { return fmt.Sprintf("redfish device %s (%s)", d.name, d.base) }

// GoString is String.
func (d *Device) GoString() string { return d.String() }

// password reads the password from its one source. A password given in the
// Config is kept only inside a closure, so that no dump of the Device (not
// even of its unexported fields) shows it.
func (d *Device) password() (string, error) { return d.secret() }

func passwordSource(cfg Config) func() (string, error) {
	switch {
	case cfg.Password != "":
		pw := cfg.Password
		return func() (string, error) { return pw, nil }
	case cfg.PasswordFile != "":
		file := cfg.PasswordFile
		return func() (string, error) {
			b, err := os.ReadFile(file)
			if err != nil {
				return "", fmt.Errorf("read password file: %w", err)
			}
			p := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
			if p == "" {
				return "", fmt.Errorf("password file %s is empty", file)
			}
			return p, nil
		}
	default:
		env := cfg.PasswordEnv
		return func() (string, error) {
			p := os.Getenv(env)
			if p == "" {
				return "", fmt.Errorf("environment variable %s is empty or not set", env)
			}
			return p, nil
		}
	}
}

// PowerState reads the system's power state.
func (d *Device) PowerState(ctx context.Context) (fencing.PowerState, error) {
	const op = "power state"
	var st fencing.PowerState
	err := d.do(ctx, op, func(ctx context.Context, c *conn) error {
		var err error
		st, err = c.read()
		if err != nil {
			return d.fail(ctx, op, "read power state", err, c.password)
		}
		return nil
	})
	return st, err
}

// Check logs in, finds the system, makes sure it offers a ForceOff reset and
// reads its power state: the device's health probe. It changes nothing.
func (d *Device) Check(ctx context.Context) error {
	const op = "check"
	return d.do(ctx, op, func(ctx context.Context, c *conn) error {
		types, err := c.system.GetSupportedResetTypes()
		if err != nil {
			return d.fail(ctx, op, "read reset types", err, c.password)
		}
		if len(types) > 0 && !containsReset(types, schemas.ForceOffResetType) {
			return &fencing.DeviceError{Device: d.name, Op: op, Kind: fencing.ErrDevice,
				Err: fmt.Errorf("system %s does not offer the ForceOff reset (it offers %v)", c.system.ID, types)}
		}
		var raw struct {
			Actions map[string]struct {
				Target string `json:"target"`
			}
		}
		if err := json.Unmarshal(c.system.RawData, &raw); err != nil || raw.Actions["#ComputerSystem.Reset"].Target == "" {
			return &fencing.DeviceError{Device: d.name, Op: op, Kind: fencing.ErrDevice,
				Err: fmt.Errorf("system %s has no ComputerSystem.Reset action", c.system.ID)}
		}
		st, err := c.read()
		if err != nil {
			return d.fail(ctx, op, "read power state", err, c.password)
		}
		d.log.Debug("fence device healthy", "system", c.system.ID, "power", string(st))
		return nil
	})
}

// PowerOff forces the power off and confirms it; see the package comment.
func (d *Device) PowerOff(ctx context.Context) (fencing.Evidence, error) {
	ev := fencing.Evidence{Device: d.name, Action: string(schemas.ForceOffResetType), Started: time.Now()}
	err := d.do(ctx, "power off", func(ctx context.Context, c *conn) error {
		var err error
		ev.Attempts, ev.Confirmed, err = d.change(ctx, c, "power off", schemas.ForceOffResetType, "Off", func(s fencing.PowerState) (done, wait bool) {
			return s == fencing.Off, s == fencing.PoweringOff
		})
		return err
	})
	if err != nil {
		return fencing.Evidence{}, err
	}
	ev.PowerState = string(fencing.Off)
	d.log.Info("fence device confirmed power off", "attempts", ev.Attempts, "took", ev.Confirmed.Sub(ev.Started))
	return ev, nil
}

// PowerOn switches the power on and waits until the state reads On or
// PoweringOn (the BMC has taken the command; booting is not our business).
func (d *Device) PowerOn(ctx context.Context) error {
	return d.do(ctx, "power on", func(ctx context.Context, c *conn) error {
		_, _, err := d.change(ctx, c, "power on", schemas.OnResetType, "On", func(s fencing.PowerState) (done, wait bool) {
			return s == fencing.On || s == fencing.PoweringOn, false
		})
		return err
	})
}

// change sends reset and polls until check(state) says done; wait means "in
// transition, do not resend". target names the awaited state in errors. It
// returns the number of sends and when the confirming answer arrived.
func (d *Device) change(ctx context.Context, c *conn, op string, reset schemas.ResetType, target string,
	check func(fencing.PowerState) (done, wait bool)) (int, time.Time, error) {
	var (
		sends     int
		accepted  bool // a send was answered 2xx or 409
		lastSend  time.Time
		sendErr   error // the last send's failure
		lastErr   error // the last read's failure
		lastState = fencing.Unknown
		inFlight  bool
	)
	for {
		if sends == 0 || (!inFlight && time.Since(lastSend) >= d.cfg.ResendAfter) {
			sends++
			lastSend = time.Now()
			_, err := c.system.Reset(reset)
			switch {
			case err == nil:
				accepted, sendErr = true, nil
				d.log.Info("fence device reset sent", "op", op, "reset_type", string(reset), "attempt", sends)
			case statusOf(err) == http.StatusConflict:
				// Not proof of anything: only a read counts.
				accepted, sendErr = true, nil
				d.log.Info("fence device answered 409 to reset; confirming by reading the power state",
					"op", op, "reset_type", string(reset), "attempt", sends)
			default:
				de := d.fail(ctx, op, "send reset", err, c.password)
				if !accepted && ctx.Err() == nil && refused(de) {
					// The command itself was refused (or never left):
					// nothing was done, waiting cannot help.
					return sends, time.Time{}, de
				}
				sendErr = de
				d.log.Warn("fence device reset failed; will read the power state and retry", "op", op, "attempt", sends, "err", de)
			}
		}

		st, err := c.read()
		now := time.Now()
		if err == nil {
			lastState, lastErr = st, nil
			done, wait := check(st)
			if done {
				return sends, now, nil
			}
			inFlight = wait
		} else {
			lastErr = d.fail(ctx, op, "read power state", err, c.password)
		}

		timer := time.NewTimer(d.cfg.PollInterval)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			why := fmt.Errorf("power state %s was never read before the deadline (%v); last read: %s; %s sent %d time(s)",
				target, ctx.Err(), lastState, reset, sends)
			errs := []error{why}
			if lastErr != nil {
				errs = append(errs, fmt.Errorf("last read failed: %w", lastErr))
			}
			if sendErr != nil {
				errs = append(errs, fmt.Errorf("last reset failed: %w", sendErr))
			}
			return sends, time.Time{}, &fencing.DeviceError{Device: d.name, Op: op, Kind: fencing.ErrNotConfirmed, Err: errors.Join(errs...)}
		}
	}
}

// refused reports whether a failed reset was definitely not carried out:
// bad credentials or certificate, a 4xx answer, or gofish refusing to send it
// (e.g. a reset type the system does not list).
func refused(err error) bool {
	var de *fencing.DeviceError
	if !errors.As(err, &de) {
		return false
	}
	switch de.Kind {
	case fencing.ErrAuth, fencing.ErrTLS, fencing.ErrConfig:
		return true
	case fencing.ErrDevice:
		return de.Status == 0 || (de.Status >= 400 && de.Status < 500)
	}
	return false
}

func containsReset(types []schemas.ResetType, t schemas.ResetType) bool {
	for _, x := range types {
		if x == t {
			return true
		}
	}
	return false
}

// requestDeadline bounds each request, body included, by d, and reports a
// request that ran out of it as context.DeadlineExceeded whatever error
// the transport returned.
type requestDeadline struct {
	rt http.RoundTripper
	d  time.Duration
}

func (t requestDeadline) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(r.Context(), t.d)
	resp, err := t.rt.RoundTrip(r.WithContext(ctx))
	if err != nil {
		expired := ctx.Err() == context.DeadlineExceeded && r.Context().Err() == nil
		cancel()
		if expired {
			return nil, fmt.Errorf("no answer within %s (%v): %w", t.d, err, context.DeadlineExceeded)
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelOnClose releases a request's deadline once its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// conn is one operation's connection: a logged-in client and the system.
type conn struct {
	client    *gofish.APIClient
	transport *http.Transport
	system    *schemas.ComputerSystem
	password  string
}

// do runs fn on a fresh connection under the operation deadline and always
// logs out and closes the connection afterwards.
func (d *Device) do(ctx context.Context, op string, fn func(context.Context, *conn) error) error {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	c, err := d.open(ctx, op)
	if err != nil {
		return err
	}
	defer d.close(ctx, c)
	return fn(ctx, c)
}

func (d *Device) open(ctx context.Context, op string) (*conn, error) {
	pw, err := d.password()
	if err != nil {
		return nil, &fencing.DeviceError{Device: d.name, Op: op, Kind: fencing.ErrConfig, Err: err}
	}
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: d.roots, InsecureSkipVerify: d.cfg.Insecure} //nolint:gosec // only when asked for explicitly
	dialer := &net.Dialer{Timeout: d.cfg.RequestTimeout}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   d.cfg.RequestTimeout,
		ResponseHeaderTimeout: d.cfg.RequestTimeout,
		DisableKeepAlives:     true,
		MaxIdleConns:          1,
	}
	hc := &http.Client{
		// Each request's deadline is its own context's (not
		// Client.Timeout): when it expires, the transport may report only
		// the connection it closed (EOF), which would read as an
		// unreachable BMC rather than a slow one.
		Transport: requestDeadline{tr, d.cfg.RequestTimeout},
		// A redirect could carry the session token to another host.
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("the BMC answered with a redirect; configure its final address as the endpoint")
		},
	}
	c := &conn{transport: tr, password: pw}
	client, err := gofish.ConnectContext(ctx, gofish.ClientConfig{
		Endpoint: d.base, Username: d.cfg.Username, Password: pw,
		BasicAuth: d.cfg.Auth == AuthBasic, HTTPClient: hc, NoModifyTransport: true,
	})
	if err != nil {
		tr.CloseIdleConnections()
		return nil, d.fail(ctx, op, "connect and log in", err, pw)
	}
	c.client = client
	if c.system, err = d.findSystem(op, client); err != nil {
		d.close(ctx, c)
		return nil, d.fail(ctx, op, "find system", err, pw)
	}
	return c, nil
}

func (d *Device) findSystem(op string, client *gofish.APIClient) (*schemas.ComputerSystem, error) {
	systems, err := client.Service.Systems()
	if err != nil {
		return nil, err
	}
	if len(systems) == 0 {
		return nil, &fencing.DeviceError{Device: d.name, Op: op, Kind: fencing.ErrDevice,
			Err: errors.New("find system: the BMC lists no ComputerSystem")}
	}
	// Collection members may arrive in any order; sort by URI so "first" is
	// stable.
	sort.Slice(systems, func(i, j int) bool { return systems[i].ODataID < systems[j].ODataID })
	if d.cfg.SystemID == "" {
		if len(systems) > 1 {
			d.warnMulti.Do(func() {
				d.log.Warn("BMC has several systems and no system ID is configured; using the first",
					"system", systems[0].ID, "systems", systemIDs(systems))
			})
		}
		return systems[0], nil
	}
	for _, s := range systems {
		if s.ID == d.cfg.SystemID || path.Base(s.ODataID) == d.cfg.SystemID {
			return s, nil
		}
	}
	return nil, &fencing.DeviceError{Device: d.name, Op: op, Kind: fencing.ErrConfig,
		Err: fmt.Errorf("find system: no system %q on this BMC (it has %v)", d.cfg.SystemID, systemIDs(systems))}
}

func systemIDs(systems []*schemas.ComputerSystem) []string {
	ids := make([]string, len(systems))
	for i, s := range systems {
		ids[i] = s.ID
	}
	return ids
}

// read fetches the system again and returns its power state.
func (c *conn) read() (fencing.PowerState, error) {
	s, err := schemas.GetComputerSystem(c.client, c.system.ODataID)
	if err != nil {
		return fencing.Unknown, err
	}
	return fencing.ParsePowerState(string(s.PowerState)), nil
}

// close logs out (on its own short deadline, so a timed-out or cancelled
// operation still ends its session) and drops the connection.
func (d *Device) close(ctx context.Context, c *conn) {
	defer c.transport.CloseIdleConnections()
	if d.cfg.Auth == AuthBasic {
		return // no session
	}
	sess, err := c.client.GetSession()
	if err != nil || sess.ID == "" {
		d.log.Warn("fence device gave no session location at login; cannot log out, the BMC will expire the session")
		return
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.RequestTimeout)
	defer cancel()
	if _, err := c.client.WithContext(lctx).Delete(sess.ID); err != nil {
		d.log.Warn("fence device logout failed; the BMC will expire the session", "err", d.fail(lctx, "log out", "log out", err, c.password))
	}
}

// fail turns a gofish or transport error met during phase (under ctx) into a
// *fencing.DeviceError with its kind, HTTP status and a short message from
// which the credentials are removed.
func (d *Device) fail(ctx context.Context, op, phase string, err error, password string) error {
	var de *fencing.DeviceError
	if errors.As(err, &de) {
		return err
	}
	status, kind := classify(err)
	if status == 0 && ctx.Err() != nil {
		// Our own deadline or cancellation ended the request; the transport
		// sometimes reports that as the connection it closed (EOF).
		kind = fencing.ErrTimeout
		if errors.Is(ctx.Err(), context.Canceled) {
			kind = context.Canceled
		}
	}
	return &fencing.DeviceError{Device: d.name, Op: op, Kind: kind, Status: status,
		Err: errors.New(d.redact(phase+": "+describe(err), password))}
}

// describe renders an error briefly: a Redfish error as its status, message
// ID and message rather than the whole JSON body.
func describe(err error) string {
	var ce *schemas.CollectionError
	if errors.As(err, &ce) {
		if inner := firstFailure(ce); inner != nil {
			return describe(inner)
		}
	}
	var re *schemas.Error
	if errors.As(err, &re) && re.HTTPReturnedStatusCode != 0 {
		code, msg := re.Code, re.Message
		if len(re.ExtendedInfos) > 0 {
			if m := re.ExtendedInfos[0]; m.Message != "" {
				code, msg = m.MessageID, m.Message
			}
		}
		if msg == "" {
			return re.Error()
		}
		s := fmt.Sprintf("HTTP %d", re.HTTPReturnedStatusCode)
		if code != "" {
			s += " " + code
		}
		return s + ": " + msg
	}
	return err.Error()
}

// redact removes the password (and its Basic-auth encoding) from s and caps
// its length: BMC error bodies are sometimes whole HTML pages.
func (d *Device) redact(s, password string) string {
	if len(password) >= 3 {
		s = strings.ReplaceAll(s, password, "[redacted]")
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte(d.cfg.Username+":"+password)), "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}

// statusOf is the HTTP status inside a gofish error, 0 if none.
func statusOf(err error) int {
	var re *schemas.Error
	if errors.As(err, &re) {
		return re.HTTPReturnedStatusCode
	}
	var ce *schemas.CollectionError
	if errors.As(err, &ce) {
		if inner := firstFailure(ce); inner != nil {
			return statusOf(inner)
		}
	}
	return 0
}

// firstFailure picks one failure of a collection error deterministically.
func firstFailure(ce *schemas.CollectionError) error {
	keys := make([]string, 0, len(ce.Failures))
	for k := range ce.Failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return nil
	}
	return ce.Failures[keys[0]]
}

// classify maps an error from gofish or net/http to a fencing kind.
func classify(err error) (status int, kind error) {
	var (
		ce      *schemas.CollectionError
		re      *schemas.Error
		certErr *tls.CertificateVerificationError
		unkAuth x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		netErr  net.Error
		urlErr  *url.Error
		synErr  *json.SyntaxError
		typErr  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &ce):
		if inner := firstFailure(ce); inner != nil {
			return classify(inner)
		}
		return 0, fencing.ErrDevice
	case errors.As(err, &re):
		switch code := re.HTTPReturnedStatusCode; {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return code, fencing.ErrAuth
		default:
			return code, fencing.ErrDevice
		}
	case errors.Is(err, context.DeadlineExceeded):
		return 0, fencing.ErrTimeout
	case errors.Is(err, context.Canceled):
		return 0, context.Canceled
	case errors.As(err, &certErr), errors.As(err, &unkAuth), errors.As(err, &host), errors.As(err, &invalid), errors.As(err, &recErr):
		return 0, fencing.ErrTLS
	case errors.As(err, &netErr) && netErr.Timeout():
		return 0, fencing.ErrTimeout
	case errors.As(err, &synErr), errors.As(err, &typErr):
		return 0, fencing.ErrDevice
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return 0, fencing.ErrUnreachable
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return 0, fencing.ErrTLS
	case errors.As(err, &urlErr):
		// Any other transport failure: DNS, closed connection, proxy.
		return 0, fencing.ErrUnreachable
	}
	return 0, fencing.ErrDevice
}
