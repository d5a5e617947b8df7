package connector

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/envelope"
	gw "github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/sessionproto"
)

// fakeQueue is a Storage queue on loopback speaking just enough of the REST
// API for the receiver (dequeue, delete), counting every request.
type fakeQueue struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []string // "GET", "DELETE", in order
	msgs     []fakeMessage
	// loseNext makes the next dequeue carry out the read (the messages
	// become invisible) and then fail the response, as a client-side
	// timeout does.
	loseNext bool
}

type fakeMessage struct {
	id, text string
	visible  time.Time
	count    int
}

func newFakeQueue(t *testing.T) *fakeQueue {
	q := &fakeQueue{}
	q.srv = httptest.NewServer(http.HandlerFunc(q.serve))
	t.Cleanup(q.srv.Close)
	return q
}

func (q *fakeQueue) put(text string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.msgs = append(q.msgs, fakeMessage{id: fmt.Sprint(len(q.msgs) + 1), text: text})
}

func (q *fakeQueue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.requests)
}

func (q *fakeQueue) serve(w http.ResponseWriter, r *http.Request) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.requests = append(q.requests, r.Method)
	switch r.Method {
	case http.MethodGet:
		n, _ := strconv.Atoi(r.URL.Query().Get("numofmessages"))
		vis, _ := strconv.Atoi(r.URL.Query().Get("visibilitytimeout"))
		type qm struct {
			MessageID       string `xml:"MessageId"`
			InsertionTime   string
			ExpirationTime  string
			PopReceipt      string
			TimeNextVisible string
			DequeueCount    int
			MessageText     string
		}
		var out struct {
			XMLName xml.Name `xml:"QueueMessagesList"`
			Msgs    []qm     `xml:"QueueMessage"`
		}
		now := time.Now()
		for i := range q.msgs {
			m := &q.msgs[i]
			if len(out.Msgs) == max(n, 1) || m.visible.After(now) {
				continue
			}
			m.visible, m.count = now.Add(time.Duration(vis)*time.Second), m.count+1
			ts := now.UTC().Format(http.TimeFormat)
			out.Msgs = append(out.Msgs, qm{MessageID: m.id, InsertionTime: ts, ExpirationTime: ts, PopReceipt: "pop-" + m.id,
				TimeNextVisible: m.visible.UTC().Format(http.TimeFormat), DequeueCount: m.count, MessageText: m.text})
		}
		if q.loseNext {
			q.loseNext = false
			w.WriteHeader(http.StatusInternalServerError) // carried out, answer lost
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		_ = xml.NewEncoder(w).Encode(out)
	case http.MethodDelete:
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		for i, m := range q.msgs {
			if m.id == id {
				q.msgs = append(q.msgs[:i], q.msgs[i+1:]...)
				break
			}
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// queueAccess grants the fake queue's URL.
type queueAccess struct{ url string }

func (a queueAccess) Grant(context.Context, gw.Identity) (sessionproto.QueueAccess, error) {
	return sessionproto.QueueAccess{Queue: "q", URL: a.url + "/q", ExpiresAt: time.Now().Add(time.Hour)}, nil
}
func (queueAccess) Extend(context.Context, gw.Identity, string, string, string, time.Duration) (string, time.Time, error) {
	return "", time.Time{}, fmt.Errorf("not in this test")
}

// newQueueClient runs a connector of ta/c1 reading q; handled receives the
// IDs of the messages its handler ran for.
func newQueueClient(t *testing.T, q *fakeQueue, visibility time.Duration) (*Client, <-chan string) {
	t.Helper()
	srv, err := gw.New(gw.Config{Verifier: verifier{gw.Identity{Tenant: "ta", Connector: "c1"}}, Sender: &sender{}, Subscriptions: &subs{},
		QueueAccess: queueAccess{q.srv.URL}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	handled := make(chan string, 16)
	c, err := New(Config{
		GatewayURL: hs.URL, Tenant: "ta", Connector: "c1", Tokens: &fakeTokens{ttl: time.Hour},
		Handler:    HandlerFunc(func(_ context.Context, m *Message) error { handled <- m.ID; return nil }),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Visibility: visibility,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, handled
}

func routed(t *testing.T, id string) string {
	t.Helper()
	b, err := envelope.Encode(&envelope.Envelope{ID: id, Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1",
		From: &envelope.Identity{Service: "svc"}, Body: []byte("hi"), CreatedAt: time.Now()})
	require.NoError(t, err)
	return string(b)
}

func waitHandled(t *testing.T, handled <-chan string, timeout time.Duration) string {
	t.Helper()
	select {
	case id := <-handled:
		return id
	case <-time.After(timeout):
		t.Fatal("no message handled")
		return ""
	}
}

// One routed message costs the connector two storage requests, a dequeue
// and a delete: a read that returns fewer messages than it asked for ends
// the drain, without a confirming read of the empty queue (issue 16: 3
// requests per routed message on the connector's side before).
func TestOneMessageCostsTwoStorageRequests(t *testing.T) {
	q := newFakeQueue(t)
	q.put(routed(t, "m1"))
	c, handled := newQueueClient(t, q, 0)
	assert.Equal(t, "m1", waitHandled(t, handled, 5*time.Second))
	require.Eventually(t, func() bool { return q.count() >= 2 }, 5*time.Second, 10*time.Millisecond)
	time.Sleep(200 * time.Millisecond) // a confirming read would come now
	q.mu.Lock()
	assert.Equal(t, []string{"GET", "DELETE"}, q.requests)
	q.mu.Unlock()

	// A message that arrives after the short read comes with a nudge.
	q.put(routed(t, "m2"))
	c.nudge()
	assert.Equal(t, "m2", waitHandled(t, handled, 5*time.Second))
}

// A read the service carried out but whose answer was lost hides its
// messages for the visibility timeout; the SDK's retry (or the quick
// re-read after a failed drain) then finds the queue empty. The receiver
// reads again once the visibility timeout has passed instead of leaving
// the message to the 5-minute safety poll.
func TestLostReadIsReadAgainAfterTheVisibilityTimeout(t *testing.T) {
	q := newFakeQueue(t)
	q.put(routed(t, "m1"))
	q.loseNext = true
	_, handled := newQueueClient(t, q, 2*time.Second)
	start := time.Now()
	assert.Equal(t, "m1", waitHandled(t, handled, 10*time.Second))
	assert.GreaterOrEqual(t, time.Since(start), 2*time.Second, "hidden by the lost read until its visibility timeout")
}

// A body that cannot be opened (sealed to a key this connector does not
// hold, or a decompression bomb: 1 MiB of zeros in 1 KB) goes to the
// error queue, never to the handler, and is counted in
// Stats().Undecodable, where an operator with a wrong key looks.
func TestUndecodableBodyIsCounted(t *testing.T) {
	var bomb bytes.Buffer
	w := gzip.NewWriter(&bomb)
	_, err := w.Write(make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	tests := []struct {
		name, header, value string
		body                []byte
	}{
		{"sealed elsewhere", envelope.HeaderEncryption, envelope.EncryptionHPKE, []byte("not a sealed body")},
		{"decompression bomb", envelope.HeaderContentEncoding, envelope.EncodingGzip, bomb.Bytes()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newFakeQueue(t)
			b, err := envelope.Encode(&envelope.Envelope{ID: "undecodable", Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1",
				From: &envelope.Identity{Service: "svc"}, Headers: map[string]string{tt.header: tt.value},
				Body: tt.body, CreatedAt: time.Now()})
			require.NoError(t, err)
			q.put(string(b))
			q.put(routed(t, "clear"))
			c, handled := newQueueClient(t, q, 0)
			assert.Equal(t, "clear", waitHandled(t, handled, 5*time.Second))
			require.Eventually(t, func() bool { return c.Stats().Undecodable == 1 }, 5*time.Second, 10*time.Millisecond)
			assert.Empty(t, handled)
		})
	}
}
