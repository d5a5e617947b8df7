// Package relay stands in for
// github.com/pulumi/pulumi-azure-native-sdk/relay/v2 (not served by our module
// proxy): Relay namespaces, hybrid connections, their authorization rules and
// the listHybridConnectionKeys invoke, under the same type tokens and field
// names. See package azurenative.
package relay

import (
	"reflect"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/internal/azurenative"
)

// Namespace is azure-native:relay:Namespace.
type Namespace struct {
	pulumi.CustomResourceState

	Name               pulumi.StringOutput `pulumi:"name"`
	ServiceBusEndpoint pulumi.StringOutput `pulumi:"serviceBusEndpoint"`
}

// SkuArgs is the namespace SKU ("Standard").
type SkuArgs struct {
	Name pulumi.StringInput    `pulumi:"name"`
	Tier pulumi.StringPtrInput `pulumi:"tier"`
}

// NamespaceArgs are the arguments of NewNamespace.
type NamespaceArgs struct {
	Location            pulumi.StringPtrInput `pulumi:"location"`
	NamespaceName       pulumi.StringPtrInput `pulumi:"namespaceName"`
	PublicNetworkAccess pulumi.StringPtrInput `pulumi:"publicNetworkAccess"`
	ResourceGroupName   pulumi.StringInput    `pulumi:"resourceGroupName"`
	Sku                 *SkuArgs              `pulumi:"sku"`
	Tags                pulumi.StringMapInput `pulumi:"tags"`
}

// ElementType implements pulumi.Input.
func (NamespaceArgs) ElementType() reflect.Type { return reflect.TypeOf((*NamespaceArgs)(nil)).Elem() }

// NewNamespace registers a Relay namespace.
func NewNamespace(ctx *pulumi.Context, name string, args *NamespaceArgs, opts ...pulumi.ResourceOption) (*Namespace, error) {
	if args == nil {
		args = &NamespaceArgs{}
	}
	if args.PublicNetworkAccess == nil { // the SDK constructor's default
		args.PublicNetworkAccess = pulumi.StringPtr("Enabled")
	}
	return azurenative.New[Namespace](ctx, "azure-native:relay:Namespace", name, args, map[string]bool{"ResourceGroupName": args.ResourceGroupName != nil}, opts...)
}

// HybridConnection is azure-native:relay:HybridConnection.
type HybridConnection struct {
	pulumi.CustomResourceState

	Name                        pulumi.StringOutput  `pulumi:"name"`
	RequiresClientAuthorization pulumi.BoolPtrOutput `pulumi:"requiresClientAuthorization"`
}

// HybridConnectionArgs are the arguments of NewHybridConnection.
type HybridConnectionArgs struct {
	HybridConnectionName        pulumi.StringPtrInput `pulumi:"hybridConnectionName"`
	NamespaceName               pulumi.StringInput    `pulumi:"namespaceName"`
	RequiresClientAuthorization pulumi.BoolPtrInput   `pulumi:"requiresClientAuthorization"`
	ResourceGroupName           pulumi.StringInput    `pulumi:"resourceGroupName"`
	UserMetadata                pulumi.StringPtrInput `pulumi:"userMetadata"`
}

// ElementType implements pulumi.Input.
func (HybridConnectionArgs) ElementType() reflect.Type {
	return reflect.TypeOf((*HybridConnectionArgs)(nil)).Elem()
}

// NewHybridConnection registers a hybrid connection.
func NewHybridConnection(ctx *pulumi.Context, name string, args *HybridConnectionArgs, opts ...pulumi.ResourceOption) (*HybridConnection, error) {
	if args == nil {
		args = &HybridConnectionArgs{}
	}
	return azurenative.New[HybridConnection](ctx, "azure-native:relay:HybridConnection", name, args, map[string]bool{
		"NamespaceName": args.NamespaceName != nil, "ResourceGroupName": args.ResourceGroupName != nil,
	}, opts...)
}

// HybridConnectionAuthorizationRule is
// azure-native:relay:HybridConnectionAuthorizationRule.
type HybridConnectionAuthorizationRule struct {
	pulumi.CustomResourceState

	Name   pulumi.StringOutput      `pulumi:"name"`
	Rights pulumi.StringArrayOutput `pulumi:"rights"`
}

// HybridConnectionAuthorizationRuleArgs are the arguments of
// NewHybridConnectionAuthorizationRule. Rights are "Listen", "Send",
// "Manage".
type HybridConnectionAuthorizationRuleArgs struct {
	AuthorizationRuleName pulumi.StringPtrInput   `pulumi:"authorizationRuleName"`
	HybridConnectionName  pulumi.StringInput      `pulumi:"hybridConnectionName"`
	NamespaceName         pulumi.StringInput      `pulumi:"namespaceName"`
	ResourceGroupName     pulumi.StringInput      `pulumi:"resourceGroupName"`
	Rights                pulumi.StringArrayInput `pulumi:"rights"`
}

// ElementType implements pulumi.Input.
func (HybridConnectionAuthorizationRuleArgs) ElementType() reflect.Type {
	return reflect.TypeOf((*HybridConnectionAuthorizationRuleArgs)(nil)).Elem()
}

// NewHybridConnectionAuthorizationRule registers an authorization rule on a
// hybrid connection.
func NewHybridConnectionAuthorizationRule(ctx *pulumi.Context, name string, args *HybridConnectionAuthorizationRuleArgs, opts ...pulumi.ResourceOption) (*HybridConnectionAuthorizationRule, error) {
	if args == nil {
		args = &HybridConnectionAuthorizationRuleArgs{}
	}
	return azurenative.New[HybridConnectionAuthorizationRule](ctx, "azure-native:relay:HybridConnectionAuthorizationRule", name, args, map[string]bool{
		"HybridConnectionName": args.HybridConnectionName != nil, "NamespaceName": args.NamespaceName != nil,
		"ResourceGroupName": args.ResourceGroupName != nil, "Rights": args.Rights != nil,
	}, opts...)
}

// ListHybridConnectionKeysOutputArgs are the arguments of
// ListHybridConnectionKeysOutput.
type ListHybridConnectionKeysOutputArgs struct {
	AuthorizationRuleName pulumi.StringInput `pulumi:"authorizationRuleName"`
	HybridConnectionName  pulumi.StringInput `pulumi:"hybridConnectionName"`
	NamespaceName         pulumi.StringInput `pulumi:"namespaceName"`
	ResourceGroupName     pulumi.StringInput `pulumi:"resourceGroupName"`
}

// ElementType implements pulumi.Input.
func (ListHybridConnectionKeysOutputArgs) ElementType() reflect.Type {
	return reflect.TypeOf((*ListHybridConnectionKeysOutputArgs)(nil)).Elem()
}

// ListHybridConnectionKeysResult holds an authorization rule's keys.
type ListHybridConnectionKeysResult struct {
	KeyName                   *string `pulumi:"keyName"`
	PrimaryConnectionString   *string `pulumi:"primaryConnectionString"`
	PrimaryKey                *string `pulumi:"primaryKey"`
	SecondaryConnectionString *string `pulumi:"secondaryConnectionString"`
	SecondaryKey              *string `pulumi:"secondaryKey"`
}

// ListHybridConnectionKeysResultOutput is the output form of
// ListHybridConnectionKeysResult.
type ListHybridConnectionKeysResultOutput struct{ *pulumi.OutputState }

// ElementType implements pulumi.Output.
func (ListHybridConnectionKeysResultOutput) ElementType() reflect.Type {
	return reflect.TypeOf((*ListHybridConnectionKeysResult)(nil)).Elem()
}

// KeyName is the rule's name.
func (o ListHybridConnectionKeysResultOutput) KeyName() pulumi.StringPtrOutput {
	return o.ApplyT(func(v ListHybridConnectionKeysResult) *string { return v.KeyName }).(pulumi.StringPtrOutput)
}

// PrimaryKey is the rule's primary SAS key.
func (o ListHybridConnectionKeysResultOutput) PrimaryKey() pulumi.StringPtrOutput {
	return o.ApplyT(func(v ListHybridConnectionKeysResult) *string { return v.PrimaryKey }).(pulumi.StringPtrOutput)
}

// PrimaryConnectionString is the rule's primary connection string.
func (o ListHybridConnectionKeysResultOutput) PrimaryConnectionString() pulumi.StringPtrOutput {
	return o.ApplyT(func(v ListHybridConnectionKeysResult) *string { return v.PrimaryConnectionString }).(pulumi.StringPtrOutput)
}

// ListHybridConnectionKeysOutput invokes
// azure-native:relay:listHybridConnectionKeys. The result is secret.
func ListHybridConnectionKeysOutput(ctx *pulumi.Context, args ListHybridConnectionKeysOutputArgs, opts ...pulumi.InvokeOption) ListHybridConnectionKeysResultOutput {
	opts = append([]pulumi.InvokeOption{pulumi.Version(azurenative.PluginVersion)}, opts...)
	out := ctx.InvokeOutput("azure-native:relay:listHybridConnectionKeys", args,
		ListHybridConnectionKeysResultOutput{}, pulumi.InvokeOutputOptions{InvokeOptions: opts})
	return pulumi.ToSecret(out).(ListHybridConnectionKeysResultOutput)
}

func init() {
	pulumi.RegisterOutputType(ListHybridConnectionKeysResultOutput{})
}
