package cloud

import (
	"container/list"
	"sync"
	"time"
)

// dedup remembers recently handled message ids: a bounded LRU whose entries
// also expire after a TTL. It lives in one process's memory, so it catches
// redeliveries to the same replica within the TTL (the common case: a lock
// lost after the handler succeeded, a broker duplicate), not duplicates
// across replicas or restarts; handlers whose effects must be exactly once
// still need their own idempotency (see package doc).
type dedup struct {
	mu    sync.Mutex
	max   int
	ttl   time.Duration
	now   func() time.Time
	order *list.List // front = most recent; values are *dedupEntry
	index map[string]*list.Element
}

type dedupEntry struct {
	id string
	at time.Time
}

func newDedup(max int, ttl time.Duration, now func() time.Time) *dedup {
	return &dedup{max: max, ttl: ttl, now: now, order: list.New(), index: map[string]*list.Element{}}
}

// seen reports whether id was added within the TTL.
func (d *dedup) seen(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.index[id]
	if !ok {
		return false
	}
	if d.now().Sub(e.Value.(*dedupEntry).at) > d.ttl {
		d.order.Remove(e)
		delete(d.index, id)
		return false
	}
	return true
}

// add records id as handled, evicting the oldest entries beyond max.
func (d *dedup) add(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.index[id]; ok {
		e.Value.(*dedupEntry).at = d.now()
		d.order.MoveToFront(e)
		return
	}
	d.index[id] = d.order.PushFront(&dedupEntry{id: id, at: d.now()})
	for d.order.Len() > d.max {
		last := d.order.Back()
		d.order.Remove(last)
		delete(d.index, last.Value.(*dedupEntry).id)
	}
}

func (d *dedup) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.order.Len()
}
