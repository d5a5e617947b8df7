package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/sessionproto"
)

// answering is a connector handler that answers every call with
// "<prefix><body>"; with ids set, it first sends the call's id there and
// waits for release.
func answering(c **conn, prefix string, ids chan<- string, release <-chan struct{}) connOpt {
	return func(cfg *connector.Config) {
		cfg.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			if m.Deadline.IsZero() {
				return nil
			}
			if ids != nil {
				ids <- m.ID
				select { // the call's deadline ends it if the test failed meanwhile
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			_, err := (*c).Reply(ctx, m, connector.OutMessage{Body: []byte(prefix + string(m.Body))})
			return err
		})
	}
}

// TestCallRoundTrip: request/reply both ways through the real gateway on
// Azurite. The cloud calls a connector and gets its answer; a connector
// calls the cloud and gets its answer; a reply from a connector the call
// did not go to is refused (the call still gets the right one).
func TestCallRoundTrip(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	var gotDeadline atomic.Value
	svc := g.cloud("pinger", func(ctx context.Context, c *cloudService, m *botecloud.Message) error {
		if m.Deadline.IsZero() {
			return nil
		}
		d, _ := ctx.Deadline()
		gotDeadline.Store(d)
		_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong:" + string(m.Body))})
		return err
	})
	release, callIDs := make(chan struct{}), make(chan string, 1)
	var a1, a2 *conn
	a1 = g.connector("tenant-a", "a1", answering(&a1, "a1 says ", callIDs, release))
	a2 = g.connector("tenant-a", "a2", answering(&a2, "a2 says ", nil, nil))

	// The connector calls the cloud.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	reply, err := a2.Call(ctx, "pinger", connector.OutMessage{Body: []byte("ping")})
	require.NoError(t, err)
	assert.Equal(t, "pong:ping", string(reply.Body))
	assert.Equal(t, envelope.Identity{Service: "pinger"}, reply.From)
	assert.True(t, deadline.Equal(gotDeadline.Load().(time.Time)), "the service's handler runs under the caller's deadline")

	// The cloud calls a1; before a1 answers, a2 forges an answer with the
	// call's id (it learnt the id somehow): the cloud refuses it.
	type result struct {
		m   *botecloud.Message
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := svc.Call(ctx, "tenant-a", "a1", botecloud.OutMessage{Body: []byte("hello")})
		done <- result{m, err}
	}()
	callID := receive(t, callIDs, 20*time.Second, "call at a1")
	_, err = a2.Reply(ctx, &connector.Message{ID: callID, From: envelope.Identity{Service: "pinger"}, Deadline: deadline}, connector.OutMessage{Body: []byte("forged")})
	require.NoError(t, err)
	time.Sleep(500 * time.Millisecond) // the forged reply reaches the cloud first
	close(release)
	r := receive(t, done, 20*time.Second, "answer to the call")
	require.NoError(t, r.err)
	assert.Equal(t, "a1 says hello", string(r.m.Body))
	assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, r.m.From)

	// An application cannot set the reserved deadline header itself.
	_, err = a1.Send(ctx, connector.OutMessage{Headers: map[string]string{envelope.HeaderDeadline: envelope.FormatTime(deadline)}})
	var perr *sessionproto.Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, sessionproto.CodeIdentityHeader, perr.Code)
}

// TestCallTimeout: the caller gives up; the other side's handler sees its
// context end at the deadline, and the reply it sends anyway is discarded
// and counted, never handled: by the cloud client for a connector's reply,
// by the gateway for a cloud service's.
func TestCallTimeout(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	cloudErr := make(chan error, 1)
	svc := g.cloud("pinger", func(ctx context.Context, c *cloudService, m *botecloud.Message) error {
		<-ctx.Done()
		cloudErr <- ctx.Err()
		_, err := c.Reply(context.Background(), m, botecloud.OutMessage{Body: []byte("too late")})
		return err
	})
	handlerErr := make(chan error, 1)
	var a1 *conn
	a1 = g.connector("tenant-a", "a1", func(cfg *connector.Config) {
		cfg.Handler = connector.HandlerFunc(func(ctx context.Context, m *connector.Message) error {
			if m.CorrelationID != "" {
				t.Errorf("a late reply reached the handler: %q", m.Body)
				return nil
			}
			<-ctx.Done()
			handlerErr <- ctx.Err()
			_, err := a1.Reply(context.Background(), m, connector.OutMessage{Body: []byte("too late")})
			return err
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := svc.Call(ctx, "tenant-a", "a1", botecloud.OutMessage{Body: []byte("slow")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, receive(t, handlerErr, 20*time.Second, "end of the connector's handler"), context.DeadlineExceeded)
	require.Eventually(t, func() bool { return svc.Stats().LateReplies == 1 }, 20*time.Second, 50*time.Millisecond)
	assert.Empty(t, svc.all(), "a late reply never reaches the handler")

	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = a1.Call(ctx, "pinger", connector.OutMessage{Body: []byte("slow")})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorIs(t, receive(t, cloudErr, 20*time.Second, "end of the cloud's handler"), context.DeadlineExceeded)
	require.Eventually(t, func() bool { return g.replicas[0].metric(t, "bote_gateway_late_replies_total") == 1 }, 20*time.Second, 50*time.Millisecond)
}

// TestSidecarCall: the sidecar's local program answers a call with its
// HTTP response, and calls the cloud with an HTTP request.
func TestSidecarCall(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("pinger", func(ctx context.Context, c *cloudService, m *botecloud.Message) error {
		_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong:" + string(m.Body)), ContentType: "text/plain"})
		return err
	})
	sc := g.sidecar("tenant-a", "a1")

	ctx := ctxFor(t, 20*time.Second)
	reply, err := svc.Call(ctx, "tenant-a", "a1", botecloud.OutMessage{Body: []byte("hello")})
	require.NoError(t, err)
	assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, reply.From)
	h := receive(t, sc.arrived, 20*time.Second, "call at the local program")
	assert.NotEmpty(t, h.Get("Bote-Deadline"))

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sc.API+"/v1/call/pinger", strings.NewReader("ping"))
	require.NoError(t, err)
	req.Header.Set("Bote-Timeout", "15s")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.Equal(t, "pong:ping", string(body))
	assert.Equal(t, "text/plain", resp.Header.Get("Content-Type"))

	// The local program cannot set the reserved protocol headers itself.
	for _, name := range []string{"Bote-Header-bote-deadline", "Bote-Header-Bote-Expires-At", "Bote-Header-bote_encryption"} {
		status, answer := sc.send(t, "forged", map[string]string{name: envelope.FormatTime(time.Now().Add(time.Hour))})
		assert.Equal(t, http.StatusBadRequest, status, "%s: %s", name, answer)
		assert.Contains(t, answer, sessionproto.CodeIdentityHeader, name)
	}
}

// TestCallAcrossReplicas: two replicas of one cloud service read the same
// cloud queue; each reply goes to the calling replica's reply queue
// (TestCallRepliesReachTheCallingReplica checks that under production
// poll settings and 20 calls at once).
func TestCallAcrossReplicas(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	a := g.cloud("pinger", nil)
	_ = g.cloud("pinger", nil) // the other replica
	var a1 *conn
	a1 = g.connector("tenant-a", "a1", answering(&a1, "pong ", nil, nil))
	for i := range 6 {
		body := fmt.Sprintf("ping %d", i)
		reply, err := a.Call(ctxFor(t, 20*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte(body)})
		require.NoError(t, err, body)
		assert.Equal(t, "pong "+body, string(reply.Body))
	}
	assert.Zero(t, a.Stats().LateReplies)
}
