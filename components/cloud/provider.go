package cloud

import (
	"fmt"

	azurenative "github.com/pulumi/pulumi-azure-native-sdk/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// ProviderArgs are the provider settings a stack may choose. The environment
// is not among them: it always comes from the Cloud.
type ProviderArgs struct {
	// Location is the default location of resources that do not set one.
	Location string
	// SubscriptionID selects the subscription; empty leaves it to the
	// provider's usual sources (ARM_SUBSCRIPTION_ID, the Azure CLI).
	SubscriptionID string
	// TenantID selects the Entra tenant; empty as above.
	TenantID string
	// UseOIDC authenticates with workload identity federation (CI). In
	// usgovernment the federated credential's audience is
	// api://AzureADTokenExchangeUSGov; set ARM_OIDC_AUDIENCE accordingly.
	UseOIDC bool
}

// NewProvider registers the explicit azure-native provider for c. It is the
// only place the components build one, and it always sets Environment: an
// explicit provider does not read the stack's azure-native:environment and the
// SDK defaults an unset value to public Azure.
func NewProvider(ctx *pulumi.Context, name string, c Cloud, args ProviderArgs, opts ...pulumi.ResourceOption) (*azurenative.Provider, error) {
	if c.Name == "" {
		return nil, fmt.Errorf("cannot build azure-native provider %q: %w: empty cloud", name, ErrUnknownCloud)
	}
	if _, err := Lookup(c.Name); err != nil {
		return nil, fmt.Errorf("cannot build azure-native provider %q: %w", name, err)
	}
	pa := &azurenative.ProviderArgs{
		Environment: pulumi.StringPtr(c.Name),
		// Partner attribution is a call to a public endpoint we do not want
		// from sovereign clouds; nothing needs it.
		DisablePulumiPartnerId: pulumi.BoolPtr(true),
	}
	if args.Location != "" {
		pa.Location = pulumi.StringPtr(args.Location)
	}
	if args.SubscriptionID != "" {
		pa.SubscriptionId = pulumi.StringPtr(args.SubscriptionID)
	}
	if args.TenantID != "" {
		pa.TenantId = pulumi.StringPtr(args.TenantID)
	}
	if args.UseOIDC {
		pa.UseOidc = pulumi.BoolPtr(true)
	}
	p, err := azurenative.NewProvider(ctx, name, pa, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot register azure-native provider %q: %w", name, err)
	}
	return p, nil
}
