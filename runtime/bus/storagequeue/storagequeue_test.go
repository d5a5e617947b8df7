package storagequeue

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/envelope"
)

// unreachable parses like Azurite's connection string; tests using it
// fail before any request or never make one.
const unreachable = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;QueueEndpoint=http://127.0.0.1:1/devstoreaccount1;"

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, "ConnectionString or ServiceURL"},
		{"both", Config{ConnectionString: unreachable, ServiceURL: "https://x"}, "exclusive"},
		{"credential with connection string", Config{ConnectionString: unreachable, Credential: &fake.TokenCredential{}}, "exclusive"},
		{"url without credential", Config{ServiceURL: "https://x.queue.core.windows.net"}, "Credential"},
		{"negative deliveries", Config{ConnectionString: unreachable, MaxDeliveries: -1}, "MaxDeliveries"},
		{"negative ttl", Config{ConnectionString: unreachable, MessageTTL: -time.Second}, "MessageTTL"},
		{"sub-second ttl", Config{ConnectionString: unreachable, MessageTTL: time.Millisecond}, "MessageTTL"},
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
}

func TestDefaults(t *testing.T) {
	d, err := New(Config{ConnectionString: unreachable})
	require.NoError(t, err)
	assert.Equal(t, bus.QueueErrors, d.ErrorQueue())
	assert.Equal(t, DefaultMaxDeliveries, d.maxDeliveries)
	assert.Equal(t, int32(-1), d.ttl, "messages never expire by default")

	d, err = New(Config{ServiceURL: "https://acct.queue.core.usgovcloudapi.net", Credential: &fake.TokenCredential{}, MessageTTL: 48 * time.Hour, ErrorQueue: "errs"})
	require.NoError(t, err)
	assert.Equal(t, int32(172800), d.ttl)
	assert.Equal(t, "errs", d.ErrorQueue())
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		d     time.Duration
		floor int32
		want  int32
	}{
		{0, 0, 0},
		{0, 1, 1},
		{time.Millisecond, 0, 1}, // a delay is never shortened
		{1500 * time.Millisecond, 0, 2},
		{2 * time.Second, 1, 2},
		{30 * 24 * time.Hour, 1, 7 * 24 * 3600}, // capped at the service maximum
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, seconds(tt.d, tt.floor), "seconds(%s, %d)", tt.d, tt.floor)
	}
}

func TestSendFailsBeforeNetwork(t *testing.T) {
	d, err := New(Config{ConnectionString: unreachable})
	require.NoError(t, err)
	ctx := context.Background()
	big := &envelope.Envelope{ID: "x", Kind: envelope.KindTargeted, Tenant: "t", Connector: "c", Body: make([]byte, 50<<10), CreatedAt: time.Now()}
	assert.ErrorIs(t, d.Send(ctx, "q", big, nil), bus.ErrTooLarge, "no claim store: oversize fails")
	assert.ErrorContains(t, d.Send(ctx, "q", &envelope.Envelope{ID: "x"}, nil), "cannot encode")

	_, err = d.Receive(ctx, "q", 0, time.Second)
	assert.ErrorContains(t, err, "must be positive")

	m := bus.NewMessage("q", big, nil, 1, time.Now(), "foreign")
	assert.ErrorIs(t, d.Complete(ctx, m), bus.ErrForeignMessage)
	assert.ErrorContains(t, d.DeadLetter(ctx, m, "", ""), "reason is empty")

	require.NoError(t, d.Close(ctx))
	assert.ErrorIs(t, d.Send(ctx, "q", &envelope.Envelope{ID: "x", Kind: envelope.KindTargeted, Tenant: "t", Connector: "c", CreatedAt: time.Now()}, nil), bus.ErrClosed)
}

// A Storage Queue defers a message with its visibility timeout, which the
// service caps at 7 days: a longer delay is refused, not shortened.
func TestSendDelayLimit(t *testing.T) {
	env := &envelope.Envelope{ID: "x", Kind: envelope.KindTargeted, Tenant: "t", Connector: "c", CreatedAt: time.Now()}
	d, err := New(Config{ConnectionString: unreachable})
	require.NoError(t, err)
	err = d.Send(context.Background(), "q", env, &bus.SendOptions{Delay: MaxDelay + time.Second})
	require.ErrorIs(t, err, bus.ErrDelayTooLong)
	assert.ErrorContains(t, err, "over the Storage Queue limit of 168h0m0s")

	d, err = New(Config{ConnectionString: unreachable, MessageTTL: time.Hour})
	require.NoError(t, err)
	err = d.Send(context.Background(), "q", env, &bus.SendOptions{Delay: time.Hour})
	require.ErrorIs(t, err, bus.ErrDelayTooLong, "the message would expire before it is visible")
}

func TestEncodeRecordTruncatesWithoutClaimStore(t *testing.T) {
	d, err := New(Config{ConnectionString: unreachable, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	// Quotes double in JSON, so a full-size original cannot fit as is.
	original := strings.Repeat(`"`, envelope.MaxQueueMessageBytes-10)
	rec := record{V: 1, SourceQueue: "q", Reason: "r", At: time.Unix(0, 0).UTC(), Message: original}
	text, err := d.encodeRecord(context.Background(), &rec)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(text), envelope.MaxQueueMessageBytes)
	var back record
	require.NoError(t, json.Unmarshal([]byte(text), &back))
	assert.True(t, back.Truncated)
	assert.True(t, strings.HasPrefix(original, back.Message))
	assert.Equal(t, "r", back.Reason)

	small := record{V: 1, SourceQueue: "q", Reason: "r", Message: "short"}
	text, err = d.encodeRecord(context.Background(), &small)
	require.NoError(t, err)
	assert.NotContains(t, text, "truncated")
}
