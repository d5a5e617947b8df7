package bus

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/envelope"
)

func env(body []byte) *envelope.Envelope {
	return &envelope.Envelope{ID: "x", Kind: envelope.KindTargeted, Tenant: "t", Connector: "c", Body: body, CreatedAt: time.Unix(0, 0).UTC()}
}

func TestEncodeWithoutClaimStore(t *testing.T) {
	ctx := context.Background()
	enc, err := Encode(ctx, env([]byte("small")), 1000, nil)
	require.NoError(t, err)
	back, err := envelope.Decode(enc)
	require.NoError(t, err)
	assert.Equal(t, []byte("small"), back.Body)

	_, err = Encode(ctx, env(make([]byte, 2000)), 1000, nil)
	assert.ErrorIs(t, err, ErrTooLarge)

	_, err = Encode(ctx, &envelope.Envelope{ID: "x"}, 1000, nil)
	assert.ErrorContains(t, err, "kind")
}

func TestEncodeForwardsClaimWithoutBody(t *testing.T) {
	e := env(make([]byte, 5000)) // resolved body of a received claim check
	e.Claim = &envelope.Claim{Container: "c", Blob: "b", Size: 5000, SHA256: strings.Repeat("ab", 32)}
	enc, err := Encode(context.Background(), e, 1000, nil)
	require.NoError(t, err)
	back, err := envelope.Decode(enc)
	require.NoError(t, err)
	assert.Empty(t, back.Body)
	assert.Equal(t, e.Claim, back.Claim)
	assert.Len(t, e.Body, 5000, "the caller's envelope is not modified")
}

func TestResolveClaimWithoutStore(t *testing.T) {
	e := env(nil)
	e.Claim = &envelope.Claim{Container: "c", Blob: "b", SHA256: strings.Repeat("ab", 32)}
	permanent, err := ResolveClaim(context.Background(), e, nil)
	assert.False(t, permanent)
	assert.NoError(t, err)
	assert.Nil(t, e.Body, "left for the recipient to fetch by URL")
}

func TestTruncate(t *testing.T) {
	assert.Equal(t, "abc", Truncate("abc", 5))
	assert.Equal(t, "ab", Truncate("abc", 2))
	assert.Equal(t, "a", Truncate("aé", 2), "never splits a UTF-8 sequence")
	assert.Equal(t, "aé", Truncate("aé", 3))
}

func TestMessageHandle(t *testing.T) {
	m := NewMessage("q", env(nil), nil, 1, time.Unix(10, 0), "h1")
	assert.Equal(t, "h1", m.Handle())
	m.SetHandle("h2", time.Unix(20, 0))
	assert.Equal(t, "h2", m.Handle())
	assert.Equal(t, time.Unix(20, 0), m.LockedUntil())
}

// recorder is a Driver that only records dead letters.
type recorder struct {
	Driver
	reasons []string
}

func (r *recorder) DeadLetter(_ context.Context, _ *Message, reason, _ string) error {
	r.reasons = append(r.reasons, reason)
	return nil
}

func TestAccept(t *testing.T) {
	good, err := envelope.Encode(env([]byte("x")))
	require.NoError(t, err)
	tests := []struct {
		name       string
		raw        []byte
		deliveries int
		want       bool
		reason     string
	}{
		{"valid", good, 1, true, ""},
		{"at the delivery limit", good, 3, true, ""},
		{"poison", good, 4, false, ReasonPoison},
		{"undecodable", []byte("{"), 1, false, ReasonUndecodable},
		{"undecodable beats poison", []byte("{"), 9, false, ReasonUndecodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &recorder{}
			m := NewMessage("q", nil, tt.raw, tt.deliveries, time.Now(), nil)
			ok, err := Accept(context.Background(), d, m, 3, nil, slog.New(slog.DiscardHandler))
			require.NoError(t, err)
			assert.Equal(t, tt.want, ok)
			if tt.reason == "" {
				assert.Empty(t, d.reasons)
				assert.Equal(t, []byte("x"), m.Envelope.Body)
			} else {
				assert.Equal(t, []string{tt.reason}, d.reasons)
			}
		})
	}
}
