// Package bmcemu is a Redfish BMC emulator: the stand-in for a host's real
// BMC in the dev cluster, the tests and labs (`bulwarkd bmc`).
//
// It serves HTTPS with a self-signed ECDSA certificate generated in memory
// (optionally written out so clients can use it as their CA) and implements
// the part of Redfish that fencing uses: the service root, SessionService
// login/logout (X-Auth-Token), HTTP Basic auth, one ComputerSystem with its
// PowerState and the ComputerSystem.Reset action, and one Manager. A power-off
// can take a while (PoweringOff, then Off), hooks run when the emulated power
// changes, and faults can be switched on at run time to play a broken BMC.
//
// It has been driven by gofish and by Debian's fence_redfish (fence-agents).
package bmcemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/bulwarkhq/bulwark/fencing"
)

// Config sets up an emulated BMC.
type Config struct {
	// Username and Password are the one account the BMC accepts (Basic auth
	// and session login). Both are required.
	Username string
	Password string
	// SystemID is the Id of the one ComputerSystem; default "1".
	SystemID string
	// InitialPower is the power state at start: On (default) or Off.
	InitialPower fencing.PowerState
	// PowerOffDelay is how long the system stays PoweringOff after a
	// ForceOff or GracefulShutdown before it reads Off; 0 switches at once.
	PowerOffDelay time.Duration
	// PowerOnDelay is the same for PoweringOn after On.
	PowerOnDelay time.Duration
	// OnPowerOff runs when the emulated power goes off, before the state
	// reads Off (so "Off" means the hook has finished: the dev cluster kills
	// the host's agent here). OnPowerOn runs when it comes on, before the
	// state reads On. Each is called from one goroutine at a time; either may
	// be nil.
	OnPowerOff func()
	OnPowerOn  func()
	// CertFile, when set, receives the generated certificate (PEM) for
	// clients to use as their CA file.
	CertFile string
	// Hosts are extra DNS names or IP addresses for the certificate; it
	// always covers localhost, 127.0.0.1 and ::1.
	Hosts []string
	// MaxSessions caps open sessions like a real BMC does (a client that
	// leaks sessions locks itself out); default 16.
	MaxSessions int
	// Log receives one line per login failure, reset and power change;
	// default: discard.
	Log *slog.Logger
}

// Fault makes the BMC misbehave. The zero Fault is a healthy BMC.
type Fault struct {
	// Delay holds every response back this long (a slow or hung BMC).
	Delay time.Duration
	// Unauthorized answers 401 to every login and authenticated request,
	// whatever the credentials.
	Unauthorized bool
	// ServerError answers 500 to every request, the service root included.
	ServerError bool
	// Unreachable closes every connection as soon as it is accepted, and
	// every open one at its next request.
	Unreachable bool
	// StuckPower accepts resets (204) but the power never changes.
	StuckPower bool
	// ConflictWhenOff answers 409 to ForceOff or GracefulShutdown while the
	// system is already Off, as some BMCs (iDRAC) do.
	ConflictWhenOff bool
	// ConflictAlways answers 409 to every reset and changes nothing: a BMC
	// claiming "already off" for a host that is on.
	ConflictAlways bool
}

// Stats counts what the BMC has seen, for tests.
type Stats struct {
	Requests     int
	Logins       int // sessions created
	FailedLogins int // logins and authenticated requests refused
	Logouts      int
	OpenSessions int
	// Resets lists the ResetType of every reset request received, in order,
	// whatever the answer was.
	Resets []string
	// Reads counts reads of the system resource by the power state returned.
	Reads map[fencing.PowerState]int
}

// ResetTypes returns the reset types the emulated system accepts, in the
// order it lists them in ResetType@Redfish.AllowableValues.
func ResetTypes() []string {
	return []string{"On", "ForceOff", "GracefulShutdown", "ForceRestart", "PowerCycle"}
}

// BMC is one emulated BMC. Its methods are safe for concurrent use.
type BMC struct {
	cfg      Config
	cert     tls.Certificate
	certPEM  []byte
	userSum  [32]byte
	passSum  [32]byte
	log      *slog.Logger
	srv      *http.Server
	listener net.Listener
	done     chan struct{}
	wg       sync.WaitGroup // serve loop and power transitions

	mu       sync.Mutex
	started  bool
	closed   bool
	power    fencing.PowerState
	fault    Fault
	sessions map[string]string // token -> session id
	nextID   int
	stats    Stats
}

// New generates the certificate (and writes it to cfg.CertFile when set) and
// returns a BMC ready to Start.
func New(cfg Config) (*BMC, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("bmcemu: a username and a password are required")
	}
	if cfg.SystemID == "" {
		cfg.SystemID = "1"
	}
	if strings.ContainsAny(cfg.SystemID, "/?#% ") {
		return nil, fmt.Errorf("bmcemu: system ID %q: use letters, digits, '.', '-' or '_'", cfg.SystemID)
	}
	switch cfg.InitialPower {
	case "":
		cfg.InitialPower = fencing.On
	case fencing.On, fencing.Off:
	default:
		return nil, fmt.Errorf("bmcemu: initial power %q: use On or Off", cfg.InitialPower)
	}
	if cfg.PowerOffDelay < 0 || cfg.PowerOnDelay < 0 {
		return nil, errors.New("bmcemu: power delays cannot be negative")
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 16
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cert, certPEM, err := selfSigned(cfg.Hosts)
	if err != nil {
		return nil, fmt.Errorf("bmcemu: generate certificate: %w", err)
	}
	if cfg.CertFile != "" {
		if err := os.WriteFile(cfg.CertFile, certPEM, 0o644); err != nil {
			return nil, fmt.Errorf("bmcemu: write certificate: %w", err)
		}
	}
	b := &BMC{
		cfg: cfg, cert: cert, certPEM: certPEM, log: cfg.Log,
		userSum: sha256.Sum256([]byte(cfg.Username)), passSum: sha256.Sum256([]byte(cfg.Password)),
		done: make(chan struct{}), power: cfg.InitialPower, sessions: map[string]string{},
		stats: Stats{Reads: map[fencing.PowerState]int{}},
	}
	return b, nil
}

// selfSigned makes an ECDSA P-256 certificate that is its own CA, valid for
// localhost, the loopback addresses and hosts.
func selfSigned(hosts []string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Bulwark BMC emulator"}, CommonName: "bulwark-bmc-emulator"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pemBytes, nil
}

// Start listens on addr (e.g. "127.0.0.1:0" for any free port) and serves
// HTTPS in the background until Close.
func (b *BMC) Start(addr string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started || b.closed {
		return errors.New("bmcemu: Start called twice or after Close")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bmcemu: listen %s: %w", addr, err)
	}
	b.listener = ln
	b.srv = &http.Server{
		Handler:           b,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       30 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{b.cert}, MinVersion: tls.VersionTLS12},
		// HTTP/1.1 only, like BMCs, and so the Unreachable fault can hijack
		// and drop open connections.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Clients that reject our certificate make the server log handshake
		// errors; they are expected here.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	b.started = true
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		err := b.srv.ServeTLS(&faultListener{Listener: ln, b: b}, "", "")
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("bmc emulator stopped serving", "err", err)
		}
	}()
	b.log.Info("bmc emulator listening", "url", b.urlLocked(), "system", b.cfg.SystemID)
	return nil
}

// URL is the BMC's base URL, e.g. https://127.0.0.1:8443; empty before Start.
func (b *BMC) URL() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.urlLocked()
}

func (b *BMC) urlLocked() string {
	if b.listener == nil {
		return ""
	}
	return "https://" + b.listener.Addr().String()
}

// Addr is the address the BMC listens on; empty before Start.
func (b *BMC) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.listener == nil {
		return ""
	}
	return b.listener.Addr().String()
}

// Close stops serving, ends delayed responses and pending power transitions,
// and waits for everything it started. A transition interrupted by Close
// leaves the power in PoweringOff or PoweringOn.
func (b *BMC) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	close(b.done)
	srv := b.srv
	b.mu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(ctx)
		cancel()
		if err != nil {
			err = srv.Close()
		}
	}
	b.wg.Wait()
	return err
}

// SetFault replaces the current faults; the zero Fault heals the BMC.
func (b *BMC) SetFault(f Fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.fault = f
	b.log.Info("bmc emulator fault set", "fault", fmt.Sprintf("%+v", f))
}

// Fault returns the current faults.
func (b *BMC) Fault() Fault {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fault
}

// Power is the emulated system's power state.
func (b *BMC) Power() fencing.PowerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.power
}

// SetPower sets the power state directly, without running hooks (test setup,
// or reflecting a host that was started or stopped by other means).
func (b *BMC) SetPower(s fencing.PowerState) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.power = s
}

// CertPEM is the BMC's certificate in PEM form (its own CA).
func (b *BMC) CertPEM() []byte { return append([]byte(nil), b.certPEM...) }

// Stats returns a copy of the counters.
func (b *BMC) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.stats
	s.OpenSessions = len(b.sessions)
	s.Resets = append([]string(nil), b.stats.Resets...)
	s.Reads = make(map[fencing.PowerState]int, len(b.stats.Reads))
	for k, v := range b.stats.Reads {
		s.Reads[k] = v
	}
	return s
}

// faultListener drops connections while the Unreachable fault is on.
type faultListener struct {
	net.Listener
	b *BMC
}

func (l *faultListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.b.Fault().Unreachable {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // reset, like a BMC whose network stack is gone
			}
			_ = c.Close()
			continue
		}
		return c, nil
	}
}

const (
	root        = "/redfish/v1"
	sessionsURI = root + "/SessionService/Sessions"
	systemsURI  = root + "/Systems"
	managerURI  = root + "/Managers/BMC"
)

func (b *BMC) systemURI() string { return systemsURI + "/" + b.cfg.SystemID }
func (b *BMC) resetURI() string  { return b.systemURI() + "/Actions/ComputerSystem.Reset" }

// ServeHTTP implements the Redfish resources.
func (b *BMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	f := b.fault
	b.stats.Requests++
	b.mu.Unlock()

	if f.Unreachable {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Delay > 0 {
		// Hold the answer back for the whole delay, whatever the request's
		// context says: Go's server can cancel it (its connection
		// watcher) while the client still waits, and returning then
		// would send an empty 200, which no hung BMC does. Close ends it.
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-b.done:
			t.Stop()
			panic(http.ErrAbortHandler)
		}
	}
	w.Header().Set("OData-Version", "4.0")
	if f.ServerError {
		b.fail(w, http.StatusInternalServerError, "Base.1.8.InternalError", "The request failed due to an internal service error (emulated fault).")
		return
	}

	p := strings.TrimSuffix(r.URL.Path, "/")
	switch p {
	case "/redfish":
		b.only(w, r, http.MethodGet, func() { b.reply(w, http.StatusOK, map[string]any{"v1": root + "/"}) })
		return
	case root:
		b.only(w, r, http.MethodGet, func() { b.reply(w, http.StatusOK, b.serviceRoot()) })
		return
	case sessionsURI:
		if r.Method == http.MethodPost {
			b.login(w, r, f)
			return
		}
	}

	if !b.authorized(r, f) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Bulwark BMC emulator"`)
		b.fail(w, http.StatusUnauthorized, "Base.1.8.NoValidSession", "There is no valid session established with the implementation.")
		return
	}

	switch {
	case p == root+"/SessionService":
		b.only(w, r, http.MethodGet, func() {
			b.reply(w, http.StatusOK, map[string]any{
				"@odata.type": "#SessionService.v1_1_8.SessionService", "@odata.id": root + "/SessionService",
				"Id": "SessionService", "Name": "Session Service", "ServiceEnabled": true, "SessionTimeout": 1800,
				"Sessions": link(sessionsURI),
			})
		})
	case p == sessionsURI:
		b.only(w, r, http.MethodGet, func() {
			b.mu.Lock()
			var members []any
			for _, id := range b.sessions {
				members = append(members, link(sessionsURI+"/"+id))
			}
			b.mu.Unlock()
			b.reply(w, http.StatusOK, collection("#SessionCollection.SessionCollection", sessionsURI, "Session Collection", members))
		})
	case strings.HasPrefix(p, sessionsURI+"/"):
		b.session(w, r, strings.TrimPrefix(p, sessionsURI+"/"))
	case p == systemsURI:
		b.only(w, r, http.MethodGet, func() {
			b.reply(w, http.StatusOK, collection("#ComputerSystemCollection.ComputerSystemCollection", systemsURI,
				"Computer System Collection", []any{link(b.systemURI())}))
		})
	case p == b.systemURI():
		b.only(w, r, http.MethodGet, func() { b.reply(w, http.StatusOK, b.system()) })
	case p == b.resetURI():
		b.only(w, r, http.MethodPost, func() { b.reset(w, r, f) })
	case p == root+"/Managers":
		b.only(w, r, http.MethodGet, func() {
			b.reply(w, http.StatusOK, collection("#ManagerCollection.ManagerCollection", root+"/Managers", "Manager Collection", []any{link(managerURI)}))
		})
	case p == managerURI:
		b.only(w, r, http.MethodGet, func() {
			b.reply(w, http.StatusOK, map[string]any{
				"@odata.type": "#Manager.v1_10_0.Manager", "@odata.id": managerURI, "Id": "BMC",
				"Name": "Bulwark BMC emulator", "ManagerType": "BMC", "FirmwareVersion": "bulwark-emulator",
				"PowerState": "On", "Status": map[string]any{"State": "Enabled", "Health": "OK"},
				"Links": map[string]any{"ManagerForServers": []any{link(b.systemURI())}},
			})
		})
	default:
		b.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "The resource at the URI "+r.URL.Path+" was not found.")
	}
}

func (b *BMC) only(w http.ResponseWriter, r *http.Request, method string, fn func()) {
	if r.Method != method {
		w.Header().Set("Allow", method)
		b.fail(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", "The "+r.Method+" method is not allowed on this resource.")
		return
	}
	fn()
}

func (b *BMC) serviceRoot() map[string]any {
	sum := sha256.Sum256([]byte(b.cfg.SystemID))
	return map[string]any{
		"@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "@odata.id": root + "/", "Id": "RootService",
		"Name": "Bulwark BMC emulator", "RedfishVersion": "1.8.0", "Vendor": "Bulwark",
		"UUID":           "00000000-0000-4000-8000-" + hex.EncodeToString(sum[:6]),
		"Systems":        link(systemsURI),
		"Managers":       link(root + "/Managers"),
		"SessionService": link(root + "/SessionService"),
		"Links":          map[string]any{"Sessions": link(sessionsURI)},
	}
}

func (b *BMC) system() map[string]any {
	b.mu.Lock()
	p := b.power
	b.stats.Reads[p]++
	b.mu.Unlock()
	return map[string]any{
		"@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem", "@odata.id": b.systemURI(),
		"Id": b.cfg.SystemID, "Name": "Emulated host", "SystemType": "Physical",
		"Manufacturer": "Bulwark", "Model": "BMC emulator", "PowerState": string(p),
		"Status": map[string]any{"State": "Enabled", "Health": "OK"},
		"Actions": map[string]any{"#ComputerSystem.Reset": map[string]any{
			"target": b.resetURI(), "ResetType@Redfish.AllowableValues": ResetTypes(),
		}},
		"Links": map[string]any{"ManagedBy": []any{link(managerURI)}},
	}
}

// credentialsOK compares in constant time (over fixed-length digests, so the
// lengths do not leak either).
func (b *BMC) credentialsOK(user, pass string) bool {
	u := sha256.Sum256([]byte(user))
	p := sha256.Sum256([]byte(pass))
	return subtle.ConstantTimeCompare(u[:], b.userSum[:])&subtle.ConstantTimeCompare(p[:], b.passSum[:]) == 1
}

func (b *BMC) authorized(r *http.Request, f Fault) bool {
	ok := false
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		b.mu.Lock()
		_, ok = b.sessions[tok]
		b.mu.Unlock()
	} else if u, p, has := r.BasicAuth(); has {
		ok = b.credentialsOK(u, p)
	}
	if ok && !f.Unauthorized {
		return true
	}
	b.mu.Lock()
	b.stats.FailedLogins++
	b.mu.Unlock()
	b.log.Warn("bmc emulator refused a request", "path", r.URL.Path, "remote", r.RemoteAddr)
	return false
}

func (b *BMC) login(w http.ResponseWriter, r *http.Request, f Fault) {
	var req struct {
		UserName string
		Password string
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		b.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	if f.Unauthorized || !b.credentialsOK(req.UserName, req.Password) {
		b.mu.Lock()
		b.stats.FailedLogins++
		b.mu.Unlock()
		b.log.Warn("bmc emulator refused a login", "user", req.UserName, "remote", r.RemoteAddr)
		b.fail(w, http.StatusUnauthorized, "Base.1.8.InsufficientPrivilege", "Invalid username or password.")
		return
	}
	tokBytes := make([]byte, 24)
	if _, err := rand.Read(tokBytes); err != nil {
		b.fail(w, http.StatusInternalServerError, "Base.1.8.InternalError", "no randomness")
		return
	}
	tok := hex.EncodeToString(tokBytes)
	b.mu.Lock()
	if len(b.sessions) >= b.cfg.MaxSessions {
		b.mu.Unlock()
		b.fail(w, http.StatusServiceUnavailable, "Base.1.8.SessionLimitExceeded", "The session establishment failed due to the number of simultaneous sessions exceeding the limit of the implementation.")
		return
	}
	b.nextID++
	id := fmt.Sprintf("%d", b.nextID)
	b.sessions[tok] = id
	b.stats.Logins++
	b.mu.Unlock()
	uri := sessionsURI + "/" + id
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", uri)
	b.reply(w, http.StatusCreated, map[string]any{
		"@odata.type": "#Session.v1_3_0.Session", "@odata.id": uri, "Id": id, "Name": "User Session", "UserName": req.UserName,
	})
}

func (b *BMC) session(w http.ResponseWriter, r *http.Request, id string) {
	b.mu.Lock()
	tok := ""
	for t, sid := range b.sessions {
		if sid == id {
			tok = t
		}
	}
	b.mu.Unlock()
	if tok == "" {
		b.fail(w, http.StatusNotFound, "Base.1.8.ResourceMissingAtURI", "No session "+id+".")
		return
	}
	switch r.Method {
	case http.MethodGet:
		b.reply(w, http.StatusOK, map[string]any{
			"@odata.type": "#Session.v1_3_0.Session", "@odata.id": sessionsURI + "/" + id, "Id": id,
			"Name": "User Session", "UserName": b.cfg.Username,
		})
	case http.MethodDelete:
		b.mu.Lock()
		delete(b.sessions, tok)
		b.stats.Logouts++
		b.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Allow", "GET, DELETE")
		b.fail(w, http.StatusMethodNotAllowed, "Base.1.8.OperationNotAllowed", "Use GET or DELETE on a session.")
	}
}

func (b *BMC) reset(w http.ResponseWriter, r *http.Request, f Fault) {
	var req struct{ ResetType string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		b.fail(w, http.StatusBadRequest, "Base.1.8.MalformedJSON", "The request body submitted was malformed JSON.")
		return
	}
	b.mu.Lock()
	b.stats.Resets = append(b.stats.Resets, req.ResetType)
	b.mu.Unlock()
	b.log.Info("bmc emulator reset requested", "reset_type", req.ResetType, "remote", r.RemoteAddr)

	supported := false
	for _, t := range ResetTypes() {
		supported = supported || t == req.ResetType
	}
	if !supported {
		b.fail(w, http.StatusBadRequest, "Base.1.8.ActionParameterValueNotInList",
			fmt.Sprintf("The value %q for the parameter ResetType is not in the list of acceptable values.", req.ResetType))
		return
	}
	if f.ConflictAlways {
		b.fail(w, http.StatusConflict, "Base.1.8.ResourceInUse", "The change to the requested resource failed because the resource is in use or in transition (emulated fault).")
		return
	}
	if f.StuckPower {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	var status int
	var msg string
	switch req.ResetType {
	case "ForceOff", "GracefulShutdown":
		status, msg = b.change(f, []step{b.offStep()})
	case "On":
		status, msg = b.change(f, []step{b.onStep()})
	default: // ForceRestart, PowerCycle: off (if on), then on
		status, msg = b.change(f, []step{b.offStep(), b.onStep()})
	}
	if status != http.StatusNoContent {
		b.fail(w, status, "Base.1.8.ResourceInUse", msg)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// step is one leg of a power transition: show via for delay, run hook, then
// show final.
type step struct {
	via, final fencing.PowerState
	delay      time.Duration
	hook       func()
}

func (b *BMC) offStep() step {
	return step{via: fencing.PoweringOff, final: fencing.Off, delay: b.cfg.PowerOffDelay, hook: b.cfg.OnPowerOff}
}

func (b *BMC) onStep() step {
	return step{via: fencing.PoweringOn, final: fencing.On, delay: b.cfg.PowerOnDelay, hook: b.cfg.OnPowerOn}
}

// change starts a power transition. With no delays it runs to the end before
// returning (so the reset's answer comes after the hooks); otherwise it runs
// in the background and the state reads PoweringOff/PoweringOn meanwhile.
func (b *BMC) change(f Fault, steps []step) (int, string) {
	b.mu.Lock()
	cur := b.power
	switch {
	case cur == fencing.PoweringOff || cur == fencing.PoweringOn:
		b.mu.Unlock()
		if len(steps) == 1 && steps[0].via == cur {
			return http.StatusNoContent, "" // already on its way there
		}
		return http.StatusConflict, "A power transition is in progress; try again when it has finished."
	case len(steps) == 1 && cur == steps[0].final:
		b.mu.Unlock()
		if cur == fencing.Off && f.ConflictWhenOff {
			return http.StatusConflict, "The server is already powered OFF."
		}
		return http.StatusNoContent, ""
	case cur == fencing.Off && len(steps) == 2:
		steps = steps[1:] // restart of a system that is off: just power on
	}
	if b.closed {
		b.mu.Unlock()
		return http.StatusServiceUnavailable, "The BMC is shutting down."
	}
	b.power = steps[0].via
	b.wg.Add(1)
	b.mu.Unlock()

	run := func() {
		defer b.wg.Done()
		for _, s := range steps {
			b.mu.Lock()
			b.power = s.via
			b.mu.Unlock()
			if s.delay > 0 {
				t := time.NewTimer(s.delay)
				select {
				case <-t.C:
				case <-b.done:
					t.Stop()
					return
				}
			}
			if s.hook != nil {
				s.hook()
			}
			b.mu.Lock()
			b.power = s.final
			b.mu.Unlock()
			b.log.Info("bmc emulator power changed", "power", string(s.final))
		}
	}
	delayed := false
	for _, s := range steps {
		delayed = delayed || s.delay > 0
	}
	if delayed {
		go run()
	} else {
		run()
	}
	return http.StatusNoContent, ""
}

func link(uri string) map[string]any { return map[string]any{"@odata.id": uri} }

func collection(odataType, uri, name string, members []any) map[string]any {
	if members == nil {
		members = []any{}
	}
	return map[string]any{
		"@odata.type": odataType, "@odata.id": uri, "Name": name,
		"Members@odata.count": len(members), "Members": members,
	}
}

func (b *BMC) reply(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// fail writes a Redfish error body.
func (b *BMC) fail(w http.ResponseWriter, status int, code, msg string) {
	b.reply(w, status, map[string]any{"error": map[string]any{
		"code": code, "message": msg,
		"@Message.ExtendedInfo": []any{map[string]any{
			"@odata.type": "#Message.v1_1_1.Message", "MessageId": code, "Message": msg, "Severity": "Warning",
		}},
	}})
}
