// Package azurenative and its subpackages register azure-native resources
// whose SDK modules (github.com/pulumi/pulumi-azure-native-sdk/<module>/v2)
// our module proxy does not serve: servicebus, relay, web and
// managedidentity.
//
// Each subpackage is named after the SDK module it stands in for and mirrors
// its API for the subset we use: the same constructors (NewNamespace, ...),
// the same Args struct and field names, the same type tokens
// ("azure-native:servicebus:Namespace") and output field names. Swapping in
// the real module is a change of import path; the compiler then points at
// the few places where the SDK types an enum (write
// servicebus.SkuNameStandard where we write pulumi.String("Standard")).
//
// Nested argument types here are plain structs of inputs (&SBSkuArgs{...}),
// which the SDK also accepts in that spelling, and Args types are their own
// element types: the Pulumi Go SDK marshals input-interface fields as the
// value's element type.
package azurenative

import (
	"fmt"
	"maps"
	"slices"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/azurecloud"
)

// PluginVersion is the azure-native provider version the served SDK modules
// are generated for; resources registered here ask for the same plugin.
const PluginVersion = azurecloud.ProviderVersion

// New registers a custom resource of type token with the azure-native
// provider, as the generated SDK constructors do, after checking that the
// required arguments (name -> present) are there.
func New[T any, P interface {
	*T
	pulumi.CustomResource
}](ctx *pulumi.Context, token, name string, args pulumi.Input, required map[string]bool, opts ...pulumi.ResourceOption) (P, error) {
	for _, field := range slices.Sorted(maps.Keys(required)) {
		if !required[field] {
			return nil, fmt.Errorf("cannot register %s %q: invalid value for required argument '%s'", token, name, field)
		}
	}
	res := P(new(T))
	opts = append([]pulumi.ResourceOption{pulumi.Version(PluginVersion)}, opts...)
	if err := ctx.RegisterResource(token, name, args, res, opts...); err != nil {
		return nil, fmt.Errorf("cannot register %s %q: %w", token, name, err)
	}
	return res, nil
}
