package runs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/notify"
)

// TestNotifyTable: the webhook outbox on Azurite. Events enqueued twice
// are stored once; three notifiers (replicas) polling the same outbox
// deliver each event once, the first attempts answered 500 retried; the
// log keeps every attempt.
func TestNotifyTable(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	ctx := context.Background()
	store, err := notify.OpenTable(ctx, svc, "", true)
	require.NoError(t, err)

	var mu sync.Mutex
	received := map[string]int{}
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		assert.NoError(t, notify.Verify("s3cret", r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature), body, time.Now()))
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 3 {
			w.WriteHeader(500)
			return
		}
		received[r.Header.Get(notify.HeaderID)]++
	}))
	t.Cleanup(srv.Close)
	require.NoError(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "hook", URL: srv.URL, Secret: "s3cret"}))
	require.ErrorIs(t, store.AddDestination(ctx, notify.Destination{Tenant: "contoso", ID: "hook", URL: srv.URL}), notify.ErrExists)

	var ns []*notify.Notifier
	for range 3 {
		n, err := notify.New(notify.Config{Store: store, AllowPrivate: true, RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		ns = append(ns, n)
	}
	const events = 12
	for i := range events {
		ev := notify.Event{ID: fmt.Sprintf("ev-%02d", i), Type: notify.Applied, Tenant: "contoso", Workspace: "prod"}
		require.NoError(t, ns[0].Notify(ctx, ev))
		require.NoError(t, ns[1].Notify(ctx, ev), "enqueued again")
	}
	require.Eventually(t, func() bool {
		var wg sync.WaitGroup
		for _, n := range ns {
			wg.Go(func() {
				_, err := n.DeliverDue(ctx)
				assert.NoError(t, err)
			})
		}
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return len(received) == events
	}, 30*time.Second, 20*time.Millisecond)
	mu.Lock()
	for id, n := range received {
		assert.Equal(t, 1, n, "%s delivered more than once", id)
	}
	mu.Unlock()
	ds, err := store.Deliveries(ctx, "contoso", "hook", 100)
	require.NoError(t, err)
	require.Len(t, ds, events)
	tries := 0
	for _, d := range ds {
		assert.Equal(t, notify.Delivered, d.State)
		tries += d.Tries
	}
	assert.Equal(t, events+3, tries, "three attempts answered 500 were tried again")
	due, err := store.Due(ctx, time.Now().Add(time.Hour), 100)
	require.NoError(t, err)
	assert.Empty(t, due, "the outbox is empty")
	require.NoError(t, store.DeleteDestination(ctx, "contoso", "hook"))
	require.ErrorIs(t, store.DeleteDestination(ctx, "contoso", "hook"), notify.ErrNotFound)
}

// TestNotifyTableStoresLargeEvents: an event with many drifted resources
// and long messages (tens of KiB, more than one table property holds)
// is enqueued, leased and logged whole.
func TestNotifyTableStoresLargeEvents(t *testing.T) {
	t.Parallel()
	emu := azurite.New(t)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	ctx := context.Background()
	store, err := notify.OpenTable(ctx, svc, "", true)
	require.NoError(t, err)
	ev := notify.Event{ID: "big", Type: notify.DriftDetected, Tenant: "contoso", Workspace: "prod", Message: strings.Repeat("ü", 20<<10)}
	for i := range 100 {
		ev.Drift = append(ev.Drift, notify.DriftInfo{Address: fmt.Sprintf("azurerm_storage_account.logs_%03d", i), Actions: []string{"update"},
			Attributes: []string{"tags", "network_rules", "blob_properties", "min_tls_version"}})
	}
	d := notify.Delivery{ID: "big.hook", Tenant: "contoso", Destination: "hook", Event: ev, Created: time.Now(), State: notify.Pending, Due: time.Now()}
	require.NoError(t, store.Enqueue(ctx, []notify.Delivery{d}))
	due, err := store.Due(ctx, time.Now().Add(time.Second), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, ev, due[0].Event)
	leased, err := store.Lease(ctx, due[0], time.Now().Add(time.Minute))
	require.NoError(t, err)
	leased.State = notify.Delivered
	require.NoError(t, store.Record(ctx, leased))
	logged, err := store.Deliveries(ctx, "contoso", "hook", 1)
	require.NoError(t, err)
	require.Len(t, logged, 1)
	assert.Len(t, logged[0].Event.Drift, 100)
}
