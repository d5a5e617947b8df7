package bus

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/bustest"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/claimcheck"
	"github.com/botehq/platform/runtime/envelope"
)

func TestClaimCheckOnAzurite(t *testing.T) {
	t.Parallel() // an emulator of its own
	emu := azurite.New(t)
	ctx := context.Background()
	store, err := claimcheck.New(ctx, claimcheck.Config{
		ConnectionString: emu.ConnectionString,
		Container:        "claims",
		CreateContainer:  true,
		MaxBodyBytes:     1 << 20,
		URLTTL:           time.Minute,
	})
	require.NoError(t, err)

	body := make([]byte, 300<<10)
	_, _ = rand.Read(body)
	claim, err := store.Put(ctx, body, "application/octet-stream")
	require.NoError(t, err)
	assert.Equal(t, int64(len(body)), claim.Size)
	require.NotEmpty(t, claim.URL)

	t.Run("fetch by reference", func(t *testing.T) {
		got, err := store.Fetch(ctx, claim)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(body, got))
	})
	t.Run("fetch by SAS URL without credentials", func(t *testing.T) {
		got, err := claimcheck.FetchURL(ctx, nil, claim, 1<<20)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(body, got))
	})
	t.Run("SAS URL cannot write", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, claim.URL, strings.NewReader("overwrite"))
		require.NoError(t, err)
		req.Header.Set("x-ms-blob-type", "BlockBlob")
		req.Header.Set("x-ms-version", "2025-01-05")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		got, err := store.Fetch(ctx, claim)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(body, got), "blob unchanged")
	})
	t.Run("SAS URL is scoped to its blob", func(t *testing.T) {
		other, err := store.Put(ctx, []byte("someone else's body"), "")
		require.NoError(t, err)
		u, err := url.Parse(claim.URL)
		require.NoError(t, err)
		u.Path = strings.Replace(u.Path, claim.Blob, other.Blob, 1)
		stolen := *other
		stolen.URL = u.String()
		_, err = claimcheck.FetchURL(ctx, nil, &stolen, 1<<20)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HTTP 403")
	})
	t.Run("expired SAS URL fails", func(t *testing.T) {
		// Signed by a clock an hour behind: valid for a minute, it expired
		// 59 minutes ago by storage's clock.
		late, err := claimcheck.New(ctx, claimcheck.Config{
			ConnectionString: emu.ConnectionString,
			Container:        "claims",
			Now:              func() time.Time { return time.Now().Add(-time.Hour) },
		})
		require.NoError(t, err)
		c := *claim
		require.NoError(t, late.Sign(ctx, &c, time.Minute))
		require.True(t, c.URLExpiresAt.Before(time.Now()), "expires %s", c.URLExpiresAt)
		_, err = claimcheck.FetchURL(ctx, nil, &c, 1<<20)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "HTTP 403")

		require.NoError(t, store.Sign(ctx, &c, time.Minute))
		_, err = claimcheck.FetchURL(ctx, nil, &c, 1<<20)
		require.NoError(t, err, "the same link signed now is good")
	})
	t.Run("swapped blob is detected", func(t *testing.T) {
		c, err := store.Put(ctx, []byte("original"), "")
		require.NoError(t, err)
		raw, err := azblob.NewClientFromConnectionString(emu.ConnectionString, nil)
		require.NoError(t, err)
		_, err = raw.UploadBuffer(ctx, c.Container, c.Blob, []byte("tampered"), nil)
		require.NoError(t, err)
		_, err = store.Fetch(ctx, c)
		assert.ErrorIs(t, err, claimcheck.ErrCorrupt)
		_, err = claimcheck.FetchURL(ctx, nil, c, 1<<20)
		assert.ErrorIs(t, err, claimcheck.ErrCorrupt)
	})
	t.Run("oversize refused", func(t *testing.T) {
		_, err := store.Put(ctx, make([]byte, 1<<20+1), "")
		assert.ErrorIs(t, err, claimcheck.ErrBodyTooLarge)
	})
	t.Run("delete, then not found, delete again is fine", func(t *testing.T) {
		c, err := store.Put(ctx, []byte("bye"), "")
		require.NoError(t, err)
		require.NoError(t, store.Delete(ctx, c))
		_, err = store.Fetch(ctx, c)
		assert.ErrorIs(t, err, claimcheck.ErrNotFound)
		_, err = claimcheck.FetchURL(ctx, nil, c, 1<<20)
		assert.ErrorIs(t, err, claimcheck.ErrNotFound)
		require.NoError(t, store.Delete(ctx, c))
	})
}

// TestStorageQueueClaimLifecycle covers what the contract suite cannot
// express generically: a missing claim blob dead-letters the message, a
// receiver without a store gets the claim with its URL, and a dead letter
// too large for the error queue keeps its original in a blob.
func TestStorageQueueClaimLifecycle(t *testing.T) {
	t.Parallel() // an emulator of its own
	emu := azurite.New(t)
	ctx := context.Background()
	store, err := claimcheck.New(ctx, claimcheck.Config{ConnectionString: emu.ConnectionString, CreateContainer: true})
	require.NoError(t, err)
	open := func(claims *claimcheck.Store) *storagequeue.Driver {
		d, err := storagequeue.New(storagequeue.Config{ConnectionString: emu.ConnectionString, Claims: claims, CreateQueues: true})
		require.NoError(t, err)
		return d
	}
	withStore, withoutStore := open(store), open(nil)
	big := func() *envelope.Envelope {
		e := bustest.Full()
		e.Body = make([]byte, 100<<10)
		_, _ = rand.Read(e.Body)
		return e
	}
	receive := func(d *storagequeue.Driver, q string) []*bus.Message {
		ms, err := d.Receive(ctx, q, 32, 5*time.Second)
		require.NoError(t, err)
		return ms
	}

	t.Run("receiver without store gets a fetchable claim", func(t *testing.T) {
		q := bustest.UniqueName("cl-")
		e := big()
		require.NoError(t, withStore.Send(ctx, q, e, nil))
		ms := receive(withoutStore, q)
		require.Len(t, ms, 1)
		got := ms[0].Envelope
		require.NotNil(t, got.Claim)
		assert.Empty(t, got.Body)
		body, err := claimcheck.FetchURL(ctx, nil, got.Claim, 1<<20)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(e.Body, body))
		require.NoError(t, withoutStore.Complete(ctx, ms[0]))
	})

	t.Run("forwarding a resolved claim reuses the blob", func(t *testing.T) {
		q1, q2 := bustest.UniqueName("cl-"), bustest.UniqueName("cl-")
		require.NoError(t, withStore.Send(ctx, q1, big(), nil))
		ms := receive(withStore, q1)
		require.Len(t, ms, 1)
		first := ms[0].Envelope
		require.NoError(t, withStore.Send(ctx, q2, first, nil))
		ms2 := receive(withStore, q2)
		require.Len(t, ms2, 1)
		assert.Equal(t, first.Claim.Blob, ms2[0].Envelope.Claim.Blob)
		assert.Equal(t, first.Body, ms2[0].Envelope.Body)
	})

	t.Run("missing claim blob is dead-lettered", func(t *testing.T) {
		q := bustest.UniqueName("cl-")
		require.NoError(t, withStore.Send(ctx, q, big(), nil))
		peek := receive(withoutStore, q)
		require.Len(t, peek, 1)
		require.NoError(t, store.Delete(ctx, peek[0].Envelope.Claim))
		require.NoError(t, withoutStore.Abandon(ctx, peek[0], 0))
		assert.Empty(t, receive(withStore, q))
		dls, err := withStore.ReceiveDeadLetters(ctx, q, 1, 5*time.Second)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		assert.Equal(t, "claim check failed", dls[0].DeadLetter.Reason)
		assert.Contains(t, dls[0].DeadLetter.Description, "not found")
		require.NoError(t, withStore.Complete(ctx, dls[0]))
	})

	t.Run("oversize dead letter keeps its original in a blob", func(t *testing.T) {
		q := bustest.UniqueName("cl-")
		e := bustest.Full()
		// Near the queue limit and full of quotes, which double in the record.
		e.Headers = map[string]string{"q": strings.Repeat(`"`, 10000)}
		e.Body = make([]byte, 30<<10)
		require.NoError(t, withoutStore.Send(ctx, q, e, nil))
		ms := receive(withStore, q)
		require.Len(t, ms, 1)
		require.NoError(t, withStore.DeadLetter(ctx, ms[0], "too big to keep inline", ""))
		dls, err := withStore.ReceiveDeadLetters(ctx, q, 1, 5*time.Second)
		require.NoError(t, err)
		require.Len(t, dls, 1)
		assert.Equal(t, e.Headers, dls[0].Envelope.Headers)
		assert.Equal(t, e.ID, dls[0].Envelope.ID)
	})
}
