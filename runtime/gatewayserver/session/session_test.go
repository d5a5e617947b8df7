package session

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/sessionproto"
)

// fakeVerifier accepts "tok-<tenant>-<connector>[-<seconds valid>]".
type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (Principal, error) {
	parts := strings.Split(raw, "-")
	if len(parts) < 3 || len(parts) > 4 || parts[0] != "tok" {
		return Principal{}, errors.New("token is not valid")
	}
	exp := time.Now().Add(time.Hour)
	if len(parts) == 4 {
		secs, _ := strconv.Atoi(parts[3])
		exp = time.Now().Add(time.Duration(secs) * time.Millisecond)
	}
	return Principal{Identity: Identity{Tenant: ids.TenantID(parts[1]), Connector: parts[2]}, Expires: exp}, nil
}

type sent struct {
	from Identity
	msg  sessionproto.Message
}

type fakeSender struct {
	mu       sync.Mutex
	sent     []sent
	err      error
	dead     []sessionproto.DeadLetter
	deadFrom []Identity
}

func (f *fakeSender) SendToCloud(_ context.Context, from Identity, m sessionproto.Message) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return "", f.err
	}
	f.sent = append(f.sent, sent{from, m})
	if m.ID == "" {
		return "generated-id", nil
	}
	return m.ID, nil
}

func (f *fakeSender) DeadLetter(_ context.Context, from Identity, d sessionproto.DeadLetter) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dead = append(f.dead, d)
	f.deadFrom = append(f.deadFrom, from)
	return nil
}

func (f *fakeSender) all() []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sent(nil), f.sent...)
}

type fakeSubs struct {
	mu  sync.Mutex
	set map[string]bool // tenant|topic|connector
}

func (f *fakeSubs) Subscribe(_ context.Context, tenant, topic, connector string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set[tenant+"|"+topic+"|"+connector] = true
	return nil
}

func (f *fakeSubs) Unsubscribe(_ context.Context, tenant, topic, connector string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.set, tenant+"|"+topic+"|"+connector)
	return nil
}

func (f *fakeSubs) has(k string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set[k]
}

type fakeAccess struct{}

func (fakeAccess) Grant(_ context.Context, id Identity) (sessionproto.QueueAccess, error) {
	return sessionproto.QueueAccess{Queue: "q-" + id.Connector, URL: "http://queue/q-" + id.Connector + "?sig=x", ExpiresAt: time.Unix(1e9, 0).UTC()}, nil
}

func (fakeAccess) Extend(_ context.Context, id Identity, messageID, pop, _ string, vis time.Duration) (string, time.Time, error) {
	return pop + "+" + id.Connector, time.Unix(1e9, 0).Add(vis).UTC(), nil
}

type harness struct {
	srv    *Server
	http   *httptest.Server
	sender *fakeSender
	subs   *fakeSubs
}

func newHarness(t *testing.T, opts ...func(*Config)) *harness {
	t.Helper()
	h := &harness{sender: &fakeSender{}, subs: &fakeSubs{set: map[string]bool{}}}
	srv, err := New(Config{Verifier: fakeVerifier{}, Sender: h.sender, Subscriptions: h.subs, QueueAccess: fakeAccess{},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	for _, o := range opts {
		o(&srv.cfg)
	}
	h.srv = srv
	h.http = httptest.NewServer(srv)
	t.Cleanup(h.http.Close)
	return h
}

type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (h *harness) dial(t *testing.T, token string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.http.URL, "http"), &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {"Bearer " + token}},
		Subprotocols: []string{sessionproto.Subprotocol},
	})
	require.NoError(t, err)
	if resp.Body != nil {
		_ = resp.Body.Close()
	}
	ws.SetReadLimit(sessionproto.HardFrameLimit)
	t.Cleanup(func() { _ = ws.CloseNow() })
	c := &client{t: t, ws: ws}
	hello := c.read()
	require.Equal(t, sessionproto.TypeHello, hello.Type)
	return c
}

func (c *client) writeRaw(data []byte) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(c.t, c.ws.Write(ctx, websocket.MessageText, data))
}

func (c *client) write(f sessionproto.Frame) {
	c.t.Helper()
	data, err := sessionproto.Encode(f)
	require.NoError(c.t, err)
	c.writeRaw(data)
}

func (c *client) read() sessionproto.Frame {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := c.ws.Read(ctx)
	require.NoError(c.t, err)
	f, err := sessionproto.Decode(data)
	require.NoError(c.t, err)
	return f
}

func TestRejectsBadTokensBeforeUpgrade(t *testing.T) {
	h := newHarness(t)
	for name, auth := range map[string]string{
		"no header":    "",
		"not bearer":   "Basic dG9rLWEtYg==",
		"empty bearer": "Bearer ",
		"bad token":    "Bearer forged",
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, h.http.URL+sessionproto.ConnectPath, nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
			assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "Bearer")
		})
	}
	assert.Zero(t, h.srv.Sessions())
}

func TestHelloCarriesVerifiedIdentity(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.http.URL, "http"), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer tok-acme-agent1"}}, Subprotocols: []string{sessionproto.Subprotocol},
	})
	require.NoError(t, err)
	defer ws.CloseNow()
	_, data, err := ws.Read(ctx)
	require.NoError(t, err)
	f, err := sessionproto.Decode(data)
	require.NoError(t, err)
	require.NotNil(t, f.Hello)
	assert.Equal(t, "acme", f.Hello.Tenant)
	assert.Equal(t, "agent1", f.Hello.Connector)
	assert.Regexp(t, `^acme-agent1-[0-9a-f]{12}$`, f.Hello.Queue)
	assert.Equal(t, 30, f.Hello.PingIntervalSeconds)
}

func TestRequiresSubprotocol(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(h.http.URL, "http"), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer tok-acme-agent1"}},
	})
	require.NoError(t, err)
	defer ws.CloseNow()
	_, _, err = ws.Read(ctx)
	assert.Equal(t, websocket.StatusPolicyViolation, websocket.CloseStatus(err))
}

func TestSendStampsIdentityAndAcks(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	c.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "r1", Message: &sessionproto.Message{ID: "m-1", Body: []byte("ping"), Headers: map[string]string{"kind": "ping"}}})
	ack := c.read()
	assert.Equal(t, sessionproto.Frame{Type: sessionproto.TypeAck, ID: "r1", MessageID: "m-1"}, ack)
	got := h.sender.all()
	require.Len(t, got, 1)
	assert.Equal(t, Identity{Tenant: "acme", Connector: "agent1"}, got[0].from)
	assert.Equal(t, "ping", string(got[0].msg.Body))
}

func TestRequestErrors(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		wantID   string
		wantCode string
	}{
		{"not json", `{{{`, "", sessionproto.CodeBadFrame},
		{"no type", `{"id":"r1"}`, "r1", sessionproto.CodeBadFrame},
		{"no id", `{"type":"subscribe","topic":"chat"}`, "", sessionproto.CodeBadFrame},
		{"unknown type", `{"type":"teleport","id":"r2"}`, "r2", sessionproto.CodeUnknownType},
		{"send without message", `{"type":"send","id":"r3"}`, "r3", sessionproto.CodeBadFrame},
		{"spoofed tenant header", `{"type":"send","id":"r4","message":{"headers":{"Bote-Tenant":"other"}}}`, "r4", sessionproto.CodeIdentityHeader},
		{"spoofed connector header", `{"type":"send","id":"r5","message":{"headers":{"x-connector-id":"agent2"}}}`, "r5", sessionproto.CodeIdentityHeader},
		{"spoofed from header", `{"type":"send","id":"r6","message":{"headers":{"From":"acme/agent2"}}}`, "r6", sessionproto.CodeIdentityHeader},
		{"malformed header", `{"type":"send","id":"r9","message":{"headers":{"a b":"c"}}}`, "r9", sessionproto.CodeInvalidMessage},
		{"bad topic", `{"type":"subscribe","id":"r7","topic":"../other"}`, "r7", sessionproto.CodeInvalidTopic},
		{"empty topic", `{"type":"unsubscribe","id":"r8"}`, "r8", sessionproto.CodeInvalidTopic},
		{"extend without receipt", `{"type":"extend","id":"r10","extend":{"message_id":"m","visibility_seconds":30}}`, "r10", sessionproto.CodeBadFrame},
		{"extend too long", `{"type":"extend","id":"r11","extend":{"message_id":"m","pop_receipt":"p","text":"t","visibility_seconds":9999999}}`, "r11", sessionproto.CodeBadFrame},
		{"dead letter without reason", `{"type":"dead_letter","id":"r12","dead_letter":{"text":"x"}}`, "r12", sessionproto.CodeBadFrame},
		{"oversize message id", `{"type":"send","id":"r13","message":{"id":"` + strings.Repeat("x", 200) + `"}}`, "r13", sessionproto.CodeInvalidMessage},
	}
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.writeRaw([]byte(tt.raw))
			f := c.read()
			assert.Equal(t, sessionproto.TypeError, f.Type)
			assert.Equal(t, tt.wantID, f.ID)
			require.NotNil(t, f.Error)
			assert.Equal(t, tt.wantCode, f.Error.Code, f.Error.Message)
		})
	}
	assert.Empty(t, h.sender.all(), "nothing reaches the bus from a refused frame")
	// The session survives all of it.
	c.write(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "ok", Topic: "chat"})
	assert.Equal(t, sessionproto.TypeAck, c.read().Type)
}

func TestOversizeFrameIsRefusedAndSessionContinues(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	other := h.dial(t, "tok-acme-agent2")
	big := `{"type":"send","id":"big","message":{"body":"` + strings.Repeat("A", sessionproto.MaxFrameBytes) + `"}}`
	c.writeRaw([]byte(big))
	f := c.read()
	require.Equal(t, sessionproto.TypeError, f.Type)
	assert.Equal(t, sessionproto.CodeFrameTooLarge, f.Error.Code)

	c.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "small", Message: &sessionproto.Message{ID: "m-2", Body: []byte("x")}})
	assert.Equal(t, "m-2", c.read().MessageID)
	other.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "o", Message: &sessionproto.Message{ID: "m-3"}})
	assert.Equal(t, "m-3", other.read().MessageID)
	assert.Len(t, h.sender.all(), 2)
}

func TestFrameBeyondHardLimitClosesOnlyThatSession(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	other := h.dial(t, "tok-acme-agent2")
	ctx := context.Background()
	_ = c.ws.Write(ctx, websocket.MessageText, make([]byte, sessionproto.HardFrameLimit+10))
	_, _, err := c.ws.Read(ctx)
	require.Error(t, err, "that session is over")
	if status := websocket.CloseStatus(err); status != -1 { // -1: the close frame raced the write
		assert.Equal(t, websocket.StatusMessageTooBig, status)
	}
	other.write(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "s", Topic: "chat"})
	assert.Equal(t, sessionproto.TypeAck, other.read().Type)
}

func TestSubscriptionsAreScopedToTheTokenTenant(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	c.write(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "s1", Topic: "chat"})
	assert.Equal(t, sessionproto.Frame{Type: sessionproto.TypeAck, ID: "s1", Topic: "chat"}, c.read())
	assert.True(t, h.subs.has("acme|chat|agent1"))
	c.write(sessionproto.Frame{Type: sessionproto.TypeUnsubscribe, ID: "s2", Topic: "chat"})
	assert.Equal(t, sessionproto.TypeAck, c.read().Type)
	assert.False(t, h.subs.has("acme|chat|agent1"))
}

func TestQueueAccess(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	c.write(sessionproto.Frame{Type: sessionproto.TypeQueueAccess, ID: "q"})
	f := c.read()
	require.Equal(t, sessionproto.TypeQueueAccess, f.Type)
	assert.Equal(t, "q", f.ID)
	assert.Equal(t, "q-agent1", f.QueueAccess.Queue)
}

func TestBackendFailureIsUnavailable(t *testing.T) {
	h := newHarness(t)
	h.sender.err = errors.New("bus down")
	c := h.dial(t, "tok-acme-agent1")
	c.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "r", Message: &sessionproto.Message{}})
	f := c.read()
	require.Equal(t, sessionproto.TypeError, f.Type)
	assert.Equal(t, sessionproto.CodeUnavailable, f.Error.Code)
	assert.NotContains(t, f.Error.Message, "bus down", "internal errors stay in the gateway's log")
}

func TestNudgeReachesOnlyThatConnector(t *testing.T) {
	h := newHarness(t)
	a := h.dial(t, "tok-acme-agent1")
	b := h.dial(t, "tok-acme-agent2")
	assert.True(t, h.srv.Nudge(Identity{Tenant: "acme", Connector: "agent1"}))
	assert.False(t, h.srv.Nudge(Identity{Tenant: "other", Connector: "agent1"}))
	assert.Equal(t, sessionproto.TypeNudge, a.read().Type)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, err := b.ws.Read(ctx)
	assert.Error(t, err, "agent2 got a frame it should not have")
}

func TestShutdownClosesWithGoingAway(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	require.Equal(t, 1, h.srv.Sessions())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- h.srv.Shutdown(ctx) }()
	_, _, err := c.ws.Read(ctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err))
	require.NoError(t, <-errc)
	assert.Zero(t, h.srv.Sessions())

	resp, err := http.Get(h.http.URL)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Verifier: fakeVerifier{}, Sender: &fakeSender{}, Subscriptions: &fakeSubs{}, QueueAccess: fakeAccess{}}
	for name, mut := range map[string]func(*Config){
		"Verifier":                func(c *Config) { c.Verifier = nil },
		"Sender":                  func(c *Config) { c.Sender = nil },
		"Subscriptions":           func(c *Config) { c.Subscriptions = nil },
		"QueueAccess":             func(c *Config) { c.QueueAccess = nil },
		"PingInterval":            func(c *Config) { c.PingInterval = 10 * time.Minute },
		"CloseTimeout":            func(c *Config) { c.CloseTimeout = -time.Second },
		"MaxSessionsPerConnector": func(c *Config) { c.MaxSessionsPerConnector = -1 },
	} {
		c := ok
		mut(&c)
		err := c.Validate()
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), name)
	}
	require.NoError(t, ok.Validate())
}

func TestExtendAndDeadLetterUseTheSessionIdentity(t *testing.T) {
	h := newHarness(t)
	c := h.dial(t, "tok-acme-agent1")
	c.write(sessionproto.Frame{Type: sessionproto.TypeExtend, ID: "e", Extend: &sessionproto.Extend{MessageID: "m", PopReceipt: "p", Text: "t", VisibilitySeconds: 60}})
	f := c.read()
	require.Equal(t, sessionproto.TypeExtend, f.Type)
	assert.Equal(t, "p+agent1", f.Extend.PopReceipt)

	c.write(sessionproto.Frame{Type: sessionproto.TypeDeadLetter, ID: "d", DeadLetter: &sessionproto.DeadLetter{Reason: "undecodable", Text: "garbage"}})
	assert.Equal(t, sessionproto.TypeAck, c.read().Type)
	h.sender.mu.Lock()
	defer h.sender.mu.Unlock()
	require.Len(t, h.sender.dead, 1)
	assert.Equal(t, Identity{Tenant: "acme", Connector: "agent1"}, h.sender.deadFrom[0])
}

func TestExpiredTokenClosesSessionUnlessRenewed(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = 50 * time.Millisecond })
	renewed := h.dial(t, "tok-acme-agent1-150") // valid 150ms
	expiring := h.dial(t, "tok-acme-agent2-150")

	renewed.write(sessionproto.Frame{Type: sessionproto.TypeAuth, ID: "a1", Token: "tok-acme-agent2"})
	f := renewed.read()
	require.Equal(t, sessionproto.TypeError, f.Type, "a token for another connector is refused")
	assert.Equal(t, sessionproto.CodeUnauthorized, f.Error.Code)
	renewed.write(sessionproto.Frame{Type: sessionproto.TypeAuth, ID: "a2", Token: "tok-acme-agent1"})
	assert.Equal(t, sessionproto.TypeAck, renewed.read().Type)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _, err := expiring.ws.Read(ctx)
	assert.Equal(t, websocket.StatusCode(sessionproto.CloseTokenExpired), websocket.CloseStatus(err))

	renewed.write(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "s", Topic: "chat"})
	assert.Equal(t, sessionproto.TypeAck, renewed.read().Type, "renewed session still serves")
}

type fakeDirectory struct {
	mu       sync.Mutex
	inactive map[Identity]bool
}

func (d *fakeDirectory) Active(id Identity) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.inactive[id]
}

func (d *fakeDirectory) disable(id Identity) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inactive[id] = true
}

func TestDisabledConnectorsLoseTheirSessions(t *testing.T) {
	dir := &fakeDirectory{inactive: map[Identity]bool{{Tenant: "acme", Connector: "gone"}: true}}
	h := newHarness(t, func(c *Config) { c.Directory = dir; c.PingInterval = 50 * time.Millisecond })

	req, _ := http.NewRequest(http.MethodGet, h.http.URL+sessionproto.ConnectPath, nil)
	req.Header.Set("Authorization", "Bearer tok-acme-gone")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "a valid token of a removed connector opens nothing")

	c := h.dial(t, "tok-acme-agent1")
	other := h.dial(t, "tok-acme-agent2")
	dir.disable(Identity{Tenant: "acme", Connector: "agent1"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, _, err = c.ws.Read(ctx)
	assert.Equal(t, websocket.StatusCode(sessionproto.CloseRevoked), websocket.CloseStatus(err))
	other.write(sessionproto.Frame{Type: sessionproto.TypeSubscribe, ID: "s", Topic: "chat"})
	assert.Equal(t, sessionproto.TypeAck, other.read().Type)
}

// TestSessionFloodKeepsTheNewestUpToTheCap: one token opening 300 sessions
// ends with MaxSessionsPerConnector open (the newest), every older one
// closed with CloseSessionLimit, the gauge exact and the evictions counted;
// another connector's session is untouched.
func TestSessionFloodKeepsTheNewestUpToTheCap(t *testing.T) {
	h := newHarness(t)
	require.Equal(t, DefaultMaxSessionsPerConnector, h.srv.cfg.MaxSessionsPerConnector)
	limit := h.srv.cfg.MaxSessionsPerConnector
	other := h.dial(t, "tok-acme-agent2")
	const flood = 300
	clients := make([]*client, flood)
	for i := range clients {
		clients[i] = h.dial(t, "tok-acme-agent1")
	}
	for i, c := range clients[:flood-limit] {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var err error
		for err == nil { // nothing but the close may come; skip anything else
			_, _, err = c.ws.Read(ctx)
		}
		cancel()
		require.Equal(t, websocket.StatusCode(sessionproto.CloseSessionLimit), websocket.CloseStatus(err), "session %d", i)
	}
	m := h.srv.metrics
	require.Eventually(t, func() bool { return testutil.ToFloat64(m.Sessions) == float64(limit+1) }, 10*time.Second, 10*time.Millisecond)
	assert.Equal(t, limit+1, h.srv.Sessions())
	assert.Equal(t, float64(flood-limit), testutil.ToFloat64(m.Evicted))

	// The newest sessions and the other connector still work.
	for i, c := range append(clients[flood-limit:], other) {
		c.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "s", Message: &sessionproto.Message{ID: "after-flood-" + strconv.Itoa(i)}})
		assert.Equal(t, sessionproto.TypeAck, c.read().Type)
	}
	assert.Len(t, h.sender.all(), limit+1)
}

func TestSessionCapOfOne(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSessionsPerConnector = 1 })
	first := h.dial(t, "tok-acme-agent1")
	second := h.dial(t, "tok-acme-agent1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := first.ws.Read(ctx)
	assert.Equal(t, websocket.StatusCode(sessionproto.CloseSessionLimit), websocket.CloseStatus(err))
	assert.Contains(t, err.Error(), "more than 1 session")
	second.write(sessionproto.Frame{Type: sessionproto.TypeSend, ID: "s", Message: &sessionproto.Message{ID: "x"}})
	assert.Equal(t, sessionproto.TypeAck, second.read().Type)
}

// After a reconnect storm of every kind of ending (clean close, abrupt
// drop, a dial given up mid-handshake, sessions evicted by the per-connector
// cap, reconnects racing their own old session), the sessions gauge equals
// the sessions connectors still hold, and reaches zero when they are gone.
func TestSessionsGaugeIsExactAfterAStorm(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSessionsPerConnector = 1 })
	url := "ws" + strings.TrimPrefix(h.http.URL, "http")
	dial := func(ctx context.Context, token string) (*websocket.Conn, error) {
		ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}, Subprotocols: []string{sessionproto.Subprotocol},
		})
		if resp != nil && resp.Body != nil {
			_ = resp.Body.Close()
		}
		return ws, err
	}
	type held struct {
		ws   *websocket.Conn
		done chan struct{} // closed when the gateway ended it (a late abandoned dial may evict it)
	}
	const connectors = 60
	var mu sync.Mutex
	var kept []held
	var wg sync.WaitGroup
	for i := range connectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := "tok-acme-c" + strconv.Itoa(i)
			for round := range 3 {
				switch (i + round) % 4 {
				case 0: // given up mid-handshake
					ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond)
					if ws, err := dial(ctx, token); err == nil {
						_ = ws.CloseNow()
					}
					cancel()
				case 1: // dropped without a close frame
					if ws, err := dial(context.Background(), token); err == nil {
						_ = ws.CloseNow()
					}
				case 2: // closed cleanly
					if ws, err := dial(context.Background(), token); err == nil {
						_ = ws.Close(websocket.StatusNormalClosure, "bye")
					}
				case 3: // two at once: the cap closes one
					a, errA := dial(context.Background(), token)
					b, errB := dial(context.Background(), token)
					if errA == nil {
						_ = a.CloseNow()
					}
					if errB == nil {
						_ = b.CloseNow()
					}
				}
			}
			if i%2 == 0 {
				ws, err := dial(context.Background(), token)
				if !assert.NoError(t, err) {
					return
				}
				k := held{ws: ws, done: make(chan struct{})}
				go func() { // read (the hello, pings) as a connector does
					defer close(k.done)
					for {
						if _, _, err := ws.Read(context.Background()); err != nil {
							return
						}
					}
				}()
				mu.Lock()
				kept = append(kept, k)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	open := func() int {
		n := 0
		for _, k := range kept {
			select {
			case <-k.done:
			default:
				n++
			}
		}
		return n
	}
	gauge := func() int { return int(testutil.ToFloat64(h.srv.metrics.Sessions)) }
	// An evicted session counts until its close completes (at most 10 s).
	require.Eventually(t, func() bool { n := open(); return gauge() == n && h.srv.Sessions() == n }, 20*time.Second, 10*time.Millisecond,
		"gauge %d, sessions %d, held by connectors %d", gauge(), h.srv.Sessions(), open())
	assert.Greater(t, open(), connectors/4)
	for _, k := range kept {
		_ = k.ws.CloseNow()
	}
	require.Eventually(t, func() bool { return gauge() == 0 && h.srv.Sessions() == 0 }, 10*time.Second, 10*time.Millisecond,
		"gauge %d, sessions %d after every connector left", gauge(), h.srv.Sessions())
}

// An idle session costs the gateway at most one goroutine (its read loop
// where there is no poller; on Linux none, TestIdleSessionsHoldNoGoroutine):
// pings run on a timer and nudges on a goroutine that lives only while it
// writes.
func TestIdleSessionIsOneGoroutine(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.PingInterval = time.Hour })
	before := settledGoroutines()
	const sessions = 50
	clients := make([]*client, sessions)
	for i := range clients {
		clients[i] = h.dial(t, "tok-acme-c"+strconv.Itoa(i))
		h.srv.Nudge(Identity{Tenant: "acme", Connector: "c" + strconv.Itoa(i)})
	}
	for _, c := range clients { // the nudge frames arrive: the writers ran
		assert.Equal(t, sessionproto.TypeNudge, c.read().Type)
	}
	// The clients do not read now, so they hold no goroutine.
	after := goroutinesFallUnder(t, before+sessions*11/10+1)
	perSession := float64(after-before) / sessions
	t.Logf("%d goroutines before, %d with %d idle sessions: %.2f per session", before, after, sessions, perSession)
	assert.LessOrEqual(t, perSession, 1.1)
	assert.Equal(t, sessions, h.srv.Sessions())
}

// nudgingPresence nudges the session it records, as a message routed while
// the session is being opened would.
type nudgingPresence struct{ srv **Server }

func (p nudgingPresence) Join(_ context.Context, id Identity, _ string) error {
	(*p.srv).Nudge(id)
	return nil
}

func (nudgingPresence) Leave(context.Context, Identity, string) error { return nil }

// A nudge that comes while the session is being opened waits for the
// hello: the hello is always the first frame.
func TestNudgeDuringOpenFollowsTheHello(t *testing.T) {
	var srv *Server
	h := newHarness(t, func(c *Config) { c.Presence = nudgingPresence{&srv} })
	srv = h.srv
	c := h.dial(t, "tok-acme-agent1") // requires the hello first
	assert.Equal(t, sessionproto.TypeNudge, c.read().Type)
}

func TestDeliverParam(t *testing.T) {
	for _, tc := range []struct {
		query string
		want  time.Duration
		err   bool
	}{
		{"", 0, false},
		{"?deliver=60", time.Minute, false},
		{"?deliver=2", 2 * time.Second, false},
		{"?deliver=3600", time.Hour, false},
		{"?deliver=1", 0, true},
		{"?deliver=3601", 0, true},
		{"?deliver=yes", 0, true},
		{"?deliver=1.5", 0, true},
	} {
		t.Run(tc.query, func(t *testing.T) {
			got, err := deliverParam(httptest.NewRequest(http.MethodGet, "/v1/connect"+tc.query, nil))
			if tc.err {
				require.Error(t, err)
				assert.Contains(t, err.Error(), "deliver must be whole seconds")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}
