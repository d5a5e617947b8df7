package runs

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// BenchmarkEnqueueToClaim measures the server-side share of pickup latency
// on Azurite: from Enqueue to the run being claimed (lock taken, run
// planning) by a waiting agent, each iteration a full plan → apply cycle
// so the workspace is free again. Baseline for comparison: a Terraform
// Enterprise agent polls every 30 s (docs/runs.md, reference/agents.md).
//
//	cd integration && go test ./runs/ -run '^$' -bench EnqueueToClaim -benchtime 100x
func BenchmarkEnqueueToClaim(b *testing.B) {
	emu := azurite.New(b)
	ctx := context.Background()
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(b, err)
	store, err := runstore.Open(ctx, svc, runstore.Options{TablePrefix: "bench", CreateTables: true})
	require.NoError(b, err)
	m, err := runs.New(runs.Config{Store: store, Roster: runs.Unrestricted, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(b, err)
	_, err = m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(b, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod", Options: runs.Options{AutoApply: true}})
	require.NoError(b, err)
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1})
	require.NoError(b, err)
	bundle := &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/bundle", Size: 1, SHA256: strings.Repeat("0", 64)}
	plan := &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/workdir", Size: 1, SHA256: strings.Repeat("0", 64)}

	var pickup, claim []time.Duration
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		q, err := m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", Operation: runs.OpApply, Bundle: bundle})
		require.NoError(b, err)
		c0 := time.Now()
		r, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
		require.NoError(b, err)
		claim = append(claim, time.Since(c0))
		pickup = append(pickup, time.Since(start))
		require.Equal(b, q.Run.ID, r.ID)

		b.StopTimer()
		_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true}, Plan: plan})
		require.NoError(b, err)
		_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
		require.NoError(b, err)
		_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Applied})
		require.NoError(b, err)
		b.StartTimer()
	}
	b.StopTimer()
	for _, f := range []struct {
		name string
		d    []time.Duration
	}{{"enqueue-to-claim", pickup}, {"claim", claim}} {
		p50, p99 := percentile(f.d, 50), percentile(f.d, 99)
		b.ReportMetric(float64(p50.Microseconds())/1000, f.name+"-p50-ms")
		b.ReportMetric(float64(p99.Microseconds())/1000, f.name+"-p99-ms")
		b.Logf("%s on Azurite: p50 %s, p99 %s over %d runs (baseline: TFE agent poll interval 30s)", f.name, p50, p99, len(f.d))
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	return s[min(len(s)-1, len(s)*p/100)]
}
