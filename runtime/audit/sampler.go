package audit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Sampler lets records through at a bounded rate and counts the rest, so
// that a caller who can make the server refuse something (an
// unauthenticated request, a message from a connector that is no agent)
// cannot make it write an entity per attempt. The next record let through
// says how many were skipped, since when. The zero value lets nothing
// through; set Rate and Burst.
type Sampler struct {
	Rate  rate.Limit // records per second
	Burst int

	mu      sync.Mutex
	lim     *rate.Limiter
	dropped int
	since   time.Time
}

// Take reports whether a record at now may be stored, and how many were
// skipped (since when) before it.
func (s *Sampler) Take(now time.Time) (ok bool, dropped int, since time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lim == nil {
		s.lim = rate.NewLimiter(s.Rate, s.Burst)
	}
	if !s.lim.AllowN(now, 1) {
		if s.dropped == 0 {
			s.since = now
		}
		s.dropped++
		return false, 0, time.Time{}
	}
	dropped, since = s.dropped, s.since
	s.dropped = 0
	return true, dropped, since
}
