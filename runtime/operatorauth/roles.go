package operatorauth

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/botehq/platform/runtime/queuename"
)

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
		return "", fmt.Errorf("role %q must be one of %s", s, roleNames())
	}
	return r, nil
}

func roleNames() string {
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
			return fmt.Errorf("tenants[%s]: role %q must be one of %s", t, g.Tenants[t], roleNames())
		}
	}
	return nil
}

// clone copies the tenant map so that a principal never shares it with
// the key set it came from.
func (g Grants) clone() Grants {
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
	ids := make([]string, 0, len(g.Tenants))
	for t, r := range g.Tenants {
		if r.Valid() {
			ids = append(ids, t)
		}
	}
	sort.Strings(ids)
	return ids
}

// Empty reports whether the grants allow nothing at all.
func (g Grants) Empty() bool { return !g.Admin && len(g.TenantIDs()) == 0 }

// String is a compact form for logs and listings: "admin", or
// "t1=reader,t2=operator", or "none".
func (g Grants) String() string {
	if g.Admin {
		return "admin"
	}
	ids := g.TenantIDs()
	if len(ids) == 0 {
		return "none"
	}
	parts := make([]string, len(ids))
	for i, t := range ids {
		parts[i] = t + "=" + string(g.Tenants[t])
	}
	return strings.Join(parts, ",")
}

// ParseTenantRole parses a "tenant=role" pair as given on command lines.
func ParseTenantRole(s string) (string, Role, error) {
	t, r, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("%q must be tenant=role (role one of %s)", s, roleNames())
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
// queuename.ValidateID, which every tenant id on the platform follows).
func ValidateTenantID(id string) error { return queuename.ValidateID("tenant", id) }
