// Package operator says who an operator of the ops server is (Principal:
// how they authenticated and their id) and what they may do (Grants:
// platform administrator, or a Role per tenant), with the rules for role
// names and API key ids and the listing of a key (KeyInfo). The server's
// operatorauth enforces them; clients such as opsbot parse and print them
// without linking the server's code. It depends on nothing of ours but ids.
package operator

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// Kind says how an operator authenticated.
type Kind string

// Kinds of credential.
const (
	KindAPIKey Kind = "api-key"
	KindOAuth2 Kind = "oauth2"
)

// Principal is an authenticated operator. Its embedded Grants answer
// authorization questions: p.Allows(tenant, RoleOperator), p.RoleIn(tenant),
// p.IsAdmin(), p.TenantIDs().
type Principal struct {
	Kind Kind `json:"kind"`
	// ID is the key id for API keys, the object id (or sub) for OAuth2.
	ID string `json:"id"`
	// Name is for humans and logs: the key id, or the token's
	// preferred_username (or sub).
	Name string `json:"name"`
	// Grants say what the principal may do: admin, or a role per tenant
	// (see Role). A principal with no grants is authenticated but may do
	// nothing.
	Grants
}

// String is what logs show: "api-key:alice-laptop".
func (p Principal) String() string { return string(p.Kind) + ":" + p.Name }

// Subject identifies the principal stably, "kind:id" (for OAuth2 the
// object id, which unlike the user name never changes hands). Compare
// principals by Subject, never by String.
func (p Principal) Subject() string { return string(p.Kind) + ":" + p.ID }

var keyIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidateKeyID reports whether id can name an API key: 1 to 63 lowercase
// letters, digits and dashes, starting with a letter or digit.
func ValidateKeyID(id string) error {
	if !keyIDPattern.MatchString(id) {
		return fmt.Errorf("key id %q must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit", id)
	}
	return nil
}

// State is "active" or "revoked", for listings.
func (k KeyInfo) State() string {
	if k.Disabled {
		return "revoked"
	}
	return "active"
}

// KeyInfo describes an API key without its secret or hash.
type KeyInfo struct {
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	Created     time.Time `json:"created,omitzero"`
	Rotated     time.Time `json:"rotated,omitzero"`
	Revoked     time.Time `json:"revoked,omitzero"`
	Disabled    bool      `json:"disabled,omitempty"`
	Grants
}

// Role is what an operator may do in one tenant. Roles form a ladder: each
// includes the ones below it.
//
//   - reader: list and show workspaces, runs and agents; read and follow
//     run logs.
//   - operator: reader, plus create and change workspaces, queue plans and
//     destroy plans, cancel runs.
//   - approver: operator, plus approve a saved plan (which applies it).
//
// Approver includes operator because a principal holds one role per tenant
// and whoever may apply a plan can already change the infrastructure; the
// separation of duties that matters (nobody approves their own plan) is the
// workspace's four-eyes option, enforced per run.
//
// Platform administrators are not a tenant role: Grants.Admin gives every
// role in every tenant plus API key management.
type Role string

// Tenant roles, lowest first.
const (
	RoleReader   Role = "reader"
	RoleOperator Role = "operator"
	RoleApprover Role = "approver"
)

// Roles lists the tenant roles, lowest first.
var Roles = []Role{RoleReader, RoleOperator, RoleApprover}

func (r Role) rank() int { return slices.Index(Roles, r) }

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() >= 0 }

// Includes reports whether a principal with role r may do what want allows.
// An invalid role includes nothing and is included by nothing.
func (r Role) Includes(want Role) bool {
	return r.Valid() && want.Valid() && r.rank() >= want.rank()
}

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fmt.Errorf("role %q must be one of %s", s, RoleNames())
	}
	return r, nil
}

// RoleNames lists the tenant roles for messages: "reader, operator,
// approver".
func RoleNames() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// Grants is what a principal may do: platform admin, or a role in each of
// a set of tenants. The zero value grants nothing. API keys store their
// grants with the key (KeyEntry); OAuth2 principals get theirs from token
// claims through a RoleMap.
type Grants struct {
	// Admin may do everything in every tenant and manage API keys.
	Admin bool `json:"admin,omitempty"`
	// Tenants maps tenant id to the principal's role there.
	Tenants map[string]Role `json:"tenants,omitempty"`
}

// Validate reports the first invalid tenant id or role.
func (g Grants) Validate() error {
	for _, t := range slices.Sorted(maps.Keys(g.Tenants)) {
		if err := ValidateTenantID(t); err != nil {
			return fmt.Errorf("tenants: %w", err)
		}
		if !g.Tenants[t].Valid() {
			return fmt.Errorf("tenants[%s]: role %q must be one of %s", t, g.Tenants[t], RoleNames())
		}
	}
	return nil
}

// Clone copies the tenant map so that a principal never shares it with
// the key set it came from.
func (g Grants) Clone() Grants {
	g.Tenants = maps.Clone(g.Tenants)
	return g
}

// IsAdmin reports whether the grants make a platform administrator.
func (g Grants) IsAdmin() bool { return g.Admin }

// RoleIn is the role held in tenant: RoleApprover (the highest) for an
// admin, "" when none.
func (g Grants) RoleIn(tenant string) Role {
	if g.Admin {
		return RoleApprover
	}
	return g.Tenants[tenant]
}

// Allows reports whether the grants include role want in tenant.
func (g Grants) Allows(tenant string, want Role) bool {
	return g.RoleIn(tenant).Includes(want)
}

// TenantIDs lists the tenants with any role, sorted; nil for an admin
// (who has all tenants, known or not).
func (g Grants) TenantIDs() []string {
	if g.Admin {
		return nil
	}
	tenants := make([]string, 0, len(g.Tenants))
	for t, r := range g.Tenants {
		if r.Valid() {
			tenants = append(tenants, t)
		}
	}
	sort.Strings(tenants)
	return tenants
}

// Empty reports whether the grants allow nothing at all.
func (g Grants) Empty() bool { return !g.Admin && len(g.TenantIDs()) == 0 }

// String is a compact form for logs and listings: "admin", or
// "t1=reader,t2=operator", or "none".
func (g Grants) String() string {
	if g.Admin {
		return "admin"
	}
	tenants := g.TenantIDs()
	if len(tenants) == 0 {
		return "none"
	}
	parts := make([]string, len(tenants))
	for i, t := range tenants {
		parts[i] = t + "=" + string(g.Tenants[t])
	}
	return strings.Join(parts, ",")
}

// ParseTenantRole parses a "tenant=role" pair as given on command lines.
func ParseTenantRole(s string) (string, Role, error) {
	t, r, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%q must be tenant=role (role one of %s)", s, RoleNames())
	}
	if err := ValidateTenantID(t); err != nil {
		return "", "", err
	}
	role, err := ParseRole(r)
	if err != nil {
		return "", "", err
	}
	return t, role, nil
}

// ValidateTenantID reports whether id can name a tenant (the rule of
// ids.Validate, which every tenant id on the platform follows).
func ValidateTenantID(id string) error { return ids.Validate("tenant", id) }
