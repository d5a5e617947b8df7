package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLegacyNamesCarryTheSameValues: every bote_gateway_* series is also
// exported as bote_worker_* (its name before the rename) with the same
// labels and values, histograms bucket by bucket, and nothing else is.
func TestLegacyNamesCarryTheSameValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Routed.WithLabelValues("targeted").Add(3)
	m.Routed.WithLabelValues("broadcast").Inc()
	m.Failed.WithLabelValues("expired").Inc()
	m.Retries.WithLabelValues("delayed").Add(2)
	m.Duplicates.Inc()
	m.RoutingLatency.Observe(0.003)
	m.RoutingLatency.Observe(0.7)
	m.Sessions.Set(5)
	m.Sessions.Dec()
	m.Evicted.Inc()
	m.Sent.Add(7)
	m.Rejected.WithLabelValues("bad_frame").Inc()
	m.Nudges.WithLabelValues("remote").Inc()
	m.LateReplies.Inc()

	families, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, f := range families {
		byName[f.GetName()] = f
	}
	var gateway int
	for name, f := range byName {
		suffix, ok := strings.CutPrefix(name, Prefix)
		if !ok {
			assert.True(t, strings.HasPrefix(name, LegacyPrefix), "%s is neither %s* nor %s*", name, Prefix, LegacyPrefix)
			assert.Contains(t, byName, Prefix+strings.TrimPrefix(name, LegacyPrefix), "a legacy series without its new one")
			continue
		}
		gateway++
		old := byName[LegacyPrefix+suffix]
		require.NotNil(t, old, "%s has no %s%s", name, LegacyPrefix, suffix)
		assert.Equal(t, f.GetType(), old.GetType(), name)
		assert.Contains(t, old.GetHelp(), "deprecated name of "+name)
		require.Len(t, old.GetMetric(), len(f.GetMetric()), name)
		for i, sample := range f.GetMetric() {
			got := old.GetMetric()[i]
			assert.Equal(t, labels(sample), labels(got), name)
			assert.Equal(t, sample.GetCounter().GetValue(), got.GetCounter().GetValue(), name)
			assert.Equal(t, sample.GetGauge().GetValue(), got.GetGauge().GetValue(), name)
			assert.Equal(t, sample.GetHistogram().GetSampleCount(), got.GetHistogram().GetSampleCount(), name)
			assert.Equal(t, sample.GetHistogram().GetSampleSum(), got.GetHistogram().GetSampleSum(), name)
			require.Len(t, got.GetHistogram().GetBucket(), len(sample.GetHistogram().GetBucket()), name)
			for j, b := range sample.GetHistogram().GetBucket() {
				assert.Equal(t, b.GetUpperBound(), got.GetHistogram().GetBucket()[j].GetUpperBound(), name)
				assert.Equal(t, b.GetCumulativeCount(), got.GetHistogram().GetBucket()[j].GetCumulativeCount(), name)
			}
		}
	}
	assert.Equal(t, 11, gateway, "every collector is exported")
	assert.Len(t, byName, 2*gateway)

	// Spot checks on the text a scraper reads.
	assert.Equal(t, 3.0, testutil.ToFloat64(m.Routed.WithLabelValues("targeted")))
	n, err := testutil.GatherAndCount(reg, "bote_worker_sessions", "bote_gateway_sessions")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP bote_gateway_sessions Open connector sessions on this replica.
# TYPE bote_gateway_sessions gauge
bote_gateway_sessions 4
# HELP bote_worker_sessions Open connector sessions on this replica (deprecated name of bote_gateway_sessions).
# TYPE bote_worker_sessions gauge
bote_worker_sessions 4
`), "bote_gateway_sessions", "bote_worker_sessions"))
}

// TestNewRegistersOnce: a registry holds one set; a second New on it
// panics rather than exporting two (or a legacy set twice).
func TestNewRegistersOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	New(reg)
	assert.Panics(t, func() { New(reg) })
	assert.NotNil(t, New(nil), "nil: a fresh registry")
}

func labels(m *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}
