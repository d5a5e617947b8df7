package ids

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestValidate(t *testing.T) {
	for _, id := range []string{"a", "A", "0", "a.b", "a_b", "a-b", "a--b", "x___", "9_", strings.Repeat("Z", MaxLength), "UPPER.case_Mixed-123"} {
		assert.NoError(t, Validate("tenant", id), id)
	}
	tests := []struct{ kind, id, msg string }{
		{"tenant", "", "tenant id is empty"},
		{"workspace", "", "workspace id is empty"},
		{"connector", "-c", `connector id "-c" must start with a letter or digit`},
		{"connector", "c/d", "must start with a letter or digit"},
		{"label", "caf\u00e9", "must start with a letter or digit"},
		{"tenant", strings.Repeat("t", MaxLength+1), "is 129 characters, the limit is 128"},
	}
	for _, tt := range tests {
		err := Validate(tt.kind, tt.id)
		require.Error(t, err, "%s %q", tt.kind, tt.id)
		assert.True(t, errors.Is(err, ErrInvalid))
		assert.Contains(t, err.Error(), tt.msg)
	}
}

func TestConnectorID(t *testing.T) {
	c := ConnectorID{Tenant: "contoso", Connector: "agent-01"}
	assert.Equal(t, "contoso/agent-01", c.String())
	require.NoError(t, c.Validate())
	require.ErrorContains(t, ConnectorID{Tenant: "", Connector: "c"}.Validate(), "tenant id is empty")
	require.ErrorContains(t, ConnectorID{Tenant: "t", Connector: "c/d"}.Validate(), `connector id "c/d"`)
}

// Ids are checked where they enter (ParseConnectorID); queuename.For
// only derives names from them.
func TestParseConnectorIDRejectsInvalidIDs(t *testing.T) {
	tests := []struct{ tenant, connector, msg string }{
		{"", "c", "tenant id is empty"},
		{"t", "", "connector id is empty"},
		{"-t", "c", "must start with a letter or digit"},
		{"t", "c/d", "must start with a letter or digit"},
		{"t", "caf\u00e9", "must start with a letter or digit"},
		{strings.Repeat("t", MaxLength+1), "c", "the limit is 128"},
	}
	for _, tt := range tests {
		_, err := ParseConnectorID(tt.tenant, tt.connector)
		require.Error(t, err, "%q/%q", tt.tenant, tt.connector)
		assert.True(t, errors.Is(err, ErrInvalid))
		assert.Contains(t, err.Error(), tt.msg)
	}
}

func TestParsedIDs(t *testing.T) {
	id, err := ParseConnectorID("contoso", "agent-01")
	require.NoError(t, err)
	assert.Equal(t, ConnectorID{Tenant: "contoso", Connector: "agent-01"}, id)
	tenant, err := ParseTenantID("contoso")
	require.NoError(t, err)
	assert.Equal(t, "contoso", tenant.String())
	_, err = ParseTenantID("con/toso")
	assert.ErrorIs(t, err, ErrInvalid)
	ws, err := ParseWorkspaceID("prod")
	require.NoError(t, err)
	assert.Equal(t, "prod", ws.String())
	_, err = ParseWorkspaceID("")
	assert.ErrorContains(t, err, "workspace id is empty")
}
