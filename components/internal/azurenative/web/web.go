// Package web stands in for github.com/pulumi/pulumi-azure-native-sdk/web/v2
// (not served by our module proxy): App Service plans and web apps (App
// Service for containers) under the same type tokens and field names. See
// package azurenative.
package web

import (
	"reflect"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/internal/azurenative"
)

// AppServicePlan is azure-native:web:AppServicePlan.
type AppServicePlan struct {
	pulumi.CustomResourceState

	Name pulumi.StringOutput `pulumi:"name"`
}

// SkuDescriptionArgs is a plan SKU, e.g. Name "P1v3", Tier "PremiumV3".
type SkuDescriptionArgs struct {
	Capacity pulumi.IntPtrInput    `pulumi:"capacity"`
	Name     pulumi.StringPtrInput `pulumi:"name"`
	Tier     pulumi.StringPtrInput `pulumi:"tier"`
}

// AppServicePlanArgs are the arguments of NewAppServicePlan.
type AppServicePlanArgs struct {
	HyperV            pulumi.BoolPtrInput   `pulumi:"hyperV"`
	IsXenon           pulumi.BoolPtrInput   `pulumi:"isXenon"`
	Kind              pulumi.StringPtrInput `pulumi:"kind"`
	PerSiteScaling    pulumi.BoolPtrInput   `pulumi:"perSiteScaling"`
	Location          pulumi.StringPtrInput `pulumi:"location"`
	Name              pulumi.StringPtrInput `pulumi:"name"`
	Reserved          pulumi.BoolPtrInput   `pulumi:"reserved"`
	ResourceGroupName pulumi.StringInput    `pulumi:"resourceGroupName"`
	Sku               *SkuDescriptionArgs   `pulumi:"sku"`
	Tags              pulumi.StringMapInput `pulumi:"tags"`
	ZoneRedundant     pulumi.BoolPtrInput   `pulumi:"zoneRedundant"`
}

// ElementType implements pulumi.Input.
func (AppServicePlanArgs) ElementType() reflect.Type {
	return reflect.TypeOf((*AppServicePlanArgs)(nil)).Elem()
}

// NewAppServicePlan registers an App Service plan.
func NewAppServicePlan(ctx *pulumi.Context, name string, args *AppServicePlanArgs, opts ...pulumi.ResourceOption) (*AppServicePlan, error) {
	if args == nil {
		args = &AppServicePlanArgs{}
	}
	// The SDK constructor's defaults.
	for _, f := range []*pulumi.BoolPtrInput{&args.HyperV, &args.IsXenon, &args.PerSiteScaling, &args.Reserved, &args.ZoneRedundant} {
		if *f == nil {
			*f = pulumi.BoolPtr(false)
		}
	}
	return azurenative.New[AppServicePlan](ctx, "azure-native:web:AppServicePlan", name, args, map[string]bool{"ResourceGroupName": args.ResourceGroupName != nil}, opts...)
}

// WebApp is azure-native:web:WebApp.
type WebApp struct {
	pulumi.CustomResourceState

	DefaultHostName pulumi.StringOutput `pulumi:"defaultHostName"`
	Name            pulumi.StringOutput `pulumi:"name"`
}

// ManagedServiceIdentityArgs assigns identities to a site. In azure-native v2
// UserAssignedIdentities is a list of identity resource ids.
type ManagedServiceIdentityArgs struct {
	Type                   pulumi.StringInput      `pulumi:"type"`
	UserAssignedIdentities pulumi.StringArrayInput `pulumi:"userAssignedIdentities"`
}

// NameValuePairArgs is one app setting.
type NameValuePairArgs struct {
	Name  pulumi.StringPtrInput `pulumi:"name"`
	Value pulumi.StringPtrInput `pulumi:"value"`
}

// NameValuePairArray is a list of app settings.
type NameValuePairArray []NameValuePairArgs

// SiteConfigArgs is the subset of site configuration we set.
type SiteConfigArgs struct {
	AcrUseManagedIdentityCreds pulumi.BoolPtrInput   `pulumi:"acrUseManagedIdentityCreds"`
	AcrUserManagedIdentityID   pulumi.StringPtrInput `pulumi:"acrUserManagedIdentityID"`
	AlwaysOn                   pulumi.BoolPtrInput   `pulumi:"alwaysOn"`
	AppSettings                NameValuePairArray    `pulumi:"appSettings"`
	FtpsState                  pulumi.StringPtrInput `pulumi:"ftpsState"`
	HealthCheckPath            pulumi.StringPtrInput `pulumi:"healthCheckPath"`
	Http20Enabled              pulumi.BoolPtrInput   `pulumi:"http20Enabled"`
	LinuxFxVersion             pulumi.StringPtrInput `pulumi:"linuxFxVersion"`
	LocalMySqlEnabled          pulumi.BoolPtrInput   `pulumi:"localMySqlEnabled"`
	NetFrameworkVersion        pulumi.StringPtrInput `pulumi:"netFrameworkVersion"`
	MinTlsVersion              pulumi.StringPtrInput `pulumi:"minTlsVersion"`
	NumberOfWorkers            pulumi.IntPtrInput    `pulumi:"numberOfWorkers"`
	WebSocketsEnabled          pulumi.BoolPtrInput   `pulumi:"webSocketsEnabled"`
}

// WebAppArgs are the arguments of NewWebApp.
type WebAppArgs struct {
	ClientAffinityEnabled     pulumi.BoolPtrInput         `pulumi:"clientAffinityEnabled"`
	HttpsOnly                 pulumi.BoolPtrInput         `pulumi:"httpsOnly"`
	HyperV                    pulumi.BoolPtrInput         `pulumi:"hyperV"`
	Identity                  *ManagedServiceIdentityArgs `pulumi:"identity"`
	IsXenon                   pulumi.BoolPtrInput         `pulumi:"isXenon"`
	KeyVaultReferenceIdentity pulumi.StringPtrInput       `pulumi:"keyVaultReferenceIdentity"`
	Kind                      pulumi.StringPtrInput       `pulumi:"kind"`
	Location                  pulumi.StringPtrInput       `pulumi:"location"`
	Name                      pulumi.StringPtrInput       `pulumi:"name"`
	PublicNetworkAccess       pulumi.StringPtrInput       `pulumi:"publicNetworkAccess"`
	Reserved                  pulumi.BoolPtrInput         `pulumi:"reserved"`
	ResourceGroupName         pulumi.StringInput          `pulumi:"resourceGroupName"`
	ScmSiteAlsoStopped        pulumi.BoolPtrInput         `pulumi:"scmSiteAlsoStopped"`
	ServerFarmId              pulumi.StringPtrInput       `pulumi:"serverFarmId"`
	SiteConfig                *SiteConfigArgs             `pulumi:"siteConfig"`
	Tags                      pulumi.StringMapInput       `pulumi:"tags"`
}

// ElementType implements pulumi.Input.
func (WebAppArgs) ElementType() reflect.Type { return reflect.TypeOf((*WebAppArgs)(nil)).Elem() }

// NewWebApp registers a web app.
func NewWebApp(ctx *pulumi.Context, name string, args *WebAppArgs, opts ...pulumi.ResourceOption) (*WebApp, error) {
	if args == nil {
		args = &WebAppArgs{}
	}
	// The SDK constructor's defaults, on the site and its site config.
	for _, f := range []*pulumi.BoolPtrInput{&args.HyperV, &args.IsXenon, &args.Reserved, &args.ScmSiteAlsoStopped} {
		if *f == nil {
			*f = pulumi.BoolPtr(false)
		}
	}
	if sc := args.SiteConfig; sc != nil {
		if sc.Http20Enabled == nil {
			sc.Http20Enabled = pulumi.BoolPtr(true)
		}
		if sc.LocalMySqlEnabled == nil {
			sc.LocalMySqlEnabled = pulumi.BoolPtr(false)
		}
		if sc.NetFrameworkVersion == nil {
			sc.NetFrameworkVersion = pulumi.StringPtr("v4.6")
		}
	}
	return azurenative.New[WebApp](ctx, "azure-native:web:WebApp", name, args, map[string]bool{"ResourceGroupName": args.ResourceGroupName != nil}, opts...)
}
