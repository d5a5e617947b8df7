package runs

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
)

// counting counts the HTTP requests a table client sends.
type counting struct {
	n    atomic.Int64
	next *http.Client
}

func (c *counting) Do(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.Do(r)
}

// driftEnv is n workspaces of tenant contoso, each applied once, with a
// drift table on Azurite whose requests are counted and a fake clock.
type driftEnv struct {
	m     *runs.Manager
	table *drift.Table
	reqs  *counting
	mu    sync.Mutex
	now   time.Time
}

func (e *driftEnv) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *driftEnv) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func newDriftEnv(t testing.TB, workspaces int) *driftEnv {
	ctx := context.Background()
	emu := azurite.New(t)
	e := &driftEnv{now: time.Now().UTC(), reqs: &counting{next: http.DefaultClient}}
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, &aztables.ClientOptions{ClientOptions: policy.ClientOptions{Transport: e.reqs}})
	require.NoError(t, err)
	e.table, err = drift.OpenTable(ctx, svc, "", true)
	require.NoError(t, err)
	e.m, err = runs.New(runs.Config{Store: runstore.NewMemory(), Roster: runs.Unrestricted, Now: e.clock, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = e.m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	_, err = e.m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 64})
	require.NoError(t, err)
	for i := range workspaces {
		ws := wsName(i)
		_, err = e.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: ws, Options: runs.Options{AutoApply: true}})
		require.NoError(t, err)
		id := runs.NewRunID(e.clock())
		claim := func(name string) *runs.Artifact {
			return &runs.Artifact{Container: "c", Blob: "contoso/" + string(ws) + "/" + id + "/" + name, Size: 1, SHA256: strings.Repeat("0", 64)}
		}
		_, err = e.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: ws, ID: id, Operation: runs.OpApply, Bundle: claim("bundle")})
		require.NoError(t, err)
		for _, st := range []runs.State{runs.Planned, runs.Applied} {
			_, err = e.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: ws, Agent: "a1"})
			require.NoError(t, err)
			_, err = e.m.Report(ctx, runs.Report{Tenant: "contoso", Run: id, Agent: "a1", State: st, Plan: claim("workdir")})
			require.NoError(t, err)
		}
	}
	return e
}

func (e *driftEnv) scheduler(t testing.TB) *drift.Scheduler {
	s, err := drift.New(drift.Config{Store: e.table, Runs: e.m, Now: e.clock, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return s
}

// TestDriftTableFiresOnceAcrossReplicas: schedules on Azurite, three
// schedulers (replicas) firing at the same instant: each due workspace
// gets one check.
func TestDriftTableFiresOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newDriftEnv(t, 5)
	replicas := []*drift.Scheduler{e.scheduler(t), e.scheduler(t), e.scheduler(t)}
	for i := range 5 {
		_, err := replicas[0].SetSchedule(ctx, "contoso", wsName(i), drift.Schedule{Cron: "@hourly"})
		require.NoError(t, err)
	}
	e.advance(time.Hour)
	var wg sync.WaitGroup
	var fired atomic.Int64
	for _, s := range replicas {
		wg.Go(func() {
			n, err := s.FireDue(ctx)
			assert.NoError(t, err)
			fired.Add(int64(n))
		})
	}
	wg.Wait()
	assert.Equal(t, int64(5), fired.Load())
	for i := range 5 {
		q, err := e.m.ListRuns(ctx, "contoso", wsName(i), runs.Queued)
		require.NoError(t, err)
		require.Len(t, q, 1, "one check per workspace")
		assert.True(t, q[0].DriftCheck)
	}
	sts, err := replicas[1].List(ctx, "contoso")
	require.NoError(t, err)
	require.Len(t, sts, 5)
	for _, st := range sts {
		assert.True(t, st.Next.After(e.clock()), "the next firing is in the future")
		assert.NotEmpty(t, st.LastRun)
	}
}

// BenchmarkDriftSchedulerIdleCost: 100 workspaces with a daily schedule,
// none due within the hour measured; one scheduler ticking every 30 s
// (the default) for an hour of its fake clock. Reports the drift table's
// storage requests per hour (per replica), and those of an hour in which
// every schedule fires once (the busy case).
func BenchmarkDriftSchedulerIdleCost(b *testing.B) {
	ctx := context.Background()
	e := newDriftEnv(b, 100)
	s := e.scheduler(b)
	for i := range 100 {
		_, err := s.SetSchedule(ctx, "contoso", wsName(i), drift.Schedule{Every: 24 * time.Hour})
		require.NoError(b, err)
	}
	hour := func() int64 {
		start := e.reqs.n.Load()
		for range 120 {
			e.advance(30 * time.Second)
			_, err := s.FireDue(ctx)
			require.NoError(b, err)
		}
		return e.reqs.n.Load() - start
	}
	var idle, firing int64
	for b.Loop() {
		idle = hour()
	}
	e.advance(23 * time.Hour) // every schedule falls due within the next hour
	firing = hour()
	b.ReportMetric(float64(idle), "idle-requests/hour")
	b.ReportMetric(float64(firing), "requests/hour-when-100-fire")
	b.Logf("100 scheduled workspaces, tick 30s: %d drift-table requests in an idle hour, %d in an hour where each fires once", idle, firing)
}

// wsName is the i-th workspace of a drift env.
func wsName(i int) ids.WorkspaceID { return ids.WorkspaceID(fmt.Sprintf("ws-%03d", i)) }
