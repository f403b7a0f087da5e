package nodeagent

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/drivers"
)

// serveHTTP runs the agent's own small API until ctx ends. GET /v1/tasks
// lists what the driver really runs on this host: invariant checkers and
// tests read the truth from here, not from the agent's reports. The
// servers call it with the token the agent published in the store; with
// Config.HTTPTLS the listener (see listen) speaks only TLS, so that neither
// the token nor the workloads' logs cross the network in clear.
func (a *Agent) serveHTTP(ctx context.Context, ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/tasks", func(w http.ResponseWriter, r *http.Request) {
		tasks, err := a.cfg.Driver.List(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(api.Error{Message: "list tasks: " + err.Error(), Code: api.CodeUnavailable})
			return
		}
		out := make([]api.Task, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, api.Task{Workload: t.Workload, Epoch: t.Epoch, State: string(t.State), Detail: t.Detail, ID: t.ID})
		}
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /v1/logs/{workload}", a.serveLogs)
	mux.HandleFunc("POST /v1/check/volume", a.checkVolume)
	top := http.NewServeMux()
	// Metrics carry no workload data and are scraped without a token;
	// everything else needs the token the agent published in the store.
	top.Handle("GET /metrics", a.metrics.handler())
	top.Handle("/", a.requireToken(mux))
	srv := &http.Server{Handler: top, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second,
		// Failed TLS handshakes (a client that does not trust this host's
		// certificate, or one speaking plain HTTP) land in the agent's log.
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("agent HTTP server stopped", "err", err)
	}
}

// requireToken refuses requests without the agent's bearer token.
func (a *Agent) requireToken(next http.Handler) http.Handler {
	want := []byte("Bearer " + a.token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if a.token == "" || subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark-agent"`)
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(api.Error{Message: "this agent's API needs its token (the server reads it from the cluster store)", Code: "unauthenticated"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *Agent) listen() (net.Listener, error) {
	if a.cfg.HTTPListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", a.cfg.HTTPListen, err)
	}
	if a.cfg.HTTPTLS != nil {
		// The server's handshake is bounded by ReadHeaderTimeout; a client
		// speaking plain HTTP gets a 400 and nothing else.
		ln = tls.NewListener(ln, a.cfg.HTTPTLS.Clone())
	}
	return ln, nil
}

// serveLogs streams a workload's output (container stdout/stderr, VM serial
// console). With ?follow=true it keeps sending what is appended until the
// client goes away, like tail -f.
func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("workload")
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(api.Error{Message: msg, Code: code})
	}
	if err := api.ValidateName("workload", name); err != nil {
		fail(http.StatusBadRequest, api.CodeInvalid, err.Error())
		return
	}
	lg, ok := a.cfg.Driver.(drivers.Logger)
	if !ok {
		fail(http.StatusNotImplemented, api.CodeInternal, "the "+a.cfg.Driver.Name()+" driver keeps no output")
		return
	}
	rc, err := lg.Logs(r.Context(), name)
	if err != nil {
		status := http.StatusServiceUnavailable
		if errors.Is(err, drivers.ErrNotFound) {
			status = http.StatusNotFound
		}
		fail(status, api.CodeNotFound, "logs of "+name+": "+err.Error())
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	follow := r.URL.Query().Get("follow") == "true"
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err == nil {
			continue
		}
		if !follow || !errors.Is(err, io.EOF) {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
