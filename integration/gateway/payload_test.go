package gateway

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/registry"
)

// TestEncryptedPayloads: with keys configured, bodies travel compressed
// and encrypted end to end both ways, claim-checked ones too, and open
// only at the recipient; a connector whose key the body was not sealed to
// sends it to the error queue as undecodable, never to its handler.
func TestEncryptedPayloads(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	cloudKey, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	wrongKey, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	svc := g.cloudWith("pinger", func(cfg *botecloud.Config) {
		cfg.CompressAbove, cfg.DecryptionKey = 1024, cloudKey
		cfg.ConnectorKey = func(_ context.Context, tenant, conn string) (*ecdh.PublicKey, error) {
			if conn == "a2" {
				return wrongKey.PublicKey(), nil // not a2's registered key
			}
			k, err := g.keys[registry.ClientID(tenant, conn)].ECDH()
			if err != nil {
				return nil, err
			}
			return k.PublicKey(), nil
		}
	}, nil)
	a1 := g.connector("tenant-a", "a1", func(cfg *connector.Config) { cfg.CompressAbove, cfg.CloudKey = 1024, cloudKey.PublicKey() })
	a2 := g.connector("tenant-a", "a2")
	ctx := ctxFor(t, 60*time.Second)

	var b bytes.Buffer // 119 KB, about 10 KB gzipped (a compression past 100:1 would be sent as is)
	for i := range 4000 {
		fmt.Fprintf(&b, "compressible and secret %d. ", i)
	}
	text := b.Bytes()
	random := make([]byte, 200<<10) // incompressible: claim-checked ciphertext
	_, _ = rand.Read(random)
	for _, body := range [][]byte{text, random} {
		id, err := svc.SendToConnector(ctx, "tenant-a", "a1", botecloud.OutMessage{Body: body})
		require.NoError(t, err)
		m := a1.next(t, 30*time.Second)
		assert.Equal(t, id, m.ID)
		assert.True(t, bytes.Equal(body, m.Body), "a1 opens what was sealed to it")
		assert.Empty(t, m.Headers, "protocol headers are not application headers")

		id, err = a1.Send(ctx, connector.OutMessage{Body: body})
		require.NoError(t, err)
		got := receive(t, svc.arrived, 30*time.Second, "message at the cloud")
		assert.Equal(t, id, got.ID)
		assert.True(t, bytes.Equal(body, got.Body), "the cloud opens what a1 sealed to it")
	}

	// What the gateway stores for a connector that is offline (a3 never
	// connects): the queue message and the claim-checked blob hold
	// ciphertext only.
	for _, body := range [][]byte{text, random} {
		_, err := svc.SendToConnector(ctx, "tenant-a", "a3", botecloud.OutMessage{Body: body})
		require.NoError(t, err)
	}
	stored := storedEnvelopes(t, g, "tenant-a", "a3", 2)
	claims, err := claimcheck.New(ctx, claimcheck.Config{ConnectionString: g.emu.ConnectionString})
	require.NoError(t, err)
	for _, env := range stored {
		assert.Equal(t, envelope.EncryptionHPKE, env.Headers[envelope.HeaderEncryption])
		stored := env.Body
		if env.Claim != nil {
			stored, err = claims.Fetch(ctx, env.Claim)
			require.NoError(t, err)
		}
		assert.False(t, bytes.Contains(stored, []byte("secret")), "plaintext in storage")
		assert.False(t, bytes.Contains(stored, random[:64]), "plaintext in storage")
	}

	d := g.busDriver(t)
	id, err := svc.SendToConnector(ctx, "tenant-a", "a2", botecloud.OutMessage{Body: []byte("for someone else")})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{id: "undecodable"}, connectorErrors(t, d, 1))
	a2.none(t, 200*time.Millisecond)
}

// storedEnvelopes peeks at the envelopes waiting in a connector's queue
// until there are want of them.
func storedEnvelopes(t *testing.T, g *gateway, tenant, conn string, want int) []*envelope.Envelope {
	t.Helper()
	name, err := queuename.For(ids.ConnectorID{Tenant: ids.TenantID(tenant), Connector: conn})
	require.NoError(t, err)
	q, err := azqueue.NewQueueClientFromConnectionString(g.emu.ConnectionString, name, nil)
	require.NoError(t, err)
	var out []*envelope.Envelope
	require.Eventually(t, func() bool {
		resp, err := q.PeekMessages(context.Background(), &azqueue.PeekMessagesOptions{NumberOfMessages: to.Ptr(int32(32))})
		if err != nil || len(resp.Messages) < want {
			return false
		}
		out = nil
		for _, m := range resp.Messages {
			env, err := envelope.Decode([]byte(*m.MessageText))
			require.NoError(t, err)
			out = append(out, env)
		}
		return true
	}, 30*time.Second, 100*time.Millisecond)
	return out
}
