package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/config"

	"github.com/botehq/platform/components/azurecloud"
	"github.com/botehq/platform/components/gateway"
	"github.com/botehq/platform/components/images"
	"github.com/botehq/platform/components/naming"
	"github.com/botehq/platform/components/opsrelay"
	"github.com/botehq/platform/components/tenant"
)

// Config is one environment's stack config (project namespace "bote").
type Config struct {
	Cloud    azurecloud.Cloud
	Hosting  azurecloud.Hosting
	Location string
	Prefix   string
	// NameSuffix is "", SuffixFromSubscription or an explicit suffix.
	NameSuffix string
	// AcceptProviderIssues lists known provider defects in this cloud the
	// operator has read and will check after `pulumi up` (azurecloud.Preflight).
	AcceptProviderIssues []string
	SubscriptionID       string
	TenantID             string
	UseOIDC              bool
	ServiceBusSku        string
	StorageSku           string
	RegistrySku          string
	AppServiceSku        string
	AppServiceCapacity   int
	OpsRelay             bool
	Protect              bool
	// Terraform is what the agent image carries (bote:terraform).
	Terraform images.Terraform
	// OperatorAuth (bote:operatorAuth) lets operators in with Entra ID
	// tokens and maps their app roles or groups to tenant roles; nil:
	// API keys only.
	OperatorAuth *opsrelay.OperatorAuth
	// Tenants sorted by id.
	Tenants []tenant.Spec
}

// SuffixFromSubscription as bote:nameSuffix derives the suffix from the
// subscription id.
const SuffixFromSubscription = "subscription"

var suffixPattern = regexp.MustCompile(`^[a-z0-9]{1,6}$`)

// ErrConfig marks a bad stack config value.
var ErrConfig = errors.New("bad stack config")

func configErr(key string, format string, args ...any) error {
	return fmt.Errorf("%w: bote:%s: %s", ErrConfig, key, fmt.Sprintf(format, args...))
}

// loadConfig reads and validates the stack config. Every error names the
// config key to fix.
func loadConfig(ctx *pulumi.Context) (*Config, error) {
	// size: one read-and-check per config key, each naming its key in the error.
	c := config.New(ctx, "")
	var cfg Config
	var err error

	if cfg.Cloud, err = azurecloud.Lookup(c.Get("cloud")); err != nil {
		return nil, configErr("cloud", "%v", err)
	}
	if cfg.Location = c.Get("location"); cfg.Location == "" {
		return nil, configErr("location", "is required (e.g. eastus, usgovvirginia)")
	}
	cfg.Prefix = c.Get("namePrefix")
	if err := naming.ValidatePrefix(cfg.Prefix); err != nil {
		return nil, configErr("namePrefix", "%v", err)
	}
	cfg.NameSuffix = c.Get("nameSuffix")
	suffixLen := len(cfg.NameSuffix)
	switch {
	case cfg.NameSuffix == SuffixFromSubscription:
		suffixLen = len(SubscriptionSuffix(""))
	case cfg.NameSuffix != "" && !suffixPattern.MatchString(cfg.NameSuffix):
		return nil, configErr("nameSuffix", "%q: want %q or 1 to 6 lowercase letters and digits", cfg.NameSuffix, SuffixFromSubscription)
	}
	if suffixLen > 0 {
		if err := naming.ValidatePrefix(cfg.Prefix + "-" + strings.Repeat("x", suffixLen)); err != nil {
			return nil, configErr("nameSuffix", "bote:namePrefix plus the suffix: %v", err)
		}
	}
	if raw := c.Get("acceptProviderIssues"); raw != "" {
		if err := decodeStrict(raw, &cfg.AcceptProviderIssues); err != nil {
			return nil, configErr("acceptProviderIssues", "%v (want a list of issue ids)", err)
		}
	}
	h, err := azurecloud.ParseHosting(c.Get("hosting"))
	if err != nil {
		return nil, configErr("hosting", "%v", err)
	}
	if cfg.Hosting, err = cfg.Cloud.ResolveHosting(h); err != nil {
		return nil, configErr("hosting", "%v", err)
	}
	cfg.SubscriptionID = c.Get("subscriptionId")
	cfg.TenantID = c.Get("tenantId")
	cfg.ServiceBusSku = c.Get("serviceBusSku")
	if cfg.ServiceBusSku != "" && !slices.Contains(gateway.ServiceBusSkus, cfg.ServiceBusSku) {
		return nil, configErr("serviceBusSku", "%q: want one of %v", cfg.ServiceBusSku, gateway.ServiceBusSkus)
	}
	cfg.StorageSku = c.Get("storageSku")
	cfg.RegistrySku = c.Get("registrySku")
	cfg.AppServiceSku = c.Get("appServiceSku")
	if v := c.Get("appServiceCapacity"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 30 {
			return nil, configErr("appServiceCapacity", "%q: want a number of instances from 1 to 30", v)
		}
		cfg.AppServiceCapacity = n
	}
	for _, b := range []struct {
		key  string
		dst  *bool
		dflt bool
	}{{"useOidc", &cfg.UseOIDC, false}, {"opsRelay", &cfg.OpsRelay, true}, {"protect", &cfg.Protect, true}} {
		if *b.dst, err = parseBool(c.Get(b.key), b.dflt); err != nil {
			return nil, configErr(b.key, "%v", err)
		}
	}

	if c.Get("images") != "" {
		return nil, configErr("images", "is no longer used: `pulumi up` builds and pushes the images itself; remove the key")
	}
	if err := decodeStrict(c.Get("terraform"), &cfg.Terraform); err != nil {
		return nil, configErr("terraform", "%v (want version and platforms: {linux/amd64: {path, sha256}, linux/arm64: {path, sha256}})", err)
	}
	if err := cfg.Terraform.Validate(images.Platforms); err != nil {
		return nil, configErr("terraform", "%v", err)
	}

	if raw := c.Get("tenants"); raw != "" {
		if err := decodeStrict(raw, &cfg.Tenants); err != nil {
			return nil, configErr("tenants", "%v", err)
		}
	}
	if err := validateTenants(cfg.Tenants); err != nil {
		return nil, err
	}
	sort.Slice(cfg.Tenants, func(i, j int) bool { return cfg.Tenants[i].ID < cfg.Tenants[j].ID })
	if raw := c.Get("operatorAuth"); raw != "" {
		if cfg.OperatorAuth, err = loadOperatorAuth(raw, &cfg); err != nil {
			return nil, err
		}
	}
	// Last: the config is otherwise valid.
	if err := azurecloud.Preflight(cfg.Cloud, azurecloud.ProviderVersion, cfg.AcceptProviderIssues); err != nil {
		return nil, configErr("acceptProviderIssues", "%v", err)
	}
	return &cfg, nil
}

// operatorAuthConfig is bote:operatorAuth: the ops server's settings,
// plus the operators' Entra tenant to derive the issuer from.
type operatorAuthConfig struct {
	opsrelay.OperatorAuth
	// TenantID is the operators' Entra tenant; the issuer is then the
	// stack cloud's authority for it (default bote:tenantId).
	TenantID string `json:"tenantId,omitempty"`
}

// loadOperatorAuth reads bote:operatorAuth. The issuer defaults to the
// cloud's Entra ID authority for the operators' tenant, and an explicit
// one may not be another cloud's Entra ID. Every tenant the roles name
// must be a configured tenant, so that a typo never grants a role in a
// tenant onboarded later.
func loadOperatorAuth(raw string, cfg *Config) (*opsrelay.OperatorAuth, error) {
	const key = "operatorAuth"
	var oc operatorAuthConfig
	if err := decodeStrict(raw, &oc); err != nil {
		return nil, configErr(key, "%v (want audience, roles, and tenantId or issuer; optionally requiredRole)", err)
	}
	oa := oc.OperatorAuth
	if !cfg.OpsRelay {
		return nil, configErr(key, "needs bote:opsRelay (the ops server is what operators authenticate to)")
	}
	switch tid := cmp.Or(oc.TenantID, cfg.TenantID); {
	case oa.Issuer != "" && oc.TenantID != "":
		return nil, configErr(key, "issuer and tenantId: give one")
	case oa.Issuer == "" && tid == "":
		return nil, configErr(key, "tenantId: give the operators' Entra tenant (or issuer, or set bote:tenantId)")
	case oa.Issuer == "":
		oa.Issuer = "https://" + cfg.Cloud.Suffixes.Login + "/" + tid + "/v2.0"
	}
	if err := oa.Validate(); err != nil {
		return nil, configErr(key, "%v", err)
	}
	if u, err := url.Parse(oa.Issuer); err == nil {
		for _, name := range azurecloud.Names() {
			other, _ := azurecloud.Lookup(name)
			if other.Name != cfg.Cloud.Name && strings.EqualFold(u.Hostname(), other.Suffixes.Login) {
				return nil, configErr(key, "issuer %s is Entra ID of cloud %s, not of this stack's cloud %s (%s)", oa.Issuer, other.Name, cfg.Cloud.Name, cfg.Cloud.Suffixes.Login)
			}
		}
	}
	known := map[string]bool{}
	for _, t := range cfg.Tenants {
		known[t.ID] = true
	}
	for _, t := range slices.Sorted(maps.Keys(oa.Roles.Tenants)) {
		if !known[t] {
			return nil, configErr(key, "roles.tenants.%s: no such tenant in bote:tenants", t)
		}
	}
	return &oa, nil
}

// validateTenants checks every tenant and that ids are unique.
func validateTenants(tenants []tenant.Spec) error {
	seen := map[string]int{}
	for i, t := range tenants {
		if j, dup := seen[t.ID]; dup {
			return configErr(fmt.Sprintf("tenants[%d]", i), "tenant %q is already tenants[%d]", t.ID, j)
		}
		seen[t.ID] = i
		if err := t.Validate(); err != nil {
			return configErr(fmt.Sprintf("tenants[%d]", i), "%v", err)
		}
	}
	return nil
}

// parseBool reads "true"/"false" ("" gives dflt); unlike Config.GetBool it
// refuses anything else instead of reading it as false.
func parseBool(v string, dflt bool) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "":
		return dflt, nil
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q: want true or false", v)
}

// decodeStrict decodes a structured config value, refusing unknown fields:
// a misspelt "conectors" must not silently deploy a tenant without its
// connectors.
func decodeStrict(raw string, v any) error {
	if strings.TrimSpace(raw) == "" {
		return errors.New("is required")
	}
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("cannot decode: %w", err)
	}
	if dec.More() {
		return errors.New("cannot decode: trailing data")
	}
	return nil
}
