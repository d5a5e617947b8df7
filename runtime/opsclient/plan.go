package opsclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	tfjson "github.com/hashicorp/terraform-json"
)

// Plan returns a run's saved plan (GET .../runs/{run}/plan): Terraform's
// JSON plan with sensitive values masked, numbers kept exact. A run
// without one answers 404 (IsNotFound).
func (c *Client) Plan(ctx context.Context, tenant, runID string) (*tfjson.Plan, error) {
	var raw json.RawMessage
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "runs", runID, "plan"), nil, "", nil, http.StatusOK, &raw); err != nil {
		return nil, fmt.Errorf("cannot get the plan of run %s: %w", runID, err)
	}
	var p tfjson.Plan
	p.UseJSONNumber(true)
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("cannot read the plan of run %s: %w", runID, err)
	}
	return &p, nil
}
