package azurite_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
)

// What a Restart under load does to a queue, against Azurite alone (the
// chaos test restarts it while the platform runs): an acknowledged put is
// never lost, and nothing is lost at all, but a read in flight may be
// carried out (its message hidden for the visibility timeout it asked for)
// while its answer never arrives. Azure Storage behaves the same when a
// connection drops after the service did the work, so receivers must
// expect it: the message comes back when its visibility timeout ends.
func TestRestartUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	az, err := azurite.Start(ctx, azurite.Options{Mode: "npm", Persist: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = az.Stop() })
	svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	puts, reads := svc.NewQueueClient("puts"), svc.NewQueueClient("reads")
	for _, q := range []*azqueue.QueueClient{puts, reads} {
		_, err = q.Create(ctx, nil)
		require.NoError(t, err)
	}
	const queued = 300
	for n := range queued {
		_, err := reads.EnqueueMessage(ctx, fmt.Sprint(n), nil)
		require.NoError(t, err)
	}

	var mu sync.Mutex
	acked, read := map[string]bool{}, map[string]bool{}
	var attempts atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	busy := func(work func(i, n int)) {
		for i := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					work(i, n)
				}
			}()
		}
	}
	busy(func(i, n int) { // writers
		text := fmt.Sprintf("w%d-%06d", i, n)
		attempts.Add(1)
		pctx, c := context.WithTimeout(ctx, 5*time.Second)
		defer c()
		if _, err := puts.EnqueueMessage(pctx, text, nil); err != nil {
			time.Sleep(20 * time.Millisecond)
			return
		}
		mu.Lock()
		acked[text] = true
		mu.Unlock()
	})
	busy(func(int, int) { // readers, one message at a time, as a router does
		vis, one := int32(120), int32(1)
		rctx, c := context.WithTimeout(ctx, 5*time.Second)
		defer c()
		resp, err := reads.DequeueMessages(rctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &one, VisibilityTimeout: &vis})
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		for _, m := range resp.Messages {
			read[*m.MessageText] = true
		}
	})
	const restarts = 3
	for range restarts {
		time.Sleep(500 * time.Millisecond)
		require.NoError(t, az.Restart(ctx))
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()

	kept := drain(ctx, t, puts)
	var lost []string
	for text := range acked {
		if !kept[text] {
			lost = append(lost, text)
		}
	}
	visible := len(drain(ctx, t, reads))
	props, err := reads.GetProperties(ctx, nil)
	require.NoError(t, err)
	hidden := int(*props.ApproximateMessagesCount) - visible
	t.Logf("%d restarts: %d puts, %d acknowledged, %d kept (%d unacknowledged kept); %d queued, %d read, %d visible, %d hidden though no read answered with them",
		restarts, attempts.Load(), len(acked), len(kept), len(kept)-len(acked)+len(lost), queued, len(read), visible, hidden-len(read))
	assert.Empty(t, lost, "acknowledged puts lost by a restart")
	assert.Equal(t, queued, int(*props.ApproximateMessagesCount), "a restart loses no message")
}

// drain reads every visible message of q (hiding it for 5 minutes) and
// returns their texts.
func drain(ctx context.Context, t *testing.T, q *azqueue.QueueClient) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for {
		vis, n := int32(300), int32(32)
		resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: &n, VisibilityTimeout: &vis})
		require.NoError(t, err)
		if len(resp.Messages) == 0 {
			return got
		}
		for _, m := range resp.Messages {
			got[*m.MessageText] = true
		}
	}
}
