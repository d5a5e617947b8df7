package opsclient

import (
	"context"
	"fmt"
	"net/http"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// Vars lists a workspace's input variables (sensitive ones without their
// values).
func (c *Client) Vars(ctx context.Context, tenant, workspace string) ([]opsapitypes.Variable, error) {
	var list opsapitypes.VariableList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "workspaces", workspace, "vars"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the variables of %s/%s: %w", tenant, workspace, err)
	}
	return list.Vars, nil
}

// SetVar sets a workspace variable; a sensitive one is kept in the
// server's secret store and never shown again.
func (c *Client) SetVar(ctx context.Context, tenant, workspace, name, value string, sensitive bool) (*opsapitypes.Variable, error) {
	var v opsapitypes.Variable
	if err := c.callJSON(ctx, http.MethodPut, tenantPath(tenant, "workspaces", workspace, "vars", name), opsapitypes.SetVariableRequest{Value: value, Sensitive: sensitive}, http.StatusOK, &v); err != nil {
		return nil, fmt.Errorf("cannot set variable %s of %s/%s: %w", name, tenant, workspace, err)
	}
	return &v, nil
}

// UnsetVar removes a workspace variable and says which it was.
func (c *Client) UnsetVar(ctx context.Context, tenant, workspace, name string) (*opsapitypes.Variable, error) {
	var v opsapitypes.Variable
	if err := c.call(ctx, c.http, http.MethodDelete, tenantPath(tenant, "workspaces", workspace, "vars", name), nil, "", nil, http.StatusOK, &v); err != nil {
		return nil, fmt.Errorf("cannot unset variable %s of %s/%s: %w", name, tenant, workspace, err)
	}
	return &v, nil
}
