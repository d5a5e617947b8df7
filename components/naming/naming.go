// Package naming knows Azure's naming rules for the resource types the
// platform creates, so a name Azure would refuse is caught at preview with a
// message that names the rule, not minutes into `pulumi up`.
//
// Physical names are deterministic (derived from the stack's name prefix and,
// for per-tenant resources, the tenant id) rather than Pulumi auto-names: the
// runtime and operators address these resources by name, and several of them
// are globally unique DNS labels that must be chosen, not discovered.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Kind is a resource type with its own naming rule.
type Kind string

// Kinds the platform names explicitly.
const (
	ResourceGroup       Kind = "resource group"
	StorageAccount      Kind = "storage account"
	StorageQueue        Kind = "storage queue"
	StorageTable        Kind = "storage table"
	BlobContainer       Kind = "blob container"
	KeyVault            Kind = "key vault"
	KeyVaultSecret      Kind = "key vault secret"
	ContainerRegistry   Kind = "container registry"
	RegistryScopeMap    Kind = "registry scope map or token"
	ServiceBusNamespace Kind = "service bus namespace"
	ServiceBusEntity    Kind = "service bus queue or topic"
	RelayNamespace      Kind = "relay namespace"
	HybridConnection    Kind = "hybrid connection"
	AuthorizationRule   Kind = "authorization rule"
	ContainerApp        Kind = "container app"
	ManagedEnvironment  Kind = "container apps environment"
	AppServicePlan      Kind = "app service plan"
	WebApp              Kind = "web app"
	ManagedIdentity     Kind = "managed identity"
	LogAnalytics        Kind = "log analytics workspace"
	AppInsights         Kind = "application insights component"
)

type rule struct {
	min, max int
	pattern  *regexp.Regexp
	what     string // the allowed characters, in words
	noDouble bool   // no "--"
}

var (
	lowerAlnum        = regexp.MustCompile(`^[a-z0-9]+$`)
	alnum             = regexp.MustCompile(`^[A-Za-z0-9]+$`)
	letterAlnumHyphen = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*[A-Za-z0-9]$`)
	lowerDNS          = regexp.MustCompile(`^[a-z][a-z0-9-]*[a-z0-9]$`)
	lowerDNSDigit     = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*[a-z0-9]$`)
	alnumHyphen       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]$|^[A-Za-z0-9]$`)
	tableName         = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*$`)
	rgName            = regexp.MustCompile(`^[-\w.()]*[-\w()]$`)
	identityName      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
	sbEntity          = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	scopeMapName      = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	ruleName          = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
	insightsName      = regexp.MustCompile(`^[^%&\\?/]+$`)
)

// Rules from Microsoft's "Naming rules and restrictions for Azure resources".
var rules = map[Kind]rule{
	ResourceGroup:       {1, 90, rgName, "letters, digits, '_', '-', '.', '(' and ')', not ending in '.'", false},
	StorageAccount:      {3, 24, lowerAlnum, "lowercase letters and digits", false},
	StorageQueue:        {3, 63, lowerDNSDigit, "lowercase letters, digits and single hyphens, starting and ending with a letter or digit", true},
	StorageTable:        {3, 63, tableName, "letters and digits, starting with a letter", false},
	BlobContainer:       {3, 63, lowerDNSDigit, "lowercase letters, digits and single hyphens, starting and ending with a letter or digit", true},
	KeyVault:            {3, 24, letterAlnumHyphen, "letters, digits and single hyphens, starting with a letter and ending with a letter or digit", true},
	KeyVaultSecret:      {1, 127, alnumHyphen, "letters, digits and hyphens", false},
	ContainerRegistry:   {5, 50, alnum, "letters and digits", false},
	RegistryScopeMap:    {5, 50, scopeMapName, "letters, digits, '_' and '-'", false},
	ServiceBusNamespace: {6, 50, letterAlnumHyphen, "letters, digits and hyphens, starting with a letter and ending with a letter or digit", false},
	ServiceBusEntity:    {1, 260, sbEntity, "letters, digits, '.', '_' and '-', starting and ending with a letter or digit", false},
	RelayNamespace:      {6, 50, letterAlnumHyphen, "letters, digits and hyphens, starting with a letter and ending with a letter or digit", false},
	HybridConnection:    {1, 260, sbEntity, "letters, digits, '.', '_' and '-', starting and ending with a letter or digit", false},
	AuthorizationRule:   {1, 256, ruleName, "letters, digits, '.', '_' and '-', starting and ending with a letter or digit", false},
	ContainerApp:        {2, 32, lowerDNS, "lowercase letters, digits and single hyphens, starting with a letter and ending with a letter or digit", true},
	ManagedEnvironment:  {2, 60, letterAlnumHyphen, "letters, digits and hyphens, starting with a letter and ending with a letter or digit", false},
	AppServicePlan:      {1, 60, alnumHyphen, "letters, digits and hyphens", false},
	WebApp:              {2, 60, alnumHyphen, "letters, digits and hyphens, not starting or ending with a hyphen", false},
	ManagedIdentity:     {3, 128, identityName, "letters, digits, '_' and '-', starting with a letter or digit", false},
	LogAnalytics:        {4, 63, alnumHyphen, "letters, digits and hyphens, starting and ending with a letter or digit", false},
	AppInsights:         {1, 260, insightsName, "any characters except %&\\?/", false},
}

// ErrInvalidName reports a name Azure would refuse.
var ErrInvalidName = errors.New("invalid Azure resource name")

// Check reports whether Azure accepts name for a resource of kind.
func Check(kind Kind, name string) error {
	r, ok := rules[kind]
	if !ok {
		return fmt.Errorf("%w: no naming rule for %q", ErrInvalidName, kind)
	}
	switch {
	case len(name) < r.min || len(name) > r.max:
		return fmt.Errorf("%w: %s name %q is %d characters; Azure allows %d to %d", ErrInvalidName, kind, name, len(name), r.min, r.max)
	case !r.pattern.MatchString(name):
		return fmt.Errorf("%w: %s name %q: Azure allows only %s", ErrInvalidName, kind, name, r.what)
	case r.noDouble && strings.Contains(name, "--"):
		return fmt.Errorf("%w: %s name %q: Azure does not allow consecutive hyphens", ErrInvalidName, kind, name)
	case kind == ServiceBusNamespace && (strings.HasSuffix(name, "-sb") || strings.HasSuffix(name, "-mgmt")):
		return fmt.Errorf("%w: %s name %q must not end in -sb or -mgmt", ErrInvalidName, kind, name)
	}
	return nil
}

// Names are physical names to check together; Check returns the first bad one.
type Names map[Kind][]string

// Check checks every name, in a stable order.
func (n Names) Check() error {
	kinds := make([]string, 0, len(n))
	for k := range n {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		for _, name := range n[Kind(k)] {
			if err := Check(Kind(k), name); err != nil {
				return err
			}
		}
	}
	return nil
}

var prefixPattern = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// MaxPrefix is the longest name prefix: long enough to say "bote-prod-eu",
// short enough that prefix-derived names fit the tightest rules (storage
// account and key vault, 24 characters) with their suffixes.
const MaxPrefix = 16

// ValidatePrefix checks a stack's name prefix: lowercase letters, digits and
// single hyphens, starting with a letter, at most MaxPrefix characters.
func ValidatePrefix(prefix string) error {
	switch {
	case prefix == "":
		return errors.New("is empty")
	case len(prefix) > MaxPrefix:
		return fmt.Errorf("%q is %d characters; the limit is %d (storage account and key vault names derive from it)", prefix, len(prefix), MaxPrefix)
	case !prefixPattern.MatchString(prefix):
		return fmt.Errorf("%q must be lowercase letters, digits and single hyphens, starting with a letter", prefix)
	}
	return nil
}

// Compact drops the hyphens, for kinds that allow only letters and digits.
func Compact(s string) string { return strings.ReplaceAll(s, "-", "") }

// Label derives a readable, collision-safe name part from an id of any
// shape: its lowercase letters and digits (other runs folded to one
// hyphen), cut to fit, then a hash of the exact id. Ids that differ only in
// case or punctuation get different labels. The result is at most max
// characters (max >= 10).
func Label(id string, max int) string {
	sum := sha256.Sum256([]byte(id))
	hash := hex.EncodeToString(sum[:])[:8]
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	readable := b.String()
	if keep := max - len(hash) - 1; len(readable) > keep {
		readable = readable[:keep]
	}
	readable = strings.Trim(readable, "-")
	if readable == "" {
		return hash
	}
	return readable + "-" + hash
}
