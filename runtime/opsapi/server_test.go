package opsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botehq/platform/runtime/internal/golden"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
)

const (
	goodKey      = "good-key"      // platform admin
	forbiddenKey = "forbidden-key" // the authenticator itself refuses it
	nobodyKey    = "nobody-key"    // authenticated, no grants
	// One role in contoso each; the operator also reads fabrikam.
	readerKey   = "reader-key"
	operatorKey = "operator-key"
	approverKey = "approver-key"
	// An OAuth2 token of carol@contoso.com (object id 7f3c…), reader in
	// contoso.
	oauthToken = "oauth-token"
)

// fakeAuth knows the keys above.
type fakeAuth struct{}

func (fakeAuth) Authenticate(r *http.Request) (operatorauth.Principal, error) {
	cred, err := operatorauth.BearerCredential(r)
	if err != nil {
		return operatorauth.Principal{}, err
	}
	p := operatorauth.Principal{Kind: operatorauth.KindAPIKey, ID: strings.TrimSuffix(cred, "-key")}
	p.Name = p.ID
	contoso := func(r operatorauth.Role) map[string]operatorauth.Role {
		return map[string]operatorauth.Role{"contoso": r}
	}
	switch cred {
	case goodKey:
		p.ID, p.Name, p.Admin = "alice", "alice", true
	case readerKey:
		p.Tenants = contoso(operatorauth.RoleReader)
	case operatorKey:
		p.Tenants = contoso(operatorauth.RoleOperator)
		p.Tenants["fabrikam"] = operatorauth.RoleReader
	case approverKey:
		p.Tenants = contoso(operatorauth.RoleApprover)
	case oauthToken:
		p = operatorauth.Principal{Kind: operatorauth.KindOAuth2, ID: "7f3c9a1e-0b6d-4c1a-9e2f-5d8b7a6c4e21", Name: "carol@contoso.com",
			Grants: operatorauth.Grants{Tenants: contoso(operatorauth.RoleReader)}}
	case nobodyKey:
	case forbiddenKey:
		return operatorauth.Principal{}, operatorauth.ErrForbidden
	default:
		return operatorauth.Principal{}, operatorauth.ErrUnauthenticated
	}
	return p, nil
}

// failingAgents is an AgentStore whose backend is down.
type failingAgents struct{}

func (failingAgents) ListAgents(context.Context, AgentFilter) ([]Agent, error) {
	return nil, errors.New("table storage: connection refused to secret-host")
}

var (
	t0      = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	lastHB  = time.Date(2026, 3, 1, 12, 59, 30, 0, time.UTC)
	fixture = []Agent{
		{ID: "fabrikam/agent-01", Tenant: "fabrikam", Name: "agent-01", State: AgentOffline},
		{ID: "contoso/agent-02", Tenant: "contoso", Name: "agent-02", State: AgentUnknown},
		{ID: "contoso/agent-01", Tenant: "contoso", Name: "agent-01", State: AgentOnline, Version: "0.3.1", LastSeen: &lastHB, Labels: map[string]string{"env": "prod"}},
	}
)

func newTestServer(t *testing.T, mut func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	cfg := Config{
		Version:        "1.2.3",
		StartedAt:      t0,
		Auth:           fakeAuth{},
		Agents:         NewStaticAgents(fixture),
		RelayConnected: func() bool { return true },
		Now:            func() time.Time { return t0.Add(time.Hour + 1500*time.Millisecond) },
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
		EventInterval:  20 * time.Millisecond,
	}
	if mut != nil {
		mut(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	t.Cleanup(s.Shutdown)
	return s, srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, url, cred string) response {
	t.Helper()
	return send(t, method, url, cred, "", nil)
}

// send makes a request with an optional body.
func send(t *testing.T, method, url, cred, contentType string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	require.NoError(t, err)
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{resp.StatusCode, resp.Header, data}
}

func TestEndpoints(t *testing.T) {
	_, srv := newTestServer(t, nil)
	tests := []struct {
		name, method, path, cred string
		wantStatus               int
		wantCode                 string // error code, for errors
		golden                   string // golden body, for successes
	}{
		{"health needs no credential", "GET", "/healthz", "", 200, "", "health.json"},
		{"status", "GET", "/v1/status", goodKey, 200, "", "status.json"},
		{"agents sorted", "GET", "/v1/agents", goodKey, 200, "", "agents.json"},
		{"agents of one tenant", "GET", "/v1/agents?tenant=contoso", goodKey, 200, "", "agents_contoso.json"},
		{"agents of unknown tenant", "GET", "/v1/agents?tenant=nobody", goodKey, 200, "", "agents_none.json"},
		{"status without credential", "GET", "/v1/status", "", 401, CodeUnauthorized, ""},
		{"status with bad key", "GET", "/v1/status", "wrong", 401, CodeUnauthorized, ""},
		{"agents with bad key", "GET", "/v1/agents", "wrong", 401, CodeUnauthorized, ""},
		{"openapi needs a credential", "GET", "/v1/openapi.json", "", 401, CodeUnauthorized, ""},
		{"events needs a credential", "GET", "/v1/events", "", 401, CodeUnauthorized, ""},
		{"forbidden", "GET", "/v1/agents", forbiddenKey, 403, CodeForbidden, ""},
		{"unknown path", "GET", "/v1/nope", goodKey, 404, CodeNotFound, ""},
		{"unversioned path", "GET", "/status", goodKey, 404, CodeNotFound, ""},
		{"wrong method", "DELETE", "/v1/agents", goodKey, 405, CodeMethodNotAllowed, ""},
		{"post status", "POST", "/v1/status", goodKey, 405, CodeMethodNotAllowed, ""},
		{"bad interval", "GET", "/v1/events?interval=1ms", goodKey, 400, CodeBadRequest, ""},
		{"unparsable interval", "GET", "/v1/events?interval=soon", goodKey, 400, CodeBadRequest, ""},
		{"events without upgrade", "GET", "/v1/events", goodKey, 426, CodeUpgradeRequired, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, tt.method, srv.URL+tt.path, tt.cred)
			assert.Equal(t, tt.wantStatus, r.status, "body: %s", r.body)
			assert.NotEmpty(t, r.header.Get("X-Request-Id"))
			if tt.wantCode != "" {
				assert.Equal(t, "application/json", r.header.Get("Content-Type"))
				var eb ErrorBody
				require.NoError(t, json.Unmarshal(r.body, &eb), "error bodies are JSON: %s", r.body)
				assert.Equal(t, tt.wantCode, eb.Error.Code)
				assert.NotEmpty(t, eb.Error.Message)
				assert.Equal(t, r.header.Get("X-Request-Id"), eb.Error.RequestID)
			}
			switch r.status {
			case 401:
				assert.Equal(t, `Bearer error="invalid_token"`, r.header.Get("WWW-Authenticate"))
			case 405:
				assert.Equal(t, "GET", r.header.Get("Allow"))
			}
			if tt.golden != "" {
				checkGolden(t, tt.golden, r.body)
			}
		})
	}
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, json.Indent(&buf, got, "", "  "))
	golden.Check(t, name, buf.Bytes())
}

func TestStatusWithoutRelay(t *testing.T) {
	_, srv := newTestServer(t, func(c *Config) { c.RelayConnected = nil })
	var st Status
	require.NoError(t, json.Unmarshal(do(t, "GET", srv.URL+"/v1/status", goodKey).body, &st))
	assert.False(t, st.RelayConnected)
	assert.Equal(t, int64(3601), st.UptimeSeconds)
	assert.Equal(t, 3, st.AgentCount)
}

func TestStoreFailureIsAnOpaque500(t *testing.T) {
	_, srv := newTestServer(t, func(c *Config) { c.Agents = failingAgents{} })
	for _, path := range []string{"/v1/agents", "/v1/status"} {
		r := do(t, "GET", srv.URL+path, goodKey)
		assert.Equal(t, 500, r.status)
		assert.Contains(t, string(r.body), `"code":"internal"`)
		assert.NotContains(t, string(r.body), "secret-host", "internal details stay in the log")
	}
}

func TestPanicBecomes500(t *testing.T) {
	_, srv := newTestServer(t, func(c *Config) { c.RelayConnected = func() bool { panic("boom") } })
	r := do(t, "GET", srv.URL+"/v1/status", goodKey)
	assert.Equal(t, 500, r.status)
	assert.Contains(t, string(r.body), `"code":"internal"`)
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no auth", Config{Agents: NewStaticAgents(nil)}, "Auth"},
		{"no agents", Config{Auth: fakeAuth{}}, "Agents"},
		{"negative interval", Config{Auth: fakeAuth{}, Agents: NewStaticAgents(nil), EventInterval: -1}, "EventInterval"},
		{"negative ping", Config{Auth: fakeAuth{}, Agents: NewStaticAgents(nil), PingInterval: -1}, "PingInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			assert.ErrorContains(t, err, tt.want)
		})
	}
}

func dialEvents(t *testing.T, srv *httptest.Server, query string) *websocket.Conn {
	t.Helper()
	return dialEventsAs(t, srv, query, goodKey)
}

func dialEventsAs(t *testing.T, srv *httptest.Server, query, cred string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/v1/events"+query, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + cred}},
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func readEvent(t *testing.T, c *websocket.Conn) Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	typ, data, err := c.Read(ctx)
	require.NoError(t, err)
	require.Equal(t, websocket.MessageText, typ)
	var ev Event
	require.NoError(t, json.Unmarshal(data, &ev))
	return ev
}

func TestEventsStream(t *testing.T) {
	_, srv := newTestServer(t, nil)
	c := dialEvents(t, srv, "?interval=100ms")
	for want := int64(1); want <= 3; want++ {
		ev := readEvent(t, c)
		assert.Equal(t, EventStatus, ev.Type)
		assert.Equal(t, want, ev.Seq)
		require.NotNil(t, ev.Status)
		assert.Equal(t, 3, ev.Status.AgentCount)
	}
	require.NoError(t, c.Close(websocket.StatusNormalClosure, ""))
}

func TestEventsPingKeepsStreamAlive(t *testing.T) {
	_, srv := newTestServer(t, func(c *Config) { c.PingInterval = 10 * time.Millisecond })
	var pings atomic.Int32
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1)+"/v1/events?interval=100ms", &websocket.DialOptions{
		HTTPHeader:     http.Header{"Authorization": {"Bearer " + goodKey}},
		OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.CloseNow() })
	// The client answers pings while it reads; the server waits for each
	// pong and ends the stream when one does not come.
	for i := 0; pings.Load() < 3; i++ {
		require.Less(t, i, 20, "%d pings in %d events 100 ms apart, pinging every 10 ms", pings.Load(), i)
		readEvent(t, c)
	}
	readEvent(t, c) // the stream goes on across them
}

func TestEventsEndWithGoingAwayOnShutdown(t *testing.T) {
	s, srv := newTestServer(t, nil)
	c := dialEvents(t, srv, "?interval=1m")
	readEvent(t, c)
	s.Shutdown()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	assert.Equal(t, websocket.StatusGoingAway, websocket.CloseStatus(err), "err: %v", err)
}

func TestAgentsListMarksVersionsOtherThanTheDeployedOne(t *testing.T) {
	_, srv := newTestServer(t, func(c *Config) { c.DeployedAgentVersion = "0.4.0" })
	r := do(t, http.MethodGet, srv.URL+"/v1/agents", goodKey)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var list AgentList
	require.NoError(t, json.Unmarshal(r.body, &list))
	assert.Equal(t, "0.4.0", list.DeployedVersion)
	outdated := map[string]bool{}
	for _, a := range list.Agents {
		outdated[a.ID] = a.Outdated
	}
	// Only the agent that reported a version can be outdated.
	assert.Equal(t, map[string]bool{"contoso/agent-01": true, "contoso/agent-02": false, "fabrikam/agent-01": false}, outdated)

	_, srv = newTestServer(t, func(c *Config) { c.DeployedAgentVersion = "0.3.1" })
	r = do(t, http.MethodGet, srv.URL+"/v1/agents", goodKey)
	list = AgentList{}
	require.NoError(t, json.Unmarshal(r.body, &list))
	for _, a := range list.Agents {
		assert.False(t, a.Outdated, a.ID)
	}
}
