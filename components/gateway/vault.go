package gateway

import (
	"github.com/pulumi/pulumi-azure-native-sdk/authorization/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/keyvault/v2"
	"github.com/pulumi/pulumi-azure-native-sdk/storage/v2"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/botehq/platform/components/naming"
)

func (b *builder) vault() error {
	newVault := func(logical, name string) (*keyvault.Vault, error) {
		return NewVault(b.ctx, b.child(logical), VaultArgs{
			Name: name, ResourceGroupName: b.args.ResourceGroupName, Location: b.args.Location,
			Protect: b.args.Protect, Tags: b.args.Tags,
		}, b.parent)
	}
	v, err := newVault("vault", b.n.vault)
	if err != nil {
		return err
	}
	b.gw.Vault = v
	b.gw.KeyVaultURI = v.Properties.VaultUri()

	// The idp's signing keys get a vault of their own: the idp writes
	// them, and must not read the storage and relay keys in the other.
	if b.idpVault, err = newVault("idp-vault", b.n.idpVault); err != nil {
		return err
	}
	b.gw.IDPKeyVaultURI = b.idpVault.Properties.VaultUri()

	keys := storage.ListStorageAccountKeysOutput(b.ctx, storage.ListStorageAccountKeysOutputArgs{
		AccountName: b.gw.StorageAccount.Name, ResourceGroupName: b.args.ResourceGroupName,
	}, b.parent)
	key := keys.Keys().Index(pulumi.Int(0)).Value()
	s, err := NewSecret(b.ctx, b.child("secret-"+SecretStorageKey), v, b.args.ResourceGroupName, SecretStorageKey, key, b.parent)
	if err != nil {
		return err
	}
	b.storageKey = s
	return nil
}

// VaultArgs are the arguments of NewVault.
type VaultArgs struct {
	Name              string
	ResourceGroupName pulumi.StringInput
	Location          string
	// Protect turns on purge protection and 90 days of soft-delete
	// retention, and protects the resource in Pulumi.
	Protect bool
	Tags    map[string]string
}

// NewVault registers an RBAC-mode Key Vault (access by role, no access
// policies) in the deploying identity's tenant.
//
// Soft delete is always on (Azure no longer allows turning it off): a
// deleted vault, and every deleted secret, keeps its name for the retention
// period. On a protected stack the vault also gets purge protection (90
// days, and irreversible: nobody can purge early). An unprotected stack
// (torn down and rebuilt freely) gets neither: 7 days' retention and no
// purge protection, so `az keyvault purge` frees the names at once
// (docs/infrastructure.md). Azure refuses enablePurgeProtection=false, so
// the property is left out rather than set to false.
// parent is the component it belongs to (it also carries the provider).
func NewVault(ctx *pulumi.Context, name string, args VaultArgs, parent pulumi.ResourceOrInvokeOption) (*keyvault.Vault, error) {
	if err := naming.Check(naming.KeyVault, args.Name); err != nil {
		return nil, err
	}
	client := authorization.GetClientConfigOutput(ctx, parent)
	props := &keyvault.VaultPropertiesArgs{
		TenantId:                  client.TenantId(),
		Sku:                       &keyvault.SkuArgs{Family: pulumi.String("A"), Name: keyvault.SkuNameStandard},
		EnableRbacAuthorization:   pulumi.Bool(true),
		EnableSoftDelete:          pulumi.Bool(true),
		SoftDeleteRetentionInDays: pulumi.Int(7),
		PublicNetworkAccess:       pulumi.String("Enabled"),
	}
	if args.Protect {
		props.SoftDeleteRetentionInDays = pulumi.Int(90)
		props.EnablePurgeProtection = pulumi.Bool(true)
	}
	return keyvault.NewVault(ctx, name, &keyvault.VaultArgs{
		VaultName:         pulumi.String(args.Name),
		ResourceGroupName: args.ResourceGroupName,
		Location:          pulumi.String(args.Location),
		Properties:        props,
		Tags:              pulumi.ToStringMap(args.Tags),
	}, parent, pulumi.Protect(args.Protect))
}

// NewSecret stores value (marked secret) in vault. Apps receive its URI as a
// Key Vault reference, never the value.
func NewSecret(ctx *pulumi.Context, name string, vault *keyvault.Vault, rg pulumi.StringInput, secretName string, value pulumi.StringInput, opts ...pulumi.ResourceOption) (*keyvault.Secret, error) {
	if err := naming.Check(naming.KeyVaultSecret, secretName); err != nil {
		return nil, err
	}
	return keyvault.NewSecret(ctx, name, &keyvault.SecretArgs{
		SecretName:        pulumi.String(secretName),
		VaultName:         vault.Name,
		ResourceGroupName: rg,
		Properties: &keyvault.SecretPropertiesArgs{
			Value: pulumi.ToSecret(value).(pulumi.StringOutput),
		},
	}, opts...)
}
