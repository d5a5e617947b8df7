package azurecloud

import (
	"fmt"
	"slices"
	"strings"

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

// ProviderVersion is the azure-native provider version the program runs
// with: the version of the SDK modules (and stand-ins) it is built against.
const ProviderVersion = "2.90.0"

// ProviderIssue is a known defect of the azure-native provider in some
// clouds that a deployment would hit.
type ProviderIssue struct {
	// ID names the issue: "pulumi-azure-native#4815".
	ID string
	// Clouds it affects.
	Clouds []string
	// Affects reports whether a provider version has the defect.
	Affects func(version string) bool
	// What goes wrong, and Check what to verify after `pulumi up` when an
	// operator accepts it.
	What, Check string
}

func major(version string) string { m, _, _ := strings.Cut(version, "."); return m }

// ProviderIssues are the known defects (docs/infrastructure.md, "Known
// risks to check before the first Gov deployment").
var ProviderIssues = []ProviderIssue{
	{
		ID: "pulumi-azure-native#4815", Clouds: []string{"usgovernment", "china"},
		// Fixed in the v3 line only; no v2 release has the fix.
		Affects: func(v string) bool { return major(v) == "2" },
		What:    "the provider's role assignment implementation builds its ARM client without the cloud's endpoints and calls public-cloud ARM (management.azure.com)",
		Check:   "every azure-native:authorization:RoleAssignment of the stack exists in the sovereign subscription: az role assignment list --all --assignee <principal id of each app identity> (or create them out of band with az role assignment create)",
	},
	{
		ID: "pulumi-azure-native#3991", Clouds: []string{"usgovernment", "china"},
		// Fixed in 2025-03; whether 2.90.0 carries the fix is not
		// verified, so v2 is treated as affected.
		Affects: func(v string) bool { return major(v) == "2" },
		What:    "blob creation looked up the storage account key through public-cloud endpoints",
		Check:   "the connector registry blob exists: az storage blob list --account-name <storageAccount> -c bote-registry --auth-mode login",
	},
}

// Preflight refuses to deploy with a provider version that has known
// defects in cloud c, unless each is in accepted (an operator who has read
// the issue and will run its Check). The error names the issues.
func Preflight(c Cloud, version string, accepted []string) error {
	var open []string
	for _, is := range ProviderIssues {
		if !slices.Contains(is.Clouds, c.Name) || !is.Affects(version) || slices.Contains(accepted, is.ID) {
			continue
		}
		open = append(open, fmt.Sprintf("%s: %s; after accepting it, check %s", is.ID, is.What, is.Check))
	}
	if len(open) > 0 {
		return fmt.Errorf("azure-native %s has known defects in the %s cloud (accept each by listing its id once verified):\n  %s",
			version, c.Name, strings.Join(open, "\n  "))
	}
	return nil
}
