// Package server is the I/O shell around the scheduler: the HTTP API, leader
// election, the watches that trigger evaluations and the plan applier.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
	"github.com/bulwarkhq/bulwark/ui"
)

// ElectionName is the election every server replica joins.
const ElectionName = "leader"

// Config configures one server replica.
type Config struct {
	// Name identifies this replica in the election and in /v1/health.
	Name string
	// Listen is the API address, e.g. 127.0.0.1:7370.
	Listen string
	Store  clusterstore.Store
	// SessionTTL is the leadership lease TTL: how long a dead leader can
	// hold on to leadership.
	SessionTTL time.Duration
	// Resync is how often the leader re-evaluates even without changes.
	Resync time.Duration
	// EvalDelay is how long the leader lets changes gather before it
	// evaluates (default 10ms; negative: none).
	EvalDelay time.Duration
	Scheduler scheduler.Scheduler
	Log       *slog.Logger
	// Listener, if set, is used instead of listening on Listen.
	Listener net.Listener
	// Fencing configures how lost hosts are fenced.
	Fencing FencingConfig
	// Auth configures API authentication (off in the zero value).
	Auth AuthConfig
	// TLS, if set, serves the API over TLS.
	TLS *tls.Config
	// AgentTLS is the client TLS configuration of calls to the agents'
	// APIs at https:// agent URLs: its RootCAs verify their certificates
	// (nil: the system's CAs). Verification is never skipped.
	AgentTLS *tls.Config
	// WrapHandler, if set, wraps the API handler (the dev cluster adds its
	// fault-injection endpoint this way).
	WrapHandler func(http.Handler) http.Handler
	// OnReady, if set, is called once the API is listening (systemd
	// readiness).
	OnReady func()
	// OnPlan, if set, is told about every evaluation that placed or
	// parked workloads (benchmarks and metrics).
	OnPlan func(PlanReport)
	// MaxTxnOps bounds the operations (and separately the conditions) of
	// one transaction; big plans are committed in chunks under it. It must
	// not exceed the store's own limit.
	MaxTxnOps int
}

// Server is one replica.
type Server struct {
	cfg     Config
	log     *slog.Logger
	leader  *leaderState
	metrics *metrics
}

// New checks the configuration and builds a replica.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("server: no store")
	}
	if err := api.ValidateName("server", cfg.Name); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 5 * time.Second
	}
	if cfg.SessionTTL < time.Second {
		return nil, fmt.Errorf("server: session TTL %s is under 1s", cfg.SessionTTL)
	}
	if cfg.Resync == 0 {
		cfg.Resync = 5 * time.Second
	}
	if cfg.EvalDelay == 0 {
		cfg.EvalDelay = 10 * time.Millisecond
	}
	if cfg.MaxTxnOps == 0 {
		cfg.MaxTxnOps = 8192
	}
	if cfg.Scheduler == nil {
		cfg.Scheduler = scheduler.New(scheduler.Options{})
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	srv := &Server{cfg: cfg, log: cfg.Log.With("server", cfg.Name), leader: &leaderState{}, metrics: newMetrics(cfg.Store)}
	onPlan := cfg.OnPlan
	srv.cfg.OnPlan = func(r PlanReport) {
		srv.metrics.plan(r)
		if onPlan != nil {
			onPlan(r)
		}
	}
	return srv, nil
}

// Run serves the API and takes part in leader election until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", s.cfg.Listen)
		if err != nil {
			return fmt.Errorf("server: listen on %s: %w", s.cfg.Listen, err)
		}
	}
	apiHandler := newHandler(s.cfg.Store, s.log, s.health, s.cfg.Scheduler, s.cfg.Fencing, newAgentClient(s.cfg.AgentTLS))
	var handler http.Handler = apiHandler
	if s.cfg.WrapHandler != nil {
		handler = s.cfg.WrapHandler(handler)
	}
	top := http.NewServeMux()
	top.Handle("GET /metrics", s.metrics.handler())
	top.Handle(ui.Prefix, ui.Handler(dashboardSource{s}, ui.Options{Done: ctx.Done()}))
	top.Handle("/", handler)
	handler = top
	if s.cfg.Auth.Required {
		auth := &authenticator{store: s.cfg.Store, now: time.Now, cache: map[string]cachedToken{}}
		handler = auth.middleware(top, func(r *http.Request) string {
			if _, p := top.Handler(r); p != "/" {
				return p // /metrics, /ui/
			}
			return apiHandler.(*routedMux).Pattern(r)
		})
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	s.log.Info("API listening", "addr", ln.Addr().String())
	errc := make(chan error, 2)
	go func() {
		if s.cfg.TLS != nil {
			ln = tls.NewListener(ln, s.cfg.TLS)
		}
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("server: serve API: %w", err)
		}
	}()
	go func() { errc <- s.campaignLoop(ctx) }()
	if s.cfg.OnReady != nil {
		s.cfg.OnReady()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	return err
}

// Addr is a helper for tests that pass a Listener.
func (s *Server) health(ctx context.Context) api.Health {
	h := api.Health{Status: "ok", Server: s.cfg.Name}
	h.Leader, h.IsLeader = s.leader.get()
	if _, _, rev, err := s.cfg.Store.Get(ctx, clusterstore.Prefix+"health"); err != nil {
		h.Status = "store unavailable: " + err.Error()
	} else {
		h.Revision = rev
	}
	if !h.IsLeader {
		if v, err := s.currentLeader(ctx); err == nil {
			h.Leader = v
		}
	}
	return h
}

func (s *Server) currentLeader(ctx context.Context) (string, error) {
	kvs, _, err := s.cfg.Store.List(ctx, clusterstore.ElectionPrefix+ElectionName+"/", 0)
	if err != nil {
		return "", err
	}
	var best *clusterstore.KeyValue
	for i := range kvs {
		if best == nil || kvs[i].CreateRevision < best.CreateRevision {
			best = &kvs[i]
		}
	}
	if best == nil {
		return "", errors.New("no leader")
	}
	return string(best.Value), nil
}

// campaignLoop keeps trying to lead: session, campaign, lead until the
// session is lost, then start over.
func (s *Server) campaignLoop(ctx context.Context) error {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := s.campaignOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("leadership attempt ended; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
	return nil
}

func (s *Server) campaignOnce(ctx context.Context) error {
	sess, err := clusterstore.NewSession(ctx, s.cfg.Store, s.cfg.SessionTTL)
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	defer sess.Close()
	el := clusterstore.NewElection(s.cfg.Store, sess, ElectionName)
	if err := el.Campaign(ctx, s.cfg.Name); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	s.log.Info("became leader")
	s.leader.set(s.cfg.Name, true)
	s.metrics.isLeader.Set(1)
	defer func() { s.leader.set("", false); s.metrics.isLeader.Set(0) }()

	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			s.log.Warn("leadership session lost; stepping down")
			cancel()
		case <-lctx.Done():
		}
	}()
	l := &leader{cfg: s.cfg, log: s.log, guard: el.Guard(), metrics: s.metrics}
	err = l.run(lctx)
	if ctx.Err() == nil {
		// Resign so a standby takes over at once instead of after the TTL.
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		_ = el.Resign(rctx)
		rcancel()
	}
	return err
}
