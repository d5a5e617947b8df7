package runs_test

import (
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfresult"
)

// plannedWith plans a run of contoso/prod whose policy check is c.
func plannedWith(t *testing.T, m *runs.Manager, c *runs.PolicyCheck) runs.Run {
	t.Helper()
	ctx := context.Background()
	r := enqueue(t, m)
	_, err := m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	got, err := m.Report(ctx, runs.Report{Tenant: "contoso", Run: r.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true},
		Plan: &runs.Artifact{Container: "c", Blob: "contoso/prod/" + r.ID + "/workdir", Size: 1, SHA256: strings.Repeat("0", 64)}, Policy: c})
	require.NoError(t, err)
	return got
}

func check(results ...runs.PolicyResult) *runs.PolicyCheck {
	return &runs.PolicyCheck{Results: results}
}

func TestPolicyFailuresGateApproval(t *testing.T) {
	ctx := context.Background()
	pass := runs.PolicyResult{Policy: "types", Version: 1, Enforcement: runs.Mandatory, Passed: true}
	advisory := runs.PolicyResult{Policy: "cost", Version: 2, Enforcement: runs.Advisory, Messages: []string{"expensive"}}
	soft := runs.PolicyResult{Policy: "tags", Version: 3, Enforcement: runs.MandatoryOverride, Messages: []string{"a is missing the tags owner"}}
	hard := runs.PolicyResult{Policy: "no-destroy", Version: 1, Enforcement: runs.Mandatory, Messages: []string{"a would be destroyed"}}
	for _, tc := range []struct {
		name     string
		check    *runs.PolicyCheck
		override bool
		want     string // "" approves
		reason   string
	}{
		{name: "no policies", reason: "approved by bob"},
		{name: "passed and advisory failure", check: check(pass, advisory), reason: "approved by bob"},
		{name: "overridable failure", check: check(pass, soft), want: "failed policy tags (a is missing the tags owner); an approver may approve it anyway with an override"},
		{name: "overridden", check: check(pass, soft), override: true, reason: "approved by bob, overriding failed policy tags (a is missing the tags owner)"},
		{name: "mandatory failure", check: check(soft, hard), want: "failed mandatory policy no-destroy (a would be destroyed)"},
		{name: "mandatory failure is never overridden", check: check(soft, hard), override: true, want: "failed mandatory policy no-destroy"},
		{name: "evaluation error", check: check(runs.PolicyResult{Policy: "buggy", Enforcement: runs.Mandatory, Error: "eval_type_error"}), want: "buggy (eval_type_error)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := contoso(t, runs.Config{Store: runstore.NewMemory()})
			r := plannedWith(t, m, tc.check)
			got, err := m.ApproveRun(ctx, runs.ApproveRequest{Tenant: "contoso", Run: r.ID, By: "bob", ByID: "bob", OverridePolicy: tc.override})
			if tc.want != "" {
				require.ErrorIs(t, err, runs.ErrPolicyFailed)
				assert.Contains(t, err.Error(), tc.want)
				r, err = m.GetRun(ctx, "contoso", r.ID)
				require.NoError(t, err)
				assert.Equal(t, runs.Planned, r.State, "a refused approval changes nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, runs.Approved, got.State)
			assert.Equal(t, tc.reason, got.LastReason())
			if tc.override {
				assert.Equal(t, "bob", got.Policy.OverriddenBy)
			}
		})
	}
}

func TestPolicyFailureHoldsAutoApply(t *testing.T) {
	ctx := context.Background()
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	_, err := m.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) { w.Options.AutoApply = true })
	require.NoError(t, err)
	r := plannedWith(t, m, check(runs.PolicyResult{Policy: "tags", Enforcement: runs.MandatoryOverride, Messages: []string{"untagged"}}))
	assert.Equal(t, runs.Planned, r.State, "not approved automatically")
	assert.Contains(t, r.LastReason(), "not applied automatically: policy tags (untagged) failed")
	require.Len(t, r.Policy.Results, 1)

	r = plannedWith(t, contoso(t, runs.Config{Store: runstore.NewMemory()}), check(runs.PolicyResult{Policy: "cost", Enforcement: runs.Advisory, Messages: []string{"x"}}))
	assert.Equal(t, runs.Planned, r.State, "without auto-apply")

	m2 := contoso(t, runs.Config{Store: runstore.NewMemory()})
	_, err = m2.UpdateWorkspace(ctx, "contoso", "prod", func(w *runs.Workspace) { w.Options.AutoApply = true })
	require.NoError(t, err)
	r = plannedWith(t, m2, check(runs.PolicyResult{Policy: "cost", Enforcement: runs.Advisory, Messages: []string{"x"}}))
	assert.Equal(t, runs.Approved, r.State, "an advisory failure does not hold auto-apply")
}

func TestPolicyCheckIsBounded(t *testing.T) {
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	msgs := make([]string, 100)
	for i := range msgs {
		msgs[i] = strings.Repeat("m", 5000)
	}
	r := plannedWith(t, m, check(runs.PolicyResult{Policy: "noisy", Enforcement: runs.Advisory, Messages: msgs}))
	got := r.Policy.Results[0].Messages
	require.Len(t, got, 21)
	assert.Equal(t, "(80 more)", got[20])
	assert.Less(t, len(got[0]), 1100)
}

// TestLargestPolicyCheckIsStored: 50 failed policies with 20 long
// messages and warnings each are far over what a run record holds; the
// check is cut to fit, keeping every policy's verdict and first message.
func TestLargestPolicyCheckIsStored(t *testing.T) {
	m := contoso(t, runs.Config{Store: runstore.NewMemory()})
	long := make([]string, 40)
	for i := range long {
		long[i] = strings.Repeat("ü", 1000)
	}
	var results []runs.PolicyResult
	for i := range 60 {
		results = append(results, runs.PolicyResult{Policy: "p" + strings.Repeat("x", i), Enforcement: runs.Mandatory, Messages: long, Warnings: long, Error: strings.Repeat("e", 5000)})
	}
	r := plannedWith(t, m, check(results...))
	require.Len(t, r.Policy.Results, 50)
	for _, p := range r.Policy.Results {
		require.NotEmpty(t, p.Messages)
		assert.False(t, p.Passed)
		assert.True(t, utf8.ValidString(p.Messages[0]), "cut on a character boundary")
	}
	assert.True(t, r.Policy.Blocks())
}
