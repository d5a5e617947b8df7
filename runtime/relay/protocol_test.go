package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/internal/wire"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

// These tests hold the client to the protocol document where a listener or
// sender written with another SDK would expose a difference; docs/relay.md
// has the table of rules.

// foreignListener is a control channel driven by hand that answers every
// request with status and no marker of this package, as a .NET or Node
// listener does.
func foreignListener(t *testing.T, s *relaytest.Server, status int) {
	t.Helper()
	name, key := s.NewRule(relaytest.Listen)
	tok := relay.SignSAS(relay.ResourceURI(s.Host, "hc"), name, key, time.Now().Add(time.Hour))
	ws, _, err := websocket.Dial(context.Background(), "ws://"+s.Host+"/$hc/hc?sb-hc-action=listen",
		&websocket.DialOptions{HTTPHeader: http.Header{"ServiceBusAuthorization": {tok}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.CloseNow() })
	go func() {
		ctx := context.Background()
		for {
			_, data, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m wire.Message
			if json.Unmarshal(data, &m) != nil || m.Request == nil {
				continue
			}
			if m.Request.Body {
				if _, _, err := ws.Read(ctx); err != nil {
					return
				}
			}
			resp := &wire.Response{RequestID: m.Request.ID, StatusCode: status, StatusDescription: http.StatusText(status),
				ResponseHeaders: map[string]string{"Content-Type": "text/plain"}, Body: true}
			if wire.Write(ctx, ws, wire.Message{Response: resp}, []byte("from the app")) != nil {
				return
			}
		}
	}()
	require.Eventually(t, func() bool { return s.ListenerCount("hc") == 1 }, 5*time.Second, 10*time.Millisecond)
}

// Rule: a response with Via came from a listener; only the relay's own
// answers (no Via) are relay errors. An application's 401/403/404/502/504
// from any listener is a response, never ErrUnauthorized or ErrNotFound.
func TestAppStatusesFromAnyListenerAreResponses(t *testing.T) {
	for _, status := range []int{401, 403, 404, 500, 502, 503, 504} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			s := newRelay(t, relaytest.Options{})
			foreignListener(t, s, status)
			resp, err := (&http.Client{Transport: newSender(t, s)}).Get("http://ops/v1/status")
			require.NoError(t, err, "the application's %d is not the relay's", status)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, status, resp.StatusCode)
			assert.Equal(t, "from the app", string(b))
		})
	}
}

// The relay's own refusals stay errors.
func TestRelayStatusesAreErrors(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	bad := senderConfig(s)
	bad.Credential = relay.NewSASCredential("nobody", "key")
	tests := []struct {
		name string
		cfg  relay.SenderConfig
		want error
	}{
		{"no listener", senderConfig(s), relay.ErrNoListener},
		{"bad key", bad, relay.ErrUnauthorized},
		{"unknown entity", func() relay.SenderConfig { c := senderConfig(s); c.HybridConnection = "nope"; return c }(), relay.ErrNotFound},
	}
	// A relay refusal that passed a proxy adding its own Via is still the
	// relay's: only a Via naming the namespace marks a listener's answer.
	proxied := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Via", "1.1 corp-proxy")
		http.Error(w, "EndpointNotFound TrackingId:x", http.StatusNotFound)
	}))
	t.Cleanup(proxied.Close)
	viaProxy := senderConfig(s)
	viaProxy.Namespace = relay.Namespace{Host: proxied.Listener.Addr().String()}
	tests = append(tests, struct {
		name string
		cfg  relay.SenderConfig
		want error
	}{"refusal through a proxy that adds Via", viaProxy, relay.ErrNotFound})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snd, err := relay.NewSender(tt.cfg)
			require.NoError(t, err)
			_, err = (&http.Client{Transport: snd}).Get("http://ops/v1/status")
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

// Rule: the relay strips Content-Length from requestHeaders, so a handler
// knows the length of a body that came on the control channel and not of
// one streamed over a rendezvous (as on Azure); either way it reads it all.
// And the listener's responses carry no RFC 7230 header (the test relay
// refuses them).
func TestRequestLengthIsUnknownOverRendezvous(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	type seen struct {
		length int64
		read   int
	}
	got := make(chan seen, 1)
	serve(t, listenerConfig(t, s), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.ContentLength, len(b)}
		w.Header().Set("X-Read", http.StatusText(200))
		_, _ = w.Write(b[:min(len(b), 10)])
	}))
	client := &http.Client{Transport: newSender(t, s)}
	for _, tt := range []struct {
		size       int
		wantLength int64
	}{
		{100, 100},
		{wire.MaxControlBody, wire.MaxControlBody},
		{wire.MaxControlBody + 1, -1},
		{1 << 20, -1},
	} {
		resp, err := client.Post("http://ops/upload", "application/octet-stream", bytes.NewReader(payload(tt.size)))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode, "size %d: %s", tt.size, b)
		assert.Equal(t, "OK", resp.Header.Get("X-Read"))
		g := <-got
		assert.Equal(t, seen{tt.wantLength, tt.size}, g, "size %d", tt.size)
	}
}

// Rule: a listener accepts a subprotocol the sender offered by asking for
// it on the rendezvous; the relay echoes it to the sender.
func TestSubprotocolNegotiation(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	cfg.Subprotocols = []string{"opsbot.v1", "opsbot.v2"}
	l, err := relay.Listen(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	accepted := make(chan string, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c.(*relay.Conn).Request().Subprotocol
			_ = c.Close()
		}
	}()
	snd := newSender(t, s)
	for _, tt := range []struct{ offer, want string }{
		{"legacy, opsbot.v2", "opsbot.v2"},
		{"opsbot.v1", "opsbot.v1"},
		{"legacy", ""},
		{"", ""},
	} {
		h := http.Header{}
		if tt.offer != "" {
			h.Set("Sec-WebSocket-Protocol", tt.offer)
		}
		ws, err := snd.DialWebSocket(context.Background(), "/chat", h)
		require.NoError(t, err, "offer %q", tt.offer)
		assert.Equal(t, tt.want, ws.Subprotocol(), "offer %q", tt.offer)
		assert.Equal(t, tt.want, <-accepted, "offer %q", tt.offer)
		_ = ws.CloseNow()
	}
}
