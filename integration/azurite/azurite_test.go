package azurite_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
)

// TestHarness proves the emulator the harness starts is a working Azure
// Storage: queues, tables and blobs through the real Azure SDK clients.
func TestHarness(t *testing.T) {
	t.Parallel()
	az := azurite.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("queue put get delete", func(t *testing.T) {
		svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
		require.NoError(t, err)
		q := svc.NewQueueClient("harness-check")
		_, err = q.Create(ctx, nil)
		require.NoError(t, err)

		_, err = q.EnqueueMessage(ctx, "hello", nil)
		require.NoError(t, err)
		got, err := q.DequeueMessage(ctx, &azqueue.DequeueMessageOptions{VisibilityTimeout: ptr(int32(30))})
		require.NoError(t, err)
		require.Len(t, got.Messages, 1)
		m := got.Messages[0]
		assert.Equal(t, "hello", *m.MessageText)

		_, err = q.DeleteMessage(ctx, *m.MessageID, *m.PopReceipt, nil)
		require.NoError(t, err)
		props, err := q.GetProperties(ctx, nil)
		require.NoError(t, err)
		assert.EqualValues(t, 0, *props.ApproximateMessagesCount, "deleted message is gone")
	})

	t.Run("table entity", func(t *testing.T) {
		svc, err := aztables.NewServiceClientFromConnectionString(az.ConnectionString, nil)
		require.NoError(t, err)
		_, err = svc.CreateTable(ctx, "harnesscheck", nil)
		require.NoError(t, err)
		tc := svc.NewClient("harnesscheck")
		entity, err := json.Marshal(aztables.EDMEntity{
			Entity:     aztables.Entity{PartitionKey: "tenant-a", RowKey: "connector-1"},
			Properties: map[string]any{"Topic": "chat"},
		})
		require.NoError(t, err)
		_, err = tc.AddEntity(ctx, entity, nil)
		require.NoError(t, err)

		resp, err := tc.GetEntity(ctx, "tenant-a", "connector-1", nil)
		require.NoError(t, err)
		var back aztables.EDMEntity
		require.NoError(t, json.Unmarshal(resp.Value, &back))
		assert.Equal(t, "chat", back.Properties["Topic"])
	})

	t.Run("blob upload download", func(t *testing.T) {
		c, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
		require.NoError(t, err)
		_, err = c.CreateContainer(ctx, "harness", nil)
		require.NoError(t, err)
		_, err = c.UploadBuffer(ctx, "harness", "a.txt", []byte("body"), nil)
		require.NoError(t, err)
		buf := make([]byte, 4)
		_, err = c.DownloadBuffer(ctx, "harness", "a.txt", buf, nil)
		require.NoError(t, err)
		assert.Equal(t, "body", string(buf))
	})
}

// TestInstancesAreIsolated checks two emulators side by side get their own
// ports and data, as parallel test packages do.
func TestInstancesAreIsolated(t *testing.T) {
	t.Parallel()
	a, b := azurite.New(t), azurite.New(t)
	assert.NotEqual(t, a.QueueURL, b.QueueURL)

	ctx := context.Background()
	qa, err := azqueue.NewServiceClientFromConnectionString(a.ConnectionString, nil)
	require.NoError(t, err)
	_, err = qa.CreateQueue(ctx, "only-in-a", nil)
	require.NoError(t, err)

	qb, err := azqueue.NewServiceClientFromConnectionString(b.ConnectionString, nil)
	require.NoError(t, err)
	_, err = qb.NewQueueClient("only-in-a").GetProperties(ctx, nil)
	require.Error(t, err, "queue created in one emulator must not exist in the other")
}

func TestUnknownModeIsAnError(t *testing.T) {
	_, err := azurite.Start(context.Background(), azurite.Options{Mode: "podman"})
	require.ErrorContains(t, err, `want docker, npm or empty`)
}

func ptr[T any](v T) *T { return &v }

// TestRestartKeepsPersistedData: with Persist, Restart brings Azurite
// back on the same endpoints with what was written before (the chaos test
// restarts it under load).
func TestRestartKeepsPersistedData(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	az, err := azurite.Start(ctx, azurite.Options{Mode: "npm", Persist: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = az.Stop() })
	svc, err := azqueue.NewServiceClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	q := svc.NewQueueClient("restart-check")
	_, err = q.Create(ctx, nil)
	require.NoError(t, err)
	_, err = q.EnqueueMessage(ctx, "kept", nil)
	require.NoError(t, err)
	blobs, err := azblob.NewClientFromConnectionString(az.ConnectionString, nil)
	require.NoError(t, err)
	_, err = blobs.CreateContainer(ctx, "restart", nil)
	require.NoError(t, err)
	_, err = blobs.UploadBuffer(ctx, "restart", "b", []byte("kept too"), nil)
	require.NoError(t, err)
	before := az.ConnectionString

	require.NoError(t, az.Restart(ctx))
	assert.Equal(t, before, az.ConnectionString, "same endpoints")
	got, err := q.DequeueMessage(ctx, nil)
	require.NoError(t, err)
	require.Len(t, got.Messages, 1)
	assert.Equal(t, "kept", *got.Messages[0].MessageText)
	var buf [16]byte
	n, err := blobs.DownloadBuffer(ctx, "restart", "b", buf[:], nil)
	require.NoError(t, err)
	assert.Equal(t, "kept too", string(buf[:n]))

	mem, err := azurite.Start(ctx, azurite.Options{Mode: "npm"})
	require.NoError(t, err)
	defer mem.Stop()
	assert.Error(t, mem.Restart(ctx), "an in-memory Azurite has nothing to come back with")
}

// TestAccountsAreIsolated: the accounts of one emulator (Options.Accounts)
// each have their own queues, tables and blobs, authenticate with their
// own key only, and the development account still works beside them.
func TestAccountsAreIsolated(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	az := azurite.NewWith(t, azurite.Options{Accounts: []string{"first", "second"}})
	first, err := az.Account("first")
	require.NoError(t, err)
	second, err := az.Account("second")
	require.NoError(t, err)
	assert.Equal(t, "first", first.AccountName)
	assert.NotEqual(t, first.AccountKey, second.AccountKey)
	assert.Contains(t, first.QueueURL, "/first")
	_, err = az.Account("third")
	assert.ErrorContains(t, err, `no account "third"`)

	queues := func(e *azurite.Emulator) *azqueue.ServiceClient {
		svc, err := azqueue.NewServiceClientFromConnectionString(e.ConnectionString, nil)
		require.NoError(t, err)
		return svc
	}
	_, err = queues(first).CreateQueue(ctx, "only-in-first", nil)
	require.NoError(t, err)
	_, err = queues(first).NewQueueClient("only-in-first").GetProperties(ctx, nil)
	require.NoError(t, err)
	for _, other := range []*azurite.Emulator{second, az} {
		_, err = queues(other).NewQueueClient("only-in-first").GetProperties(ctx, nil)
		require.Error(t, err, "%s must not see the queue of account first", other.AccountName)
	}
	_, err = queues(az).CreateQueue(ctx, "development", nil)
	require.NoError(t, err, "the development account works beside the others")

	tables, err := aztables.NewServiceClientFromConnectionString(second.ConnectionString, nil)
	require.NoError(t, err)
	_, err = tables.CreateTable(ctx, "onlyinsecond", nil)
	require.NoError(t, err)
	blobs, err := azblob.NewClientFromConnectionString(second.ConnectionString, nil)
	require.NoError(t, err)
	_, err = blobs.CreateContainer(ctx, "only-in-second", nil)
	require.NoError(t, err)
	otherTables, err := aztables.NewServiceClientFromConnectionString(first.ConnectionString, nil)
	require.NoError(t, err)
	_, err = otherTables.CreateTable(ctx, "onlyinsecond", nil)
	require.NoError(t, err, "account first has no table of that name yet")
	otherBlobs, err := azblob.NewClientFromConnectionString(first.ConnectionString, nil)
	require.NoError(t, err)
	_, err = otherBlobs.CreateContainer(ctx, "only-in-second", nil)
	require.NoError(t, err, "account first has no container of that name yet")
	_, err = blobs.CreateContainer(ctx, "only-in-second", nil)
	require.Error(t, err, "a container's name is taken within its account")

	forged := strings.Replace(first.ConnectionString, "AccountKey="+first.AccountKey, "AccountKey="+second.AccountKey, 1)
	_, err = queues(&azurite.Emulator{ConnectionString: forged}).NewQueueClient("only-in-first").GetProperties(ctx, nil)
	require.Error(t, err, "another account's key is refused")

	require.NoError(t, first.Stop(), "a view stops nothing")
	_, err = queues(second).CreateQueue(ctx, "still-served", nil)
	require.NoError(t, err)
	assert.Error(t, first.Restart(ctx))
}

func TestBadAccountNames(t *testing.T) {
	for _, names := range [][]string{{"ab"}, {"Upper"}, {"with-dash"}, {"twice", "twice"}, {azurite.AccountName}} {
		_, err := azurite.Start(context.Background(), azurite.Options{Accounts: names})
		assert.ErrorContains(t, err, "azurite: Accounts[", "%q", names)
	}
}
