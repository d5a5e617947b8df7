package relay_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/relay/relaytest"
)

// testLogger sends the package's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newRelay(t *testing.T, opts relaytest.Options) *relaytest.Server {
	s := relaytest.NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func listenerConfig(t *testing.T, s *relaytest.Server, rights ...relaytest.Right) relay.ListenerConfig {
	if len(rights) == 0 {
		rights = []relaytest.Right{relaytest.Listen}
	}
	name, key := s.NewRule(rights...)
	return relay.ListenerConfig{
		Namespace:        s.Namespace(),
		HybridConnection: "hc",
		Credential:       relay.NewSASCredential(name, key),
		Insecure:         true,
		MinBackoff:       20 * time.Millisecond,
		MaxBackoff:       200 * time.Millisecond,
		Logger:           testLogger(t),
	}
}

func senderConfig(s *relaytest.Server, rights ...relaytest.Right) relay.SenderConfig {
	if len(rights) == 0 {
		rights = []relaytest.Right{relaytest.Send}
	}
	name, key := s.NewRule(rights...)
	return relay.SenderConfig{Namespace: s.Namespace(), HybridConnection: "hc", Credential: relay.NewSASCredential(name, key), Insecure: true}
}

func newSender(t *testing.T, s *relaytest.Server) *relay.Sender {
	snd, err := relay.NewSender(senderConfig(s))
	require.NoError(t, err)
	t.Cleanup(snd.CloseIdleConnections)
	return snd
}

// serve runs an http.Server over a new listener.
func serve(t *testing.T, cfg relay.ListenerConfig, h http.Handler) *relay.Listener {
	l, err := relay.Listen(context.Background(), cfg)
	require.NoError(t, err)
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return l
}

// countOffline counts the listener's offline transitions.
func countOffline(cfg *relay.ListenerConfig) *atomic.Int32 {
	var n atomic.Int32
	cfg.OnStatus = func(online bool, err error) {
		if !online {
			n.Add(1)
		}
	}
	return &n
}

// rawListener listens without an http.Server, for tests that take streams
// from Accept themselves.
func rawListener(t *testing.T, s *relaytest.Server) *relay.Listener {
	l, err := relay.Listen(context.Background(), listenerConfig(t, s))
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// streamPair opens a relayed stream and returns the sender's and the
// listener's ends.
func streamPair(t *testing.T, s *relaytest.Server, l *relay.Listener) (sender, listener net.Conn) {
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	c, err := newSender(t, s).Dial(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	select {
	case lc := <-accepted:
		t.Cleanup(func() { _ = lc.Close() })
		return c, lc
	case <-time.After(5 * time.Second):
		t.Fatal("no stream accepted")
		return nil, nil
	}
}

// echoHandler answers with what it got, plus a large body on /big?n=.
func echoHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Query", r.URL.RawQuery)
		w.Header().Set("X-Authorization", r.Header.Get("Authorization"))
		w.Header().Set("X-Remote", r.RemoteAddr)
		w.Header().Set("X-Sum", fmt.Sprintf("%x", sha256.Sum256(b)))
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(b)
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		var n int
		_, _ = fmt.Sscan(r.URL.Query().Get("n"), &n)
		_, _ = w.Write(bytes.Repeat([]byte("x"), n))
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "app says no", http.StatusNotFound)
	})
	mux.HandleFunc("/badgateway", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream", http.StatusBadGateway)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/follow", func(w http.ResponseWriter, r *http.Request) {
		f := w.(http.Flusher)
		for i := range 5 {
			_, _ = fmt.Fprintf(w, "line %d\n", i)
			f.Flush()
			time.Sleep(20 * time.Millisecond)
		}
	})
	return mux
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestHTTPModeRoundTrips(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	serve(t, listenerConfig(t, s), echoHandler())
	client := &http.Client{Transport: newSender(t, s)}

	tests := []struct {
		name       string
		method     string
		path       string
		body       []byte
		wantStatus int
		wantLen    int
		rendezvous bool
	}{
		{name: "small post", method: "POST", path: "/echo?a=1&b=two", body: []byte("hello"), wantStatus: 201, wantLen: 5},
		{name: "empty get", method: "GET", path: "/echo", wantStatus: 201, wantLen: 0},
		{name: "exactly the control limit", method: "POST", path: "/echo", body: payload(64 * 1024), wantStatus: 201, wantLen: 64 * 1024},
		{name: "request over the control limit", method: "POST", path: "/echo", body: payload(64*1024 + 1), wantStatus: 201, wantLen: 64*1024 + 1, rendezvous: true},
		{name: "large request and response", method: "PUT", path: "/echo", body: payload(3 << 20), wantStatus: 201, wantLen: 3 << 20, rendezvous: true},
		{name: "large response only", method: "GET", path: "/big?n=1000000", wantStatus: 200, wantLen: 1000000},
		{name: "app 404 is a response, not a relay error", method: "GET", path: "/teapot", wantStatus: 404, wantLen: len("app says no\n")},
		{name: "app 502 becomes 500", method: "GET", path: "/badgateway", wantStatus: 500, wantLen: len("upstream\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats().RendezvousRequests
			req, err := http.NewRequest(tt.method, "http://ops"+tt.path, bytes.NewReader(tt.body))
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer app-token")
			resp, err := client.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			assert.Equal(t, tt.wantStatus, resp.StatusCode)
			assert.Len(t, got, tt.wantLen)
			if tt.path == "/echo" || strings.HasPrefix(tt.path, "/echo?") {
				assert.True(t, bytes.Equal(tt.body, got), "body round-trips unchanged")
				assert.Equal(t, fmt.Sprintf("%x", sha256.Sum256(tt.body)), resp.Header.Get("X-Sum"))
				assert.Equal(t, "/echo", resp.Header.Get("X-Path"), "the hybrid connection name is not part of the app's path")
				assert.Equal(t, "Bearer app-token", resp.Header.Get("X-Authorization"), "the app's Authorization header passes through")
				assert.Regexp(t, `^127\.0\.0\.1:[0-9]+$`, resp.Header.Get("X-Remote"), "the sender's address, as the relay reports it")
			}
			if tt.path == "/echo?a=1&b=two" {
				assert.Equal(t, "a=1&b=two", resp.Header.Get("X-Query"))
			}
			if tt.rendezvous {
				assert.Greater(t, s.Stats().RendezvousRequests, before, "the relay moved the request to a rendezvous")
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	serve(t, listenerConfig(t, s), echoHandler())
	client := &http.Client{Transport: newSender(t, s)}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := payload(100 + i*3000) // some over the control limit
			resp, err := client.Post("http://ops/echo", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if !bytes.Equal(got, body) {
				errs <- fmt.Errorf("request %d: body mismatch (%d bytes back, %d sent)", i, len(got), len(body))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestStreamTransportFollowsAStream(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	serve(t, listenerConfig(t, s), echoHandler())
	snd := newSender(t, s)
	client := &http.Client{Transport: snd.StreamTransport()}

	resp, err := client.Get("http://ops/follow")
	require.NoError(t, err)
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	require.NoError(t, sc.Err())
	assert.Equal(t, []string{"line 0", "line 1", "line 2", "line 3", "line 4"}, lines)

	// The same paths work over the stream, with large bodies and no
	// control-channel limit involved.
	body := payload(2 << 20)
	resp, err = client.Post("http://ops/echo?x=1", "application/octet-stream", bytes.NewReader(body))
	require.NoError(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 201, resp.StatusCode)
	assert.Equal(t, "/echo", resp.Header.Get("X-Path"))
	assert.Equal(t, body, got)
}

func TestRawStreamAndConnectPath(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	l := rawListener(t, s)
	paths := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		rc := c.(*relay.Conn)
		paths <- rc.Request().Path + " from " + rc.RemoteAddr().String()
		_, _ = io.Copy(c, c)
		_ = c.Close()
	}()
	snd := newSender(t, s)
	ws, err := snd.DialWebSocket(context.Background(), "/runs/42/logs?follow=1", http.Header{"X-Trace": {"abc"}})
	require.NoError(t, err)
	assert.Regexp(t, `^/runs/42/logs\?follow=1 from 127\.0\.0\.1:[0-9]+$`, <-paths, "the path and the sender's address, as the relay reports it")
	_ = ws.CloseNow()

	conn, lc := streamPair(t, s, l)
	go func() { _, _ = io.Copy(lc, lc) }()
	msg := payload(1 << 20)
	go func() { _, _ = conn.Write(msg) }()
	got := make([]byte, len(msg))
	_, err = io.ReadFull(conn, got)
	require.NoError(t, err)
	assert.Equal(t, msg, got)
}

func TestNoListener(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	snd := newSender(t, s)
	_, err := (&http.Client{Transport: snd}).Get("http://ops/echo")
	require.ErrorIs(t, err, relay.ErrNoListener)
	var se *relay.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 502, se.StatusCode)

	_, err = snd.Dial(context.Background())
	assert.ErrorIs(t, err, relay.ErrNoListener)
	_, err = (&http.Client{Transport: snd.StreamTransport()}).Get("http://ops/echo")
	assert.ErrorIs(t, err, relay.ErrNoListener)
}

func TestBadCredentials(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	ctx := context.Background()

	wrongKey := listenerConfig(t, s)
	name, _ := s.NewRule(relaytest.Listen)
	wrongKey.Credential = relay.NewSASCredential(name, "not-the-key")
	_, err := relay.Listen(ctx, wrongKey)
	require.ErrorIs(t, err, relay.ErrUnauthorized)
	var se *relay.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 401, se.StatusCode)
	assert.True(t, se.Permanent())

	sendOnly := listenerConfig(t, s, relaytest.Send)
	_, err = relay.Listen(ctx, sendOnly)
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 403, se.StatusCode, "a Send rule cannot listen")

	expired := listenerConfig(t, s)
	expired.Credential = relay.NewStaticSAS(relay.SignSAS(relay.ResourceURI(s.Host, "hc"), name, "k", time.Now().Add(-time.Minute)))
	_, err = relay.Listen(ctx, expired)
	assert.ErrorIs(t, err, relay.ErrUnauthorized)

	otherEntity := listenerConfig(t, s)
	otherEntity.HybridConnection = "nope"
	_, err = relay.Listen(ctx, otherEntity)
	assert.ErrorIs(t, err, relay.ErrNotFound)

	// Senders: a Listen rule cannot send, in either mode.
	serve(t, listenerConfig(t, s), echoHandler())
	snd, err := relay.NewSender(senderConfig(s, relaytest.Listen))
	require.NoError(t, err)
	_, err = (&http.Client{Transport: snd}).Get("http://ops/echo")
	assert.ErrorIs(t, err, relay.ErrUnauthorized)
	_, err = snd.Dial(ctx)
	assert.ErrorIs(t, err, relay.ErrUnauthorized)
}

// An entity-level rule grants access to its hybrid connection only.
func TestEntityRuleScope(t *testing.T) {
	s := newRelay(t, relaytest.Options{HybridConnections: []string{"hc", "other"}})
	require.NoError(t, s.AddEntityRule("other", "only-other", "secret", relaytest.Listen))
	cfg := listenerConfig(t, s)
	cfg.Credential = relay.NewSASCredential("only-other", "secret")
	_, err := relay.Listen(context.Background(), cfg)
	assert.ErrorIs(t, err, relay.ErrUnauthorized)
	cfg.HybridConnection = "other"
	l, err := relay.Listen(context.Background(), cfg)
	require.NoError(t, err)
	_ = l.Close()
}

func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	_ = ln.Close()
	ns, err := relay.ParseNamespace(addr)
	require.NoError(t, err)
	cred := relay.NewSASCredential("k", "v")

	_, err = relay.Listen(context.Background(), relay.ListenerConfig{Namespace: ns, HybridConnection: "hc", Credential: cred, Insecure: true})
	assert.ErrorIs(t, err, relay.ErrUnreachable)
	snd, err := relay.NewSender(relay.SenderConfig{Namespace: ns, HybridConnection: "hc", Credential: cred, Insecure: true})
	require.NoError(t, err)
	_, err = (&http.Client{Transport: snd}).Get("http://ops/x")
	assert.ErrorIs(t, err, relay.ErrUnreachable)
	_, err = snd.Dial(context.Background())
	assert.ErrorIs(t, err, relay.ErrUnreachable)
}

func TestInsecureMustBeExplicit(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	cfg.Insecure = false
	_, err := relay.Listen(context.Background(), cfg)
	assert.ErrorIs(t, err, relay.ErrUnreachable, "a TLS handshake against a plain-text relay fails")
	assert.Zero(t, s.Stats().ListenAttempts, "nothing was sent in plain text")
}

func TestTLSRelay(t *testing.T) {
	s := newRelay(t, relaytest.Options{TLS: true})
	cfg := listenerConfig(t, s)
	cfg.Insecure = false
	cfg.TLSConfig = s.ClientTLSConfig()
	serve(t, cfg, echoHandler())
	sc := senderConfig(s)
	sc.Insecure = false
	sc.TLSConfig = s.ClientTLSConfig()
	snd, err := relay.NewSender(sc)
	require.NoError(t, err)
	resp, err := (&http.Client{Transport: snd}).Post("http://ops/echo", "text/plain", strings.NewReader("over tls"))
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "over tls", string(b))
}

func get(t *testing.T, client *http.Client, path string) (string, error) {
	t.Helper()
	resp, err := client.Get("http://ops" + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestReconnectAfterDrop(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	offline := countOffline(&cfg)
	l := serve(t, cfg, echoHandler())
	client := &http.Client{Transport: newSender(t, s)}
	_, err := get(t, client, "/big?n=3")
	require.NoError(t, err)

	for round := range 3 {
		require.Equal(t, 1, s.DropListeners("hc"), "round %d", round)
		require.Eventually(t, func() bool {
			return offline.Load() == int32(round+1) && s.ListenerCount("hc") == 1 && l.Online()
		}, 5*time.Second, 10*time.Millisecond)
		body, err := get(t, client, "/big?n=3")
		require.NoError(t, err, "round %d", round)
		assert.Equal(t, "xxx", body)
	}
	assert.Equal(t, int32(3), offline.Load())
	assert.NoError(t, l.Err())
}

func TestGivesUpOnPermanentFailure(t *testing.T) {
	t.Run("entity deleted", func(t *testing.T) {
		s := newRelay(t, relaytest.Options{})
		l := serve(t, listenerConfig(t, s), echoHandler())
		s.DeleteHybridConnection("hc")
		select {
		case <-l.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("listener did not give up")
		}
		err := l.Err()
		assert.ErrorIs(t, err, relay.ErrNotFound)
		var lce *relay.ListenerClosedError
		assert.ErrorAs(t, err, &lce)
		_, err = l.Accept()
		assert.ErrorIs(t, err, relay.ErrNotFound)
	})
	t.Run("key rotated", func(t *testing.T) {
		s := newRelay(t, relaytest.Options{})
		cfg := listenerConfig(t, s)
		cfg.Credential = relay.NewSASCredential("rotating", "old")
		s.AddRule("rotating", "old", relaytest.Listen)
		l := serve(t, cfg, echoHandler())
		before := s.Stats().ListenAttempts
		s.AddRule("rotating", "new", relaytest.Listen)
		s.DropListeners("hc")
		select {
		case <-l.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("listener did not give up")
		}
		assert.ErrorIs(t, l.Err(), relay.ErrUnauthorized)
		time.Sleep(300 * time.Millisecond)
		assert.LessOrEqual(t, s.Stats().ListenAttempts-before, int64(1), "no retry storm on bad credentials")
	})
}

func TestTokenRenewalKeepsTheChannel(t *testing.T) {
	t.Parallel() // waits on real token lifetimes or processes; touches no package setting
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	name, key := s.NewRule(relaytest.Listen)
	// 3 s tokens (whole seconds: 2 to 3 s left when minted), renewed a
	// quarter of their life before expiry on the open channel. The relay
	// closes a listener whose token expires unrenewed; the second renewal
	// comes after the first token expired.
	cfg.Credential = relay.NewSASCredential(name, key).WithTTL(3 * time.Second)
	offline := countOffline(&cfg)
	serve(t, cfg, echoHandler())
	client := &http.Client{Transport: newSender(t, s)}
	deadline := time.Now().Add(30 * time.Second)
	n := 0
	for s.Stats().Renewals < 2 {
		require.True(t, time.Now().Before(deadline), "%d renewals in 30 s", s.Stats().Renewals)
		_, err := get(t, client, "/big?n=10")
		require.NoError(t, err, "request %d", n)
		n++
		time.Sleep(50 * time.Millisecond)
	}
	_, err := get(t, client, "/big?n=10")
	require.NoError(t, err, "a request past the first token's expiry")
	assert.Zero(t, offline.Load(), "the channel never dropped")
}

func TestRefusedRenewalReconnects(t *testing.T) {
	t.Parallel() // waits on real token lifetimes or processes; touches no package setting
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	name, key := s.NewRule(relaytest.Listen)
	cfg.Credential = relay.NewSASCredential(name, key).WithTTL(2 * time.Second)
	offline := countOffline(&cfg)
	l := serve(t, cfg, echoHandler())
	s.RefuseRenewals(true)
	require.Eventually(t, func() bool { return offline.Load() > 0 }, 5*time.Second, 20*time.Millisecond, "1008 closed the channel")
	s.RefuseRenewals(false)
	require.Eventually(t, l.Online, 5*time.Second, 20*time.Millisecond)
	_, err := get(t, &http.Client{Transport: newSender(t, s)}, "/big?n=1")
	assert.NoError(t, err)
}

func TestListenerLimitAndSpread(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	ctx := context.Background()
	var served [relaytest.MaxListeners]atomic.Int32
	for i := range relaytest.MaxListeners {
		cfg := listenerConfig(t, s)
		cfg.KeepAlive = -1
		serve(t, cfg, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served[i].Add(1) }))
	}
	assert.Equal(t, relaytest.MaxListeners, s.ListenerCount("hc"))
	_, err := relay.Listen(ctx, listenerConfig(t, s))
	assert.ErrorIs(t, err, relay.ErrQuotaExceeded, "the 26th listener is refused")

	client := &http.Client{Transport: newSender(t, s)}
	for range 100 {
		_, err := get(t, client, "/")
		require.NoError(t, err)
	}
	used := 0
	for i := range served {
		if served[i].Load() > 0 {
			used++
		}
	}
	assert.Greater(t, used, 5, "requests spread over several listeners")
}

func TestGateRejects(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	cfg.Gate = func(_ context.Context, r *relay.ConnectRequest) error {
		if r.Header.Get("X-Ticket") != "ok" {
			return relay.Reject(http.StatusForbidden, "no ticket")
		}
		return nil
	}
	serve(t, cfg, echoHandler())
	snd := newSender(t, s)
	_, err := snd.DialWebSocket(context.Background(), "", nil)
	var se *relay.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, 403, se.StatusCode)
	assert.Contains(t, se.Description, "no ticket")
	ws, err := snd.DialWebSocket(context.Background(), "", http.Header{"X-Ticket": {"ok"}})
	require.NoError(t, err)
	_ = ws.CloseNow()
}

func TestRequestDeadline(t *testing.T) {
	s := newRelay(t, relaytest.Options{RequestTimeout: 300 * time.Millisecond})
	serve(t, listenerConfig(t, s), echoHandler())
	_, err := get(t, &http.Client{Transport: newSender(t, s)}, "/slow")
	assert.ErrorIs(t, err, relay.ErrTimeout)
}

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func TestEntraCredentials(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	s.AddBearerToken("listener-jwt", time.Time{}, relaytest.Listen)
	s.AddBearerToken("sender-jwt", time.Time{}, relaytest.Send)
	cfg := listenerConfig(t, s)
	cfg.Credential = relay.NewEntraCredential(staticToken("listener-jwt"))
	serve(t, cfg, echoHandler())
	sc := senderConfig(s)
	sc.Credential = relay.NewEntraCredential(staticToken("sender-jwt"))
	snd, err := relay.NewSender(sc)
	require.NoError(t, err)
	body, err := get(t, &http.Client{Transport: snd}, "/big?n=2")
	require.NoError(t, err)
	assert.Equal(t, "xx", body)

	sc.Credential = relay.NewEntraCredential(staticToken("listener-jwt"))
	snd, err = relay.NewSender(sc)
	require.NoError(t, err)
	_, err = get(t, &http.Client{Transport: snd}, "/big?n=2")
	assert.ErrorIs(t, err, relay.ErrUnauthorized, "a Listener role cannot send")
}

func TestConnectionStringConfig(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	ns, err := relay.ParseNamespace(s.ConnectionString("hc", relaytest.Listen))
	require.NoError(t, err)
	l := serve(t, relay.ListenerConfig{Namespace: ns, Insecure: true}, echoHandler())
	assert.True(t, l.Online())
	ns, err = relay.ParseNamespace(s.ConnectionString("hc", relaytest.Send))
	require.NoError(t, err)
	body, err := get(t, &http.Client{Transport: relay.NewTransport(relay.SenderConfig{Namespace: ns, Insecure: true})}, "/big?n=4")
	require.NoError(t, err)
	assert.Equal(t, "xxxx", body)
}

func TestConfigValidation(t *testing.T) {
	ns := relay.Namespace{Host: "myns.servicebus.windows.net"}
	cred := relay.NewSASCredential("a", "b")
	tests := []struct {
		name string
		cfg  relay.ListenerConfig
		want string
	}{
		{"no namespace", relay.ListenerConfig{HybridConnection: "hc", Credential: cred}, "Namespace"},
		{"no entity", relay.ListenerConfig{Namespace: ns, Credential: cred}, "HybridConnection"},
		{"bad entity", relay.ListenerConfig{Namespace: ns, HybridConnection: "a b", Credential: cred}, "HybridConnection"},
		{"no credential", relay.ListenerConfig{Namespace: ns, HybridConnection: "hc"}, "Credential"},
		{"backoff", relay.ListenerConfig{Namespace: ns, HybridConnection: "hc", Credential: cred, MinBackoff: time.Minute, MaxBackoff: time.Second}, "MinBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
	_, err := relay.NewTransport(relay.SenderConfig{}).RoundTrip(&http.Request{})
	assert.ErrorContains(t, err, "Namespace")
}

func TestKeepAliveDetectsSilentRelay(t *testing.T) {
	t.Parallel() // waits on real token lifetimes or processes; touches no package setting
	s := newRelay(t, relaytest.Options{})
	cfg := listenerConfig(t, s)
	cfg.KeepAlive = 100 * time.Millisecond
	offline := countOffline(&cfg)
	l := serve(t, cfg, echoHandler())
	require.Eventually(t, func() bool { return s.Stats().Pings >= 3 }, 3*time.Second, 20*time.Millisecond, "listener pings")
	assert.Zero(t, offline.Load(), "answered pings keep the channel")

	s.IgnorePings(true)
	require.Eventually(t, func() bool { return offline.Load() > 0 }, 3*time.Second, 20*time.Millisecond, "an unanswered ping forces a reconnect")
	s.IgnorePings(false)
	require.Eventually(t, func() bool { return l.Online() && s.ListenerCount("hc") == 1 }, 5*time.Second, 20*time.Millisecond)
	_, err := get(t, &http.Client{Transport: newSender(t, s)}, "/big?n=1")
	assert.NoError(t, err)
}

func TestCloseLeavesAcceptedStreamsOpen(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	l := rawListener(t, s)
	c, lc := streamPair(t, s, l)

	require.NoError(t, l.Close())
	require.Eventually(t, func() bool { return s.ListenerCount("hc") == 0 }, time.Second, 5*time.Millisecond)
	_, err := l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	assert.ErrorIs(t, l.Err(), net.ErrClosed)

	go func() { _, _ = io.Copy(lc, lc) }()
	_, err = c.Write([]byte("still here"))
	require.NoError(t, err)
	buf := make([]byte, 10)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(buf))
}

// A past read deadline (what http.Server sets on every hijack) interrupts the
// waiting Read only; the stream keeps working.
func TestStreamReadDeadlines(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	c, lc := streamPair(t, s, rawListener(t, s))

	buf := make([]byte, 5)
	require.NoError(t, lc.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
	_, err := lc.Read(buf)
	var ne net.Error
	require.ErrorAs(t, err, &ne)
	assert.True(t, ne.Timeout())

	// Interrupt a blocked Read by moving the deadline into the past.
	require.NoError(t, lc.SetReadDeadline(time.Time{}))
	done := make(chan error, 1)
	go func() { _, err := lc.Read(buf); done <- err }()
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, lc.SetReadDeadline(time.Unix(1, 0)))
	assert.ErrorIs(t, <-done, os.ErrDeadlineExceeded)

	require.NoError(t, lc.SetReadDeadline(time.Time{}))
	_, err = c.Write([]byte("alive"))
	require.NoError(t, err)
	_, err = io.ReadFull(lc, buf)
	require.NoError(t, err)
	assert.Equal(t, "alive", string(buf))

	require.NoError(t, c.Close())
	_, err = lc.Read(buf)
	assert.ErrorIs(t, err, io.EOF, "a clean close reads as EOF")
}

// A WebSocket upgrade served by http.Server through the relay, as the ops
// API's event and log streams are: the client dials over StreamTransport.
func TestWebSocketUpgradeThroughRelay(t *testing.T) {
	s := newRelay(t, relaytest.Options{})
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/events", func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for i := range 3 {
			time.Sleep(30 * time.Millisecond) // a stream with pauses, past http.Server's hijack
			if err := ws.Write(r.Context(), websocket.MessageText, []byte(fmt.Sprintf("event %d", i))); err != nil {
				return
			}
		}
		typ, msg, err := ws.Read(r.Context())
		if err == nil {
			_ = ws.Write(r.Context(), typ, append([]byte("echo "), msg...))
		}
		_ = ws.Close(websocket.StatusNormalClosure, "done")
	})
	serve(t, listenerConfig(t, s), mux)
	snd := newSender(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://ops/v1/events", &websocket.DialOptions{HTTPClient: &http.Client{Transport: snd.StreamTransport()}})
	require.NoError(t, err)
	defer ws.CloseNow()
	for i := range 3 {
		_, msg, err := ws.Read(ctx)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("event %d", i), string(msg))
	}
	require.NoError(t, ws.Write(ctx, websocket.MessageText, []byte("hi")))
	_, msg, err := ws.Read(ctx)
	require.NoError(t, err)
	assert.Equal(t, "echo hi", string(msg))
	_, _, err = ws.Read(ctx)
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err))
}

// Relayed streams ping; a relay that stops answering ends the stream on
// both sides instead of leaving reads hanging.
func TestStreamKeepAlive(t *testing.T) {
	defer relay.SetStreamKeepAlive(50 * time.Millisecond)()
	s := newRelay(t, relaytest.Options{})
	c, lc := streamPair(t, s, rawListener(t, s))
	require.Eventually(t, func() bool { return s.Stats().StreamPings >= 4 }, 3*time.Second, 10*time.Millisecond)
	_, err := c.Write([]byte("ok"))
	require.NoError(t, err, "answered pings keep the stream")

	s.IgnorePings(true)
	for _, end := range []net.Conn{c, lc} {
		done := make(chan error, 1)
		go func() {
			_, err := io.Copy(io.Discard, end)
			done <- err
		}()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("stream still open after unanswered pings")
		}
	}
}

// The 60 s deadline is for the response head: a large response that keeps
// flowing may take longer, in HTTP mode too.
func TestSlowLargeResponseOutlivesHeadDeadline(t *testing.T) {
	defer relay.SetRequestDeadline(300 * time.Millisecond)()
	s := newRelay(t, relaytest.Options{RequestTimeout: 300 * time.Millisecond})
	chunk := bytes.Repeat([]byte("z"), 40<<10)
	serve(t, listenerConfig(t, s), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 8 { // 320 KiB over ~800 ms
			_, _ = w.Write(chunk)
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	body, err := get(t, &http.Client{Transport: newSender(t, s)}, "/")
	require.NoError(t, err)
	assert.Equal(t, 8*len(chunk), len(body))
}
