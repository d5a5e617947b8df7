package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
)

// TestPolicyChecksGateTheApproval: the example policies uploaded with
// opsbot (a broken one refused with the compiler's message), a real plan
// checked on the server, a failed mandatory-with-override policy shown by
// opsbot plan and runs show and blocking the apply until an approver
// overrides it; a plan that passes applies as usual. The policies apply to
// this test's workspace only.
func TestPolicyChecksGateTheApproval(t *testing.T) {
	t.Parallel()
	const ws = "guarded"
	createWorkspace(t, contoso, ws)
	policies := filepath.Join(examples(t), "policies")
	expect(t, exitcode.OK, contoso, "policies", "put", "tags", "-w", ws, "--enforcement", "mandatory-with-override",
		"--file", filepath.Join(policies, "require-tags.rego"))
	expect(t, exitcode.OK, contoso, "policies", "put", "types", "-w", ws, "--enforcement", "advisory",
		"--file", filepath.Join(policies, "restrict-resource-types.rego"))
	broken := filepath.Join(t.TempDir(), "broken.rego")
	require.NoError(t, os.WriteFile(broken, []byte("package broken\n\ndeny contains msg if {\n\tmsg := sprintf(\"%s\", [input.plan])\n\tnosuch(msg)\n}\n"), 0o644))
	r := expect(t, exitcode.Error, contoso, "policies", "put", "broken", "-w", ws, "--enforcement", "mandatory", "--file", broken)
	assert.Contains(t, r.Stderr, "broken.rego:5: rego_type_error: undefined function nosuch")
	list := expect(t, exitcode.OK, contoso, "policies", "list")
	assert.Regexp(t, `tags\s+1\s+mandatory-with-override\s+guarded`, list.Stdout)
	assert.NotContains(t, list.Stdout, "broken", "a policy that does not compile is not stored")

	dir := config(t, "tagged")
	r = expect(t, exitcode.Changes, contoso, "plan", "-w", ws, "-d", dir)
	id := runID(t, r)
	assert.Contains(t, r.Stdout, "Plan saved: 2 to add, 0 to change, 0 to destroy; it failed policy tags.\n")
	assert.Contains(t, r.Stdout, "  FAILED tags (v1, mandatory-with-override)\n      - terraform_data.untagged is missing the tags cost-center, owner\n")
	assert.Contains(t, r.Stdout, "  passed types (v1, advisory)\n")
	run := show(t, contoso, id)
	require.NotNil(t, run.Policy)
	assert.True(t, run.Policy.Blocked)
	require.Len(t, run.Policy.Results, 2)

	r = expect(t, exitcode.Error, contoso, "apply", id, "--yes")
	assert.Contains(t, r.Stderr, "failed policy tags: it cannot be approved (an approver may override it: opsbot apply ")
	assert.Equal(t, "planned", show(t, contoso, id).State)
	r = expect(t, exitcode.OK, contoso, "apply", id, "--yes", "--override-policy")
	run = show(t, contoso, id)
	assert.Equal(t, "applied", run.State)
	assert.Equal(t, "api-key:operator", run.Policy.OverriddenBy)
	js := expect(t, exitcode.OK, contoso, "runs", "show", id, "-o", "json")
	assert.Contains(t, js.Stdout, `"overridden_by"`)

	r = expect(t, exitcode.Changes, contoso, "plan", "-w", ws, "-d", dir, "--var", "owner=team-b")
	id = runID(t, r)
	assert.Contains(t, r.Stdout, "  passed tags (v1, mandatory-with-override)\n")
	expect(t, exitcode.OK, contoso, "apply", id, "--yes")
	expect(t, exitcode.OK, contoso, "policies", "delete", "tags")
}
