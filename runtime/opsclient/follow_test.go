package opsclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/relay"
)

func TestResumable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"server ended the stream", fmt.Errorf("following run r: %w", ErrStreamEnded), true},
		{"connection broke", fmt.Errorf("following run r: %w: %w", ErrStreamBroken, errors.New("EOF")), true},
		{"no listener", fmt.Errorf("cannot follow run r: %w", relay.ErrNoListener), true},
		{"relay unreachable", &relay.UnreachableError{Err: errors.New("dns")}, true},
		{"local port refused", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"bad gateway", &APIError{StatusCode: http.StatusBadGateway}, true},
		{"unavailable", &APIError{StatusCode: http.StatusServiceUnavailable}, true},
		{"credential refused", &APIError{StatusCode: http.StatusUnauthorized}, false},
		{"unknown run", &APIError{StatusCode: http.StatusNotFound}, false},
		{"relay refused the key", relay.ErrUnauthorized, false},
		{"no token", ErrNoToken, false},
		{"a message that merely says stream broke", errors.New("event stream broke"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, Resumable(tt.err))
		})
	}
}

// streamer plays one StreamRun per call, recording the offsets asked for.
type streamer struct {
	offsets []int64
	play    func(n int, fn func(opsapitypes.FollowFrame) error) error
}

func (s *streamer) StreamRun(_ context.Context, _, _ string, offset int64, fn func(opsapitypes.FollowFrame) error) error {
	s.offsets = append(s.offsets, offset)
	return s.play(len(s.offsets)-1, fn)
}

var fast = Resume{MinDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond}

func TestFollowRunResumesFromTheLastOffset(t *testing.T) {
	s := &streamer{play: func(n int, fn func(opsapitypes.FollowFrame) error) error {
		switch n {
		case 0:
			_ = fn(opsapitypes.FollowFrame{Type: opsapitypes.FrameLog, Lines: []string{"one"}, NextOffset: 4})
			return fmt.Errorf("following run r: %w: %w", ErrStreamBroken, errors.New("unexpected EOF"))
		case 1:
			return fmt.Errorf("cannot follow run r: %w", relay.ErrNoListener)
		}
		_ = fn(opsapitypes.FollowFrame{Type: opsapitypes.FrameLog, Lines: []string{"two"}, NextOffset: 8})
		return fn(opsapitypes.FollowFrame{Type: opsapitypes.FrameEnd, Run: &opsapitypes.Run{State: "applied"}})
	}}
	var lines []string
	var resumed []error
	r := fast
	r.OnResume = func(err error, wait time.Duration) {
		resumed = append(resumed, err)
		assert.LessOrEqual(t, wait, fast.MaxDelay)
	}
	err := FollowRun(context.Background(), s, "contoso", "r", 0, func(f opsapitypes.FollowFrame) error {
		lines = append(lines, f.Lines...)
		return nil
	}, r)
	require.NoError(t, err)
	assert.Equal(t, []string{"one", "two"}, lines, "every line once")
	assert.Equal(t, []int64{0, 4, 4}, s.offsets, "resumed where the log was")
	require.Len(t, resumed, 2)
	assert.ErrorIs(t, resumed[0], ErrStreamBroken)
	assert.ErrorIs(t, resumed[1], relay.ErrNoListener)
}

func TestFollowRunReturnsWhatResumingCannotFix(t *testing.T) {
	refused := &APIError{StatusCode: http.StatusUnauthorized}
	s := &streamer{play: func(int, func(opsapitypes.FollowFrame) error) error { return refused }}
	err := FollowRun(context.Background(), s, "contoso", "r", 0, func(opsapitypes.FollowFrame) error { return nil }, fast)
	assert.Same(t, refused, err)
	assert.Len(t, s.offsets, 1, "not retried")

	// fn's error is returned as is, also one that looks resumable.
	s = &streamer{play: func(_ int, fn func(opsapitypes.FollowFrame) error) error {
		return fn(opsapitypes.FollowFrame{Type: opsapitypes.FrameRun})
	}}
	err = FollowRun(context.Background(), s, "contoso", "r", 0, func(opsapitypes.FollowFrame) error { return ErrStreamEnded }, fast)
	assert.Same(t, ErrStreamEnded, err)
	assert.Len(t, s.offsets, 1)

	// Ctrl-C while waiting to resume.
	ctx, cancel := context.WithCancel(context.Background())
	s = &streamer{play: func(int, func(opsapitypes.FollowFrame) error) error { cancel(); return ErrStreamEnded }}
	err = FollowRun(ctx, s, "contoso", "r", 0, func(opsapitypes.FollowFrame) error { return nil }, Resume{MinDelay: time.Hour, MaxDelay: time.Hour})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestStreamRunSaysHowTheStreamDropped(t *testing.T) {
	tests := []struct {
		name string
		drop func(*websocket.Conn)
		want error
	}{
		{"server shuts down", func(c *websocket.Conn) { c.Close(websocket.StatusGoingAway, "shutting down") }, ErrStreamEnded},
		{"connection lost", func(c *websocket.Conn) { c.CloseNow() }, ErrStreamBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				_ = c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"run","run":{"state":"planning"}}`))
				tt.drop(c)
			}))
			defer srv.Close()
			c := newClient(t, srv.URL, "obk_x.y")
			frames := 0
			err := c.StreamRun(context.Background(), "contoso", "r", 0, func(opsapitypes.FollowFrame) error { frames++; return nil })
			assert.ErrorIs(t, err, tt.want)
			assert.True(t, Resumable(err))
			assert.Equal(t, 1, frames)
		})
	}
}
