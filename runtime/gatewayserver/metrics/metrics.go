// Package metrics holds the worker's Prometheus collectors, so that the
// session server, the router and the nudge fan-out report under one set of
// names and a test can read them back.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the worker's collectors.
type Metrics struct {
	// Routed counts cloud→connector messages put on connector queues, by
	// kind ("targeted", "broadcast").
	Routed *prometheus.CounterVec
	// Failed counts messages sent to the error queue, by reason.
	Failed *prometheus.CounterVec
	// Retries counts routing retries, by kind ("immediate", "delayed").
	Retries *prometheus.CounterVec
	// Duplicates counts routed messages skipped as already routed.
	Duplicates prometheus.Counter
	// RoutingLatency observes the time from receiving a message off the bus
	// to the last connector queue accepting it.
	RoutingLatency prometheus.Histogram
	// Sessions is the number of open connector sessions on this replica.
	Sessions prometheus.Gauge
	// Evicted counts sessions closed because their connector opened more
	// than the per-connector cap on this replica (the oldest goes).
	Evicted prometheus.Counter
	// Sent counts connector→cloud messages accepted by the bus.
	Sent prometheus.Counter
	// Rejected counts connector frames refused, by error code.
	Rejected *prometheus.CounterVec
	// Nudges counts nudges, by where they went ("local", "remote"), and
	// messages delivered in the frame itself to a local session
	// ("delivered").
	Nudges *prometheus.CounterVec
	// LateReplies counts replies to calls discarded because the call's
	// deadline had passed (the caller gave up).
	LateReplies prometheus.Counter
}

// New creates the collectors and registers them with reg (a fresh registry
// when reg is nil).
func New(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m := &Metrics{
		Routed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bote_worker_routed_total", Help: "Cloud to connector messages enqueued on connector queues.",
		}, []string{"kind"}),
		Failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bote_worker_failed_total", Help: "Messages moved to the error queue, by reason.",
		}, []string{"reason"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bote_worker_retries_total", Help: "Routing retries, by kind.",
		}, []string{"kind"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bote_worker_duplicates_total", Help: "Messages skipped because their id was already routed.",
		}),
		RoutingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "bote_worker_routing_latency_seconds",
			Help:    "Time from receiving a message off the bus to the last connector queue accepting it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		Sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bote_worker_sessions", Help: "Open connector sessions on this replica.",
		}),
		Evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bote_worker_sessions_evicted_total", Help: "Sessions closed because their connector exceeded the per-connector session cap (oldest first).",
		}),
		Sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bote_worker_sent_total", Help: "Connector to cloud messages accepted by the bus.",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bote_worker_rejected_frames_total", Help: "Connector frames refused, by error code.",
		}, []string{"code"}),
		Nudges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bote_worker_nudges_total", Help: "Nudges sent, by destination.",
		}, []string{"to"}),
		LateReplies: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bote_worker_late_replies_total", Help: "Replies to calls discarded because the caller's deadline had passed.",
		}),
	}
	reg.MustRegister(m.Routed, m.Failed, m.Retries, m.Duplicates, m.RoutingLatency, m.Sessions, m.Evicted, m.Sent, m.Rejected, m.Nudges, m.LateReplies)
	return m
}
