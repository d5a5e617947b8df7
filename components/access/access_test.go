package access_test

import (
	"strings"
	"testing"

	"github.com/google/uuid"
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
	return grantAs("bote-app-id", role, scope)
}

// grantAs grants role on scope to an identity with the physical name
// identityName, always under the same logical names.
func grantAs(identityName string, role access.Role, scope pulumi.StringInput) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		id, err := access.NewIdentity(ctx, "app-id", access.IdentityArgs{
			IdentityName: identityName, ResourceGroupName: pulumi.String("rg"), Location: "eastus",
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

// Azure identifies a role assignment by (scope, principal, role); its name
// must follow from exactly those, never from the logical names, which are the
// same in every stack of the project.
func TestAssignmentNameIsDerivedFromScopePrincipalAndRole(t *testing.T) {
	scopeA := "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
	scopeB := "/subscriptions/s/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/a"
	name := func(identity string, role access.Role, scope string) string {
		rec, err := infratest.Run(t, "public", nil, grantAs(identity, role, pulumi.String(scope)))
		require.NoError(t, err)
		ras := rec.OfType(infratest.RoleAssignmentType)
		require.Len(t, ras, 1)
		principal := rec.OfType("azure-native:managedidentity:UserAssignedIdentity")[0].Outputs["principalId"].(string)
		want := uuid.NewSHA1(uuid.MustParse("5d0a4c7e-3f1b-4a8e-9c2d-6b7e8f9a0b1c"),
			[]byte(strings.ToLower(scope+"|"+principal+"|"+role.ID))).String()
		require.Equal(t, want, ras[0].Inputs["roleAssignmentName"])
		return want
	}
	base := name("bote-dev-app-id", access.StorageBlobReader, scopeA)
	assert.Equal(t, base, name("bote-dev-app-id", access.StorageBlobReader, scopeA), "stable")
	assert.NotEqual(t, base, name("bote-prod-app-id", access.StorageBlobReader, scopeA), "another stack's identity")
	assert.NotEqual(t, base, name("bote-dev-app-id", access.StorageBlobReader, scopeB), "another scope")
	assert.NotEqual(t, base, name("bote-dev-app-id", access.StorageBlobContributor, scopeA), "another role")
}
