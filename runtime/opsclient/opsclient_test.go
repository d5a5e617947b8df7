package opsclient

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/opsapi"
)

// newServer runs the real API with a real keys file and returns the server,
// its API handler and a valid API key.
func newServer(t *testing.T) (*httptest.Server, *opsapi.Server, string) {
	t.Helper()
	auth, key := newAuth(t)
	api, err := opsapi.New(opsapi.Config{
		Version: "test",
		Auth:    auth,
		Agents: opsapi.NewStaticAgents([]opsapi.Agent{
			{ID: "contoso/a1", Tenant: "contoso", Name: "a1", State: opsapi.AgentOnline},
			{ID: "fabrikam/a1", Tenant: "fabrikam", Name: "a1", State: opsapi.AgentOffline},
		}),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	t.Cleanup(api.Shutdown)
	return srv, api, key
}

// newAuth is a real authenticator over a keys file with one API key.
func newAuth(t *testing.T) (*operatorauth.Authenticator, string) {
	t.Helper()
	f := &operatorauth.KeysFile{Version: operatorauth.KeysFileVersion}
	key, err := f.AddKey("tester", "", operatorauth.Grants{Admin: true}, time.Now())
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "keys.json")
	require.NoError(t, f.Save(path))
	auth, err := operatorauth.New(context.Background(), operatorauth.Config{KeysFile: path})
	require.NoError(t, err)
	return auth, key
}

func newClient(t *testing.T, base, cred string) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: base, Credential: cred, Timeout: 5 * time.Second, UserAgent: "opsclient-test"})
	require.NoError(t, err)
	return c
}

func TestStatusAndAgents(t *testing.T) {
	srv, _, key := newServer(t)
	c := newClient(t, srv.URL, key)
	ctx := context.Background()

	st, err := c.Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, "test", st.Version)
	assert.Equal(t, 2, st.AgentCount)

	agents, err := c.Agents(ctx, "")
	require.NoError(t, err)
	assert.Len(t, agents, 2)
	agents, err = c.Agents(ctx, "fabrikam")
	require.NoError(t, err)
	require.Len(t, agents, 1)
	assert.Equal(t, "fabrikam/a1", agents[0].ID)
}

func TestAPIErrors(t *testing.T) {
	srv, _, key := newServer(t)
	ctx := context.Background()

	_, err := newClient(t, srv.URL, "obk_tester.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").Status(ctx)
	require.ErrorIs(t, err, ErrUnauthorized)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, opsapi.CodeUnauthorized, ae.Code)
	assert.NotEmpty(t, ae.RequestID)
	assert.NotContains(t, err.Error(), key)

	err = newClient(t, srv.URL, "wrong").Events(ctx, 0, func(opsapi.Event) error { return nil })
	assert.ErrorIs(t, err, ErrUnauthorized, "a refused WebSocket upgrade reports the API error")

	// A proxy's non-JSON error page still gives a useful error.
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "<html>blocked by proxy</html>")
	}))
	defer proxy.Close()
	_, err = newClient(t, proxy.URL, key).Agents(ctx, "")
	require.ErrorIs(t, err, ErrForbidden)
	assert.Contains(t, err.Error(), "blocked by proxy")

	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{not json") }))
	defer garbage.Close()
	_, err = newClient(t, garbage.URL, key).Status(ctx)
	assert.ErrorContains(t, err, "cannot decode response")
}

func TestUnreachableAndTimeout(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	_, err := newClient(t, url, "k").Status(context.Background())
	assert.ErrorContains(t, err, "connection refused")

	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	c, err := New(Config{BaseURL: slow.URL, Credential: "k", Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	_, err = c.Status(context.Background())
	assert.ErrorContains(t, err, "timed out")
}

func TestEvents(t *testing.T) {
	srv, api, key := newServer(t)
	c := newClient(t, srv.URL, key)

	var got []opsapi.Event
	stop := errors.New("enough")
	err := c.Events(context.Background(), 100*time.Millisecond, func(ev opsapi.Event) error {
		got = append(got, ev)
		if len(got) == 3 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Len(t, got, 3)
	assert.Equal(t, []int64{1, 2, 3}, []int64{got[0].Seq, got[1].Seq, got[2].Seq})
	assert.Equal(t, 2, got[2].Status.AgentCount)

	// Cancelling the context ends the stream without an error (once it
	// is open: a deadline that ends the dial is an error).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	assert.NoError(t, c.Events(ctx, 100*time.Millisecond, func(opsapi.Event) error { cancel(); return nil }))

	// Server shutdown is reported as ErrStreamEnded, so callers reconnect.
	first := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- c.Events(context.Background(), time.Minute, func(opsapi.Event) error { close(first); return nil })
	}()
	select {
	case <-first:
	case err := <-done:
		t.Fatalf("the stream ended before its first event: %v", err)
	}
	api.Shutdown()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, ErrStreamEnded)
	case <-time.After(30 * time.Second):
		t.Fatal("stream did not end on server shutdown")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{BaseURL: "relay", Credential: "k"}, "BaseURL"},
		{Config{BaseURL: "ftp://x", Credential: "k"}, "BaseURL"},
		{Config{BaseURL: "http://relay"}, "Credential or TokenSource"},
		{Config{BaseURL: "http://relay", Credential: "k", TokenSource: func(context.Context) (string, error) { return "", nil }}, "exactly one"},
		{Config{BaseURL: "http://relay", Credential: "k", Timeout: -1}, "Timeout"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		assert.ErrorContains(t, err, tt.want)
	}
}

func TestTokenSource(t *testing.T) {
	srv, _, key := newServer(t)
	calls := 0
	c, err := New(Config{BaseURL: srv.URL, TokenSource: func(ctx context.Context) (string, error) {
		calls++
		return key, nil
	}})
	require.NoError(t, err)
	_, err = c.Status(context.Background())
	require.NoError(t, err)
	_, err = c.Agents(context.Background(), "")
	require.NoError(t, err)
	assert.Equal(t, 2, calls, "asked for each request")

	failing, err := New(Config{BaseURL: srv.URL, TokenSource: func(ctx context.Context) (string, error) {
		return "", errors.New("run az login")
	}})
	require.NoError(t, err)
	_, err = failing.Status(context.Background())
	assert.ErrorIs(t, err, ErrNoToken)
	assert.ErrorContains(t, err, "run az login")
	err = failing.Events(context.Background(), 0, func(opsapi.Event) error { return nil })
	assert.ErrorIs(t, err, ErrNoToken)
}
