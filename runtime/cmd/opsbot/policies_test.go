package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/runs"
)

func (f *fakeRuns) Policies(context.Context, string) ([]opsapi.Policy, error) {
	if len(f.policies) == 0 {
		return nil, nil
	}
	return f.policies[len(f.policies)-1:], nil
}

func (f *fakeRuns) Policy(_ context.Context, _, name string, version int) (*opsapi.Policy, error) {
	for _, p := range f.policies {
		if p.Name == name && (version == 0 || p.Version == version) {
			return &p, nil
		}
	}
	return nil, &opsapiError{"not found"}
}

func (f *fakeRuns) PutPolicy(_ context.Context, tenant, name string, req opsapi.PutPolicyRequest) (*opsapi.Policy, error) {
	p := opsapi.Policy{Tenant: tenant, Name: name, Enforcement: req.Enforcement, Workspace: req.Workspace, Source: req.Source,
		Version: len(f.policies) + 1, CreatedAt: time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC), CreatedBy: "api-key:admin"}
	f.policies = append(f.policies, p)
	return &p, nil
}

func (f *fakeRuns) DeletePolicy(_ context.Context, _, name string) (*opsapi.Policy, error) {
	return &opsapi.Policy{Name: name, Version: len(f.policies) + 1, Deleted: true}, nil
}

func (f *fakeRuns) PolicyVersions(context.Context, string, string) ([]opsapi.Policy, error) {
	return f.policies, nil
}

func (f *fakeRuns) ApproveOverridingPolicy(_ context.Context, _, id string) (*opsapi.Run, error) {
	f.overridden = append(f.overridden, id)
	return f.set(runs.Approved, "approved overriding policy", nil), nil
}

type opsapiError struct{ msg string }

func (e *opsapiError) Error() string { return e.msg }

func TestPoliciesCommands(t *testing.T) {
	f := newFakeRuns()
	c := cli{t: t, api: f}
	file := filepath.Join(t.TempDir(), "tags.rego")
	require.NoError(t, os.WriteFile(file, []byte("package tags\ndeny contains \"x\"\n"), 0o644))
	r := c.run("policies", "put", "tags", "--file", file, "--enforcement", "mandatory", "--workspace", "prod")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Policy tags stored as version 1 (mandatory, prod).")
	require.Len(t, f.policies, 1)
	assert.Equal(t, "package tags\ndeny contains \"x\"\n", f.policies[0].Source)

	r = c.run("policies", "list")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `tags\s+1\s+mandatory\s+prod`, r.stdout)
	r = c.run("policies", "show", "tags", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"source": "package tags`)
	r = c.run("policies", "put", "tags", "--file", file)
	assert.Equal(t, exitcode.Usage, r.code, "--enforcement is required")
}

func blockedRun(f *fakeRuns, enforcement string) {
	f.set(runs.Planned, "plan saved", func(r *opsapi.Run) {
		r.PlanResult = planResult
		r.Policy = &opsapi.PolicyCheck{Blocked: true, Results: []opsapi.PolicyResult{
			{Policy: "types", Version: 1, Enforcement: "mandatory", Passed: true},
			{Policy: "tags", Version: 3, Enforcement: enforcement, Messages: []string{"terraform_data.a is missing the tags owner"}},
		}}
	})
}

func TestRunsShowAndApplyWithFailedPolicy(t *testing.T) {
	f := newFakeRuns()
	blockedRun(f, "mandatory-with-override")
	c := cli{t: t, api: f}
	r := c.run("runs", "show", f.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Policy checks:\n  passed types (v1, mandatory)\n  FAILED tags (v3, mandatory-with-override)\n      - terraform_data.a is missing the tags owner\n")
	assert.Contains(t, r.stdout, "an approver may apply anyway with: opsbot apply --override-policy "+f.run.ID)

	r = c.run("runs", "show", f.run.ID, "-o", "json")
	assert.Contains(t, r.stdout, `"policy": {`)
	assert.Contains(t, r.stdout, `"blocked": true`)

	r = c.run("apply", f.run.ID, "--yes")
	assert.NotEqual(t, exitcode.OK, r.code)
	assert.Contains(t, r.stderr, "failed policy tags: it cannot be approved (an approver may override it: opsbot apply ")
	assert.Empty(t, f.approved, "not even asked")

	r = c.run("apply", f.run.ID, "--yes", "--override-policy", "--detach")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, []string{f.run.ID}, f.overridden)

	f = newFakeRuns()
	blockedRun(f, "mandatory")
	c = cli{t: t, api: f}
	r = c.run("apply", f.run.ID, "--yes", "--override-policy")
	assert.NotEqual(t, exitcode.OK, r.code)
	assert.Contains(t, r.stderr, "failed policy tags: it cannot be approved")
	assert.Contains(t, r.stderr, "A mandatory policy failed")
	assert.Empty(t, f.overridden, "a mandatory policy is never overridden")
}

// TestPolicyChangedSinceThePlan: a planned run whose policies changed
// since its check says so in runs show and is not approved (the server
// would refuse it anyway), override or not.
func TestPolicyChangedSinceThePlan(t *testing.T) {
	f := newFakeRuns()
	blockedRun(f, "mandatory-with-override")
	f.run.PolicyChanged = "the policies changed since run " + f.run.ID + "'s plan was checked (no-destroy v1 is new); plan again to check it on them"
	c := cli{t: t, api: f}
	r := c.run("runs", "show", f.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "\n  The policies changed since run "+f.run.ID+"'s plan was checked (no-destroy v1 is new); plan again to check it on them.\n")
	assert.NotContains(t, r.stdout, "may apply anyway")

	r = c.run("apply", f.run.ID, "--yes", "--override-policy", "--detach")
	assert.NotEqual(t, exitcode.OK, r.code)
	assert.Contains(t, r.stderr, "cannot be approved: the policies changed since run")
	assert.Empty(t, f.overridden)
	assert.Empty(t, f.approved)

	f.run.Policy = nil // no policy applied when it was planned
	r = c.run("runs", "show", f.run.ID)
	assert.Contains(t, r.stdout, "Policy checks:\n  The policies changed since run")
}
