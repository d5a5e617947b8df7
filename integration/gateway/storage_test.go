package gateway

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/gatewayserver/nudge"
	"github.com/botehq/platform/runtime/gatewayserver/subscriptions"
	"github.com/botehq/platform/runtime/ids"
)

// TestSubscriptionStoreOnAzurite: the Table Storage layout keeps tenants
// and topics apart, and subscribe/unsubscribe are idempotent.
func TestSubscriptionStoreOnAzurite(t *testing.T) {
	t.Parallel()
	emu := shared.Account(t)
	ctx := ctxFor(t, 30*time.Second)
	svc, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	st, err := subscriptions.New(ctx, svc, "subs")
	require.NoError(t, err)

	for _, s := range []struct{ tenant, topic, conn string }{
		{"t1", "chat", "c1"}, {"t1", "chat", "c2"}, {"t1", "chat", "c2"}, // twice is fine
		{"t2", "chat", "c1"}, {"t1", "chat/eu", "c3"}, {"t1", "chat-eu", "c4"},
	} {
		require.NoError(t, st.Subscribe(ctx, s.tenant, s.topic, s.conn))
	}
	for _, tc := range []struct {
		tenant, topic string
		want          []string
	}{
		{"t1", "chat", []string{"c1", "c2"}},
		{"t2", "chat", []string{"c1"}},
		{"t1", "chat/eu", []string{"c3"}},
		{"t1", "chat-eu", []string{"c4"}},
		{"t3", "chat", nil},
	} {
		got, err := st.Subscribers(ctx, tc.tenant, tc.topic)
		require.NoError(t, err)
		assert.Equal(t, tc.want, got, "%s/%s", tc.tenant, tc.topic)
	}
	require.NoError(t, st.Unsubscribe(ctx, "t1", "chat", "c1"))
	require.NoError(t, st.Unsubscribe(ctx, "t1", "chat", "c1"), "unsubscribing twice is fine")
	got, err := st.Subscribers(ctx, "t1", "chat")
	require.NoError(t, err)
	assert.Equal(t, []string{"c2"}, got)

	assert.Error(t, st.Subscribe(ctx, "t1", "bad topic", "c1"))
	assert.Error(t, st.Subscribe(ctx, "t1|x", "chat", "c1"), "a tenant id cannot reach into another partition")
}

// TestPresenceLeaveKeepsNewerSession: a session closing on one replica does
// not erase the presence a newer session recorded on another.
func TestPresenceLeaveKeepsNewerSession(t *testing.T) {
	t.Parallel()
	emu := shared.Account(t)
	ctx := ctxFor(t, 30*time.Second)
	tables, err := aztables.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	queues, err := azqueue.NewServiceClientFromConnectionString(emu.ConnectionString, nil)
	require.NoError(t, err)
	var mu sync.Mutex
	nudged := map[string]int{}
	count := func(r string) int { mu.Lock(); defer mu.Unlock(); return nudged[r] }
	newFan := func(replica string) *nudge.Fanout {
		f, err := nudge.New(ctx, nudge.Config{Queues: queues, Tables: tables, Replica: replica, Logger: slog.New(slog.DiscardHandler),
			PollMin: 10 * time.Millisecond, PollMax: 50 * time.Millisecond})
		require.NoError(t, err)
		return f
	}
	local := func(replica string) nudge.Local {
		return nudge.LocalFunc(func(id ids.ConnectorID) bool { mu.Lock(); defer mu.Unlock(); nudged[replica]++; return false })
	}
	r1, r2 := newFan("r1"), newFan("r2")
	id := ids.ConnectorID{Tenant: "t", Connector: "c"}
	require.NoError(t, r1.Join(ctx, id, "old"))
	require.NoError(t, r2.Join(ctx, id, "new")) // reconnected to r2
	require.NoError(t, r1.Leave(ctx, id, "old"))

	// r1 routes: the nudge must travel to r2.
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r2.Run(runCtx, local("r2")) }()
	require.NoError(t, r1.Nudge(ctx, id))
	require.Eventually(t, func() bool { return count("r2") >= 1 }, 10*time.Second, 20*time.Millisecond)

	require.NoError(t, r2.Leave(ctx, id, "new"))
	before := count("r2")
	require.NoError(t, r1.Nudge(ctx, id), "nobody connected is not an error")
	time.Sleep(200 * time.Millisecond)
	assert.Equal(t, before, count("r2"))
	require.NoError(t, r1.Close(ctx))
	require.NoError(t, r2.Close(ctx))
}

// The gateway with --create-resources creates the bus queues at startup,
// the error queue included: a cloud program built with botecloud.NewFromEnv
// (the samples, against `make demo-gateway`) creates no queue, and its
// first dead letter (an expired call) failed with QueueNotFound, leaving
// the message to come back again and again.
func TestGatewayCreatesBusQueues(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	for _, q := range []string{bus.QueueCloud, bus.QueueConnectors, bus.QueueErrors} {
		qc, err := azqueue.NewQueueClientFromConnectionString(g.emu.ConnectionString, q, nil)
		require.NoError(t, err)
		_, err = qc.GetProperties(ctxFor(t, 10*time.Second), nil)
		assert.NoError(t, err, "queue %s does not exist once the gateway listens", q)
	}
}
