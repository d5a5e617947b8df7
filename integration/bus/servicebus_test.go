package bus

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus/admin"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus/bustest"
	"github.com/botehq/platform/runtime/bus/servicebus"
)

// sbLock is the LockDuration of the queues the suite creates (the
// service's minimum is 5 seconds).
const sbLock = 5 * time.Second

// runServiceBus runs the contract suite on a real namespace: every test
// gets its own queue (duplicate detection on, lock 5s), deleted afterwards.
// The claim check test is skipped: bodies up to 256 KiB fit a Standard
// message, and the claim check itself is covered on Azurite.
func runServiceBus(t *testing.T, conn string) {
	adm, err := admin.NewClientFromConnectionString(conn, nil)
	require.NoError(t, err)
	raw, err := azservicebus.NewClientFromConnectionString(conn, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = raw.Close(context.Background()) })

	bustest.Run(t, func(t *testing.T) bustest.Fixture {
		d, err := servicebus.New(servicebus.Config{ConnectionString: conn, MaxDeliveries: 3, ReceiveWait: 500 * time.Millisecond})
		require.NoError(t, err)
		t.Cleanup(func() { _ = d.Close(context.Background()) })
		return bustest.Fixture{
			Driver: d,
			NewQueue: func(t *testing.T) string {
				name := bustest.UniqueName("bt-")
				ctx := context.Background()
				_, err := adm.CreateQueue(ctx, name, &admin.CreateQueueOptions{Properties: &admin.QueueProperties{
					LockDuration:               to.Ptr("PT5S"),
					MaxDeliveryCount:           to.Ptr(int32(100)),
					RequiresDuplicateDetection: to.Ptr(true),
				}})
				require.NoError(t, err)
				t.Cleanup(func() { _, _ = adm.DeleteQueue(context.Background(), name, nil) })
				return name
			},
			SendRaw: func(ctx context.Context, queue string, body []byte) error {
				s, err := raw.NewSender(queue, nil)
				if err != nil {
					return err
				}
				defer s.Close(ctx)
				return s.SendMessage(ctx, &azservicebus.Message{Body: body}, nil)
			},
			Lock:          sbLock,
			MaxDeliveries: 3,
		}
	})
}
