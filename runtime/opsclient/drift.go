package opsclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// Drift lists the drift state of a tenant's workspaces.
func (c *Client) Drift(ctx context.Context, tenant string) ([]opsapitypes.DriftStatus, error) {
	var list opsapitypes.DriftList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "drift"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the drift of %s: %w", tenant, err)
	}
	return list.Workspaces, nil
}

// WorkspaceDrift is one workspace's drift state with its drifted
// resources.
func (c *Client) WorkspaceDrift(ctx context.Context, tenant, workspace string) (*opsapitypes.DriftStatus, error) {
	var st opsapitypes.DriftStatus
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "workspaces", workspace, "drift"), nil, "", nil, http.StatusOK, &st); err != nil {
		return nil, fmt.Errorf("cannot read the drift of %s/%s: %w", tenant, workspace, err)
	}
	return &st, nil
}

// SetDriftSchedule sets (a zero schedule: removes) a workspace's drift
// check schedule.
func (c *Client) SetDriftSchedule(ctx context.Context, tenant, workspace string, s opsapitypes.DriftSchedule) (*opsapitypes.DriftStatus, error) {
	method, in := http.MethodPut, any(s)
	if s == (opsapitypes.DriftSchedule{}) {
		method, in = http.MethodDelete, nil
	}
	var st opsapitypes.DriftStatus
	err := c.callJSON(ctx, method, tenantPath(tenant, "workspaces", workspace, "drift", "schedule"), in, http.StatusOK, &st)
	if err != nil {
		return nil, fmt.Errorf("cannot set the drift schedule of %s/%s: %w", tenant, workspace, err)
	}
	return &st, nil
}

// CheckDrift queues a drift check of the workspace now.
func (c *Client) CheckDrift(ctx context.Context, tenant, workspace string) (*opsapitypes.DriftStatus, error) {
	var st opsapitypes.DriftStatus
	if err := c.call(ctx, c.http, http.MethodPost, tenantPath(tenant, "workspaces", workspace, "drift", "check"), nil, "", nil, http.StatusAccepted, &st); err != nil {
		return nil, fmt.Errorf("cannot check the drift of %s/%s: %w", tenant, workspace, err)
	}
	return &st, nil
}
