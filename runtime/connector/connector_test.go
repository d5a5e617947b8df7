package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/envelope"
	gw "github.com/botehq/platform/runtime/gatewayserver/session"
	"github.com/botehq/platform/runtime/sessionproto"
)

// fakeTokens hands out "tok-<n>" tokens valid for ttl.
type fakeTokens struct {
	n           atomic.Int64
	ttl         time.Duration
	invalidated atomic.Int64
}

func (f *fakeTokens) TokenWithExpiry(context.Context) (clientauth.Token, error) {
	return clientauth.Token{AccessToken: "tok", Expiry: time.Now().Add(f.ttl)}, nil
}
func (f *fakeTokens) Invalidate() { f.invalidated.Add(1) }

type verifier struct{ id gw.Identity }

func (v verifier) Verify(_ context.Context, raw string) (gw.Principal, error) {
	if raw != "tok" {
		return gw.Principal{}, errors.New("bad token")
	}
	return gw.Principal{Identity: v.id, Expires: time.Now().Add(time.Hour)}, nil
}

type sender struct {
	mu   sync.Mutex
	msgs []sessionproto.Message
	from []gw.Identity
}

func (s *sender) SendToCloud(_ context.Context, from gw.Identity, m sessionproto.Message) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	s.from = append(s.from, from)
	return m.ID, nil
}
func (s *sender) DeadLetter(context.Context, gw.Identity, sessionproto.DeadLetter) error { return nil }

type subs struct {
	mu  sync.Mutex
	got []string
}

func (s *subs) Subscribe(_ context.Context, tenant, topic, connector string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, "+"+tenant+"/"+topic+"/"+connector)
	return nil
}
func (s *subs) Unsubscribe(_ context.Context, tenant, topic, connector string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, "-"+tenant+"/"+topic+"/"+connector)
	return nil
}

type noAccess struct{}

func (noAccess) Grant(context.Context, gw.Identity) (sessionproto.QueueAccess, error) {
	return sessionproto.QueueAccess{}, errors.New("no storage in this test")
}
func (noAccess) Extend(context.Context, gw.Identity, string, string, string, time.Duration) (string, time.Time, error) {
	return "", time.Time{}, errors.New("no storage in this test")
}

type gateway struct {
	srv    *gw.Server
	http   *httptest.Server
	sender *sender
	subs   *subs
}

func newGateway(t *testing.T, id gw.Identity) *gateway {
	t.Helper()
	g := &gateway{sender: &sender{}, subs: &subs{}}
	srv, err := gw.New(gw.Config{Verifier: verifier{id}, Sender: g.sender, Subscriptions: g.subs, QueueAccess: noAccess{},
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	g.srv = srv
	g.http = httptest.NewServer(srv)
	t.Cleanup(g.http.Close)
	return g
}

func newClient(t *testing.T, g *gateway, tenant, connector string) (*Client, *fakeTokens) {
	t.Helper()
	tokens := &fakeTokens{ttl: time.Hour}
	c, err := New(Config{
		GatewayURL: g.http.URL, Tenant: tenant, Connector: connector, Tokens: tokens,
		Handler:    HandlerFunc(func(context.Context, *Message) error { return nil }),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, tokens
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSendWaitsForAckAndCarriesNoIdentity(t *testing.T) {
	g := newGateway(t, gw.Identity{Tenant: "acme", Connector: "a1"})
	c, _ := newClient(t, g, "acme", "a1")
	id, err := c.Send(ctxT(t), OutMessage{Body: []byte("ping"), CorrelationID: "c-1"})
	require.NoError(t, err)
	assert.Len(t, id, 32)
	g.sender.mu.Lock()
	defer g.sender.mu.Unlock()
	require.Len(t, g.sender.msgs, 1)
	assert.Equal(t, id, g.sender.msgs[0].ID)
	assert.Equal(t, gw.Identity{Tenant: "acme", Connector: "a1"}, g.sender.from[0])
}

func TestSendRefusedIsReturned(t *testing.T) {
	g := newGateway(t, gw.Identity{Tenant: "acme", Connector: "a1"})
	c, _ := newClient(t, g, "acme", "a1")
	_, err := c.Send(ctxT(t), OutMessage{Headers: map[string]string{"bote-tenant": "other"}})
	var perr *sessionproto.Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, sessionproto.CodeIdentityHeader, perr.Code)
}

func TestSubscribe(t *testing.T) {
	g := newGateway(t, gw.Identity{Tenant: "acme", Connector: "a1"})
	c, _ := newClient(t, g, "acme", "a1")
	require.NoError(t, c.Subscribe(ctxT(t), "chat"))
	require.NoError(t, c.Unsubscribe(ctxT(t), "chat"))
	var perr *sessionproto.Error
	require.ErrorAs(t, c.Subscribe(ctxT(t), "bad topic"), &perr)
	assert.Equal(t, sessionproto.CodeInvalidTopic, perr.Code)
	assert.Equal(t, []string{"+acme/chat/a1", "-acme/chat/a1"}, g.subs.got)
}

func TestReconnectsAfterGatewayGoesAway(t *testing.T) {
	id := gw.Identity{Tenant: "acme", Connector: "a1"}
	g := newGateway(t, id)
	c, _ := newClient(t, g, "acme", "a1")
	require.NoError(t, c.WaitConnected(ctxT(t)))

	// Replace the gateway: the old one shuts down (1001), a new one serves.
	g2, err := gw.New(gw.Config{Verifier: verifier{id}, Sender: g.sender, Subscriptions: g.subs, QueueAccess: noAccess{}, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	old := g.srv
	g.http.Config.Handler = g2
	require.NoError(t, old.Shutdown(ctxT(t)))
	require.Eventually(t, func() bool { return g2.Sessions() == 1 }, 5*time.Second, 10*time.Millisecond)
	_, err = c.Send(ctxT(t), OutMessage{Body: []byte("after")})
	require.NoError(t, err)
}

func TestRefusesSessionOfAnotherIdentity(t *testing.T) {
	g := newGateway(t, gw.Identity{Tenant: "acme", Connector: "someone-else"})
	c, _ := newClient(t, g, "acme", "a1")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, c.WaitConnected(ctx), ErrNotConnected)
}

// A restarted gateway is found fast: during FastReconnect no delay exceeds
// fastMaxBackoff however many attempts failed, and the delays are spread
// over that range rather than bunched; afterwards they grow to MaxBackoff. A
// Retry-After from the idp is waited out.
func TestRetryDelayIsFastAtFirstThenBacksOff(t *testing.T) {
	c := &Client{cfg: Config{MinBackoff: 250 * time.Millisecond, MaxBackoff: 30 * time.Second, FastReconnect: time.Minute}}
	refused := errors.New("connection refused")
	var fast []time.Duration
	for attempt := range 200 {
		d := c.retryDelay(attempt, time.Duration(attempt)*100*time.Millisecond, refused)
		require.LessOrEqual(t, d, fastMaxBackoff, "attempt %d", attempt)
		if attempt >= 3 {
			fast = append(fast, d)
		}
	}
	slices.Sort(fast)
	assert.Less(t, fast[len(fast)/10], fastMaxBackoff/4, "spread over the range, not bunched at the top")
	assert.Greater(t, fast[len(fast)*9/10], fastMaxBackoff*3/4, "spread over the range, not bunched at the bottom")

	var slowTop time.Duration
	for range 200 {
		slowTop = max(slowTop, c.retryDelay(10, 2*time.Minute, refused))
	}
	assert.Greater(t, slowTop, 10*time.Second, "a long outage backs off")
	assert.LessOrEqual(t, slowTop, 30*time.Second)

	limited := fmt.Errorf("cannot get access token: %w", &clientauth.OAuthError{StatusCode: 429, RetryAfter: 5 * time.Second})
	d := c.retryDelay(0, 0, limited)
	assert.GreaterOrEqual(t, d, 5*time.Second)
	assert.LessOrEqual(t, d, 5*time.Second+c.cfg.MinBackoff)
}

func TestConfigValidate(t *testing.T) {
	ok := Config{WorkerURL: "http://w", Tenant: "t", Connector: "c", Tokens: &fakeTokens{}, Handler: HandlerFunc(nil)}
	require.NoError(t, ok.Validate())
	for field, mut := range map[string]func(*Config){
		"WorkerURL":     func(c *Config) { c.WorkerURL = "not a url" },  // the deprecated name, alone
		"GatewayURL":    func(c *Config) { c.GatewayURL = "not a url" }, // the new name wins
		`GatewayURL ""`: func(c *Config) { c.WorkerURL = "" },           // neither
		"TokenURL":      func(c *Config) { c.Tokens = nil },
		"Tenant":        func(c *Config) { c.Tenant = "bad/tenant" },
		"Connector":     func(c *Config) { c.Connector = "" },
		"Visibility":    func(c *Config) { c.Visibility = time.Second },
		"RetryDelay":    func(c *Config) { c.RetryDelay = 1500 * time.Millisecond },
	} {
		c := ok
		mut(&c)
		err := c.Validate()
		require.Error(t, err, field)
		assert.True(t, strings.Contains(err.Error(), field), "%s: %v", field, err)
	}
	// A Handler is given in Config or registered with Handle, before Run.
	noHandler := ok
	noHandler.Handler = nil
	c, err := New(noHandler)
	require.NoError(t, err)
	err = c.Run(context.Background())
	require.Error(t, err, "Handler")
	assert.True(t, strings.Contains(err.Error(), "Handler"), "Handler: %v", err)
}

func TestLargeSendNeedsUploads(t *testing.T) {
	g := newGateway(t, gw.Identity{Tenant: "acme", Connector: "a1"}) // no Uploads configured
	c, _ := newClient(t, g, "acme", "a1")
	_, err := c.Send(ctxT(t), OutMessage{Body: make([]byte, MaxInlineBytes+1)})
	var perr *sessionproto.Error
	require.ErrorAs(t, err, &perr)
	assert.Equal(t, sessionproto.CodeUnknownType, perr.Code)
	assert.Empty(t, g.sender.msgs, "nothing was sent")
}

// TestSilentGatewayIsDropped: a gateway that accepts the session and then
// says nothing (a half-open connection) is left after three ping
// intervals, and the connector reconnects.
func TestSilentGatewayIsDropped(t *testing.T) {
	var accepts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{sessionproto.Subprotocol}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		accepts.Add(1)
		hello, _ := sessionproto.Encode(sessionproto.Frame{Type: sessionproto.TypeHello, Hello: &sessionproto.Hello{
			Session: "s", Tenant: "acme", Connector: "a1", Queue: "q", PingIntervalSeconds: 1, MaxFrameBytes: sessionproto.MaxFrameBytes}})
		_ = ws.Write(r.Context(), websocket.MessageText, hello)
		<-r.Context().Done() // silence
	}))
	defer srv.Close()
	c, err := New(Config{GatewayURL: srv.URL, Tenant: "acme", Connector: "a1", Tokens: &fakeTokens{ttl: time.Hour},
		Handler: HandlerFunc(func(context.Context, *Message) error { return nil }), MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	require.Eventually(t, func() bool { return accepts.Load() >= 2 }, 10*time.Second, 50*time.Millisecond)
}

// A message on this connector's queue reaches the handler only if it is
// addressed to this connector, comes from a cloud service and carries no
// reserved header: anyone with write access to the storage account can put
// one there.
func TestAddressedToMe(t *testing.T) {
	c := &Client{cfg: Config{Tenant: "ta", Connector: "c1"}}
	svc := &envelope.Identity{Service: "svc"}
	tests := []struct {
		name   string
		env    envelope.Envelope
		reason string
	}{
		{"targeted to me", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1", From: svc}, ""},
		{"broadcast to my tenant", envelope.Envelope{Kind: envelope.KindBroadcast, Tenant: "ta", Topic: "chat", From: svc, Headers: map[string]string{"trace_id": "1"}}, ""},
		{"another connector", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c2", From: svc}, ReasonMisaddressed},
		{"another tenant", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "tb", Connector: "c1", From: svc}, ReasonMisaddressed},
		{"broadcast to another tenant", envelope.Envelope{Kind: envelope.KindBroadcast, Tenant: "tb", Topic: "chat", From: svc}, ReasonMisaddressed},
		{"cloud kind", envelope.Envelope{Kind: envelope.KindCloud, From: &envelope.Identity{Tenant: "ta", Connector: "c2"}}, ReasonMisaddressed},
		{"no sender", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1"}, ReasonUnverifiedSender},
		{"connector as sender", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1", From: &envelope.Identity{Tenant: "t9", Connector: "admin"}}, ReasonUnverifiedSender},
		{"reserved header", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1", From: svc, Headers: map[string]string{"Bote-From": "t9/admin"}}, ReasonUnverifiedSender},
		{"reserved header spelled otherwise", envelope.Envelope{Kind: envelope.KindTargeted, Tenant: "ta", Connector: "c1", From: svc, Headers: map[string]string{"x_tenant_id": "t2"}}, ReasonUnverifiedSender},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, err := c.addressedToMe(&tt.env)
			assert.Equal(t, tt.reason, reason)
			assert.Equal(t, tt.reason != "", err != nil, "%v", err)
		})
	}
}

// A call with a CorrelationID is refused before anything is sent: with the
// deadline it carries, the service would take it for a reply to one of its
// own calls and never run its handler (the caller would time out).
func TestCallRefusesCorrelationID(t *testing.T) {
	g := newGateway(t, gw.Identity{Tenant: "acme", Connector: "a1"})
	c, _ := newClient(t, g, "acme", "a1")
	require.Eventually(t, c.running.Load, 5*time.Second, time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Call(ctx, "relayserver", OutMessage{Body: []byte("ping"), CorrelationID: "conversation-7"})
	require.ErrorIs(t, err, ErrCallCorrelated)
	g.sender.mu.Lock()
	defer g.sender.mu.Unlock()
	assert.Empty(t, g.sender.msgs)
}
