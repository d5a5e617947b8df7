package opsapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
)

// TestEveryTenantRouteChecksTheRole calls every route of a tenant with each
// role and checks who is refused (403 naming the missing role) and who
// gets through; a tenant role never reaches another tenant.
func TestEveryTenantRouteChecksTheRole(t *testing.T) {
	f := newRunsFixture(t)
	rank := map[string]int{nobodyKey: 0, readerKey: 1, operatorKey: 2, approverKey: 3, goodKey: 4}
	need := map[string]int{"reader": 1, "operator": 2, "approver": 3}
	checked := 0
	for _, rt := range f.s.routes {
		if !strings.Contains(rt.path, "{tenant}") {
			continue
		}
		checked++
		for _, tenant := range []string{"contoso", "fabrikam"} {
			url := f.srv.URL + strings.NewReplacer("{tenant}", tenant, "{workspace}", "prod", "{run}", f.planned, "{policy}", "p", "{notification}", "hook").Replace(rt.path)
			for cred, have := range rank {
				if tenant == "fabrikam" && cred != goodKey {
					// Roles are in contoso only (the operator reads
					// fabrikam, checked below).
					have = 0
					if cred == operatorKey {
						have = 1
					}
				}
				r := send(t, rt.method, url, cred, "application/json", []byte(`{}`))
				name := rt.method + " " + url + " as " + cred
				if rt.admin { // platform administration of a tenant's things (policies)
					if cred == goodKey {
						assert.NotEqual(t, http.StatusForbidden, r.status, "%s: %s", name, r.body)
					} else {
						require.Equal(t, http.StatusForbidden, r.status, "%s: %s", name, r.body)
						assert.Contains(t, string(r.body), ReasonAdminRequired, name)
					}
					continue
				}
				if have >= need[string(rt.role)] {
					assert.NotEqual(t, http.StatusForbidden, r.status, "%s: %s", name, r.body)
					continue
				}
				require.Equal(t, http.StatusForbidden, r.status, "%s: %s", name, r.body)
				var body ErrorBody
				require.NoError(t, json.Unmarshal(r.body, &body))
				assert.Equal(t, ErrorDetail{Code: CodeForbidden, Reason: ReasonMissingRole, MissingRole: string(rt.role), Tenant: tenant,
					Message: body.Error.Message, RequestID: r.header.Get("X-Request-Id")}, body.Error, name)
				assert.Contains(t, body.Error.Message, "needs the "+string(rt.role)+" role in tenant "+tenant)
			}
		}
	}
	assert.Equal(t, 31, checked, "every tenant route")
}

func TestBadIDsInPathsAre400(t *testing.T) {
	f := newRunsFixture(t)
	for _, path := range []string{
		"/v1/tenants/-bad/workspaces",
		"/v1/tenants/" + strings.Repeat("t", 200) + "/runs",
		"/v1/tenants/bad%20tenant/runs",
		"/v1/tenants/contoso/workspaces/bad%2Fws/runs",
		"/v1/tenants/contoso/runs/not-a-run-id",
		"/v1/tenants/contoso/runs/run-zzzzzzzzzzzzzzzz/logs",
	} {
		r := do(t, http.MethodGet, f.srv.URL+path, goodKey)
		if strings.HasSuffix(path, "/runs") && strings.Contains(path, "/workspaces/") {
			r = send(t, http.MethodPost, f.srv.URL+path, goodKey, "application/gzip", []byte("x"))
		}
		assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", path, r.body)
		assert.Contains(t, string(r.body), `"code":"bad_request"`)
	}
	r := do(t, http.MethodGet, f.srv.URL+"/v1/agents?tenant=-bad", goodKey)
	assert.Equal(t, http.StatusBadRequest, r.status)
}

func TestListsShowOnlyTheOperatorsTenants(t *testing.T) {
	_, srv := newTestServer(t, nil)
	agents := func(cred, query string) (int, []string) {
		r := do(t, "GET", srv.URL+"/v1/agents"+query, cred)
		if r.status != http.StatusOK {
			return r.status, nil
		}
		var ids []string
		for _, a := range decode[AgentList](t, r).Agents {
			ids = append(ids, a.ID)
		}
		return r.status, ids
	}
	status, ids := agents(readerKey, "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, []string{"contoso/agent-01", "contoso/agent-02"}, ids, "a contoso reader sees no fabrikam agent")
	status, ids = agents(operatorKey, "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, []string{"contoso/agent-01", "contoso/agent-02", "fabrikam/agent-01"}, ids)
	status, _ = agents(readerKey, "?tenant=fabrikam")
	assert.Equal(t, http.StatusForbidden, status, "asking for another tenant is refused, not answered empty")
	status, ids = agents(nobodyKey, "")
	assert.Equal(t, http.StatusOK, status)
	assert.Empty(t, ids)

	st := decode[Status](t, do(t, "GET", srv.URL+"/v1/status", readerKey))
	assert.Equal(t, 2, st.AgentCount, "status counts only the operator's agents")
	st = decode[Status](t, do(t, "GET", srv.URL+"/v1/status", goodKey))
	assert.Equal(t, 3, st.AgentCount)

	c := dialEventsAs(t, srv, "", readerKey)
	ev := readEvent(t, c)
	assert.Equal(t, 2, ev.Status.AgentCount, "the events stream too")
}

func TestKeysAreForAdmins(t *testing.T) {
	km, base := newKeysServer(t)
	for _, cred := range []string{readerKey, operatorKey, approverKey, nobodyKey} {
		for _, req := range []struct{ method, path, body string }{
			{"GET", "/v1/keys", ""},
			{"POST", "/v1/keys", `{"id":"mallory","admin":true}`},
			{"POST", "/v1/keys/existing/rotate", ""},
			{"POST", "/v1/keys/existing/revoke", ""},
		} {
			r := send(t, req.method, base+req.path, cred, "application/json", []byte(req.body))
			require.Equal(t, http.StatusForbidden, r.status, "%s %s as %s", req.method, req.path, cred)
			assert.Contains(t, string(r.body), `"reason":"admin_required"`)
		}
	}
	keys, err := km.ListKeys(context.Background())
	require.NoError(t, err)
	require.Len(t, keys, 2, "no key was created")
	assert.False(t, keys[0].Disabled, "none was revoked")

	r := send(t, "POST", base+"/v1/keys", goodKey, "application/json", []byte(`{"id":"carol","description":"Carol, Contoso","tenants":{"contoso":"approver","fabrikam":"reader"}}`))
	require.Equal(t, http.StatusCreated, r.status, "%s", r.body)
	created := decode[NewKey](t, r)
	assert.True(t, strings.HasPrefix(created.Key, "obk_carol."))
	assert.Equal(t, "contoso=approver,fabrikam=reader", created.APIKey.Grants.String())
	list := decode[KeyList](t, do(t, "GET", base+"/v1/keys", goodKey))
	require.Len(t, list.Keys, 3)
	assert.NotContains(t, string(do(t, "GET", base+"/v1/keys", goodKey).body), strings.SplitN(created.Key, ".", 2)[1], "listing never shows a secret")

	r = send(t, "POST", base+"/v1/keys", goodKey, "application/json", []byte(`{"id":"dave","tenants":{"contoso":"owner"}}`))
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Contains(t, string(r.body), `role \"owner\"`)
}

func TestWorkspaceApprovalOptionsNeedTheRightRole(t *testing.T) {
	f := newRunsFixture(t)
	ws := func() runs.Workspace {
		w, err := f.m.GetWorkspace(context.Background(), "contoso", "prod")
		require.NoError(t, err)
		return w
	}
	patch := func(cred, body string) response {
		return send(t, "PATCH", f.srv.URL+"/v1/tenants/contoso/workspaces/prod", cred, "application/json", []byte(body))
	}
	r := patch(operatorKey, `{"auto_apply":true}`)
	assert.Equal(t, http.StatusForbidden, r.status, "auto-apply lets plans apply unapproved: approver only")
	assert.Contains(t, string(r.body), `"missing_role":"approver"`)
	r = send(t, "POST", f.srv.URL+"/v1/tenants/contoso/workspaces", operatorKey, "application/json", []byte(`{"name":"auto","auto_apply":true}`))
	assert.Equal(t, http.StatusForbidden, r.status, "also when creating")
	assert.False(t, ws().Options.AutoApply)

	r = patch(operatorKey, `{"four_eyes":true,"description":"needs two","labels":{"env":"prod","zone":"a"}}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	got := decode[Workspace](t, r)
	assert.True(t, got.FourEyes)
	assert.Equal(t, "needs two", got.Description)
	assert.Equal(t, map[string]string{"env": "prod", "zone": "a"}, got.Labels)

	r = patch(approverKey, `{"four_eyes":false}`)
	assert.Equal(t, http.StatusForbidden, r.status, "turning four-eyes off is for admins")
	assert.Contains(t, string(r.body), `"reason":"admin_required"`)
	r = patch(approverKey, `{"auto_apply":true}`)
	assert.Equal(t, http.StatusBadRequest, r.status, "four-eyes excludes auto-apply")
	assert.True(t, ws().Options.FourEyes)
	assert.False(t, ws().Options.AutoApply)

	r = patch(operatorKey, `{"timeouts":{"approval":"2h"}}`)
	require.Equal(t, http.StatusOK, r.status)
	assert.True(t, decode[Workspace](t, r).FourEyes, "absent fields keep their values")
	r = patch(goodKey, `{"four_eyes":false}`)
	require.Equal(t, http.StatusOK, r.status)
	assert.False(t, ws().Options.FourEyes)
}

func TestFourEyesOverTheAPI(t *testing.T) {
	f := newRunsFixture(t)
	// The planned run was queued by api-key:alice (goodKey).
	r := send(t, "PATCH", f.srv.URL+"/v1/tenants/contoso/workspaces/prod", goodKey, "application/json", []byte(`{"four_eyes":true}`))
	require.Equal(t, http.StatusOK, r.status)

	r = do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/approve", goodKey)
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.body)
	var body ErrorBody
	require.NoError(t, json.Unmarshal(r.body, &body))
	assert.Equal(t, ReasonFourEyes, body.Error.Reason)
	assert.Contains(t, body.Error.Message, "needs a second person")
	run, err := f.m.GetRun(context.Background(), "contoso", f.planned)
	require.NoError(t, err)
	assert.Equal(t, runs.Planned, run.State, "the refused approval changed nothing")

	r = do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/approve", approverKey)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, "approved", decode[Run](t, r).State)
}

// switchAuth is fakeAuth whose answer for readerKey a test changes.
type switchAuth struct {
	mu      sync.Mutex
	revoked bool
	role    operatorauth.Role
}

func (a *switchAuth) Authenticate(r *http.Request) (operatorauth.Principal, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, err := fakeAuth{}.Authenticate(r)
	if err != nil || p.ID != "reader" {
		return p, err
	}
	if a.revoked {
		return operatorauth.Principal{}, operatorauth.ErrUnauthenticated
	}
	p.Tenants = map[string]operatorauth.Role{"contoso": a.role}
	return p, nil
}

func (a *switchAuth) set(revoked bool, role operatorauth.Role) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.revoked, a.role = revoked, role
}

// A stream lives no longer than what authorized it: revoking the key or
// changing its roles ends open streams (close 1008); reconnecting is
// checked afresh.
func TestStreamsEndWhenTheCredentialChanges(t *testing.T) {
	closed := func(t *testing.T, c *websocket.Conn) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			_, _, err := c.Read(ctx)
			if err != nil {
				assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "err: %v", err)
				return
			}
		}
	}
	auth := &switchAuth{role: operatorauth.RoleReader}
	_, srv := newTestServer(t, func(c *Config) { c.Auth, c.StreamRecheck = auth, 20*time.Millisecond })
	c := dialEventsAs(t, srv, "?interval=1m", readerKey)
	readEvent(t, c)
	time.Sleep(100 * time.Millisecond) // rechecks that find nothing changed
	auth.set(true, operatorauth.RoleReader)
	closed(t, c)

	f := newRunsFixture(t)
	auth = &switchAuth{role: operatorauth.RoleApprover}
	f.s, f.srv = newTestServer(t, func(c *Config) {
		c.Runs, c.Artifacts, c.Dispatcher = f.m, f.arts, f.disp
		c.Auth, c.StreamRecheck = auth, 20*time.Millisecond
	})
	url := strings.Replace(f.srv.URL, "http", "ws", 1) + "/v1/tenants/contoso/runs/" + f.planned + "/follow"
	dial := func() (*websocket.Conn, error) {
		c, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + readerKey}}})
		return c, err
	}
	c, err := dial()
	require.NoError(t, err)
	defer c.CloseNow()
	auth.set(false, operatorauth.RoleReader) // a downgrade is a change too
	closed(t, c)
	auth.set(false, "")
	_, err = dial()
	assert.ErrorContains(t, err, "403", "reconnecting without the role is refused")
}
