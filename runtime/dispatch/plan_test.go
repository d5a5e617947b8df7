package dispatch

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfresult"
)

// memPlans keeps plans in memory; fail makes Put fail.
type memPlans struct {
	mu    sync.Mutex
	blobs map[string]string
	fail  error
}

func (m *memPlans) Put(_ context.Context, key artifacts.RunKey, kind artifacts.Kind, r io.Reader, max int64) (*runs.Artifact, error) {
	if m.fail != nil {
		return nil, m.fail
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	name := string(key.Tenant) + "/" + string(key.Workspace) + "/" + key.Run + "/" + string(kind) + "-1.json"
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[name] = string(data)
	return &runs.Artifact{Container: "boteruns", Blob: name, Size: int64(len(data)), SHA256: hash(data)}, nil
}

const planJSON = `{"format_version":"1.2","resource_changes":[]}`

func TestPlanJSONIsKeptWithThePlan(t *testing.T) {
	for _, changes := range []bool{true, false} {
		e := newEnv(t)
		plans := &memPlans{blobs: map[string]string{}}
		e.d.cfg.Plans = plans
		e.heartbeat("tenant-a", "a1")
		r := e.enqueue(runs.OpApply)
		_, a := e.assigned()
		res := &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
			Result: &tfresult.Result{HasChanges: changes}, Plan: []byte(planJSON), LastSeq: -1}
		if changes {
			res.WorkdirUploaded, res.WorkdirSHA256, res.WorkdirSize = true, strings.Repeat("c", 64), 9
		}
		require.NoError(t, e.from("tenant-a", "a1", res))
		got := e.run(r.ID)
		require.NotNil(t, got.PlanJSON, "changes %v", changes)
		assert.Equal(t, planJSON, plans.blobs[got.PlanJSON.Blob])
		// No link is kept: a runs.Artifact has no field for one.
	}
}

func TestPlanJSONThatCannotBeKeptDoesNotFailTheRun(t *testing.T) {
	e := newEnv(t)
	e.d.cfg.Plans = &memPlans{fail: errors.New("storage down")}
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	require.NoError(t, e.from("tenant-a", "a1", &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, Plan: []byte(planJSON), WorkdirUploaded: true, WorkdirSHA256: strings.Repeat("c", 64), WorkdirSize: 9, LastSeq: -1}))
	got := e.run(r.ID)
	assert.Equal(t, runs.Planned, got.State)
	assert.Nil(t, got.PlanJSON)
}

// A plan's assignment carries the run's plan options, the workspace's
// plain variables (sensitive ones go sealed in Secrets) and its provider
// sources; an apply's none.
func TestAssignmentCarriesPlanOptionsAndPlainVars(t *testing.T) {
	e := newEnv(t)
	sources := tfproviders.Sources{NetworkMirror: "https://mirror.example.com/", NoDirect: true}
	_, err := e.m.UpdateWorkspace(context.Background(), "tenant-a", "prod", func(w *runs.Workspace) {
		w.Vars = map[string]string{"region": "westeurope"}
		w.Providers = sources
	})
	require.NoError(t, err)
	e.heartbeat("tenant-a", "a1")
	id := runs.NewRunID(e.clock())
	_, err = e.m.Enqueue(context.Background(), runs.EnqueueRequest{Tenant: "tenant-a", Workspace: "prod", ID: id, Operation: runs.OpApply,
		PlanOptions: runspec.PlanOptions{Targets: []string{"terraform_data.a"}},
		Bundle:      &runs.Artifact{Container: "boteruns", Blob: "tenant-a/prod/" + id + "/bundle-1.tar.gz", Size: 3, SHA256: hash([]byte("abc"))}})
	require.NoError(t, err)
	_, a := e.assigned()
	assert.Equal(t, []string{"terraform_data.a"}, a.Plan.Targets)
	assert.Equal(t, map[string]string{"region": "westeurope"}, a.Vars)
	assert.Equal(t, sources, a.Providers)
}

// fakePolicies answers every check with check, or fails with err.
type fakePolicies struct {
	check *runs.PolicyCheck
	err   error
	plans []string
}

func (f *fakePolicies) Check(_ context.Context, r runs.Run, plan []byte) (*runs.PolicyCheck, error) {
	f.plans = append(f.plans, string(plan))
	return f.check, f.err
}

// A plan is checked against the policies before it is recorded; a check
// that cannot be made leaves the result for the bus to deliver again.
func TestPlanIsCheckedAgainstPolicies(t *testing.T) {
	e := newEnv(t)
	pol := &fakePolicies{err: errors.New("table down")}
	e.d.cfg.Policies = pol
	e.heartbeat("tenant-a", "a1")
	r := e.enqueue(runs.OpApply)
	_, a := e.assigned()
	res := &runproto.Result{RunID: r.ID, ClaimToken: a.ClaimToken, Phase: runproto.PhasePlan, Outcome: runproto.Succeeded,
		Result: &tfresult.Result{HasChanges: true}, Plan: []byte(planJSON), WorkdirUploaded: true, WorkdirSHA256: strings.Repeat("c", 64), WorkdirSize: 9, LastSeq: -1}
	require.ErrorContains(t, e.from("tenant-a", "a1", res), "table down")
	assert.Equal(t, runs.Planning, e.run(r.ID).State, "not recorded without its check")

	pol.err = nil
	pol.check = &runs.PolicyCheck{Results: []runs.PolicyResult{{Policy: "tags", Version: 2, Enforcement: runs.Mandatory, Messages: []string{"untagged"}}}}
	require.NoError(t, e.from("tenant-a", "a1", res))
	got := e.run(r.ID)
	assert.Equal(t, runs.Planned, got.State)
	require.NotNil(t, got.Policy)
	assert.Equal(t, "tags", got.Policy.Results[0].Policy)
	assert.Equal(t, []string{planJSON, planJSON}, pol.plans)
	_, err := e.m.Approve(context.Background(), "tenant-a", r.ID, "bob")
	require.ErrorIs(t, err, runs.ErrPolicyFailed)
}
