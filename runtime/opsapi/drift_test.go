package opsapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/runs"
)

func TestDriftAPI(t *testing.T) {
	f := newRunsFixture(t)
	base := f.srv.URL + "/v1/tenants/contoso/workspaces/prod/drift"
	assert.Equal(t, 403, send(t, http.MethodPut, base+"/schedule", readerKey, "application/json", []byte(`{"every":"6h"}`)).status)
	for _, bad := range []string{`{"every":"30s"}`, `{"cron":"61 * * * *"}`, `{"cron":"@daily","every":"1h"}`, `{}`, `{"every":"soon"}`} {
		r := send(t, http.MethodPut, base+"/schedule", operatorKey, "application/json", []byte(bad))
		assert.Equal(t, 400, r.status, "%s: %s", bad, r.body)
	}
	r := send(t, http.MethodPut, base+"/schedule", operatorKey, "application/json", []byte(`{"cron":"0 3 * * *"}`))
	require.Equal(t, 200, r.status, "%s", r.body)
	var st DriftStatus
	require.NoError(t, json.Unmarshal(r.body, &st))
	assert.Equal(t, "unknown", st.Status)
	require.NotNil(t, st.NextCheck)
	assert.Equal(t, "2026-11-24T03:00:00Z", st.NextCheck.Format("2006-01-02T15:04:05Z07:00"), "the next 03:00 UTC after the fixture's noon")
	assert.Equal(t, 404, send(t, http.MethodPut, f.srv.URL+"/v1/tenants/contoso/workspaces/nope/drift/schedule", operatorKey, "application/json", []byte(`{"every":"1h"}`)).status)

	// The fixture's planned run holds prod: a check now is refused.
	r = send(t, http.MethodPost, base+"/check", operatorKey, "", nil)
	assert.Equal(t, 409, r.status, "%s", r.body)
	assert.Contains(t, string(r.body), "busy with run "+f.planned)

	var list DriftList
	r = send(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/drift", readerKey, "", nil)
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Workspaces, 1)
	assert.Equal(t, "0 3 * * *", list.Workspaces[0].Schedule.Cron)
	r = send(t, http.MethodDelete, base+"/schedule", operatorKey, "", nil)
	require.Equal(t, 200, r.status)
	var removed DriftStatus
	require.NoError(t, json.Unmarshal(r.body, &removed))
	assert.Nil(t, removed.Schedule)
	assert.Nil(t, removed.NextCheck)
}

// provokeDrift makes a drift route answer with code, for the OpenAPI
// shape test.
func provokeDrift(t *testing.T, method, path, code string) ([]byte, bool) {
	t.Helper()
	f := newRunsFixture(t)
	ctx := context.Background()
	require.NoError(t, f.drift.Put(ctx, drift.State{Tenant: "contoso", Workspace: "prod", Status: drift.Drifted, CheckedAt: runsNow, CheckRun: f.cancelled,
		Resources: []drift.Resource{{Address: "x.y", Type: "x", Actions: []string{"update"}, Attributes: []drift.AttrDiff{{Name: "tags", Before: json.RawMessage(`{}`), After: json.RawMessage(`{"a":"b"}`)}}}}}))
	if method == http.MethodPost && code != "409" {
		// An idle workspace: cancel the planned run; 202 needs an applied run, 400 is without one.
		_, err := f.m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: f.planned, By: "t"})
		require.NoError(t, err)
		if code == "202" {
			applied := runs.NewRunID(runsNow)
			_, err = f.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", ID: applied, Operation: runs.OpApply, Bundle: claimFor(applied, "bundle-1.tar.gz")})
			require.NoError(t, err)
			_, err = f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
			require.NoError(t, err)
			_, err = f.m.Report(ctx, runs.Report{Tenant: "contoso", Run: applied, Agent: "a1", State: runs.Planned, Plan: claimFor(applied, "workdir.tar.gz")})
			require.NoError(t, err)
			_, err = f.m.Approve(ctx, "contoso", applied, "bob")
			require.NoError(t, err)
			_, err = f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
			require.NoError(t, err)
			_, err = f.m.Report(ctx, runs.Report{Tenant: "contoso", Run: applied, Agent: "a1", State: runs.Applied})
			require.NoError(t, err)
		}
	}
	url := f.srv.URL + strings.NewReplacer("{tenant}", "contoso", "{workspace}", "prod").Replace(path)
	return provokeRoute(t, f, method, url, code, []byte(`{"every":"6h"}`), []byte(`{"every":"1s"}`))
}
