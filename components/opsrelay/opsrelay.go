// Package opsrelay is the ops relay, as a Pulumi component: an Azure Relay
// namespace with one hybrid connection that requires client authorization,
// separate listen and send rules whose keys go straight into Key Vault, and
// the relay server app with its own identity.
//
// The relay server listens (outbound only; it needs no ingress), sends runs
// to connectors through the gateway's bote-connectors queue and receives
// their results from bote-cloud. Its identity gets exactly that, plus its
// state table, the claim-check container, the listen key's secret and image
// pulls. The send key is for operators' opsbot CLI and stays in Key Vault.
package opsrelay

import (
	"encoding/json"
	"fmt"

	"github.com/pulumi/pulumi-azure-native-sdk/keyvault/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/storage/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/apphost"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/gateway"
	"github.com/botehq/platform/components/internal/azurenative/relay"
	"github.com/botehq/platform/components/naming"
	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runstore"
)

// Type is the component's type token.
const Type = "bote:opsrelay:OpsRelay"

// Names of the relay's entities.
const (
	HybridConnection = "opsbot"
	RuleListen       = "relayserver-listen"
	RuleSend         = "opsbot-send"
	SecretListenKey  = "relay-listen-key"
	SecretSendKey    = "relay-send-key"
)

// Args are the arguments of New.
type Args struct {
	// Gateway is the environment's shared gateway: its namespace queues,
	// storage, vault, registry and hosting platform.
	Gateway *gateway.SharedGateway
	// Image is the relay server's repository pinned by digest.
	Image string
	// AgentVersion is the version of the agent image the stack deployed;
	// the relay server marks agents that report another.
	AgentVersion string
	// OperatorAuth, if set, lets operators in with OAuth2 tokens from
	// Entra ID and gives them roles per tenant from their token's app
	// roles or group ids. Without it only API keys work.
	OperatorAuth *OperatorAuth
}

// OperatorAuth is the relay server's OAuth2 operator authentication
// (relayserver --oauth-*).
type OperatorAuth struct {
	// Issuer of operator tokens, e.g.
	// https://login.microsoftonline.us/<tenant id>/v2.0.
	Issuer string `json:"issuer"`
	// Audience operator tokens carry (the ops API's app id URI).
	Audience string `json:"audience"`
	// RequiredRole, if set, every operator token must carry.
	RequiredRole string `json:"requiredRole,omitempty"`
	// Roles maps app role values or group object ids to tenant roles.
	Roles operatorauth.RoleMap `json:"roles"`
}

// Validate names the first bad field.
func (o *OperatorAuth) Validate() error {
	jc := operatorauth.JWTConfig{Issuer: o.Issuer, Audience: o.Audience, RequiredRole: o.RequiredRole, Roles: o.Roles}
	return jc.Validate()
}

func relayNamespaceName(prefix string) string { return prefix + "-relay" }

// secretsVaultName is the vault of deployment secrets.
func secretsVaultName(prefix string) string { return prefix + "-ops-kv" }

// Validate checks the arguments before anything registers.
func (a *Args) Validate() error {
	if a.Gateway == nil {
		return fmt.Errorf("Gateway: is required")
	}
	if err := a.Gateway.Cloud.Require(azurecloud.Relay); err != nil {
		return fmt.Errorf("Gateway.Cloud: %w", err)
	}
	if err := apphost.ValidateImage(a.Image); err != nil {
		return fmt.Errorf("Image: %w", err)
	}
	if a.OperatorAuth != nil {
		if err := a.OperatorAuth.Validate(); err != nil {
			return fmt.Errorf("OperatorAuth.%w", err)
		}
	}
	p := a.Gateway.Prefix
	return naming.Names{
		naming.RelayNamespace:    {relayNamespaceName(p)},
		naming.HybridConnection:  {HybridConnection},
		naming.AuthorizationRule: {RuleListen, RuleSend},
		naming.KeyVaultSecret:    {SecretListenKey, SecretSendKey},
		naming.KeyVault:          {secretsVaultName(p)},
		naming.ManagedIdentity:   {p + "-relayserver-id"},
		naming.StorageTable:      tableNames(),
		naming.BlobContainer:     {artifacts.DefaultContainer},
	}.Check()
}

// tableNames are the relay server's tables: the run store's, the audit
// log, the operator API keys (shared by every replica), the policies, the
// webhooks with their outbox and the drift schedules, named by the runtime
// packages that use them.
func tableNames() []string {
	return append(runstore.TableNames(""), audit.TableName(""), operatorauth.DefaultKeysTable, policystore.TableName(""), notify.TableName(""), drift.TableName(""))
}

// OpsRelay is the component.
type OpsRelay struct {
	pulumi.ResourceState

	// Endpoint is the namespace's endpoint (https://<ns>.<servicebus suffix>:443/).
	Endpoint pulumi.StringOutput `pulumi:"endpoint"`
	// Namespace is the namespace's host name (opsbot's namespace setting).
	Namespace pulumi.StringOutput `pulumi:"namespace"`
	// HybridConnectionName is the entity operators' CLI sends to.
	HybridConnectionName pulumi.StringOutput `pulumi:"hybridConnectionName"`
	// SendRuleName names the SAS rule the CLI signs with.
	SendRuleName pulumi.StringOutput `pulumi:"sendRuleName"`
	// SendKeySecretURI is the Key Vault secret holding the send key.
	SendKeySecretURI pulumi.StringOutput `pulumi:"sendKeySecretUri"`
	// SecretsVaultURI is the vault of deployment secrets, which the relay
	// server hands to agents for their runs.
	SecretsVaultURI pulumi.StringOutput `pulumi:"secretsVaultUri"`
}

// New registers the ops relay.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*OpsRelay, error) {
	// size: one resource graph declared in dependency order; helpers would only thread its outputs around.
	if args == nil {
		return nil, fmt.Errorf("opsrelay %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("opsrelay %s: %w", name, err)
	}
	gw := args.Gateway
	r := &OpsRelay{}
	if err := ctx.RegisterComponentResource(Type, name, r, opts...); err != nil {
		return nil, fmt.Errorf("cannot register opsrelay %s: %w", name, err)
	}
	parent := pulumi.Parent(r)
	rg := gw.ResourceGroupName
	child := func(s string) string { return name + "-" + s }
	fail := func(err error) (*OpsRelay, error) { return nil, fmt.Errorf("opsrelay %s: %w", name, err) }

	ns, err := relay.NewNamespace(ctx, child("namespace"), &relay.NamespaceArgs{
		NamespaceName:     pulumi.String(relayNamespaceName(gw.Prefix)),
		ResourceGroupName: rg,
		Location:          pulumi.String(gw.Location),
		Sku:               &relay.SkuArgs{Name: pulumi.String("Standard"), Tier: pulumi.String("Standard")},
		Tags:              pulumi.ToStringMap(gw.Tags),
	}, parent)
	if err != nil {
		return fail(err)
	}
	hc, err := relay.NewHybridConnection(ctx, child("hc"), &relay.HybridConnectionArgs{
		HybridConnectionName:        pulumi.String(HybridConnection),
		NamespaceName:               ns.Name,
		ResourceGroupName:           rg,
		RequiresClientAuthorization: pulumi.Bool(true), // senders need a token too
		UserMetadata:                pulumi.String("opsbot CLI -> relay server"),
	}, parent)
	if err != nil {
		return fail(err)
	}
	secrets := map[string]*keyvault.Secret{}
	for _, rule := range []struct{ name, right, secret string }{
		{RuleListen, "Listen", SecretListenKey},
		{RuleSend, "Send", SecretSendKey},
	} {
		ar, err := relay.NewHybridConnectionAuthorizationRule(ctx, child("rule-"+rule.name), &relay.HybridConnectionAuthorizationRuleArgs{
			AuthorizationRuleName: pulumi.String(rule.name),
			HybridConnectionName:  hc.Name,
			NamespaceName:         ns.Name,
			ResourceGroupName:     rg,
			Rights:                pulumi.StringArray{pulumi.String(rule.right)},
		}, parent)
		if err != nil {
			return fail(err)
		}
		keys := relay.ListHybridConnectionKeysOutput(ctx, relay.ListHybridConnectionKeysOutputArgs{
			AuthorizationRuleName: ar.Name, HybridConnectionName: hc.Name, NamespaceName: ns.Name, ResourceGroupName: rg,
		}, parent)
		s, err := gateway.NewSecret(ctx, child("secret-"+rule.secret), gw.Vault, rg, rule.secret, keys.PrimaryKey().Elem(), parent)
		if err != nil {
			return fail(err)
		}
		secrets[rule.secret] = s
	}

	// The run store's tables and the artifacts container, named by the
	// runtime packages that use them.
	var tables []*storage.Table
	for _, name := range tableNames() {
		t, err := storage.NewTable(ctx, child("table-"+name), &storage.TableArgs{
			TableName: pulumi.String(name), AccountName: gw.StorageAccount.Name, ResourceGroupName: rg,
		}, parent)
		if err != nil {
			return fail(err)
		}
		tables = append(tables, t)
	}
	// Deployment secrets (runtime/secretstore, one secret per workspace)
	// live in a vault of their own: the relay server reads them, and no
	// other identity of the stack has any role on it. Administrators write
	// them (Key Vault Secrets Officer, granted out of band).
	secretsVault, err := gateway.NewVault(ctx, child("secrets-vault"), gateway.VaultArgs{
		Name: secretsVaultName(gw.Prefix), ResourceGroupName: rg, Location: gw.Location,
		Protect: gw.Protect, Tags: gw.Tags,
	}, parent)
	if err != nil {
		return fail(err)
	}
	runsContainer, err := storage.NewBlobContainer(ctx, child("container-"+artifacts.DefaultContainer), &storage.BlobContainerArgs{
		ContainerName: pulumi.String(artifacts.DefaultContainer), AccountName: gw.StorageAccount.Name, ResourceGroupName: rg,
		PublicAccess: storage.PublicAccessNone,
	}, parent)
	if err != nil {
		return fail(err)
	}

	id, err := access.NewIdentity(ctx, child("relayserver-id"), access.IdentityArgs{
		IdentityName: gw.Prefix + "-relayserver-id", ResourceGroupName: rg, Location: gw.Location, Tags: gw.Tags,
	}, parent)
	if err != nil {
		return fail(err)
	}
	type grant struct {
		role  access.Role
		scope access.Scope
	}
	wanted := []grant{
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + gateway.QueueConnectors, ID: gw.Queues[gateway.QueueConnectors].ID()}},
		{access.ServiceBusDataReceiver, access.Scope{Name: "queue-" + gateway.QueueCloud, ID: gw.Queues[gateway.QueueCloud].ID()}},
		{access.StorageBlobContributor, access.Scope{Name: "container-" + artifacts.DefaultContainer, ID: runsContainer.ID()}},
		{access.StorageBlobContributor, access.Scope{Name: "container-" + gateway.ContainerClaims, ID: gw.ClaimsContainer.ID()}},
		// The agents' bundle, plan and upload links are signed with a user
		// delegation key (no account key in the relay server).
		{access.StorageBlobDelegator, access.Scope{Name: "storage-account", ID: gw.StorageAccount.ID()}},
		{access.StorageBlobReader, access.Scope{Name: "container-" + gateway.ContainerRegistry, ID: gw.RegistryContainer.ID()}},
		{access.KeyVaultSecretsUser, access.Scope{Name: "secret-" + SecretListenKey, ID: secrets[SecretListenKey].ID()}},
		// Every workspace's secret, including those written after this
		// deployment: the vault, which holds nothing else.
		{access.KeyVaultSecretsUser, access.Scope{Name: "vault-deployment-secrets", ID: secretsVault.ID()}},
		{access.AcrPull, access.Scope{Name: "registry", ID: gw.Registry.ID()}},
	}
	for i, name := range tableNames() {
		wanted = append(wanted, grant{access.StorageTableContributor, access.Scope{Name: "table-" + name, ID: tables[i].ID()}})
	}
	var grants []pulumi.Resource
	for _, g := range wanted {
		ra, err := id.Grant(ctx, g.role, g.scope, parent)
		if err != nil {
			return fail(err)
		}
		grants = append(grants, ra)
	}

	// runtime/cmd/relayserver reads BOTE_RELAYSERVER_<FLAG>: the relay
	// listener, then the run store, artifacts and the gateway bus it reaches
	// agents through, all with its managed identity, and the deployment
	// secrets from their vault (--key-vault-url).
	settings := gateway.CommonSettings(gw.Cloud, id)
	for k, v := range map[string]pulumi.StringInput{
		"BOTE_RELAYSERVER_NAMESPACE":            gateway.HostOf(ns.ServiceBusEndpoint),
		"BOTE_RELAYSERVER_CLOUD":                pulumi.String(gw.Cloud.Name),
		"BOTE_RELAYSERVER_HYBRID_CONNECTION":    hc.Name,
		"BOTE_RELAYSERVER_RELAY_AUTH":           pulumi.String("sas"),
		"BOTE_RELAYSERVER_KEY_NAME":             pulumi.String(RuleListen),
		"BOTE_RELAYSERVER_LOG_FORMAT":           pulumi.String("json"),
		"BOTE_RELAYSERVER_AZURE_IDENTITY":       pulumi.String("true"),
		"BOTE_RELAYSERVER_HEALTH_LISTEN":        pulumi.String(":8080"),
		"BOTE_RELAYSERVER_TABLE_URL":            gw.TableEndpoint,
		"BOTE_RELAYSERVER_API_KEYS_TABLE":       pulumi.String(operatorauth.DefaultKeysTable),
		"BOTE_RELAYSERVER_BLOB_URL":             gw.BlobEndpoint,
		"BOTE_RELAYSERVER_BUS":                  pulumi.String("servicebus"),
		"BOTE_RELAYSERVER_SERVICEBUS_NAMESPACE": gateway.HostOf(gw.ServiceBusEndpoint),
		"BOTE_RELAYSERVER_REGISTRY_URL":         gw.RegistryBlobURL,
		"BOTE_RELAYSERVER_KEY_VAULT_URL":        secretsVault.Properties.VaultUri(),
		"APPLICATIONINSIGHTS_CONNECTION_STRING": gw.AppInsights,
	} {
		settings[k] = v
	}
	if args.AgentVersion != "" {
		settings["BOTE_RELAYSERVER_DEPLOYED_AGENT_VERSION"] = pulumi.String(args.AgentVersion)
	}
	if oa := args.OperatorAuth; oa != nil {
		roles, err := json.Marshal(oa.Roles) // map keys sorted: stable
		if err != nil {
			return fail(err)
		}
		settings["BOTE_RELAYSERVER_OAUTH_ISSUER"] = pulumi.String(oa.Issuer)
		settings["BOTE_RELAYSERVER_OAUTH_AUDIENCE"] = pulumi.String(oa.Audience)
		settings["BOTE_RELAYSERVER_OAUTH_ROLES"] = pulumi.String(string(roles))
		if oa.RequiredRole != "" {
			settings["BOTE_RELAYSERVER_OAUTH_REQUIRED_ROLE"] = pulumi.String(oa.RequiredRole)
		}
	}
	if _, err := gw.Platform.NewApp(ctx, child("relayserver"), apphost.AppArgs{
		// No ingress: the relay server only dials out to the relay and
		// serves its API through it. Port 8080 answers only GET /healthz
		// (--health-listen), for the platform's probes.
		Name: gw.Prefix + "-relayserver", Image: args.Image, Port: 8080, HealthPath: "/healthz",
		Identity: id, RegistryServer: gw.ImageServer, Settings: settings,
		Secrets: map[string]pulumi.StringInput{"BOTE_RELAYSERVER_KEY": secrets[SecretListenKey].Properties.SecretUri()},
		// One listener is enough and keeps run orchestration single-writer.
		MinReplicas: 1, MaxReplicas: 1, Tags: gw.Tags,
	}, parent, pulumi.DependsOn(grants)); err != nil {
		return fail(err)
	}

	r.Endpoint = ns.ServiceBusEndpoint
	r.Namespace = gateway.HostOf(ns.ServiceBusEndpoint)
	r.HybridConnectionName = hc.Name
	r.SendRuleName = pulumi.String(RuleSend).ToStringOutput()
	r.SendKeySecretURI = secrets[SecretSendKey].Properties.SecretUri()
	r.SecretsVaultURI = secretsVault.Properties.VaultUri()
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{
		"endpoint": r.Endpoint, "namespace": r.Namespace, "hybridConnectionName": r.HybridConnectionName,
		"sendRuleName": r.SendRuleName, "sendKeySecretUri": r.SendKeySecretURI, "secretsVaultUri": r.SecretsVaultURI,
	}); err != nil {
		return nil, fmt.Errorf("cannot register opsrelay %s outputs: %w", name, err)
	}
	return r, nil
}
