package gateway

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/envelope"
)

// TestStorageQueueReplyQueue: what the gateway and the cloud client need
// of the Storage Queue driver for reply queues, on Azurite. A send with
// MustExist never creates the queue (even with CreateQueues, as the
// gateway runs) and fails with bus.ErrNoQueue; CreateQueue and
// DeleteQueue are idempotent; a message sent with a TTL is gone once it
// passed.
func TestStorageQueueReplyQueue(t *testing.T) {
	t.Parallel()
	emu := shared.Account(t)
	d, err := storagequeue.New(storagequeue.Config{ConnectionString: emu.ConnectionString, CreateQueues: true, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(context.Background()) })
	ctx := ctxFor(t, 60*time.Second)
	queue := bus.ReplyQueue(bus.NewInstance())
	msg := func(body string) *envelope.Envelope {
		return &envelope.Envelope{ID: envelope.NewID(), Kind: envelope.KindCloud, From: &envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, Body: []byte(body), CreatedAt: time.Now().UTC()}
	}

	for range 2 { // the first send did not create it
		err := d.Send(ctx, queue, msg("nobody"), &bus.SendOptions{MustExist: true})
		require.ErrorIs(t, err, bus.ErrNoQueue)
	}
	require.NoError(t, d.CreateQueue(ctx, queue))
	require.NoError(t, d.CreateQueue(ctx, queue), "creating it again")
	short, long := msg("short"), msg("long")
	require.NoError(t, d.Send(ctx, queue, short, &bus.SendOptions{MustExist: true, TTL: time.Second}))
	require.NoError(t, d.Send(ctx, queue, long, &bus.SendOptions{MustExist: true, TTL: time.Hour}))
	time.Sleep(2500 * time.Millisecond) // the short one's time to live passes (the server's clock)
	var got []string
	require.Eventually(t, func() bool {
		ms, err := d.Receive(ctx, queue, 32, time.Minute)
		require.NoError(t, err)
		for _, m := range ms {
			got = append(got, string(m.Envelope.Body))
			require.NoError(t, d.Complete(ctx, m))
		}
		return len(got) > 0
	}, 30*time.Second, 50*time.Millisecond)
	assert.Equal(t, []string{"long"}, got, "the message past its TTL is gone")

	require.NoError(t, d.DeleteQueue(ctx, queue))
	require.NoError(t, d.DeleteQueue(ctx, queue), "deleting it again")
	require.ErrorIs(t, d.Send(ctx, queue, msg("gone"), &bus.SendOptions{MustExist: true}), bus.ErrNoQueue)
}
