// Command stacks is the Pulumi program that deploys one bote environment:
// the explicit azure-native provider for the stack's cloud, a resource
// group, the shared gateway, every tenant in config and the ops relay.
//
// `pulumi up` from the repository root (Pulumi.yaml points here) deploys
// it; docs/infrastructure.md describes config, onboarding and outputs.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi-azure-native-sdk/authorization/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/resources/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/gateway"
	"github.com/botehq/platform/components/images"
	"github.com/botehq/platform/components/naming"
	"github.com/botehq/platform/components/opsrelay"
	"github.com/botehq/platform/components/tenant"
	"github.com/botehq/platform/runtime/registry"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		_, err := deploy(ctx)
		return err
	})
}

// namePrefix is the prefix every physical name derives from: bote:namePrefix,
// plus "-<bote:nameSuffix>" if set. The suffix "subscription" is the first
// four hex digits of the SHA-256 of the subscription id (bote:subscriptionId,
// else the one the provider deploys to), so two organizations choosing the
// same prefix still get different globally unique names (storage account,
// vaults, registry, namespaces, App Service apps).
func namePrefix(ctx *pulumi.Context, cfg *Config, provider pulumi.ProviderResource) (string, error) {
	switch cfg.NameSuffix {
	case "":
		return cfg.Prefix, nil
	case SuffixFromSubscription:
		sub := cfg.SubscriptionID
		if sub == "" {
			cc, err := authorization.GetClientConfig(ctx, pulumi.Provider(provider))
			if err != nil {
				return "", fmt.Errorf("bote:nameSuffix: cannot read the subscription id: %w", err)
			}
			sub = cc.SubscriptionId
		}
		return cfg.Prefix + "-" + SubscriptionSuffix(sub), nil
	}
	return cfg.Prefix + "-" + cfg.NameSuffix, nil
}

// SubscriptionSuffix is the name suffix derived from a subscription id.
func SubscriptionSuffix(subscriptionID string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(subscriptionID)))
	return hex.EncodeToString(sum[:2])
}

// deploy registers the environment and returns (and exports) its outputs.
func deploy(ctx *pulumi.Context) (pulumi.Map, error) {
	// size: the environment's resource graph in dependency order; helpers would only thread its outputs around.
	cfg, err := loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	provider, err := azurecloud.NewProvider(ctx, "azure-"+cfg.Cloud.Name, cfg.Cloud, azurecloud.ProviderArgs{
		Location: cfg.Location, SubscriptionID: cfg.SubscriptionID, TenantID: cfg.TenantID, UseOIDC: cfg.UseOIDC,
	})
	if err != nil {
		return nil, err
	}
	prefix, err := namePrefix(ctx, cfg, provider)
	if err != nil {
		return nil, err
	}
	rgName := prefix + "-rg"
	if err := naming.Check(naming.ResourceGroup, rgName); err != nil {
		return nil, fmt.Errorf("bote:namePrefix: %w", err)
	}
	providers := pulumi.Providers(provider)
	tags := map[string]string{"app": "bote", "environment": ctx.Stack()}

	rg, err := resources.NewResourceGroup(ctx, "rg", &resources.ResourceGroupArgs{
		ResourceGroupName: pulumi.String(rgName),
		Location:          pulumi.String(cfg.Location),
		Tags:              pulumi.ToStringMap(tags),
	}, pulumi.Provider(provider))
	if err != nil {
		return nil, fmt.Errorf("cannot register resource group: %w", err)
	}

	// The images: built now (preview too; the build is deterministic, so
	// the preview shows the digests `up` deploys), pushed by `up` once the
	// registry exists, before any app is created or updated.
	built, err := buildImages(ctx.Context(), cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot build the images: %w", err)
	}
	pusher := &images.Pusher{Ctx: ctx, Images: built, Remote: pushAuth(cfg)}
	ref := func(bin string) string {
		r, refErr := pusher.Ref(bin)
		if refErr != nil && err == nil {
			err = refErr
		}
		return r
	}
	gatewayImage, idpImage, opsImage, agentImage, connectorImage := ref("gateway"), ref("idp"), ref("opsserver"), ref("agent"), ref("connector")
	if err != nil {
		return nil, err
	}

	var regs []registry.Connector
	for _, t := range cfg.Tenants {
		regs = append(regs, t.Registrations()...)
	}
	gw, err := gateway.New(ctx, "gateway", &gateway.Args{
		Cloud: cfg.Cloud, Hosting: cfg.Hosting, Prefix: prefix, Location: cfg.Location,
		ResourceGroupName: rg.Name,
		ServiceBusSku:     cfg.ServiceBusSku, StorageSku: cfg.StorageSku, RegistrySku: cfg.RegistrySku,
		AppServiceSku: cfg.AppServiceSku, AppServiceCapacity: cfg.AppServiceCapacity,
		Images:        gateway.Images{Gateway: gatewayImage, IDP: idpImage, Push: pusher.Push},
		Registrations: regs,
		Protect:       cfg.Protect,
		Tags:          tags,
	}, providers)
	if err != nil {
		return nil, err
	}

	// Token passwords are issued once, by the first `pulumi up` that sees
	// the tenant, and read back from this stack's last outputs afterwards.
	previous, err := previousOutputs(ctx)
	if err != nil {
		return nil, err
	}
	tenants, passwords := pulumi.Map{}, pulumi.StringMap{}
	for _, spec := range cfg.Tenants { // sorted by id; keyed by id, never by position
		t, err := tenant.New(ctx, "tenant-"+spec.ID, &tenant.Args{
			Spec: spec, ResourceGroupName: rg.Name,
			StorageAccountName: gw.StorageAccountName, RegistryName: gw.Registry.Name,
			Password: &tenant.TokenPassword{Previous: previousPassword(previous, spec.ID), Issue: issuePassword(cfg)},
		}, providers)
		if err != nil {
			return nil, err
		}
		passwords[spec.ID] = t.RegistryPassword
		tenants[spec.ID] = pulumi.Map{
			"queues":         t.Queues,
			"registryToken":  t.RegistryToken,
			"agentImage":     pulumi.Sprintf("%s/%s", gw.ImageServer, agentImage),
			"connectorImage": pulumi.Sprintf("%s/%s", gw.ImageServer, connectorImage),
		}
	}

	out := pulumi.Map{
		"cloud":               pulumi.String(cfg.Cloud.Name),
		"hosting":             pulumi.String(string(cfg.Hosting)),
		"resourceGroup":       rg.Name,
		"serviceBusEndpoint":  gw.ServiceBusEndpoint,
		"storageAccount":      gw.StorageAccountName,
		"queueEndpoint":       gw.QueueEndpoint,
		"tableEndpoint":       gw.TableEndpoint,
		"blobEndpoint":        gw.BlobEndpoint,
		"keyVaultUri":         gw.KeyVaultURI,
		"idpKeyVaultUri":      gw.IDPKeyVaultURI,
		"registryLoginServer": gw.RegistryLoginServer,
		"gatewayUrl":          gw.GatewayURL,
		"workerUrl":           gw.GatewayURL, // its name before the rename, for one more release
		"idpUrl":              gw.IDPURL,
		"connectorRegistry":   gw.RegistryBlobURL,
		"tenants":             tenants,
		"images": pulumi.StringMap{
			"gateway": pulumi.Sprintf("%s/%s", gw.ImageServer, gatewayImage), "idp": pulumi.Sprintf("%s/%s", gw.ImageServer, idpImage),
			"opsserver": pulumi.Sprintf("%s/%s", gw.ImageServer, opsImage), "agent": pulumi.Sprintf("%s/%s", gw.ImageServer, agentImage),
			"connector": pulumi.Sprintf("%s/%s", gw.ImageServer, connectorImage),
		},
		"imageVersion": pulumi.String(pusher.Version()),
		// Each tenant's pull token password (user: tenants.<id>.registryToken).
		"registryPasswords": pulumi.ToSecret(passwords),
	}
	if cfg.OpsRelay {
		ops, err := opsrelay.New(ctx, "opsrelay", &opsrelay.Args{Gateway: gw, Image: opsImage, AgentVersion: pusher.Version(), OperatorAuth: cfg.OperatorAuth}, providers)
		if err != nil {
			return nil, err
		}
		out["relayEndpoint"] = ops.Endpoint
		out["relayNamespace"] = ops.Namespace
		out["relayHybridConnection"] = ops.HybridConnectionName
		out["relaySendRule"] = ops.SendRuleName
		out["relaySendKeySecretUri"] = ops.SendKeySecretURI
		out["deploymentSecretsVaultUri"] = ops.SecretsVaultURI
	}
	keys := make([]string, 0, len(out))
	for k := range out {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ctx.Export(k, out[k])
	}
	return out, nil
}
