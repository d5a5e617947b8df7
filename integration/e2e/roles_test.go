package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

// operator is an operator API key that a platform administrator created
// through the API (opsbot keys create), as a customer's operator would be
// onboarded.
type operator struct {
	name string
	key  string
}

// newOperator creates an API key with a role per tenant ("contoso=reader")
// and returns it.
func newOperator(t *testing.T, name string, roles ...string) operator {
	t.Helper()
	args := []string{"keys", "create", name, "--description", "e2e " + name}
	for _, r := range roles {
		args = append(args, "--role", r)
	}
	r := expect(t, exitcode.OK, "", args...)
	key := strings.TrimSpace(r.Stdout)
	require.True(t, strings.HasPrefix(key, "obk_"+name+"."), "stdout is the key alone: %q", r.Stdout)
	return operator{name: name, key: key}
}

// as runs opsbot with the operator's key against tenant.
func (o operator) as(t *testing.T, tenant string, args ...string) platform.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := plat.Opsbot(ctx, tenant, []string{"OPSBOT_API_KEY=" + o.key}, args...)
	require.NoError(t, err)
	t.Logf("%s: opsbot %s → %d", o.name, strings.Join(args, " "), r.Code)
	return r
}

// refused runs opsbot as o and requires a 403 naming why.
func (o operator) refused(t *testing.T, tenant, why string, args ...string) {
	t.Helper()
	r := o.as(t, tenant, args...)
	assert.Equal(t, exitcode.APIAuth, r.Code, "%s: opsbot %s must be refused:\n%s\n%s", o.name, strings.Join(args, " "), r.Stdout, r.Stderr)
	assert.Contains(t, r.Stderr, why, "%s: opsbot %s", o.name, strings.Join(args, " "))
	assert.Contains(t, r.Stderr, "ops API answered 403 forbidden")
}

// snapshot is what an operator could have changed in a tenant's
// workspace: its settings, its runs (state, last change, history length)
// and a run's log. Other tests work in other workspaces meanwhile.
func snapshot(t *testing.T, tenant, workspace, runID string) string {
	t.Helper()
	var wss opsapi.WorkspaceList
	require.NoError(t, json.Unmarshal([]byte(expect(t, exitcode.OK, tenant, "workspaces", "list", "-o", "json").Stdout), &wss))
	var runs opsapi.RunList
	require.NoError(t, json.Unmarshal([]byte(expect(t, exitcode.OK, tenant, "runs", "list", "--workspace", workspace, "-o", "json").Stdout), &runs))
	var b strings.Builder
	for _, ws := range wss.Workspaces {
		if ws.Name == workspace || strings.HasPrefix(ws.Name, "intruder") || strings.HasPrefix(ws.Name, "reader-") {
			fmt.Fprintf(&b, "%+v\n", ws)
		}
	}
	for _, r := range runs.Runs {
		fmt.Fprintf(&b, "%s %s %s %d\n", r.ID, r.State, r.UpdatedAt, len(r.History))
	}
	b.WriteString(expect(t, exitcode.OK, tenant, "logs", runID).Stdout)
	return b.String()
}

// TestOperatorRolesAcrossTenants onboards operators of two customers with
// keys an admin creates through the API, then tries every operation with
// every role, across tenants too, through the relay: each refusal is a 403
// naming the missing role, and nothing the refused calls touched changed.
func TestOperatorRolesAcrossTenants(t *testing.T) {
	t.Parallel()
	reader := newOperator(t, "rbac-reader", contoso+"=reader")
	op := newOperator(t, "rbac-operator", contoso+"=operator")
	approver := newOperator(t, "rbac-approver", contoso+"=approver")
	approver2 := newOperator(t, "rbac-approver2", contoso+"=approver")
	other := newOperator(t, "rbac-fabrikam", fabrikam+"=approver")
	r := other.as(t, "", "whoami", "-o", "json")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	var me opsapi.Whoami
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &me))
	assert.Equal(t, "rbac-fabrikam", me.ID)
	assert.Equal(t, "fabrikam=approver", me.Grants.String(), "the key carries exactly the role it was created with")

	// The operator creates a four-eyes workspace and plans in it.
	r = op.as(t, contoso, "workspaces", "create", "rbac", "--four-eyes")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	dir := config(t, "quick")
	r = op.as(t, contoso, "plan", "--workspace", "rbac", "--dir", dir)
	require.Equal(t, exitcode.Changes, r.Code, r.Stderr)
	id := runID(t, r)
	before := snapshot(t, contoso, "rbac", id)

	needs := func(role string) string { return "lacks the " + role + " role in tenant " + contoso }
	// A reader reads, and nothing else.
	assert.Equal(t, exitcode.OK, reader.as(t, contoso, "runs", "show", id).Code)
	assert.Equal(t, exitcode.OK, reader.as(t, contoso, "logs", id).Code)
	reader.refused(t, contoso, needs("operator"), "workspaces", "create", "reader-ws")
	reader.refused(t, contoso, needs("operator"), "workspaces", "update", "rbac", "--description", "mine")
	reader.refused(t, contoso, needs("operator"), "plan", "--workspace", "rbac", "--dir", dir, "--detach")
	reader.refused(t, contoso, needs("operator"), "destroy", "--workspace", "rbac", "--dir", dir, "--detach")
	reader.refused(t, contoso, needs("operator"), "cancel", id)
	reader.refused(t, contoso, needs("approver"), "apply", id, "--yes")
	// An operator plans but does not approve, nor turn auto-apply on.
	op.refused(t, contoso, needs("approver"), "apply", id, "--yes")
	op.refused(t, contoso, needs("approver"), "workspaces", "update", "rbac", "--auto-apply")
	// Nobody but an admin turns four-eyes off.
	approver.refused(t, contoso, "only a platform administrator", "workspaces", "update", "rbac", "--four-eyes=false")
	// Only admins manage keys.
	approver.refused(t, "", "only a platform administrator", "keys", "create", "mallory", "--admin")
	approver.refused(t, "", "only a platform administrator", "keys", "list")

	// Another customer's operator, with the highest tenant role there,
	// reaches nothing of contoso: lists, reads, log streams, writes.
	for _, args := range [][]string{
		{"workspaces", "list"},
		{"workspaces", "create", "intruder"},
		{"workspaces", "update", "rbac", "--description", "pwned"},
		{"runs", "list"},
		{"runs", "show", id},
		{"logs", id},
		{"logs", "-f", id},
		{"plan", "--workspace", "rbac", "--dir", dir, "--detach"},
		{"destroy", "--workspace", "rbac", "--dir", dir, "--detach"},
		{"apply", id, "--yes"},
		{"cancel", id},
		{"agents", "list"},
	} {
		other.refused(t, contoso, "lacks the", args...)
	}
	// Its unscoped lists show only its own tenant.
	r = other.as(t, "", "agents", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	var agentList opsapi.AgentList
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &agentList))
	for _, a := range agentList.Agents {
		assert.Equal(t, fabrikam, a.Tenant, "fabrikam's operator sees only fabrikam's agents")
	}
	r = other.as(t, "", "status", "-o", "json")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	var st opsapi.Status
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &st))
	assert.Equal(t, 1, st.AgentCount, "status counts fabrikam's agent only")
	r = other.as(t, "", "events", "--count", "1", "-o", "json")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	var ev opsapi.Event
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &ev))
	require.NotNil(t, ev.Status)
	assert.Equal(t, 1, ev.Status.AgentCount, "the events stream too")

	assert.Equal(t, before, snapshot(t, contoso, "rbac", id), "no refused call changed a workspace, a run or a log")

	// Four eyes: the approver who queued a plan cannot approve it; another
	// approver can.
	r = approver.as(t, contoso, "plan", "--workspace", "rbac", "--dir", dir, "--detach")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	own := runID(t, r)
	// The first plan holds the workspace: cancel it to let the second one run.
	r = op.as(t, contoso, "cancel", id)
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	r = reader.as(t, contoso, "logs", "-f", id)
	assert.Equal(t, exitcode.RunEnded, r.Code, "a reader follows a run over the WebSocket to its end: %s", r.Stderr)
	waitRun(t, contoso, own, 2*time.Minute, "planned", inState("planned", "failed"))
	approver.refused(t, contoso, "four-eyes approval", "apply", own, "--yes")
	assert.Equal(t, "planned", show(t, contoso, own).State, "the self-approval changed nothing")
	r = approver2.as(t, contoso, "apply", own, "--yes")
	require.Equal(t, exitcode.OK, r.Code, r.Stderr)
	run := show(t, contoso, own)
	assert.Equal(t, "applied", run.State)
	assert.Equal(t, "api-key:rbac-approver", run.CreatedBy)
	var approvedBy string
	for _, tr := range run.History {
		if tr.To == "approved" {
			approvedBy = tr.By
		}
	}
	assert.Equal(t, "api-key:rbac-approver2", approvedBy)

	// A revoked key is refused at once.
	expect(t, exitcode.OK, "", "keys", "revoke", reader.name)
	r = reader.as(t, contoso, "runs", "list")
	assert.Equal(t, exitcode.APIAuth, r.Code)
	assert.Contains(t, r.Stderr, "refused the operator credential")
}
