package azurecloud

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLookup(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"public", "public"},
		{"AzureCloud", "public"},
		{"usgovernment", "usgovernment"},
		{"USGov", "usgovernment"},
		{"AzureUSGovernment", "usgovernment"},
		{" china ", "china"},
		{"AzureChinaCloud", "china"},
	}
	for _, tt := range tests {
		c, err := Lookup(tt.in)
		require.NoError(t, err, tt.in)
		assert.Equal(t, tt.want, c.Name, tt.in)
	}
}

func TestLookupRejectsUnknownNames(t *testing.T) {
	for _, in := range []string{"", "usgov2", "germany", "AzureGermanCloud", "pubic"} {
		_, err := Lookup(in)
		require.Error(t, err, in)
		assert.True(t, errors.Is(err, ErrUnknownCloud), in)
		assert.Contains(t, err.Error(), "public, usgovernment", in)
	}
}

func TestEveryCloudIsComplete(t *testing.T) {
	for _, name := range Names() {
		c, err := Lookup(name)
		require.NoError(t, err)
		s := c.Suffixes
		for field, v := range map[string]string{
			"ServiceBus": s.ServiceBus, "Storage": s.Storage, "KeyVault": s.KeyVault,
			"ContainerRegistry": s.ContainerRegistry, "AppService": s.AppService,
			"Login": s.Login, "Management": s.Management, "AuthorityHost": c.AuthorityHost,
		} {
			assert.NotEmpty(t, v, "%s.%s", name, field)
		}
		assert.True(t, strings.Contains(c.AuthorityHost, s.Login), name)
		_, err = c.ResolveHosting("")
		assert.NoError(t, err, "%s: default hosting must be offered", name)
	}
}

func TestSovereignCloudsNameNoPublicHost(t *testing.T) {
	for _, name := range []string{"usgovernment", "china"} {
		c, _ := Lookup(name)
		s := c.Suffixes
		for _, v := range []string{s.ServiceBus, s.Storage, s.KeyVault, s.ContainerRegistry, s.AppService, s.Login, s.Management, c.AuthorityHost} {
			for _, m := range PublicHostMarkers() {
				assert.NotContains(t, v, m, "%s names a public-cloud host", name)
			}
		}
	}
}

func TestRequire(t *testing.T) {
	gov, _ := Lookup("usgovernment")
	pub, _ := Lookup("public")

	require.NoError(t, pub.Require(ContainerApps, Relay, ServiceBus))
	require.NoError(t, gov.Require(ServiceBus, AppService))

	err := gov.Require(ServiceBus, ContainerApps)
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrUnavailable))
	assert.Contains(t, err.Error(), "Container Apps is not available in the usgovernment cloud")
}

func TestResolveHosting(t *testing.T) {
	tests := []struct {
		cloud    string
		override Hosting
		want     Hosting
		err      string
	}{
		{"public", "", HostingContainerApps, ""},
		{"public", HostingAppService, HostingAppService, ""},
		{"usgovernment", "", HostingAppService, ""},
		{"usgovernment", HostingContainerApps, "", "Container Apps is not available in the usgovernment cloud"},
		{"china", "", HostingAppService, ""},
	}
	for _, tt := range tests {
		c, _ := Lookup(tt.cloud)
		got, err := c.ResolveHosting(tt.override)
		if tt.err != "" {
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.err)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tt.want, got)
	}
}

func TestParseHosting(t *testing.T) {
	for in, want := range map[string]Hosting{"": "", "ContainerApps": HostingContainerApps, "appservice": HostingAppService} {
		got, err := ParseHosting(in)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	_, err := ParseHosting("aks")
	assert.ErrorContains(t, err, `unknown hosting "aks"`)
}
