package identity

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/registry"
)

// TestRegistryFromBlob runs the idp the way the Pulumi stack deploys it: the
// registry is the blob the stack publishes (stack output registryBlobUrl),
// and a new registration is picked up when the blob changes.
func TestRegistryFromBlob(t *testing.T) {
	t.Parallel()
	az := azurite.New(t)
	ctx := context.Background()
	client, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	_, err = client.CreateContainer(ctx, "bote-registry", nil)
	require.NoError(t, err)

	e := newIDPEnv(t)
	agent := newConnector(t, e.dir, "contoso", "agent-01")
	late := newConnector(t, e.dir, "contoso", "agent-02")
	publish := func(cs ...connector) {
		var regs []registry.Connector
		for _, c := range cs {
			jwk, err := clientauth.PublicJWK(c.key, "")
			require.NoError(t, err)
			regs = append(regs, registry.Connector{Tenant: c.tenant, ID: c.id, JWK: jwk})
		}
		doc, err := registry.Marshal(regs)
		require.NoError(t, err)
		_, err = client.UploadBuffer(ctx, "bote-registry", "connectors.json", doc, nil)
		require.NoError(t, err)
	}
	publish(agent)

	// A read-only SAS stands in for the managed identity Azure uses.
	blobClient := client.ServiceClient().NewContainerClient("bote-registry").NewBlobClient("connectors.json")
	sasURL, err := blobClient.GetSASURL(sas.BlobPermissions{Read: true}, time.Now().Add(time.Hour), nil)
	require.NoError(t, err)

	p := procs.Start(t, procs.Spec{
		Name: "idp", Path: e.bin,
		Args: []string{
			"--listen", fmt.Sprintf("127.0.0.1:%d", e.port), "--issuer", e.issuer,
			"--registry-url", sasURL, "--key-dir", filepath.Join(e.dir, "keys"), "--registry-poll", "100ms",
		},
	})
	_, err = p.ListenAddr(30 * time.Second)
	require.NoError(t, err)
	assert.NotContains(t, p.Output(), "sig=", "the SAS token is never logged")

	_, err = e.tokenSource(t, agent).Token(ctx)
	require.NoError(t, err)
	_, err = e.tokenSource(t, late).Token(ctx)
	require.Error(t, err, "not registered yet")

	publish(agent, late)
	require.Eventually(t, func() bool {
		_, err := e.tokenSource(t, late).Token(ctx)
		return err == nil
	}, 15*time.Second, 200*time.Millisecond, "a registration published to the blob is picked up without restart")
}
