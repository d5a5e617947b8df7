package secretstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runproto"
)

// VaultClient is what KeyVault needs of *azsecrets.Client.
type VaultClient interface {
	GetSecret(ctx context.Context, name, version string, opts *azsecrets.GetSecretOptions) (azsecrets.GetSecretResponse, error)
	SetSecret(ctx context.Context, name string, params azsecrets.SetSecretParameters, opts *azsecrets.SetSecretOptions) (azsecrets.SetSecretResponse, error)
	DeleteSecret(ctx context.Context, name string, opts *azsecrets.DeleteSecretOptions) (azsecrets.DeleteSecretResponse, error)
}

var _ VaultClient = (*azsecrets.Client)(nil)

// KeyVault is a Store with one Key Vault secret per workspace: its value
// is the JSON of runproto.Secrets, its tags name tenant and workspace.
// Secret names are derived (SecretName) because Key Vault names allow only
// letters, digits and '-'. The vault's soft delete keeps deleted secrets
// recoverable for its retention period.
type KeyVault struct {
	client VaultClient
}

// NewKeyVault returns a Store over client (azsecrets.NewClient with the
// vault URL from the stack outputs and the server's managed identity, which
// needs "Key Vault Secrets User" to read, "Officer" to write).
func NewKeyVault(client VaultClient) (*KeyVault, error) {
	if client == nil {
		return nil, errors.New("key vault store: client is nil")
	}
	return &KeyVault{client: client}, nil
}

// SecretName is the Key Vault secret of a workspace: "ws-" and 40 hex
// digits of SHA-256 over tenant and workspace (unambiguous, and under the
// 127-character limit for any ids).
func SecretName(tenant ids.TenantID, workspace ids.WorkspaceID) string {
	sum := sha256.Sum256([]byte(string(tenant) + "\x00" + string(workspace)))
	return "ws-" + hex.EncodeToString(sum[:20])
}

func notFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// Get implements Store.
func (k *KeyVault) Get(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (runproto.Secrets, error) {
	resp, err := k.client.GetSecret(ctx, SecretName(tenant, workspace), "", nil)
	switch {
	case notFound(err):
		return runproto.Secrets{}, nil
	case err != nil:
		return runproto.Secrets{}, fmt.Errorf("cannot read secrets of workspace %s/%s: %w", tenant, workspace, err)
	case resp.Value == nil:
		return runproto.Secrets{}, nil
	}
	if t := resp.Tags["tenant"]; t == nil || *t != string(tenant) || resp.Tags["workspace"] == nil || *resp.Tags["workspace"] != string(workspace) {
		return runproto.Secrets{}, fmt.Errorf("cannot read secrets of workspace %s/%s: secret %s is tagged for another workspace", tenant, workspace, SecretName(tenant, workspace))
	}
	var s runproto.Secrets
	if err := json.Unmarshal([]byte(*resp.Value), &s); err != nil {
		return runproto.Secrets{}, fmt.Errorf("cannot decode secrets of workspace %s/%s: %w", tenant, workspace, err)
	}
	return s, nil
}

// Put implements Store.
func (k *KeyVault) Put(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, s runproto.Secrets) error {
	if err := Validate(s); err != nil {
		return err
	}
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("cannot encode secrets: %w", err)
	}
	_, err = k.client.SetSecret(ctx, SecretName(tenant, workspace), azsecrets.SetSecretParameters{
		Value:       to.Ptr(string(b)),
		ContentType: to.Ptr("application/json"),
		// managed-by keeps the ops server's old name, as on every secret
		// written before the rename.
		Tags: map[string]*string{"tenant": to.Ptr(string(tenant)), "workspace": to.Ptr(string(workspace)), "managed-by": to.Ptr("bote-relayserver")},
	}, nil)
	if err != nil {
		return fmt.Errorf("cannot store secrets of workspace %s/%s: %w", tenant, workspace, err)
	}
	return nil
}

// Delete implements Store.
func (k *KeyVault) Delete(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) error {
	_, err := k.client.DeleteSecret(ctx, SecretName(tenant, workspace), nil)
	if err != nil && !notFound(err) {
		return fmt.Errorf("cannot delete secrets of workspace %s/%s: %w", tenant, workspace, err)
	}
	return nil
}
