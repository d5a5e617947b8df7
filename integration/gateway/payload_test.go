package gateway

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
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

	text := bytes.Repeat([]byte("compressible and secret. "), 4000) // 100 KB, about 1 KB gzipped
	random := make([]byte, 200<<10)                                 // incompressible: claim-checked ciphertext
	_, _ = rand.Read(random)
	for _, body := range [][]byte{text, random} {
		id, err := svc.SendToConnector(ctx, "tenant-a", "a1", botecloud.Outgoing{Body: body})
		require.NoError(t, err)
		m := a1.next(t, 30*time.Second)
		assert.Equal(t, id, m.ID)
		assert.True(t, bytes.Equal(body, m.Body), "a1 opens what was sealed to it")
		assert.Empty(t, m.Headers, "protocol headers are not application headers")

		id, err = a1.Send(ctx, connector.OutMessage{Body: body})
		require.NoError(t, err)
		got := <-svc.arrived
		assert.Equal(t, id, got.ID)
		assert.True(t, bytes.Equal(body, got.Body), "the cloud opens what a1 sealed to it")
	}

	d := g.busDriver(t)
	id, err := svc.SendToConnector(ctx, "tenant-a", "a2", botecloud.Outgoing{Body: []byte("for someone else")})
	require.NoError(t, err)
	assert.Equal(t, map[string]string{id: "undecodable"}, connectorErrors(t, d, 1))
	a2.none(t, 200*time.Millisecond)
}
