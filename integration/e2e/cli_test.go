package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
)

// TestNoSilentFailures: what an operator mistypes is an error with its
// own exit code, through the real relay and server, never help or an
// empty list with exit 0.
func TestNoSilentFailures(t *testing.T) {
	t.Parallel()
	dir := config(t, "quick")
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"runs", "lst"}, exitcode.Usage, `did you mean "list"?`},
		{[]string{"agents", "lst"}, exitcode.Usage, `did you mean "list"?`},
		{[]string{"workspaces", "delete", "demo"}, exitcode.Usage, `unknown command "delete" for "opsbot workspaces"`},
		{[]string{"runs", "list", "--workspce", "x"}, exitcode.Usage, "did you mean --workspace?"},
		{[]string{"runs", "list", "--tenant", "nobody"}, exitcode.Unknown, "no tenant nobody on this server"},
		{[]string{"workspaces", "list", "--tenant", "nobody"}, exitcode.Unknown, "no tenant nobody"},
		{[]string{"agents", "list", "--tenant", "nobody"}, exitcode.Unknown, "no tenant nobody"},
		{[]string{"runs", "list", "--workspace", "nope"}, exitcode.Unknown, "tenant contoso has no workspace nope"},
		{[]string{"runs", "show", "run-0000000000000000"}, exitcode.Unknown, "has no run run-0000000000000000"},
		{[]string{"plan", "--workspace", "nope", "--dir", dir}, exitcode.Unknown, "has no workspace nope"},
		{[]string{"audit", "--tenant", "nobody"}, exitcode.Unknown, "no tenant nobody"},
		{[]string{"vars", "set", "--workspace", "nope", "db_password", "--sensitive"}, exitcode.Usage, "no value on stdin"},
	} {
		r := opsbot(t, contoso, tc.args...)
		assert.Equal(t, tc.code, r.Code, "%v: %s", tc.args, r)
		assert.Contains(t, r.Stderr, tc.msg, "%v", tc.args)
		assert.Empty(t, r.Stdout, "%v", tc.args)
	}
}

// TestLogsFollowWaitsForApproval: logs -f of a planned run says it waits
// for approval and follows on through the apply someone else starts.
func TestLogsFollowWaitsForApproval(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "waiting")
	id := runID(t, expect(t, exitcode.Changes, contoso, "plan", "--workspace", "waiting", "--dir", config(t, "quick")))

	logs := startOpsbot(t, contoso, "logs", "-f", id)
	_, err := logs.WaitOutput("Waiting for approval: the plan of run "+id+" waits for opsbot apply "+id, time.Minute)
	require.NoError(t, err)
	select {
	case <-logs.Done():
		t.Fatalf("logs -f ended while the run waited:\n%s", logs.Output())
	case <-time.After(time.Second):
	}

	expect(t, exitcode.OK, contoso, "apply", id, "--yes")
	assert.Equal(t, exitcode.OK, exitCode(t, logs, time.Minute), logs.Output())
	assert.Contains(t, logs.Output(), "run "+id+" is applied")
}
