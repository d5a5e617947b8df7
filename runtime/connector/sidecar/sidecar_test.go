package sidecar

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/sessionproto"
)

func TestDelivererPostsMessageWithHeaders(t *testing.T) {
	var got *http.Request
	var body string
	status := http.StatusNoContent
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got, body = r, string(b)
		w.WriteHeader(status)
	}))
	defer srv.Close()
	d := &Deliverer{URL: srv.URL}
	m := &connector.Message{ID: "m1", CorrelationID: "c1", Kind: envelope.KindBroadcast, Topic: "chat",
		From: envelope.Identity{Service: "pinger"}, ContentType: "text/plain", Headers: map[string]string{"kind": "ping"}, Body: []byte("hello")}
	require.NoError(t, d.Handle(context.Background(), m))
	assert.Equal(t, "hello", body)
	for k, v := range map[string]string{
		"Bote-Message-Id": "m1", "Bote-Correlation-Id": "c1", "Bote-Kind": "broadcast", "Bote-Topic": "chat",
		"Bote-From": "pinger", "Content-Type": "text/plain", "Kind": "ping",
	} {
		assert.Equal(t, v, got.Header.Get(k), k)
	}
	status = http.StatusInternalServerError
	assert.ErrorContains(t, d.Handle(context.Background(), m), "500")
}

// TestDelivererNeverForwardsSpoofableHeaderNames: a header whose name has
// '_' (many servers read "bote_from" as "Bote-From") or that is reserved in
// any spelling never reaches the local program; the program sees exactly
// the gateway's Bote-* headers and the harmless application headers.
func TestDelivererNeverForwardsSpoofableHeaderNames(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	d := &Deliverer{URL: srv.URL, Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	// The gateway refuses these from connectors and botecloud.Client from cloud
	// services; a message put on the bus by other means may still carry
	// them.
	spoof := map[string]string{
		"bote_from": "evil", "Bote_Tenant": "evil", "x_tenant_id": "evil", "trace_id": "t",
		"bote.connector": "evil", "X.Tenant.Id": "evil", "kind": "ping", "x-trace": "1",
	}
	m := &connector.Message{ID: "m1", Kind: envelope.KindTargeted, From: envelope.Identity{Service: "svc"}, Headers: spoof, Body: []byte("x")}
	for range 2 {
		require.NoError(t, d.Handle(context.Background(), m))
	}
	var bote []string
	for k := range got {
		assert.NotContains(t, k, "_", "a name with '_' reached the program")
		if envelope.IsReservedHeader(k) {
			bote = append(bote, k)
		}
	}
	assert.ElementsMatch(t, []string{"Bote-Message-Id", "Bote-Kind", "Bote-From"}, bote)
	assert.Equal(t, "svc", got.Get("Bote-From"))
	assert.Equal(t, "ping", got.Get("Kind"))
	assert.Equal(t, "1", got.Get("X-Trace"))
	assert.Equal(t, 1, strings.Count(logs.String(), "dropped"), "logged once: %s", logs.String())
}

type fakeGateway struct {
	sent          []connector.OutMessage
	subs          []string
	err           error
	connected     bool
	calledService string
	callWait      bool // Call waits for its context
}

func (f *fakeGateway) Send(_ context.Context, m connector.OutMessage) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	f.sent = append(f.sent, m)
	return "id-1", nil
}
func (f *fakeGateway) Subscribe(_ context.Context, topic string) error {
	f.subs = append(f.subs, "+"+topic)
	return f.err
}
func (f *fakeGateway) Unsubscribe(_ context.Context, topic string) error {
	f.subs = append(f.subs, "-"+topic)
	return f.err
}
func (f *fakeGateway) Connected() bool { return f.connected }

func do(t *testing.T, h http.Handler, method, path, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestAPISend(t *testing.T) {
	g := &fakeGateway{connected: true}
	h := (&API{Gateway: g}).Handler()
	rec := do(t, h, "POST", "/v1/send", "pong", map[string]string{
		"Content-Type": "text/plain", "Bote-Correlation-Id": "c9", "Bote-Header-Kind": "pong",
	})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.JSONEq(t, `{"id":"id-1"}`, rec.Body.String())
	require.Len(t, g.sent, 1)
	assert.Equal(t, connector.OutMessage{CorrelationID: "c9", ContentType: "text/plain", Headers: map[string]string{"kind": "pong"}, Body: []byte("pong")}, g.sent[0])

	rec = do(t, h, "POST", "/v1/send", "later", map[string]string{"Bote-Delay": "90s", "Bote-TTL": "1h"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, 90*time.Second, g.sent[1].Delay)
	assert.Equal(t, time.Hour, g.sent[1].TTL)
	for _, bad := range []map[string]string{{"Bote-Delay": "soon"}, {"Bote-TTL": "-1s"}} {
		assert.Equal(t, http.StatusBadRequest, do(t, h, "POST", "/v1/send", "x", bad).Code, bad)
	}
}

func TestAPIErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"refused by gateway", &sessionproto.Error{Code: sessionproto.CodeIdentityHeader, Message: "no"}, 400, sessionproto.CodeIdentityHeader},
		{"not connected", fmt.Errorf("%w: timeout", connector.ErrNotConnected), 503, "not_connected"},
		{"other", fmt.Errorf("boom"), 502, sessionproto.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := (&API{Gateway: &fakeGateway{err: tt.err}}).Handler()
			rec := do(t, h, "POST", "/v1/send", "x", nil)
			assert.Equal(t, tt.status, rec.Code)
			assert.Contains(t, rec.Body.String(), `"code":"`+tt.code+`"`)
		})
	}
	h := (&API{Gateway: &fakeGateway{}, MaxBytes: 10}).Handler()
	rec := do(t, h, "POST", "/v1/send", strings.Repeat("x", 11), nil)
	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, h, "GET", "/healthz", "", nil).Code)
}

func TestAPISubscriptions(t *testing.T) {
	g := &fakeGateway{connected: true}
	h := (&API{Gateway: g}).Handler()
	assert.Equal(t, http.StatusNoContent, do(t, h, "PUT", "/v1/subscriptions/chat", "", nil).Code)
	assert.Equal(t, http.StatusNoContent, do(t, h, "DELETE", "/v1/subscriptions/chat", "", nil).Code)
	assert.Equal(t, []string{"+chat", "-chat"}, g.subs)
	assert.Equal(t, http.StatusOK, do(t, h, "GET", "/healthz", "", nil).Code)
}

// Identity headers come only from the message's fields: a field left empty
// removes its header, whatever the message's application headers say.
func TestDelivererIdentityOnlyFromVerifiedFields(t *testing.T) {
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	d := &Deliverer{URL: srv.URL}
	m := &connector.Message{ID: "m1", Kind: envelope.KindTargeted, Headers: map[string]string{
		"Bote-From": "t9/admin", "BOTE-TENANT": "t2", "Bote-Topic": "admin", "Bote-Correlation-Id": "other", "Bote-Message-Id": "forged",
	}}
	require.NoError(t, d.Handle(context.Background(), m))
	for _, h := range []string{"Bote-From", "Bote-Tenant", "Bote-Topic", "Bote-Correlation-Id"} {
		assert.Empty(t, got.Values(h), h)
	}
	assert.Equal(t, []string{"m1"}, got.Values("Bote-Message-Id"))
	assert.Equal(t, []string{"targeted"}, got.Values("Bote-Kind"))
}
