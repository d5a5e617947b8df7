package opsserver

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLegacyMetricNamesCarryTheSameValues: every series is exported as
// bote_opsserver_* and, for one more release, under its name from before
// the rename, bote_relayserver_*, read from the same value at each scrape
// and of the same type.
func TestLegacyMetricNamesCarryTheSameValues(t *testing.T) {
	reg := prometheus.NewRegistry()
	var refused, online float64
	registerFunc(reg, prometheus.CounterValue, "agent_messages_refused_total", "Messages refused.", func() float64 { return refused })
	registerFunc(reg, prometheus.GaugeValue, "relay_online", "1 while connected.", func() float64 { return online })

	scrape := func() map[string]*dto.MetricFamily {
		families, err := reg.Gather()
		require.NoError(t, err)
		byName := map[string]*dto.MetricFamily{}
		for _, f := range families {
			byName[f.GetName()] = f
		}
		return byName
	}
	value := func(f *dto.MetricFamily) float64 {
		m := f.GetMetric()[0]
		if f.GetType() == dto.MetricType_COUNTER {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	for _, v := range []float64{0, 7} {
		refused, online = v, v/7
		got := scrape()
		require.Len(t, got, 4)
		for _, name := range []string{"agent_messages_refused_total", "relay_online"} {
			cur, old := got["bote_opsserver_"+name], got["bote_relayserver_"+name]
			require.NotNil(t, cur, name)
			require.NotNil(t, old, name)
			assert.Equal(t, cur.GetType(), old.GetType(), name)
			assert.Equal(t, value(cur), value(old), name)
			assert.Contains(t, old.GetHelp(), "deprecated name of bote_opsserver_"+name, name)
		}
		assert.Equal(t, v, value(got["bote_opsserver_agent_messages_refused_total"]))
		assert.Equal(t, dto.MetricType_COUNTER, got["bote_opsserver_agent_messages_refused_total"].GetType())
		assert.Equal(t, dto.MetricType_GAUGE, got["bote_opsserver_relay_online"].GetType())
	}
}
