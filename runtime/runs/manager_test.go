package runs_test

import (
	"context"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfresult"
)

func TestEnqueueValidation(t *testing.T) {
	ctx := context.Background()
	m, err := runs.New(runs.Config{Store: runstore.NewMemory(), Roster: runs.Unrestricted})
	require.NoError(t, err)
	_, err = m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod"})
	require.NoError(t, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "fabrikam", Name: "prod"})
	assert.ErrorIs(t, err, runs.ErrNotFound, "a workspace needs its tenant")
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod"})
	assert.ErrorIs(t, err, runs.ErrExists)

	bundle := func(blob string) *runs.Artifact {
		return &runs.Artifact{Container: "boteruns", Blob: blob, Size: 1, SHA256: strings.Repeat("0", 64)}
	}
	id := runs.NewRunID(time.Now())
	for _, tc := range []struct {
		name string
		req  runs.EnqueueRequest
		want error
	}{
		{"ok with allocated id", runs.EnqueueRequest{ID: id, Operation: runs.OpApply, Bundle: bundle("contoso/prod/" + id + "/bundle")}, nil},
		{"same id twice", runs.EnqueueRequest{ID: id, Operation: runs.OpApply, Bundle: bundle("contoso/prod/" + id + "/bundle")}, runs.ErrConflict},
		{"bad operation", runs.EnqueueRequest{Operation: "import", Bundle: bundle("contoso/prod/b")}, runs.ErrInvalid},
		{"no bundle", runs.EnqueueRequest{Operation: runs.OpApply}, runs.ErrInvalid},
		{"bad bundle", runs.EnqueueRequest{Operation: runs.OpApply, Bundle: &runs.Artifact{Blob: "contoso/prod/b"}}, runs.ErrInvalid},
		{"bad id", runs.EnqueueRequest{ID: "run-1", Operation: runs.OpApply, Bundle: bundle("contoso/prod/b")}, runs.ErrInvalid},
		{"stale id", runs.EnqueueRequest{ID: oldRunID(time.Now().Add(-time.Hour)), Operation: runs.OpApply, Bundle: bundle("contoso/prod/b")}, runs.ErrInvalid},
		{"long message", runs.EnqueueRequest{Operation: runs.OpApply, Bundle: bundle("contoso/prod/b"), Message: strings.Repeat("m", 2000)}, runs.ErrInvalid},
		{"unknown workspace", runs.EnqueueRequest{Workspace: "dev", Operation: runs.OpApply, Bundle: bundle("contoso/dev/b")}, runs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req
			req.Tenant = "contoso"
			if req.Workspace == "" {
				req.Workspace = "prod"
			}
			q, err := m.Enqueue(ctx, req)
			if tc.want != nil {
				assert.ErrorIs(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, id, q.Run.ID)
			assert.Equal(t, "no agent of tenant contoso is online", q.Waiting)
		})
	}
}

// contoso returns a Manager on store with tenant contoso, workspace prod
// and agent a1 (capacity 1).
func contoso(t *testing.T, cfg runs.Config) *runs.Manager {
	t.Helper()
	ctx := context.Background()
	if cfg.Roster == nil {
		cfg.Roster = runs.Unrestricted
	}
	m, err := runs.New(cfg)
	require.NoError(t, err)
	_, err = m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	_, err = m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod"})
	require.NoError(t, err)
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1})
	require.NoError(t, err)
	return m
}

// enqueue queues an apply in contoso/prod.
func enqueue(t *testing.T, m *runs.Manager) runs.Run {
	t.Helper()
	q, err := m.Enqueue(context.Background(), runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", Operation: runs.OpApply,
		Bundle: &runs.Artifact{Container: "c", Blob: "contoso/prod/b", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)
	return q.Run
}

// oldRunID builds a run id of time at (NewRunID never goes back in time).
func oldRunID(at time.Time) string {
	var b [10]byte
	binary.BigEndian.PutUint64(b[:8], uint64(at.UnixMilli())<<16)
	return "run-" + base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding).EncodeToString(b[:])
}

// lostAck is a store whose next commits land but answer ErrConflict, as
// when a transaction succeeds and its response is lost.
type lostAck struct {
	runs.Store
	lose int
}

func (s *lostAck) Commit(ctx context.Context, c runs.Commit) error {
	err := s.Store.Commit(ctx, c)
	if err == nil && s.lose > 0 {
		s.lose--
		return runs.ErrConflict
	}
	return err
}

func TestLostAnswersAreRecovered(t *testing.T) {
	ctx := context.Background()
	store := &lostAck{Store: runstore.NewMemory()}
	m := contoso(t, runs.Config{Store: store})
	q := enqueue(t, m)

	store.lose = 1
	r, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err, "the claim landed; the agent must get its run")
	assert.Equal(t, q.ID, r.ID)
	assert.Equal(t, runs.Planning, r.State)

	store.lose = 1
	r, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Failed, Reason: "boom"})
	require.NoError(t, err, "the report landed")
	assert.Equal(t, runs.Failed, r.State)
	assert.Len(t, r.History, 3)
}

func TestClaimRepairsALockItsRunDoesNotHold(t *testing.T) {
	ctx := context.Background()
	store := runstore.NewMemory()
	m := contoso(t, runs.Config{Store: store})
	ghost := runs.Lock{Tenant: "contoso", Workspace: "prod", Run: runs.NewRunID(time.Now())}
	require.NoError(t, store.Commit(ctx, runs.Commit{Tenant: "contoso", Workspace: "prod", Lock: &ghost}))
	q := enqueue(t, m)

	r, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	assert.Equal(t, q.ID, r.ID)
	lock, err := store.GetLock(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, r.ID, lock.Run)
}

func TestOnChangeSeesEveryStoredChange(t *testing.T) {
	ctx := context.Background()
	var seen []runs.State
	m := contoso(t, runs.Config{Store: runstore.NewMemory(), OnChange: func(r runs.Run) { seen = append(seen, r.State) }})
	q := enqueue(t, m)
	_, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: q.ID, By: "bob"})
	require.NoError(t, err)
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: q.ID, Agent: "a1", State: runs.Cancelled})
	require.NoError(t, err)
	_, err = m.Approve(ctx, "contoso", q.ID, "bob")
	require.ErrorIs(t, err, runs.ErrIllegalTransition)
	assert.Equal(t, []runs.State{runs.Queued, runs.Planning, runs.Planning, runs.Cancelled}, seen, "a refused change is not reported")
}

func TestSubscribeHearsChangesAfterOnChange(t *testing.T) {
	ctx := context.Background()
	var seen []string
	m := contoso(t, runs.Config{Store: runstore.NewMemory(), OnChange: func(r runs.Run) { seen = append(seen, "config "+string(r.State)) }})
	m.Subscribe(func(r runs.Run) { seen = append(seen, "subscriber "+string(r.State)) })
	q := enqueue(t, m)
	_, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.Approve(ctx, "contoso", q.ID, "bob")
	require.ErrorIs(t, err, runs.ErrIllegalTransition)
	assert.Equal(t, []string{"config queued", "subscriber queued", "config planning", "subscriber planning"}, seen, "in order, a refused change is not reported")
}

func TestFourEyesRefusesSelfApproval(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	_, err := m.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) { w.Options.FourEyes, w.Options.AutoApply = true, true })
	require.ErrorIs(t, err, runs.ErrInvalid, "four-eyes and auto-apply exclude each other")
	_, err = m.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) { w.Options.FourEyes = true })
	require.NoError(t, err)

	q, err := m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", Operation: runs.OpApply, CreatedBy: "oauth2:alice", CreatedByID: "oauth2:oid-alice",
		Bundle: &runs.Artifact{Container: "c", Blob: "contoso/prod/b", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)
	assert.Equal(t, "oauth2:oid-alice", q.Run.CreatedByID)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: q.Run.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true},
		Plan: &runs.Artifact{Container: "c", Blob: "contoso/prod/" + q.Run.ID + "/workdir", Size: 1, SHA256: strings.Repeat("0", 64)}})
	require.NoError(t, err)

	for _, tt := range []struct{ name, by, byID string }{
		{"same principal", "oauth2:alice", "oauth2:oid-alice"},
		{"same principal, renamed", "oauth2:alice.new@contoso.com", "oauth2:oid-alice"},
		{"no stable id", "oauth2:bob", ""},
	} {
		_, err = m.ApproveAs(ctx, "contoso", q.Run.ID, tt.by, tt.byID)
		assert.ErrorIs(t, err, runs.ErrFourEyes, tt.name)
	}
	r, err := m.GetRun(ctx, "contoso", q.Run.ID)
	require.NoError(t, err)
	assert.Equal(t, runs.Planned, r.State, "refused approvals change nothing")

	r, err = m.ApproveAs(ctx, "contoso", q.Run.ID, "oauth2:alice", "oauth2:oid-bob")
	require.NoError(t, err, "a name clash is no identity: bob's stable id differs")
	assert.Equal(t, runs.Approved, r.State)
}

// A plan's JSON is kept with the plan phase's end, and only an artifact of
// the run's own workspace.
func TestPlanJSONIsKeptWithThePlanPhase(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	r := enqueue(t, m)
	_, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	claim := func(blob string) *runs.Artifact {
		return &runs.Artifact{Container: "c", Blob: blob, Size: 1, SHA256: strings.Repeat("0", 64)}
	}
	rep := runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true},
		Plan: claim("contoso/prod/" + r.ID + "/workdir"), PlanJSON: claim("fabrikam/prod/" + r.ID + "/plan.json")}
	_, err = m.Report(ctx, rep)
	require.ErrorIs(t, err, runs.ErrInvalid, "another tenant's blob")
	rep.PlanJSON = claim("contoso/prod/" + r.ID + "/plan.json")
	got, err := m.Report(ctx, rep)
	require.NoError(t, err)
	require.NotNil(t, got.PlanJSON)
	assert.Equal(t, "contoso/prod/"+r.ID+"/plan.json", got.PlanJSON.Blob)
	// No link is kept: a runs.Artifact has no field for one.
}

// A workspace's terraform version constraint picks its agents; when no
// online agent meets it, the run waits and says why.
func TestTerraformVersionConstraint(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	_, err := m.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) { w.TerraformVersion = "not a constraint" })
	require.ErrorIs(t, err, runs.ErrInvalid)
	_, err = m.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) { w.TerraformVersion = ">= 1.12, < 2.0" })
	require.NoError(t, err)
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1, TerraformVersion: "1.11.4"})
	require.NoError(t, err)

	r := enqueue(t, m)
	why, err := m.Waiting(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, `no online agent of tenant contoso has a terraform meeting ">= 1.12, < 2.0", the version workspace prod requires (they run 1.11.4)`, why)
	_, err = m.Dispatch(ctx, "contoso", "prod")
	require.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.ErrorIs(t, err, runs.ErrAgentUnavailable, "an agent that does not meet it cannot claim either")
	_, err = m.ClaimNext(ctx, "contoso", "a1")
	require.ErrorIs(t, err, runs.ErrNothingToClaim)

	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a2", Capacity: 1, TerraformVersion: "1.12.1"})
	require.NoError(t, err)
	got, err := m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, "a2", got.Agent)
}

// A workspace with provider sources runs only on agents that apply them:
// an older agent ignores run.assign's providers and would install from
// its own sources (the origin registries a workspace turned off).
func TestProviderSourcesNeedAnAgentThatAppliesThem(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	_, err := m.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) {
		w.Providers = tfproviders.Sources{NetworkMirror: "https://mirror.example.com/p/", NoDirect: true}
	})
	require.NoError(t, err)
	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "old", Capacity: 1})
	require.NoError(t, err)

	r := enqueue(t, m)
	why, err := m.Waiting(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, "none of the 2 online agent(s) of tenant contoso that could run workspace prod applies its provider sources (they are older; upgrade them, or remove the workspace's provider sources)", why)
	_, err = m.Dispatch(ctx, "contoso", "prod")
	require.ErrorIs(t, err, runs.ErrAgentUnavailable)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "old"})
	require.ErrorIs(t, err, runs.ErrAgentUnavailable)
	assert.ErrorContains(t, err, "agent old is older than workspace prod's provider sources")
	_, err = m.ClaimNext(ctx, "contoso", "old")
	require.ErrorIs(t, err, runs.ErrNothingToClaim)

	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "new", Capacity: 1, ProviderSources: true})
	require.NoError(t, err)
	got, err := m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, "new", got.Agent)
}

// A run claimed while the server works out why it waits is not waiting:
// Enqueue asks right after the commit, when an agent may already have
// taken it (the demo's plan said "all 1 agent(s) that can run it are
// busy", busy with that very run).
func TestWaitingOfARunClaimedMeanwhileIsEmpty(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	_, err := m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1})
	require.NoError(t, err)
	queued := enqueue(t, m)
	_, err = m.Dispatch(ctx, "contoso", "prod")
	require.NoError(t, err)
	why, err := m.Waiting(ctx, queued) // the copy from before the claim
	require.NoError(t, err)
	assert.Empty(t, why)
}
