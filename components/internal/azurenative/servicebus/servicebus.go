// Package servicebus stands in for
// github.com/pulumi/pulumi-azure-native-sdk/servicebus/v2 (not served by our
// module proxy): Service Bus namespaces and queues under the same type tokens
// and field names. See package azurenative.
package servicebus

import (
	"reflect"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/internal/azurenative"
)

// Namespace is azure-native:servicebus:Namespace.
type Namespace struct {
	pulumi.CustomResourceState

	Name               pulumi.StringOutput `pulumi:"name"`
	ServiceBusEndpoint pulumi.StringOutput `pulumi:"serviceBusEndpoint"`
}

// SBSkuArgs is the namespace SKU: Name "Basic", "Standard" or "Premium".
type SBSkuArgs struct {
	Name     pulumi.StringInput    `pulumi:"name"`
	Tier     pulumi.StringPtrInput `pulumi:"tier"`
	Capacity pulumi.IntPtrInput    `pulumi:"capacity"`
}

// NamespaceArgs are the arguments of NewNamespace.
type NamespaceArgs struct {
	DisableLocalAuth    pulumi.BoolPtrInput   `pulumi:"disableLocalAuth"`
	Location            pulumi.StringPtrInput `pulumi:"location"`
	MinimumTlsVersion   pulumi.StringPtrInput `pulumi:"minimumTlsVersion"`
	NamespaceName       pulumi.StringPtrInput `pulumi:"namespaceName"`
	PublicNetworkAccess pulumi.StringPtrInput `pulumi:"publicNetworkAccess"`
	ResourceGroupName   pulumi.StringInput    `pulumi:"resourceGroupName"`
	Sku                 *SBSkuArgs            `pulumi:"sku"`
	Tags                pulumi.StringMapInput `pulumi:"tags"`
	ZoneRedundant       pulumi.BoolPtrInput   `pulumi:"zoneRedundant"`
}

// ElementType implements pulumi.Input.
func (NamespaceArgs) ElementType() reflect.Type { return reflect.TypeOf((*NamespaceArgs)(nil)).Elem() }

// NewNamespace registers a Service Bus namespace.
func NewNamespace(ctx *pulumi.Context, name string, args *NamespaceArgs, opts ...pulumi.ResourceOption) (*Namespace, error) {
	if args == nil {
		args = &NamespaceArgs{}
	}
	if args.PublicNetworkAccess == nil { // the SDK constructor's default
		args.PublicNetworkAccess = pulumi.StringPtr("Enabled")
	}
	return azurenative.New[Namespace](ctx, "azure-native:servicebus:Namespace", name, args, map[string]bool{"ResourceGroupName": args.ResourceGroupName != nil}, opts...)
}

// Queue is azure-native:servicebus:Queue.
type Queue struct {
	pulumi.CustomResourceState

	Name pulumi.StringOutput `pulumi:"name"`
}

// QueueArgs are the arguments of NewQueue.
type QueueArgs struct {
	AutoDeleteOnIdle                    pulumi.StringPtrInput `pulumi:"autoDeleteOnIdle"`
	DeadLetteringOnMessageExpiration    pulumi.BoolPtrInput   `pulumi:"deadLetteringOnMessageExpiration"`
	DefaultMessageTimeToLive            pulumi.StringPtrInput `pulumi:"defaultMessageTimeToLive"`
	DuplicateDetectionHistoryTimeWindow pulumi.StringPtrInput `pulumi:"duplicateDetectionHistoryTimeWindow"`
	EnableBatchedOperations             pulumi.BoolPtrInput   `pulumi:"enableBatchedOperations"`
	EnablePartitioning                  pulumi.BoolPtrInput   `pulumi:"enablePartitioning"`
	ForwardDeadLetteredMessagesTo       pulumi.StringPtrInput `pulumi:"forwardDeadLetteredMessagesTo"`
	ForwardTo                           pulumi.StringPtrInput `pulumi:"forwardTo"`
	LockDuration                        pulumi.StringPtrInput `pulumi:"lockDuration"`
	MaxDeliveryCount                    pulumi.IntPtrInput    `pulumi:"maxDeliveryCount"`
	MaxSizeInMegabytes                  pulumi.IntPtrInput    `pulumi:"maxSizeInMegabytes"`
	NamespaceName                       pulumi.StringInput    `pulumi:"namespaceName"`
	QueueName                           pulumi.StringPtrInput `pulumi:"queueName"`
	RequiresDuplicateDetection          pulumi.BoolPtrInput   `pulumi:"requiresDuplicateDetection"`
	RequiresSession                     pulumi.BoolPtrInput   `pulumi:"requiresSession"`
	ResourceGroupName                   pulumi.StringInput    `pulumi:"resourceGroupName"`
}

// ElementType implements pulumi.Input.
func (QueueArgs) ElementType() reflect.Type { return reflect.TypeOf((*QueueArgs)(nil)).Elem() }

// NewQueue registers a Service Bus queue.
func NewQueue(ctx *pulumi.Context, name string, args *QueueArgs, opts ...pulumi.ResourceOption) (*Queue, error) {
	if args == nil {
		args = &QueueArgs{}
	}
	return azurenative.New[Queue](ctx, "azure-native:servicebus:Queue", name, args, map[string]bool{
		"NamespaceName": args.NamespaceName != nil, "ResourceGroupName": args.ResourceGroupName != nil,
	}, opts...)
}
