package opsapi

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runs"
)

// TestListTenants: each principal sees the tenants of the server it holds
// a role in, with that role; an admin sees every one; a granted tenant the
// server does not know is not listed.
func TestListTenants(t *testing.T) {
	f := newRunsFixture(t)
	_, err := f.m.CreateTenant(context.Background(), runs.Tenant{ID: "globex"})
	require.NoError(t, err)
	tests := []struct {
		key  string
		want []Tenant
	}{
		{goodKey, []Tenant{{ID: "contoso", Role: "approver"}, {ID: "globex", Role: "approver"}}},
		{readerKey, []Tenant{{ID: "contoso", Role: "reader"}}},
		{operatorKey, []Tenant{{ID: "contoso", Role: "operator"}}}, // fabrikam is granted but not on this server
		{nobodyKey, []Tenant{}},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			r := do(t, "GET", f.srv.URL+"/v1/tenants", tt.key)
			require.Equal(t, 200, r.status, string(r.body))
			var list TenantList
			require.NoError(t, json.Unmarshal(r.body, &list))
			for i := range list.Tenants {
				assert.False(t, list.Tenants[i].CreatedAt.IsZero(), "created_at")
				list.Tenants[i].CreatedAt = time.Time{}
			}
			assert.Equal(t, tt.want, list.Tenants)
		})
	}
}
