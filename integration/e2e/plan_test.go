package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

// TestPlanOptionsVariablesAndTheRenderedPlan: workspace variables (one
// sensitive, set from stdin), a per-run --var, --target and --replace, a
// .terraformignore'd 2 MiB file; the plan is shown as Terraform prints it,
// and the sensitive value appears nowhere: not in the plan, the logs, the
// API's answers or any process's output.
func TestPlanOptionsVariablesAndTheRenderedPlan(t *testing.T) {
	t.Parallel()
	const password = "pw-e2e-opt-93b1c7d2"
	createWorkspace(t, contoso, "options")
	dir := config(t, "options")
	require.NoError(t, os.WriteFile(filepath.Join(dir, ".terraformignore"), []byte("build/\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "build"), 0o755))
	big := make([]byte, 2<<20)
	_, _ = rand.Read(big)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "build", "big.bin"), big, 0o644))

	expect(t, exitcode.OK, contoso, "vars", "set", "-w", "options", "region", "westeurope")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, err := plat.OpsbotCmd(ctx, contoso, "vars", "set", "-w", "options", "db_password", "--sensitive")
	require.NoError(t, err)
	cmd.Stdin = strings.NewReader(password + "\n")
	var setOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &setOut, &setOut
	require.NoError(t, cmd.Run(), setOut.String())

	list := expect(t, exitcode.OK, contoso, "vars", "list", "-w", "options")
	assert.Regexp(t, `db_password\s+<sensitive>`, list.Stdout)
	assert.Regexp(t, `region\s+westeurope`, list.Stdout)

	r := expect(t, exitcode.Changes, contoso, "plan", "-w", "options", "-d", dir, "--var", "size=3",
		"--target", "terraform_data.region", "--target", "terraform_data.size", "--target", "terraform_data.password")
	id := runID(t, r)
	assert.Regexp(t, `Uploading \S+ \(\d+ files?, [0-9.]+ (KiB|bytes); 1 left out by \.terraformignore\)`, r.Stderr, "the 2 MiB file stays home")
	for _, want := range []string{
		"  # terraform_data.region will be created\n  + resource \"terraform_data\" \"region\" {\n",
		"      + input  = \"westeurope\"\n", // the workspace variable
		"      + input  = \"3\"\n",          // the per-run --var
		"      + input  = (sensitive value)\n",
		"Plan: 3 to add, 0 to change, 0 to destroy.\n",
	} {
		assert.Contains(t, r.Stdout, want)
	}
	assert.NotContains(t, r.Stdout, "terraform_data.untargeted will be", "-target narrows the plan")
	run := show(t, contoso, id)
	require.NotNil(t, run.PlanOptions)
	assert.Len(t, run.PlanOptions.Targets, 3)

	applied := expect(t, exitcode.OK, contoso, "apply", id, "--yes")
	assert.Contains(t, applied.Stdout, "password=***", "the provisioner's echo is redacted")

	// A replacement, as requested, is called out with its reason.
	r = expect(t, exitcode.Changes, contoso, "plan", "-w", "options", "-d", dir, "--var", "size=3",
		"--target", "terraform_data.size", "--replace", "terraform_data.size")
	replaced := runID(t, r)
	assert.Contains(t, r.Stdout, "  # terraform_data.size will be replaced, as requested\n-/+ resource \"terraform_data\" \"size\" {\n")
	js := expect(t, exitcode.OK, contoso, "runs", "show", replaced, "--plan", "-o", "json")
	assert.Contains(t, js.Stdout, `"action_reason": "replace_by_request"`)
	expect(t, exitcode.OK, contoso, "cancel", replaced)

	plans := expect(t, exitcode.OK, contoso, "runs", "show", id, "--plan", "-o", "json")
	vars := expect(t, exitcode.OK, contoso, "vars", "list", "-w", "options", "-o", "json")
	logs := expect(t, exitcode.OK, contoso, "logs", id)
	for what, text := range map[string]string{
		"setting it": setOut.String(), "followed plan": r.Stdout + r.Stderr, "apply": applied.Stdout + applied.Stderr,
		"stored log": logs.Stdout, "run with its plan": plans.Stdout, "variables": vars.Stdout, "processes": plat.Outputs(),
	} {
		assert.NotContains(t, text, password, "the sensitive variable appears in the %s", what)
	}
}

// TestTerraformVersionConstraint: a workspace whose version constraint no
// agent meets keeps its run queued and says why; once it is met, the run
// starts.
func TestTerraformVersionConstraint(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "pinned", "--terraform-version", ">= 99.0")
	r := expect(t, exitcode.OK, contoso, "plan", "-w", "pinned", "-d", config(t, "quick"), "--detach")
	id := runID(t, r)
	assert.Regexp(t, `Waiting: no online agent of tenant contoso has a terraform meeting ">= 99.0", the version workspace pinned requires \(they run 1\.\d+\.\d+\)`, r.Stderr)
	time.Sleep(2 * time.Second)
	assert.Equal(t, "queued", show(t, contoso, id).State, "no agent takes it")

	expect(t, exitcode.OK, contoso, "workspaces", "update", "pinned", "--terraform-version", ">= 1.0, < 99.0")
	waitRun(t, contoso, id, time.Minute, "planning", func(r opsapi.Run) bool { return r.State == "planned" || r.Terminal() })
	expect(t, exitcode.OK, contoso, "cancel", id)
}

// TestLargePlanIsKept: a plan whose JSON is far over a queue message
// (about 400 KiB) reaches the server by claim check and is shown whole.
func TestLargePlanIsKept(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "large")
	r := expect(t, exitcode.Changes, contoso, "plan", "-w", "large", "-d", config(t, "large"))
	id := runID(t, r)
	assert.Contains(t, r.Stdout, "  # terraform_data.many[399] will be created\n")
	assert.Contains(t, r.Stdout, "Plan: 400 to add, 0 to change, 0 to destroy.\n")
	js := expect(t, exitcode.OK, contoso, "runs", "show", id, "--plan", "-o", "json")
	assert.Greater(t, len(js.Stdout), 256<<10, "the structured changes, whole")
	assert.Equal(t, 400, strings.Count(js.Stdout, `"type": "terraform_data"`))
	expect(t, exitcode.OK, contoso, "cancel", id)
}
