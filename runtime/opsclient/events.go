package opsclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// Events opens GET /v1/events and calls fn for each event until ctx ends
// (returning nil), fn returns an error (returned as is), or the stream
// drops (ErrStreamEnded when the server closed it, for example on
// shutdown; ErrStreamBroken). interval 0 leaves the server's default.
func (c *Client) Events(ctx context.Context, interval time.Duration, fn func(opsapitypes.Event) error) error {
	q := url.Values{}
	if interval > 0 {
		q.Set("interval", interval.String())
	}
	ws, err := c.dialStream(ctx, "/v1/events", q)
	if err != nil {
		return fmt.Errorf("cannot open event stream: %w", err)
	}
	defer ws.CloseNow()
	for {
		data, err := readStream(ctx, ws)
		switch {
		case ctx.Err() != nil:
			ws.Close(websocket.StatusNormalClosure, "")
			return nil
		case err != nil:
			return fmt.Errorf("event stream: %w", err)
		}
		var ev opsapitypes.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("cannot decode event: %w", err)
		}
		if err := fn(ev); err != nil {
			ws.Close(websocket.StatusNormalClosure, "")
			return err
		}
	}
}

// FollowEvents is Events resumed after drops (a server restart or
// redeploy) as Resume says, once the first stream delivered an event: a
// server that is not there at the start is an error at once. It returns
// nil when ctx ends.
func (c *Client) FollowEvents(ctx context.Context, interval time.Duration, fn func(opsapitypes.Event) error, r Resume) error {
	stream := func(fn func(opsapitypes.Event) error) error { return c.Events(ctx, interval, fn) }
	if err := resume(ctx, r, true, stream, fn); ctx.Err() == nil {
		return err
	}
	return nil
}
