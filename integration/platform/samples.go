package platform

import (
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
)

// SampleEnv is the environment a program built on the gateway's client
// libraries needs to reach this platform as connector tenant/id
// (connector.ConfigFromEnv) and as a cloud service
// (botecloud.NewFromEnv, service name apart): the samples in examples/
// read it.
func (p *Platform) SampleEnv(tenant, id string) []string {
	return []string{
		connector.EnvGatewayURL + "=" + p.GatewayURL,
		connector.EnvTokenURL + "=" + p.IdpURL + "/oauth2/token",
		connector.EnvTenant + "=" + tenant,
		connector.EnvConnector + "=" + id,
		connector.EnvKeyFile + "=" + p.KeyFile(tenant, id),
		botecloud.EnvStorageConnectionString + "=" + p.Emulator.ConnectionString,
		botecloud.EnvWakeURL + "=" + p.GatewayURL,
	}
}
