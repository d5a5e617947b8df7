package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/relay"
)

// TestDevrelayServesPrintedConnectionStrings runs devrelay in process and
// uses what it prints, as make demo and the integration tests do.
func TestDevrelayServesPrintedConnectionStrings(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--hybrid-connection", "ops,other"}, nil, pw, io.Discard, noEnv)
	}()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})

	env := map[string]string{}
	sc := bufio.NewScanner(pr)
	require.True(t, sc.Scan())
	assert.True(t, strings.HasPrefix(sc.Text(), "devrelay listening on 127.0.0.1:"), sc.Text())
	for len(env) < 4 && sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		require.True(t, ok, sc.Text())
		env[k] = v
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	assert.Equal(t, "ops", env["RELAY_HYBRID_CONNECTION"])

	lns, err := relay.ParseNamespace(env["RELAY_LISTEN_CONNECTION_STRING"])
	require.NoError(t, err)
	l, err := relay.Listen(ctx, relay.ListenerConfig{Namespace: lns, Insecure: true})
	require.NoError(t, err)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "pong "+r.URL.Path) })}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	sns, err := relay.ParseNamespace(env["RELAY_SEND_CONNECTION_STRING"])
	require.NoError(t, err)
	client := &http.Client{Transport: relay.NewTransport(relay.SenderConfig{Namespace: sns, Insecure: true}), Timeout: 10 * time.Second}
	resp, err := client.Get("http://ops/ping")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "pong /ping", string(b))

	// The listen rule cannot send.
	client.Transport = relay.NewTransport(relay.SenderConfig{Namespace: lns, Insecure: true})
	_, err = client.Get("http://ops/ping")
	assert.ErrorIs(t, err, relay.ErrUnauthorized)
}

func TestDevrelayBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--hybrid-connection", " "},
		{"--listen-key-name", "x", "--send-key-name", "x"},
		{"--nope"},
	} {
		err := run(context.Background(), args, nil, io.Discard, io.Discard, noEnv)
		assert.Error(t, err, args)
	}
}

func noEnv(string) string { return "" }
