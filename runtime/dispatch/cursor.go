package dispatch

import (
	"sync"
	"time"
)

// cursor is what this process knows of one claim's log batches: which it
// wrote, the first it has not (next), and where the log ended after its
// last append (at). It lives in memory only.
type cursor struct {
	mu       sync.Mutex
	known    bool // at least one batch written here
	next     int64
	at       int64
	written  map[int64]bool
	inflight map[int64]int
	changed  chan struct{}
	done     time.Time // when the claim's result was recorded
	last     int64     // the last batch that result named (-1: none)
}

// record notes that batch seq was written and the log ended at end.
func (c *cursor) record(seq, end int64) {
	c.written[seq] = true
	if !c.known || seq >= c.next {
		c.at = end
	}
	c.known = true
	for c.written[c.next] {
		c.next++
	}
	if seq >= c.next {
		c.next = seq + 1
	}
	c.wake()
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
		c = &cursor{changed: make(chan struct{}), written: map[int64]bool{}, inflight: map[int64]int{}}
		d.cursors[k] = c
	}
	return c
}

// finishCursor notes that the claim's result, naming last as its last log
// batch, was recorded: no batch after last can come.
func (d *Dispatcher) finishCursor(runID, token string, last int64) {
	c := d.cursor(runID, token)
	c.mu.Lock()
	c.done, c.last = time.Now(), last
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
