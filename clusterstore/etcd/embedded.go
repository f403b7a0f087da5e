package etcd

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bulwarkhq/bulwark/pki"
)

// readyTimeout bounds how long StartEmbedded waits for the member to serve.
// A single member elects itself in about a second; 30 s covers a slow disk.
const readyTimeout = 30 * time.Second

// EmbeddedConfig configures a single-member etcd run inside this process,
// for `bulwarkd dev` and tests.
type EmbeddedConfig struct {
	// Dir is the data directory (required). Reusing it restarts the member
	// with its data.
	Dir string
	// ClientURL is where clients connect, e.g. "http://127.0.0.1:2379". It
	// needs a concrete port: etcd advertises the URL as given, so port 0
	// would be advertised as 0. Empty: a free loopback port.
	ClientURL string
	// PeerURL is the raft peer URL, with the same rules. Empty: a free
	// loopback port.
	PeerURL string
	// Name is the member name (default "bulwark").
	Name string
	// MaxTxnOps is the most operations per transaction (default
	// DefaultMaxTxnOps; etcd's own default of 128 is too small for Bulwark).
	MaxTxnOps uint
	// MaxRequestBytes is the largest request accepted (default
	// DefaultMaxRequestBytes).
	MaxRequestBytes uint
	// LogLevel is etcd's log level: debug, info, warn, error, panic or fatal
	// (default "error": etcd's info logging is chatty).
	LogLevel string

	// ClientCertFile and ClientKeyFile serve clients over TLS with this
	// certificate; ClientURL must then be https:// (empty: a free loopback
	// port). etcd's own gateway connects to the listener with the same
	// certificate, so with ClientCertAuth it needs clientAuth as well as
	// serverAuth (pki's "etcd" kind has both). Peers stay on plain http:
	// an embedded member has none.
	ClientCertFile, ClientKeyFile string
	// ClientCAFile holds the CAs that client certificates are checked
	// against.
	ClientCAFile string
	// ClientCertAuth refuses clients without a certificate signed by a CA
	// in ClientCAFile (etcd's --client-cert-auth).
	ClientCertAuth bool
}

// tls reports whether clients are served over TLS.
func (c EmbeddedConfig) tls() bool { return c.ClientCertFile != "" }

func (c EmbeddedConfig) checkTLS() error {
	switch {
	case c.ClientCertFile == "" && (c.ClientKeyFile != "" || c.ClientCAFile != "" || c.ClientCertAuth):
		return errors.New("ClientKeyFile, ClientCAFile and ClientCertAuth need ClientCertFile")
	case c.ClientCertFile != "" && c.ClientKeyFile == "":
		return errors.New("ClientCertFile needs ClientKeyFile")
	case c.ClientCertAuth && c.ClientCAFile == "":
		return errors.New("ClientCertAuth needs ClientCAFile, the CA that signed the client certificates")
	}
	return nil
}

// loadTLS checks the TLS files: etcd reads them at each handshake, so a
// missing one would let the member start and then fail every client.
func (c EmbeddedConfig) loadTLS() error {
	if !c.tls() {
		return nil
	}
	if _, err := pki.LoadServerTLS(c.ClientCertFile, c.ClientKeyFile, c.ClientCAFile, c.ClientCertAuth); err != nil {
		return fmt.Errorf("client TLS: %w", err)
	}
	return nil
}

// Embedded is a running embedded etcd member.
type Embedded struct {
	etcd      *embed.Etcd
	endpoints []string
	closing   *atomic.Bool
	closeOnce sync.Once
}

// quietWhileClosing drops log entries once the member is being closed: etcd
// reports its own listeners shutting down as errors ("http: Server closed"),
// which would bury real problems in every test and dev-mode exit.
type quietWhileClosing struct {
	zapcore.Core
	closing *atomic.Bool
}

func (c quietWhileClosing) With(fields []zapcore.Field) zapcore.Core {
	return quietWhileClosing{Core: c.Core.With(fields), closing: c.closing}
}

func (c quietWhileClosing) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.closing.Load() && ent.Level < zapcore.PanicLevel {
		return ce
	}
	return c.Core.Check(ent, ce)
}

// newLogger builds etcd's logger: JSON on stderr at level, quiet on close.
func newLogger(level string, closing *atomic.Bool) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Sampling = nil
	zc.OutputPaths = []string{"stderr"}
	zc.ErrorOutputPaths = []string{"stderr"}
	lg, err := zc.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return quietWhileClosing{Core: c, closing: closing}
	})), nil
}

// FreeLoopbackPort returns a TCP port on 127.0.0.1 that was free a moment
// ago. Another process may take it before it is used; for tests and dev
// mode on one machine that risk is accepted.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// parseListenURL checks that raw is a URL of scheme (http or https) with a
// concrete port, or picks a free loopback port when raw is empty.
func parseListenURL(what, raw, scheme string) (url.URL, error) {
	if raw == "" {
		port, err := FreeLoopbackPort()
		if err != nil {
			return url.URL{}, fmt.Errorf("%s URL: %w", what, err)
		}
		raw = scheme + "://127.0.0.1:" + strconv.Itoa(port)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return url.URL{}, fmt.Errorf("%s URL %q: %w", what, raw, err)
	}
	switch {
	case u.Scheme == scheme:
	case scheme == "https":
		return url.URL{}, fmt.Errorf("%s URL %q: with ClientCertFile clients are served over TLS: use https://", what, raw)
	case u.Scheme == "https" && what == "client":
		return url.URL{}, fmt.Errorf("%s URL %q: https needs ClientCertFile and ClientKeyFile", what, raw)
	default:
		// Dev mode and tests stay on loopback; peers have no certificates.
		return url.URL{}, fmt.Errorf("%s URL %q: only %s is supported for embedded etcd", what, raw, scheme)
	}
	port := u.Port()
	if port == "" || port == "0" {
		return url.URL{}, fmt.Errorf("%s URL %q: needs a concrete port (etcd advertises it as given); use FreeLoopbackPort", what, raw)
	}
	return *u, nil
}

// StartEmbedded starts a single-member cluster and waits until it serves
// clients. Auto-compaction is off.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("start embedded etcd: Dir is required")
	}
	if cfg.Name == "" {
		cfg.Name = "bulwark"
	}
	if cfg.MaxTxnOps == 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.LogLevel == "" {
		cfg.LogLevel = "error"
	}
	if err := cfg.checkTLS(); err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	// A port left to us is picked free and then bound by etcd: another
	// process may take it in between, so such a start is retried with fresh
	// ports. A port the caller named is its choice and fails at once.
	var err error
	for attempt := 1; ; attempt++ {
		var e *Embedded
		e, err = startEmbedded(cfg)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) || (cfg.ClientURL != "" && cfg.PeerURL != "") || attempt == 5 {
			return nil, err
		}
	}
}

func startEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	clientScheme := "http"
	if cfg.tls() {
		clientScheme = "https"
	}
	clientURL, err := parseListenURL("client", cfg.ClientURL, clientScheme)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	peerURL, err := parseListenURL("peer", cfg.PeerURL, "http")
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	if err := cfg.loadTLS(); err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls = []url.URL{clientURL}
	ec.AdvertiseClientUrls = []url.URL{clientURL}
	ec.ListenPeerUrls = []url.URL{peerURL}
	ec.AdvertisePeerUrls = []url.URL{peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.InitialClusterToken = "bulwark-embedded"
	if cfg.tls() {
		ec.ClientTLSInfo = transport.TLSInfo{
			CertFile:       cfg.ClientCertFile,
			KeyFile:        cfg.ClientKeyFile,
			TrustedCAFile:  cfg.ClientCAFile,
			ClientCertAuth: cfg.ClientCertAuth,
		}
	}
	ec.MaxTxnOps = cfg.MaxTxnOps
	ec.MaxRequestBytes = cfg.MaxRequestBytes
	// Bulwark's plan transactions are large by design; etcd would log each
	// one it deems slow, rendering the whole request as text (measured: ~15%
	// of CPU when placing 50,000 workloads). Warn only on truly slow ones.
	ec.WarningApplyDuration = 5 * time.Second
	ec.WarningUnaryRequestDuration = 5 * time.Second
	closing := new(atomic.Bool)
	lg, err := newLogger(cfg.LogLevel, closing)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	ec.Logger = "zap"
	ec.LogLevel = cfg.LogLevel
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	ec.AutoCompactionRetention = "0"
	// No metrics listener: nothing scrapes it in dev mode or tests.
	ec.ListenMetricsUrls = nil

	e, err := embed.StartEtcd(ec)
	if err != nil {
		_ = lg.Sync()
		return nil, fmt.Errorf("start embedded etcd in %s (client %s, peer %s): %w", cfg.Dir, clientURL.String(), peerURL.String(), err)
	}
	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	var startErr error
	select {
	case <-e.Server.ReadyNotify():
		return &Embedded{etcd: e, endpoints: []string{clientURL.String()}, closing: closing}, nil
	case err := <-e.Err():
		startErr = err
	case <-e.Server.StopNotify():
		startErr = errors.New("server stopped before it was ready")
	case <-timer.C:
		startErr = fmt.Errorf("not ready after %v", readyTimeout)
	}
	closing.Store(true)
	e.Close()
	return nil, fmt.Errorf("start embedded etcd in %s: %w", cfg.Dir, startErr)
}

// Endpoints are the client URLs, for Dial.
func (e *Embedded) Endpoints() []string {
	return append([]string(nil), e.endpoints...)
}

// Close stops the member and waits for it. Clients should be closed first,
// or their requests fail while etcd shuts down.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.etcd.Close()
	})
}
