// Package opsrelay is the ops relay, as a Pulumi component: an Azure Relay
// namespace with one hybrid connection that requires client authorization,
// separate listen and send rules whose keys go straight into Key Vault, and
// the ops server app with its own identity.
//
// The ops server listens (outbound only; it needs no ingress), sends runs
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

// Names of the relay's entities. The listen rule keeps the name it was
// deployed with when the ops server's binary was called relayserver:
// renaming an authorization rule replaces it, and with it its keys (the
// listen key in Key Vault would change under the running server).
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
	// Image is the ops server's repository pinned by digest.
	Image string
	// AgentVersion is the version of the agent image the stack deployed;
	// the ops server marks agents that report another.
	AgentVersion string
	// OperatorAuth, if set, lets operators in with OAuth2 tokens from
	// Entra ID and gives them roles per tenant from their token's app
	// roles or group ids. Without it only API keys work.
	OperatorAuth *OperatorAuth
}

// OperatorAuth is the ops server's OAuth2 operator authentication
// (opsserver --oauth-*).
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

// appName and identityName are the ops server's app and identity. They keep
// the Azure names they were deployed with when the binary was called
// relayserver: renaming the app (Container App or web app) replaces it,
// and with it its URL and its identity assignment; renaming the identity
// replaces it, and with it every role assignment it holds.
func appName(prefix string) string      { return prefix + "-relayserver" }
func identityName(prefix string) string { return prefix + "-relayserver-id" }

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
		naming.ManagedIdentity:   {identityName(p)},
		naming.StorageTable:      tableNames(),
		naming.BlobContainer:     {artifacts.DefaultContainer},
	}.Check()
}

// tableNames are the ops server's tables: the run store's, the audit
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
	if args == nil {
		return nil, fmt.Errorf("opsrelay %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("opsrelay %s: %w", name, err)
	}
	r := &OpsRelay{}
	if err := ctx.RegisterComponentResource(Type, name, r, opts...); err != nil {
		return nil, fmt.Errorf("cannot register opsrelay %s: %w", name, err)
	}
	gw := args.Gateway
	b := &builder{ctx: ctx, name: name, args: args, gw: gw, rg: gw.ResourceGroupName, parent: pulumi.Parent(r)}
	// In dependency order: each step uses what the ones before registered.
	for _, step := range []func() error{b.relay, b.storage, b.identity, b.app} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("opsrelay %s: %w", name, err)
		}
	}

	r.Endpoint = b.ns.ServiceBusEndpoint
	r.Namespace = gateway.HostOf(b.ns.ServiceBusEndpoint)
	r.HybridConnectionName = b.hc.Name
	r.SendRuleName = pulumi.String(RuleSend).ToStringOutput()
	r.SendKeySecretURI = b.secrets[SecretSendKey].Properties.SecretUri()
	r.SecretsVaultURI = b.secretsVault.Properties.VaultUri()
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{
		"endpoint": r.Endpoint, "namespace": r.Namespace, "hybridConnectionName": r.HybridConnectionName,
		"sendRuleName": r.SendRuleName, "sendKeySecretUri": r.SendKeySecretURI, "secretsVaultUri": r.SecretsVaultURI,
	}); err != nil {
		return nil, fmt.Errorf("cannot register opsrelay %s outputs: %w", name, err)
	}
	return r, nil
}

// builder registers the ops relay's resources under its component; each
// step keeps what the later ones use.
type builder struct {
	ctx    *pulumi.Context
	name   string
	args   *Args
	gw     *gateway.SharedGateway
	rg     pulumi.StringInput
	parent pulumi.ResourceOrInvokeOption

	ns            *relay.Namespace
	hc            *relay.HybridConnection
	secrets       map[string]*keyvault.Secret // the rules' keys, by secret name
	tables        []*storage.Table            // in tableNames() order
	secretsVault  *keyvault.Vault
	runsContainer *storage.BlobContainer
	id            *access.Identity
	grants        []pulumi.Resource
}

func (b *builder) child(s string) string { return b.name + "-" + s }

// relay registers the namespace, its hybrid connection and the listen and
// send rules, whose keys go straight into the gateway's vault.
func (b *builder) relay() error {
	var err error
	b.ns, err = relay.NewNamespace(b.ctx, b.child("namespace"), &relay.NamespaceArgs{
		NamespaceName:     pulumi.String(relayNamespaceName(b.gw.Prefix)),
		ResourceGroupName: b.rg,
		Location:          pulumi.String(b.gw.Location),
		Sku:               &relay.SkuArgs{Name: pulumi.String("Standard"), Tier: pulumi.String("Standard")},
		Tags:              pulumi.ToStringMap(b.gw.Tags),
	}, b.parent)
	if err != nil {
		return err
	}
	b.hc, err = relay.NewHybridConnection(b.ctx, b.child("hc"), &relay.HybridConnectionArgs{
		HybridConnectionName:        pulumi.String(HybridConnection),
		NamespaceName:               b.ns.Name,
		ResourceGroupName:           b.rg,
		RequiresClientAuthorization: pulumi.Bool(true),                           // senders need a token too
		UserMetadata:                pulumi.String("opsbot CLI -> relay server"), // as deployed: the ops server's old name, kept so the rename updates nothing here
	}, b.parent)
	if err != nil {
		return err
	}
	b.secrets = map[string]*keyvault.Secret{}
	for _, rule := range []struct{ name, right, secret string }{
		{RuleListen, "Listen", SecretListenKey},
		{RuleSend, "Send", SecretSendKey},
	} {
		ar, err := relay.NewHybridConnectionAuthorizationRule(b.ctx, b.child("rule-"+rule.name), &relay.HybridConnectionAuthorizationRuleArgs{
			AuthorizationRuleName: pulumi.String(rule.name),
			HybridConnectionName:  b.hc.Name,
			NamespaceName:         b.ns.Name,
			ResourceGroupName:     b.rg,
			Rights:                pulumi.StringArray{pulumi.String(rule.right)},
		}, b.parent)
		if err != nil {
			return err
		}
		keys := relay.ListHybridConnectionKeysOutput(b.ctx, relay.ListHybridConnectionKeysOutputArgs{
			AuthorizationRuleName: ar.Name, HybridConnectionName: b.hc.Name, NamespaceName: b.ns.Name, ResourceGroupName: b.rg,
		}, b.parent)
		s, err := gateway.NewSecret(b.ctx, b.child("secret-"+rule.secret), b.gw.Vault, b.rg, rule.secret, keys.PrimaryKey().Elem(), b.parent)
		if err != nil {
			return err
		}
		b.secrets[rule.secret] = s
	}
	return nil
}

// storage registers the run store's tables and the artifacts container,
// named by the runtime packages that use them, and the vault of
// deployment secrets.
func (b *builder) storage() error {
	for _, name := range tableNames() {
		t, err := storage.NewTable(b.ctx, b.child("table-"+name), &storage.TableArgs{
			TableName: pulumi.String(name), AccountName: b.gw.StorageAccount.Name, ResourceGroupName: b.rg,
		}, b.parent)
		if err != nil {
			return err
		}
		b.tables = append(b.tables, t)
	}
	// Deployment secrets (runtime/secretstore, one secret per workspace)
	// live in a vault of their own: the ops server reads them, and no
	// other identity of the stack has any role on it. Administrators write
	// them (Key Vault Secrets Officer, granted out of band).
	var err error
	b.secretsVault, err = gateway.NewVault(b.ctx, b.child("secrets-vault"), gateway.VaultArgs{
		Name: secretsVaultName(b.gw.Prefix), ResourceGroupName: b.rg, Location: b.gw.Location,
		Protect: b.gw.Protect, Tags: b.gw.Tags,
	}, b.parent)
	if err != nil {
		return err
	}
	b.runsContainer, err = storage.NewBlobContainer(b.ctx, b.child("container-"+artifacts.DefaultContainer), &storage.BlobContainerArgs{
		ContainerName: pulumi.String(artifacts.DefaultContainer), AccountName: b.gw.StorageAccount.Name, ResourceGroupName: b.rg,
		PublicAccess: storage.PublicAccessNone,
	}, b.parent)
	return err
}

// identity registers the ops server's identity and grants it exactly
// what the package comment says.
func (b *builder) identity() error {
	gw := b.gw
	var err error
	// The identity keeps its logical name from before the rename too: its
	// role assignments' logical names and descriptions derive from it, and
	// a rename would replace them.
	b.id, err = access.NewIdentity(b.ctx, b.child("relayserver-id"), access.IdentityArgs{
		IdentityName: identityName(gw.Prefix), ResourceGroupName: b.rg, Location: gw.Location, Tags: gw.Tags,
	}, b.parent)
	if err != nil {
		return err
	}
	type grant struct {
		role  access.Role
		scope access.Scope
	}
	wanted := []grant{
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + gateway.QueueConnectors, ID: gw.Queues[gateway.QueueConnectors].ID()}},
		{access.ServiceBusDataReceiver, access.Scope{Name: "queue-" + gateway.QueueCloud, ID: gw.Queues[gateway.QueueCloud].ID()}},
		{access.StorageBlobContributor, access.Scope{Name: "container-" + artifacts.DefaultContainer, ID: b.runsContainer.ID()}},
		{access.StorageBlobContributor, access.Scope{Name: "container-" + gateway.ContainerClaims, ID: gw.ClaimsContainer.ID()}},
		// The agents' bundle, plan and upload links are signed with a user
		// delegation key (no account key in the ops server).
		{access.StorageBlobDelegator, access.Scope{Name: "storage-account", ID: gw.StorageAccount.ID()}},
		{access.StorageBlobReader, access.Scope{Name: "container-" + gateway.ContainerRegistry, ID: gw.RegistryContainer.ID()}},
		{access.KeyVaultSecretsUser, access.Scope{Name: "secret-" + SecretListenKey, ID: b.secrets[SecretListenKey].ID()}},
		// Every workspace's secret, including those written after this
		// deployment: the vault, which holds nothing else.
		{access.KeyVaultSecretsUser, access.Scope{Name: "vault-deployment-secrets", ID: b.secretsVault.ID()}},
		{access.AcrPull, access.Scope{Name: "registry", ID: gw.Registry.ID()}},
	}
	for i, name := range tableNames() {
		wanted = append(wanted, grant{access.StorageTableContributor, access.Scope{Name: "table-" + name, ID: b.tables[i].ID()}})
	}
	for _, g := range wanted {
		ra, err := b.id.Grant(b.ctx, g.role, g.scope, b.parent)
		if err != nil {
			return err
		}
		b.grants = append(b.grants, ra)
	}
	return nil
}

// app registers the ops server's app, once its identity has its roles.
func (b *builder) app() error {
	settings, err := b.settings()
	if err != nil {
		return err
	}
	// The app was the child "relayserver": the alias keeps its URN, so the
	// rename is an in-place update (new settings and image), not a
	// replacement of the app.
	_, err = b.gw.Platform.NewApp(b.ctx, b.child("opsserver"), apphost.AppArgs{
		// No ingress: the ops server only dials out to the relay and
		// serves its API through it. Port 8080 answers only GET /healthz
		// (--health-listen), for the platform's probes.
		Name: appName(b.gw.Prefix), Image: b.args.Image, Port: 8080, HealthPath: "/healthz",
		Identity: b.id, RegistryServer: b.gw.ImageServer, Settings: settings,
		Secrets: map[string]pulumi.StringInput{"BOTE_OPSSERVER_KEY": b.secrets[SecretListenKey].Properties.SecretUri()},
		// One listener is enough and keeps run orchestration single-writer.
		MinReplicas: 1, MaxReplicas: 1, Tags: b.gw.Tags,
	}, b.parent, pulumi.DependsOn(b.grants), pulumi.Aliases([]pulumi.Alias{{Name: pulumi.String(b.child("relayserver"))}}))
	return err
}

// settings are the ops server's environment: runtime/cmd/opsserver
// reads BOTE_OPSSERVER_<FLAG>: the relay listener, then the run store,
// artifacts and the gateway bus it reaches agents through, all with its
// managed identity, and the deployment secrets from their vault
// (--key-vault-url).
func (b *builder) settings() (map[string]pulumi.StringInput, error) {
	gw := b.gw
	settings := gateway.CommonSettings(gw.Cloud, b.id)
	for k, v := range map[string]pulumi.StringInput{
		"BOTE_OPSSERVER_NAMESPACE":              gateway.HostOf(b.ns.ServiceBusEndpoint),
		"BOTE_OPSSERVER_CLOUD":                  pulumi.String(gw.Cloud.Name),
		"BOTE_OPSSERVER_HYBRID_CONNECTION":      b.hc.Name,
		"BOTE_OPSSERVER_RELAY_AUTH":             pulumi.String("sas"),
		"BOTE_OPSSERVER_KEY_NAME":               pulumi.String(RuleListen),
		"BOTE_OPSSERVER_LOG_FORMAT":             pulumi.String("json"),
		"BOTE_OPSSERVER_AZURE_IDENTITY":         pulumi.String("true"),
		"BOTE_OPSSERVER_HEALTH_LISTEN":          pulumi.String(":8080"),
		"BOTE_OPSSERVER_TABLE_URL":              gw.TableEndpoint,
		"BOTE_OPSSERVER_API_KEYS_TABLE":         pulumi.String(operatorauth.DefaultKeysTable),
		"BOTE_OPSSERVER_BLOB_URL":               gw.BlobEndpoint,
		"BOTE_OPSSERVER_BUS":                    pulumi.String("servicebus"),
		"BOTE_OPSSERVER_SERVICEBUS_NAMESPACE":   gateway.HostOf(gw.ServiceBusEndpoint),
		"BOTE_OPSSERVER_REGISTRY_URL":           gw.RegistryBlobURL,
		"BOTE_OPSSERVER_KEY_VAULT_URL":          b.secretsVault.Properties.VaultUri(),
		"APPLICATIONINSIGHTS_CONNECTION_STRING": gw.AppInsights,
	} {
		settings[k] = v
	}
	if b.args.AgentVersion != "" {
		settings["BOTE_OPSSERVER_DEPLOYED_AGENT_VERSION"] = pulumi.String(b.args.AgentVersion)
	}
	if oa := b.args.OperatorAuth; oa != nil {
		roles, err := json.Marshal(oa.Roles) // map keys sorted: stable
		if err != nil {
			return nil, err
		}
		settings["BOTE_OPSSERVER_OAUTH_ISSUER"] = pulumi.String(oa.Issuer)
		settings["BOTE_OPSSERVER_OAUTH_AUDIENCE"] = pulumi.String(oa.Audience)
		settings["BOTE_OPSSERVER_OAUTH_ROLES"] = pulumi.String(string(roles))
		if oa.RequiredRole != "" {
			settings["BOTE_OPSSERVER_OAUTH_REQUIRED_ROLE"] = pulumi.String(oa.RequiredRole)
		}
	}
	return settings, nil
}
