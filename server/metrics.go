package server

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwarkhq/bulwark/clusterstore"
)

// metrics are one server replica's Prometheus metrics, in a registry of its
// own (no global state): GET /metrics.
type metrics struct {
	reg *prometheus.Registry

	placements     prometheus.Counter
	planSeconds    prometheus.Histogram
	preemptions    prometheus.Counter
	fenceAttempts  *prometheus.CounterVec
	fenceSeconds   *prometheus.HistogramVec
	failoverSecond prometheus.Histogram
	isLeader       prometheus.Gauge
}

func newMetrics(store clusterstore.Store) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.placements = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_placements_total",
		Help: "Workloads placed by this replica while it led."})
	m.planSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_evaluation_seconds",
		Help: "Duration of leader evaluations that placed or parked workloads (read, schedule, commit).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	m.preemptions = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_preemptions_total",
		Help: "Workloads stopped to make room for higher-priority ones."})
	m.fenceAttempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_fence_attempts_total",
		Help: "Fence operations by result (ok, failed)."}, []string{"result"})
	m.fenceSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "bulwark_fence_seconds",
		Help: "Duration of fence operations, power-off confirmed or failed on every device.", Buckets: prometheus.ExponentialBuckets(0.1, 2, 10)}, []string{"result"})
	m.failoverSecond = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_failover_seconds",
		Help: "From a host seen without heartbeat to its workloads released for placement elsewhere (fence record stored, allocations recovered).", Buckets: prometheus.ExponentialBuckets(0.25, 2, 10)})
	m.isLeader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_leader", Help: "1 while this replica leads."})
	f(m.placements)
	f(m.planSeconds)
	f(m.preemptions)
	f(m.fenceAttempts)
	f(m.fenceSeconds)
	f(m.failoverSecond)
	f(m.isLeader)
	f(&stateCollector{store: store,
		hosts:     prometheus.NewDesc("bulwark_hosts", "Registered hosts by state.", []string{"state"}, nil),
		workloads: prometheus.NewDesc("bulwark_workloads", "Workloads by state.", []string{"state"}, nil),
	})
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// plan records one committed evaluation.
func (m *metrics) plan(r PlanReport) {
	m.placements.Add(float64(r.Placed))
	m.preemptions.Add(float64(r.Preempted))
	m.planSeconds.Observe(r.Took.Seconds())
}

// stateCollector counts hosts and workloads by state at scrape time, from
// the same views the API serves.
type stateCollector struct {
	store            clusterstore.Store
	hosts, workloads *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hosts
	ch <- c.workloads
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	snap, _, err := clusterstore.ReadSnapshot(ctx, c.store)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.hosts, err)
		return
	}
	hosts := map[string]int{}
	for _, v := range nodeViews(snap) {
		hosts[string(v.State)]++
	}
	for state, n := range hosts {
		ch <- prometheus.MustNewConstMetric(c.hosts, prometheus.GaugeValue, float64(n), state)
	}
	wls := map[string]int{}
	for _, v := range workloadViews(snap) {
		wls[string(v.State)]++
	}
	for state, n := range wls {
		ch <- prometheus.MustNewConstMetric(c.workloads, prometheus.GaugeValue, float64(n), state)
	}
}
