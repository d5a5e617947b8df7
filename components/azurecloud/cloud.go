// Package azurecloud is the one table of Azure clouds the platform deploys to
// (public, usgovernment, china): the endpoint suffixes of the services we use
// and which of those services each cloud offers.
//
// Everything cloud-specific in the Pulumi components comes from here. A stack
// names its cloud once; Lookup rejects unknown names instead of falling back
// to public Azure (the azure-native provider's own fallback), and Require
// turns "this service does not exist in that cloud" into an error at preview
// that names both. NewProvider is the only way the components build an
// azure-native provider, and it always sets the provider's environment.
package azurecloud

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Service is an Azure service the platform may deploy.
type Service string

// Services the platform uses.
const (
	ServiceBus        Service = "Service Bus"
	Relay             Service = "Azure Relay"
	Storage           Service = "Storage"
	KeyVault          Service = "Key Vault"
	ContainerRegistry Service = "Container Registry"
	ContainerApps     Service = "Container Apps"
	AppService        Service = "App Service"
	LogAnalytics      Service = "Log Analytics"
	AppInsights       Service = "Application Insights"
	ManagedIdentity   Service = "Managed Identities"
)

// Hosting is how the platform's apps run.
type Hosting string

// Hosting choices.
const (
	HostingContainerApps Hosting = "containerapps"
	HostingAppService    Hosting = "appservice"
)

// Service returns the Azure service a hosting choice needs.
func (h Hosting) Service() Service {
	if h == HostingAppService {
		return AppService
	}
	return ContainerApps
}

// ParseHosting validates a hosting name; "" means "the cloud's default".
func ParseHosting(s string) (Hosting, error) {
	switch h := Hosting(strings.ToLower(s)); h {
	case HostingContainerApps, HostingAppService, "":
		return h, nil
	}
	return "", fmt.Errorf("unknown hosting %q: want %q or %q", s, HostingContainerApps, HostingAppService)
}

// Suffixes are the DNS suffixes (and login/management hosts) of a cloud.
type Suffixes struct {
	ServiceBus        string // namespaces: <ns>.<ServiceBus>; Relay namespaces share it
	Storage           string // <account>.blob.<Storage>, queue., table.
	KeyVault          string // <vault>.<KeyVault>
	ContainerRegistry string // <registry>.<ContainerRegistry>
	AppService        string // <site>.<AppService>
	Login             string // Entra ID authority host
	Management        string // Azure Resource Manager host
}

// Cloud is one Azure cloud.
type Cloud struct {
	// Name is the canonical name, also the azure-native provider's
	// environment value: "public", "usgovernment" or "china".
	Name     string
	Suffixes Suffixes
	// DefaultHosting is used when a stack does not choose.
	DefaultHosting Hosting
	// AuthorityHost is the Entra ID authority URL apps hand to azidentity
	// (AZURE_AUTHORITY_HOST).
	AuthorityHost string
	services      []Service
	aliases       []string
}

// Offers reports whether the cloud offers s.
func (c Cloud) Offers(s Service) bool { return slices.Contains(c.services, s) }

// Services lists what the cloud offers, sorted.
func (c Cloud) Services() []Service {
	out := slices.Clone(c.services)
	slices.Sort(out)
	return out
}

// ErrUnavailable reports a service that a cloud does not offer.
var ErrUnavailable = errors.New("service not offered in this cloud")

// ErrUnknownCloud reports a cloud name that is not in the table.
var ErrUnknownCloud = errors.New("unknown cloud")

// Require fails, naming the service and the cloud, unless the cloud offers
// every service listed.
func (c Cloud) Require(services ...Service) error {
	for _, s := range services {
		if !c.Offers(s) {
			return fmt.Errorf("%w: %s is not available in the %s cloud (offered there: %s)",
				ErrUnavailable, s, c.Name, joinServices(c.Services()))
		}
	}
	return nil
}

// ResolveHosting returns the hosting to use: the override when set, else the
// cloud's default; either way it must be offered by the cloud.
func (c Cloud) ResolveHosting(override Hosting) (Hosting, error) {
	h := override
	if h == "" {
		h = c.DefaultHosting
	}
	if err := c.Require(h.Service()); err != nil {
		return "", fmt.Errorf("hosting %s: %w", h, err)
	}
	return h, nil
}

func joinServices(ss []Service) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// The table. Sources: Microsoft "Compare Azure Government and global Azure"
// (2023-06-08) for suffixes; the FedRAMP audit-scope table and
// microsoft/azure-container-apps#612 for Container Apps being absent from
// Azure Government. Relay in usgovernment and Container Apps in china are
// judgement calls recorded in docs/infrastructure.md; verify with
// `az provider show -n Microsoft.Relay` / `-n Microsoft.App` in the target
// subscription before relying on them, and change them only here.
var table = []Cloud{
	{
		Name: "public",
		Suffixes: Suffixes{
			ServiceBus:        "servicebus.windows.net",
			Storage:           "core.windows.net",
			KeyVault:          "vault.azure.net",
			ContainerRegistry: "azurecr.io",
			AppService:        "azurewebsites.net",
			Login:             "login.microsoftonline.com",
			Management:        "management.azure.com",
		},
		DefaultHosting: HostingContainerApps,
		AuthorityHost:  "https://login.microsoftonline.com/",
		services: []Service{ServiceBus, Relay, Storage, KeyVault, ContainerRegistry, ContainerApps,
			AppService, LogAnalytics, AppInsights, ManagedIdentity},
		aliases: []string{"azurecloud", "azurepubliccloud"},
	},
	{
		Name: "usgovernment",
		Suffixes: Suffixes{
			ServiceBus:        "servicebus.usgovcloudapi.net",
			Storage:           "core.usgovcloudapi.net",
			KeyVault:          "vault.usgovcloudapi.net",
			ContainerRegistry: "azurecr.us",
			AppService:        "azurewebsites.us",
			Login:             "login.microsoftonline.us",
			Management:        "management.usgovcloudapi.net",
		},
		DefaultHosting: HostingAppService,
		AuthorityHost:  "https://login.microsoftonline.us/",
		services: []Service{ServiceBus, Relay, Storage, KeyVault, ContainerRegistry,
			AppService, LogAnalytics, AppInsights, ManagedIdentity},
		aliases: []string{"usgov", "azureusgovernment", "azureusgovernmentcloud"},
	},
	{
		Name: "china",
		Suffixes: Suffixes{
			ServiceBus:        "servicebus.chinacloudapi.cn",
			Storage:           "core.chinacloudapi.cn",
			KeyVault:          "vault.azure.cn",
			ContainerRegistry: "azurecr.cn",
			AppService:        "chinacloudsites.cn",
			Login:             "login.chinacloudapi.cn",
			Management:        "management.chinacloudapi.cn",
		},
		DefaultHosting: HostingAppService,
		AuthorityHost:  "https://login.chinacloudapi.cn/",
		services: []Service{ServiceBus, Relay, Storage, KeyVault, ContainerRegistry,
			AppService, LogAnalytics, AppInsights, ManagedIdentity},
		aliases: []string{"azurechinacloud"},
	},
}

// Lookup returns the cloud called name: a canonical name or one of the
// aliases the azure-native provider accepts, case-insensitively. Anything else
// is an error; there is no fallback to public Azure.
func Lookup(name string) (Cloud, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, c := range table {
		if n == c.Name || slices.Contains(c.aliases, n) {
			return c, nil
		}
	}
	return Cloud{}, fmt.Errorf("%w %q: want one of %s", ErrUnknownCloud, name, strings.Join(Names(), ", "))
}

// Names lists the canonical cloud names, sorted.
func Names() []string {
	out := make([]string, len(table))
	for i, c := range table {
		out[i] = c.Name
	}
	sort.Strings(out)
	return out
}

// PublicHostMarkers are substrings that identify a public-cloud Azure host.
// A sovereign-cloud stack must never name one; tests scan every registered
// input and output for them. The list is the public cloud's own suffixes plus
// the shorter parents that catch hosts we do not model (e.g. *.azure.com).
func PublicHostMarkers() []string {
	pub, _ := Lookup("public")
	s := pub.Suffixes
	set := map[string]bool{
		s.ServiceBus: true, s.Storage: true, s.KeyVault: true, s.ContainerRegistry: true,
		s.AppService: true, s.Login: true, s.Management: true,
		"windows.net": true, "azure.com": true, "azure.net": true, "azurecr.io": true,
		"microsoftonline.com": true, "azurewebsites.net": true, "azurecontainerapps.io": true,
		"applicationinsights.azure.com": true,
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
