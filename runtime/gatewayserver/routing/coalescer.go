package routing

import (
	"context"
	"log/slog"
	"sync"

	"github.com/botehq/platform/runtime/ids"
)

// coalescer turns many nudges for one connector into one.
type coalescer struct {
	n       Nudger
	log     *slog.Logger
	mu      sync.Mutex
	pending map[ids.ConnectorID]struct{}
	wake    chan struct{}
	closed  chan struct{}
	once    sync.Once
}

func newCoalescer(n Nudger, log *slog.Logger) *coalescer {
	return &coalescer{n: n, log: log, pending: map[ids.ConnectorID]struct{}{}, wake: make(chan struct{}, 1), closed: make(chan struct{})}
}

func (c *coalescer) add(id ids.ConnectorID) {
	c.mu.Lock()
	c.pending[id] = struct{}{}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *coalescer) close() { c.once.Do(func() { close(c.closed) }) }

func (c *coalescer) run(ctx context.Context) {
	for {
		c.mu.Lock()
		batch := c.pending
		c.pending = map[ids.ConnectorID]struct{}{}
		c.mu.Unlock()
		for id := range batch {
			if err := c.n.Nudge(ctx, id); err != nil {
				c.log.Warn("cannot nudge", "connector", id.String(), "err", err)
			}
		}
		select {
		case <-c.wake:
		case <-c.closed:
			c.mu.Lock()
			n := len(c.pending)
			c.mu.Unlock()
			if n == 0 {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
