package sidecar

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
)

func (f *fakeGateway) Call(ctx context.Context, service string, m connector.OutMessage) (*connector.Message, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.sent = append(f.sent, m)
	f.calledService = service
	if f.callWait {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &connector.Message{ID: "r1", CorrelationID: "id-1", ContentType: "text/plain", Body: []byte("pong from " + service)}, nil
}

type replies struct {
	req *connector.Message
	out connector.OutMessage
	err error
}

func (r *replies) Reply(_ context.Context, req *connector.Message, m connector.OutMessage) (string, error) {
	r.req, r.out = req, m
	return "reply-1", r.err
}

// A call is delivered with its deadline, and the local program's 2xx
// answer is the reply; an ordinary message's answer is not.
func TestDelivererAnswersCalls(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append([]byte(`{"echo":"`), append(b, '"', '}')...))
	}))
	defer srv.Close()
	rep := &replies{}
	d := &Deliverer{URL: srv.URL, Replier: rep}
	deadline := time.Date(2026, 12, 6, 9, 0, 0, 5, time.UTC)
	call := &connector.Message{ID: "q1", Kind: envelope.KindTargeted, From: envelope.Identity{Service: "svc"}, Body: []byte("hi"), Deadline: deadline,
		Headers: map[string]string{"Bote-Deadline": "forged"}}
	require.NoError(t, d.Handle(context.Background(), call))
	assert.Equal(t, []string{"2026-12-06T09:00:00.000000005Z"}, got.Values("Bote-Deadline"), "from the verified field, never from a header")
	require.NotNil(t, rep.req)
	assert.Equal(t, "q1", rep.req.ID)
	assert.Equal(t, connector.OutMessage{ContentType: "application/json", Body: []byte(`{"echo":"hi"}`)}, rep.out)

	rep.req = nil
	require.NoError(t, d.Handle(context.Background(), &connector.Message{ID: "m2", Kind: envelope.KindTargeted, From: envelope.Identity{Service: "svc"}}))
	assert.Nil(t, rep.req, "not a call: no reply")
	assert.Empty(t, got.Values("Bote-Deadline"))

	rep.err = errors.New("no session")
	assert.ErrorContains(t, d.Handle(context.Background(), call), "cannot answer call q1: no session", "a reply that cannot be sent makes the call come back")
	d.Replier = nil
	assert.ErrorContains(t, d.Handle(context.Background(), call), "no replier")
	d.Replier, d.MaxReplyBytes = &replies{}, 4
	assert.ErrorContains(t, d.Handle(context.Background(), call), "exceeds 4 bytes")
}

func TestAPICall(t *testing.T) {
	g := &fakeGateway{connected: true}
	h := (&API{Gateway: g}).Handler()
	rec := do(t, h, "POST", "/v1/call/pinger", "ping", map[string]string{"Content-Type": "text/plain", "Bote-Header-Kind": "ping", "Bote-Timeout": "2s"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "pong from pinger", rec.Body.String())
	assert.Equal(t, "text/plain", rec.Header().Get("Content-Type"))
	assert.Equal(t, "id-1", rec.Header().Get("Bote-Correlation-Id"))
	assert.Equal(t, "pinger", g.calledService)
	assert.Equal(t, connector.OutMessage{ContentType: "text/plain", Headers: map[string]string{"kind": "ping"}, Body: []byte("ping")}, g.sent[0])

	assert.Equal(t, http.StatusBadRequest, do(t, h, "POST", "/v1/call/pinger", "x", map[string]string{"Bote-Timeout": "soon"}).Code)
	assert.Equal(t, http.StatusBadRequest, do(t, h, "POST", "/v1/call/bad%20name", "x", nil).Code)
	// A correlated call would be taken for a reply by the service.
	rec = do(t, h, "POST", "/v1/call/pinger", "x", map[string]string{"Bote-Correlation-Id": "conv-1"})
	assert.Equal(t, http.StatusBadRequest, rec.Code, rec.Body.String())
	assert.Len(t, g.sent, 1, "a refused call is not sent")
	g.callWait = true
	rec = do(t, h, "POST", "/v1/call/pinger", "x", map[string]string{"Bote-Timeout": "20ms"})
	assert.Equal(t, http.StatusGatewayTimeout, rec.Code, rec.Body.String())
}
