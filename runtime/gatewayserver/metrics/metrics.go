// Package metrics holds the gateway's Prometheus collectors, so that the
// session server, the router and the nudge fan-out report under one set of
// names and a test can read them back.
//
// Every series is bote_gateway_*. Until the release after the rename the
// same values are also exported as bote_worker_*, the names from when the
// gateway process was called the worker, so that dashboards and alerts
// keep working while they move (docs/conventions.md).
package metrics

import (
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Prefix starts every series name; LegacyPrefix starts the same series
// under their deprecated names.
const (
	Prefix       = "bote_gateway_"
	LegacyPrefix = "bote_worker_"
)

// Metrics are the gateway's collectors.
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
	// deadline had passed (the caller gave up) or the calling instance's
	// reply queue was gone (its process stopped).
	LateReplies prometheus.Counter
}

// New creates the collectors and registers them, and their deprecated
// bote_worker_* copies, with reg (a fresh registry when reg is nil).
func New(reg prometheus.Registerer) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var legacy legacy
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: Prefix + name, Help: help})
		legacy.add(c, name, help)
		return c
	}
	counterVec := func(name, help, label string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: Prefix + name, Help: help}, []string{label})
		legacy.add(c, name, help, label)
		return c
	}
	m := &Metrics{
		Routed:     counterVec("routed_total", "Cloud to connector messages enqueued on connector queues.", "kind"),
		Failed:     counterVec("failed_total", "Messages moved to the error queue, by reason.", "reason"),
		Retries:    counterVec("retries_total", "Routing retries, by kind.", "kind"),
		Duplicates: counter("duplicates_total", "Messages skipped because their id was already routed."),
		RoutingLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    Prefix + "routing_latency_seconds",
			Help:    "Time from receiving a message off the bus to the last connector queue accepting it.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		Sessions:    prometheus.NewGauge(prometheus.GaugeOpts{Name: Prefix + "sessions", Help: "Open connector sessions on this replica."}),
		Evicted:     counter("sessions_evicted_total", "Sessions closed because their connector exceeded the per-connector session cap (oldest first)."),
		Sent:        counter("sent_total", "Connector to cloud messages accepted by the bus."),
		Rejected:    counterVec("rejected_frames_total", "Connector frames refused, by error code.", "code"),
		Nudges:      counterVec("nudges_total", "Nudges sent, by destination.", "to"),
		LateReplies: counter("late_replies_total", "Replies to calls discarded because the caller's deadline had passed or its reply queue was gone."),
	}
	legacy.add(m.RoutingLatency, "routing_latency_seconds", "Time from receiving a message off the bus to the last connector queue accepting it.")
	legacy.add(m.Sessions, "sessions", "Open connector sessions on this replica.")
	reg.MustRegister(m.Routed, m.Failed, m.Retries, m.Duplicates, m.RoutingLatency, m.Sessions, m.Evicted, m.Sent, m.Rejected, m.Nudges, m.LateReplies, legacy)
	return m
}

var errUnsupported = errors.New("metrics: no counter, gauge or histogram to copy")

// legacy exports collectors under their deprecated names, bote_worker_*,
// with the values the collectors hold when scraped: one place counts, two
// names show it.
type legacy []legacySeries

type legacySeries struct {
	c      prometheus.Collector
	desc   *prometheus.Desc
	labels []string
}

func (l *legacy) add(c prometheus.Collector, name, help string, labels ...string) {
	help = strings.TrimSuffix(help, ".") + " (deprecated name of " + Prefix + name + ")."
	*l = append(*l, legacySeries{c: c, desc: prometheus.NewDesc(LegacyPrefix+name, help, labels, nil), labels: labels})
}

func (l legacy) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range l {
		ch <- s.desc
	}
}

func (l legacy) Collect(ch chan<- prometheus.Metric) {
	for _, s := range l {
		metrics := make(chan prometheus.Metric)
		go func() {
			s.c.Collect(metrics)
			close(metrics)
		}()
		for m := range metrics {
			ch <- s.copy(m)
		}
	}
}

// copy is m under the deprecated name.
func (s legacySeries) copy(m prometheus.Metric) prometheus.Metric {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return prometheus.NewInvalidMetric(s.desc, err)
	}
	values := make([]string, len(s.labels))
	for _, p := range d.GetLabel() {
		for i, name := range s.labels {
			if p.GetName() == name {
				values[i] = p.GetValue()
			}
		}
	}
	var (
		c   prometheus.Metric
		err error
	)
	switch {
	case d.Counter != nil:
		c, err = prometheus.NewConstMetric(s.desc, prometheus.CounterValue, d.Counter.GetValue(), values...)
	case d.Gauge != nil:
		c, err = prometheus.NewConstMetric(s.desc, prometheus.GaugeValue, d.Gauge.GetValue(), values...)
	case d.Histogram != nil:
		buckets := make(map[float64]uint64, len(d.Histogram.GetBucket()))
		for _, b := range d.Histogram.GetBucket() {
			buckets[b.GetUpperBound()] = b.GetCumulativeCount()
		}
		c, err = prometheus.NewConstHistogram(s.desc, d.Histogram.GetSampleCount(), d.Histogram.GetSampleSum(), buckets, values...)
	default:
		return prometheus.NewInvalidMetric(s.desc, errUnsupported)
	}
	if err != nil {
		return prometheus.NewInvalidMetric(s.desc, err)
	}
	return c
}
