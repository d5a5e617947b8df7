package envelope

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckConnectorHeaders(t *testing.T) {
	tests := []struct {
		name     string
		headers  map[string]string
		reserved bool
		want     string
	}{
		{"none", nil, false, ""},
		{"application headers", map[string]string{"type": "ping", "x-trace": "1", "content-language": "de"}, false, ""},
		{"bote tenant", map[string]string{HeaderTenant: "other"}, true, "bote-tenant"},
		{"bote prefix any case", map[string]string{"Bote-Anything": "1"}, true, "Bote-Anything"},
		{"plain tenant", map[string]string{"Tenant": "b"}, true, "Tenant"},
		{"x-tenant-id", map[string]string{"X-Tenant-Id": "b"}, true, "X-Tenant-Id"},
		{"tenant_id", map[string]string{"tenant_id": "b"}, true, "tenant_id"},
		{"connector.id", map[string]string{"connector.id": "b"}, true, "connector.id"},
		{"from", map[string]string{"from": "b"}, true, "from"},
		{"topic", map[string]string{"topic": "b"}, true, "topic"},
		{"several sorted", map[string]string{"tenant": "b", "bote-from": "c", "ok": "1"}, true, "bote-from, tenant"},
		{"tenantname is fine", map[string]string{"tenantname": "display only"}, false, ""},
		// Many servers (nginx with underscores_in_headers, CGI, WSGI, Rack)
		// treat '_' like '-', and some map '.' too: every separator variant
		// of a reserved name is reserved.
		{"bote_from", map[string]string{"bote_from": "b"}, true, "bote_from"},
		{"Bote_Tenant", map[string]string{"Bote_Tenant": "b"}, true, "Bote_Tenant"},
		{"bote.connector", map[string]string{"bote.connector": "b"}, true, "bote.connector"},
		{"BOTE__KIND", map[string]string{"BOTE__KIND": "b"}, true, "BOTE__KIND"},
		{"botefrom", map[string]string{"botefrom": "b"}, true, "botefrom"},
		{"_bote-from", map[string]string{"_bote-from": "b"}, true, "_bote-from"},
		{"x_tenant_id", map[string]string{"x_tenant_id": "b"}, true, "x_tenant_id"},
		{"X.Connector.Id", map[string]string{"X.Connector.Id": "b"}, true, "X.Connector.Id"},
		{"XTenantId", map[string]string{"XTenantId": "b"}, true, "XTenantId"},
		{"x_from", map[string]string{"x_from": "b"}, true, "x_from"},
		{"trace_id is fine", map[string]string{"trace_id": "1", "x_request.id": "2"}, false, ""},
		{"empty name", map[string]string{"": "x"}, false, "name"},
		{"space in name", map[string]string{"a b": "x"}, false, "contains"},
		{"too many", manyHeaders(MaxHeaders + 1), false, "limit"},
		{"too large", map[string]string{"big": strings.Repeat("x", MaxHeaderBytes)}, false, "bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckConnectorHeaders(tt.headers)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, tt.reserved, errors.Is(err, ErrReservedHeader))
		})
	}
}

func manyHeaders(n int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h["h"+strings.Repeat("x", i)] = ""
	}
	return h
}
