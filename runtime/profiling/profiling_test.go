package profiling

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckAddr(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"127.0.0.1:0", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"10.0.0.4:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false},
	} {
		err := CheckAddr(tc.addr)
		if tc.ok {
			assert.NoError(t, err, tc.addr)
		} else {
			assert.Error(t, err, tc.addr)
		}
	}
}

func TestServeRefusesPublicAddress(t *testing.T) {
	err := Serve(context.Background(), ":0", slog.New(slog.DiscardHandler), nil)
	require.ErrorContains(t, err, "loopback")
}

func TestServeOffByDefault(t *testing.T) {
	require.NoError(t, Serve(context.Background(), "", slog.New(slog.DiscardHandler), nil))
}

func TestServeProfilesUntilContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, "127.0.0.1:0", slog.New(slog.DiscardHandler), func(a net.Addr) { addrs <- a })
	}()
	addr := <-addrs
	resp, err := http.Get("http://" + addr.String() + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(body), "goroutine profile")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}
