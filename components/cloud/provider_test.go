package cloud_test

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/cloud"
	"github.com/botehq/platform/components/infratest"
)

func TestNewProviderAlwaysSetsTheEnvironment(t *testing.T) {
	for _, name := range cloud.Names() {
		t.Run(name, func(t *testing.T) {
			c, err := cloud.Lookup(name)
			require.NoError(t, err)
			rec, err := infratest.Run(t, name, nil, func(ctx *pulumi.Context) error {
				_, err := cloud.NewProvider(ctx, "azure", c, cloud.ProviderArgs{Location: "somewhere", SubscriptionID: "sub"})
				return err
			})
			require.NoError(t, err)
			ps := rec.OfType("pulumi:providers:azure-native")
			require.Len(t, ps, 1)
			assert.Equal(t, name, ps[0].Inputs["environment"])
			assert.Equal(t, "somewhere", ps[0].Inputs["location"])
			assert.Equal(t, true, ps[0].Inputs["disablePulumiPartnerId"])
		})
	}
}

func TestNewProviderRefusesAnUnknownCloud(t *testing.T) {
	rec, err := infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		_, err := cloud.NewProvider(ctx, "azure", cloud.Cloud{}, cloud.ProviderArgs{})
		return err
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, cloud.ErrUnknownCloud)
	assert.Empty(t, rec.Keys(), "no provider may be registered without a cloud")

	_, err = infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		_, err := cloud.NewProvider(ctx, "azure", cloud.Cloud{Name: "germany"}, cloud.ProviderArgs{})
		return err
	})
	assert.ErrorIs(t, err, cloud.ErrUnknownCloud)
}
