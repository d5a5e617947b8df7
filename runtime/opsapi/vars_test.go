package opsapi

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/secretstore"
)

func TestWorkspaceVariables(t *testing.T) {
	f := newRunsFixture(t)
	store, err := secretstore.OpenFile(filepath.Join(t.TempDir(), "secrets.json"))
	require.NoError(t, err)
	log := &fakeAudit{}
	_, srv := newTestServer(t, func(c *Config) {
		c.Runs, c.Artifacts, c.Dispatcher, c.Secrets, c.Audit = f.m, f.arts, f.disp, store, log
		c.Now = func() time.Time { return runsNow }
	})
	base := srv.URL + "/v1/tenants/contoso/workspaces/prod/vars"
	const secret = "s3cr3t-db-p4ss"
	put := func(name, body string) response {
		return doBody(t, http.MethodPut, base+"/"+name, "application/json", []byte(body))
	}

	r := put("region", `{"value":"westeurope"}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, `{"name":"region","value":"westeurope","sensitive":false}`, string(r.body))
	r = put("db_password", `{"value":"`+secret+`","sensitive":true}`)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, `{"name":"db_password","sensitive":true}`, string(r.body), "a sensitive value is never returned")

	recs := log.take()
	require.Len(t, recs, 2, "each change is audited")
	assert.Equal(t, "PUT /v1/tenants/{tenant}/workspaces/{workspace}/vars/{name}", recs[1].Action)
	assert.Equal(t, "/v1/tenants/contoso/workspaces/prod/vars/db_password", recs[1].Object)
	assert.NotContains(t, fmt.Sprint(recs), secret, "the value is not audited")
	r = do(t, http.MethodPut, base+"/reader_try", readerKey)
	assert.Equal(t, http.StatusForbidden, r.status, "a reader cannot set variables")

	r = do(t, http.MethodGet, base, readerKey)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, `{"vars":[{"name":"db_password","sensitive":true},{"name":"region","value":"westeurope","sensitive":false}]}`, string(r.body))
	assert.NotContains(t, string(r.body), secret)

	ws, err := f.m.GetWorkspace(context.Background(), "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"region": "westeurope"}, ws.Vars, "plain variables are kept with the workspace")
	sec, err := store.Get(context.Background(), "contoso", "prod")
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"db_password": secret}, sec.Vars, "sensitive ones in the secret store")

	// A name changes kind: the other kind's value goes.
	require.Equal(t, http.StatusOK, put("region", `{"value":"northeurope","sensitive":true}`).status)
	ws, _ = f.m.GetWorkspace(context.Background(), "contoso", "prod")
	assert.Empty(t, ws.Vars)

	r = doBody(t, http.MethodDelete, base+"/db_password", "", nil)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"name":"db_password","sensitive":true}`, string(r.body))
	r = doBody(t, http.MethodDelete, base+"/db_password", "", nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Contains(t, string(r.body), "workspace prod has no variable db_password")
	sec, _ = store.Get(context.Background(), "contoso", "prod")
	assert.Equal(t, map[string]string{"region": "northeurope"}, sec.Vars)

	for _, bad := range []struct{ name, body string }{
		{"1x", `{"value":"v"}`},
		{"x", `{"value":"v","extra":1}`},
		{"x", `not json`},
	} {
		r := put(bad.name, bad.body)
		assert.Equal(t, http.StatusBadRequest, r.status, "%s %s: %s", bad.name, bad.body, r.body)
	}
	assert.Equal(t, http.StatusNotFound, doBody(t, http.MethodPut, srv.URL+"/v1/tenants/contoso/workspaces/nope/vars/x", "application/json", []byte(`{"value":"v"}`)).status)
}

// Without a secret store a sensitive variable cannot be set; a plain one can.
func TestSensitiveVariableNeedsASecretStore(t *testing.T) {
	f := newRunsFixture(t)
	base := f.srv.URL + "/v1/tenants/contoso/workspaces/prod/vars/"
	r := doBody(t, http.MethodPut, base+"token", "application/json", []byte(`{"value":"x","sensitive":true}`))
	assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s", r.body)
	r = doBody(t, http.MethodPut, base+"size", "application/json", []byte(`{"value":"3"}`))
	assert.Equal(t, http.StatusOK, r.status, "%s", r.body)
}
