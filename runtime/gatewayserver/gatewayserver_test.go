package gatewayserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/sessionproto"
)

// fakeBus records sends; only Send matters to cloudSender.
type fakeBus struct {
	bus.Driver
	sent    map[string][]*envelope.Envelope
	opts    map[string]bus.SendOptions // queue → the last send's options
	fails   error
	missing string // a queue that does not exist
}

func (b *fakeBus) Send(_ context.Context, queue string, env *envelope.Envelope, opts *bus.SendOptions) error {
	if b.fails != nil {
		return b.fails
	}
	if queue == b.missing && opts != nil && opts.MustExist {
		return fmt.Errorf("cannot send: %w", bus.ErrNoQueue)
	}
	if b.sent == nil {
		b.sent, b.opts = map[string][]*envelope.Envelope{}, map[string]bus.SendOptions{}
	}
	b.sent[queue] = append(b.sent[queue], env)
	if opts != nil {
		b.opts[queue] = *opts
	}
	return nil
}

type counter struct{ n int }

func (c *counter) Inc() { c.n++ }

// A reply to a call whose id names the caller's reply queue goes to that
// queue, which the gateway never creates; when it is gone (the caller's
// Run ended) the reply is accepted, discarded and counted late. Anything
// else, a reply without that address or an ordinary message with one,
// goes to the cloud queue.
func TestCloudSenderRoutesRepliesToTheCallersQueue(t *testing.T) {
	from := session.Identity{Tenant: "acme", Connector: "agent1"}
	instance := bus.NewInstance()
	callID, deadline := bus.CallID(instance), time.Now().Add(time.Minute)
	b := &fakeBus{}
	late := &counter{}
	s := &cloudSender{bus: b, late: late, log: slog.New(slog.DiscardHandler)}

	_, err := s.SendToCloud(context.Background(), from, sessionproto.Message{CorrelationID: callID, Deadline: deadline, Body: []byte("pong")})
	require.NoError(t, err)
	require.Len(t, b.sent[bus.ReplyQueue(instance)], 1)
	opts := b.opts[bus.ReplyQueue(instance)]
	assert.True(t, opts.MustExist, "the gateway must not create a reply queue")
	assert.InDelta(t, time.Minute+replyGrace, opts.TTL, float64(5*time.Second), "a reply waits until the call's deadline")

	_, err = s.SendToCloud(context.Background(), from, sessionproto.Message{CorrelationID: callID, Body: []byte("not a reply")})
	require.NoError(t, err)
	_, err = s.SendToCloud(context.Background(), from, sessionproto.Message{CorrelationID: envelope.NewID(), Deadline: deadline, Body: []byte("pong")})
	require.NoError(t, err)
	assert.Len(t, b.sent[bus.QueueCloud], 2)
	assert.False(t, b.opts[bus.QueueCloud].MustExist)
	assert.Zero(t, b.opts[bus.QueueCloud].TTL)

	b.missing = bus.ReplyQueue(instance)
	id, err := s.SendToCloud(context.Background(), from, sessionproto.Message{CorrelationID: callID, Deadline: deadline, Body: []byte("late")})
	require.NoError(t, err, "the connector's reply is accepted")
	assert.NotEmpty(t, id)
	assert.Equal(t, 1, late.n)
	assert.Len(t, b.sent[bus.ReplyQueue(instance)], 1)
	assert.Len(t, b.sent[bus.QueueCloud], 2, "a reply whose caller is gone never goes to the shared queue")
}

func TestCloudSenderStampsVerifiedIdentity(t *testing.T) {
	b := &fakeBus{}
	s := &cloudSender{bus: b}
	from := session.Identity{Tenant: "acme", Connector: "agent1"}
	id, err := s.SendToCloud(context.Background(), from, sessionproto.Message{CorrelationID: "c", Headers: map[string]string{"kind": "ping"}, Body: []byte("x")})
	require.NoError(t, err)
	require.Len(t, b.sent[bus.QueueCloud], 1)
	env := b.sent[bus.QueueCloud][0]
	assert.Equal(t, id, env.ID)
	assert.Len(t, id, 32, "an id is generated when the connector sent none")
	assert.Equal(t, envelope.KindCloud, env.Kind)
	assert.Equal(t, &envelope.Identity{Tenant: "acme", Connector: "agent1"}, env.From)
	assert.Empty(t, env.Tenant, "a cloud message carries no routing")
	assert.Equal(t, "c", env.CorrelationID)
}

// The gateway carries the frame's deadline, schedule, TTL and payload
// fields as the reserved protocol headers: set by the gateway, never from
// the connector's headers.
func TestCloudSenderProtocolFields(t *testing.T) {
	b := &fakeBus{}
	deadline := time.Now().Add(time.Minute).UTC()
	_, err := (&cloudSender{bus: b}).SendToCloud(context.Background(), session.Identity{Tenant: "acme", Connector: "agent1"}, sessionproto.Message{
		CorrelationID: "q", Deadline: deadline, TTLMillis: 60_000, ContentEncoding: envelope.EncodingGzip, Encryption: envelope.EncryptionHPKE, Body: []byte("x"),
	})
	require.NoError(t, err)
	env := b.sent[bus.QueueCloud][0]
	assert.True(t, deadline.Equal(env.Deadline()))
	assert.WithinDuration(t, time.Now().Add(time.Minute), env.ExpiresAt(), 5*time.Second)
	assert.Equal(t, envelope.EncodingGzip, env.Headers[envelope.HeaderContentEncoding])
	assert.Equal(t, envelope.EncryptionHPKE, env.Headers[envelope.HeaderEncryption])
	assert.True(t, env.IsReply())
}

func TestCloudSenderErrors(t *testing.T) {
	from := session.Identity{Tenant: "acme", Connector: "agent1"}
	tests := []struct {
		name     string
		busErr   error
		msg      sessionproto.Message
		wantCode string // "" means a plain (unavailable) error
	}{
		{"control character in header", nil, sessionproto.Message{Headers: map[string]string{"k": "a\x00b"}}, sessionproto.CodeInvalidMessage},
		{"too large for the bus", fmt.Errorf("wrapped: %w", bus.ErrTooLarge), sessionproto.Message{}, sessionproto.CodeInvalidMessage},
		{"bus down", errors.New("connection refused"), sessionproto.Message{}, ""},
		// The frame's protocol fields are checked like headers would be.
		{"negative delay", nil, sessionproto.Message{DelayMillis: -1}, sessionproto.CodeInvalidMessage},
		{"negative ttl", nil, sessionproto.Message{TTLMillis: -1}, sessionproto.CodeInvalidMessage},
		{"unknown encryption", nil, sessionproto.Message{Encryption: "rot13"}, sessionproto.CodeInvalidMessage},
		{"unknown encoding", nil, sessionproto.Message{ContentEncoding: "br"}, sessionproto.CodeInvalidMessage},
		{"delay over the bus limit", fmt.Errorf("wrapped: %w", bus.ErrDelayTooLong), sessionproto.Message{DelayMillis: 1}, sessionproto.CodeInvalidMessage},
		// Whatever the bus: a connector may not park a message on the
		// shared bote-cloud queue for longer than 7 days, and a value that
		// overflows time.Duration (wrapping to a short one) is refused.
		{"delay over 7 days on any bus", nil, sessionproto.Message{DelayMillis: (8 * 24 * time.Hour).Milliseconds()}, sessionproto.CodeInvalidMessage},
		{"delay that overflows", nil, sessionproto.Message{DelayMillis: 18446744073710}, sessionproto.CodeInvalidMessage},
		{"ttl that overflows", nil, sessionproto.Message{TTLMillis: 18446744073710}, sessionproto.CodeInvalidMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := (&cloudSender{bus: &fakeBus{fails: tt.busErr}}).SendToCloud(context.Background(), from, tt.msg)
			require.Error(t, err)
			var perr *sessionproto.Error
			if tt.wantCode == "" {
				assert.False(t, errors.As(err, &perr), "backend failures are not the connector's fault")
				return
			}
			require.ErrorAs(t, err, &perr)
			assert.Equal(t, tt.wantCode, perr.Code)
		})
	}
}

func TestCloudSenderDeadLetter(t *testing.T) {
	b := &fakeBus{}
	err := (&cloudSender{bus: b}).DeadLetter(context.Background(), session.Identity{Tenant: "acme", Connector: "agent1"},
		sessionproto.DeadLetter{Reason: "poison", MessageID: "m1", DequeueCount: 6, Text: "original", Description: "failed 6 times"})
	require.NoError(t, err)
	require.Len(t, b.sent[QueueConnectorErrors], 1)
	env := b.sent[QueueConnectorErrors][0]
	q, _ := queuename.For(ids.ConnectorID{Tenant: "acme", Connector: "agent1"})
	assert.Equal(t, "poison", env.Headers[envelope.HeaderDeadLetter])
	assert.Equal(t, q, env.Headers["bote-source-queue"])
	assert.Equal(t, "6", env.Headers["bote-dequeue-count"])
	assert.Equal(t, "original", string(env.Body))
	assert.Equal(t, "acme/agent1", env.From.String())
}

func writeRegistry(t *testing.T, path string, disabled bool) {
	t.Helper()
	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	jwk, err := clientauth.PublicJWK(key, "")
	require.NoError(t, err)
	data, err := registry.Marshal([]registry.Connector{{Tenant: "acme", ID: "agent1", JWK: jwk, Disabled: disabled}})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(path, data, 0o644))
}

func TestFileDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.json")
	writeRegistry(t, path, false)
	d, err := newFileDirectory(path, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	agent := ids.ConnectorID{Tenant: "acme", Connector: "agent1"}
	ghost := ids.ConnectorID{Tenant: "acme", Connector: "ghost"}
	assert.True(t, d.Known(agent))
	assert.True(t, d.Active(agent))
	assert.False(t, d.Known(ghost))

	writeRegistry(t, path, true)
	future := time.Now().Add(time.Minute)
	require.NoError(t, os.Chtimes(path, future, future))
	d.checked = time.Time{} // due for a reload
	assert.True(t, d.Known(agent), "disabled connectors keep their queue")
	assert.False(t, d.Active(agent), "but lose their sessions")

	require.NoError(t, os.WriteFile(path, []byte("{broken"), 0o644))
	d.checked = time.Time{}
	assert.True(t, d.Known(agent), "a broken file keeps the last good registry")

	_, err = newFileDirectory(filepath.Join(t.TempDir(), "missing.json"), 0, slog.Default())
	assert.Error(t, err)
}

// TestFileDirectoryPoll: a change to the registration file is seen once
// the poll interval has passed since the last look, not before.
func TestFileDirectoryPoll(t *testing.T) {
	agent := ids.ConnectorID{Tenant: "acme", Connector: "agent1"}
	for _, tt := range []struct {
		poll       time.Duration
		seesChange bool
	}{{time.Hour, false}, {time.Millisecond, true}} {
		path := filepath.Join(t.TempDir(), "registry.json")
		writeRegistry(t, path, false)
		d, err := newFileDirectory(path, tt.poll, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		require.True(t, d.Active(agent)) // looked just now

		writeRegistry(t, path, true)
		future := time.Now().Add(time.Minute)
		require.NoError(t, os.Chtimes(path, future, future))
		time.Sleep(10 * time.Millisecond)
		assert.Equal(t, tt.seesChange, !d.Active(agent), "poll %s", tt.poll)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Listen: ":0", StorageConnectionString: "x", Issuer: "http://idp", JWKSURL: "http://idp/jwks"}
	require.NoError(t, ok.Validate())
	for field, mut := range map[string]func(*Config){
		"Listen":                     func(c *Config) { c.Listen = "" },
		"StorageConnectionString":    func(c *Config) { c.StorageConnectionString = "" },
		"exclusive":                  func(c *Config) { c.QueueURL = "http://q" },
		"StorageAccountKey":          func(c *Config) { c.StorageAccountName = "acct" },
		"Issuer":                     func(c *Config) { c.Issuer = "" },
		"JWKSURL":                    func(c *Config) { c.JWKSURL = "" },
		"Bus":                        func(c *Config) { c.Bus = "kafka" },
		"ServiceBusConnectionString": func(c *Config) { c.Bus = BusServiceBus },
		"Replica":                    func(c *Config) { c.Replica = "UPPER" },
		"PingInterval":               func(c *Config) { c.PingInterval = -1 },
		"MaxSessionsPerConnector":    func(c *Config) { c.MaxSessionsPerConnector = -1 },
		"RegistryPoll":               func(c *Config) { c.RegistryPoll = -time.Second },
		"RouteLock":                  func(c *Config) { c.RouteLock = time.Second },
	} {
		c := ok
		mut(&c)
		assert.ErrorContains(t, c.Validate(), field, field)
	}
}

type fakeClaims struct{}

func (fakeClaims) Container() string   { return "bote-claims" }
func (fakeClaims) MaxBodyBytes() int64 { return 1 << 20 }
func (fakeClaims) UploadURL(_ context.Context, blob string, ttl time.Duration) (string, time.Time, error) {
	return "http://blob/" + blob + "?sig", time.Unix(1e9, 0).Add(ttl), nil
}

func TestUploadsAreScopedToTheConnector(t *testing.T) {
	me := session.Identity{Tenant: "acme", Connector: "agent1"}
	u, err := (&uploads{claims: fakeClaims{}}).UploadURL(context.Background(), me)
	require.NoError(t, err)
	q, _ := queuename.For(ids.ConnectorID{Tenant: "acme", Connector: "agent1"})
	other, _ := queuename.For(ids.ConnectorID{Tenant: "acme", Connector: "agent2"})
	assert.Regexp(t, "^uploads/"+q+"/[0-9a-f]{32}$", u.Blob)
	assert.Equal(t, int64(1<<20), u.MaxBytes)

	sha := strings.Repeat("ab", 32)
	tests := []struct {
		name string
		c    sessionproto.Claim
		ok   bool
	}{
		{"own upload", sessionproto.Claim{Blob: u.Blob, Size: 10, SHA256: sha}, true},
		{"another connector's upload", sessionproto.Claim{Blob: "uploads/" + other + "/x", Size: 10, SHA256: sha}, false},
		{"a cloud claim blob", sessionproto.Claim{Blob: "2026-11-23/abc", Size: 10, SHA256: sha}, false},
		{"escaping the folder", sessionproto.Claim{Blob: "uploads/" + q + "/../" + other + "/x", Size: 10, SHA256: sha}, false},
		{"nested", sessionproto.Claim{Blob: "uploads/" + q + "/a/b", Size: 10, SHA256: sha}, false},
		{"too large", sessionproto.Claim{Blob: u.Blob, Size: 2 << 20, SHA256: sha}, false},
		{"bad hash", sessionproto.Claim{Blob: u.Blob, Size: 10, SHA256: "nope"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBus{}
			c := tt.c
			_, err := (&cloudSender{bus: b, claims: fakeClaims{}}).SendToCloud(context.Background(), me, sessionproto.Message{Claim: &c})
			if tt.ok {
				require.NoError(t, err)
				env := b.sent[bus.QueueCloud][0]
				assert.Equal(t, &envelope.Claim{Container: "bote-claims", Blob: u.Blob, Size: 10, SHA256: sha}, env.Claim)
				return
			}
			var perr *sessionproto.Error
			require.ErrorAs(t, err, &perr)
			assert.Equal(t, sessionproto.CodeInvalidMessage, perr.Code)
			assert.Empty(t, b.sent)
		})
	}
}
