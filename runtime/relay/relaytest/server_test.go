package relaytest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/internal/wire"
)

func newTestServer(t *testing.T, opts Options) *Server {
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func sas(s *Server, hc, name, key string, ttl time.Duration) string {
	return relay.SignSAS(relay.ResourceURI(s.Host, hc), name, key, time.Now().Add(ttl))
}

// readMessage reads one control message from a hand-driven listener.
func readMessage(ws *websocket.Conn) (wire.Message, error) {
	var m wire.Message
	_, data, err := ws.Read(context.Background())
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

// rawListenerWithRules adds a "listen" and a "send" rule and connects a
// hand-driven listener with the first.
func rawListenerWithRules(t *testing.T) (*Server, *websocket.Conn) {
	s := newTestServer(t, Options{})
	s.AddRule("listen", "lk", Listen)
	s.AddRule("send", "sk", Send)
	ws, _, err := rawListen(t, s, "hc", sas(s, "hc", "listen", "lk", time.Hour))
	require.NoError(t, err)
	return s, ws
}

// rawListen opens a control channel by hand, so the relay's side of the
// protocol is tested without the client package's behaviour in the way.
func rawListen(t *testing.T, s *Server, hc, token string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	u := "ws://" + s.Host + "/$hc/" + hc + "?sb-hc-action=listen&sb-hc-id=raw"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"ServiceBusAuthorization": {token}}})
	if err == nil {
		t.Cleanup(func() { _ = ws.CloseNow() })
	}
	return ws, resp, err
}

func TestListenHandshakeChecks(t *testing.T) {
	s := newTestServer(t, Options{HybridConnections: []string{"hc", "other"}})
	s.AddRule("listen", "lk", Listen)
	s.AddRule("send", "sk", Send)
	s.AddRule("manage", "mk", Manage)
	require.NoError(t, s.AddEntityRule("other", "other-listen", "ok", Listen))
	nsWide := relay.SignSAS("http://"+s.hostNoPort+"/", "listen", "lk", time.Now().Add(time.Hour))

	tests := []struct {
		name   string
		hc     string
		token  string
		status int
	}{
		{"listen rule", "hc", sas(s, "hc", "listen", "lk", time.Hour), http.StatusSwitchingProtocols},
		{"manage implies listen", "hc", sas(s, "hc", "manage", "mk", time.Hour), http.StatusSwitchingProtocols},
		{"namespace-wide audience", "hc", nsWide, http.StatusSwitchingProtocols},
		{"entity rule on its entity", "other", sas(s, "other", "other-listen", "ok", time.Hour), http.StatusSwitchingProtocols},
		{"entity rule elsewhere", "hc", sas(s, "hc", "other-listen", "ok", time.Hour), http.StatusUnauthorized},
		{"no token", "hc", "", http.StatusUnauthorized},
		{"garbage", "hc", "Bearer nope", http.StatusUnauthorized},
		{"wrong key", "hc", sas(s, "hc", "listen", "wrong", time.Hour), http.StatusUnauthorized},
		{"unknown rule", "hc", sas(s, "hc", "nobody", "lk", time.Hour), http.StatusUnauthorized},
		{"expired", "hc", sas(s, "hc", "listen", "lk", -time.Second), http.StatusUnauthorized},
		{"audience of another entity", "hc", sas(s, "other", "listen", "lk", time.Hour), http.StatusUnauthorized},
		{"audience prefix is not a parent", "hc", relay.SignSAS("http://"+s.hostNoPort+"/h", "listen", "lk", time.Now().Add(time.Hour)), http.StatusUnauthorized},
		{"send rule cannot listen", "hc", sas(s, "hc", "send", "sk", time.Hour), http.StatusForbidden},
		{"unknown entity", "nope", sas(s, "nope", "listen", "lk", time.Hour), http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws, resp, err := rawListen(t, s, tt.hc, tt.token)
			require.NotNil(t, resp)
			assert.Equal(t, tt.status, resp.StatusCode)
			if tt.status == http.StatusSwitchingProtocols {
				require.NoError(t, err)
				_ = ws.Close(websocket.StatusNormalClosure, "")
			}
		})
	}
}

func TestTokenInQueryParameter(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AddRule("listen", "lk", Listen)
	u := "ws://" + s.Host + "/$hc/hc?sb-hc-action=listen&sb-hc-token=" + url.QueryEscape(sas(s, "hc", "listen", "lk", time.Hour))
	ws, _, err := websocket.Dial(context.Background(), u, nil)
	require.NoError(t, err)
	_ = ws.CloseNow()
}

func TestUnrenewedTokenCloses1008(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AddRule("listen", "lk", Listen)
	ws, _, err := rawListen(t, s, "hc", sas(s, "hc", "listen", "lk", 2*time.Second))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err = ws.Read(ctx)
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err), "got %v", err)
	assert.Less(t, time.Since(start), 4*time.Second)
}

func TestRenewalExtendsAndBadRenewalCloses(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AddRule("listen", "lk", Listen)
	s.AddRule("send", "sk", Send)
	ws, _, err := rawListen(t, s, "hc", sas(s, "hc", "listen", "lk", 2*time.Second))
	require.NoError(t, err)
	renew := func(tok string) {
		b, _ := json.Marshal(wire.Message{RenewToken: &wire.RenewToken{Token: tok}})
		require.NoError(t, ws.Write(context.Background(), websocket.MessageText, b))
	}
	renew(sas(s, "hc", "listen", "lk", time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	_, _, err = ws.Read(ctx)
	cancel()
	assert.ErrorIs(t, err, context.DeadlineExceeded, "still open past the first token's expiry")
	assert.Equal(t, int64(1), s.Stats().Renewals)

	ws, _, err = rawListen(t, s, "hc", sas(s, "hc", "listen", "lk", time.Hour))
	require.NoError(t, err)
	renew(sas(s, "hc", "send", "sk", time.Hour)) // lacks Listen
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _, err = ws.Read(ctx)
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err))
}

func TestHTTPSenderChecks(t *testing.T) {
	s := newTestServer(t, Options{HybridConnections: []string{"hc", "open"}})
	s.AddHybridConnection("open", false)
	s.AddRule("send", "sk", Send)
	s.AddRule("listen", "lk", Listen)
	get := func(path, token string) *http.Response {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		if token != "" {
			req.Header.Set("ServiceBusAuthorization", token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	assert.Equal(t, http.StatusBadGateway, get("/hc/x", sas(s, "hc", "send", "sk", time.Hour)).StatusCode, "no listener")
	assert.Equal(t, http.StatusUnauthorized, get("/hc/x", "").StatusCode)
	assert.Equal(t, http.StatusForbidden, get("/hc/x", sas(s, "hc", "listen", "lk", time.Hour)).StatusCode)
	assert.Equal(t, http.StatusNotFound, get("/nope/x", sas(s, "nope", "send", "sk", time.Hour)).StatusCode)
	assert.Equal(t, http.StatusBadGateway, get("/open/x", "").StatusCode, "anonymous sender passes auth, finds no listener")
}

// A listener that answers with a body over 64 kB on the control channel
// breaks the protocol: the relay closes it with 1009 and the sender gets 502.
func TestControlChannelBodyLimitEnforced(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	closed := make(chan websocket.StatusCode, 1)
	go func() {
		ctx := context.Background()
		m, err := readMessage(ws)
		if err != nil {
			closed <- websocket.CloseStatus(err)
			return
		}
		b, _ := json.Marshal(wire.Message{Response: &wire.Response{RequestID: m.Request.ID, StatusCode: 200, Body: true}})
		_ = ws.Write(ctx, websocket.MessageText, b)
		_ = ws.Write(ctx, websocket.MessageBinary, make([]byte, wire.MaxControlBody+1))
		_, _, err = ws.Read(ctx)
		closed <- websocket.CloseStatus(err)
	}()
	req, _ := http.NewRequest("GET", s.URL+"/hc/big", nil)
	req.Header.Set("ServiceBusAuthorization", sas(s, "hc", "send", "sk", time.Hour))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	select {
	case code := <-closed:
		assert.Equal(t, websocket.StatusMessageTooBig, code)
	case <-time.After(5 * time.Second):
		t.Fatal("listener not closed")
	}
}

func TestRequestFrameShape(t *testing.T) {
	s, ws := rawListenerWithRules(t)
	frames := make(chan wire.Request, 1)
	go func() {
		m, err := readMessage(ws)
		if err != nil {
			return
		}
		frames <- *m.Request
		_, _, _ = ws.Read(context.Background()) // the body
		b, _ := json.Marshal(wire.Message{Response: &wire.Response{RequestID: m.Request.ID, StatusCode: 204}})
		_ = ws.Write(context.Background(), websocket.MessageText, b)
	}()
	req, _ := http.NewRequest("POST", s.URL+"/hc/v1/runs?x=1&sb-hc-token="+url.QueryEscape(sas(s, "hc", "send", "sk", time.Hour)), strings.NewReader("body"))
	req.Header.Set("Authorization", "Bearer app")
	req.Header.Set("Connection", "keep-alive")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 204, resp.StatusCode)
	f := <-frames
	assert.Equal(t, "POST", f.Method)
	assert.Equal(t, "/hc/v1/runs?x=1", f.RequestTarget, "sb-hc-* parameters are stripped")
	assert.True(t, f.Body)
	assert.Equal(t, "Bearer app", f.RequestHeaders["Authorization"], "only the relay's own token header is removed")
	assert.NotContains(t, f.RequestHeaders, "Servicebusauthorization")
	assert.NotContains(t, f.RequestHeaders, "Connection")
	assert.Contains(t, f.Address, "sb-hc-action=request")
}

func TestListenerLimit(t *testing.T) {
	s := newTestServer(t, Options{})
	s.AddRule("listen", "lk", Listen)
	tok := sas(s, "hc", "listen", "lk", time.Hour)
	for range MaxListeners {
		_, _, err := rawListen(t, s, "hc", tok)
		require.NoError(t, err)
	}
	_, resp, err := rawListen(t, s, "hc", tok)
	require.Error(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Equal(t, MaxListeners, s.ListenerCount("hc"))
}

// Rejections with the protocol's sb-hc-* names and with the Node SDK's
// unprefixed ones both reach the sender with the listener's status.
func TestRejectParameterNames(t *testing.T) {
	for _, prefix := range []string{"sb-hc-", ""} {
		t.Run("prefix "+prefix, func(t *testing.T) {
			s, ws := rawListenerWithRules(t)
			go func() {
				m, err := readMessage(ws)
				if err != nil {
					return
				}
				u := m.Accept.Address + "&" + prefix + "statusCode=418&" + prefix + "statusDescription=" + url.QueryEscape("not today")
				_, resp, _ := websocket.Dial(context.Background(), u, nil)
				if resp != nil && resp.StatusCode != http.StatusGone {
					t.Errorf("reject answered %d, want 410", resp.StatusCode)
				}
			}()
			u := "ws://" + s.Host + "/$hc/hc?sb-hc-action=connect"
			_, resp, err := websocket.Dial(context.Background(), u, &websocket.DialOptions{HTTPHeader: http.Header{"ServiceBusAuthorization": {sas(s, "hc", "send", "sk", time.Hour)}}})
			require.Error(t, err)
			require.NotNil(t, resp)
			assert.Equal(t, 418, resp.StatusCode)
			b, _ := io.ReadAll(resp.Body)
			assert.Contains(t, string(b), "not today")
		})
	}
}
