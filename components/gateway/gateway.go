// Package gateway is the shared bote gateway infrastructure of one
// environment, as a Pulumi component: the Service Bus namespace and its
// queues, the storage account with its tables and containers, Key Vault, Log
// Analytics and Application Insights, the container registry, the hosting
// platform, and the worker and idp apps with their own identities and
// least-privilege role assignments.
//
// The connector registry (runtime/registry format, built from every tenant's
// registrations) is published as one blob the idp reads; see
// docs/infrastructure.md for the hand-off.
package gateway

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"

	"github.com/pulumi/pulumi-azure-native-sdk/authorization/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/containerregistry/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/insights/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/keyvault/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/operationalinsights/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/storage/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/apphost"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/internal/azurenative/servicebus"
	"github.com/botehq/platform/components/naming"
	"github.com/botehq/platform/runtime/registry"
)

// Type is the component's type token. It is part of every child's URN:
// change it only together with a pulumi.Aliases entry.
const Type = "bote:gateway:SharedGateway"

// Names of the data-plane entities. They match the runtime's constants
// (runtime/bus QueueCloud, QueueConnectors, QueueErrors; runtime/claimcheck
// DefaultContainer; runtime/worker/nudge DefaultTable).
const (
	QueueConnectors = "bote-connectors" // cloud services -> worker
	QueueCloud      = "bote-cloud"      // worker -> cloud services
	QueueErrors     = "bote-errors"     // dead letters of both, with reasons
	// QueueConnectorErrors holds what connectors could not handle
	// (runtime/worker QueueConnectorErrors), sent over the bus.
	QueueConnectorErrors = "bote-connector-errors"
	TablePresence        = "botepresence"      // which worker replica holds which connector
	TableSubscriptions   = "botesubscriptions" // topic subscribers, partitioned by tenant|topic
	TableReplay          = "botereplay"        // client assertions the idp replicas have accepted (runtime/replay)
	ContainerClaims      = "bote-claims"       // claim-check bodies
	ContainerRegistry    = "bote-registry"     // the connector registry the idp reads
	SecretStorageKey     = "storage-account-key"
)

// registryBlobName names the registry blob holding doc by its content:
// "connectors-<hash>.json", hash the first 16 hex digits of its SHA-256.
func registryBlobName(doc []byte) (name, hash string) {
	sum := sha256.Sum256(doc)
	hash = hex.EncodeToString(sum[:8])
	return "connectors-" + hash + ".json", hash
}

// ServiceBusSkus are the namespace SKUs the gateway supports (Basic has no
// topics, duplicate detection or forwarding).
var ServiceBusSkus = []string{"Standard", "Premium"}

// Images are the apps' images: repositories in the stack's registry pinned
// by digest.
type Images struct {
	Worker string `json:"worker"`
	IDP    string `json:"idp"`
	// Push, when set, puts the images into the stack's registry once it
	// exists (see components/images.Pusher) and returns the login server
	// again, resolved only after the push: the apps pull from that value,
	// so they wait for their images and a first `pulumi up` works in one
	// go.
	Push func(loginServer pulumi.StringOutput) pulumi.StringOutput `json:"-"`
}

// Args are the arguments of New.
type Args struct {
	Cloud   azurecloud.Cloud
	Hosting azurecloud.Hosting
	// Prefix derives every physical name (see package naming).
	Prefix            string
	Location          string
	ResourceGroupName pulumi.StringInput
	// ServiceBusSku is "Standard" (default) or "Premium".
	ServiceBusSku string
	// StorageSku defaults to Standard_ZRS.
	StorageSku string
	// RegistrySku defaults to Standard.
	RegistrySku string
	// AppServiceSku is the plan SKU where hosting is App Service.
	AppServiceSku string
	// AppServiceCapacity is the plan's instance count (0: the default,
	// apphost.DefaultPlanCapacity).
	AppServiceCapacity int
	Images             Images
	// Registrations are every tenant's connectors, published for the idp.
	Registrations []registry.Connector
	// WorkerMinReplicas and WorkerMaxReplicas bound the worker's scale
	// (both 0: 1..3).
	WorkerMinReplicas, WorkerMaxReplicas int
	// Protect marks the stateful shared resources (namespace, storage
	// account, vault, registry) protected: `pulumi destroy` and replacing
	// changes then fail until an operator unprotects them.
	Protect bool
	Tags    map[string]string
}

// names are the physical names derived from the prefix.
type names struct {
	bus, storage, vault, idpVault, registry, logs, insights, platform, worker, idp, workerID, idpID string
}

func deriveNames(prefix string) names {
	c := naming.Compact(prefix)
	return names{
		bus: prefix + "-bus", storage: c + "st", vault: prefix + "-kv", idpVault: prefix + "-idp-kv", registry: c + "acr",
		logs: prefix + "-logs", insights: prefix + "-appi", platform: prefix + "-apps",
		worker: prefix + "-worker", idp: prefix + "-idp", workerID: prefix + "-worker-id", idpID: prefix + "-idp-id",
	}
}

// Validate checks the arguments before anything registers; errors name the
// field.
func (a *Args) Validate() error {
	if a.Cloud.Name == "" {
		return fmt.Errorf("Cloud: is required")
	}
	if err := naming.ValidatePrefix(a.Prefix); err != nil {
		return fmt.Errorf("Prefix: %w", err)
	}
	if a.Location == "" {
		return fmt.Errorf("Location: is required")
	}
	if a.ResourceGroupName == nil {
		return fmt.Errorf("ResourceGroupName: is required")
	}
	if a.Hosting != azurecloud.HostingContainerApps && a.Hosting != azurecloud.HostingAppService {
		return fmt.Errorf("Hosting: %q is not a hosting; resolve it with Cloud.ResolveHosting", a.Hosting)
	}
	if a.ServiceBusSku != "" && !slices.Contains(ServiceBusSkus, a.ServiceBusSku) {
		return fmt.Errorf("ServiceBusSku: %q is not one of %v", a.ServiceBusSku, ServiceBusSkus)
	}
	if err := a.Cloud.Require(azurecloud.ServiceBus, azurecloud.Storage, azurecloud.KeyVault, azurecloud.ContainerRegistry,
		azurecloud.LogAnalytics, azurecloud.AppInsights, azurecloud.ManagedIdentity, a.Hosting.Service()); err != nil {
		return fmt.Errorf("Cloud: %w", err)
	}
	if err := apphost.ValidateImage(a.Images.Worker); err != nil {
		return fmt.Errorf("Images.Worker: %w", err)
	}
	if err := apphost.ValidateImage(a.Images.IDP); err != nil {
		return fmt.Errorf("Images.IDP: %w", err)
	}
	if _, err := registry.Marshal(a.Registrations); err != nil {
		return fmt.Errorf("Registrations: %w", err)
	}
	if a.WorkerMinReplicas < 0 || a.WorkerMaxReplicas < 0 || (a.WorkerMaxReplicas > 0 && a.WorkerMaxReplicas < a.WorkerMinReplicas) {
		return fmt.Errorf("WorkerMinReplicas/WorkerMaxReplicas: %d..%d is not a range", a.WorkerMinReplicas, a.WorkerMaxReplicas)
	}
	n := deriveNames(a.Prefix)
	return naming.Names{
		naming.ServiceBusNamespace: {n.bus},
		naming.StorageAccount:      {n.storage},
		naming.KeyVault:            {n.vault, n.idpVault},
		naming.ContainerRegistry:   {n.registry},
		naming.LogAnalytics:        {n.logs},
		naming.AppInsights:         {n.insights},
		naming.ManagedIdentity:     {n.workerID, n.idpID},
		naming.ServiceBusEntity:    {QueueConnectors, QueueCloud, QueueErrors, QueueConnectorErrors},
		naming.StorageTable:        {TablePresence, TableSubscriptions, TableReplay},
		naming.BlobContainer:       {ContainerClaims, ContainerRegistry},
		naming.KeyVaultSecret:      {SecretStorageKey},
	}.Check()
}

// SharedGateway is the component.
type SharedGateway struct {
	pulumi.ResourceState

	// Outputs registered with the component (and exported by the stack).
	ServiceBusEndpoint pulumi.StringOutput `pulumi:"serviceBusEndpoint"`
	StorageAccountName pulumi.StringOutput `pulumi:"storageAccountName"`
	QueueEndpoint      pulumi.StringOutput `pulumi:"queueEndpoint"`
	TableEndpoint      pulumi.StringOutput `pulumi:"tableEndpoint"`
	BlobEndpoint       pulumi.StringOutput `pulumi:"blobEndpoint"`
	KeyVaultURI        pulumi.StringOutput `pulumi:"keyVaultUri"`
	// IDPKeyVaultURI is the vault of the idp's signing keys.
	IDPKeyVaultURI      pulumi.StringOutput `pulumi:"idpKeyVaultUri"`
	RegistryLoginServer pulumi.StringOutput `pulumi:"registryLoginServer"`
	WorkerURL           pulumi.StringOutput `pulumi:"workerUrl"`
	IDPURL              pulumi.StringOutput `pulumi:"idpUrl"`
	RegistryBlobURL     pulumi.StringOutput `pulumi:"registryBlobUrl"`
	AppInsights         pulumi.StringOutput `pulumi:"appInsightsConnectionString"`

	// Handles for the tenant and ops relay components.
	Cloud             azurecloud.Cloud
	Prefix            string
	Location          string
	ResourceGroupName pulumi.StringInput
	Namespace         *servicebus.Namespace
	Queues            map[string]*servicebus.Queue // by name
	StorageAccount    *storage.StorageAccount
	Vault             *keyvault.Vault
	Registry          *containerregistry.Registry
	Platform          *apphost.Platform
	ClaimsContainer   *storage.BlobContainer
	RegistryContainer *storage.BlobContainer
	Tags              map[string]string
	// ImageServer is the registry login server, resolved once the images
	// are pushed (Images.Push); apps pull from it.
	ImageServer pulumi.StringOutput
	// Protect is Args.Protect, for the components' own stateful resources.
	Protect bool
}

// New registers the shared gateway.
func New(ctx *pulumi.Context, name string, args *Args, opts ...pulumi.ResourceOption) (*SharedGateway, error) {
	if args == nil {
		return nil, fmt.Errorf("gateway %s: args are required", name)
	}
	if err := args.Validate(); err != nil {
		return nil, fmt.Errorf("gateway %s: %w", name, err)
	}
	gw := &SharedGateway{
		Cloud: args.Cloud, Prefix: args.Prefix, Location: args.Location,
		ResourceGroupName: args.ResourceGroupName, Queues: map[string]*servicebus.Queue{}, Tags: args.Tags,
		Protect: args.Protect,
	}
	if err := ctx.RegisterComponentResource(Type, name, gw, opts...); err != nil {
		return nil, fmt.Errorf("cannot register gateway %s: %w", name, err)
	}
	b := &builder{ctx: ctx, name: name, args: args, n: deriveNames(args.Prefix), gw: gw, parent: pulumi.Parent(gw)}
	for _, step := range []func() error{b.bus, b.storage, b.vault, b.monitoring, b.registry, b.apps} {
		if err := step(); err != nil {
			return nil, fmt.Errorf("gateway %s: %w", name, err)
		}
	}
	if err := ctx.RegisterResourceOutputs(gw, pulumi.Map{
		"serviceBusEndpoint":  gw.ServiceBusEndpoint,
		"storageAccountName":  gw.StorageAccountName,
		"queueEndpoint":       gw.QueueEndpoint,
		"tableEndpoint":       gw.TableEndpoint,
		"blobEndpoint":        gw.BlobEndpoint,
		"keyVaultUri":         gw.KeyVaultURI,
		"idpKeyVaultUri":      gw.IDPKeyVaultURI,
		"registryLoginServer": gw.RegistryLoginServer,
		"workerUrl":           gw.WorkerURL,
		"idpUrl":              gw.IDPURL,
		"registryBlobUrl":     gw.RegistryBlobURL,
		// Not a secret (Microsoft: the key only identifies the resource).
		"appInsightsConnectionString": gw.AppInsights,
	}); err != nil {
		return nil, fmt.Errorf("cannot register gateway %s outputs: %w", name, err)
	}
	return gw, nil
}

type builder struct {
	ctx    *pulumi.Context
	name   string
	args   *Args
	n      names
	gw     *SharedGateway
	parent pulumi.ResourceOrInvokeOption

	storageKey  *keyvault.Secret
	tables      map[string]*storage.Table
	containers  map[string]*storage.BlobContainer
	registryRes *storage.Blob
	idpVault    *keyvault.Vault
	logs        *operationalinsights.Workspace
}

func (b *builder) child(suffix string) string { return b.name + "-" + suffix }

// queueSpec is a Service Bus queue's deliberate settings.
type queueSpec struct {
	name             string
	lockDuration     string // how long a receiver owns a message before redelivery
	maxDeliveryCount int    // deliveries before Service Bus dead-letters it
	ttl              string
	forwardDeadTo    string
}

func (b *builder) bus() error {
	sku := cmp.Or(b.args.ServiceBusSku, "Standard")
	ns, err := servicebus.NewNamespace(b.ctx, b.child("bus"), &servicebus.NamespaceArgs{
		NamespaceName:     pulumi.String(b.n.bus),
		ResourceGroupName: b.args.ResourceGroupName,
		Location:          pulumi.String(b.args.Location),
		Sku:               &servicebus.SBSkuArgs{Name: pulumi.String(sku), Tier: pulumi.String(sku)},
		// Apps authenticate with their managed identities; no SAS keys
		// exist to leak.
		DisableLocalAuth:  pulumi.Bool(true),
		MinimumTlsVersion: pulumi.String("1.2"),
		Tags:              pulumi.ToStringMap(b.args.Tags),
	}, b.parent, pulumi.Protect(b.args.Protect))
	if err != nil {
		return err
	}
	b.gw.Namespace = ns
	b.gw.ServiceBusEndpoint = ns.ServiceBusEndpoint
	// The error queue comes first: the others forward their dead letters
	// to it.
	specs := []queueSpec{
		// The error queue is read by operators and tooling; it keeps
		// messages for a month and never forwards again.
		{QueueErrors, "PT5M", 10, "P30D", ""},
		// The worker routes each message to a Storage Queue in well under a
		// second; a minute's lock is ample and redelivers quickly after a
		// crash. Ten deliveries, then the dead-letter queue, which forwards
		// to bote-errors with the reason kept in the message properties.
		{QueueConnectors, "PT1M", 10, "P14D", QueueErrors},
		// Cloud services may do real work per message (the relay server
		// starts runs), so they get a longer lock.
		{QueueCloud, "PT2M", 10, "P14D", QueueErrors},
		// Connectors' reports of messages they could not handle: like the
		// error queue, kept for operators and never forwarded.
		{QueueConnectorErrors, "PT5M", 10, "P30D", ""},
	}
	for _, s := range specs {
		qa := &servicebus.QueueArgs{
			QueueName:         pulumi.String(s.name),
			NamespaceName:     ns.Name,
			ResourceGroupName: b.args.ResourceGroupName,
			LockDuration:      pulumi.String(s.lockDuration),
			MaxDeliveryCount:  pulumi.Int(s.maxDeliveryCount),
			// Senders set the envelope's stable message id; duplicate
			// detection drops a resend within ten minutes.
			RequiresDuplicateDetection:          pulumi.Bool(true),
			DuplicateDetectionHistoryTimeWindow: pulumi.String("PT10M"),
			DeadLetteringOnMessageExpiration:    pulumi.Bool(true),
			DefaultMessageTimeToLive:            pulumi.String(s.ttl),
			EnableBatchedOperations:             pulumi.Bool(true),
			RequiresSession:                     pulumi.Bool(false),
		}
		var deps []pulumi.Resource
		if s.forwardDeadTo != "" {
			qa.ForwardDeadLetteredMessagesTo = pulumi.String(s.forwardDeadTo)
			deps = append(deps, b.gw.Queues[s.forwardDeadTo])
		}
		q, err := servicebus.NewQueue(b.ctx, b.child("queue-"+s.name), qa, b.parent, pulumi.DependsOn(deps))
		if err != nil {
			return err
		}
		b.gw.Queues[s.name] = q
	}
	return nil
}

func (b *builder) storage() error {
	sku := cmp.Or(b.args.StorageSku, "Standard_ZRS")
	acct, err := storage.NewStorageAccount(b.ctx, b.child("storage"), &storage.StorageAccountArgs{
		AccountName:       pulumi.String(b.n.storage),
		ResourceGroupName: b.args.ResourceGroupName,
		Location:          pulumi.String(b.args.Location),
		Kind:              pulumi.String("StorageV2"),
		Sku:               &storage.SkuArgs{Name: pulumi.String(sku)},
		// Connectors reach their queues over the Internet with short-lived
		// SAS the worker signs with the account key, so shared-key access
		// stays on; everything else uses Entra ID.
		AllowSharedKeyAccess:         pulumi.Bool(true),
		DefaultToOAuthAuthentication: pulumi.Bool(true),
		AllowBlobPublicAccess:        pulumi.Bool(false),
		AllowCrossTenantReplication:  pulumi.Bool(false),
		EnableHttpsTrafficOnly:       pulumi.Bool(true),
		MinimumTlsVersion:            pulumi.String("TLS1_2"),
		PublicNetworkAccess:          pulumi.String("Enabled"),
		Tags:                         pulumi.ToStringMap(b.args.Tags),
	}, b.parent, pulumi.Protect(b.args.Protect))
	if err != nil {
		return err
	}
	b.gw.StorageAccount = acct
	b.gw.StorageAccountName = acct.Name
	b.gw.QueueEndpoint = acct.PrimaryEndpoints.Queue()
	b.gw.TableEndpoint = acct.PrimaryEndpoints.Table()
	b.gw.BlobEndpoint = acct.PrimaryEndpoints.Blob()

	b.tables = map[string]*storage.Table{}
	for _, t := range []string{TablePresence, TableSubscriptions, TableReplay} {
		tbl, err := storage.NewTable(b.ctx, b.child("table-"+t), &storage.TableArgs{
			TableName: pulumi.String(t), AccountName: acct.Name, ResourceGroupName: b.args.ResourceGroupName,
		}, b.parent)
		if err != nil {
			return err
		}
		b.tables[t] = tbl
	}
	b.containers = map[string]*storage.BlobContainer{}
	for _, c := range []string{ContainerClaims, ContainerRegistry} {
		bc, err := storage.NewBlobContainer(b.ctx, b.child("container-"+c), &storage.BlobContainerArgs{
			ContainerName: pulumi.String(c), AccountName: acct.Name, ResourceGroupName: b.args.ResourceGroupName,
			PublicAccess: storage.PublicAccessNone,
		}, b.parent)
		if err != nil {
			return err
		}
		b.containers[c] = bc
	}
	b.gw.ClaimsContainer = b.containers[ContainerClaims]
	b.gw.RegistryContainer = b.containers[ContainerRegistry]

	doc, err := registry.Marshal(b.args.Registrations)
	if err != nil {
		return err
	}
	// A storage:Blob's source cannot change in place (azure-native
	// replaces the blob), so each registry is its own blob, named by its
	// content: a changed registry is a new blob, the apps are pointed at it,
	// and only then does Pulumi delete the old one (deletions of resources
	// that left the program come last). There is never a moment without a
	// registry at the URL an app reads.
	blobName, hash := registryBlobName(doc)
	blob, err := storage.NewBlob(b.ctx, b.child("connector-registry-"+hash), &storage.BlobArgs{
		BlobName:          pulumi.String(blobName),
		ContainerName:     b.containers[ContainerRegistry].Name,
		AccountName:       acct.Name,
		ResourceGroupName: b.args.ResourceGroupName,
		Source:            pulumi.NewStringAsset(string(doc)),
		ContentType:       pulumi.String("application/json"),
		Type:              storage.BlobTypeBlock,
	}, b.parent)
	if err != nil {
		return err
	}
	b.registryRes = blob
	b.gw.RegistryBlobURL = pulumi.Sprintf("%s%s/%s", b.gw.BlobEndpoint, ContainerRegistry, blobName)
	return nil
}

func (b *builder) vault() error {
	newVault := func(logical, name string) (*keyvault.Vault, error) {
		return NewVault(b.ctx, b.child(logical), VaultArgs{
			Name: name, ResourceGroupName: b.args.ResourceGroupName, Location: b.args.Location,
			Protect: b.args.Protect, Tags: b.args.Tags,
		}, b.parent)
	}
	v, err := newVault("vault", b.n.vault)
	if err != nil {
		return err
	}
	b.gw.Vault = v
	b.gw.KeyVaultURI = v.Properties.VaultUri()

	// The idp's signing keys get a vault of their own: the idp writes
	// them, and must not read the storage and relay keys in the other.
	if b.idpVault, err = newVault("idp-vault", b.n.idpVault); err != nil {
		return err
	}
	b.gw.IDPKeyVaultURI = b.idpVault.Properties.VaultUri()

	keys := storage.ListStorageAccountKeysOutput(b.ctx, storage.ListStorageAccountKeysOutputArgs{
		AccountName: b.gw.StorageAccount.Name, ResourceGroupName: b.args.ResourceGroupName,
	}, b.parent)
	key := keys.Keys().Index(pulumi.Int(0)).Value()
	s, err := NewSecret(b.ctx, b.child("secret-"+SecretStorageKey), v, b.args.ResourceGroupName, SecretStorageKey, key, b.parent)
	if err != nil {
		return err
	}
	b.storageKey = s
	return nil
}

// VaultArgs are the arguments of NewVault.
type VaultArgs struct {
	Name              string
	ResourceGroupName pulumi.StringInput
	Location          string
	// Protect turns on purge protection and 90 days of soft-delete
	// retention, and protects the resource in Pulumi.
	Protect bool
	Tags    map[string]string
}

// NewVault registers an RBAC-mode Key Vault (access by role, no access
// policies) in the deploying identity's tenant.
//
// Soft delete is always on (Azure no longer allows turning it off): a
// deleted vault, and every deleted secret, keeps its name for the retention
// period. On a protected stack the vault also gets purge protection (90
// days, and irreversible: nobody can purge early). An unprotected stack
// (torn down and rebuilt freely) gets neither: 7 days' retention and no
// purge protection, so `az keyvault purge` frees the names at once
// (docs/infrastructure.md). Azure refuses enablePurgeProtection=false, so
// the property is left out rather than set to false.
// parent is the component it belongs to (it also carries the provider).
func NewVault(ctx *pulumi.Context, name string, args VaultArgs, parent pulumi.ResourceOrInvokeOption) (*keyvault.Vault, error) {
	if err := naming.Check(naming.KeyVault, args.Name); err != nil {
		return nil, err
	}
	client := authorization.GetClientConfigOutput(ctx, parent)
	props := &keyvault.VaultPropertiesArgs{
		TenantId:                  client.TenantId(),
		Sku:                       &keyvault.SkuArgs{Family: pulumi.String("A"), Name: keyvault.SkuNameStandard},
		EnableRbacAuthorization:   pulumi.Bool(true),
		EnableSoftDelete:          pulumi.Bool(true),
		SoftDeleteRetentionInDays: pulumi.Int(7),
		PublicNetworkAccess:       pulumi.String("Enabled"),
	}
	if args.Protect {
		props.SoftDeleteRetentionInDays = pulumi.Int(90)
		props.EnablePurgeProtection = pulumi.Bool(true)
	}
	return keyvault.NewVault(ctx, name, &keyvault.VaultArgs{
		VaultName:         pulumi.String(args.Name),
		ResourceGroupName: args.ResourceGroupName,
		Location:          pulumi.String(args.Location),
		Properties:        props,
		Tags:              pulumi.ToStringMap(args.Tags),
	}, parent, pulumi.Protect(args.Protect))
}

// NewSecret stores value (marked secret) in vault. Apps receive its URI as a
// Key Vault reference, never the value.
func NewSecret(ctx *pulumi.Context, name string, vault *keyvault.Vault, rg pulumi.StringInput, secretName string, value pulumi.StringInput, opts ...pulumi.ResourceOption) (*keyvault.Secret, error) {
	if err := naming.Check(naming.KeyVaultSecret, secretName); err != nil {
		return nil, err
	}
	return keyvault.NewSecret(ctx, name, &keyvault.SecretArgs{
		SecretName:        pulumi.String(secretName),
		VaultName:         vault.Name,
		ResourceGroupName: rg,
		Properties: &keyvault.SecretPropertiesArgs{
			Value: pulumi.ToSecret(value).(pulumi.StringOutput),
		},
	}, opts...)
}

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
	b.gw.WorkerURL = platform.URLFor(b.n.worker)
	b.gw.IDPURL = platform.URLFor(b.n.idp)

	identity := func(logical, physical string) (*access.Identity, error) {
		return access.NewIdentity(b.ctx, b.child(logical), access.IdentityArgs{
			IdentityName: physical, ResourceGroupName: a.ResourceGroupName, Location: a.Location, Tags: a.Tags,
		}, b.parent)
	}
	workerID, err := identity("worker-id", b.n.workerID)
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
	workerGrants, err := grantAll(b.ctx, workerID, []grant{
		{access.ServiceBusDataReceiver, access.Scope{Name: "queue-" + QueueConnectors, ID: q[QueueConnectors].ID()}},
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + QueueCloud, ID: q[QueueCloud].ID()}},
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + QueueErrors, ID: q[QueueErrors].ID()}},
		{access.ServiceBusDataSender, access.Scope{Name: "queue-" + QueueConnectorErrors, ID: q[QueueConnectorErrors].ID()}},
		// Every connector's queue, including tenants onboarded later, and
		// the per-replica nudge queues the worker creates: the queue
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

	minR, maxR := a.WorkerMinReplicas, a.WorkerMaxReplicas
	if maxR == 0 {
		minR, maxR = 1, 3
	}
	// Settings are the binaries' own flags as environment variables
	// (runtime/cmd/worker: BOTE_WORKER_<FLAG>), with endpoints taken from
	// the resources, never formatted from a cloud suffix.
	workerSettings := CommonSettings(a.Cloud, workerID)
	for k, v := range map[string]pulumi.StringInput{
		"BOTE_WORKER_LISTEN":               pulumi.String(":8080"),
		"BOTE_WORKER_AZURE_IDENTITY":       pulumi.String("true"),
		"BOTE_WORKER_BUS":                  pulumi.String("servicebus"),
		"BOTE_WORKER_SERVICEBUS_NAMESPACE": HostOf(b.gw.ServiceBusEndpoint),
		"BOTE_WORKER_QUEUE_URL":            b.gw.QueueEndpoint,
		"BOTE_WORKER_TABLE_URL":            b.gw.TableEndpoint,
		"BOTE_WORKER_BLOB_URL":             b.gw.BlobEndpoint,
		"BOTE_WORKER_STORAGE_ACCOUNT_NAME": acct.Name,
		"BOTE_WORKER_ISSUER":               b.gw.IDPURL,
		// Well inside the 230-240 s front-end idle timeouts.
		"BOTE_WORKER_PING_INTERVAL":             pulumi.String(apphost.PingInterval),
		"APPLICATIONINSIGHTS_CONNECTION_STRING": b.gw.AppInsights,
	} {
		workerSettings[k] = v
	}
	worker, err := platform.NewApp(b.ctx, b.child("worker"), apphost.AppArgs{
		Name: b.n.worker, Image: a.Images.Worker, Port: 8080, External: true, WebSockets: true,
		HealthPath: "/healthz", Identity: workerID, RegistryServer: b.gw.ImageServer,
		Settings:    workerSettings,
		Secrets:     map[string]pulumi.StringInput{"BOTE_WORKER_STORAGE_ACCOUNT_KEY": b.storageKey.Properties.SecretUri()},
		MinReplicas: minR, MaxReplicas: maxR, Tags: a.Tags,
	}, b.parent, pulumi.DependsOn(workerGrants))
	if err != nil {
		return err
	}
	b.gw.WorkerURL = worker.URL

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
