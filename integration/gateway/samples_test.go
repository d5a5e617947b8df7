package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/botecloud"
	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/queuename"
)

// TestPingPong is the "simple" sample: a connector pings the cloud, the
// cloud answers pong correlated to the ping; the cloud then pushes to one
// specific connector, and the others do not get it.
func TestPingPong(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("pinger", func(ctx context.Context, c *cloudService, m *botecloud.Message) error {
		if string(m.Body) != "ping" {
			return nil
		}
		_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong"), ContentType: "text/plain"})
		return err
	})
	a1 := g.connector("tenant-a", "a1")
	a2 := g.connector("tenant-a", "a2")
	b1 := g.connector("tenant-b", "b1")

	pingID, err := a1.Send(ctxFor(t, 10*time.Second), connector.OutMessage{Body: []byte("ping"), ContentType: "text/plain"})
	require.NoError(t, err)

	got := receive(t, svc.arrived, 30*time.Second, "ping at the cloud")
	assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, got.From, "the cloud sees the verified sender")
	assert.Equal(t, pingID, got.ID)

	pong := a1.next(t, 10*time.Second)
	assert.Equal(t, "pong", string(pong.Body))
	assert.Equal(t, pingID, pong.CorrelationID)
	assert.Equal(t, envelope.Identity{Service: "pinger"}, pong.From)

	// Push to a2 only.
	pushID, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a2", botecloud.OutMessage{Body: []byte("push for a2")})
	require.NoError(t, err)
	push := a2.next(t, 10*time.Second)
	assert.Equal(t, pushID, push.ID)
	assert.Equal(t, envelope.KindTargeted, push.Kind)
	a1.none(t, time.Second)
	b1.none(t, 10*time.Millisecond)
}

// TestChat is the "chat" sample: three connectors of tenant A and one of
// tenant B subscribe to "chat"; a broadcast in A reaches exactly A's three.
func TestChat(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("chat", nil)
	var as []*conn
	for _, id := range []string{"a1", "a2", "a3"} {
		as = append(as, g.connector("tenant-a", id))
	}
	b1 := g.connector("tenant-b", "b1")
	for _, c := range append(as, b1) {
		require.NoError(t, c.Subscribe(ctxFor(t, 10*time.Second), "chat"))
	}

	id, err := svc.Broadcast(ctxFor(t, 10*time.Second), "tenant-a", "chat", botecloud.OutMessage{Body: []byte("hello A")})
	require.NoError(t, err)
	for _, c := range as {
		m := c.next(t, 10*time.Second)
		assert.Equal(t, id, m.ID, c.name)
		assert.Equal(t, "chat", m.Topic)
		assert.Equal(t, "hello A", string(m.Body))
	}
	b1.none(t, time.Second)
	for _, c := range as {
		c.none(t, 10*time.Millisecond) // exactly once
	}

	// B's broadcast reaches B only; an unsubscribed connector gets nothing.
	require.NoError(t, as[2].Unsubscribe(ctxFor(t, 10*time.Second), "chat"))
	_, err = svc.Broadcast(ctxFor(t, 10*time.Second), "tenant-b", "chat", botecloud.OutMessage{Body: []byte("hello B")})
	require.NoError(t, err)
	assert.Equal(t, "hello B", string(b1.next(t, 10*time.Second).Body))
	_, err = svc.Broadcast(ctxFor(t, 10*time.Second), "tenant-a", "chat", botecloud.OutMessage{Body: []byte("again")})
	require.NoError(t, err)
	as[0].next(t, 10*time.Second)
	as[1].next(t, 10*time.Second)
	as[2].none(t, time.Second)
}

// TestLargeBodiesByClaimCheck sends a body over the queue limit both ways.
func TestLargeBodiesByClaimCheck(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	big := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB
	svc := g.cloud("bulk", nil)
	a1 := g.connector("tenant-a", "a1")
	_, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte(big)})
	require.NoError(t, err)
	assert.Equal(t, big, string(a1.next(t, 15*time.Second).Body))

	for _, size := range []int{100 << 10, 3 << 20} { // in the frame; uploaded first
		upBody := strings.Repeat("x", size)
		_, err = a1.Send(ctxFor(t, 30*time.Second), connector.OutMessage{Body: []byte(upBody), ContentType: "text/plain"})
		require.NoError(t, err)
		got := receive(t, svc.arrived, 30*time.Second, "upload at the cloud")
		assert.Equal(t, len(upBody), len(got.Body))
		assert.Equal(t, upBody, string(got.Body))
		assert.Equal(t, envelope.Identity{Tenant: "tenant-a", Connector: "a1"}, got.From)
	}
}

// TestOfflineConnectorDrainsOnConnect: messages routed while a connector
// is offline wait in its queue and arrive when it connects.
func TestOfflineConnectorDrainsOnConnect(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	svc := g.cloud("later", nil)
	var sent []string
	for i := range 3 {
		id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a3", botecloud.OutMessage{Body: []byte{byte('0' + i)}})
		require.NoError(t, err)
		sent = append(sent, id)
	}
	q, _ := queuename.For(ids.ConnectorID{Tenant: "tenant-a", Connector: "a3"})
	require.Eventually(t, func() bool { return storedMessages(t, g, q) == len(sent) }, 15*time.Second, 50*time.Millisecond,
		"routed to a3's queue while nobody is connected")
	a3 := g.connector("tenant-a", "a3")
	var got []string
	for range sent {
		got = append(got, a3.next(t, 10*time.Second).ID)
	}
	assert.ElementsMatch(t, sent, got)
}

// TestNudgeAcrossReplicas: the connector holds its session on a replica
// that routes nothing; the replica that routes must nudge it there. The
// connector's safety poll is an hour, so only the nudge can deliver.
func TestNudgeAcrossReplicas(t *testing.T) {
	t.Parallel()
	g := newGateway(t) // replica 1 routes
	w2 := g.startReplica("--sessions-only")
	svc := g.cloud("nudger", nil)
	a1 := g.connectorAt(w2, "tenant-a", "a1")
	time.Sleep(300 * time.Millisecond) // the connect drain is done

	start := time.Now()
	id, err := svc.SendToConnector(ctxFor(t, 10*time.Second), "tenant-a", "a1", botecloud.OutMessage{Body: []byte("via w1")})
	require.NoError(t, err)
	m := a1.next(t, 10*time.Second)
	assert.Equal(t, id, m.ID)
	t.Logf("cross-replica delivery took %s", time.Since(start))

	metrics := get(t, g.replicas[0].URL+"/metrics")
	assert.Contains(t, metrics, `bote_gateway_nudges_total{to="remote"}`)
	w2Metrics := get(t, w2.URL+"/metrics")
	assert.Contains(t, w2Metrics, "bote_gateway_sessions 1")
	// The names from before the rename are still exported, same values.
	assert.Contains(t, metrics, `bote_worker_nudges_total{to="remote"}`)
	assert.Contains(t, w2Metrics, "bote_worker_sessions 1")
}

// TestSidecar runs ping/pong through the connector binary: the local
// program gets messages by HTTP POST and sends with HTTP POST.
func TestSidecar(t *testing.T) {
	t.Parallel()
	g := newGateway(t)
	g.cloud("pinger", func(ctx context.Context, c *cloudService, m *botecloud.Message) error {
		_, err := c.Reply(ctx, m, botecloud.OutMessage{Body: []byte("pong"), Headers: map[string]string{"kind": "pong"}})
		return err
	})
	type delivery struct {
		body string
		hdr  http.Header
	}
	deliveries := make(chan delivery, 10)
	fails := 1 // the program fails the first delivery: it must come back
	local := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if fails > 0 {
			fails--
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		deliveries <- delivery{string(b), r.Header.Clone()}
	}))
	defer local.Close()

	keyPath := filepath.Join(t.TempDir(), "a1.pem")
	require.NoError(t, clientauth.WriteKeyFile(keyPath, g.keys["tenant-a/a1"]))
	side := procs.Start(t, procs.Spec{Name: "connector", Path: procs.Build(t, "connector"), Args: []string{
		"run", "--gateway-url", g.replicas[0].URL, "--token-url", g.tokenURL(), "--tenant", "tenant-a", "--connector", "a1",
		"--key", keyPath, "--deliver-to", local.URL, "--listen", "127.0.0.1:0", "--retry-delay", "1s", // the failed delivery is back in 1 s, not 5
	}})
	api := listenURL(t, side)
	require.Eventually(t, func() bool {
		resp, err := http.Get(api + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	req, _ := http.NewRequest(http.MethodPost, api+"/v1/send", strings.NewReader("ping"))
	req.Header.Set("Bote-Header-Kind", "ping")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	var sent struct{ ID string }
	require.NoError(t, jsonUnmarshal(body, &sent))

	select {
	case d := <-deliveries:
		assert.Equal(t, "pong", d.body)
		assert.Equal(t, sent.ID, d.hdr.Get("Bote-Correlation-Id"))
		assert.Equal(t, "pinger", d.hdr.Get("Bote-From"))
		assert.Equal(t, "pong", d.hdr.Get("Kind"))
	case <-time.After(30 * time.Second):
		t.Fatal("the local program never got the pong")
	}

	// A spoofed identity header through the local API is refused too.
	req, _ = http.NewRequest(http.MethodPost, api+"/v1/send", strings.NewReader("x"))
	req.Header.Set("Bote-Header-Bote-Tenant", "tenant-b")
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "identity_header")
	_ = os.Remove(keyPath)
}

func get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
