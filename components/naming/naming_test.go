package naming

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		kind Kind
		name string
		err  string // "" = valid
	}{
		{StorageAccount, "botedevst", ""},
		{StorageAccount, "ab", "is 2 characters; Azure allows 3 to 24"},
		{StorageAccount, strings.Repeat("a", 25), "is 25 characters; Azure allows 3 to 24"},
		{StorageAccount, "bote-dev", "lowercase letters and digits"},
		{StorageAccount, "BoteDev", "lowercase letters and digits"},
		{KeyVault, "bote-dev-kv", ""},
		{KeyVault, "1bote", "starting with a letter"},
		{KeyVault, "bote--kv", "consecutive hyphens"},
		{KeyVault, "bote-kv-", "ending with a letter or digit"},
		{KeyVault, strings.Repeat("k", 25), "Azure allows 3 to 24"},
		{ContainerRegistry, "botedevacr", ""},
		{ContainerRegistry, "bote-acr", "letters and digits"},
		{ContainerRegistry, "acr", "Azure allows 5 to 50"},
		{ServiceBusNamespace, "bote-dev-bus", ""},
		{ServiceBusNamespace, "bote", "Azure allows 6 to 50"},
		{ServiceBusNamespace, "bote-dev-sb", "must not end in -sb"},
		{StorageQueue, "contoso-agent-01-b5523dc62ade", ""},
		{StorageQueue, "a--b", "consecutive hyphens"},
		{StorageTable, "runs", ""},
		{StorageTable, "run-s", "letters and digits"},
		{StorageTable, "1runs", "starting with a letter"},
		{BlobContainer, "idp-registry", ""},
		{BlobContainer, "IDP", "lowercase"},
		{ContainerApp, "bote-dev-worker", ""},
		{ContainerApp, "bote-dev-worker-" + strings.Repeat("x", 20), "Azure allows 2 to 32"},
		{ContainerApp, "Worker", "lowercase"},
		{WebApp, "bote-dev-worker", ""},
		{WebApp, "-worker", "not starting or ending with a hyphen"},
		{ManagedIdentity, "bote-dev-worker-id", ""},
		{ManagedIdentity, "ab", "Azure allows 3 to 128"},
		{ResourceGroup, "bote-dev-rg", ""},
		{ResourceGroup, "rg.", "not ending in '.'"},
		{LogAnalytics, "bote-dev-logs", ""},
		{RegistryScopeMap, "contoso-agent-pull", ""},
		{RegistryScopeMap, "a.b.c.d", "letters, digits, '_' and '-'"},
		{KeyVaultSecret, "storage-account-key", ""},
		{KeyVaultSecret, "storage_key", "letters, digits and hyphens"},
		{AppInsights, "a/b", "except"},
		{Kind("nope"), "x", "no naming rule"},
	}
	for _, tt := range tests {
		err := Check(tt.kind, tt.name)
		if tt.err == "" {
			assert.NoError(t, err, "%s %q", tt.kind, tt.name)
			continue
		}
		require.Error(t, err, "%s %q", tt.kind, tt.name)
		assert.True(t, errors.Is(err, ErrInvalidName))
		assert.Contains(t, err.Error(), tt.err, "%s %q", tt.kind, tt.name)
		assert.Contains(t, err.Error(), string(tt.kind))
	}
}

func TestNamesCheckReportsFirstBadNameStably(t *testing.T) {
	n := Names{
		StorageAccount: {"ok1", "bad-name"},
		KeyVault:       {"1bad"},
	}
	for range 5 {
		err := n.Check()
		require.Error(t, err)
		assert.Contains(t, err.Error(), `key vault name "1bad"`) // "key vault" sorts first
	}
	assert.NoError(t, Names{StorageAccount: {"fine"}}.Check())
}

func TestValidatePrefix(t *testing.T) {
	tests := []struct{ prefix, err string }{
		{"bote-dev", ""},
		{"b", ""},
		{"", "is empty"},
		{"Bote", "lowercase"},
		{"bote--dev", "single hyphens"},
		{"-bote", "starting with a letter"},
		{"1bote", "starting with a letter"},
		{"bote-dev-", "single hyphens"},
		{strings.Repeat("b", MaxPrefix+1), "the limit is 16"},
	}
	for _, tt := range tests {
		err := ValidatePrefix(tt.prefix)
		if tt.err == "" {
			assert.NoError(t, err, tt.prefix)
			continue
		}
		assert.ErrorContains(t, err, tt.err, tt.prefix)
	}
}

func TestLabel(t *testing.T) {
	tests := []struct {
		id   string
		max  int
		want string
	}{
		{"contoso", 30, "contoso-"},
		{"Contoso.Ltd_EU", 30, "contoso-ltd-eu-"},
		{strings.Repeat("x", 100), 20, "xxxxxxxxxxx-"},
		{"___", 20, ""},
	}
	for _, tt := range tests {
		got := Label(tt.id, tt.max)
		assert.LessOrEqual(t, len(got), tt.max, tt.id)
		assert.True(t, strings.HasPrefix(got, tt.want), "%q -> %q", tt.id, got)
		assert.NoError(t, Check(RegistryScopeMap, got+"-pull"), got)
		assert.NotContains(t, got, "--")
	}
	assert.NotEqual(t, Label("Contoso", 30), Label("contoso", 30))
	assert.Equal(t, Label("contoso", 30), Label("contoso", 30))
}
