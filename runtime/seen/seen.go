// Package seen remembers message ids recently handled, bounded in size and
// optionally in age, so that a redelivered message is recognised. A Set
// lives in one process's memory, so it catches redeliveries to the same
// process, which is what at-least-once delivery mostly produces; the
// gateway's router, the connector library, the agent and package botecloud
// use it. A File also keeps its ids in a local file, so they survive a
// restart; the connector library uses it when durable dedup is on.
package seen

import (
	"container/list"
	"sync"
	"time"
)

// Set is a bounded set of recently added keys. Safe for concurrent use.
type Set struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration // 0: entries expire only by eviction
	now   func() time.Time
	order *list.List // front = newest; values are *entry
	index map[string]*list.Element
}

type entry struct {
	key string
	at  time.Time
}

// New returns a Set holding at most max keys, each for at most ttl (0 for
// no age limit).
func New(max int, ttl time.Duration) *Set {
	return &Set{max: max, ttl: ttl, now: time.Now, order: list.New(), index: map[string]*list.Element{}}
}

// WithClock makes s read time from now (tests use a fake clock) and
// returns s.
func (s *Set) WithClock(now func() time.Time) *Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
	return s
}

// Has reports whether key was added and is still remembered.
func (s *Set) Has(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.index[key]
	if !ok {
		return false
	}
	if s.ttl > 0 && s.now().Sub(e.Value.(*entry).at) >= s.ttl {
		s.order.Remove(e)
		delete(s.index, key)
		return false
	}
	return true
}

// Add remembers key, forgetting the oldest keys beyond the size limit.
func (s *Set) Add(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.index[key]; ok {
		e.Value.(*entry).at = s.now()
		s.order.MoveToFront(e)
		return
	}
	s.index[key] = s.order.PushFront(&entry{key: key, at: s.now()})
	for s.order.Len() > s.max {
		last := s.order.Back()
		s.order.Remove(last)
		delete(s.index, last.Value.(*entry).key)
	}
}

// Len is the number of keys held (expired ones included until touched).
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.order.Len()
}

// oldestFirst returns the keys held, oldest first.
func (s *Set) oldestFirst() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, s.order.Len())
	for e := s.order.Back(); e != nil; e = e.Prev() {
		keys = append(keys, e.Value.(*entry).key)
	}
	return keys
}
