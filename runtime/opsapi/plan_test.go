package opsapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// fixturePlan is the planned run's plan JSON in every runs fixture.
const fixturePlan = `{"format_version":"1.2","terraform_version":"1.11.4","resource_changes":[{"address":"terraform_data.a","mode":"managed","type":"terraform_data","name":"a","change":{"actions":["create"],"before":null,"after":{"input":"x"},"after_unknown":{"id":true}}}]}`

func (f *fakeArtifacts) Open(_ context.Context, tenant ids.TenantID, c *runs.Artifact) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, ok := f.plans[c.Blob]
	if !ok || !bytes.HasPrefix([]byte(c.Blob), []byte(string(tenant)+"/")) {
		return nil, artifacts.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func TestRunPlan(t *testing.T) {
	f := newRunsFixture(t)
	r := do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/plan", readerKey)
	require.Equal(t, http.StatusOK, r.status, "%s", r.body)
	assert.JSONEq(t, fixturePlan, string(r.body), "served as the agent kept it")

	run := decode[Run](t, do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned, readerKey))
	assert.True(t, run.PlanChanges)
	require.NotNil(t, run.PlanResult.Plan)
	assert.Equal(t, 2, run.PlanResult.Plan.Add)

	r = do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+f.cancelled+"/plan", readerKey)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Contains(t, string(r.body), "has no plan to show: it is cancelled")

	r = do(t, http.MethodGet, f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/plan", nobodyKey)
	assert.Equal(t, http.StatusForbidden, r.status, "another tenant's operator")
}

func TestCreateRunWithPlanOptions(t *testing.T) {
	f := newRunsFixture(t)
	base := f.srv.URL + "/v1/tenants/contoso/workspaces/prod/runs"
	r := doBody(t, http.MethodPost, base+"?op=plan&target=terraform_data.a&target=module.net&replace=terraform_data.b", "application/gzip", []byte("bundle"))
	require.Equal(t, http.StatusAccepted, r.status, "%s", r.body)
	run := decode[Run](t, r)
	require.NotNil(t, run.PlanOptions)
	assert.Equal(t, PlanOptions{Targets: []string{"terraform_data.a", "module.net"}, Replace: []string{"terraform_data.b"}}, *run.PlanOptions)
	stored, err := f.m.GetRun(context.Background(), "contoso", run.ID)
	require.NoError(t, err)
	assert.Equal(t, []string{"terraform_data.a", "module.net"}, stored.PlanOptions.Targets)

	for _, q := range []string{"?op=plan&refresh_only=maybe", "?op=destroy&replace=x.y", "?op=plan&replace=x.y&refresh_only=true", "?op=plan&target="} {
		r := doBody(t, http.MethodPost, base+q, "application/gzip", []byte("bundle"))
		assert.Equal(t, http.StatusBadRequest, r.status, "%s: %s", q, r.body)
	}
}
