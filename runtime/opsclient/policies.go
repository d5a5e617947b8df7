package opsclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// Policies lists a tenant's policies (current versions, no sources).
func (c *Client) Policies(ctx context.Context, tenant string) ([]opsapitypes.Policy, error) {
	var list opsapitypes.PolicyList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "policies"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the policies of %s: %w", tenant, err)
	}
	return list.Policies, nil
}

// Policy returns a policy with its source: the current version, or
// version if it is not 0.
func (c *Client) Policy(ctx context.Context, tenant, name string, version int) (*opsapitypes.Policy, error) {
	var q url.Values
	if version != 0 {
		q = url.Values{"version": {strconv.Itoa(version)}}
	}
	var p opsapitypes.Policy
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "policies", name), q, "", nil, http.StatusOK, &p); err != nil {
		return nil, fmt.Errorf("cannot read policy %s of %s: %w", name, tenant, err)
	}
	return &p, nil
}

// PutPolicy uploads a new version of a policy; the server compiles it and
// refuses one that does not compile (code policy_invalid).
func (c *Client) PutPolicy(ctx context.Context, tenant, name string, req opsapitypes.PutPolicyRequest) (*opsapitypes.Policy, error) {
	var p opsapitypes.Policy
	if err := c.callJSON(ctx, http.MethodPut, tenantPath(tenant, "policies", name), req, http.StatusOK, &p); err != nil {
		return nil, fmt.Errorf("cannot store policy %s of %s: %w", name, tenant, err)
	}
	return &p, nil
}

// DeletePolicy deletes a policy (its versions are kept).
func (c *Client) DeletePolicy(ctx context.Context, tenant, name string) (*opsapitypes.Policy, error) {
	var p opsapitypes.Policy
	if err := c.call(ctx, c.http, http.MethodDelete, tenantPath(tenant, "policies", name), nil, "", nil, http.StatusOK, &p); err != nil {
		return nil, fmt.Errorf("cannot delete policy %s of %s: %w", name, tenant, err)
	}
	return &p, nil
}

// PolicyVersions lists every version of a policy, oldest first.
func (c *Client) PolicyVersions(ctx context.Context, tenant, name string) ([]opsapitypes.Policy, error) {
	var list opsapitypes.PolicyList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "policies", name, "versions"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list the versions of policy %s of %s: %w", name, tenant, err)
	}
	return list.Policies, nil
}

// ApproveOverridingPolicy approves a planned run whose plan failed
// mandatory-with-override policies (approver role; recorded in the run
// and the audit log).
func (c *Client) ApproveOverridingPolicy(ctx context.Context, tenant, runID string) (*opsapitypes.Run, error) {
	var run opsapitypes.Run
	q := url.Values{"override_policy": {"true"}}
	if err := c.call(ctx, c.http, http.MethodPost, tenantPath(tenant, "runs", runID, "approve"), q, "", nil, http.StatusOK, &run); err != nil {
		return nil, fmt.Errorf("cannot approve run %s: %w", runID, err)
	}
	return &run, nil
}
