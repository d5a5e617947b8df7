package drift_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// keptPlan is testdata/refresh-only/plan.json (terraform plan
// -refresh-only after a file the configuration manages was changed by
// hand; regen.sh) as the server keeps it.
func keptPlan(t *testing.T) []byte {
	raw, err := os.ReadFile("testdata/refresh-only/plan.json")
	require.NoError(t, err)
	var p tfjson.Plan
	require.NoError(t, json.Unmarshal(raw, &p))
	out, err := json.Marshal(planrender.Keep(&p))
	require.NoError(t, err)
	return out
}

func TestResourcesOfARealRefreshOnlyPlan(t *testing.T) {
	got, err := drift.Resources(keptPlan(t))
	require.NoError(t, err)
	assert.Equal(t, []drift.Resource{{Address: "botetest_file.motd", Type: "botetest_file", Actions: []string{"update"},
		Attributes: []drift.AttrDiff{{Name: "content", Before: json.RawMessage(`"hello"`), After: json.RawMessage(`"changed by hand"`)}},
		Diff: "  # botetest_file.motd has changed\n" +
			`  ~ resource "botetest_file" "motd" {` + "\n" +
			`      ~ content = "hello" -> "changed by hand"` + "\n" +
			`        id      = "motd.txt"` + "\n" +
			"        # (1 unchanged attribute hidden)\n" +
			"    }\n"}}, got)
	_, err = drift.Resources([]byte("not json"))
	assert.Error(t, err)
}

func TestScheduleValidateAndNext(t *testing.T) {
	at := time.Date(2026, 12, 6, 10, 30, 0, 0, time.UTC)
	for _, tc := range []struct {
		s    drift.Schedule
		next time.Time
		err  string
	}{
		{s: drift.Schedule{Cron: "0 3 * * *"}, next: time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)},
		{s: drift.Schedule{Cron: "@hourly"}, next: time.Date(2026, 12, 6, 11, 0, 0, 0, time.UTC)},
		{s: drift.Schedule{Every: 6 * time.Hour}, next: at.Add(6 * time.Hour)},
		{s: drift.Schedule{Every: 30 * time.Second}, err: "shorter than 1m"},
		{s: drift.Schedule{Cron: "61 * * * *"}, err: "cron"},
		{s: drift.Schedule{Cron: "@daily", Every: time.Hour}, err: "not both"},
		{s: drift.Schedule{Cron: "0 0 30 2 *"}, err: `drift schedule: cron "0 0 30 2 *" never fires`},
		{s: drift.Schedule{Cron: "0 0 29 2 *"}, next: time.Date(2028, 2, 29, 0, 0, 0, 0, time.UTC)},
		// robfig/cron's @every descriptor must not get round the shortest interval
		{s: drift.Schedule{Cron: "@every 1s"}, err: `drift schedule: cron "@every 1s" fires 1s apart, more often than every 1m0s`},
		{s: drift.Schedule{Cron: "@every 2h"}, next: at.Add(2 * time.Hour)},
	} {
		err := tc.s.Validate()
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, tc.s.String())
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.next, tc.s.Next(at), tc.s.String())
	}
}

// env is a run manager with workspace contoso/prod, one applied run (the
// configuration drift checks use), a drift store and a fake clock.
type env struct {
	m     *runs.Manager
	store *drift.Memory
	now   time.Time
	mu    sync.Mutex
	sent  []notify.Event
}

func (e *env) clock() time.Time { e.mu.Lock(); defer e.mu.Unlock(); return e.now }
func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

func (e *env) Notify(_ context.Context, ev notify.Event) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sent = append(e.sent, ev)
	return nil
}

func claim(id, name string) *runs.Artifact {
	return &runs.Artifact{Container: "c", Blob: "contoso/prod/" + id + "/" + name, Size: 1, SHA256: strings.Repeat("0", 64)}
}

func newEnv(t *testing.T) *env {
	ctx := context.Background()
	e := &env{store: drift.NewMemory(), now: time.Now().UTC()}
	m, err := runs.New(runs.Config{Store: runstore.NewMemory(), Roster: runs.Unrestricted, Now: e.clock, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	e.m = m
	_, err = m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod", Options: runs.Options{AutoApply: true}})
	require.NoError(t, err)
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1})
	require.NoError(t, err)
	id := runs.NewRunID(e.clock())
	_, err = m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", ID: id, Operation: runs.OpApply, Bundle: claim(id, "bundle.tar.gz")})
	require.NoError(t, err)
	e.plan(t, id, true)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: id, Agent: "a1", State: runs.Applied})
	require.NoError(t, err)
	return e
}

// plan claims the workspace's next run and reports its plan.
func (e *env) plan(t *testing.T, id string, changes bool) runs.Run {
	ctx := context.Background()
	_, err := e.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	rep := runs.Report{Tenant: "contoso", Run: id, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: changes}}
	if changes {
		rep.Plan = claim(id, "workdir.tar.gz")
	}
	r, err := e.m.Report(ctx, rep)
	require.NoError(t, err)
	return r
}

func (e *env) scheduler(t *testing.T) *drift.Scheduler {
	s, err := drift.New(drift.Config{Store: e.store, Runs: e.m, Notifier: e, Now: e.clock, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	return s
}

func (e *env) queued(t *testing.T) []runs.Run {
	rs, err := e.m.ListRuns(context.Background(), "contoso", "prod", runs.Queued)
	require.NoError(t, err)
	return rs
}

// TestScheduleFiresOnceAcrossReplicas: three schedulers (replicas) on one
// store; when the schedule is due, exactly one queues a refresh-only drift
// check, of the latest applied run's configuration.
func TestScheduleFiresOnceAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	replicas := []*drift.Scheduler{e.scheduler(t), e.scheduler(t), e.scheduler(t)}
	st, err := replicas[0].SetSchedule(ctx, "contoso", "prod", drift.Schedule{Every: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, e.clock().Add(time.Hour), st.Next)

	n, err := replicas[1].FireDue(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "not due yet")
	e.advance(time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	fired := 0
	for _, s := range replicas {
		wg.Go(func() {
			n, err := s.FireDue(ctx)
			assert.NoError(t, err)
			mu.Lock()
			fired += n
			mu.Unlock()
		})
	}
	wg.Wait()
	assert.Equal(t, 1, fired)
	q := e.queued(t)
	require.Len(t, q, 1)
	assert.True(t, q[0].DriftCheck)
	assert.True(t, q[0].PlanOptions.RefreshOnly)
	assert.Equal(t, drift.By, q[0].CreatedBy)
	st, err = replicas[0].Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, q[0].ID, st.LastRun)
	assert.Equal(t, e.clock().Add(time.Hour), st.Next)

	// Busy (the check is queued): the next firing waits BusyRetry.
	e.advance(time.Hour)
	n, err = replicas[2].FireDue(ctx)
	require.NoError(t, err)
	assert.Zero(t, n)
	st, err = replicas[0].Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Contains(t, st.LastError, "queued run(s)")
	assert.Equal(t, e.clock().Add(5*time.Minute), st.Next)
}

// TestCheckRecordsDriftNeverAppliesAndAnApplyClearsIt: a drift check's
// plan with the real plan's drift marks the workspace drifted with the
// drifted attributes, notifies, and is cancelled, not auto-applied; an
// apply clears the status; a clean check records clean.
func TestCheckRecordsDriftNeverAppliesAndAnApplyClearsIt(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.scheduler(t)
	st, err := s.CheckNow(ctx, "contoso", "prod")
	require.NoError(t, err)
	r := e.plan(t, st.LastRun, true)
	assert.Equal(t, runs.Planned, r.State, "a drift check is not auto-applied")
	require.NoError(t, s.PlanEnded(ctx, r, keptPlan(t)))
	require.NoError(t, s.PlanEnded(ctx, r, keptPlan(t)), "a result delivered twice")
	st, err = s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, drift.Drifted, st.Status)
	require.Len(t, st.Resources, 1)
	assert.Equal(t, "botetest_file.motd", st.Resources[0].Address)
	r, err = e.m.GetRun(ctx, "contoso", r.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Cancelled, r.State)
	assert.Contains(t, r.LastReason(), "a drift check is never applied")
	require.Len(t, e.sent, 2)
	assert.Equal(t, notify.DriftDetected, e.sent[0].Type)
	assert.Equal(t, e.sent[0].ID, e.sent[1].ID, "the same event: delivered once")
	assert.Equal(t, []notify.DriftInfo{{Address: "botetest_file.motd", Actions: []string{"update"}, Attributes: []string{"content"}}}, e.sent[0].Drift)

	// An apply of another run clears it.
	applied := runs.Run{ID: "run-x", Tenant: "contoso", Workspace: "prod"}
	s.RunTransition(ctx, applied, runs.Transition{From: runs.Applying, To: runs.Applied, At: e.clock()})
	st, err = s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, drift.Unknown, st.Status)
	assert.Contains(t, st.Cleared, "apply of run run-x")

	// A clean check.
	st, err = s.CheckNow(ctx, "contoso", "prod")
	require.NoError(t, err)
	r = e.plan(t, st.LastRun, false)
	assert.Equal(t, runs.NoChanges, r.State)
	require.NoError(t, s.PlanEnded(ctx, r, nil))
	st, err = s.Get(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, drift.Clean, st.Status)
	assert.Empty(t, st.Resources)
}

func TestCheckNowRefusesBusyAndUnappliedWorkspaces(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.scheduler(t)
	_, err := s.CheckNow(ctx, "contoso", "prod")
	require.NoError(t, err)
	_, err = s.CheckNow(ctx, "contoso", "prod")
	assert.ErrorIs(t, err, runs.ErrConflict, "a check is queued")
	_, err = e.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "fresh"})
	require.NoError(t, err)
	_, err = s.CheckNow(ctx, "contoso", "fresh")
	assert.ErrorIs(t, err, runs.ErrInvalid)
	assert.ErrorContains(t, err, "no applied run")
	_, err = s.CheckNow(ctx, "contoso", "nope")
	assert.ErrorIs(t, err, runs.ErrNotFound)
}
