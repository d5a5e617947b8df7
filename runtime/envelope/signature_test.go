package envelope

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func signedEnvelope(t *testing.T, key *ecdsa.PrivateKey) *Envelope {
	t.Helper()
	env := &Envelope{ID: "m1", Kind: KindTargeted, Tenant: "t1", Connector: "c1", From: &Identity{Service: "svc"},
		Headers: map[string]string{"kind": "ping"}, ContentType: "text/plain", Body: []byte("hello"), CreatedAt: time.Now().UTC()}
	require.NoError(t, env.Sign(key))
	// What the receiver gets: the encoded envelope, decoded.
	enc, err := Encode(env)
	require.NoError(t, err)
	got, err := Decode(enc)
	require.NoError(t, err)
	return got
}

func TestSignatureVerifiesAfterTheWire(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	env := signedEnvelope(t, key)
	require.NoError(t, env.VerifySignature(&key.PublicKey))

	// A body the bus moved to Blob storage verifies as the inline body.
	claimed := env.Clone()
	sum := sha256.Sum256(claimed.Body)
	claimed.Body, claimed.Claim = nil, &Claim{Container: "c", Blob: "b", Size: 5, SHA256: hex.EncodeToString(sum[:])}
	assert.NoError(t, claimed.VerifySignature(&key.PublicKey))
	claimed.Body = []byte("hello") // resolved by a receiver with a claim store
	assert.NoError(t, claimed.VerifySignature(&key.PublicKey))
}

func TestSignatureRefuses(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tests := map[string]struct {
		mut func(*Envelope)
		pub *ecdsa.PublicKey
	}{
		"another key":       {func(*Envelope) {}, &other.PublicKey},
		"no key":            {func(*Envelope) {}, nil},
		"unsigned":          {func(e *Envelope) { e.Signature = "" }, &key.PublicKey},
		"garbage":           {func(e *Envelope) { e.Signature = "not base64!" }, &key.PublicKey},
		"short":             {func(e *Envelope) { e.Signature = e.Signature[:40] }, &key.PublicKey},
		"other service":     {func(e *Envelope) { e.From = &Identity{Service: "billing"} }, &key.PublicKey},
		"other connector":   {func(e *Envelope) { e.Connector = "c2" }, &key.PublicKey},
		"other tenant":      {func(e *Envelope) { e.Tenant = "t2" }, &key.PublicKey},
		"other body":        {func(e *Envelope) { e.Body = []byte("hellO") }, &key.PublicKey},
		"header added":      {func(e *Envelope) { e.Headers["x"] = "1" }, &key.PublicKey},
		"correlation moved": {func(e *Envelope) { e.CorrelationID = "m0" }, &key.PublicKey},
		"id changed":        {func(e *Envelope) { e.ID = "m2" }, &key.PublicKey},
		"claim other hash":  {func(e *Envelope) { e.Body, e.Claim = nil, &Claim{SHA256: "00"} }, &key.PublicKey},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			env := signedEnvelope(t, key)
			tt.mut(env)
			assert.ErrorIs(t, env.VerifySignature(tt.pub), ErrBadSignature)
		})
	}
}

func TestSignNeedsAP256Key(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	require.NoError(t, err)
	assert.Error(t, (&Envelope{ID: "m"}).Sign(key))
	assert.Error(t, (&Envelope{ID: "m"}).Sign(nil))
}
