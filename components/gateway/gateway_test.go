package gateway

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/apphost"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/infratest"
	"github.com/botehq/platform/components/naming"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/gatewayserver"
	"github.com/botehq/platform/runtime/gatewayserver/nudge"
	"github.com/botehq/platform/runtime/gatewayserver/subscriptions"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/replay"
)

const (
	digestA = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digestB = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
	jwk1    = `{"kty":"EC","crv":"P-256","x":"lOMUJATTqu684sPYVUL6Uo7P5gWV4SWfwu9LgWHRvmU","y":"FSJaLK_MJeo2qXfTb4GDOWosssm8XrHDUIJEqASBg7o"}`
)

func testArgs(t *testing.T, cloudName string) *Args {
	c, err := azurecloud.Lookup(cloudName)
	require.NoError(t, err)
	h, err := c.ResolveHosting("")
	require.NoError(t, err)
	return &Args{
		Cloud: c, Hosting: h, Prefix: "bote-test", Location: "eastus",
		ResourceGroupName: pulumi.String("bote-test-rg"),
		Images:            Images{Gateway: "bote/gateway@" + digestA, IDP: "bote/idp@" + digestB},
		Registrations:     []registry.Connector{{Tenant: "contoso", ID: "agent-01", JWK: json.RawMessage(jwk1)}},
		Tags:              map[string]string{"app": "bote"},
	}
}

// run builds the gateway under mocks with the explicit provider.
func run(t *testing.T, args *Args) (*infratest.Recording, error) {
	return infratest.Run(t, args.Cloud.Name, nil, func(ctx *pulumi.Context) error {
		p, err := azurecloud.NewProvider(ctx, "azure", args.Cloud, azurecloud.ProviderArgs{Location: args.Location})
		if err != nil {
			return err
		}
		_, err = New(ctx, "gw", args, pulumi.Providers(p))
		return err
	})
}

func TestGatewayGolden(t *testing.T) {
	for _, tc := range []struct{ cloud, hosting string }{
		{"public", "containerapps"},
		{"public", "appservice"},
		{"usgovernment", "appservice"},
	} {
		t.Run(tc.cloud+"-"+tc.hosting, func(t *testing.T) {
			args := testArgs(t, tc.cloud)
			args.Hosting = azurecloud.Hosting(tc.hosting)
			rec, err := run(t, args)
			require.NoError(t, err)
			infratest.Golden(t, "gateway-"+tc.cloud+"-"+tc.hosting+".golden.json", rec.JSON())
			infratest.AssertParented(t, rec, "pulumi:providers:azure-native::azure", Type+"::gw")
			infratest.AssertExplicitProvider(t, rec, "azure")
			if tc.cloud != "public" {
				assert.Empty(t, rec.FindHosts(azurecloud.PublicHostMarkers(), nil))
			}
		})
	}
}

func TestGatewayLeastPrivilege(t *testing.T) {
	rec, err := run(t, testArgs(t, "public"))
	require.NoError(t, err)
	var got []string
	for _, g := range rec.Grants(t) {
		role, ok := access.RoleByID(g.Role)
		require.True(t, ok, "%s: role %s is not a grantable data-plane role", g.Identity, g.Role)
		got = append(got, g.Identity+" | "+role.Name+" | "+g.Scope)
	}
	sort.Strings(got)
	assert.Equal(t, []string{
		"bote-test-idp-id | AcrPull | azure-native:containerregistry:Registry::botetestacr",
		"bote-test-idp-id | Key Vault Secrets Officer | azure-native:keyvault:Vault::bote-test-idp-kv",
		"bote-test-idp-id | Storage Blob Data Reader | azure-native:storage:BlobContainer::bote-registry",
		"bote-test-idp-id | Storage Table Data Contributor | azure-native:storage:Table::botereplay",
		"bote-test-worker-id | AcrPull | azure-native:containerregistry:Registry::botetestacr",
		"bote-test-worker-id | Azure Service Bus Data Receiver | azure-native:servicebus:Queue::bote-connectors",
		"bote-test-worker-id | Azure Service Bus Data Sender | azure-native:servicebus:Queue::bote-cloud",
		"bote-test-worker-id | Azure Service Bus Data Sender | azure-native:servicebus:Queue::bote-connector-errors",
		"bote-test-worker-id | Azure Service Bus Data Sender | azure-native:servicebus:Queue::bote-errors",
		"bote-test-worker-id | Key Vault Secrets User | azure-native:keyvault:Secret::storage-account-key",
		"bote-test-worker-id | Storage Blob Data Contributor | azure-native:storage:BlobContainer::bote-claims",
		"bote-test-worker-id | Storage Queue Data Contributor | azure-native:storage:StorageAccount::botetestst/queueServices/default",
		"bote-test-worker-id | Storage Table Data Contributor | azure-native:storage:Table::botepresence",
		"bote-test-worker-id | Storage Table Data Contributor | azure-native:storage:Table::botesubscriptions",
	}, got)
}

// The idp's state outlives its containers and is shared by its replicas:
// signing keys in its own vault, used assertions in the replay table.
func TestIDPStateIsInAzure(t *testing.T) {
	for _, hosting := range []azurecloud.Hosting{azurecloud.HostingContainerApps, azurecloud.HostingAppService} {
		args := testArgs(t, "public")
		args.Hosting = hosting
		rec, err := run(t, args)
		require.NoError(t, err)
		var settings map[string]string
		for _, r := range rec.Resources() {
			if strings.HasSuffix(r.Key(), "::gw-idp") {
				settings = infratest.AppSettings(t, r)
			}
		}
		require.NotNil(t, settings, hosting)
		assert.NotContains(t, settings, "BOTE_IDP_KEY_DIR", "%s: keys in a container-local directory re-key on restart", hosting)
		assert.Equal(t, "https://bote-test-idp-kv.vault.azure.net/", settings["BOTE_IDP_KEY_VAULT_URL"], hosting)
		assert.Equal(t, "https://botetestst.table.core.windows.net/botereplay", settings["BOTE_IDP_REPLAY_TABLE_URL"], hosting)
		assert.Greater(t, len(rec.OfType("azure-native:keyvault:Vault")), 1)
	}
}

func TestGatewaySecretsOnlyAsReferences(t *testing.T) {
	for _, hosting := range []string{"containerapps", "appservice"} {
		args := testArgs(t, "public")
		args.Hosting = azurecloud.Hosting(hosting)
		rec, err := run(t, args)
		require.NoError(t, err)
		out := string(rec.JSON())
		assert.NotContains(t, out, "mock-key-of-", "%s: storage key leaked into a registered input", hosting)
		for _, s := range rec.OfType("azure-native:keyvault:Secret") {
			assert.Equal(t, "[secret]", s.Inputs["properties"].(map[string]any)["value"], s.Key())
		}
		assert.Contains(t, out, "storage-account-key", hosting)
	}
}

func TestAppsGetKeyVaultReferencesNotValues(t *testing.T) {
	args := testArgs(t, "public")
	args.Hosting = azurecloud.HostingAppService
	rec, err := run(t, args)
	require.NoError(t, err)
	gw := find(t, rec, "azure-native:web:WebApp::gw-gateway")
	setting := appSetting(t, gw, "BOTE_GATEWAY_STORAGE_ACCOUNT_KEY")
	assert.Equal(t, "@Microsoft.KeyVault(SecretUri=https://bote-test-kv.vault.azure.net/secrets/storage-account-key)", setting)
	assert.Equal(t, gw.Inputs["identity"].(map[string]any)["userAssignedIdentities"].([]any)[0], gw.Inputs["keyVaultReferenceIdentity"],
		"references resolve with the app's own identity")

	args.Hosting = azurecloud.HostingContainerApps
	rec, err = run(t, args)
	require.NoError(t, err)
	ca := find(t, rec, "azure-native:app/v20240301:ContainerApp::gw-gateway")
	secrets := ca.Inputs["configuration"].(map[string]any)["secrets"].([]any)
	require.Len(t, secrets, 1)
	s := secrets[0].(map[string]any)
	assert.Equal(t, "https://bote-test-kv.vault.azure.net/secrets/storage-account-key", s["keyVaultUrl"])
	assert.NotContains(t, s, "value")
	assert.Contains(t, s["identity"], "UserAssignedIdentity/gw-worker-id")
}

func TestGatewayIsWebSocketFriendly(t *testing.T) {
	ping, err := time.ParseDuration(apphost.PingInterval)
	require.NoError(t, err)
	assert.Less(t, ping, apphost.IdleTimeout*time.Second/4, "pings well inside the front end's idle timeout")

	args := testArgs(t, "usgovernment")
	rec, err := run(t, args)
	require.NoError(t, err)
	gw := find(t, rec, "azure-native:web:WebApp::gw-gateway")
	site := gw.Inputs["siteConfig"].(map[string]any)
	assert.Equal(t, true, site["webSocketsEnabled"])
	assert.Equal(t, true, site["alwaysOn"])
	assert.Equal(t, false, gw.Inputs["clientAffinityEnabled"])
	assert.Equal(t, apphost.PingInterval, appSetting(t, gw, "BOTE_GATEWAY_PING_INTERVAL"))

	args = testArgs(t, "public")
	rec, err = run(t, args)
	require.NoError(t, err)
	ca := find(t, rec, "azure-native:app/v20240301:ContainerApp::gw-gateway")
	ingress := ca.Inputs["configuration"].(map[string]any)["ingress"].(map[string]any)
	assert.Equal(t, "auto", ingress["transport"])
	assert.Equal(t, true, ingress["external"])
	assert.Equal(t, false, ingress["allowInsecure"])
}

// TestGatewayRenameKeepsWhatIsDeployed: the gateway app, once the child
// "worker", is the child "gateway" with an alias to its old name, so its
// URN (and with it the deployed app) stays; the Azure names of the app and
// its identity are still <prefix>-worker and <prefix>-worker-id (renaming
// them would replace the app, its URL and the identity's role
// assignments), on both hostings.
func TestGatewayRenameKeepsWhatIsDeployed(t *testing.T) {
	for _, tc := range []struct {
		hosting            azurecloud.Hosting
		appType, nameInput string
	}{
		{azurecloud.HostingContainerApps, "azure-native:app/v20240301:ContainerApp", "containerAppName"},
		{azurecloud.HostingAppService, "azure-native:web:WebApp", "name"},
	} {
		t.Run(string(tc.hosting), func(t *testing.T) {
			args := testArgs(t, "public")
			args.Hosting = tc.hosting
			rec, err := run(t, args)
			require.NoError(t, err)
			app := find(t, rec, tc.appType+"::gw-gateway")
			assert.Equal(t, []string{"gw-worker"}, app.Aliases, "the old child name keeps the URN")
			assert.Equal(t, "bote-test-worker", app.Inputs[tc.nameInput], "the app's Azure name is unchanged")
			id := find(t, rec, "azure-native:managedidentity:UserAssignedIdentity::gw-worker-id")
			assert.Equal(t, "bote-test-worker-id", id.Inputs["resourceName"], "the identity's Azure name is unchanged")
			for _, r := range rec.Resources() {
				if r.Key() != app.Key() {
					assert.Empty(t, r.Aliases, "%s: only the app was renamed", r.Key())
				}
				assert.NotContains(t, r.Name, "gateway-id", "the identity keeps its logical name and so do its grants")
			}
		})
	}
}

func find(t *testing.T, rec *infratest.Recording, key string) infratest.Resource {
	t.Helper()
	for _, r := range rec.Resources() {
		if r.Key() == key {
			return r
		}
	}
	t.Fatalf("%s not registered", key)
	return infratest.Resource{}
}

func appSetting(t *testing.T, webApp infratest.Resource, name string) string {
	t.Helper()
	for _, s := range webApp.Inputs["siteConfig"].(map[string]any)["appSettings"].([]any) {
		if s := s.(map[string]any); s["name"] == name {
			return s["value"].(string)
		}
	}
	t.Fatalf("%s has no setting %s", webApp.Key(), name)
	return ""
}

// The names the components create are the ones the runtime uses.
func TestQueueNamesMatchTheRuntime(t *testing.T) {
	assert.Equal(t, bus.QueueConnectors, QueueConnectors)
	assert.Equal(t, bus.QueueCloud, QueueCloud)
	assert.Equal(t, bus.QueueErrors, QueueErrors)
	assert.Equal(t, gatewayserver.QueueConnectorErrors, QueueConnectorErrors)
	assert.Equal(t, subscriptions.DefaultTable, TableSubscriptions)
	assert.Equal(t, nudge.DefaultTable, TablePresence)
	assert.Equal(t, replay.DefaultTable, TableReplay)
}

func TestGatewayPublishesRegistryInRuntimeFormat(t *testing.T) {
	args := testArgs(t, "public")
	rec, err := run(t, args)
	require.NoError(t, err)
	blobs := rec.OfType("azure-native:storage:Blob")
	require.Len(t, blobs, 1)
	text := blobs[0].Inputs["source"].(map[string]any)["asset"].(string)
	want, err := registry.Marshal(args.Registrations)
	require.NoError(t, err)
	assert.Equal(t, string(want), text)
	parsed, err := registry.Parse([]byte(text))
	require.NoError(t, err)
	_, ok := parsed.Lookup("contoso/agent-01")
	assert.True(t, ok)
}

func TestGatewayRejectsBadArgs(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(a *Args)
		err    string
	}{
		{"prefix too long", func(a *Args) { a.Prefix = "bote-production-westeurope" }, "Prefix:"},
		{"prefix invalid", func(a *Args) { a.Prefix = "Bote_Dev" }, "Prefix:"},
		{"image by tag", func(a *Args) { a.Images.Gateway = "bote/gateway:latest" }, "Images.Gateway: image \"bote/gateway:latest\" must be a repository pinned by digest"},
		{"image missing", func(a *Args) { a.Images.IDP = "" }, "Images.IDP"},
		{"sku", func(a *Args) { a.ServiceBusSku = "Basic" }, "ServiceBusSku: \"Basic\""},
		{"container apps in gov", func(a *Args) {
			a.Cloud, _ = azurecloud.Lookup("usgovernment")
			a.Hosting = azurecloud.HostingContainerApps
		}, "Container Apps is not available in the usgovernment cloud"},
		{"private jwk", func(a *Args) {
			a.Registrations[0].JWK = json.RawMessage(`{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"c"}`)
		}, "Registrations:"},
		{"replicas", func(a *Args) { a.GatewayMinReplicas, a.GatewayMaxReplicas = 3, 1 }, "GatewayMinReplicas"},
		{"no resource group", func(a *Args) { a.ResourceGroupName = nil }, "ResourceGroupName"},
		{"unresolved hosting", func(a *Args) { a.Hosting = "" }, "Hosting: \"\" is not a hosting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := testArgs(t, "public")
			tt.mutate(args)
			rec, err := run(t, args)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			// Nothing but the provider registered: validation runs first.
			for _, k := range rec.Keys() {
				assert.True(t, strings.HasPrefix(k, "pulumi:providers:"), "registered %s before validating", k)
			}
		})
	}
}

func TestGatewayNamesAtTheLimitFitAzure(t *testing.T) {
	// The longest allowed prefix still gives names Azure accepts (storage
	// account and key vault, 24 characters, are the tight ones).
	args := testArgs(t, "public")
	args.Prefix = "abcdefghij-klmno"
	require.Len(t, args.Prefix, naming.MaxPrefix)
	rec, err := run(t, args)
	require.NoError(t, err)
	for _, r := range rec.OfType("azure-native:keyvault:Vault") {
		assert.NoError(t, naming.Check(naming.KeyVault, r.Inputs["vaultName"].(string)))
	}
	for _, r := range rec.OfType("azure-native:storage:StorageAccount") {
		assert.NoError(t, naming.Check(naming.StorageAccount, r.Inputs["accountName"].(string)))
	}

	args.Prefix += "p"
	_, err = run(t, args)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Prefix: \"abcdefghij-klmnop\" is 17 characters; the limit is 16")
}
