package server

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/bulwarkhq/bulwark/api"
	"github.com/bulwarkhq/bulwark/clusterstore"
	"github.com/bulwarkhq/bulwark/scheduler"
)

// whatIf answers GET /v1/whatif. With ?fail=h1,h2 (or fail repeated) it
// says what would restart where if those hosts failed now (api.WhatIf);
// without it, it answers for each ready host that runs something failing
// alone (api.WhatIfReport). Computed from live state by the same scheduler
// the leader uses; it changes nothing.
func (h *Handler) whatIf(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, api.CodeInvalid, "bad query: "+err.Error())
		return
	}
	var failed []string
	if q.Has("fail") {
		for _, v := range q["fail"] {
			for _, name := range strings.Split(v, ",") {
				name = strings.TrimSpace(name)
				if err := api.ValidateName("node", name); err != nil {
					writeError(w, http.StatusBadRequest, api.CodeInvalid, "fail: "+err.Error())
					return
				}
				failed = append(failed, name)
			}
		}
	}
	snap, ok := h.snapshot(w, r)
	if !ok {
		return
	}
	sched := h.sched
	if sched == nil {
		sched = scheduler.New(scheduler.Options{})
	}
	st := SchedulerState(snap)
	now := h.now()
	opts := scheduler.WhatIfOptions{}
	if failed != nil {
		for _, name := range failed {
			if _, ok := snap.Nodes[name]; !ok {
				writeError(w, http.StatusNotFound, api.CodeNotFound, fmt.Sprintf("node %q not found", name))
				return
			}
		}
		res, err := scheduler.WhatIf(st, failed, sched, now, opts)
		if errors.Is(err, scheduler.ErrUnknownHost) {
			writeError(w, http.StatusNotFound, api.CodeNotFound, err.Error())
			return
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, api.CodeInvalid, err.Error())
			return
		}
		writeJSON(w, http.StatusOK, h.whatIfView(snap, res))
		return
	}
	rep := api.WhatIfReport{Scenarios: []api.WhatIf{}, UnsafeHosts: []string{}}
	for _, res := range scheduler.WhatIfEach(st, sched, now, opts) {
		v := h.whatIfView(snap, res)
		rep.Scenarios = append(rep.Scenarios, v)
		if !v.Safe {
			rep.UnsafeHosts = append(rep.UnsafeHosts, res.Failed...)
		}
	}
	sort.Strings(rep.UnsafeHosts)
	writeJSON(w, http.StatusOK, rep)
}

// whatIfView turns the scheduler's answer into the wire type, with notes on
// hosts whose recovery does not follow the usual timing: no fence device.
func (h *Handler) whatIfView(snap *clusterstore.Snapshot, res scheduler.WhatIfResult) api.WhatIf {
	v := api.WhatIf{Failed: res.Failed, Restarts: []api.WhatIfMove{}, Unplaced: []api.WhatIfUnplaced{},
		ExpectedRecovery: api.Duration(res.ExpectedRecovery), Safe: res.Safe()}
	for _, m := range res.Restarts {
		v.Restarts = append(v.Restarts, api.WhatIfMove{Order: m.Order, Workload: m.Workload, Priority: m.Priority, From: m.From, To: m.To})
	}
	for _, p := range res.Preemptions {
		v.Preempted = append(v.Preempted, api.WhatIfPreemption{Workload: p.Workload, Host: p.Host, By: p.By, Reason: p.Reason})
	}
	for _, u := range res.Unplaced {
		v.Unplaced = append(v.Unplaced, api.WhatIfUnplaced{Workload: u.Workload, Priority: u.Priority, From: u.From, Reason: u.Reason})
	}
	for _, host := range res.Failed {
		if len(h.fence.devices(host)) > 0 {
			continue
		}
		if snap.Settings.WatchdogFencing {
			n := snap.Nodes[host].Value
			wait := time.Duration(n.LeaseTTL) + time.Duration(n.SelfFenceAfter) + time.Duration(snap.Settings.WatchdogTimeout)
			if n.LeaseTTL == 0 || n.SelfFenceAfter == 0 {
				wait = 2*time.Minute + time.Duration(snap.Settings.WatchdogTimeout)
			}
			v.Notes = append(v.Notes, fmt.Sprintf("%s has no fence device: its workloads restart once the watchdog window (%s) has elapsed", host, wait))
			ttl := time.Duration(n.LeaseTTL)
			if ttl <= 0 {
				ttl = scheduler.DefaultLeaseTTL
			}
			v.ExpectedRecovery = max(v.ExpectedRecovery, api.Duration(ttl+wait))
			continue
		}
		v.Notes = append(v.Notes, fmt.Sprintf("%s has no fence device: its workloads restart only after an operator confirms it is off (bulwarkctl node fence %s --confirm-off)", host, host))
	}
	return v
}
