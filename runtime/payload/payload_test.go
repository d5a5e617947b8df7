package payload

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func key(t testing.TB) *ecdh.PrivateKey {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	require.NoError(t, err)
	return k
}

func TestRoundTrip(t *testing.T) {
	k := key(t)
	text := []byte(strings.Repeat("the gateway must not read this. ", 200))
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	tests := []struct {
		name               string
		body               []byte
		opts               Options
		encoding, suite    string
		smallerThanOrEqual bool
	}{
		{"as is", text, Options{}, "", "", true},
		{"small body not compressed", []byte("hi"), Options{CompressAbove: 1024}, "", "", true},
		{"compressed", text, Options{CompressAbove: 1024}, EncodingGzip, "", true},
		{"incompressible stays as is", random, Options{CompressAbove: 1024}, "", "", true},
		{"encrypted", text, Options{To: k.PublicKey(), MessageID: "m1", Recipient: "contoso/agent-1"}, "", SuiteHPKE, false},
		{"compressed and encrypted", text, Options{CompressAbove: 1024, To: k.PublicKey(), MessageID: "m1", Recipient: "contoso/agent-1"}, EncodingGzip, SuiteHPKE, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Encode(tt.body, tt.opts)
			require.NoError(t, err)
			assert.Equal(t, tt.encoding, e.ContentEncoding)
			assert.Equal(t, tt.suite, e.Encryption)
			if tt.smallerThanOrEqual {
				assert.LessOrEqual(t, len(e.Body), len(tt.body))
			}
			if tt.suite != "" {
				assert.False(t, bytes.Contains(e.Body, []byte("gateway")), "ciphertext only")
			}
			got, err := Decode(e, k, "m1", "contoso/agent-1", 1<<20)
			require.NoError(t, err)
			assert.Equal(t, tt.body, got)
		})
	}
}

// A sealed body opens only with the recipient's key, for the message and
// recipient it was sealed for, unaltered.
func TestDecodeRefuses(t *testing.T) {
	k := key(t)
	text := []byte(strings.Repeat("secret ", 1000))
	e, err := Encode(text, Options{CompressAbove: 100, To: k.PublicKey(), MessageID: "m1", Recipient: "contoso/agent-1"})
	require.NoError(t, err)
	tampered := e
	tampered.Body = bytes.Clone(e.Body)
	tampered.Body[len(tampered.Body)-1] ^= 1

	cases := []struct {
		name   string
		e      Encoded
		key    *ecdh.PrivateKey
		id, to string
		max    int64
		want   string
	}{
		{"another key", e, key(t), "m1", "contoso/agent-1", 1 << 20, "cannot decrypt"},
		{"moved to another message", e, k, "m2", "contoso/agent-1", 1 << 20, "cannot decrypt"},
		{"read as another recipient", e, k, "m1", "contoso/agent-2", 1 << 20, "cannot decrypt"},
		{"altered", tampered, k, "m1", "contoso/agent-1", 1 << 20, "cannot decrypt"},
		{"no key", e, nil, "m1", "contoso/agent-1", 1 << 20, ErrNoKey.Error()},
		{"inflates past the limit", e, k, "m1", "contoso/agent-1", 100, "inflates past 100 bytes"},
		{"unknown suite", Encoded{Body: e.Body, Encryption: "rot13"}, k, "m1", "contoso/agent-1", 1 << 20, "unknown suite"},
		{"unknown encoding", Encoded{Body: text, ContentEncoding: "br"}, k, "m1", "contoso/agent-1", 1 << 20, "unknown content encoding"},
		{"not gzip", Encoded{Body: text, ContentEncoding: EncodingGzip}, k, "m1", "contoso/agent-1", 1 << 20, "cannot decompress"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.e, tc.key, tc.id, tc.to, tc.max)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

// Base-mode HPKE authenticates no sender: whoever knows the recipient's
// public key (which is public: a registered key) can seal a new body for
// the same message id and recipient, and it opens like the original. So
// the gateway cannot alter a sealed body but can replace it; only the
// envelope signatures say who sent it (docs/messaging.md, threat model).
func TestSealedBodyCanBeReplacedByAnyoneWithThePublicKey(t *testing.T) {
	recipient := key(t)
	opts := Options{To: recipient.PublicKey(), MessageID: "m-1", Recipient: "contoso/agent-1"}
	original, err := Encode([]byte("pay alice 10"), opts)
	require.NoError(t, err)
	forged, err := Encode([]byte("pay mallory 1000"), opts) // the gateway's own seal
	require.NoError(t, err)
	require.NotEqual(t, original.Body, forged.Body)
	body, err := Decode(forged, recipient, "m-1", "contoso/agent-1", 1<<20)
	require.NoError(t, err)
	assert.Equal(t, "pay mallory 1000", string(body))
}
