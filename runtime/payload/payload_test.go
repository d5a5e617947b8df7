package payload

import (
	"bytes"
	"compress/gzip"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/botehq/platform/runtime/envelope"
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

// bomb returns gzip members inflating to n MiB of zeros in about n KB
// (ratio ~1000:1; gzip reads concatenated members as one stream).
func bomb(t testing.TB, n int) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, err := w.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return bytes.Repeat(b.Bytes(), n)
}

// A decompression bomb within the inflated-size limit (100 MiB of zeros
// in ~100 KB, sealed like a real body) is refused by its ratio, after
// inflating at most MaxInflated of it: it never costs its inflated size.
func TestDecodeRefusesBomb(t *testing.T) {
	k := key(t)
	const maxBytes = 100 << 20
	z := bomb(t, 100)
	sealed, err := Encode(z, Options{To: k.PublicKey(), MessageID: "m1", Recipient: CloudRecipient})
	require.NoError(t, err)
	env := &envelope.Envelope{ID: "m1", Body: sealed.Body, Headers: map[string]string{
		envelope.HeaderContentEncoding: EncodingGzip, envelope.HeaderEncryption: sealed.Encryption}}

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = DecodeEnvelope(env, k, CloudRecipient, maxBytes)
	runtime.ReadMemStats(&after)
	require.ErrorContains(t, err, fmt.Sprintf("inflates past %d bytes", MaxInflated(len(z), maxBytes)))
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("compressed %d bytes, allocated %d bytes to refuse it", len(z), allocated)
	assert.Less(t, allocated, uint64(3*MaxInflated(len(z), maxBytes)), "refused before inflating it")
	assert.Less(t, MaxInflated(len(z), maxBytes), int64(maxBytes/5))
}

// The limit is MaxRatio times the compressed size (plus MinInflated), and
// never past maxBytes; Encode keeps gzip only within it, so a body it
// compressed always decodes.
func TestMaxInflated(t *testing.T) {
	assert.Equal(t, int64(MinInflated), MaxInflated(0, 1<<30))
	assert.Equal(t, int64(MinInflated+MaxRatio*1000), MaxInflated(1000, 1<<30))
	assert.Equal(t, int64(500), MaxInflated(1000, 500))

	zeros := make([]byte, 1<<20) // compresses ~1000:1, past MaxRatio
	e, err := Encode(zeros, Options{CompressAbove: 1})
	require.NoError(t, err)
	assert.Empty(t, e.ContentEncoding, "too redundant to compress within MaxRatio: sent as is")
	assert.Equal(t, zeros, e.Body)

	small := make([]byte, MinInflated) // any ratio up to MinInflated
	e, err = Encode(small, Options{CompressAbove: 1})
	require.NoError(t, err)
	assert.Equal(t, EncodingGzip, e.ContentEncoding)
	got, err := Decode(e, nil, "", "", 1<<20)
	require.NoError(t, err)
	assert.Equal(t, small, got)
}
