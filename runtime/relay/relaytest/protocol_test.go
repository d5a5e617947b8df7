package relaytest

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay/internal/wire"
)

// These tests hold the test relay to the protocol document's words where
// Microsoft's clients showed it had been lenient or wrong; each names the
// rule it checks (docs/relay.md has the table).

// respond answers one request frame on a hand-driven control channel.
func respond(ws *websocket.Conn, id string, status int, headers map[string]string, body []byte) error {
	return wire.Write(context.Background(), ws, wire.Message{Response: &wire.Response{RequestID: id, StatusCode: status, ResponseHeaders: headers, Body: body != nil}}, body)
}

// nextRequest reads request frames (and their bodies) until one arrives.
func nextRequest(ws *websocket.Conn) (*wire.Request, error) {
	m, err := readMessage(ws)
	if err != nil {
		return nil, err
	}
	if m.Request != nil && m.Request.Body {
		if _, _, err := ws.Read(context.Background()); err != nil {
			return nil, err
		}
	}
	return m.Request, nil
}

// serveRequests hands each request frame to answer until the channel or
// answer fails.
func serveRequests(ws *websocket.Conn, answer func(*wire.Request) error) {
	for {
		req, err := nextRequest(ws)
		if err != nil || answer(req) != nil {
			return
		}
	}
}

func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Rule: connectHeaders carry every header the sender supplied, the
// WebSocket handshake's included (.NET ListenerCommand.cs example; hyco-ws
// refuses an accept without Sec-WebSocket-Key), and a sender's sb-hc-id is
// the connection id.
func TestAcceptCarriesHandshakeHeadersAndSenderID(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	accepts := make(chan *wire.Accept, 1)
	go func() {
		m, err := readMessage(ws)
		if err != nil || m.Accept == nil {
			close(accepts)
			return
		}
		accepts <- m.Accept
		c, _, err := websocket.Dial(context.Background(), m.Accept.Address, nil)
		if err == nil {
			_ = c.Close(websocket.StatusNormalClosure, "")
		}
	}()
	u := "ws://" + s.Host + "/$hc/hc/room?x=1&sb-hc-action=connect&sb-hc-id=my-conn-1"
	c, _, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPHeader: http.Header{
		"ServiceBusAuthorization": {sas(s, "hc", "send", "sk", time.Hour)}, "X-Tenant": {"contoso"}}})
	require.NoError(t, err)
	_ = c.CloseNow()
	a := <-accepts
	require.NotNil(t, a)
	assert.Equal(t, "my-conn-1", a.ID)
	assert.Contains(t, a.Address, "sb-hc-id=my-conn-1")
	h := http.Header{}
	for k, v := range a.ConnectHeaders {
		h.Set(k, v)
	}
	assert.NotEmpty(t, h.Get("Sec-WebSocket-Key"))
	assert.Equal(t, "13", h.Get("Sec-WebSocket-Version"))
	assert.Equal(t, "Upgrade", h.Get("Connection"))
	assert.Equal(t, "websocket", h.Get("Upgrade"))
	assert.Equal(t, s.Host, h.Get("Host"))
	assert.Equal(t, "contoso", h.Get("X-Tenant"))
	assert.Empty(t, h.Get("ServiceBusAuthorization"), "the relay's token is not passed on")
}

// Rule: a listener accepts a subprotocol by setting Sec-WebSocket-Protocol
// on its rendezvous handshake; the sender's handshake then echoes it.
func TestListenerChoosesTheSubprotocol(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	listenerSide := make(chan string, 1)
	go func() {
		m, err := readMessage(ws)
		if err != nil || m.Accept == nil {
			close(listenerSide)
			return
		}
		offered := m.Accept.ConnectHeaders["Sec-Websocket-Protocol"]
		c, _, err := websocket.Dial(context.Background(), m.Accept.Address, &websocket.DialOptions{Subprotocols: []string{"opsbot.v2"}})
		if err != nil {
			listenerSide <- "dial failed: " + err.Error()
			return
		}
		listenerSide <- offered + " -> " + c.Subprotocol()
		_ = c.Close(websocket.StatusNormalClosure, "")
	}()
	u := "ws://" + s.Host + "/$hc/hc?sb-hc-action=connect"
	c, _, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{Subprotocols: []string{"opsbot.v1", "opsbot.v2"},
		HTTPHeader: http.Header{"ServiceBusAuthorization": {sas(s, "hc", "send", "sk", time.Hour)}}})
	require.NoError(t, err)
	defer c.CloseNow()
	assert.Equal(t, "opsbot.v2", c.Subprotocol(), "the sender sees the listener's choice")
	assert.Equal(t, "opsbot.v1,opsbot.v2 -> opsbot.v2", <-listenerSide)
}

// Rule (tolerance): Microsoft's hyco-https sends an empty binary frame after
// every response without a body; the control channel must survive it.
func TestEmptyBinaryFrameAfterBodylessResponse(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	go serveRequests(ws, func(req *wire.Request) error {
		if err := respond(ws, req.ID, http.StatusNoContent, nil, nil); err != nil {
			return err
		}
		return ws.Write(context.Background(), websocket.MessageBinary, []byte{})
	})
	for i := range 3 {
		req, _ := http.NewRequest("DELETE", s.URL+"/hc/v1/things/1", nil)
		req.Header.Set("ServiceBusAuthorization", sas(s, "hc", "send", "sk", time.Hour))
		resp, body := send(t, req)
		require.Equal(t, http.StatusNoContent, resp.StatusCode, "request %d: %s", i, body)
	}
	assert.Equal(t, 1, s.ListenerCount("hc"), "the control channel is still up")
}

// Rule: an HTTP-mode sender's token is taken from sb-hc-token, then
// ServiceBusAuthorization, then Authorization only when neither is there
// and authorization is on; otherwise Authorization reaches the listener
// as it is (protocol document, "Request operation").
func TestHTTPModeTokenPrecedence(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	s.AddHybridConnection("open", false)
	open, _, err := rawListen(t, s, "open", sas(s, "open", "listen", "lk", time.Hour))
	require.NoError(t, err)
	got := make(chan map[string]string, 1)
	answer := func(ws *websocket.Conn) func(*wire.Request) error {
		return func(req *wire.Request) error {
			got <- req.RequestHeaders
			return respond(ws, req.ID, 200, nil, []byte("ok"))
		}
	}
	go serveRequests(ws, answer(ws))
	go serveRequests(open, answer(open))
	good := sas(s, "hc", "send", "sk", time.Hour)
	tests := []struct {
		name, entity, query, sba, authz string
		status                          int
		wantAuthz                       string
	}{
		{"query token, app Authorization passes", "hc", good, "", "Bearer app", 200, "Bearer app"},
		{"header token, app Authorization passes", "hc", "", good, "Bearer app", 200, "Bearer app"},
		{"query wins over a bad header", "hc", good, "SharedAccessSignature bogus", "", 200, ""},
		{"Authorization is the token when alone, and is removed", "hc", "", "", good, 200, ""},
		{"an app Authorization alone is a bad token", "hc", "", "", "Bearer app", 401, ""},
		{"anonymous entity passes Authorization as is", "open", "", "", good, 200, good},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := s.URL + "/" + tt.entity + "/v1/x"
			if tt.query != "" {
				u += "?sb-hc-token=" + url.QueryEscape(tt.query)
			}
			req, _ := http.NewRequest("GET", u, nil)
			if tt.sba != "" {
				req.Header.Set("ServiceBusAuthorization", tt.sba)
			}
			if tt.authz != "" {
				req.Header.Set("Authorization", tt.authz)
			}
			resp, body := send(t, req)
			require.Equal(t, tt.status, resp.StatusCode, body)
			if tt.status != 200 {
				return
			}
			h := <-got
			assert.Equal(t, tt.wantAuthz, h["Authorization"])
			assert.NotContains(t, h, "ServiceBusAuthorization")
		})
	}
}

// Rule: requestHeaders lose every RFC 7230 header except Via (Content-Length
// included: handlers cannot rely on a length), and the relay adds itself to
// Via (protocol document, "Request message", "HTTP request protocol").
func TestRequestHeadersLoseRFC7230Headers(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	got := make(chan *wire.Request, 1)
	go serveRequests(ws, func(req *wire.Request) error {
		if req.Method != "" {
			got <- req
			return respond(ws, req.ID, 200, nil, nil)
		}
		// Too large for the control channel: fetched over a rendezvous.
		rv, _, err := websocket.Dial(context.Background(), req.Address, nil)
		if err != nil {
			return err
		}
		defer rv.CloseNow()
		rv.SetReadLimit(-1)
		full, err := nextRequest(rv)
		if err != nil {
			return err
		}
		got <- full
		return respond(rv, full.ID, 200, nil, nil)
	})
	for _, size := range []int{10, wire.MaxControlBody + 1} {
		req, _ := http.NewRequest("PUT", s.URL+"/hc/v1/bundle", strings.NewReader(strings.Repeat("b", size)))
		req.Header.Set("ServiceBusAuthorization", sas(s, "hc", "send", "sk", time.Hour))
		req.Header.Set("Te", "trailers")
		req.Header.Set("Via", "1.1 proxy.example")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("X-Custom", "kept")
		resp, body := send(t, req)
		require.Equal(t, 200, resp.StatusCode, body)
		var f *wire.Request
		select {
		case f = <-got:
		case <-time.After(5 * time.Second):
			t.Fatal("no request frame")
		}
		for k := range f.RequestHeaders {
			switch strings.ToLower(k) {
			case "content-length", "te", "keep-alive", "connection", "transfer-encoding":
				t.Errorf("size %d: %s must not be forwarded", size, k)
			}
		}
		assert.Equal(t, "kept", f.RequestHeaders["X-Custom"])
		assert.Equal(t, "1.1 proxy.example, 1.1 127.0.0.1", f.RequestHeaders["Via"])
	}
}

// Rule: a listener's response must not carry RFC 7230 headers; responses
// from a listener carry Via, the relay's own errors do not (protocol
// document, "Responding to requests", "HTTP request protocol").
func TestResponseHeadersAndVia(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	go serveRequests(ws, func(req *wire.Request) error {
		h := map[string]string{"Content-Type": "text/plain", "X-App": "1"}
		status := http.StatusNotFound
		if strings.HasSuffix(req.RequestTarget, "/with-length") {
			h["Content-Length"] = "2"
			status = http.StatusOK
		}
		return respond(ws, req.ID, status, h, []byte("no"))
	})
	tok := sas(s, "hc", "send", "sk", time.Hour)
	do := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("ServiceBusAuthorization", tok)
		return send(t, req)
	}

	resp, body := do("/hc/v1/missing")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Equal(t, "no", body)
	assert.Equal(t, "1", resp.Header.Get("X-App"))
	assert.Equal(t, "1.1 127.0.0.1", resp.Header.Get("Via"), "the application's 404 is marked as the listener's")

	resp, body = do("/nope/v1/missing")
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("Via"), "the relay's own 404 has no Via: %s", body)

	resp, body = do("/hc/with-length")
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode)
	assert.Contains(t, body, "Content-Length")
}
