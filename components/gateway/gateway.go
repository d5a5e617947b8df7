// Package gateway is the shared bote gateway infrastructure of one
// environment, as a Pulumi component: the Service Bus namespace and its
// queues, the storage account with its tables and containers, Key Vault, Log
// Analytics and Application Insights, the container registry, the hosting
// platform, and the gateway and idp apps with their own identities and
// least-privilege role assignments.
//
// The connector registry (runtime/registry format, built from every tenant's
// registrations) is published as one blob the idp reads; see
// docs/infrastructure.md for the hand-off.
package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"github.com/pulumi/pulumi-azure-native-sdk/containerregistry/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/keyvault/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/operationalinsights/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/storage/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

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
// DefaultContainer; runtime/gatewayserver/nudge DefaultTable).
const (
	QueueConnectors = "bote-connectors" // cloud services -> gateway
	QueueCloud      = "bote-cloud"      // gateway -> cloud services
	QueueErrors     = "bote-errors"     // dead letters of both, with reasons
	// QueueConnectorErrors holds what connectors could not handle
	// (runtime/gatewayserver QueueConnectorErrors), sent over the bus.
	QueueConnectorErrors = "bote-connector-errors"
	TablePresence        = "botepresence"      // which gateway replica holds which connector
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
	Gateway string `json:"gateway"`
	IDP     string `json:"idp"`
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
	// GatewayMinReplicas and GatewayMaxReplicas bound the gateway app's
	// scale (both 0: 1..3).
	GatewayMinReplicas, GatewayMaxReplicas int
	// Protect marks the stateful shared resources (namespace, storage
	// account, vault, registry) protected: `pulumi destroy` and replacing
	// changes then fail until an operator unprotects them.
	Protect bool
	Tags    map[string]string
}

// names are the physical names derived from the prefix.
type names struct {
	bus, storage, vault, idpVault, registry, logs, insights, platform, gateway, idp, gatewayID, idpID string
}

func deriveNames(prefix string) names {
	c := naming.Compact(prefix)
	return names{
		bus: prefix + "-bus", storage: c + "st", vault: prefix + "-kv", idpVault: prefix + "-idp-kv", registry: c + "acr",
		logs: prefix + "-logs", insights: prefix + "-appi", platform: prefix + "-apps",
		// The gateway app and its identity keep the Azure names they were
		// deployed with when the gateway process was called the worker:
		// renaming the Container App (or web app) replaces it, and with it
		// the URL every connector and agent is configured with; renaming
		// the identity replaces it, and with it its role assignments.
		gateway: prefix + "-worker", idp: prefix + "-idp", gatewayID: prefix + "-worker-id", idpID: prefix + "-idp-id",
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
	if err := apphost.ValidateImage(a.Images.Gateway); err != nil {
		return fmt.Errorf("Images.Gateway: %w", err)
	}
	if err := apphost.ValidateImage(a.Images.IDP); err != nil {
		return fmt.Errorf("Images.IDP: %w", err)
	}
	if _, err := registry.Marshal(a.Registrations); err != nil {
		return fmt.Errorf("Registrations: %w", err)
	}
	if a.GatewayMinReplicas < 0 || a.GatewayMaxReplicas < 0 || (a.GatewayMaxReplicas > 0 && a.GatewayMaxReplicas < a.GatewayMinReplicas) {
		return fmt.Errorf("GatewayMinReplicas/GatewayMaxReplicas: %d..%d is not a range", a.GatewayMinReplicas, a.GatewayMaxReplicas)
	}
	n := deriveNames(a.Prefix)
	return naming.Names{
		naming.ServiceBusNamespace: {n.bus},
		naming.StorageAccount:      {n.storage},
		naming.KeyVault:            {n.vault, n.idpVault},
		naming.ContainerRegistry:   {n.registry},
		naming.LogAnalytics:        {n.logs},
		naming.AppInsights:         {n.insights},
		naming.ManagedIdentity:     {n.gatewayID, n.idpID},
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
	// GatewayURL is also output as workerUrl, its name from before the
	// rename, for one more release.
	GatewayURL      pulumi.StringOutput `pulumi:"gatewayUrl"`
	IDPURL          pulumi.StringOutput `pulumi:"idpUrl"`
	RegistryBlobURL pulumi.StringOutput `pulumi:"registryBlobUrl"`
	AppInsights     pulumi.StringOutput `pulumi:"appInsightsConnectionString"`

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
		"gatewayUrl":          gw.GatewayURL,
		"workerUrl":           gw.GatewayURL, // deprecated name, one more release
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
