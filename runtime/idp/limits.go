package idp

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// clientLimiters holds one token bucket per authenticated client. Buckets
// are created only after a client's assertion verified, so their number is
// bounded by the registry, and full buckets are swept from time to time.
type clientLimiters struct {
	limit rate.Limit
	burst int

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	sweepSize int
}

func newClientLimiters(limit rate.Limit, burst int) *clientLimiters {
	return &clientLimiters{limit: limit, burst: burst, buckets: make(map[string]*rate.Limiter), sweepSize: 1024}
}

func (c *clientLimiters) allow(clientID string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.buckets[clientID]
	if !ok {
		if len(c.buckets) >= c.sweepSize {
			c.sweep(now)
		}
		b = rate.NewLimiter(c.limit, c.burst)
		c.buckets[clientID] = b
	}
	return b.AllowN(now, 1)
}

// sweep drops full buckets: a new one would be identical.
func (c *clientLimiters) sweep(now time.Time) {
	for id, b := range c.buckets {
		if b.TokensAt(now) >= float64(c.burst) {
			delete(c.buckets, id)
		}
	}
	c.sweepSize = max(1024, 2*len(c.buckets))
}

// replayCache remembers the assertions already used, each until it
// expires, after which the assertion is refused anyway. It lives in memory:
// with several idp replicas an assertion could be used once per replica
// (see docs/identity.md).
type replayCache struct {
	mu        sync.Mutex
	used      map[string]time.Time // key -> forget after
	sweepSize int
}

func newReplayCache() *replayCache {
	return &replayCache{used: make(map[string]time.Time), sweepSize: 1024}
}

// seen reports whether key was used and has not been forgotten.
func (c *replayCache) seen(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.used[key]
	return ok && now.Before(until)
}

// use records key until forgetAfter, and reports false if it was already
// recorded.
func (c *replayCache) use(key string, forgetAfter, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if until, ok := c.used[key]; ok && now.Before(until) {
		return false
	}
	if len(c.used) >= c.sweepSize {
		for k, until := range c.used {
			if !now.Before(until) {
				delete(c.used, k)
			}
		}
		c.sweepSize = max(1024, 2*len(c.used))
	}
	c.used[key] = forgetAfter
	return true
}
