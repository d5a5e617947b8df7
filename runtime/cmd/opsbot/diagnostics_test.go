package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/runs"
)

// A failed run ends the followed output with Terraform's diagnostic, as
// Terraform prints it, once; -o json carries it whole.
func TestFailedRunEndsWithTheDiagnostic(t *testing.T) {
	diag := opsapi.Diagnostic{Severity: "error", Summary: "Unsupported argument",
		Detail: `An argument named "inptu" is not expected here. Did you mean "input"?`,
		File:   "main.tf", Line: 2, Column: 3, EndLine: 2, EndColumn: 8, Context: `resource "terraform_data" "x"`, Code: "  inptu = 1"}
	play := func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
		_ = f.emit(fn, "Error: Unsupported argument")
		return fn(runFrame(f.set(runs.Failed, "terraform plan failed: Unsupported argument (main.tf line 2)", func(r *opsapi.Run) {
			r.PlanResult = &opsapi.RunResult{Diagnostics: []opsapi.Diagnostic{diag}}
		})))
	}
	api := newFakeRuns()
	api.follow = play
	r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t))
	require.Equal(t, exitcode.RunFailed, r.code)
	want := "\nRun run-0000000000000001 failed: terraform plan failed: Unsupported argument (main.tf line 2)\n" +
		"\nError: Unsupported argument\n\n  on main.tf line 2, in resource \"terraform_data\" \"x\":\n     2:   inptu = 1\n\n" +
		"  An argument named \"inptu\" is not expected here. Did you mean \"input\"?\n"
	assert.True(t, strings.HasSuffix(r.stdout, want), "the output ends with the reason and the diagnostic:\n%s", r.stdout)
	assert.Equal(t, 1, strings.Count(r.stdout+r.stderr, "failed: terraform plan failed"), "said once")

	api = newFakeRuns()
	api.follow = play
	r = cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t), "-o", "json")
	require.Equal(t, exitcode.RunFailed, r.code)
	assert.Contains(t, r.stdout, `"endColumn": 8`)
	assert.Contains(t, r.stderr, "opsbot: run run-0000000000000001 failed: terraform plan failed: Unsupported argument (main.tf line 2)")
}

// TestRunsShowOfAFailedPlanSaysItFailed: a plan that failed has no
// changes to count; "Plan: no changes" would say it succeeded.
func TestRunsShowOfAFailedPlanSaysItFailed(t *testing.T) {
	api := newFakeRuns()
	api.run.State = "failed"
	api.run.PlanResult = &opsapi.RunResult{Diagnostics: []opsapi.Diagnostic{{Severity: "error", Summary: "Unsupported argument"}}}
	r := cli{t: t, api: api}.run("runs", "show", api.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "Plan:       failed: Unsupported argument\n")
	assert.NotContains(t, r.stdout, "no changes")
}
