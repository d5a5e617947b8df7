package gateway

import (
	"cmp"
	"fmt"
	"net/url"

	"github.com/pulumi/pulumi-azure-native-sdk/containerregistry/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/insights/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/operationalinsights/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/apphost"
	"github.com/botehq/platform/components/azurecloud"
)

func (b *builder) monitoring() error {
	logs, err := operationalinsights.NewWorkspace(b.ctx, b.child("logs"), &operationalinsights.WorkspaceArgs{
		WorkspaceName:     pulumi.String(b.n.logs),
		ResourceGroupName: b.args.ResourceGroupName,
		Location:          pulumi.String(b.args.Location),
		Sku:               &operationalinsights.WorkspaceSkuArgs{Name: pulumi.String("PerGB2018")},
		RetentionInDays:   pulumi.Int(30),
		Tags:              pulumi.ToStringMap(b.args.Tags),
	}, b.parent)
	if err != nil {
		return err
	}
	b.logs = logs
	ai, err := insights.NewComponent(b.ctx, b.child("appinsights"), &insights.ComponentArgs{
		ResourceName:        pulumi.String(b.n.insights),
		ResourceGroupName:   b.args.ResourceGroupName,
		Location:            pulumi.String(b.args.Location),
		Kind:                pulumi.String("web"),
		ApplicationType:     pulumi.String("web"),
		WorkspaceResourceId: logs.ID(),
		IngestionMode:       pulumi.String("LogAnalytics"),
		Tags:                pulumi.ToStringMap(b.args.Tags),
	}, b.parent)
	if err != nil {
		return err
	}
	b.gw.AppInsights = ai.ConnectionString
	return nil
}

func (b *builder) registry() error {
	sku := cmp.Or(b.args.RegistrySku, "Standard")
	reg, err := containerregistry.NewRegistry(b.ctx, b.child("registry"), &containerregistry.RegistryArgs{
		RegistryName:      pulumi.String(b.n.registry),
		ResourceGroupName: b.args.ResourceGroupName,
		Location:          pulumi.String(b.args.Location),
		Sku:               &containerregistry.SkuArgs{Name: pulumi.String(sku)},
		AdminUserEnabled:  pulumi.Bool(false), // pulls use identities and scoped tokens
		Tags:              pulumi.ToStringMap(b.args.Tags),
	}, b.parent, pulumi.Protect(b.args.Protect))
	if err != nil {
		return err
	}
	b.gw.Registry = reg
	b.gw.RegistryLoginServer = reg.LoginServer
	b.gw.ImageServer = reg.LoginServer
	if b.args.Images.Push != nil {
		b.gw.ImageServer = b.args.Images.Push(reg.LoginServer)
	}
	return nil
}

// HostOf returns the host of an endpoint URL ("https://ns.servicebus.windows.net:443/"
// -> "ns.servicebus.windows.net"), for flags that want a fully qualified
// namespace.
func HostOf(endpoint pulumi.StringOutput) pulumi.StringOutput {
	return endpoint.ApplyT(func(s string) (string, error) {
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" {
			return "", fmt.Errorf("cannot take the host of endpoint %q", s)
		}
		return u.Hostname(), nil
	}).(pulumi.StringOutput)
}

// CommonSettings are the settings every app gets: which cloud it is in and
// its identity, so azidentity authenticates against the right authority.
func CommonSettings(c azurecloud.Cloud, id *access.Identity) map[string]pulumi.StringInput {
	return map[string]pulumi.StringInput{
		"BOTE_AZURE_CLOUD":     pulumi.String(c.Name),
		"AZURE_AUTHORITY_HOST": pulumi.String(c.AuthorityHost),
		"AZURE_CLIENT_ID":      id.ClientId,
	}
}

func (b *builder) apps() error {
	// size: the container apps and their wiring in dependency order; helpers would only thread outputs around.
	a := b.args
	platform, err := apphost.NewPlatform(b.ctx, b.child("apps"), apphost.PlatformArgs{
		Cloud: a.Cloud, Hosting: a.Hosting, Name: b.n.platform, ResourceGroupName: a.ResourceGroupName,
		Location: a.Location, PlanSku: a.AppServiceSku, PlanCapacity: a.AppServiceCapacity, Tags: a.Tags,
		LogAnalyticsCustomerID: b.logs.CustomerId,
		LogAnalyticsSharedKey: operationalinsights.GetSharedKeysOutput(b.ctx, operationalinsights.GetSharedKeysOutputArgs{
			ResourceGroupName: a.ResourceGroupName, WorkspaceName: b.logs.Name,
		}, b.parent).PrimarySharedKey().Elem(),
	}, b.parent)
	if err != nil {
		return err
	}
	b.gw.Platform = platform
	b.gw.GatewayURL = platform.URLFor(b.n.gateway)
	b.gw.IDPURL = platform.URLFor(b.n.idp)

	identity := func(logical, physical string) (*access.Identity, error) {
		return access.NewIdentity(b.ctx, b.child(logical), access.IdentityArgs{
			IdentityName: physical, ResourceGroupName: a.ResourceGroupName, Location: a.Location, Tags: a.Tags,
		}, b.parent)
	}
	// The identity keeps its logical name from when the gateway process was
	// called the worker: its role assignments' logical names and
	// descriptions derive from it, and a rename would replace them.
	gatewayID, err := identity("worker-id", b.n.gatewayID)
	if err != nil {
		return err
	}
	idpID, err := identity("idp-id", b.n.idpID)
	if err != nil {
		return err
	}

	acct := b.gw.StorageAccount
	q := b.gw.Queues
	registryScope := access.Scope{Name: "registry", ID: b.gw.Registry.ID()}
	gatewayGrants, err := grantAll(b.ctx, gatewayID, []grant{
		{access.ServiceBusDataReceiver, access.Scope{Name: "queue-" + QueueConnectors, ID: q[QueueConnectors].ID()}},
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + QueueCloud, ID: q[QueueCloud].ID()}},
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + QueueErrors, ID: q[QueueErrors].ID()}},
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + QueueConnectorErrors, ID: q[QueueConnectorErrors].ID()}},
		// Every connector's queue, including tenants onboarded later, and
		// the per-replica nudge queues the gateway creates: the queue
		// service, not the account (no blob or table access from this).
		{access.StorageQueueContributor, access.Scope{Name: "queue-service", ID: pulumi.Sprintf("%s/queueServices/default", acct.ID())}},
		{access.StorageTableContributor, access.Scope{Name: "table-" + TablePresence, ID: b.tables[TablePresence].ID()}},
		{access.StorageTableContributor, access.Scope{Name: "table-" + TableSubscriptions, ID: b.tables[TableSubscriptions].ID()}},
		{access.StorageBlobContributor, access.Scope{Name: "container-" + ContainerClaims, ID: b.containers[ContainerClaims].ID()}},
		{access.KeyVaultSecretsUser, access.Scope{Name: "secret-" + SecretStorageKey, ID: b.storageKey.ID()}},
		{access.AcrPull, registryScope},
	}, b.parent)
	if err != nil {
		return err
	}
	idpGrants, err := grantAll(b.ctx, idpID, []grant{
		{access.StorageBlobReader, access.Scope{Name: "container-" + ContainerRegistry, ID: b.containers[ContainerRegistry].ID()}},
		{access.StorageTableContributor, access.Scope{Name: "table-" + TableReplay, ID: b.tables[TableReplay].ID()}},
		// Creates each signing key as a secret; its own vault only.
		{access.KeyVaultSecretsOfficer, access.Scope{Name: "vault-idp-keys", ID: b.idpVault.ID()}},
		{access.AcrPull, registryScope},
	}, b.parent)
	if err != nil {
		return err
	}

	minR, maxR := a.GatewayMinReplicas, a.GatewayMaxReplicas
	if maxR == 0 {
		minR, maxR = 1, 3
	}
	// Settings are the binaries' own flags as environment variables
	// (runtime/cmd/gateway: BOTE_GATEWAY_<FLAG>), with endpoints taken from
	// the resources, never formatted from a cloud suffix.
	gatewaySettings := CommonSettings(a.Cloud, gatewayID)
	for k, v := range map[string]pulumi.StringInput{
		"BOTE_GATEWAY_LISTEN":               pulumi.String(":8080"),
		"BOTE_GATEWAY_AZURE_IDENTITY":       pulumi.String("true"),
		"BOTE_GATEWAY_BUS":                  pulumi.String("servicebus"),
		"BOTE_GATEWAY_SERVICEBUS_NAMESPACE": HostOf(b.gw.ServiceBusEndpoint),
		"BOTE_GATEWAY_QUEUE_URL":            b.gw.QueueEndpoint,
		"BOTE_GATEWAY_TABLE_URL":            b.gw.TableEndpoint,
		"BOTE_GATEWAY_BLOB_URL":             b.gw.BlobEndpoint,
		"BOTE_GATEWAY_STORAGE_ACCOUNT_NAME": acct.Name,
		"BOTE_GATEWAY_ISSUER":               b.gw.IDPURL,
		// Well inside the 230-240 s front-end idle timeouts.
		"BOTE_GATEWAY_PING_INTERVAL":            pulumi.String(apphost.PingInterval),
		"APPLICATIONINSIGHTS_CONNECTION_STRING": b.gw.AppInsights,
	} {
		gatewaySettings[k] = v
	}
	// The app was the child "worker": the alias keeps its URN, so the
	// rename is an in-place update (new settings and image), not a
	// replacement of the app and its URL.
	gateway, err := platform.NewApp(b.ctx, b.child("gateway"), apphost.AppArgs{
		Name: b.n.gateway, Image: a.Images.Gateway, Port: 8080, External: true, WebSockets: true,
		HealthPath: "/healthz", Identity: gatewayID, RegistryServer: b.gw.ImageServer,
		Settings:    gatewaySettings,
		Secrets:     map[string]pulumi.StringInput{"BOTE_GATEWAY_STORAGE_ACCOUNT_KEY": b.storageKey.Properties.SecretUri()},
		MinReplicas: minR, MaxReplicas: maxR, Tags: a.Tags,
	}, b.parent, pulumi.DependsOn(gatewayGrants), pulumi.Aliases([]pulumi.Alias{{Name: pulumi.String(b.child("worker"))}}))
	if err != nil {
		return err
	}
	b.gw.GatewayURL = gateway.URL

	// runtime/cmd/idp reads BOTE_IDP_<FLAG>. It watches the registry blob
	// itself (--registry-url, read with its managed identity), keeps its
	// signing keys in its vault (--key-vault-url) and the assertions it
	// accepted in the replay table (--replay-table-url), both shared by
	// its replicas and surviving restarts.
	idpSettings := CommonSettings(a.Cloud, idpID)
	for k, v := range map[string]pulumi.StringInput{
		"BOTE_IDP_LISTEN":                       pulumi.String(":8080"),
		"BOTE_IDP_ISSUER":                       b.gw.IDPURL,
		"BOTE_IDP_REGISTRY_URL":                 b.gw.RegistryBlobURL,
		"BOTE_IDP_KEY_VAULT_URL":                b.gw.IDPKeyVaultURI,
		"BOTE_IDP_REPLAY_TABLE_URL":             pulumi.Sprintf("%s%s", b.gw.TableEndpoint, TableReplay),
		"APPLICATIONINSIGHTS_CONNECTION_STRING": b.gw.AppInsights,
	} {
		idpSettings[k] = v
	}
	idp, err := platform.NewApp(b.ctx, b.child("idp"), apphost.AppArgs{
		Name: b.n.idp, Image: a.Images.IDP, Port: 8080, External: true, HealthPath: "/healthz",
		Identity: idpID, RegistryServer: b.gw.ImageServer, Settings: idpSettings,
		MinReplicas: 1, MaxReplicas: 2, Tags: a.Tags,
	}, b.parent, pulumi.DependsOn(append(idpGrants, b.registryRes)))
	if err != nil {
		return err
	}
	b.gw.IDPURL = idp.URL
	return nil
}

type grant struct {
	role  access.Role
	scope access.Scope
}

func grantAll(ctx *pulumi.Context, id *access.Identity, grants []grant, opts ...pulumi.ResourceOption) ([]pulumi.Resource, error) {
	out := make([]pulumi.Resource, 0, len(grants))
	for _, g := range grants {
		ra, err := id.Grant(ctx, g.role, g.scope, opts...)
		if err != nil {
			return nil, err
		}
		out = append(out, ra)
	}
	return out, nil
}
