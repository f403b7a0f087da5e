package nodeagent

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwarkhq/bulwark/api"
)

// metrics are the agent's Prometheus metrics, in a registry of its own,
// served at GET /metrics on the agent's API.
type metrics struct {
	reg        *prometheus.Registry
	renew      prometheus.Histogram
	renewFails prometheus.Counter
	selfFences prometheus.Counter
	restarts   prometheus.Counter
	workloads  *prometheus.GaugeVec
	// superseded counts workloads destroyed because their volume's
	// on-storage lease showed a newer epoch; vipMoves counts floating IPs
	// brought up here.
	superseded prometheus.Counter
	vipMoves   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.renew = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "bulwark_agent_lease_renew_seconds",
		Help: "Round trip of heartbeat lease keepalives.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.renewFails = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_agent_lease_renew_failures_total",
		Help: "Keepalives that failed or timed out."})
	m.selfFences = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_agent_self_fences_total",
		Help: "Times this agent killed every workload because it lost the cluster."})
	m.restarts = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_agent_workload_restarts_total",
		Help: "Workloads restarted on this host by their restart policy."})
	m.workloads = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "bulwark_agent_workloads",
		Help: "Workloads on this host by reported state."}, []string{"state"})
	m.superseded = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_agent_volume_superseded_total",
		Help: "Workloads destroyed because their volume's on-storage lease showed a newer epoch."})
	m.vipMoves = prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_agent_vip_up_total",
		Help: "Floating IPs added to this host's interfaces and announced."})
	m.reg.MustRegister(m.renew, m.renewFails, m.selfFences, m.restarts, m.workloads, m.superseded, m.vipMoves,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

func (m *metrics) keepAlive(d time.Duration, err error) {
	if err != nil {
		m.renewFails.Inc()
		return
	}
	m.renew.Observe(d.Seconds())
}

// setStates publishes how many workloads are in each state.
func (m *metrics) setStates(reported map[string]api.WorkloadStatus) {
	counts := map[api.State]int{}
	for _, st := range reported {
		counts[st.State]++
	}
	for _, s := range []api.State{api.StatePending, api.StateStarting, api.StateRunning, api.StateStopping, api.StateStopped, api.StateFailed} {
		m.workloads.WithLabelValues(string(s)).Set(float64(counts[s]))
	}
}
