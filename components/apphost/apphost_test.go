package apphost

import (
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/infratest"
)

const digest = "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestValidateImage(t *testing.T) {
	for ref, ok := range map[string]bool{
		"bote/gateway" + digest:                            true,
		"gateway" + digest:                                 true,
		"team.a/bote_x/gateway-2" + digest:                 true,
		"bote/gateway:latest":                              false,
		"bote/gateway":                                     false,
		"bote/gateway@sha256:abc":                          false,
		"Bote/Gateway" + digest:                            false,
		"botedevacr.azurecr.io/bote/gateway" + digest[:20]: false,
		"":            false,
		"/x" + digest: false,
	} {
		err := ValidateImage(ref)
		if ok {
			assert.NoError(t, err, ref)
		} else {
			assert.ErrorContains(t, err, "must be a repository pinned by digest", ref)
		}
	}
}

func TestAppArgsValidate(t *testing.T) {
	valid := func() AppArgs {
		return AppArgs{
			Name: "bote-gateway", Image: "bote/gateway" + digest, Port: 8080, Identity: &access.Identity{Name: "id"},
			RegistryServer: pulumi.String("r"), MinReplicas: 1, MaxReplicas: 2,
			Settings: map[string]pulumi.StringInput{"A": pulumi.String("a")},
			Secrets:  map[string]pulumi.StringInput{"KEY": pulumi.String("https://v/secrets/k")},
		}
	}
	require.NoError(t, valid().Validate())
	tests := []struct {
		name   string
		mutate func(*AppArgs)
		err    string
	}{
		{"identity", func(a *AppArgs) { a.Identity = nil }, "Identity is required"},
		{"registry", func(a *AppArgs) { a.RegistryServer = nil }, "RegistryServer is required"},
		{"port", func(a *AppArgs) { a.Port = 0 }, "Port 0 is out of range"},
		{"replicas", func(a *AppArgs) { a.MinReplicas, a.MaxReplicas = 3, 2 }, "replicas"},
		{"no replicas", func(a *AppArgs) { a.MinReplicas, a.MaxReplicas = 0, 0 }, "replicas"},
		{"secret also a setting", func(a *AppArgs) { a.Settings["KEY"] = pulumi.String("plain") }, "KEY is both a setting and a secret"},
		{"tag", func(a *AppArgs) { a.Image = "bote/gateway:1.0" }, "pinned by digest"},
	}
	for _, tt := range tests {
		a := valid()
		tt.mutate(&a)
		assert.ErrorContains(t, a.Validate(), tt.err, tt.name)
	}
}

func TestSecretName(t *testing.T) {
	assert.Equal(t, "bote-worker-storage-account-key", secretName("BOTE_WORKER_STORAGE_ACCOUNT_KEY"))
	assert.Equal(t, "x", secretName("_X_"))
}

func TestPlatformRefusesHostingTheCloudLacks(t *testing.T) {
	gov, err := azurecloud.Lookup("usgovernment")
	require.NoError(t, err)
	rec, err := infratest.Run(t, "usgovernment", nil, func(ctx *pulumi.Context) error {
		_, err := NewPlatform(ctx, "apps", PlatformArgs{
			Cloud: gov, Hosting: azurecloud.HostingContainerApps, Name: "bote-apps",
			ResourceGroupName: pulumi.String("rg"), Location: "usgovvirginia",
		})
		return err
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Container Apps is not available in the usgovernment cloud")
	assert.Empty(t, rec.Keys())
}

// oneApp registers a platform and one app on it: pa with the fixed
// fields filled in, app with its name, image, identity and registry.
func oneApp(t *testing.T, pa PlatformArgs, app AppArgs) (*infratest.Recording, error) {
	t.Helper()
	pub, err := azurecloud.Lookup("public")
	require.NoError(t, err)
	pa.Cloud, pa.Name, pa.ResourceGroupName, pa.Location = pub, "bote-apps", pulumi.String("rg"), "eastus"
	pa.LogAnalyticsCustomerID, pa.LogAnalyticsSharedKey = pulumi.String("c"), pulumi.String("k")
	return infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		p, err := NewPlatform(ctx, "apps", pa)
		if err != nil {
			return err
		}
		id, err := access.NewIdentity(ctx, "id", access.IdentityArgs{IdentityName: "bote-id", ResourceGroupName: pulumi.String("rg"), Location: "eastus"})
		if err != nil {
			return err
		}
		app.Name, app.Image, app.Port, app.Identity, app.RegistryServer = "bote-app", "bote/app"+digest, 8080, id, pulumi.String("r.azurecr.io")
		_, err = p.NewApp(ctx, "app", app)
		return err
	})
}

// The SDK's default Container Apps API version (2022-10-01 in v2.90)
// rejects secrets given as keyVaultUrl + identity ("value or keyVaultUrl and
// identity should be provided"); 2024-03-01 accepts them.
func TestContainerAppsUseAnAPIVersionThatTakesKeyVaultSecrets(t *testing.T) {
	rec, err := oneApp(t, PlatformArgs{Hosting: azurecloud.HostingContainerApps}, AppArgs{
		Secrets:     map[string]pulumi.StringInput{"KEY": pulumi.String("https://v.vault.azure.net/secrets/k")},
		MinReplicas: 1, MaxReplicas: 1,
	})
	require.NoError(t, err)
	var apps []infratest.Resource
	for _, r := range rec.Resources() {
		if infratest.BaseType(r.Type) == "azure-native:app:ContainerApp" {
			apps = append(apps, r)
		}
	}
	require.Len(t, apps, 1)
	assert.Equal(t, "azure-native:app/v20240301:ContainerApp", apps[0].Type, "API version 2024-03-01 or later")
	secrets := apps[0].Inputs["configuration"].(map[string]any)["secrets"].([]any)
	require.Len(t, secrets, 1)
	assert.Equal(t, "https://v.vault.azure.net/secrets/k", secrets[0].(map[string]any)["keyVaultUrl"])
	assert.NotEmpty(t, secrets[0].(map[string]any)["identity"])
}

// App Service runs every app on every plan instance and ignores a site's
// numberOfWorkers unless the plan scales per site; the plan must also have
// the instances the sites ask for.
func TestAppServiceScalesPerSite(t *testing.T) {
	workers := func(n int) (*infratest.Recording, error) {
		return oneApp(t, PlatformArgs{Hosting: azurecloud.HostingAppService, PlanCapacity: 3}, AppArgs{MinReplicas: n, MaxReplicas: n})
	}
	rec, err := workers(2)
	require.NoError(t, err)
	plan := rec.OfType("azure-native:web:AppServicePlan")[0]
	assert.Equal(t, true, plan.Inputs["perSiteScaling"])
	assert.Equal(t, 3.0, plan.Inputs["sku"].(map[string]any)["capacity"])
	site := rec.OfType("azure-native:web:WebApp")[0]
	assert.Equal(t, 2.0, site.Inputs["siteConfig"].(map[string]any)["numberOfWorkers"])
	assert.Equal(t, true, site.Inputs["reserved"], "a Linux site")

	_, err = workers(4)
	assert.ErrorContains(t, err, "4 workers do not fit the App Service plan's 3 instances")
}
