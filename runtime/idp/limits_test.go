package idp

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestReplayCacheForgetsExpiredEntries(t *testing.T) {
	c := newReplayCache()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	assert.True(t, c.use("a", now.Add(time.Minute), now))
	assert.False(t, c.use("a", now.Add(time.Minute), now.Add(59*time.Second)), "second use within the lifetime")
	assert.True(t, c.seen("a", now.Add(59*time.Second)))
	assert.False(t, c.seen("a", now.Add(time.Minute)), "forgotten once the assertion has expired")

	for i := range 5000 {
		c.use(fmt.Sprint(i), now.Add(time.Minute), now)
	}
	later := now.Add(2 * time.Minute)
	for i := range 5000 {
		c.use(fmt.Sprint("late", i), later.Add(time.Minute), later)
	}
	assert.LessOrEqual(t, len(c.used), 5000+1024, "expired entries are swept, the cache stays bounded")
}

func TestClientLimitersSweepFullBuckets(t *testing.T) {
	l := newClientLimiters(1, 2)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 3000 {
		assert.True(t, l.allow(fmt.Sprint("t/c", i), now))
	}
	later := now.Add(time.Minute) // every bucket refilled
	for i := range 3000 {
		l.allow(fmt.Sprint("t/d", i), later)
	}
	assert.Less(t, len(l.buckets), 4000, "refilled buckets are dropped")
	assert.True(t, l.allow("t/c0", later), "a dropped bucket comes back full")
}
