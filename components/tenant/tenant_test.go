package tenant

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/infratest"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/registry"
)

const (
	jwk1 = `{"kty":"EC","crv":"P-256","x":"lOMUJATTqu684sPYVUL6Uo7P5gWV4SWfwu9LgWHRvmU","y":"FSJaLK_MJeo2qXfTb4GDOWosssm8XrHDUIJEqASBg7o"}`
	jwk2 = `{"kty":"EC","crv":"P-256","x":"jcEn3POg_z0KdR2yXd9qRvXkg8oOL_qNy464OW2-tmw","y":"S6_5HD0On5QARoXNtflEDRrPtPr4ij79k_5lXz-9QrI"}`
)

func spec() Spec {
	return Spec{ID: "Contoso", Connectors: []Connector{
		{ID: "onprem-02", JWK: json.RawMessage(jwk2), Disabled: true},
		{ID: "agent-01", JWK: json.RawMessage(jwk1), Roles: []string{registry.RoleAgent}, Labels: map[string]string{"env": "prod"}},
	}}
}

func run(t *testing.T, s Spec) (*infratest.Recording, error) {
	return infratest.Run(t, "public", nil, func(ctx *pulumi.Context) error {
		c, _ := azurecloud.Lookup("public")
		p, err := azurecloud.NewProvider(ctx, "azure", c, azurecloud.ProviderArgs{})
		if err != nil {
			return err
		}
		_, err = New(ctx, "tenant-"+s.ID, &Args{
			Spec: s, ResourceGroupName: pulumi.String("rg"),
			StorageAccountName: pulumi.String("botedevst"), RegistryName: pulumi.String("botedevacr"),
		}, pulumi.Providers(p))
		return err
	})
}

func TestTenantGolden(t *testing.T) {
	rec, err := run(t, spec())
	require.NoError(t, err)
	infratest.Golden(t, "tenant-contoso.golden.json", rec.JSON())
	infratest.AssertParented(t, rec, "pulumi:providers:azure-native::azure", Type+"::tenant-Contoso")
	infratest.AssertExplicitProvider(t, rec, "azure")
}

func TestTenantQueuesUseTheRuntimeQueueName(t *testing.T) {
	rec, err := run(t, spec())
	require.NoError(t, err)
	var got []string
	for _, q := range rec.OfType("azure-native:storage:Queue") {
		got = append(got, q.Inputs["queueName"].(string))
	}
	want := []string{}
	for _, c := range []string{"agent-01", "onprem-02"} {
		n, err := queuename.For(ids.ConnectorID{Tenant: "Contoso", Connector: c})
		require.NoError(t, err)
		want = append(want, n)
	}
	assert.ElementsMatch(t, want, got)
}

func TestTenantTokenPullsOnlyTheAgentAndConnectorImages(t *testing.T) {
	rec, err := run(t, spec())
	require.NoError(t, err)
	maps := rec.OfType("azure-native:containerregistry:ScopeMap")
	require.Len(t, maps, 1)
	assert.Equal(t, []any{"repositories/bote/agent/content/read", "repositories/bote/agent/metadata/read",
		"repositories/bote/connector/content/read", "repositories/bote/connector/metadata/read"}, maps[0].Inputs["actions"])
	for _, a := range maps[0].Inputs["actions"].([]any) {
		assert.NotContains(t, a, "write")
		assert.NotContains(t, a, "delete")
	}
	tokens := rec.OfType("azure-native:containerregistry:Token")
	require.Len(t, tokens, 1)
	assert.Contains(t, tokens[0].Inputs["scopeMapId"], "tenant-Contoso-agent-pull")
}

func TestRegistrationsAreTheIdpFormat(t *testing.T) {
	s := spec()
	regs := s.Registrations()
	assert.Equal(t, "agent-01", regs[0].ID)
	doc, err := registry.Marshal(regs)
	require.NoError(t, err)
	r, err := registry.Parse(doc)
	require.NoError(t, err)
	c, ok := r.Lookup("Contoso/onprem-02")
	require.True(t, ok)
	assert.True(t, c.Disabled)
	assert.False(t, c.HasRole(registry.RoleAgent))
	a, ok := r.Lookup("Contoso/agent-01")
	require.True(t, ok)
	assert.True(t, a.ActiveAgent())
	assert.Equal(t, map[string]string{"env": "prod"}, a.Labels)
}

func TestSpecRefusesBadGrants(t *testing.T) {
	for name, tt := range map[string]struct {
		c    Connector
		want string
	}{
		"unknown role":         {Connector{ID: "c", JWK: json.RawMessage(jwk1), Roles: []string{"admin"}}, `tenant Contoso: connector c: roles[0]: unknown role "admin"`},
		"labels without agent": {Connector{ID: "c", JWK: json.RawMessage(jwk1), Labels: map[string]string{"env": "prod"}}, "tenant Contoso: connector c: labels: only an agent has labels"},
		"bad label":            {Connector{ID: "c", JWK: json.RawMessage(jwk1), Roles: []string{"agent"}, Labels: map[string]string{"bad key": "x"}}, "connector c: labels: invalid id"},
	} {
		t.Run(name, func(t *testing.T) {
			err := Spec{ID: "Contoso", Connectors: []Connector{tt.c}}.Validate()
			assert.ErrorContains(t, err, tt.want)
			_, err = run(t, Spec{ID: "Contoso", Connectors: []Connector{tt.c}})
			assert.ErrorContains(t, err, tt.want, "nothing registers")
		})
	}
}

func TestTenantRejectsBadSpecs(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(s *Spec)
		err    string
	}{
		{"bad tenant id", func(s *Spec) { s.ID = "contoso/eu" }, "tenant id \"contoso/eu\""},
		{"empty tenant id", func(s *Spec) { s.ID = "" }, "tenant id is empty"},
		{"bad connector id", func(s *Spec) { s.Connectors[0].ID = "-x" }, "connectors[0]"},
		{"duplicate connector", func(s *Spec) { s.Connectors[1].ID = s.Connectors[0].ID }, "listed twice"},
		{"missing jwk", func(s *Spec) { s.Connectors[0].JWK = nil }, "connector onprem-02: jwk: missing"},
		{"private jwk", func(s *Spec) {
			s.Connectors[0].JWK = json.RawMessage(`{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"secret"}`)
		}, "private key"},
		{"rsa jwk", func(s *Spec) {
			s.Connectors[0].JWK = json.RawMessage(`{"kty":"RSA","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}`)
		}, "EC P-256"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec()
			tt.mutate(&s)
			rec, err := run(t, s)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			for _, k := range rec.Keys() {
				assert.True(t, strings.HasPrefix(k, "pulumi:providers:"), "registered %s before validating", k)
			}
		})
	}
}
