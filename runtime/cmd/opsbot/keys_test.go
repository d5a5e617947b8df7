package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

func TestKeysCommands(t *testing.T) {
	url, admin := startServer(t)
	as := func(key string, args ...string) result {
		return runCLI(t, map[string]string{"OPSBOT_LOCAL_URL": url, "OPSBOT_API_KEY": key}, args...)
	}
	r := as(admin, "keys", "create", "carol", "--role", "contoso=operator", "--role", "fabrikam=reader", "--description", "Carol at Contoso")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	carol := strings.TrimSpace(r.stdout)
	assert.True(t, strings.HasPrefix(carol, "obk_carol."), "stdout is the key alone: %q", r.stdout)
	assert.Contains(t, r.stderr, "shown once")
	assert.Contains(t, r.stderr, "contoso=operator,fabrikam=reader")

	r = as(carol, "agents", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	var agents opsapi.AgentList
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &agents))
	assert.Len(t, agents.Agents, 2, "carol sees contoso's and fabrikam's agents")

	r = as(carol, "whoami")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `Principal:\s+api-key:carol`, r.stdout)
	assert.Regexp(t, `Grants:\s+contoso=operator,fabrikam=reader`, r.stdout)

	r = as(carol, "keys", "list")
	assert.Equal(t, exitcode.APIAuth, r.code, "keys are for admins")
	assert.Contains(t, r.stderr, "only a platform administrator may do this")
	r = as(carol, "keys", "create", "mallory", "--admin")
	assert.Equal(t, exitcode.APIAuth, r.code, "a tenant operator cannot mint an admin key")

	r = as(admin, "keys", "list")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `carol\s+active\s+contoso=operator,fabrikam=reader`, r.stdout)
	assert.Regexp(t, `cli-test\s+active\s+admin`, r.stdout)
	assert.NotContains(t, r.stdout, strings.SplitN(carol, ".", 2)[1])

	r = as(admin, "keys", "rotate", "carol")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	rotated := strings.TrimSpace(r.stdout)
	assert.NotEqual(t, carol, rotated)
	assert.Equal(t, exitcode.APIAuth, as(carol, "status").code, "the old secret stops working")
	assert.Equal(t, exitcode.OK, as(rotated, "status").code)

	r = as(admin, "keys", "revoke", "carol")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, "revoked")
	assert.Equal(t, exitcode.APIAuth, as(rotated, "status").code, "a revoked key authenticates nobody")

	for _, args := range [][]string{
		{"keys", "create", "dave"},
		{"keys", "create", "dave", "--role", "contoso=owner"},
		{"keys", "create", "Dave!", "--admin"},
	} {
		assert.Equal(t, exitcode.Usage, as(admin, args...).code, "%q", args)
	}
}

func TestWorkspaceUpdateSendsOnlyWhatIsGiven(t *testing.T) {
	f := newFakeRuns()
	f.workspaces = []opsapi.Workspace{{Tenant: "contoso", Name: "app"}}
	c := cli{t: t, api: f}
	r := c.run("workspaces", "update", "app", "--four-eyes")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	require.Len(t, f.updates, 1)
	require.NotNil(t, f.updates[0].FourEyes)
	assert.True(t, *f.updates[0].FourEyes)
	assert.Nil(t, f.updates[0].AutoApply, "flags not given are not sent")
	assert.Nil(t, f.updates[0].Labels)
	assert.Regexp(t, `app\s+false\s+true`, r.stdout)

	r = c.run("workspaces", "update", "app")
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, "nothing to change")
	r = c.run("workspaces", "create", "both", "--four-eyes", "--auto-apply")
	assert.Equal(t, exitcode.Usage, r.code, "four-eyes excludes auto-apply: %s", r.stderr)

	r = c.run("workspaces", "create", "strict", "--four-eyes")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.True(t, f.workspaces[1].FourEyes)
}
