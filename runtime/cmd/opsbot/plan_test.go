package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/runs"
)

func (f *fakeRuns) Plan(_ context.Context, _, id string) (*tfjson.Plan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.plan == nil || id != f.run.ID {
		return nil, &opsclient.APIError{StatusCode: 404, Code: "not_found", Message: "run " + id + " has no plan to show"}
	}
	return f.plan, nil
}

// replacePlan is a plan of a real Terraform run (planrender's testdata) as
// the agent keeps it: four replacements and an update.
func replacePlan(t *testing.T) (*tfjson.Plan, *opsapi.RunResult) {
	t.Helper()
	data, err := os.ReadFile("../../planrender/testdata/replace/plan.json")
	require.NoError(t, err)
	var p tfjson.Plan
	p.UseJSONNumber(true)
	require.NoError(t, json.Unmarshal(data, &p))
	kept := planrender.Keep(&p)
	sum := planrender.Summarize(kept)
	return kept, &opsapi.RunResult{HasChanges: true, Changes: &opsapi.Changes{Add: sum.Add, Change: sum.Change, Destroy: sum.Destroy}, Plan: &sum}
}

func withPlan(t *testing.T, api *fakeRuns) *opsapi.RunResult {
	p, res := replacePlan(t)
	api.plan = p
	api.run.PlanChanges = true
	return res
}

func TestPlanShowsTheChangesAsTerraformDoes(t *testing.T) {
	api := newFakeRuns()
	res := withPlan(t, api)
	api.follow = func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
		_ = fn(runFrame(f.set(runs.Planning, "claimed by agent agent-01", nil)))
		_ = f.emit(fn, "terraform_data.asked: Plan to replace")
		return fn(runFrame(f.set(runs.Planned, "plan saved", func(r *opsapi.Run) { r.PlanResult = res })))
	}
	r := cli{t: t, api: api}.run("plan", "--workspace", "app", "--dir", configDir(t))
	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	for _, want := range []string{
		"  # terraform_data.asked will be replaced, as requested\n-/+ resource \"terraform_data\" \"asked\" {\n",
		"  # terraform_data.source will be updated in-place\n",
		"      ~ id     = \"", "-> (known after apply)",
		"Plan: 4 to add, 1 to change, 4 to destroy.\n",
	} {
		assert.Contains(t, r.stdout, want)
	}
	assert.Less(t, strings.Index(r.stdout, "Plan to replace"), strings.Index(r.stdout, "Terraform will perform"), "the log, then the plan")
	assert.Less(t, strings.Index(r.stdout, "Terraform will perform"), strings.Index(r.stdout, "Apply it with: opsbot apply"), "the plan, then how to apply it")

	// -o json: the run with the plan's structured changes.
	api = newFakeRuns()
	withPlan(t, api)
	api.follow = func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
		return fn(runFrame(f.set(runs.Planned, "plan saved", func(r *opsapi.Run) { r.PlanResult = res })))
	}
	r = cli{t: t, api: api}.run("plan", "--workspace", "app", "--dir", configDir(t), "-o", "json")
	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	var out struct {
		opsapi.Run
		Plan tfjson.Plan `json:"plan"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out), r.stdout)
	assert.Equal(t, "planned", out.State)
	assert.Len(t, out.Plan.ResourceChanges, 5)
	assert.Equal(t, 4, out.PlanResult.Plan.Replace)
}

func TestApplyShowsThePlanAndWhatItDestroysBeforeAsking(t *testing.T) {
	api := newFakeRuns()
	api.run.State, api.run.PlanResult = "planned", withPlan(t, api)
	r := cli{t: t, api: api, tty: true, stdin: "no\n"}.run("apply", api.run.ID)
	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	assert.Contains(t, r.stdout, "-/+ resource \"terraform_data\" \"trigger\" {")
	warn := strings.Index(r.stderr, "Warning: this plan destroys 0 and replaces 4 resource instance(s):")
	question := strings.Index(r.stderr, "Do you want to apply these changes?")
	require.GreaterOrEqual(t, warn, 0, r.stderr)
	assert.Less(t, warn, question, "the destroys are called out before the question")
	assert.Contains(t, r.stderr, "  -/+ terraform_data.cbd (changes to triggers_replace force it)\n")
	assert.Empty(t, api.approved)
}

func TestRunsShowPlan(t *testing.T) {
	api := newFakeRuns()
	api.run.State, api.run.PlanResult = "planned", withPlan(t, api)
	r := cli{t: t, api: api}.run("runs", "show", api.run.ID, "--plan")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "State:")
	assert.Contains(t, r.stdout, "  # terraform_data.follower will be replaced due to changes in replace_triggered_by\n")

	r = cli{t: t, api: api}.run("runs", "show", api.run.ID)
	assert.NotContains(t, r.stdout, "Terraform will perform", "the plan only with --plan")

	r = cli{t: t, api: api}.run("runs", "show", api.run.ID, "--plan", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &out))
	assert.Contains(t, out, "plan")
	assert.Equal(t, "run-0000000000000001", out["id"])

	// A run without a plan says so and still shows the run.
	api = newFakeRuns()
	r = cli{t: t, api: api}.run("runs", "show", api.run.ID, "--plan")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stderr, "has no plan to show (it is queued)")
}

// TestDestroyYesShowsThePlanItApproves: like terraform destroy
// -auto-approve, a destroy that asks nothing still shows the plan it
// approves and calls out what it destroys and replaces, for the record.
func TestDestroyYesShowsThePlanItApproves(t *testing.T) {
	api := newFakeRuns()
	res := withPlan(t, api)
	api.follow = func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
		if f.run.State == "queued" {
			return fn(runFrame(f.set(runs.Planned, "plan saved", func(r *opsapi.Run) { r.PlanResult = res })))
		}
		return fn(runFrame(f.set(runs.Applied, "applied", func(r *opsapi.Run) {
			r.ApplyResult = &opsapi.RunResult{Changes: &opsapi.Changes{Destroy: 4}}
		})))
	}
	r := cli{t: t, api: api}.run("destroy", "-w", "app", "-d", configDir(t), "--yes")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "-/+ resource \"terraform_data\" \"trigger\" {")
	assert.Less(t, strings.Index(r.stdout, "Terraform will perform"), strings.Index(r.stdout, "Applied:"), "the plan, then the apply")
	warn := strings.Index(r.stderr, "Warning: this plan destroys 0 and replaces 4 resource instance(s):")
	require.GreaterOrEqual(t, warn, 0, r.stderr)
	assert.Less(t, warn, strings.Index(r.stderr, "approved"), "called out before the approval")
	assert.NotContains(t, r.stderr, "Do you really want")
}
