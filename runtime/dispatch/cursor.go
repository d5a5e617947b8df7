package dispatch

import (
	"sync"
	"time"
)

// cursor is where one claim's log batches go: the next sequence number and
// the log offset after the last batch written. It lives in memory only:
// after a restart the next batch is appended at the log's end.
type cursor struct {
	mu      sync.Mutex
	known   bool
	next    int64
	at      int64
	changed chan struct{}
	done    time.Time // when the claim's result was recorded
}

// wait releases c.mu until the cursor changes or d passes.
func (c *cursor) wait(d time.Duration) {
	ch := c.changed
	c.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(d):
	}
	c.mu.Lock()
}

func (c *cursor) wake() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// cursorKeep is how long a finished claim's cursor is kept, so a late
// duplicate batch is still recognised.
const cursorKeep = 10 * time.Minute

func (d *Dispatcher) cursor(runID, token string) *cursor {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := runID + "/" + token
	c := d.cursors[k]
	if c == nil {
		c = &cursor{changed: make(chan struct{})}
		d.cursors[k] = c
	}
	return c
}

func (d *Dispatcher) finishCursor(runID, token string) {
	c := d.cursor(runID, token)
	c.mu.Lock()
	c.done = time.Now()
	c.mu.Unlock()
}

func (d *Dispatcher) gcCursors() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, c := range d.cursors {
		c.mu.Lock()
		old := !c.done.IsZero() && time.Since(c.done) > cursorKeep
		c.mu.Unlock()
		if old {
			delete(d.cursors, k)
		}
	}
}

// Subscribe returns a channel that receives a value (coalesced) whenever
// run changes or gets log lines in this process, and a function to stop.
// Followers (opsbot logs -f) read state and logs again when it fires; they
// still poll for changes other replicas make.
func (d *Dispatcher) Subscribe(runID string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	if d.subs[runID] == nil {
		d.subs[runID] = map[chan struct{}]struct{}{}
	}
	d.subs[runID][ch] = struct{}{}
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		delete(d.subs[runID], ch)
		if len(d.subs[runID]) == 0 {
			delete(d.subs, runID)
		}
		d.mu.Unlock()
	}
}

func (d *Dispatcher) notify(runID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch := range d.subs[runID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
