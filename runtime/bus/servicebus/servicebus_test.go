package servicebus

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
)

// fakeConn parses like a real connection string; nothing is dialled until
// a send or receive.
const fakeConn = "Endpoint=sb://bote-test.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=ZmFrZQ=="

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, "ConnectionString or Namespace"},
		{"both", Config{ConnectionString: fakeConn, Namespace: "x.servicebus.windows.net"}, "exclusive"},
		{"namespace without credential", Config{Namespace: "x.servicebus.windows.net"}, "Credential"},
		{"negative deliveries", Config{ConnectionString: fakeConn, MaxDeliveries: -1}, "MaxDeliveries"},
		{"negative wait", Config{ConnectionString: fakeConn, ReceiveWait: -time.Second}, "ReceiveWait"},
		{"tiny messages", Config{ConnectionString: fakeConn, MaxMessageBytes: 100}, "MaxMessageBytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			_, err = New(tt.cfg)
			require.Error(t, err)
		})
	}
	for _, ok := range []Config{{ConnectionString: fakeConn}, {Namespace: "x.servicebus.usgovcloudapi.net", Credential: &fake.TokenCredential{}}} {
		d, err := New(ok)
		require.NoError(t, err)
		assert.Equal(t, DefaultMaxDeliveries, d.maxDeliveries)
		assert.Equal(t, DefaultReceiveWait, d.wait)
		assert.Equal(t, DefaultMaxMessageBytes, d.maxBytes)
		require.NoError(t, d.Close(context.Background()))
	}
}

func testEnvelope() *envelope.Envelope {
	return &envelope.Envelope{
		ID: "id-1", CorrelationID: "corr-1", Kind: envelope.KindTargeted, Tenant: "contoso", Connector: "agent-1",
		From: &envelope.Identity{Service: "relayserver"}, Body: []byte("x"), CreatedAt: time.Unix(1, 0).UTC(),
	}
}

func TestToMessage(t *testing.T) {
	env := testEnvelope()
	body, err := envelope.Encode(env)
	require.NoError(t, err)
	m := toMessage(env, body)
	assert.Equal(t, "id-1", *m.MessageID, "MessageId is the envelope id, so duplicate detection works")
	assert.Equal(t, "corr-1", *m.CorrelationID)
	assert.Equal(t, envelope.ContentType, *m.ContentType)
	assert.Equal(t, body, m.Body)
	assert.Equal(t, map[string]any{
		envelope.HeaderKind: "targeted", envelope.HeaderTenant: "contoso", envelope.HeaderConnector: "agent-1", envelope.HeaderFrom: "relayserver",
	}, m.ApplicationProperties)

	b := &envelope.Envelope{ID: "b", Kind: envelope.KindBroadcast, Tenant: "t", Topic: "chat", CreatedAt: time.Unix(1, 0)}
	m = toMessage(b, nil)
	assert.Nil(t, m.CorrelationID)
	assert.Equal(t, "chat", m.ApplicationProperties[envelope.HeaderTopic])
	assert.NotContains(t, m.ApplicationProperties, envelope.HeaderConnector)
}

func TestRetryMessageID(t *testing.T) {
	assert.Equal(t, "abc/retry-2", retryMessageID("abc", 2))
	assert.NotEqual(t, retryMessageID("abc", 2), retryMessageID("abc", 3), "each retry passes duplicate detection")
	long := strings.Repeat("a", 128)
	got := retryMessageID(long, 1)
	assert.Len(t, got, 64)
	assert.LessOrEqual(t, len(got), maxMessageIDLength)
	assert.NotEqual(t, got, retryMessageID(long, 2))
}

func TestFromReceived(t *testing.T) {
	body, err := envelope.Encode(testEnvelope())
	require.NoError(t, err)
	locked := time.Now().Add(time.Minute)
	tests := []struct {
		name      string
		rm        *azservicebus.ReceivedMessage
		wantCount int
		decodable bool
	}{
		{"first delivery", &azservicebus.ReceivedMessage{Body: body, DeliveryCount: 1, LockedUntil: &locked}, 1, true},
		{"after two delayed retries", &azservicebus.ReceivedMessage{Body: body, DeliveryCount: 1, ApplicationProperties: map[string]any{propPriorDeliveries: int64(2)}}, 3, true},
		{"abandoned once after a retry", &azservicebus.ReceivedMessage{Body: body, DeliveryCount: 2, ApplicationProperties: map[string]any{propPriorDeliveries: int32(1)}}, 3, true},
		{"undecodable", &azservicebus.ReceivedMessage{Body: []byte("junk"), DeliveryCount: 1}, 1, false},
		{"empty body", &azservicebus.ReceivedMessage{DeliveryCount: 1}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fromReceived("q", tt.rm)
			assert.Equal(t, tt.wantCount, m.DeliveryCount)
			assert.Equal(t, tt.decodable, m.Envelope != nil)
			assert.Equal(t, tt.rm.Body, m.Raw)
			assert.Equal(t, "q", m.Queue)
			if tt.rm.LockedUntil != nil {
				assert.Equal(t, locked, m.LockedUntil())
			}
		})
	}
}

func TestMapErr(t *testing.T) {
	h := &handle{queue: "q", rm: &azservicebus.ReceivedMessage{MessageID: "m"}}
	assert.NoError(t, mapErr("complete", h, nil))
	for _, code := range []azservicebus.Code{azservicebus.CodeLockLost, azservicebus.CodeNotFound} {
		err := mapErr("complete", h, &azservicebus.Error{Code: code})
		assert.ErrorIs(t, err, bus.ErrLockLost, "code %s", code)
	}
	err := mapErr("complete", h, fmt.Errorf("wrapped: %w", &azservicebus.Error{Code: azservicebus.CodeConnectionLost}))
	assert.NotErrorIs(t, err, bus.ErrLockLost)
	assert.ErrorContains(t, err, `cannot complete message m in "q"`)
}

func TestForeignAndClosed(t *testing.T) {
	d, err := New(Config{ConnectionString: fakeConn})
	require.NoError(t, err)
	ctx := context.Background()
	m := bus.NewMessage("q", testEnvelope(), nil, 1, time.Now(), "not ours")
	assert.ErrorIs(t, d.Complete(ctx, m), bus.ErrForeignMessage)
	assert.ErrorIs(t, d.Abandon(ctx, m, time.Second), bus.ErrForeignMessage)
	assert.ErrorIs(t, d.RenewLock(ctx, m, time.Second), bus.ErrForeignMessage)
	assert.ErrorIs(t, d.DeadLetter(ctx, m, "r", ""), bus.ErrForeignMessage)
	assert.ErrorContains(t, d.DeadLetter(ctx, m, "", ""), "reason is empty")

	// Oversize without a claim store fails before any network use.
	big := testEnvelope()
	big.Body = make([]byte, DefaultMaxMessageBytes)
	assert.ErrorIs(t, d.Send(ctx, "q", big, nil), bus.ErrTooLarge)

	require.NoError(t, d.Close(ctx))
	assert.ErrorIs(t, d.Send(ctx, "q", testEnvelope(), nil), bus.ErrClosed)
	_, err = d.Receive(ctx, "q", 1, time.Second)
	assert.ErrorIs(t, err, bus.ErrClosed)
}
