package infratest

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Token of the azure-native role assignment.
const RoleAssignmentType = "azure-native:authorization:RoleAssignment"

// AssertParented fails for any resource registered at the stack root other
// than those listed (the provider, the resource group, the components the
// program creates).
func AssertParented(t testing.TB, rec *Recording, rootAllowed ...string) {
	t.Helper()
	for _, r := range rec.Resources() {
		if r.Parent == "" && !slices.Contains(rootAllowed, r.Key()) {
			t.Errorf("%s is registered at the stack root; every child must be parented to its component", r.Key())
		}
	}
}

// AssertExplicitProvider fails for any azure-native resource not using the
// named explicit provider (a forgotten provider would fall back to a default
// provider, i.e. public Azure).
func AssertExplicitProvider(t testing.TB, rec *Recording, provider string) {
	t.Helper()
	want := "pulumi:providers:azure-native::" + provider
	for _, r := range rec.Resources() {
		if !r.Custom || !strings.HasPrefix(r.Type, "azure-native:") {
			continue
		}
		// Children inherit the provider from their component; the SDK
		// sends it explicitly on each registration.
		assert.Equal(t, want, r.Provider, "%s must use the explicit azure-native provider", r.Key())
	}
}

// Grant is one role assignment as a test sees it.
type Grant struct {
	Identity string // physical name of the managed identity
	Role     string // role definition GUID
	Scope    string // "type::name" of the resource, plus any sub-path
}

func (g Grant) String() string { return g.Identity + " " + g.Role + " " + g.Scope }

// Grants resolves every role assignment to (identity, role, scope resource).
// It fails the test for a principal that is not a recorded identity, a scope
// that is not a recorded resource (or a sub-path of one), or a role
// definition outside the subscription's built-in roles.
func (rec *Recording) Grants(t testing.TB) []Grant {
	t.Helper()
	byPrincipal := map[string]string{}
	for _, r := range rec.OfType("azure-native:managedidentity:UserAssignedIdentity") {
		byPrincipal[fmt.Sprint(r.Outputs["principalId"])] = fmt.Sprint(r.Outputs["name"])
	}
	resources := rec.Resources()
	var out []Grant
	for _, ra := range rec.OfType(RoleAssignmentType) {
		principal := fmt.Sprint(ra.Inputs["principalId"])
		identity, ok := byPrincipal[principal]
		require.True(t, ok, "%s: principal %s is not one of our identities", ra.Key(), principal)
		assert.Equal(t, "ServicePrincipal", ra.Inputs["principalType"], ra.Key())
		roleDef := fmt.Sprint(ra.Inputs["roleDefinitionId"])
		prefix := "/subscriptions/" + SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/"
		require.True(t, strings.HasPrefix(roleDef, prefix), "%s: role definition %s", ra.Key(), roleDef)
		scope := fmt.Sprint(ra.Inputs["scope"])
		// The most specific resource the scope names or lies below, as
		// "type::physical name[/sub/path]".
		var target, matched string
		for _, r := range resources {
			if r.ID != "" && r.Custom && len(r.ID) > len(matched) && (scope == r.ID || strings.HasPrefix(scope, r.ID+"/")) {
				matched = r.ID
				target = r.Type + "::" + fmt.Sprint(r.Outputs["name"]) + strings.TrimPrefix(scope, r.ID)
			}
		}
		require.NotEmpty(t, target, "%s: scope %s is not one of the stack's resources", ra.Key(), scope)
		require.NotContains(t, target, "azure-native:resources:ResourceGroup::", "%s: resource-group scope", ra.Key())
		out = append(out, Grant{Identity: identity, Role: strings.TrimPrefix(roleDef, prefix), Scope: target})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// AppSettings returns an app's environment: a web app's app settings or a
// container app's (first container's) env; a Container Apps secret
// reference renders as "secretref:<name>".
func AppSettings(t testing.TB, app Resource) map[string]string {
	t.Helper()
	out := map[string]string{}
	var list []any
	switch BaseType(app.Type) {
	case "azure-native:web:WebApp":
		list, _ = app.Inputs["siteConfig"].(map[string]any)["appSettings"].([]any)
	case "azure-native:app:ContainerApp":
		containers, _ := app.Inputs["template"].(map[string]any)["containers"].([]any)
		require.NotEmpty(t, containers, app.Key())
		list, _ = containers[0].(map[string]any)["env"].([]any)
	default:
		t.Fatalf("%s is not an app", app.Key())
	}
	for _, e := range list {
		e := e.(map[string]any)
		v, _ := e["value"].(string)
		if ref, ok := e["secretRef"].(string); ok {
			v = "secretref:" + ref
		}
		out[e["name"].(string)] = v
	}
	return out
}
