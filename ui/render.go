package ui

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
)

// The page's script (static/dashboard.js) redraws what these functions and
// templates/page.html draw; the two must agree to the character, which
// TestChromiumRedrawMatchesServer checks in a real browser.

type pageTemplate struct{ t *template.Template }

func mustParsePage() *pageTemplate {
	t := template.Must(template.New("page.html").Funcs(template.FuncMap{
		"human":      human,
		"clock":      clock,
		"fenceClass": fenceClass,
		"fenceText":  fenceText,
		"cpuRatio":   func(used, total int) float64 { return ratio(int64(used), int64(total)) },
		"memRatio":   func(used, total api.ByteSize) float64 { return ratio(int64(used), int64(total)) },
		"orDash":     orDash,
		"epoch":      epochText,
		"newest":     newestFirst,
		"svcState":   serviceState,
		"svcHealth":  serviceHealth,
		"svcAddress": serviceAddress,
		"svcInPool":  serviceInPool,
		"svcPool":    poolSize,
	}).ParseFS(assets, "templates/page.html"))
	return &pageTemplate{t: t}
}

// pageData is what templates/page.html renders.
type pageData struct {
	Title string
	State State
	Sum   summary
	// Problem is why the state could not be read; the page then shows it
	// instead of the tables.
	Problem string
	// Revision is the store revision the page shows (0 if unknown): the
	// script's stream starts after it.
	Revision int64
}

// summary is the row of cards above the tables.
type summary struct {
	Hosts, HostsReady                   int
	Workloads, Running, Pending, Failed int
	CPUs, CPUsUsed                      int
	Memory, MemoryUsed                  api.ByteSize
}

func summarize(st State) summary {
	var s summary
	for _, n := range st.Nodes {
		s.Hosts++
		if n.State == api.NodeReady {
			s.HostsReady++
		}
		s.CPUs += n.CPUs
		s.CPUsUsed += n.CPUsUsed
		s.Memory += n.Memory
		s.MemoryUsed += n.MemoryUsed
	}
	for _, w := range st.Workloads {
		s.Workloads++
		switch w.State {
		case api.StateRunning:
			s.Running++
		case api.StatePending:
			s.Pending++
		case api.StateFailed:
			s.Failed++
		}
	}
	return s
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	d := pageData{Title: h.opts.Title}
	status := http.StatusOK
	st, err := h.readState(r.Context())
	if err != nil {
		status = http.StatusServiceUnavailable
		d.Problem = "The cluster state cannot be read: " + err.Error()
		d.State = State{Health: api.Health{Status: "unavailable"}}
	} else {
		d.State, d.Sum, d.Revision = st, summarize(st), st.Health.Revision
	}
	var buf bytes.Buffer
	if err := h.page.t.Execute(&buf, d); err != nil {
		http.Error(w, "render dashboard: "+err.Error(), http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

// human renders a size with one decimal in the largest unit it reaches,
// rounding half up in integer arithmetic so that the script (humanBytes in
// dashboard.js) gets the same text. api.ByteSize.Human rounds half to even.
func human(b api.ByteSize) string {
	units := []struct {
		name string
		size api.ByteSize
	}{{"TiB", api.TiB}, {"GiB", api.GiB}, {"MiB", api.MiB}, {"KiB", api.KiB}}
	for _, u := range units {
		if b >= u.size {
			tenths := (int64(b)*10 + int64(u.size)/2) / int64(u.size)
			s := strconv.FormatInt(tenths/10, 10)
			if tenths%10 != 0 {
				s += "." + strconv.FormatInt(tenths%10, 10)
			}
			return s + u.name
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// clock renders an event time in UTC, to the second; the zero time is "".
func clock(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// fenceClass colours the fencing column: "ok", "none" (the host has no
// fence device), "bad" (unfenceable) or "unknown" (not probed yet).
func fenceClass(f string) string {
	switch {
	case f == "ok":
		return "fence-ok"
	case f == "none":
		return "fence-none"
	case f == "":
		return "fence-unknown"
	}
	return "fence-bad"
}

func fenceText(f string) string {
	switch f {
	case "":
		return "unknown"
	case "none":
		return "no device"
	}
	return f
}

// ratio is used/total in [0, 1] for a <meter>; 0 when total is not positive.
func ratio(used, total int64) float64 {
	if total <= 0 || used <= 0 {
		return 0
	}
	if used >= total {
		return 1
	}
	return float64(used) / float64(total)
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

func epochText(e int64) string {
	if e == 0 {
		return "—"
	}
	return strconv.FormatInt(e, 10)
}

func newestFirst(evs []api.Event) []api.Event {
	out := make([]api.Event, len(evs))
	for i, e := range evs {
		out[len(evs)-1-i] = e
	}
	return out
}

// serviceState is a service's state column: "deleting" once DELETE marked
// it, "active" before.
func serviceState(v api.ServiceView) string {
	if v.Deleting {
		return "deleting"
	}
	return "active"
}

// healthCount is one part of a service's health column: how many of its
// members report that health.
type healthCount struct {
	Health string
	N      int
}

// serviceHealths are the healths the health column counts, in its order.
var serviceHealths = []string{api.HealthHealthy, api.HealthUnhealthy, api.HealthStarting, api.HealthUnknown}

// serviceHealth counts the members (not those being deleted) by health, in
// the order of serviceHealths, leaving out the healths no member has; empty
// when no member reports any (the template has no check, or nothing runs).
func serviceHealth(v api.ServiceView) []healthCount {
	var out []healthCount
	for _, h := range serviceHealths {
		n := 0
		for _, m := range v.Instances {
			if !m.Deleting && m.Health == h {
				n++
			}
		}
		if n > 0 {
			out = append(out, healthCount{h, n})
		}
	}
	return out
}

// serviceAddress is a load-balanced service's address: its VIP (bracketed
// if IPv6) and the ports it forwards, "10.0.0.100:80,53/udp"; "—" without
// a VIP.
func serviceAddress(v api.ServiceView) string {
	if v.VIP == "" {
		return orDash("")
	}
	vip := v.VIP
	if strings.Contains(vip, ":") {
		vip = "[" + vip + "]"
	}
	ports := make([]string, 0, len(v.Ports))
	for _, p := range v.Ports {
		s := strconv.Itoa(p.Port)
		if p.Proto == "udp" {
			s += "/udp"
		}
		ports = append(ports, s)
	}
	return vip + ":" + strings.Join(ports, ",")
}

// serviceInPool is how many members take the VIP's new connections, "2 of
// 3"; "—" without a VIP.
func serviceInPool(v api.ServiceView) string {
	if v.VIP == "" {
		return orDash("")
	}
	return strconv.Itoa(poolSize(v)) + " of " + strconv.Itoa(v.Replicas)
}

func poolSize(v api.ServiceView) int {
	if v.Pool == nil {
		return 0
	}
	return len(v.Pool.Backends)
}
