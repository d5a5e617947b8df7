// Package botecloud runs the cloud services' client (runtime/botecloud)
// against the Storage Queue bus driver on Azurite: sends, request/reply,
// identity checks, retries into the error queue and deduplication, over real
// queues.
package botecloud

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/azurite"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/bus"
	"github.com/botehq/platform/runtime/bus/bustest"
	"github.com/botehq/platform/runtime/bus/storagequeue"
	"github.com/botehq/platform/runtime/envelope"
)

type setup struct {
	driver            *storagequeue.Driver
	client            *botecloud.Client
	cloudQ, connQ     string
	stop              func()
	handled           atomic.Int32
	mu                sync.Mutex
	received          []*botecloud.Message
	handlerErr        error
	handlerReplyFirst bool
}

func newSetup(t *testing.T, emu *azurite.Emulator, mod func(*botecloud.Config)) *setup {
	d, err := storagequeue.New(storagequeue.Config{
		ConnectionString: emu.ConnectionString,
		ErrorQueue:       bustest.UniqueName("errors-"),
		CreateQueues:     true,
		Logger:           slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	s := &setup{driver: d, cloudQ: bustest.UniqueName("cloud-"), connQ: bustest.UniqueName("conn-")}
	cfg := botecloud.Config{
		Bus: d, Service: "relayserver", CloudQueue: s.cloudQ, ConnectorsQueue: s.connQ,
		PollMin: 20 * time.Millisecond, PollMax: 200 * time.Millisecond, Lock: 5 * time.Second,
		Logger: slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&cfg)
	}
	s.client, err = botecloud.New(cfg)
	require.NoError(t, err)
	return s
}

func (s *setup) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.client.Run(ctx, botecloud.HandlerFunc(func(ctx context.Context, m *botecloud.Message) error {
			s.handled.Add(1)
			s.mu.Lock()
			s.received = append(s.received, m)
			herr, reply := s.handlerErr, s.handlerReplyFirst
			s.mu.Unlock()
			if herr != nil {
				return herr
			}
			if reply {
				_, err := s.client.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong")})
				return err
			}
			return nil
		}))
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
}

// fromGateway is what the gateway puts on the cloud queue for a connector.
func fromGateway(id string) *envelope.Envelope {
	return &envelope.Envelope{
		ID: id, Kind: envelope.KindCloud, From: &envelope.Identity{Tenant: "contoso", Connector: "agent-1"},
		Headers: map[string]string{"type": "ping"}, Body: []byte("ping"), CreatedAt: time.Now().UTC(),
	}
}

func receiveOne(t *testing.T, d bus.Driver, q string) *bus.Message {
	t.Helper()
	var got *bus.Message
	require.Eventually(t, func() bool {
		ms, err := d.Receive(context.Background(), q, 1, 5*time.Second)
		require.NoError(t, err)
		if len(ms) == 1 {
			got = ms[0]
		}
		return got != nil
	}, 15*time.Second, 50*time.Millisecond)
	return got
}

func deadLetter(t *testing.T, d bus.Driver, q string) *bus.Message {
	t.Helper()
	var got *bus.Message
	require.Eventually(t, func() bool {
		ms, err := d.ReceiveDeadLetters(context.Background(), q, 1, 5*time.Second)
		require.NoError(t, err)
		if len(ms) == 1 {
			got = ms[0]
		}
		return got != nil
	}, 20*time.Second, 100*time.Millisecond)
	return got
}

func TestCloudClientOnAzurite(t *testing.T) {
	emu := azurite.New(t)
	ctx := context.Background()

	t.Run("send to connector and broadcast", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, emu, nil)
		id, err := s.client.SendToConnector(ctx, "contoso", "agent-1", botecloud.OutMessage{Body: []byte("run plan"), Headers: map[string]string{"type": "run"}})
		require.NoError(t, err)
		m := receiveOne(t, s.driver, s.connQ)
		assert.Equal(t, id, m.Envelope.ID)
		assert.Equal(t, envelope.KindTargeted, m.Envelope.Kind)
		assert.Equal(t, "agent-1", m.Envelope.Connector)
		assert.Equal(t, &envelope.Identity{Service: "relayserver"}, m.Envelope.From)
		require.NoError(t, s.driver.Complete(ctx, m))

		_, err = s.client.Broadcast(ctx, "contoso", "chat", botecloud.OutMessage{Body: []byte("hello all")})
		require.NoError(t, err)
		m = receiveOne(t, s.driver, s.connQ)
		assert.Equal(t, envelope.KindBroadcast, m.Envelope.Kind)
		assert.Equal(t, "chat", m.Envelope.Topic)
	})

	t.Run("request and reply with verified identity", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, emu, nil)
		s.handlerReplyFirst = true
		s.run(t)
		req := fromGateway(envelope.NewID())
		require.NoError(t, s.driver.Send(ctx, s.cloudQ, req, nil))
		reply := receiveOne(t, s.driver, s.connQ)
		assert.Equal(t, req.ID, reply.Envelope.CorrelationID)
		assert.Equal(t, "contoso", reply.Envelope.Tenant)
		assert.Equal(t, "agent-1", reply.Envelope.Connector)
		assert.Equal(t, []byte("pong"), reply.Envelope.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		require.Len(t, s.received, 1)
		assert.Equal(t, envelope.Identity{Tenant: "contoso", Connector: "agent-1"}, s.received[0].From)
	})

	t.Run("unstamped message is dead-lettered, never handled", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, emu, nil)
		s.run(t)
		spoof := &envelope.Envelope{ID: envelope.NewID(), Kind: envelope.KindTargeted, Tenant: "contoso", Connector: "agent-1", CreatedAt: time.Now().UTC()}
		require.NoError(t, s.driver.Send(ctx, s.cloudQ, spoof, nil))
		dl := deadLetter(t, s.driver, s.cloudQ)
		assert.Equal(t, "unverified sender", dl.DeadLetter.Reason)
		assert.Equal(t, spoof.ID, dl.Envelope.ID)
		assert.Zero(t, s.handled.Load())
	})

	t.Run("failing handler: immediate, delayed, then error queue", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, emu, func(c *botecloud.Config) {
			c.ImmediateRetries, c.DelayedRetries, c.DelayedRetryBase = 1, 1, time.Second
		})
		s.handlerErr = errors.New("database unavailable")
		s.run(t)
		msg := fromGateway(envelope.NewID())
		require.NoError(t, s.driver.Send(ctx, s.cloudQ, msg, nil))
		dl := deadLetter(t, s.driver, s.cloudQ)
		assert.Equal(t, "handler failed after 1 immediate and 1 delayed retries", dl.DeadLetter.Reason)
		assert.Equal(t, "database unavailable", dl.DeadLetter.Description)
		assert.Equal(t, msg.ID, dl.Envelope.ID)
		assert.Equal(t, int32(4), s.handled.Load(), "2 calls on each of 2 deliveries")
	})

	t.Run("duplicate ids are handled once", func(t *testing.T) {
		t.Parallel()
		s := newSetup(t, emu, func(c *botecloud.Config) { c.Concurrency = 1 })
		s.run(t)
		msg := fromGateway(envelope.NewID())
		require.NoError(t, s.driver.Send(ctx, s.cloudQ, msg, nil))
		require.Eventually(t, func() bool { return s.handled.Load() == 1 }, 10*time.Second, 20*time.Millisecond)
		require.NoError(t, s.driver.Send(ctx, s.cloudQ, msg, nil)) // redelivery by a retrying sender
		other := fromGateway(envelope.NewID())
		require.NoError(t, s.driver.Send(ctx, s.cloudQ, other, nil))
		require.Eventually(t, func() bool { return s.handled.Load() == 2 }, 10*time.Second, 20*time.Millisecond)
		// The duplicate was completed, not left behind.
		require.Eventually(t, func() bool {
			ms, err := s.driver.Receive(ctx, s.cloudQ, 32, time.Second)
			require.NoError(t, err)
			return len(ms) == 0
		}, 10*time.Second, 100*time.Millisecond)
		time.Sleep(500 * time.Millisecond)
		assert.Equal(t, int32(2), s.handled.Load())
	})
}
