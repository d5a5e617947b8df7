package azurecloud_test

import (
	"os"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/infratest"
)

func TestNewProviderAlwaysSetsTheEnvironment(t *testing.T) {
	for _, name := range azurecloud.Names() {
		t.Run(name, func(t *testing.T) {
			c, err := azurecloud.Lookup(name)
			require.NoError(t, err)
			rec, err := infratest.Run(t, name, nil, func(ctx *pulumi.Context) error {
				_, err := azurecloud.NewProvider(ctx, "azure", c, azurecloud.ProviderArgs{Location: "somewhere", SubscriptionID: "sub"})
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
		_, err := azurecloud.NewProvider(ctx, "azure", azurecloud.Cloud{}, azurecloud.ProviderArgs{})
		return err
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, azurecloud.ErrUnknownCloud)
	assert.Empty(t, rec.Keys(), "no provider may be registered without a cloud")

	_, err = infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		_, err := azurecloud.NewProvider(ctx, "azure", azurecloud.Cloud{Name: "germany"}, azurecloud.ProviderArgs{})
		return err
	})
	assert.ErrorIs(t, err, azurecloud.ErrUnknownCloud)
}

func TestProviderVersionIsTheSDKs(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	assert.Contains(t, string(gomod), "github.com/pulumi/pulumi-azure-native-sdk/v2 v"+azurecloud.ProviderVersion+"\n",
		"ProviderVersion must be the SDK modules' version")
}

func TestPreflightRefusesKnownDefectsUnlessAccepted(t *testing.T) {
	gov, err := azurecloud.Lookup("usgovernment")
	require.NoError(t, err)
	pub, err := azurecloud.Lookup("public")
	require.NoError(t, err)

	err = azurecloud.Preflight(gov, "2.90.0", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "pulumi-azure-native#4815")
	assert.Contains(t, err.Error(), "pulumi-azure-native#3991")
	assert.Contains(t, err.Error(), "az role assignment list")

	err = azurecloud.Preflight(gov, "2.90.0", []string{"pulumi-azure-native#4815"})
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "#4815")
	assert.NoError(t, azurecloud.Preflight(gov, "2.90.0", []string{"pulumi-azure-native#4815", "pulumi-azure-native#3991"}))
	assert.NoError(t, azurecloud.Preflight(pub, "2.90.0", nil), "public Azure is not affected")
	assert.NoError(t, azurecloud.Preflight(gov, "3.9.0", nil), "fixed in v3")
}
