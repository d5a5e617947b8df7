package opsclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/retry"
)

// Errors a stream (a run's follow, the event stream) ends with when it
// dropped before its end; following may resume (Resumable).
var (
	// ErrStreamEnded: the server closed the stream (close code 1001 or
	// 1000 without an end frame), for example on shutdown.
	ErrStreamEnded = errors.New("server ended the stream")
	// ErrStreamBroken: the connection failed mid-stream (network, relay).
	ErrStreamBroken = errors.New("stream broke")
)

// Resumable reports whether following may resume after err: the stream
// dropped (ErrStreamEnded, ErrStreamBroken), the relay has no listener
// for a moment or cannot be reached, the server's port refused the
// connection (restarting), or a gateway in between answered 502, 503 or
// 504. Refusals (credential, unknown run, bad request) are not.
func Resumable(err error) bool {
	var (
		ae *APIError
		oe *net.OpError
	)
	switch {
	case err == nil:
		return false
	case errors.Is(err, ErrStreamEnded), errors.Is(err, ErrStreamBroken),
		errors.Is(err, relay.ErrNoListener), errors.Is(err, relay.ErrUnreachable):
		return true
	case errors.As(err, &ae):
		return ae.StatusCode == http.StatusBadGateway || ae.StatusCode == http.StatusServiceUnavailable || ae.StatusCode == http.StatusGatewayTimeout
	case errors.As(err, &oe):
		return oe.Op == "dial"
	}
	return false
}

// Resume says how a follow resumes a dropped stream: after a jittered
// exponential wait (retry.Backoff from MinDelay, 250 ms, to MaxDelay,
// 10 s), starting over after each stream that delivered something.
type Resume struct {
	MinDelay, MaxDelay time.Duration
	// OnResume, if set, is told why the stream dropped and how long the
	// follow waits before it resumes.
	OnResume func(err error, wait time.Duration)
}

// resume is the one resume loop of the package: it opens stream, which
// sends what it delivers to fn, until stream returns nil, fn returns an
// error (returned as is), or stream returns an error that is not
// Resumable, waiting between attempts; a stream that delivered something
// starts the waits over. With mustStart, a first stream that delivered
// nothing returns its error as is: the server is not there, rather than
// gone for a moment.
func resume[T any](ctx context.Context, r Resume, mustStart bool, stream func(fn func(T) error) error, fn func(T) error) error {
	minDelay, maxDelay := r.MinDelay, r.MaxDelay
	if minDelay <= 0 {
		minDelay = 250 * time.Millisecond
	}
	if maxDelay <= 0 {
		maxDelay = 10 * time.Second
	}
	started := !mustStart
	for attempt := 0; ; attempt++ {
		var fnErr error
		progressed := false
		err := stream(func(v T) error {
			progressed = true
			fnErr = fn(v)
			return fnErr
		})
		if progressed {
			started, attempt = true, 0
		}
		switch {
		case fnErr != nil:
			return fnErr
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case !started, !Resumable(err):
			return err
		}
		wait := retry.Backoff(minDelay, maxDelay, attempt)
		if r.OnResume != nil {
			r.OnResume(err, wait)
		}
		if err := retry.Sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// RunStreamer opens one follow stream of a run: *Client, or a fake.
type RunStreamer interface {
	// StreamRun sends the run's frames from log offset to fn, over one
	// connection: nil after the end frame, fn's error as is, or why the
	// stream could not open or dropped (see Resumable).
	StreamRun(ctx context.Context, tenant, runID string, offset int64, fn func(opsapitypes.FollowFrame) error) error
}

// FollowRun streams a run's frames (log lines, state changes) to fn from
// log offset until the run ends: it returns nil after the end frame, fn's
// error as is, ctx's error, or the first error that is not Resumable. A
// dropped stream (network, relay, server restart) is resumed from the
// last log offset, so no line is lost or repeated; the server sends the
// run's state first on each stream.
func FollowRun(ctx context.Context, s RunStreamer, tenant, runID string, offset int64, fn func(opsapitypes.FollowFrame) error, r Resume) error {
	stream := func(fn func(opsapitypes.FollowFrame) error) error {
		return s.StreamRun(ctx, tenant, runID, offset, fn)
	}
	return resume(ctx, r, false, stream, func(f opsapitypes.FollowFrame) error {
		if f.Type == opsapitypes.FrameLog && f.NextOffset > offset {
			offset = f.NextOffset
		}
		return fn(f)
	})
}

// Follow is FollowRun through c, resuming with Resume's defaults.
func (c *Client) Follow(ctx context.Context, tenant, runID string, offset int64, fn func(opsapitypes.FollowFrame) error) error {
	return FollowRun(ctx, c, tenant, runID, offset, fn, Resume{})
}

// StreamRun runs one follow connection (RunStreamer).
func (c *Client) StreamRun(ctx context.Context, tenant, runID string, offset int64, fn func(opsapitypes.FollowFrame) error) error {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	ws, err := c.dialStream(ctx, tenantPath(tenant, "runs", runID, "follow"), q)
	if err != nil {
		return fmt.Errorf("cannot follow run %s: %w", runID, err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(4 << 20)
	for {
		data, err := readStream(ctx, ws)
		if err != nil {
			return fmt.Errorf("following run %s: %w", runID, err)
		}
		var f opsapitypes.FollowFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return fmt.Errorf("cannot decode frame: %w", err)
		}
		if err := fn(f); err != nil {
			ws.Close(websocket.StatusNormalClosure, "")
			return err
		}
		if f.Type == opsapitypes.FrameEnd {
			ws.Close(websocket.StatusNormalClosure, "")
			return nil
		}
	}
}

// dialStream opens a WebSocket to path: an API refusal is an *APIError,
// a transport failure keeps its cause (relay errors, *net.OpError).
func (c *Client) dialStream(ctx context.Context, path string, q url.Values) (*websocket.Conn, error) {
	h, err := c.header(ctx)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, c.url(path, q), &websocket.DialOptions{HTTPClient: c.stream, HTTPHeader: h})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
			return nil, apiError(resp.StatusCode, body)
		}
		return nil, unwrapURLError(err)
	}
	return ws, nil
}

// readStream reads a message; a stream the server closed is
// ErrStreamEnded, any other failure ErrStreamBroken (or ctx's error).
func readStream(ctx context.Context, ws *websocket.Conn) ([]byte, error) {
	_, data, err := ws.Read(ctx)
	switch {
	case err == nil:
		return data, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case websocket.CloseStatus(err) == websocket.StatusGoingAway, websocket.CloseStatus(err) == websocket.StatusNormalClosure:
		return nil, ErrStreamEnded
	}
	return nil, fmt.Errorf("%w: %w", ErrStreamBroken, err)
}
