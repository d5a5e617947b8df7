package operatorauth

import "github.com/botehq/platform/runtime/operator"

// Who an operator is and what they may do live in package operator, which
// clients link without this package; these names keep the server's code
// reading as before.
type (
	Role      = operator.Role
	Grants    = operator.Grants
	Kind      = operator.Kind
	Principal = operator.Principal
	KeyInfo   = operator.KeyInfo
)

// Tenant roles and credential kinds (package operator).
const (
	RoleReader   = operator.RoleReader
	RoleOperator = operator.RoleOperator
	RoleApprover = operator.RoleApprover
	KindAPIKey   = operator.KindAPIKey
	KindOAuth2   = operator.KindOAuth2
)

// Roles lists the tenant roles, lowest first.
var Roles = operator.Roles

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) { return operator.ParseRole(s) }

// ParseTenantRole parses a "tenant=role" pair as given on command lines.
func ParseTenantRole(s string) (string, Role, error) { return operator.ParseTenantRole(s) }

// ValidateTenantID reports whether id can name a tenant.
func ValidateTenantID(id string) error { return operator.ValidateTenantID(id) }

// ValidateKeyID reports whether id can name an API key.
func ValidateKeyID(id string) error { return operator.ValidateKeyID(id) }
