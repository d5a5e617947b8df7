package opsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfresult"
)

const memPlan = `{"format_version":"1.2","resource_changes":[{"address":"terraform_data.a","change":{"actions":["create"],"before":null,"after":{"n":12345678901234567890}}}]}`

func (m *memArtifacts) Open(_ context.Context, _ ids.TenantID, c *runs.Artifact) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader([]byte(memPlan))), nil
}

func TestPlan(t *testing.T) {
	c, m, _ := newRunsServer(t)
	ctx := context.Background()
	_, err := c.CreateWorkspace(ctx, "contoso", opsapi.CreateWorkspaceRequest{Name: "prod"})
	require.NoError(t, err)
	run, err := c.CreateRun(ctx, "contoso", "prod", OpPlan, "", strings.NewReader("bundle"))
	require.NoError(t, err)

	_, err = c.Plan(ctx, "contoso", run.ID)
	assert.True(t, IsNotFound(err), "no plan yet: %v", err)

	_, err = m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 1})
	require.NoError(t, err)
	_, err = m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	_, err = m.Report(ctx, runs.Report{Tenant: "contoso", Run: run.ID, Agent: "a1", State: runs.Planned, Result: &tfresult.Result{HasChanges: true},
		Plan:     &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/" + run.ID + "/workdir-1.tar.gz", Size: 1, SHA256: strings.Repeat("a", 64)},
		PlanJSON: &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/" + run.ID + "/plan-1.json", Size: int64(len(memPlan)), SHA256: strings.Repeat("b", 64)}})
	require.NoError(t, err)

	p, err := c.Plan(ctx, "contoso", run.ID)
	require.NoError(t, err)
	require.Len(t, p.ResourceChanges, 1)
	after := p.ResourceChanges[0].Change.After.(map[string]any)
	assert.Equal(t, json.Number("12345678901234567890"), after["n"], "numbers stay exact")
}
