package envelope

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckSentHeaders(t *testing.T) {
	at := "2026-12-06T09:00:00.5Z"
	tests := []struct {
		name     string
		headers  map[string]string
		reserved bool
		want     string
	}{
		{"none", nil, false, ""},
		{"protocol headers", map[string]string{HeaderDeadline: at, HeaderExpiresAt: at, "type": "ping"}, false, ""},
		// Only the exact spelling is a protocol header; every other
		// spelling of it is an ordinary reserved name.
		{"Bote-Deadline", map[string]string{"Bote-Deadline": at}, true, "Bote-Deadline"},
		{"bote_deadline", map[string]string{"bote_deadline": at}, true, "bote_deadline"},
		{"bote-expires_at", map[string]string{"bote-expires_at": at}, true, "bote-expires_at"},
		{"identity still refused", map[string]string{HeaderDeadline: at, "bote-from": "x"}, true, "bote-from"},
		{"bad deadline", map[string]string{HeaderDeadline: "tomorrow"}, false, "not an RFC 3339 time"},
		{"bad expiry", map[string]string{HeaderExpiresAt: "1700000000"}, false, "not an RFC 3339 time"},
		{"payload headers", map[string]string{HeaderContentEncoding: EncodingGzip, HeaderEncryption: EncryptionHPKE}, false, ""},
		{"unknown encoding", map[string]string{HeaderContentEncoding: "br"}, false, `is not "gzip"`},
		{"unknown suite", map[string]string{HeaderEncryption: "none"}, false, `is not "hpke-p256-sha256-aes256gcm"`},
		{"Bote-Encryption", map[string]string{"Bote-Encryption": EncryptionHPKE}, true, "Bote-Encryption"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSentHeaders(tt.headers)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Equal(t, tt.reserved, errors.Is(err, ErrReservedHeader))
		})
	}
	// An application may never set a protocol header itself.
	err := CheckConnectorHeaders(map[string]string{HeaderDeadline: at})
	assert.ErrorIs(t, err, ErrReservedHeader)
}

func TestProtocolHeadersOnEnvelope(t *testing.T) {
	now := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	e := sample()
	e.Headers = map[string]string{"type": "ping"}
	shared := e.Headers
	require.NoError(t, e.CheckExpired(now))
	assert.False(t, e.IsReply())

	e.SetProtocolHeader(HeaderDeadline, now.Add(time.Second))
	e.SetProtocolHeader(HeaderExpiresAt, now.Add(time.Hour))
	assert.Equal(t, map[string]string{"type": "ping"}, shared, "the caller's map is not changed")
	assert.Equal(t, now.Add(time.Second), e.Deadline())
	assert.Equal(t, now.Add(time.Hour), e.ExpiresAt())
	assert.Equal(t, map[string]string{"type": "ping"}, ApplicationHeaders(e.Headers))
	require.NoError(t, e.CheckExpired(now))
	assert.ErrorIs(t, e.CheckExpired(now.Add(time.Second)), ErrExpired, "at the deadline the caller has given up")
	e.SetProtocolHeader(HeaderDeadline, time.Time{})
	assert.NoError(t, e.CheckExpired(now.Add(time.Second)))
	assert.ErrorIs(t, e.CheckExpired(now.Add(time.Hour)), ErrExpired)

	e.CorrelationID = "req"
	assert.False(t, e.IsReply(), "a correlated message without a deadline is not a call's reply")
	e.SetProtocolHeader(HeaderDeadline, now)
	assert.True(t, e.IsReply())

	// The headers survive encoding, and a malformed value does not decode.
	enc, err := Encode(e)
	require.NoError(t, err)
	d, err := Decode(enc)
	require.NoError(t, err)
	assert.Equal(t, now, d.Deadline())
	e.Headers[HeaderExpiresAt] = "soon"
	_, err = Encode(e)
	assert.ErrorContains(t, err, "not an RFC 3339 time")
	assert.Panics(t, func() { e.SetProtocolHeader("bote-from", now) })
}
