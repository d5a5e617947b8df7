// Package apphost runs the platform's container images on the hosting the
// cloud offers: Azure Container Apps where available (public Azure), App
// Service for containers elsewhere (Azure Government, China), chosen from
// the cloud table and overridable per stack.
//
// Both shapes get the same treatment: the app's own user-assigned identity
// pulls the image (by digest) and resolves Key Vault references, secrets
// reach the container only as Key Vault references, settings are emitted in
// sorted order so previews are stable, and apps that hold WebSockets get
// WebSocket support and an idle timeout they can ping under.
package apphost

import (
	"cmp"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	app "github.com/pulumi/pulumi-azure-native-sdk/app/v2/v20240301"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/access"
	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/internal/azurenative/web"
	"github.com/botehq/platform/components/naming"
)

// IdleTimeout is the shortest front-end idle timeout of the hosting options
// (App Service closes idle connections after 230 s, Container Apps ingress
// after 240 s). Apps holding WebSockets must ping well inside it.
const IdleTimeout = 230

// DefaultPlanCapacity is the App Service plan's default instance count: two,
// so one instance can be patched or lost without an outage.
const DefaultPlanCapacity = 2

// PingInterval is the WebSocket ping interval handed to the gateway.
const PingInterval = "30s"

// PlatformArgs are the arguments of NewPlatform.
type PlatformArgs struct {
	Cloud   azurecloud.Cloud
	Hosting azurecloud.Hosting
	// Name is the physical name of the Container Apps environment or App
	// Service plan.
	Name              string
	ResourceGroupName pulumi.StringInput
	Location          string
	// LogAnalyticsCustomerID and LogAnalyticsSharedKey route Container Apps
	// logs to the workspace (unused by App Service).
	LogAnalyticsCustomerID pulumi.StringInput
	LogAnalyticsSharedKey  pulumi.StringInput
	// PlanSku is the App Service plan SKU (default P1v3).
	PlanSku string
	// PlanCapacity is the App Service plan's number of instances (default
	// DefaultPlanCapacity). The plan scales per site: each app runs on as
	// many of them as its MinReplicas (at least one), never more than
	// PlanCapacity.
	PlanCapacity int
	Tags         map[string]string
}

// Platform is where apps run: one Container Apps environment or one App
// Service plan.
type Platform struct {
	Hosting azurecloud.Hosting
	cloud   azurecloud.Cloud
	args    PlatformArgs
	env     *app.ManagedEnvironment
	plan    *web.AppServicePlan
}

// NewPlatform registers the hosting environment. Pass pulumi.Parent in opts.
func NewPlatform(ctx *pulumi.Context, name string, args PlatformArgs, opts ...pulumi.ResourceOption) (*Platform, error) {
	if err := args.Cloud.Require(args.Hosting.Service()); err != nil {
		return nil, fmt.Errorf("hosting %s: %w", args.Hosting, err)
	}
	p := &Platform{Hosting: args.Hosting, cloud: args.Cloud, args: args}
	switch args.Hosting {
	case azurecloud.HostingContainerApps:
		if err := naming.Check(naming.ManagedEnvironment, args.Name); err != nil {
			return nil, err
		}
		env, err := app.NewManagedEnvironment(ctx, name, &app.ManagedEnvironmentArgs{
			EnvironmentName:   pulumi.String(args.Name),
			ResourceGroupName: args.ResourceGroupName,
			Location:          pulumi.String(args.Location),
			AppLogsConfiguration: &app.AppLogsConfigurationArgs{
				Destination: pulumi.String("log-analytics"),
				LogAnalyticsConfiguration: &app.LogAnalyticsConfigurationArgs{
					CustomerId: args.LogAnalyticsCustomerID,
					SharedKey:  pulumi.ToSecret(args.LogAnalyticsSharedKey).(pulumi.StringOutput),
				},
			},
			Tags: pulumi.ToStringMap(args.Tags),
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("cannot register container apps environment: %w", err)
		}
		p.env = env
	case azurecloud.HostingAppService:
		if err := naming.Check(naming.AppServicePlan, args.Name); err != nil {
			return nil, err
		}
		sku := cmp.Or(args.PlanSku, "P1v3")
		if args.PlanCapacity < 0 {
			return nil, fmt.Errorf("PlanCapacity %d must not be negative", args.PlanCapacity)
		}
		p.args.PlanCapacity = cmp.Or(args.PlanCapacity, DefaultPlanCapacity)
		plan, err := web.NewAppServicePlan(ctx, name, &web.AppServicePlanArgs{
			Name:              pulumi.String(args.Name),
			ResourceGroupName: args.ResourceGroupName,
			Location:          pulumi.String(args.Location),
			Kind:              pulumi.String("linux"),
			Reserved:          pulumi.Bool(true), // Linux
			// Without per-site scaling every app runs on every instance
			// and a site's numberOfWorkers is ignored.
			PerSiteScaling: pulumi.Bool(true),
			Sku:            &web.SkuDescriptionArgs{Name: pulumi.String(sku), Capacity: pulumi.Int(p.args.PlanCapacity)},
			Tags:           pulumi.ToStringMap(args.Tags),
		}, opts...)
		if err != nil {
			return nil, fmt.Errorf("cannot register app service plan: %w", err)
		}
		p.plan = plan
	default:
		return nil, fmt.Errorf("unknown hosting %q", args.Hosting)
	}
	return p, nil
}

// AppArgs describe one app.
type AppArgs struct {
	// Name is the physical name; on App Service it is also the DNS label.
	Name string
	// Image is the repository in RegistryServer pinned by digest
	// ("bote/gateway@sha256:<64 hex>").
	Image string
	// Port is the container's HTTP port.
	Port int
	// External exposes the app's HTTP endpoint (the gateway and the idp);
	// the ops server only makes outbound connections.
	External bool
	// WebSockets enables WebSocket upgrades and the ping-friendly settings.
	WebSockets bool
	// HealthPath is probed over HTTP ("" = no probe).
	HealthPath string
	Identity   *access.Identity
	// RegistryServer is the login server the image is pulled from with the
	// identity.
	RegistryServer pulumi.StringInput
	// Settings are plain environment variables.
	Settings map[string]pulumi.StringInput
	// Secrets maps environment variable names to Key Vault secret URIs; the
	// app receives a reference, resolved with its identity.
	Secrets     map[string]pulumi.StringInput
	MinReplicas int
	MaxReplicas int
	Tags        map[string]string
}

var imageByDigest = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*@sha256:[0-9a-f]{64}$`)

// ValidateImage accepts only a repository pinned by digest
// ("bote/gateway@sha256:<64 hex digits>"); tags are mutable and refused.
func ValidateImage(ref string) error {
	if !imageByDigest.MatchString(ref) {
		return fmt.Errorf("image %q must be a repository pinned by digest: <repository>@sha256:<64 hex digits>", ref)
	}
	return nil
}

// Validate checks the app's arguments.
func (a AppArgs) Validate() error {
	switch {
	case a.Identity == nil:
		return fmt.Errorf("app %s: Identity is required", a.Name)
	case a.RegistryServer == nil:
		return fmt.Errorf("app %s: RegistryServer is required", a.Name)
	case a.Port <= 0 || a.Port > 65535:
		return fmt.Errorf("app %s: Port %d is out of range", a.Name, a.Port)
	case a.MinReplicas < 0 || a.MaxReplicas < a.MinReplicas || a.MaxReplicas == 0:
		return fmt.Errorf("app %s: replicas must satisfy 0 <= MinReplicas <= MaxReplicas, MaxReplicas > 0 (got %d..%d)", a.Name, a.MinReplicas, a.MaxReplicas)
	}
	for k := range a.Secrets {
		if _, dup := a.Settings[k]; dup {
			return fmt.Errorf("app %s: %s is both a setting and a secret", a.Name, k)
		}
	}
	return ValidateImage(a.Image)
}

// App is a running app.
type App struct {
	// URL is the app's https URL.
	URL pulumi.StringOutput
	// Resource is the ContainerApp or WebApp.
	Resource pulumi.CustomResource
}

// URLFor returns the https URL the app called name will have, known before
// the app exists (the gateway needs the idp's issuer URL and vice versa).
func (p *Platform) URLFor(name string) pulumi.StringOutput {
	if p.env != nil {
		return pulumi.Sprintf("https://%s.%s", name, p.env.DefaultDomain)
	}
	return pulumi.Sprintf("https://%s.%s", name, p.cloud.Suffixes.AppService)
}

// NewApp registers an app on the platform. Pass pulumi.Parent and the role
// assignments it needs (pulumi.DependsOn) in opts.
func (p *Platform) NewApp(ctx *pulumi.Context, name string, args AppArgs, opts ...pulumi.ResourceOption) (*App, error) {
	kind := naming.ContainerApp
	if p.Hosting == azurecloud.HostingAppService {
		kind = naming.WebApp
	}
	if err := naming.Check(kind, args.Name); err != nil {
		return nil, err
	}
	if err := args.Validate(); err != nil {
		return nil, err
	}
	if p.env != nil {
		return p.newContainerApp(ctx, name, args, opts)
	}
	return p.newWebApp(ctx, name, args, opts)
}

// secretName turns BOTE_STORAGE_ACCOUNT_KEY into storage-account-key style
// Container Apps secret names (lowercase alphanumerics and '-').
func secretName(env string) string {
	return strings.Trim(strings.ReplaceAll(strings.ToLower(env), "_", "-"), "-")
}

func (p *Platform) newContainerApp(ctx *pulumi.Context, name string, args AppArgs, opts []pulumi.ResourceOption) (*App, error) {
	var env app.EnvironmentVarArray
	var secrets app.SecretArray
	for _, k := range slices.Sorted(maps.Keys(args.Settings)) {
		env = append(env, app.EnvironmentVarArgs{Name: pulumi.String(k), Value: args.Settings[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(args.Secrets)) {
		s := secretName(k)
		secrets = append(secrets, app.SecretArgs{Name: pulumi.String(s), KeyVaultUrl: args.Secrets[k], Identity: args.Identity.ID()})
		env = append(env, app.EnvironmentVarArgs{Name: pulumi.String(k), SecretRef: pulumi.String(s)})
	}
	container := app.ContainerArgs{
		Name:  pulumi.String(args.Name),
		Image: pulumi.Sprintf("%s/%s", args.RegistryServer, args.Image),
		Env:   env,
		Resources: &app.ContainerResourcesArgs{
			Cpu:    pulumi.Float64(0.5),
			Memory: pulumi.String("1Gi"),
		},
	}
	if args.HealthPath != "" {
		container.Probes = app.ContainerAppProbeArray{
			app.ContainerAppProbeArgs{Type: pulumi.String("Liveness"), HttpGet: &app.ContainerAppProbeHttpGetArgs{Path: pulumi.String(args.HealthPath), Port: pulumi.Int(args.Port)}},
			app.ContainerAppProbeArgs{Type: pulumi.String("Readiness"), HttpGet: &app.ContainerAppProbeHttpGetArgs{Path: pulumi.String(args.HealthPath), Port: pulumi.Int(args.Port)}},
		}
	}
	config := &app.ConfigurationArgs{
		ActiveRevisionsMode: pulumi.String("Single"),
		Registries: app.RegistryCredentialsArray{
			app.RegistryCredentialsArgs{Server: args.RegistryServer, Identity: args.Identity.ID()},
		},
		Secrets: secrets,
	}
	if args.External {
		// "auto" serves HTTP/1.1 upgrades, so WebSockets pass through;
		// the ingress idle timeout (240 s) is fixed, hence the pings.
		config.Ingress = &app.IngressArgs{
			External:      pulumi.Bool(true),
			TargetPort:    pulumi.Int(args.Port),
			Transport:     pulumi.String("auto"),
			AllowInsecure: pulumi.Bool(false),
		}
	}
	ca, err := app.NewContainerApp(ctx, name, &app.ContainerAppArgs{
		ContainerAppName:     pulumi.String(args.Name),
		ResourceGroupName:    p.args.ResourceGroupName,
		Location:             pulumi.String(p.args.Location),
		ManagedEnvironmentId: p.env.ID(),
		Identity: &app.ManagedServiceIdentityArgs{
			Type:                   pulumi.String("UserAssigned"),
			UserAssignedIdentities: pulumi.StringArray{args.Identity.ID()},
		},
		Configuration: config,
		Template: &app.TemplateArgs{
			Containers: app.ContainerArray{container},
			Scale: &app.ScaleArgs{
				MinReplicas: pulumi.Int(args.MinReplicas),
				MaxReplicas: pulumi.Int(args.MaxReplicas),
			},
		},
		Tags: pulumi.ToStringMap(args.Tags),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot register container app %s: %w", args.Name, err)
	}
	return &App{URL: p.URLFor(args.Name), Resource: ca}, nil
}

func (p *Platform) newWebApp(ctx *pulumi.Context, name string, args AppArgs, opts []pulumi.ResourceOption) (*App, error) {
	if workers := max(args.MinReplicas, 1); workers > p.args.PlanCapacity {
		return nil, fmt.Errorf("app %s: %d workers do not fit the App Service plan's %d instances (PlanCapacity)", args.Name, workers, p.args.PlanCapacity)
	}
	settings := web.NameValuePairArray{
		{Name: pulumi.String("WEBSITES_PORT"), Value: pulumi.String(fmt.Sprint(args.Port))},
		{Name: pulumi.String("WEBSITES_ENABLE_APP_SERVICE_STORAGE"), Value: pulumi.String("false")},
	}
	for _, k := range slices.Sorted(maps.Keys(args.Settings)) {
		settings = append(settings, web.NameValuePairArgs{Name: pulumi.String(k), Value: args.Settings[k]})
	}
	for _, k := range slices.Sorted(maps.Keys(args.Secrets)) {
		settings = append(settings, web.NameValuePairArgs{
			Name:  pulumi.String(k),
			Value: pulumi.Sprintf("@Microsoft.KeyVault(SecretUri=%s)", args.Secrets[k]),
		})
	}
	site := &web.SiteConfigArgs{
		LinuxFxVersion:             pulumi.Sprintf("DOCKER|%s/%s", args.RegistryServer, args.Image),
		AcrUseManagedIdentityCreds: pulumi.Bool(true),
		AcrUserManagedIdentityID:   args.Identity.ClientId,
		AlwaysOn:                   pulumi.Bool(true), // keep WebSockets and listeners alive
		WebSocketsEnabled:          pulumi.Bool(args.WebSockets),
		Http20Enabled:              pulumi.Bool(true),
		MinTlsVersion:              pulumi.String("1.2"),
		FtpsState:                  pulumi.String("Disabled"),
		// App Service cannot scale to zero.
		NumberOfWorkers: pulumi.Int(max(args.MinReplicas, 1)),
		AppSettings:     settings,
	}
	if args.HealthPath != "" {
		site.HealthCheckPath = pulumi.String(args.HealthPath)
	}
	publicAccess := "Disabled"
	if args.External {
		publicAccess = "Enabled"
	}
	wa, err := web.NewWebApp(ctx, name, &web.WebAppArgs{
		Name:                  pulumi.String(args.Name),
		ResourceGroupName:     p.args.ResourceGroupName,
		Location:              pulumi.String(p.args.Location),
		Kind:                  pulumi.String("app,linux,container"),
		ServerFarmId:          p.plan.ID(),
		HttpsOnly:             pulumi.Bool(true),
		ClientAffinityEnabled: pulumi.Bool(false),
		PublicNetworkAccess:   pulumi.String(publicAccess),
		Identity: &web.ManagedServiceIdentityArgs{
			Type:                   pulumi.String("UserAssigned"),
			UserAssignedIdentities: pulumi.StringArray{args.Identity.ID()},
		},
		KeyVaultReferenceIdentity: args.Identity.ID(),
		Reserved:                  pulumi.Bool(true), // a Linux site; the SDK would send false
		SiteConfig:                site,
		Tags:                      pulumi.ToStringMap(args.Tags),
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot register web app %s: %w", args.Name, err)
	}
	return &App{URL: p.URLFor(args.Name), Resource: wa}, nil
}
