package opsclient

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// AuditQuery selects audit records. Zero fields leave the server's
// defaults: every tenant the caller may read, the last 24 hours, 100
// records.
type AuditQuery struct {
	Tenant    string
	Principal string
	Since     time.Time
	// Before is the last id of the previous page.
	Before string
	Limit  int
}

// Audit returns one page of GET /v1/audit, newest first.
func (c *Client) Audit(ctx context.Context, q AuditQuery) (*opsapitypes.AuditPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"tenant": q.Tenant, "principal": q.Principal, "before": q.Before} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var p opsapitypes.AuditPage
	if err := c.get(ctx, "/v1/audit", v, &p); err != nil {
		return nil, fmt.Errorf("cannot read the audit log: %w", err)
	}
	return &p, nil
}
