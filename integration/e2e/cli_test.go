package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Exit codes of opsbot's mistakes (runtime/cmd/opsbot/exitcodes.go).
const (
	exitUsage   = 2
	exitUnknown = 9
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
		{[]string{"runs", "lst"}, exitUsage, `did you mean "list"?`},
		{[]string{"agents", "lst"}, exitUsage, `did you mean "list"?`},
		{[]string{"workspaces", "delete", "demo"}, exitUsage, `unknown command "delete" for "opsbot workspaces"`},
		{[]string{"runs", "list", "--workspce", "x"}, exitUsage, "did you mean --workspace?"},
		{[]string{"runs", "list", "--tenant", "nobody"}, exitUnknown, "no tenant nobody on this server"},
		{[]string{"workspaces", "list", "--tenant", "nobody"}, exitUnknown, "no tenant nobody"},
		{[]string{"agents", "list", "--tenant", "nobody"}, exitUnknown, "no tenant nobody"},
		{[]string{"runs", "list", "--workspace", "nope"}, exitUnknown, "tenant contoso has no workspace nope"},
		{[]string{"runs", "show", "run-0000000000000000"}, exitUnknown, "has no run run-0000000000000000"},
		{[]string{"plan", "--workspace", "nope", "--dir", dir}, exitUnknown, "has no workspace nope"},
		{[]string{"audit", "--tenant", "nobody"}, exitUnknown, "no tenant nobody"},
		{[]string{"vars", "set", "--workspace", "nope", "db_password", "--sensitive"}, exitUsage, "no value on stdin"},
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
	id := runID(t, expect(t, exitChanges, contoso, "plan", "--workspace", "waiting", "--dir", config(t, "quick")))

	logs := startOpsbot(t, contoso, "logs", "-f", id)
	_, err := logs.WaitOutput("Waiting for approval: the plan of run "+id+" waits for opsbot apply "+id, time.Minute)
	require.NoError(t, err)
	select {
	case <-logs.Done():
		t.Fatalf("logs -f ended while the run waited:\n%s", logs.Output())
	case <-time.After(time.Second):
	}

	expect(t, exitOK, contoso, "apply", id, "--yes")
	assert.Equal(t, exitOK, exitCode(t, logs, time.Minute), logs.Output())
	assert.Contains(t, logs.Output(), "run "+id+" is applied")
}
