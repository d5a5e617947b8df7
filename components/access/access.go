// Package access gives each app its own user-assigned managed identity and
// grants it data-plane roles on the individual resources it uses.
//
// Least privilege is enforced here, not left to review: Grant accepts only
// the built-in data-plane roles in this package (never Owner, Contributor or
// User Access Administrator), and a role assignment whose scope is a
// subscription or a resource group fails the deployment.
//
// A role assignment's name is a UUIDv5 of what Azure keys it by: the scope's
// resource id, the principal id and the role definition id. It is stable
// across previews (a re-run never duplicates an assignment) and differs
// between stacks, whose identities and resources differ: Azure refuses a
// second assignment of the same name with other properties
// (RoleAssignmentUpdateNotPermitted), so a name seeded by logical names
// alone would collide as soon as a second environment (staging, prod)
// deploys into the same Entra tenant.
package access

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/pulumi/pulumi-azure-native-sdk/authorization/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/internal/azurenative/managedidentity"
	"github.com/botehq/platform/components/naming"
)

// Role is an Azure built-in role. Built-in role definition GUIDs are the same
// in every cloud and tenant.
type Role struct {
	Name  string // display name
	Short string // used in logical names
	ID    string // role definition GUID
}

// Data-plane roles the platform grants.
var (
	ServiceBusDataSender    = Role{"Azure Service Bus Data Sender", "sb-send", "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39"}
	ServiceBusDataReceiver  = Role{"Azure Service Bus Data Receiver", "sb-receive", "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0"}
	StorageQueueContributor = Role{"Storage Queue Data Contributor", "queue-rw", "974c5e8b-45b9-4653-ba55-5f855dd0fb88"}
	StorageTableContributor = Role{"Storage Table Data Contributor", "table-rw", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"}
	StorageBlobContributor  = Role{"Storage Blob Data Contributor", "blob-rw", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"}
	StorageBlobReader       = Role{"Storage Blob Data Reader", "blob-read", "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"}
	KeyVaultSecretsUser     = Role{"Key Vault Secrets User", "kv-secret-read", "4633458b-17de-408a-b874-0445c86b69e6"}
	// KeyVaultSecretsOfficer reads and writes secrets (no access
	// management): only the idp, on its own signing-key vault.
	KeyVaultSecretsOfficer = Role{"Key Vault Secrets Officer", "kv-secret-rw", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}
	AcrPull                = Role{"AcrPull", "acr-pull", "7f951dda-4ed3-4680-a7ca-43fe172d538d"}
	// StorageBlobDelegator may only obtain a user delegation key, to sign
	// blob SAS links with Entra ID instead of the account key; it reads no
	// data.
	StorageBlobDelegator = Role{"Storage Blob Delegator", "blob-delegator", "db58b8e5-c6ad-4a2a-8342-4190687cbf4a"}
)

var grantable = []Role{ServiceBusDataSender, ServiceBusDataReceiver, StorageQueueContributor,
	StorageTableContributor, StorageBlobContributor, StorageBlobReader, KeyVaultSecretsUser, KeyVaultSecretsOfficer, AcrPull,
	StorageBlobDelegator}

// roleAssignmentsNamespace seeds the UUIDv5 role assignment names. Changing
// it renames (replaces) every role assignment.
var roleAssignmentsNamespace = uuid.MustParse("5d0a4c7e-3f1b-4a8e-9c2d-6b7e8f9a0b1c")

// Privileged roles that Grant refuses; tests check that no registered role
// assignment names one.
var (
	Owner                   = Role{"Owner", "owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"}
	Contributor             = Role{"Contributor", "contributor", "b24988ac-6180-42a0-ab88-20f7382dd24c"}
	UserAccessAdministrator = Role{"User Access Administrator", "uaa", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"}
)

// Errors Grant and CheckScope return.
var (
	ErrForbiddenRole = errors.New("role is not a grantable data-plane role")
	ErrScopeTooBroad = errors.New("role assignment scope is broader than one resource")
)

const roleDefinitionIDFormat = "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s"

// Grantable lists the roles Grant accepts.
func Grantable() []Role { return append([]Role(nil), grantable...) }

// RoleByID returns the grantable role with definition GUID id.
func RoleByID(id string) (Role, bool) {
	for _, r := range grantable {
		if strings.EqualFold(r.ID, id) {
			return r, true
		}
	}
	return Role{}, false
}

// IdentityArgs are the arguments of NewIdentity.
type IdentityArgs struct {
	// IdentityName is the physical name.
	IdentityName      string
	ResourceGroupName pulumi.StringInput
	Location          string
	Tags              map[string]string
}

// Identity is one app's user-assigned managed identity.
type Identity struct {
	*managedidentity.UserAssignedIdentity
	// Name is the logical name, the prefix of its grants' names.
	Name string
}

// NewIdentity registers a user-assigned managed identity.
func NewIdentity(ctx *pulumi.Context, name string, args IdentityArgs, opts ...pulumi.ResourceOption) (*Identity, error) {
	if err := naming.Check(naming.ManagedIdentity, args.IdentityName); err != nil {
		return nil, fmt.Errorf("identity %s: %w", name, err)
	}
	if args.ResourceGroupName == nil {
		return nil, fmt.Errorf("identity %s: ResourceGroupName is required", name)
	}
	id, err := managedidentity.NewUserAssignedIdentity(ctx, name, &managedidentity.UserAssignedIdentityArgs{
		ResourceName:      pulumi.String(args.IdentityName),
		ResourceGroupName: args.ResourceGroupName,
		Location:          pulumi.String(args.Location),
		Tags:              pulumi.ToStringMap(args.Tags),
	}, opts...)
	if err != nil {
		return nil, err
	}
	return &Identity{UserAssignedIdentity: id, Name: name}, nil
}

// Scope is the one resource a role is granted on.
type Scope struct {
	// Name identifies the resource in logical names ("queue-bote-cloud").
	Name string
	// ID is the resource id; it must name a resource inside a resource
	// group, never the subscription or the group itself.
	ID pulumi.StringInput
}

// Grant assigns role to the identity on scope.
func (id *Identity) Grant(ctx *pulumi.Context, role Role, scope Scope, opts ...pulumi.ResourceOption) (*authorization.RoleAssignment, error) {
	if _, ok := RoleByID(role.ID); !ok {
		return nil, fmt.Errorf("cannot grant %q to %s: %w", role.Name, id.Name, ErrForbiddenRole)
	}
	if scope.Name == "" || scope.ID == nil {
		return nil, fmt.Errorf("cannot grant %q to %s: scope name and id are required", role.Name, id.Name)
	}
	name := fmt.Sprintf("%s-%s-%s", id.Name, role.Short, scope.Name)
	roleDef := scope.ID.ToStringOutput().ApplyT(func(scopeID string) (string, error) {
		sub, err := CheckScope(scopeID)
		if err != nil {
			return "", fmt.Errorf("role assignment %s: %w", name, err)
		}
		return fmt.Sprintf(roleDefinitionIDFormat, sub, role.ID), nil
	}).(pulumi.StringOutput)
	ra, err := authorization.NewRoleAssignment(ctx, name, &authorization.RoleAssignmentArgs{
		RoleAssignmentName: AssignmentName(scope.ID, id.PrincipalId, role),
		PrincipalId:        id.PrincipalId,
		PrincipalType:      pulumi.String("ServicePrincipal"),
		RoleDefinitionId:   roleDef,
		Scope:              scope.ID,
		Description:        pulumi.String(fmt.Sprintf("%s: %s on %s", id.Name, role.Name, scope.Name)),
		// Azure allows one assignment per (scope, principal, role): a
		// replacement must delete the old one before creating the new one
		// or the create fails with RoleAssignmentExists.
	}, append(opts, pulumi.DeleteBeforeReplace(true))...)
	if err != nil {
		return nil, fmt.Errorf("cannot register role assignment %s: %w", name, err)
	}
	return ra, nil
}

// AssignmentName is the role assignment's name: a UUIDv5 of scope id,
// principal id and role definition GUID, the triple Azure identifies an
// assignment by.
func AssignmentName(scopeID, principalID pulumi.StringInput, role Role) pulumi.StringOutput {
	return pulumi.All(scopeID.ToStringOutput(), principalID.ToStringOutput()).ApplyT(func(v []any) string {
		key := strings.ToLower(v[0].(string) + "|" + v[1].(string) + "|" + role.ID)
		return uuid.NewSHA1(roleAssignmentsNamespace, []byte(key)).String()
	}).(pulumi.StringOutput)
}

// CheckScope accepts a resource id below a resource group
// (/subscriptions/S/resourceGroups/G/providers/...) and returns its
// subscription id. Subscription, resource-group and management-group scopes
// are refused.
func CheckScope(scopeID string) (subscription string, err error) {
	parts := strings.Split(strings.Trim(scopeID, "/"), "/")
	if len(parts) < 6 || !strings.EqualFold(parts[0], "subscriptions") || parts[1] == "" ||
		!strings.EqualFold(parts[2], "resourceGroups") || parts[3] == "" || !strings.EqualFold(parts[4], "providers") {
		return "", fmt.Errorf("%w: %q", ErrScopeTooBroad, scopeID)
	}
	return parts[1], nil
}
