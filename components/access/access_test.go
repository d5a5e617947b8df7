package access_test

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/infratest"
)

func TestCheckScope(t *testing.T) {
	tests := []struct {
		scope, sub string // sub "" = refused
	}{
		{"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ServiceBus/namespaces/ns/queues/q", "s1"},
		{"/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a/queueServices/default", "s1"},
		{"/subscriptions/s1/resourceGroups/rg", ""},
		{"/subscriptions/s1/resourceGroups/rg/", ""},
		{"/subscriptions/s1", ""},
		{"/", ""},
		{"", ""},
		{"/providers/Microsoft.Management/managementGroups/mg", ""},
		{"/subscriptions//resourceGroups/rg/providers/x/y/z", ""},
	}
	for _, tt := range tests {
		sub, err := access.CheckScope(tt.scope)
		if tt.sub == "" {
			assert.ErrorIs(t, err, access.ErrScopeTooBroad, tt.scope)
			continue
		}
		require.NoError(t, err, tt.scope)
		assert.Equal(t, tt.sub, sub)
	}
}

func TestRoles(t *testing.T) {
	for _, r := range access.Grantable() {
		got, ok := access.RoleByID(r.ID)
		assert.True(t, ok)
		assert.Equal(t, r, got)
	}
	for _, r := range []access.Role{access.Owner, access.Contributor, access.UserAccessAdministrator} {
		_, ok := access.RoleByID(r.ID)
		assert.False(t, ok, "%s must not be grantable", r.Name)
	}
}

func grantProgram(role access.Role, scope pulumi.StringInput) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		id, err := access.NewIdentity(ctx, "app-id", access.IdentityArgs{
			IdentityName: "bote-app-id", ResourceGroupName: pulumi.String("rg"), Location: "eastus",
		})
		if err != nil {
			return err
		}
		_, err = id.Grant(ctx, role, access.Scope{Name: "target", ID: scope})
		return err
	}
}

func TestGrantRefusesPrivilegedRolesAndBroadScopes(t *testing.T) {
	rg := pulumi.String("/subscriptions/s/resourceGroups/rg")
	one := pulumi.String("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a")

	_, err := infratest.Run(t, "public", nil, grantProgram(access.Owner, one))
	assert.ErrorIs(t, err, access.ErrForbiddenRole)
	_, err = infratest.Run(t, "public", nil, grantProgram(access.Contributor, one))
	assert.ErrorIs(t, err, access.ErrForbiddenRole)

	_, err = infratest.Run(t, "public", nil, grantProgram(access.StorageBlobReader, rg))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "role assignment scope is broader than one resource")

	rec, err := infratest.Run(t, "public", nil, grantProgram(access.StorageBlobReader, one))
	require.NoError(t, err)
	ras := rec.OfType(infratest.RoleAssignmentType)
	require.Len(t, ras, 1)
	assert.Equal(t, "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"+access.StorageBlobReader.ID, ras[0].Inputs["roleDefinitionId"])
	assert.Regexp(t, `^[0-9a-f-]{36}$`, ras[0].Inputs["roleAssignmentName"])

	again, err := infratest.Run(t, "public", nil, grantProgram(access.StorageBlobReader, one))
	require.NoError(t, err)
	assert.Equal(t, ras[0].Inputs["roleAssignmentName"], again.OfType(infratest.RoleAssignmentType)[0].Inputs["roleAssignmentName"], "names are stable")
}
