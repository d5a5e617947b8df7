package opsapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
)

// untouchable is every store behind the API, failing the test when any is
// called. The run and secret stores say which method was called; the
// others are their interfaces left nil, so a call panics (a 500, never
// the 400 the test wants).
type untouchable struct {
	t     *testing.T
	calls atomic.Int32
}

func (u *untouchable) called(method string) {
	u.calls.Add(1)
	u.t.Errorf("the store was reached: %s", method)
}

func (u *untouchable) CreateTenant(context.Context, runs.Tenant) error {
	u.called("CreateTenant")
	return nil
}

func (u *untouchable) GetTenant(context.Context, ids.TenantID) (runs.Tenant, error) {
	u.called("GetTenant")
	return runs.Tenant{}, nil
}

func (u *untouchable) ListTenants(context.Context) ([]runs.Tenant, error) {
	u.called("ListTenants")
	return nil, nil
}

func (u *untouchable) CreateWorkspace(context.Context, runs.Workspace) error {
	u.called("CreateWorkspace")
	return nil
}

func (u *untouchable) GetWorkspace(context.Context, ids.TenantID, ids.WorkspaceID) (runs.Workspace, error) {
	u.called("GetWorkspace")
	return runs.Workspace{}, nil
}

func (u *untouchable) UpdateWorkspace(context.Context, runs.Workspace) error {
	u.called("UpdateWorkspace")
	return nil
}

func (u *untouchable) ListWorkspaces(context.Context, ids.TenantID) ([]runs.Workspace, error) {
	u.called("ListWorkspaces")
	return nil, nil
}

func (u *untouchable) GetRun(context.Context, ids.TenantID, string) (runs.Run, error) {
	u.called("GetRun")
	return runs.Run{}, nil
}

func (u *untouchable) ListRuns(context.Context, ids.TenantID, ids.WorkspaceID, runs.RunQuery) ([]runs.Run, error) {
	u.called("ListRuns")
	return nil, nil
}

func (u *untouchable) GetLock(context.Context, ids.TenantID, ids.WorkspaceID) (runs.Lock, error) {
	u.called("GetLock")
	return runs.Lock{}, nil
}

func (u *untouchable) ListLocks(context.Context, runs.LockQuery) ([]runs.Lock, error) {
	u.called("ListLocks")
	return nil, nil
}

func (u *untouchable) Commit(context.Context, runs.Commit) error {
	u.called("Commit")
	return nil
}

func (u *untouchable) PutAgent(context.Context, runs.Agent) error {
	u.called("PutAgent")
	return nil
}

func (u *untouchable) GetAgent(context.Context, ids.TenantID, string) (runs.Agent, error) {
	u.called("GetAgent")
	return runs.Agent{}, nil
}

func (u *untouchable) ListAgents(context.Context, ids.TenantID) ([]runs.Agent, error) {
	u.called("ListAgents")
	return nil, nil
}

func (u *untouchable) ListSilentAgents(context.Context, time.Time) ([]runs.Agent, error) {
	u.called("ListSilentAgents")
	return nil, nil
}

// untouchableSecrets is the secret store of untouchable.
type untouchableSecrets struct{ *untouchable }

func (u untouchableSecrets) Get(context.Context, ids.TenantID, ids.WorkspaceID) (runproto.Secrets, error) {
	u.called("secrets Get")
	return runproto.Secrets{}, nil
}

func (u untouchableSecrets) Put(context.Context, ids.TenantID, ids.WorkspaceID, runproto.Secrets) error {
	u.called("secrets Put")
	return nil
}

func (u untouchableSecrets) Delete(context.Context, ids.TenantID, ids.WorkspaceID) error {
	u.called("secrets Delete")
	return nil
}

// Malformed tenant and workspace ids in the path are refused with a 400
// that names the id, on every route that takes one, and reach no store:
// opsapi parses them once (ids.ParseTenantID, ids.ParseWorkspaceID) and
// what is behind it only ever gets typed ids. An empty segment and a
// literal ".." never reach a route: the mux redirects to the cleaned path
// (an encoded "%2E%2E" does, and is refused). Upper case is no malformed
// id: the rule (ids.Validate) allows it.
func TestMalformedPathIDsReachNoStore(t *testing.T) {
	u := &untouchable{t: t}
	m, err := runs.New(runs.Config{Store: u, Roster: runs.Unrestricted, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	s, srv := newTestServer(t, func(c *Config) {
		c.Runs, c.Secrets = m, untouchableSecrets{u}
		c.Artifacts = struct{ Artifacts }{}
		c.Policies = struct{ policystore.Store }{}
		c.Notifications = struct{ notify.Store }{}
		c.Drift, err = drift.New(drift.Config{Store: struct{ drift.Store }{}, Runs: m, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
	})
	bad := []struct{ name, segment, want string }{
		{"too long", strings.Repeat("t", ids.MaxLength+1), "is 129 characters, the limit is 128"},
		{"dot dot", "%2E%2E", `".." must start with a letter or digit`},
		{"dot dot inside", "..x", "must start with a letter or digit"},
		{"encoded slash", "a%2Fb", `"a/b" must start with a letter or digit`},
		{"space", "a%20b", "must start with a letter or digit"},
		{"unicode", "caf%C3%A9", "must start with a letter or digit"},
		{"pipe (a table key separator)", "a%7Cb", "must start with a letter or digit"},
		{"leading dash", "-a", "must start with a letter or digit"},
	}
	fill := func(path, tenant, ws string) string {
		return strings.NewReplacer("{tenant}", tenant, "{workspace}", ws, "{run}", "run-0000000000000001", "{name}", "region",
			"{policy}", "p1", "{notification}", "n1").Replace(path)
	}
	checked := 0
	for _, rt := range s.routes {
		for _, field := range []string{"tenant", "workspace"} {
			if !strings.Contains(rt.path, "{"+field+"}") {
				continue
			}
			for _, b := range bad {
				path := fill(rt.path, "contoso", "prod")
				if field == "tenant" {
					path = fill(rt.path, b.segment, "prod")
				} else {
					path = fill(rt.path, "contoso", b.segment)
				}
				r := send(t, rt.method, srv.URL+path, goodKey, "application/json", []byte("{}"))
				name := rt.method + " " + path
				require.Equal(t, http.StatusBadRequest, r.status, "%s (%s): %s", name, b.name, r.body)
				var body ErrorBody
				require.NoError(t, json.Unmarshal(r.body, &body), name)
				assert.Equal(t, CodeBadRequest, body.Error.Code, name)
				assert.Contains(t, body.Error.Message, field+" id", "%s: the message names the field", name)
				assert.Contains(t, body.Error.Message, b.want, name)
				checked++
			}
		}
	}
	assert.GreaterOrEqual(t, checked, 30*len(bad), "every route with a tenant or workspace in its path")
	for _, path := range []string{"/v1/tenants//workspaces", "/v1/tenants/../workspaces", "/v1/tenants/contoso/workspaces//state"} {
		req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+goodKey)
		resp, err := http.DefaultTransport.RoundTrip(req) // no redirects followed
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode, path)
	}
	assert.Zero(t, u.calls.Load(), "no store call")
}
