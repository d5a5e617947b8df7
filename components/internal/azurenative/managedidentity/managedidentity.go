// Package managedidentity stands in for
// github.com/pulumi/pulumi-azure-native-sdk/managedidentity/v2 (not served by
// our module proxy): user-assigned identities under the same type token and
// field names. See package azurenative.
package managedidentity

import (
	"reflect"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/internal/azurenative"
)

// UserAssignedIdentity is azure-native:managedidentity:UserAssignedIdentity.
type UserAssignedIdentity struct {
	pulumi.CustomResourceState

	ClientId    pulumi.StringOutput `pulumi:"clientId"`
	Name        pulumi.StringOutput `pulumi:"name"`
	PrincipalId pulumi.StringOutput `pulumi:"principalId"`
	TenantId    pulumi.StringOutput `pulumi:"tenantId"`
}

// UserAssignedIdentityArgs are the arguments of NewUserAssignedIdentity.
type UserAssignedIdentityArgs struct {
	Location          pulumi.StringPtrInput `pulumi:"location"`
	ResourceGroupName pulumi.StringInput    `pulumi:"resourceGroupName"`
	ResourceName      pulumi.StringPtrInput `pulumi:"resourceName"`
	Tags              pulumi.StringMapInput `pulumi:"tags"`
}

// ElementType implements pulumi.Input.
func (UserAssignedIdentityArgs) ElementType() reflect.Type {
	return reflect.TypeOf((*UserAssignedIdentityArgs)(nil)).Elem()
}

// NewUserAssignedIdentity registers a user-assigned managed identity.
func NewUserAssignedIdentity(ctx *pulumi.Context, name string, args *UserAssignedIdentityArgs, opts ...pulumi.ResourceOption) (*UserAssignedIdentity, error) {
	if args == nil {
		args = &UserAssignedIdentityArgs{}
	}
	return azurenative.New[UserAssignedIdentity](ctx, "azure-native:managedidentity:UserAssignedIdentity", name, args, map[string]bool{"ResourceGroupName": args.ResourceGroupName != nil}, opts...)
}
