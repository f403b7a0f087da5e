package nodeagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// serveHTTP runs the agent's own small API until ctx ends. GET /v1/tasks
// lists what the driver really runs on this host: invariant checkers and
// tests read the truth from here, not from the agent's reports.
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
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 60 * time.Second}
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

func (a *Agent) listen() (net.Listener, error) {
	if a.cfg.HTTPListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", a.cfg.HTTPListen)
	if err != nil {
		return nil, fmt.Errorf("agent: listen on %s: %w", a.cfg.HTTPListen, err)
	}
	return ln, nil
}
