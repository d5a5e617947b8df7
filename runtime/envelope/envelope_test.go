package envelope

import (
	"bytes"
	"errors"
	"github.com/botehq/platform/runtime/internal/golden"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func sample() *Envelope {
	return &Envelope{
		ID:            "0123456789abcdef0123456789abcdef",
		CorrelationID: "req-42",
		ReplyTo:       "orders",
		Kind:          KindTargeted,
		Tenant:        "contoso",
		Connector:     "agent-1",
		From:          &Identity{Service: "relayserver"},
		Headers:       map[string]string{"type": "ping", "note": "<ünïcødé & 🚀>"},
		ContentType:   "application/json",
		Body:          []byte(`{"hello":"world"}`),
		CreatedAt:     time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC),
	}
}

func TestEncodeGolden(t *testing.T) {
	got, err := Encode(sample())
	require.NoError(t, err)
	golden.Check(t, "targeted.golden.json", got)

	for _, c := range got {
		require.Less(t, c, byte(0x80), "encoding must be pure ASCII")
	}
	assert.NotContains(t, string(got), "<")
	assert.NotContains(t, string(got), "&")

	back, err := Decode(got)
	require.NoError(t, err)
	assert.Equal(t, sample(), back)
}

func TestRoundTripKinds(t *testing.T) {
	claim := &Claim{Container: "claims", Blob: "a/b", Size: 10, SHA256: strings.Repeat("ab", 32), URL: "https://x/y?sig=1", URLExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	tests := map[string]*Envelope{
		"broadcast":  {ID: "b1", Kind: KindBroadcast, Tenant: "t", Topic: "chat/room-1", CreatedAt: time.Unix(1, 0).UTC()},
		"cloud":      {ID: "c1", Kind: KindCloud, From: &Identity{Tenant: "t", Connector: "c"}, Claim: claim, CreatedAt: time.Unix(2, 0).UTC()},
		"empty body": {ID: "e1", Kind: KindTargeted, Tenant: "t", Connector: "c", CreatedAt: time.Unix(3, 0).UTC()},
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			enc, err := Encode(env)
			require.NoError(t, err)
			got, err := Decode(enc)
			require.NoError(t, err)
			assert.Equal(t, env, got)
		})
	}
}

func TestValidate(t *testing.T) {
	ok := func() *Envelope { return sample() }
	tests := []struct {
		name   string
		mutate func(*Envelope)
		want   string
	}{
		{"no id", func(e *Envelope) { e.ID = "" }, "id"},
		{"long id", func(e *Envelope) { e.ID = strings.Repeat("a", 129) }, "id"},
		{"bad kind", func(e *Envelope) { e.Kind = "multicast" }, "kind"},
		{"targeted without connector", func(e *Envelope) { e.Connector = "" }, "connector id is empty"},
		{"targeted bad tenant", func(e *Envelope) { e.Tenant = "-x" }, "tenant id"},
		{"targeted with topic", func(e *Envelope) { e.Topic = "chat" }, "topic must be empty"},
		{"broadcast without topic", func(e *Envelope) { e.Kind = KindBroadcast; e.Connector = "" }, "topic"},
		{"broadcast with connector", func(e *Envelope) { e.Kind = KindBroadcast; e.Topic = "chat" }, "connector must be empty"},
		{"cloud without from", func(e *Envelope) { e.Kind = KindCloud; e.From = nil }, "from must name"},
		{"cloud from service", func(e *Envelope) { e.Kind = KindCloud }, "from must name"},
		{"cloud with routing", func(e *Envelope) {
			e.Kind, e.Connector, e.From = KindCloud, "", &Identity{Tenant: "t", Connector: "c"}
		}, "must be empty on a cloud message"},
		{"from both", func(e *Envelope) { e.From = &Identity{Service: "s", Tenant: "t"} }, "exclusive"},
		{"body and claim", func(e *Envelope) { e.Claim = &Claim{Container: "c", Blob: "b", SHA256: strings.Repeat("0", 64)} }, "exclusive"},
		{"bad claim hash", func(e *Envelope) { e.Body = nil; e.Claim = &Claim{Container: "c", Blob: "b", SHA256: "zz"} }, "sha256"},
		{"header with colon", func(e *Envelope) { e.Headers = map[string]string{"a:b": "1"} }, "contains"},
		{"header value newline", func(e *Envelope) { e.Headers = map[string]string{"a": "1\n2"} }, "control"},
		{"no createdAt", func(e *Envelope) { e.CreatedAt = time.Time{} }, "createdAt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok()
			tt.mutate(e)
			err := e.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			_, err = Encode(e)
			require.Error(t, err)
		})
	}
	require.NoError(t, ok().Validate())
}

func TestDecodeErrors(t *testing.T) {
	valid, err := Encode(sample())
	require.NoError(t, err)
	tests := map[string][]byte{
		"empty":          nil,
		"whitespace":     []byte("  \n"),
		"not json":       []byte("hello"),
		"truncated":      valid[:len(valid)/2],
		"wrong version":  bytes.Replace(valid, []byte(`"v":1`), []byte(`"v":2`), 1),
		"no version":     bytes.Replace(valid, []byte(`"v":1,`), nil, 1),
		"invalid fields": []byte(`{"v":1,"id":"x","kind":"targeted","createdAt":"2026-01-01T00:00:00Z"}`),
		"body not b64":   bytes.Replace(valid, []byte(`"body":"`), []byte(`"body":"!!`), 1),
		"json array":     []byte(`[1,2]`),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := Decode(data)
			require.Error(t, err)
			var de *DecodeError
			require.True(t, errors.As(err, &de), "want *DecodeError, got %T", err)
			assert.ErrorIs(t, err, ErrUndecodable)
			assert.NotEmpty(t, de.Reason)
		})
	}
}

func TestDecodeIgnoresUnknownFields(t *testing.T) {
	valid, err := Encode(sample())
	require.NoError(t, err)
	withExtra := append([]byte(`{"future":true,`), valid[1:]...)
	got, err := Decode(withExtra)
	require.NoError(t, err)
	assert.Equal(t, sample(), got)
}

// envelopeEncodingTo returns an encoded envelope of exactly n bytes: each 3
// body bytes add 4 encoded bytes, and header padding fills the remainder.
func envelopeEncodingTo(t *testing.T, n int) []byte {
	t.Helper()
	e := &Envelope{ID: "x", Kind: KindTargeted, Tenant: "t", Connector: "c", CreatedAt: time.Unix(0, 0).UTC(), Headers: map[string]string{"p": ""}}
	base, err := Encode(e)
	require.NoError(t, err)
	// "body":"" adds 10 bytes (incl. comma) plus 4 per 3 body bytes.
	room := n - len(base) - len(`,"body":""`)
	require.GreaterOrEqual(t, room, 0)
	e.Body = bytes.Repeat([]byte{0xff}, room/4*3)
	e.Headers["p"] = strings.Repeat("x", room%4)
	enc, err := Encode(e)
	require.NoError(t, err)
	require.Len(t, enc, n)
	return enc
}

func TestFitsBudgetEdges(t *testing.T) {
	assert.Equal(t, 65536, MaxQueueMessageBytes)
	assert.True(t, Fits(envelopeEncodingTo(t, MaxQueueMessageBytes)), "exactly at the limit fits")
	assert.False(t, Fits(envelopeEncodingTo(t, MaxQueueMessageBytes+1)), "one byte over does not")
	assert.True(t, Fits(envelopeEncodingTo(t, 200)))
}

func TestASCIIEscapes(t *testing.T) {
	e := sample()
	e.Headers = map[string]string{"n": "é\u2028😀\ufffe"}
	enc, err := Encode(e)
	require.NoError(t, err)
	assert.Contains(t, string(enc), `\u00e9\u2028\ud83d\ude00\ufffe`)
	back, err := Decode(enc)
	require.NoError(t, err)
	assert.Equal(t, e.Headers, back.Headers)
}

func TestCloneIsDeep(t *testing.T) {
	e := sample()
	c := e.Clone()
	c.Headers["type"] = "changed"
	c.Body[0] = 'X'
	c.From.Service = "other"
	assert.Equal(t, sample(), e)
}

func TestNewIDUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		require.Len(t, id, 32)
		require.False(t, seen[id])
		seen[id] = true
	}
}
