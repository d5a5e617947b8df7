package operatorauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/botehq/platform/runtime/operator"
)

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
				return fmt.Errorf("tenants[%s]: role %q must be one of %s", t, r, operator.RoleNames())
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
