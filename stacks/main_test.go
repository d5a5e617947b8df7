package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/diag/colors"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/infratest"
)

// stackConfig reads ../Pulumi.<stack>.yaml into the flat key -> JSON text
// form Pulumi hands a program.
func stackConfig(t *testing.T, stack string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "Pulumi."+stack+".yaml"))
	require.NoError(t, err)
	var f struct {
		Config map[string]any `yaml:"config"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &f))
	out := map[string]string{}
	for k, v := range f.Config {
		if s, ok := v.(string); ok {
			out[k] = s
			continue
		}
		b, err := json.Marshal(v)
		require.NoError(t, err)
		out[k] = string(b)
	}
	return out
}

// deployed runs the program and returns the recording and resolved exports.
func deployed(t *testing.T, cfg map[string]string) (*infratest.Recording, map[string]any, error) {
	t.Helper()
	var exports map[string]any
	c, err := azurecloud.Lookup(cfg["bote:cloud"])
	name := c.Name
	if err != nil {
		name = "public" // the program itself must reject the name
	}
	rec, err := infratest.Run(t, name, cfg, func(ctx *pulumi.Context) error {
		out, err := deploy(ctx)
		if err != nil {
			return err
		}
		res, err := internals.UnsafeAwaitOutput(context.Background(), out.ToMapOutput())
		if err != nil {
			return err
		}
		exports = res.Value.(map[string]any)
		return nil
	})
	return rec, exports, err
}

// The project and stack files load with Pulumi's own loader (schema and
// project validation included), so a malformed file fails here, not at the
// first `pulumi up`.
func TestProjectFile(t *testing.T) {
	proj, err := workspace.LoadProject(filepath.Join("..", "Pulumi.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "bote", proj.Name.String(), "config keys are namespaced bote:")
	assert.Equal(t, "go", proj.Runtime.Name())
	assert.Equal(t, "stacks/", proj.Main)
	disabled := proj.Config["pulumi:disable-default-providers"].Value
	assert.Equal(t, []any{"*"}, disabled,
		"default providers must be disabled so a forgotten provider cannot fall back to public Azure")

	for _, stack := range []string{"dev", "gov"} {
		ps, err := workspace.LoadProjectStack(diag.DefaultSink(io.Discard, io.Discard, diag.FormatOptions{Color: colors.Never}), proj, filepath.Join("..", "Pulumi."+stack+".yaml"))
		require.NoError(t, err, stack)
		assert.NotEmpty(t, ps.Config, stack)
	}
}

func TestStacksGolden(t *testing.T) {
	for _, stack := range []string{"dev", "gov"} {
		t.Run(stack, func(t *testing.T) {
			rec, exports, err := deployed(t, stackConfig(t, stack))
			require.NoError(t, err)
			infratest.Golden(t, "stack-"+stack+".golden.json", rec.JSON())
			b, err := json.MarshalIndent(exports, "", "  ")
			require.NoError(t, err)
			infratest.Golden(t, "stack-"+stack+".outputs.golden.json", append(b, '\n'))

			cloudName := exports["cloud"].(string)
			infratest.AssertExplicitProvider(t, rec, "azure-"+cloudName)
			infratest.AssertParented(t, rec, "pulumi:providers:azure-native::azure-"+cloudName,
				"azure-native:resources:ResourceGroup::rg", "bote:gateway:SharedGateway::gateway",
				"bote:opsrelay:OpsRelay::opsrelay", "bote:tenant:Tenant::tenant-agency-a",
				"bote:tenant:Tenant::tenant-contoso", "bote:tenant:Tenant::tenant-fabrikam",
				"pulumi:pulumi:StackReference::previous-outputs") // the stack reading its own last outputs
			providers := rec.OfType("pulumi:providers:azure-native")
			require.Len(t, providers, 1)
			assert.Equal(t, cloudName, providers[0].Inputs["environment"], "the provider's environment is the stack's cloud")
		})
	}
}

func TestSovereignStacksNameNoPublicCloudHost(t *testing.T) {
	china := stackConfig(t, "dev")
	china["bote:cloud"], china["bote:location"], china["bote:hosting"] = "china", "chinanorth3", ""
	china["bote:acceptProviderIssues"] = stackConfig(t, "gov")["bote:acceptProviderIssues"]
	for name, cfg := range map[string]map[string]string{"usgovernment": stackConfig(t, "gov"), "china": china} {
		t.Run(name, func(t *testing.T) {
			rec, exports, err := deployed(t, cfg)
			require.NoError(t, err)
			assert.Equal(t, name, exports["cloud"])
			assert.Equal(t, "appservice", exports["hosting"])
			for _, f := range rec.FindHosts(azurecloud.PublicHostMarkers(), exports) {
				t.Errorf("%s stack names a public-cloud host at %s: %q", name, f.Where, f.Value)
			}
		})
	}
	// The scan itself works: the public stack is full of public hosts.
	pub, pubExports, err := deployed(t, stackConfig(t, "dev"))
	require.NoError(t, err)
	assert.NotEmpty(t, pub.FindHosts(azurecloud.PublicHostMarkers(), pubExports))
}

func withTenant(cfg map[string]string, tenantJSON string) map[string]string {
	out := map[string]string{}
	for k, v := range cfg {
		out[k] = v
	}
	var tenants []any
	_ = json.Unmarshal([]byte(cfg["bote:tenants"]), &tenants)
	var extra any
	_ = json.Unmarshal([]byte(tenantJSON), &extra)
	b, _ := json.Marshal(append(tenants, extra))
	out["bote:tenants"] = string(b)
	return out
}

const northwind = `{"id":"northwind","connectors":[{"id":"agent-01","roles":["agent"],"jwk":{"kty":"EC","crv":"P-256","x":"YK-QbFU5hTkaykuKqsZjLeConH9X98ksMSbsNvKaLl0","y":"EeCuhHoZixOWijhAJa5S0PpBPa2_g4BUavlCsmYBuY0"}}]}`

// Onboarding a tenant, judged by the provider's schema (not by the mocks,
// which update anything in place): its subtree is created, a new registry
// blob is created and the old one deleted after the apps point at the new
// one (deletions come last in an update), the apps that read the registry
// update their settings, and nothing shared is replaced.
func TestAddingATenantReplacesNothingShared(t *testing.T) {
	schema := infratest.Schema(t)
	for _, stack := range []string{"dev", "gov"} {
		t.Run(stack, func(t *testing.T) {
			base := stackConfig(t, stack)
			before, _, err := deployed(t, base)
			require.NoError(t, err)
			after, exports, err := deployed(t, withTenant(base, northwind))
			require.NoError(t, err)
			assert.Contains(t, exports["tenants"], "northwind")

			tenantKeys := map[string]bool{}
			for _, r := range after.Subtree("bote:tenant:Tenant::tenant-northwind") {
				tenantKeys[r.Key()] = true
			}
			assert.Len(t, tenantKeys, 4, "component, one queue, scope map, token")
			var blobs []string
			for _, c := range schema.Plan(before, after) {
				switch {
				case tenantKeys[c.Key]:
					assert.Equal(t, "create", c.Op, c.String())
				case strings.HasPrefix(c.Key, "azure-native:storage:Blob::gateway-connector-registry-"):
					blobs = append(blobs, c.Op)
					if c.Op == "create" {
						r := find(t, after, c.Key)
						assert.Contains(t, fmt.Sprint(r.Inputs["source"]), `"tenant": "northwind"`, "the idp learns the new connector")
					}
				default:
					// The registry readers get the new blob's URL; nothing
					// else changes, and nothing is replaced.
					require.Equal(t, "update", c.Op, "%s when a tenant is added", c)
					assert.True(t, strings.HasSuffix(c.Key, "::gateway-idp") || strings.HasSuffix(c.Key, "::opsrelay-opsserver"), "%s changed when a tenant was added", c)
				}
			}
			sort.Strings(blobs)
			assert.Equal(t, []string{"create", "delete"}, blobs, "a new registry blob, the old one deleted")

			// Removing it again gives back exactly the original set.
			again, _, err := deployed(t, base)
			require.NoError(t, err)
			assert.Equal(t, string(before.JSON()), string(again.JSON()))
			for _, c := range schema.Plan(after, again) {
				assert.NotEqual(t, "replace", c.Op, "%s when a tenant is removed", c)
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

func TestRoleAssignmentsStayWithinScope(t *testing.T) {
	for _, stack := range []string{"dev", "gov"} {
		rec, _, err := deployed(t, stackConfig(t, stack))
		require.NoError(t, err)
		grants := rec.Grants(t)
		require.NotEmpty(t, grants)
		perIdentity := map[string]int{}
		for _, g := range grants {
			_, ok := access.RoleByID(g.Role)
			assert.True(t, ok, "%s: %s is not a grantable data-plane role", stack, g)
			for _, bad := range []access.Role{access.Owner, access.Contributor, access.UserAccessAdministrator} {
				assert.NotEqual(t, bad.ID, g.Role, "%s: %s", stack, g)
			}
			assert.NotContains(t, g.Scope, "ResourceGroup::", "%s: %s", stack, g)
			perIdentity[g.Identity]++
		}
		prefix := map[string]string{"dev": "bote-dev", "gov": "bote-gov"}[stack]
		assert.Equal(t, map[string]int{
			prefix + "-worker-id": 10, prefix + "-idp-id": 4, prefix + "-relayserver-id": 20, // 14 + the audit, API keys, policies, notifications and drift tables
		}, perIdentity, stack)
	}
}

func TestBadConfigIsRejectedNamingTheKey(t *testing.T) {
	tests := []struct {
		name string
		set  map[string]string
		err  string
	}{
		{"unknown cloud", map[string]string{"bote:cloud": "germany"}, `bote:cloud: unknown cloud "germany"`},
		{"typo cloud", map[string]string{"bote:cloud": "usgov2"}, "bote:cloud: unknown cloud"},
		{"missing location", map[string]string{"bote:location": ""}, "bote:location: is required"},
		{"prefix too long", map[string]string{"bote:namePrefix": "bote-development-eu"}, "bote:namePrefix: \"bote-development-eu\" is 19 characters; the limit is 16"},
		{"prefix invalid", map[string]string{"bote:namePrefix": "Bote_Dev"}, "bote:namePrefix:"},
		{"unknown hosting", map[string]string{"bote:hosting": "aks"}, "bote:hosting: unknown hosting \"aks\""},
		{"container apps in gov", map[string]string{"bote:cloud": "usgovernment", "bote:hosting": "containerapps"},
			"bote:hosting: hosting containerapps: service not offered in this cloud: Container Apps is not available in the usgovernment cloud"},
		{"sku", map[string]string{"bote:serviceBusSku": "Basic"}, "bote:serviceBusSku: \"Basic\""},
		{"ops relay flag", map[string]string{"bote:opsRelay": "maybe"}, "bote:opsRelay: \"maybe\": want true or false"},
		{"protect flag", map[string]string{"bote:protect": "yes"}, "bote:protect"},
		{"images pinned by hand (no longer used)", map[string]string{"bote:images": `{"worker":"bote/worker@sha256:0000000000000000000000000000000000000000000000000000000000000001"}`},
			"bote:images: is no longer used"},
		{"terraform missing", map[string]string{"bote:terraform": ""}, "bote:terraform: is required"},
		{"terraform without arm64", map[string]string{"bote:terraform": `{"version":"1.11.4","platforms":{"linux/amd64":{"path":"tf.zip","sha256":"1ce994251c00281d6845f0f268637ba50c0005657eb3cf096b92f753b42ef4dc"}}}`},
			"bote:terraform: platforms: no source for linux/arm64"},
		{"terraform pin not a SHA-256", map[string]string{"bote:terraform": `{"version":"1.11.4","platforms":{"linux/amd64":{"path":"a.zip","sha256":"abc"},"linux/arm64":{"path":"b.zip","sha256":"a43d1d0da9b9bab214a8305a39db0e40869572594ccf50c416a7756499143633"}}}`},
			"bote:terraform: platforms[linux/amd64].sha256"},
		{"operator roles for an unknown tenant", map[string]string{"bote:operatorAuth": `{"issuer":"https://login.microsoftonline.com/t/v2.0","audience":"api://ops","roles":{"tenants":{"contosso":{"reader":["group:g"]}}}}`},
			"bote:operatorAuth: roles.tenants.contosso: no such tenant in bote:tenants"},
		{"operator role unknown", map[string]string{"bote:operatorAuth": `{"issuer":"https://login.microsoftonline.com/t/v2.0","audience":"api://ops","roles":{"tenants":{"contoso":{"owner":["group:g"]}}}}`},
			`bote:operatorAuth: Roles: tenants[contoso]: role "owner"`},
		{"operator role value without its claim", map[string]string{"bote:operatorAuth": `{"issuer":"https://login.microsoftonline.com/t/v2.0","audience":"api://ops","roles":{"tenants":{"contoso":{"reader":["Contoso.Reader"]}}}}`},
			`bote:operatorAuth: Roles: tenants[contoso][reader][0]: "Contoso.Reader" must say which claim it matches: "role:Contoso.Reader" (an app role) or "group:<object id>"`},
		{"operator auth without issuer or tenant id", map[string]string{"bote:operatorAuth": `{"audience":"api://ops","roles":{}}`}, "bote:operatorAuth: tenantId: give the operators' Entra tenant"},
		{"operator auth with another cloud's Entra", map[string]string{"bote:cloud": "usgovernment", "bote:location": "usgovvirginia", "bote:hosting": "",
			"bote:operatorAuth": `{"issuer":"https://login.microsoftonline.com/t/v2.0","audience":"api://ops","roles":{}}`}, "is Entra ID of cloud public, not of this stack's cloud usgovernment"},
		{"operator auth without audience", map[string]string{"bote:operatorAuth": `{"issuer":"https://login.microsoftonline.com/t/v2.0","roles":{}}`}, "bote:operatorAuth: Audience is required"},
		{"operator auth unknown field", map[string]string{"bote:operatorAuth": `{"audience":"a","groups":{}}`}, `bote:operatorAuth: cannot decode: json: unknown field "groups"`},
		{"operator auth without the ops relay", map[string]string{"bote:opsRelay": "false", "bote:operatorAuth": `{"issuer":"https://login.microsoftonline.com/t/v2.0","audience":"a","roles":{}}`}, "bote:operatorAuth: needs bote:opsRelay"},
		{"duplicate tenant", map[string]string{"bote:tenants": `[{"id":"a","connectors":[]},{"id":"a","connectors":[]}]`}, "bote:tenants[1]: tenant \"a\" is already tenants[0]"},
		{"bad tenant id", map[string]string{"bote:tenants": `[{"id":"a/b","connectors":[]}]`}, "bote:tenants[0]: invalid id: tenant id \"a/b\""},
		{"private key in config", map[string]string{"bote:tenants": `[{"id":"a","connectors":[{"id":"c","jwk":{"kty":"EC","crv":"P-256","x":"x","y":"y","d":"d"}}]}]`},
			"bote:tenants[0]: tenant a: connector c: jwk: contains a private key"},
		{"unknown connector role", map[string]string{"bote:tenants": `[{"id":"a","connectors":[{"id":"c","roles":["admin"],"jwk":{"kty":"EC","crv":"P-256","x":"YK-QbFU5hTkaykuKqsZjLeConH9X98ksMSbsNvKaLl0","y":"EeCuhHoZixOWijhAJa5S0PpBPa2_g4BUavlCsmYBuY0"}}]}]`},
			`bote:tenants[0]: tenant a: connector c: roles[0]: unknown role "admin"`},
		{"labels on a non-agent", map[string]string{"bote:tenants": `[{"id":"a","connectors":[{"id":"c","labels":{"env":"prod"},"jwk":{"kty":"EC","crv":"P-256","x":"YK-QbFU5hTkaykuKqsZjLeConH9X98ksMSbsNvKaLl0","y":"EeCuhHoZixOWijhAJa5S0PpBPa2_g4BUavlCsmYBuY0"}}]}]`},
			"bote:tenants[0]: tenant a: connector c: labels: only an agent has labels"},
		{"tenants not a list", map[string]string{"bote:tenants": `{"id":"a"}`}, "bote:tenants: cannot decode"},
		{"misspelt tenant field", map[string]string{"bote:tenants": `[{"id":"a","conectors":[]}]`}, `bote:tenants: cannot decode: json: unknown field "conectors"`},
		{"misspelt terraform key", map[string]string{"bote:terraform": `{"version":"1.11.4","platfroms":{}}`}, `bote:terraform: cannot decode: json: unknown field "platfroms"`},
		{"gov with a known provider defect", map[string]string{"bote:cloud": "usgovernment", "bote:hosting": "appservice"},
			"bote:acceptProviderIssues: azure-native 2.90.0 has known defects in the usgovernment cloud"},
		{"gov with one defect accepted", map[string]string{"bote:cloud": "usgovernment", "bote:hosting": "appservice", "bote:acceptProviderIssues": `["pulumi-azure-native#4815"]`},
			"pulumi-azure-native#3991: blob creation"},
		{"accepted issues not a list", map[string]string{"bote:acceptProviderIssues": `"all"`}, "bote:acceptProviderIssues: cannot decode"},
		{"capacity not a number", map[string]string{"bote:appServiceCapacity": "two"}, `bote:appServiceCapacity: "two": want a number of instances from 1 to 30`},
		{"capacity zero", map[string]string{"bote:appServiceCapacity": "0"}, "bote:appServiceCapacity"},
		{"bad name suffix", map[string]string{"bote:nameSuffix": "Org_1"}, `bote:nameSuffix: "Org_1": want "subscription" or 1 to 6 lowercase letters and digits`},
		{"name suffix too long for the prefix", map[string]string{"bote:namePrefix": "bote-dev-westeu", "bote:nameSuffix": "subscription"},
			"bote:nameSuffix: bote:namePrefix plus the suffix:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := stackConfig(t, "dev")
			for k, v := range tt.set {
				cfg[k] = v
			}
			rec, _, err := deployed(t, cfg)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			assert.Empty(t, rec.Keys(), "nothing may register from a bad config")
		})
	}
}

func TestOpsRelayCanBeLeftOut(t *testing.T) {
	cfg := stackConfig(t, "dev")
	cfg["bote:opsRelay"] = "false"
	delete(cfg, "bote:operatorAuth")
	rec, exports, err := deployed(t, cfg)
	require.NoError(t, err)
	assert.Empty(t, rec.OfType("azure-native:relay:Namespace"))
	assert.NotContains(t, exports, "relayEndpoint")
	for _, k := range rec.Keys() {
		assert.False(t, strings.Contains(k, "relayserver"), k)
		assert.False(t, strings.Contains(k, "opsserver"), k)
	}
}

func TestSharedStateIsProtectedUnlessTurnedOff(t *testing.T) {
	stateful := []string{"azure-native:servicebus:Namespace", "azure-native:storage:StorageAccount",
		"azure-native:keyvault:Vault", "azure-native:containerregistry:Registry"}
	for stack, want := range map[string]bool{"gov": true, "dev": false} {
		rec, _, err := deployed(t, stackConfig(t, stack))
		require.NoError(t, err)
		for _, typ := range stateful {
			for _, r := range rec.OfType(typ) {
				assert.Equal(t, want, r.Protect, "%s: %s", stack, r.Key())
			}
		}
		// Purge protection keeps a destroyed vault's name and secrets for
		// 90 days with no way out: only for protected stacks.
		vaults := rec.OfType("azure-native:keyvault:Vault")
		require.NotEmpty(t, vaults)
		for _, v := range vaults {
			props := v.Inputs["properties"].(map[string]any)
			if want {
				assert.Equal(t, true, props["enablePurgeProtection"], "%s: %s", stack, v.Key())
				assert.Equal(t, 90.0, props["softDeleteRetentionInDays"], "%s: %s", stack, v.Key())
			} else {
				assert.NotContains(t, props, "enablePurgeProtection", "%s: %s (Azure refuses false; leave it out)", stack, v.Key())
				assert.Equal(t, 7.0, props["softDeleteRetentionInDays"], "%s: %s", stack, v.Key())
			}
		}
	}
}

func TestTenantOrderInConfigDoesNotMatter(t *testing.T) {
	cfg := stackConfig(t, "dev")
	before, beforeExports, err := deployed(t, cfg)
	require.NoError(t, err)

	var tenants []any
	require.NoError(t, json.Unmarshal([]byte(cfg["bote:tenants"]), &tenants))
	require.Greater(t, len(tenants), 1)
	for i, j := 0, len(tenants)-1; i < j; i, j = i+1, j-1 {
		tenants[i], tenants[j] = tenants[j], tenants[i]
	}
	b, err := json.Marshal(tenants)
	require.NoError(t, err)
	cfg["bote:tenants"] = string(b)
	after, afterExports, err := deployed(t, cfg)
	require.NoError(t, err)
	assert.Equal(t, string(before.JSON()), string(after.JSON()))
	assert.Equal(t, beforeExports, afterExports)
}

// A second environment of the project in the same Entra tenant (staging
// next to dev) registers the same logical names; its role assignments must
// still get names of their own, or Azure refuses each of them with
// RoleAssignmentUpdateNotPermitted.
func TestRoleAssignmentNamesDifferBetweenEnvironments(t *testing.T) {
	names := func(prefix string) map[string]bool {
		cfg := stackConfig(t, "dev")
		cfg["bote:namePrefix"] = prefix
		rec, _, err := deployed(t, cfg)
		require.NoError(t, err)
		out := map[string]bool{}
		for _, ra := range rec.OfType(infratest.RoleAssignmentType) {
			out[ra.Inputs["roleAssignmentName"].(string)] = true
		}
		require.NotEmpty(t, out)
		return out
	}
	dev, staging := names("bote-dev"), names("bote-staging")
	for n := range dev {
		assert.False(t, staging[n], "role assignment name %s is used by both environments", n)
	}
}

// The operators' issuer defaults to the stack cloud's Entra ID authority
// for bote:tenantId, so a sovereign stack never points at public Entra.
func TestOperatorAuthIssuerFollowsTheCloud(t *testing.T) {
	cfg := stackConfig(t, "gov")
	cfg["bote:operatorAuth"] = `{"tenantId":"11111111-2222-3333-4444-555555555555","audience":"api://ops","roles":{"tenants":{"agency-a":{"operator":["role:AgencyA.Operator"]}}}}`
	rec, _, err := deployed(t, cfg)
	require.NoError(t, err)
	raw := string(rec.JSON())
	assert.Contains(t, raw, `"value": "https://login.microsoftonline.us/11111111-2222-3333-4444-555555555555/v2.0"`)
	assert.Contains(t, raw, `AgencyA.Operator`)
}

// Every resource the dev and gov stacks register (and the dev stack on App
// Service) conforms to the azure-native schema of its type and API version.
func TestStacksConformToTheProviderSchema(t *testing.T) {
	schema := infratest.Schema(t)
	appservice := stackConfig(t, "dev")
	appservice["bote:hosting"] = "appservice"
	for name, cfg := range map[string]map[string]string{"dev": stackConfig(t, "dev"), "gov": stackConfig(t, "gov"), "dev-appservice": appservice} {
		t.Run(name, func(t *testing.T) {
			rec, _, err := deployed(t, cfg)
			require.NoError(t, err)
			for _, v := range schema.Conform(rec) {
				t.Error(v)
			}
		})
	}
}

// Two organizations with the same bote:namePrefix collide on every globally
// unique name unless a suffix tells them apart.
func TestNameSuffix(t *testing.T) {
	names := func(suffix, subscription string) (storage, vault string) {
		cfg := stackConfig(t, "dev")
		cfg["bote:nameSuffix"] = suffix
		if subscription != "" {
			cfg["bote:subscriptionId"] = subscription
		}
		rec, _, err := deployed(t, cfg)
		require.NoError(t, err)
		storage = rec.OfType("azure-native:storage:StorageAccount")[0].Inputs["accountName"].(string)
		for _, v := range rec.OfType("azure-native:keyvault:Vault") {
			if v.Name == "gateway-vault" {
				vault = v.Inputs["vaultName"].(string)
			}
		}
		return storage, vault
	}
	st, kv := names("", "")
	assert.Equal(t, []string{"botedevst", "bote-dev-kv"}, []string{st, kv})
	st, kv = names("x7", "")
	assert.Equal(t, []string{"botedevx7st", "bote-dev-x7-kv"}, []string{st, kv})

	// Derived from the subscription the provider deploys to, or the
	// configured one.
	fromProvider := SubscriptionSuffix(infratest.SubscriptionID)
	st, _ = names("subscription", "")
	assert.Equal(t, "botedev"+fromProvider+"st", st)
	other, _ := names("subscription", "11111111-2222-3333-4444-555555555555")
	assert.NotEqual(t, st, other, "another organization's subscription")
	assert.Regexp(t, `^botedev[0-9a-f]{4}st$`, other)
}

// Role assignments take effect in Azure only after they propagate; an app
// created before its grants exist fails its first image pull or Key Vault
// reference for good (Container Apps fails the revision). Every app waits
// for every grant of its identity.
func TestAppsWaitForTheirIdentitysGrants(t *testing.T) {
	for _, hosting := range []string{"containerapps", "appservice"} {
		cfg := stackConfig(t, "dev")
		cfg["bote:hosting"] = hosting
		rec, _, err := deployed(t, cfg)
		require.NoError(t, err)
		principalOf := map[string]string{} // identity resource id -> principal id
		for _, r := range rec.OfType("azure-native:managedidentity:UserAssignedIdentity") {
			principalOf[r.ID] = r.Outputs["principalId"].(string)
		}
		apps := 0
		for _, app := range rec.Resources() {
			base := infratest.BaseType(app.Type)
			if base != "azure-native:web:WebApp" && base != "azure-native:app:ContainerApp" {
				continue
			}
			apps++
			ids := app.Inputs["identity"].(map[string]any)["userAssignedIdentities"].([]any)
			require.Len(t, ids, 1, app.Key())
			principal := principalOf[ids[0].(string)]
			require.NotEmpty(t, principal, app.Key())
			grants := 0
			for _, ra := range rec.OfType(infratest.RoleAssignmentType) {
				if ra.Inputs["principalId"] == principal {
					grants++
					assert.Contains(t, app.DependsOn, ra.Key(), "%s (%s) must wait for %s", app.Key(), hosting, ra.Key())
				}
			}
			assert.NotZero(t, grants, app.Key())
		}
		assert.Equal(t, 3, apps, hosting)
	}
}

func TestAppServiceCapacityReachesThePlan(t *testing.T) {
	cfg := stackConfig(t, "gov")
	cfg["bote:appServiceCapacity"] = "3"
	rec, _, err := deployed(t, cfg)
	require.NoError(t, err)
	plan := rec.OfType("azure-native:web:AppServicePlan")
	require.Len(t, plan, 1)
	assert.Equal(t, 3.0, plan[0].Inputs["sku"].(map[string]any)["capacity"])
	assert.Equal(t, true, plan[0].Inputs["perSiteScaling"])
}

// Which config edits replace which resources, from the provider's schema:
// an operator reads this before editing a live stack's config.
func TestConfigEditsThatReplace(t *testing.T) {
	schema := infratest.Schema(t)
	base := stackConfig(t, "dev")
	before, _, err := deployed(t, base)
	require.NoError(t, err)
	plan := func(key, value string) map[string][]string {
		cfg := stackConfig(t, "dev")
		cfg[key] = value
		after, _, err := deployed(t, cfg)
		require.NoError(t, err)
		out := map[string][]string{}
		for _, c := range schema.Plan(before, after) {
			out[c.Op] = append(out[c.Op], c.Key)
		}
		return out
	}

	// In place: another registry tier (the schema cannot tell which SKU
	// moves Azure itself refuses, e.g. Service Bus Standard -> Premium,
	// which is a migration).
	for key, value := range map[string]string{"bote:registrySku": "Premium"} {
		p := plan(key, value)
		assert.Empty(t, p["replace"], "%s: %v", key, p["replace"])
		assert.NotEmpty(t, p["update"], key)
	}
	// Everything with a location is replaced by a move to another region.
	p := plan("bote:location", "westeurope")
	assert.Contains(t, p["replace"], "azure-native:storage:StorageAccount::gateway-storage")
	assert.Contains(t, p["replace"], "azure-native:keyvault:Vault::gateway-vault")
	assert.Contains(t, p["replace"], "azure-native:resources:ResourceGroup::rg")
	// A name suffix renames, i.e. replaces, every named resource.
	p = plan("bote:nameSuffix", "x7")
	assert.Contains(t, p["replace"], "azure-native:storage:StorageAccount::gateway-storage")
	assert.Contains(t, p["replace"], "azure-native:servicebus:Namespace::gateway-bus")
}
