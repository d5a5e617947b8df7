package operatorauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/botehq/platform/runtime/ids"
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
// ids.Validate, which every tenant id on the platform follows).
func ValidateTenantID(id string) error { return ids.Validate("tenant", id) }

// RoleMap gives OAuth2 principals their grants from token claims. Each
// value says which claim it matches: "role:<value>" an app role value in
// the token's "roles" claim, "group:<object id>" a group in its "groups"
// claim. The two are separate namespaces: a group whose id happens to equal
// an app role value (or the other way round) grants nothing. A principal
// gets the highest role any matching value gives it in each tenant, and
// admin if any value in Admin matches. A token matching nothing is
// authenticated but may do nothing.
//
//	{"admin": ["role:Platform.Admin"],
//	 "tenants": {
//	   "contoso": {"reader": ["group:<object id>"], "approver": ["role:Contoso.Approver"]}}}
//
// Prefer app roles assigned to groups over raw group ids: Entra leaves out
// the groups claim for a user in more than 200 groups (the overage case),
// and such a user would then get no role.
type RoleMap struct {
	// Admin lists claim values that make a platform administrator.
	Admin []string `json:"admin,omitempty"`
	// Tenants maps tenant id to role to the claim values giving that role.
	Tenants map[string]map[Role][]string `json:"tenants,omitempty"`
}

// Prefixes of RoleMap values: which token claim a value matches.
const (
	ClaimRole  = "role:"
	ClaimGroup = "group:"
)

// validateClaimValue checks a RoleMap value; field names it in the error.
func validateClaimValue(field, v string) error {
	for prefix, what := range map[string]string{ClaimRole: "app role", ClaimGroup: "group"} {
		if rest, ok := strings.CutPrefix(v, prefix); ok {
			if strings.TrimSpace(rest) == "" {
				return fmt.Errorf("%s: %q names no %s", field, v, what)
			}
			return nil
		}
	}
	return fmt.Errorf("%s: %q must say which claim it matches: %q (an app role) or %q", field, v, ClaimRole+strings.TrimSpace(v), ClaimGroup+"<object id>")
}

// Validate reports the first invalid tenant id, role or claim value.
func (m RoleMap) Validate() error {
	for i, v := range m.Admin {
		if err := validateClaimValue(fmt.Sprintf("admin[%d]", i), v); err != nil {
			return err
		}
	}
	for _, t := range slices.Sorted(maps.Keys(m.Tenants)) {
		if err := ValidateTenantID(t); err != nil {
			return fmt.Errorf("tenants: %w", err)
		}
		for _, r := range slices.Sorted(maps.Keys(m.Tenants[t])) {
			if !r.Valid() {
				return fmt.Errorf("tenants[%s]: role %q must be one of %s", t, r, roleNames())
			}
			for i, v := range m.Tenants[t][r] {
				if err := validateClaimValue(fmt.Sprintf("tenants[%s][%s][%d]", t, r, i), v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// ParseRoleMap decodes and validates a role map; unknown fields are
// errors, so that a typo never silently drops a grant.
func ParseRoleMap(data []byte) (RoleMap, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m RoleMap
	if err := dec.Decode(&m); err != nil {
		return RoleMap{}, fmt.Errorf("cannot decode role map: %w", err)
	}
	if err := m.Validate(); err != nil {
		return RoleMap{}, fmt.Errorf("invalid role map: %w", err)
	}
	return m, nil
}

// Grants returns what a token with the given "roles" and "groups" claim
// values may do.
func (m RoleMap) Grants(roles, groups []string) Grants {
	values := make(map[string]bool, len(roles)+len(groups))
	for _, r := range roles {
		values[ClaimRole+r] = true
	}
	for _, g := range groups {
		values[ClaimGroup+g] = true
	}
	has := func(vs []string) bool { return slices.ContainsFunc(vs, func(v string) bool { return values[v] }) }
	var g Grants
	if has(m.Admin) {
		g.Admin = true
	}
	for t, byRole := range m.Tenants {
		for r, vs := range byRole {
			if has(vs) && !g.Tenants[t].Includes(r) {
				if g.Tenants == nil {
					g.Tenants = map[string]Role{}
				}
				g.Tenants[t] = r
			}
		}
	}
	return g
}
