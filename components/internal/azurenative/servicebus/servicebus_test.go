package servicebus

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/infratest"
)

// The stand-in registers the SDK's type token with the SDK's property
// names, nested arguments included, and refuses missing required
// arguments as the SDK does.
func TestRegistersLikeTheSDK(t *testing.T) {
	rec, err := infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		ns, err := NewNamespace(ctx, "ns", &NamespaceArgs{
			ResourceGroupName: pulumi.String("rg"), NamespaceName: pulumi.String("bote-bus"),
			Sku: &SBSkuArgs{Name: pulumi.String("Premium"), Capacity: pulumi.Int(1)},
		})
		if err != nil {
			return err
		}
		_, err = NewQueue(ctx, "q", &QueueArgs{ResourceGroupName: pulumi.String("rg"), NamespaceName: ns.Name, MaxDeliveryCount: pulumi.Int(5)})
		return err
	})
	require.NoError(t, err)
	ns := rec.OfType("azure-native:servicebus:Namespace")
	require.Len(t, ns, 1)
	assert.Equal(t, map[string]any{"name": "Premium", "capacity": 1.0}, ns[0].Inputs["sku"])
	assert.Equal(t, "https://bote-bus.servicebus.windows.net:443/", ns[0].Outputs["serviceBusEndpoint"])
	q := rec.OfType("azure-native:servicebus:Queue")
	require.Len(t, q, 1)
	assert.Equal(t, "bote-bus", q[0].Inputs["namespaceName"])
	assert.Equal(t, 5.0, q[0].Inputs["maxDeliveryCount"])

	_, err = infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		_, err := NewQueue(ctx, "q", &QueueArgs{ResourceGroupName: pulumi.String("rg")})
		return err
	})
	assert.ErrorContains(t, err, "azure-native:servicebus:Queue \"q\": invalid value for required argument 'NamespaceName'")
}
