package opsapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// Kept states of contoso/prod in every runs fixture: an older version and
// the current one, whose bytes end without a newline on purpose.
var (
	oldState     = []byte("{\"version\":4,\"serial\":1}\n")
	currentState = []byte(`{"version":4,"serial":2,"lineage":"x"}`)
	stateVersion = regexp.MustCompile(`^run-[0-9a-v]{16}-c[0-9]+$`)
)

func (f *fakeArtifacts) StateVersions(_ context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) ([]artifacts.StateVersion, error) {
	if tenant != "contoso" || workspace != "prod" {
		return nil, nil
	}
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return []artifacts.StateVersion{
		{Version: "run-0000000000000002-c5", Run: "run-0000000000000002", Claim: "5", Size: int64(len(currentState)), Created: at.Add(time.Hour), Current: true},
		{Version: "run-0000000000000001-c5", Run: "run-0000000000000001", Claim: "5", Size: int64(len(oldState)), Created: at},
	}, nil
}

func (f *fakeArtifacts) OpenState(_ context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, version string) ([]byte, error) {
	if version != "" && version != artifacts.CurrentVersion && !stateVersion.MatchString(version) {
		return nil, fmt.Errorf("%w: state version %q is not a version id", runs.ErrInvalid, version)
	}
	switch {
	case tenant != "contoso" || workspace != "prod":
	case version == "" || version == artifacts.CurrentVersion || version == "run-0000000000000002-c5":
		return currentState, nil
	case version == "run-0000000000000001-c5":
		return oldState, nil
	}
	return nil, artifacts.ErrNotFound
}

func (f *fakeArtifacts) RestoreState(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, version string) (artifacts.StateVersion, error) {
	if _, err := f.OpenState(ctx, "contoso", "prod", version); err != nil || version == "" {
		return artifacts.StateVersion{}, err
	}
	return artifacts.StateVersion{Version: version, Run: version[:20], Claim: "5", Size: int64(len(oldState)), Current: true}, nil
}

func TestStateVersionsAndPull(t *testing.T) {
	f := newRunsFixture(t)
	base := f.srv.URL + "/v1/tenants/contoso/workspaces/prod/state"

	r := do(t, http.MethodGet, base+"/versions", readerKey)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	list := decode[StateVersionList](t, r)
	require.Len(t, list.Versions, 2)
	assert.True(t, list.Versions[0].Current)
	assert.Equal(t, "run-0000000000000001-c5", list.Versions[1].Version)

	r = do(t, http.MethodGet, base, operatorKey)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.Equal(t, currentState, r.body, "byte for byte")
	assert.Equal(t, "current", r.header.Get(HeaderStateVersion))
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Len(t, r.header.Get(HeaderStateSHA256), 64)

	r = do(t, http.MethodGet, base+"?version=run-0000000000000001-c5", operatorKey)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, oldState, r.body)

	tests := []struct {
		name, url, cred string
		status          int
		msg             string
	}{
		{"a reader cannot read a state (it holds secrets)", base, readerKey, http.StatusForbidden, "needs the operator role in tenant contoso"},
		{"another tenant's operator cannot list", f.srv.URL + "/v1/tenants/contoso/workspaces/prod/state/versions", nobodyKey, http.StatusForbidden, "reader role"},
		{"unknown workspace", f.srv.URL + "/v1/tenants/contoso/workspaces/nope/state/versions", readerKey, http.StatusNotFound, "tenant contoso has no workspace nope"},
		{"unknown version", base + "?version=run-0000000000000009-c5", operatorKey, http.StatusNotFound, "has no state version run-0000000000000009-c5"},
		{"malformed version", base + "?version=../../other/state", operatorKey, http.StatusBadRequest, "is not a version id"},
		{"bad workspace id", f.srv.URL + "/v1/tenants/contoso/workspaces/-bad/state", operatorKey, http.StatusBadRequest, "workspace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, http.MethodGet, tt.url, tt.cred)
			require.Equal(t, tt.status, r.status, "%s", r.body)
			var body ErrorBody
			require.NoError(t, json.Unmarshal(r.body, &body))
			assert.Contains(t, body.Error.Message, tt.msg)
		})
	}

	// A workspace without any state yet.
	_, err := f.m.CreateWorkspace(context.Background(), runs.Workspace{Tenant: "contoso", Name: "fresh"})
	require.NoError(t, err)
	r = do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/workspaces/fresh/state/versions", readerKey)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"versions":[]}`, string(r.body))
	r = do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/workspaces/fresh/state", operatorKey)
	require.Equal(t, http.StatusNotFound, r.status)
	assert.Contains(t, string(r.body), "has no state yet")
}

// TestStateReadsAreAudited: reading a state hands out its secrets, so it
// is recorded like a mutation; listing versions is not.
func TestStateReadsAreAudited(t *testing.T) {
	f := newRunsFixture(t)
	log := &fakeAudit{}
	f.s.cfg.Audit = log
	r := do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/workspaces/prod/state/versions", operatorKey)
	require.Equal(t, http.StatusOK, r.status)
	assert.Empty(t, log.take())
	r = do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/workspaces/prod/state?version=run-0000000000000001-c5", operatorKey)
	require.Equal(t, http.StatusOK, r.status)
	got := log.take()
	require.Len(t, got, 1)
	assert.Equal(t, "GET /v1/tenants/{tenant}/workspaces/{workspace}/state", got[0].Action)
	assert.Equal(t, "/v1/tenants/contoso/workspaces/prod/state?version=run-0000000000000001-c5", got[0].Object)
	assert.Equal(t, "api-key:operator", got[0].Principal)
	assert.Equal(t, "contoso", got[0].Tenant)
	assert.Equal(t, 200, got[0].Status)
}

func TestStateRollback(t *testing.T) {
	f := newRunsFixture(t)
	_, err := f.m.CreateWorkspace(context.Background(), runs.Workspace{Tenant: "contoso", Name: "idle"})
	require.NoError(t, err)
	_, err = f.m.CreateWorkspace(context.Background(), runs.Workspace{Tenant: "contoso", Name: "guarded", Options: runs.Options{FourEyes: true}})
	require.NoError(t, err)
	url := func(ws string) string { return f.srv.URL + "/v1/tenants/contoso/workspaces/" + ws + "/state/rollback" }
	body := []byte(`{"version":"run-0000000000000001-c5"}`)

	r := send(t, http.MethodPost, url("idle"), approverKey, "application/json", body)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	v := decode[StateVersion](t, r)
	assert.Equal(t, "run-0000000000000001-c5", v.Version)
	assert.True(t, v.Current)

	tests := []struct {
		name, url, cred string
		body            string
		status          int
		msg             string
	}{
		{"a run holds the workspace", url("prod"), approverKey, string(body), http.StatusConflict, "is held by run " + f.planned + " (planned)"},
		{"an operator may not", url("idle"), operatorKey, string(body), http.StatusForbidden, "needs the approver role"},
		{"no version", url("idle"), approverKey, `{}`, http.StatusBadRequest, "version is required"},
		{"unknown field", url("idle"), approverKey, `{"version":"run-0000000000000001-c5","force":true}`, http.StatusBadRequest, "unknown field"},
		{"malformed version", url("idle"), approverKey, `{"version":"../x"}`, http.StatusBadRequest, "is not a version id"},
		{"unknown version", url("idle"), approverKey, `{"version":"run-0000000000000009-c5"}`, http.StatusNotFound, "has no state version run-0000000000000009-c5"},
		{"unknown workspace", url("nope"), approverKey, string(body), http.StatusNotFound, "has no workspace nope"},
		// One approver alone would change what the next plan builds on,
		// which four-eyes makes take two people.
		{"four-eyes: an approver may not", url("guarded"), approverKey, string(body), http.StatusForbidden, "four-eyes workspace guarded"},
		{"four-eyes: an admin may", url("guarded"), goodKey, string(body), http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := send(t, http.MethodPost, tt.url, tt.cred, "application/json", []byte(tt.body))
			require.Equal(t, tt.status, r.status, "%s", r.body)
			if tt.status == http.StatusOK {
				return
			}
			var eb ErrorBody
			require.NoError(t, json.Unmarshal(r.body, &eb))
			assert.Contains(t, eb.Error.Message, tt.msg)
			if tt.status == http.StatusForbidden && strings.Contains(tt.name, "four-eyes") {
				assert.Equal(t, ReasonAdminRequired, eb.Error.Reason)
			}
		})
	}
}
