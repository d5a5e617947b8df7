package opsrelay

import (
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/gateway"
	"github.com/botehq/platform/components/infratest"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/registry"
)

const (
	image = "bote/opsserver@sha256:3333333333333333333333333333333333333333333333333333333333333333"
	jwk1  = `{"kty":"EC","crv":"P-256","x":"lOMUJATTqu684sPYVUL6Uo7P5gWV4SWfwu9LgWHRvmU","y":"FSJaLK_MJeo2qXfTb4GDOWosssm8XrHDUIJEqASBg7o"}`
)

func run(t *testing.T, cloudName, img string) (*infratest.Recording, error) {
	return runWith(t, cloudName, &Args{Image: img})
}

// runWith registers the ops relay with args (Gateway filled in).
func runWith(t *testing.T, cloudName string, args *Args) (*infratest.Recording, error) {
	c, err := azurecloud.Lookup(cloudName)
	require.NoError(t, err)
	h, err := c.ResolveHosting("")
	require.NoError(t, err)
	return infratest.Run(t, cloudName, nil, func(ctx *pulumi.Context) error {
		p, err := azurecloud.NewProvider(ctx, "azure", c, azurecloud.ProviderArgs{})
		if err != nil {
			return err
		}
		gw, err := gateway.New(ctx, "gw", &gateway.Args{
			Cloud: c, Hosting: h, Prefix: "bote-test", Location: "eastus", ResourceGroupName: pulumi.String("rg"),
			Images: gateway.Images{
				Gateway: "bote/gateway@sha256:1111111111111111111111111111111111111111111111111111111111111111",
				IDP:     "bote/idp@sha256:2222222222222222222222222222222222222222222222222222222222222222",
			},
			Registrations: []registry.Connector{{Tenant: "t", ID: "c", JWK: json.RawMessage(jwk1)}},
		}, pulumi.Providers(p))
		if err != nil {
			return err
		}
		a := *args
		a.Gateway = gw
		_, err = New(ctx, "ops", &a, pulumi.Providers(p))
		return err
	})
}

func TestOpsRelayGolden(t *testing.T) {
	for _, c := range []string{"public", "usgovernment"} {
		t.Run(c, func(t *testing.T) {
			rec, err := run(t, c, image)
			require.NoError(t, err)
			infratest.Golden(t, "opsrelay-"+c+".golden.json", infratest.JSON(rec.Subtree(Type+"::ops")))
			infratest.AssertParented(t, rec, "pulumi:providers:azure-native::azure", Type+"::ops", gateway.Type+"::gw")
			infratest.AssertExplicitProvider(t, rec, "azure")
			if c != "public" {
				assert.Empty(t, rec.FindHosts(azurecloud.PublicHostMarkers(), nil))
			}
		})
	}
}

func TestHybridConnectionRequiresClientAuthorizationAndSplitsRules(t *testing.T) {
	rec, err := run(t, "public", image)
	require.NoError(t, err)
	hcs := rec.OfType("azure-native:relay:HybridConnection")
	require.Len(t, hcs, 1)
	assert.Equal(t, true, hcs[0].Inputs["requiresClientAuthorization"])
	rights := map[string]any{}
	for _, r := range rec.OfType("azure-native:relay:HybridConnectionAuthorizationRule") {
		rights[r.Inputs["authorizationRuleName"].(string)] = r.Inputs["rights"]
	}
	assert.Equal(t, map[string]any{RuleListen: []any{"Listen"}, RuleSend: []any{"Send"}}, rights)
}

func TestRelayKeysOnlyInKeyVault(t *testing.T) {
	rec, err := run(t, "public", image)
	require.NoError(t, err)
	assert.NotContains(t, string(rec.JSON()), "mock-relay-key")
	var secretNames []string
	for _, s := range rec.OfType("azure-native:keyvault:Secret") {
		secretNames = append(secretNames, s.Inputs["secretName"].(string))
		assert.Equal(t, "[secret]", s.Inputs["properties"].(map[string]any)["value"])
	}
	assert.Subset(t, secretNames, []string{SecretListenKey, SecretSendKey})
}

func TestOpsServerLeastPrivilege(t *testing.T) {
	rec, err := run(t, "public", image)
	require.NoError(t, err)
	var got []string
	for _, g := range rec.Grants(t) {
		if g.Identity != "bote-test-relayserver-id" {
			continue
		}
		role, ok := access.RoleByID(g.Role)
		require.True(t, ok)
		got = append(got, role.Name+" | "+g.Scope)
	}
	sort.Strings(got)
	// Send to the connectors queue, receive from the cloud queue; nothing
	// else on Service Bus, and no relay key but its own listen key. Its own
	// run tables, audit log and API keys table, artifacts container, the claims container, read the
	// registry, and sign SAS links with a user delegation key (no account
	// key, no data access from that role).
	assert.Equal(t, []string{
		"AcrPull | azure-native:containerregistry:Registry::botetestacr",
		"Azure Service Bus Data Receiver | azure-native:servicebus:Queue::bote-cloud",
		"Azure Service Bus Data Sender | azure-native:servicebus:Queue::bote-connectors",
		"Key Vault Secrets User | azure-native:keyvault:Secret::relay-listen-key",
		"Key Vault Secrets User | azure-native:keyvault:Vault::bote-test-ops-kv",
		"Storage Blob Data Contributor | azure-native:storage:BlobContainer::bote-claims",
		"Storage Blob Data Contributor | azure-native:storage:BlobContainer::boteruns",
		"Storage Blob Data Reader | azure-native:storage:BlobContainer::bote-registry",
		"Storage Blob Delegator | azure-native:storage:StorageAccount::botetestst",
		"Storage Table Data Contributor | azure-native:storage:Table::boteapikeys",
		"Storage Table Data Contributor | azure-native:storage:Table::boteaudit",
		"Storage Table Data Contributor | azure-native:storage:Table::botedrift",
		"Storage Table Data Contributor | azure-native:storage:Table::botenotify",
		"Storage Table Data Contributor | azure-native:storage:Table::botepolicies",
		"Storage Table Data Contributor | azure-native:storage:Table::boterunsactive",
		"Storage Table Data Contributor | azure-native:storage:Table::boterunsagents",
		"Storage Table Data Contributor | azure-native:storage:Table::boterunsrunindex",
		"Storage Table Data Contributor | azure-native:storage:Table::boterunsruns",
		"Storage Table Data Contributor | azure-native:storage:Table::boterunstenants",
		"Storage Table Data Contributor | azure-native:storage:Table::boterunsworkspaces",
	}, got)
}

// TestOpsServerRenameKeepsWhatIsDeployed: the ops server's app, once the
// child "relayserver", is the child "opsserver" with an alias to its old
// name, so its URN (and with it the deployed app) stays; the Azure names
// of the app, its identity and the relay's listen rule are still the ones
// from before the rename (renaming them would replace the app, its URL and
// identity assignment, the identity's role assignments and the rule's
// keys), on both hostings.
func TestOpsServerRenameKeepsWhatIsDeployed(t *testing.T) {
	for _, tc := range []struct {
		cloud, appType, nameInput string
	}{
		{"public", "azure-native:app/v20240301:ContainerApp", "containerAppName"},
		{"usgovernment", "azure-native:web:WebApp", "name"},
	} {
		t.Run(tc.cloud, func(t *testing.T) {
			rec, err := run(t, tc.cloud, image)
			require.NoError(t, err)
			ops := rec.Subtree(Type + "::ops")
			var app infratest.Resource
			for _, r := range ops {
				if r.Key() == tc.appType+"::ops-opsserver" {
					app = r
				}
			}
			require.NotEmpty(t, app.Name, "the app is the child opsserver")
			assert.Equal(t, []string{"ops-relayserver"}, app.Aliases, "the old child name keeps the URN")
			assert.Equal(t, "bote-test-relayserver", app.Inputs[tc.nameInput], "the app's Azure name is unchanged")
			ids := rec.OfType("azure-native:managedidentity:UserAssignedIdentity")
			i := slices.IndexFunc(ids, func(r infratest.Resource) bool { return r.Name == "ops-relayserver-id" })
			require.GreaterOrEqual(t, i, 0, "the identity keeps its logical name, and so do its grants")
			assert.Equal(t, "bote-test-relayserver-id", ids[i].Inputs["resourceName"], "the identity's Azure name is unchanged")
			rule := slices.IndexFunc(ops, func(r infratest.Resource) bool { return r.Name == "ops-rule-relayserver-listen" })
			require.GreaterOrEqual(t, rule, 0)
			assert.Equal(t, "relayserver-listen", ops[rule].Inputs["authorizationRuleName"], "the listen rule's name, and so its keys, are unchanged")
			for _, r := range rec.Resources() {
				if r.Key() != app.Key() && !strings.HasPrefix(r.Name, "gw-") {
					assert.Empty(t, r.Aliases, "%s: only the app was renamed", r.Key())
				}
			}
		})
	}
}

func TestOpsRelayRejectsBadArgs(t *testing.T) {
	_, err := run(t, "public", "bote/opsserver:latest")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Image: image \"bote/opsserver:latest\" must be a repository pinned by digest")

	rec, err := infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		_, err := New(ctx, "ops", &Args{Image: image})
		return err
	})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Gateway: is required")
	assert.Empty(t, rec.Keys())
}

// appSettings collects every name/value pair the recording's apps set.
func appSettings(rec *infratest.Recording) map[string]any {
	out := map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if n, ok := v["name"].(string); ok {
				if val, ok := v["value"]; ok {
					out[n] = val
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	for _, r := range rec.Resources() {
		walk(r.Inputs)
	}
	return out
}

func TestOperatorAuthReachesTheOpsServer(t *testing.T) {
	oa := &OperatorAuth{
		Issuer: "https://login.microsoftonline.us/11111111-2222-3333-4444-555555555555/v2.0", Audience: "api://bote-ops", RequiredRole: "Ops.Operator",
		Roles: operatorauth.RoleMap{Admin: []string{"role:Ops.Admin"}, Tenants: map[string]map[operatorauth.Role][]string{
			"agency-a": {operatorauth.RoleReader: {"group:0b5e1c9e-group"}, operatorauth.RoleApprover: {"role:AgencyA.Approver"}},
		}}}
	rec, err := runWith(t, "usgovernment", &Args{Image: image, OperatorAuth: oa})
	require.NoError(t, err)
	env := appSettings(rec)
	assert.Equal(t, oa.Issuer, env["BOTE_OPSSERVER_OAUTH_ISSUER"])
	assert.Equal(t, "api://bote-ops", env["BOTE_OPSSERVER_OAUTH_AUDIENCE"])
	assert.Equal(t, "Ops.Operator", env["BOTE_OPSSERVER_OAUTH_REQUIRED_ROLE"])
	roles, ok := env["BOTE_OPSSERVER_OAUTH_ROLES"].(string)
	require.True(t, ok)
	got, err := operatorauth.ParseRoleMap([]byte(roles))
	require.NoError(t, err, "the ops server parses what the stack sets")
	assert.Equal(t, oa.Roles, got)
	assert.Empty(t, rec.FindHosts(azurecloud.PublicHostMarkers(), nil))

	rec, err = run(t, "public", image)
	require.NoError(t, err)
	assert.NotContains(t, appSettings(rec), "BOTE_OPSSERVER_OAUTH_ISSUER", "without OperatorAuth only API keys work")

	for _, tt := range []struct {
		oa   OperatorAuth
		want string
	}{
		{OperatorAuth{Issuer: "not a url", Audience: "a"}, "OperatorAuth.Issuer"},
		{OperatorAuth{Issuer: oa.Issuer}, "OperatorAuth.Audience is required"},
		{OperatorAuth{Issuer: oa.Issuer, Audience: "a", Roles: operatorauth.RoleMap{Tenants: map[string]map[operatorauth.Role][]string{"t": {"owner": {"role:x"}}}}}, `OperatorAuth.Roles: tenants[t]: role "owner"`},
		{OperatorAuth{Issuer: oa.Issuer, Audience: "a", Roles: operatorauth.RoleMap{Admin: []string{"Ops.Admin"}}}, `OperatorAuth.Roles: admin[0]: "Ops.Admin" must say which claim it matches`},
	} {
		_, err := runWith(t, "public", &Args{Image: image, OperatorAuth: &tt.oa})
		assert.ErrorContains(t, err, tt.want)
	}
}

// Runs in Azure get deployment secrets: the ops server reads them from
// the stack's vault of deployment secrets, which no other identity may
// read.
func TestDeploymentSecretsVault(t *testing.T) {
	rec, err := run(t, "public", image)
	require.NoError(t, err)
	var vault infratest.Resource
	for _, v := range rec.OfType("azure-native:keyvault:Vault") {
		if v.Inputs["vaultName"] == "bote-test-ops-kv" {
			vault = v
		}
	}
	require.NotEmpty(t, vault.Name, "the stack creates the vault")
	var readers []string
	for _, g := range rec.Grants(t) {
		if strings.HasPrefix(g.Scope, "azure-native:keyvault:Vault::bote-test-ops-kv") {
			readers = append(readers, g.Identity)
		}
	}
	assert.Equal(t, []string{"bote-test-relayserver-id"}, readers)
	for _, r := range rec.Resources() {
		if strings.HasSuffix(r.Key(), "::ops-opsserver") {
			assert.Equal(t, "https://bote-test-ops-kv.vault.azure.net/", infratest.AppSettings(t, r)["BOTE_OPSSERVER_KEY_VAULT_URL"])
			return
		}
	}
	t.Fatal("no ops server app")
}
