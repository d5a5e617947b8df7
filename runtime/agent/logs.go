package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/botehq/platform/runtime/runproto"
)

// logBatchBytes bounds the encoded lines of one run.logs message, leaving
// room under runproto.MaxLogBatchBytes for the rest of the body.
const logBatchBytes = runproto.MaxLogBatchBytes - 1024

// logSink sends a phase's log lines as run.logs batches. tfrun calls Logs
// from one goroutine, one batch after the other; each batch is sent until
// the gateway accepted it before Logs returns, so batches arrive in seq
// order and a seq is only used up by a delivered batch (the server never
// sees a gap).
type logSink struct {
	a            *Agent
	runID, token string

	mu     sync.Mutex
	seq    int64 // next batch's seq
	offset int64 // where the next batch starts in the run's log
}

// Logs sends lines. It ignores the deadline tfrun puts on ctx: a batch is
// retried for as long as the agent delivers anything (an outage of the
// gateway delays logs, it does not lose them), and dropped only if the
// gateway refuses it outright.
func (s *logSink) Logs(_ context.Context, lines []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var firstErr error
	for _, chunk := range splitLines(lines, logBatchBytes) {
		// The offset lets any server replica write the batch exactly once,
		// in place, even after a restart (runproto.Logs.Offset).
		offset := s.offset
		err := s.a.sendReliably(&runproto.Logs{RunID: s.runID, ClaimToken: s.token, Seq: s.seq, Offset: &offset, Lines: chunk})
		if err != nil && permanent(err) {
			// Keep the log honest and the sequence whole: say what is missing.
			chunk = []string{fmt.Sprintf("[agent] %d log line(s) could not be delivered: %v", len(chunk), err)}
			err = s.a.sendReliably(&runproto.Logs{RunID: s.runID, ClaimToken: s.token, Seq: s.seq, Offset: &offset, Lines: chunk})
		}
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("cannot send log batch %d: %w", s.seq, err)
			}
			continue
		}
		s.seq++
		s.offset += runproto.LinesBytes(chunk)
	}
	return firstErr
}

// lastSeq is the seq of the last batch delivered, -1 for none.
func (s *logSink) lastSeq() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seq - 1
}

// splitLines cuts lines into chunks whose JSON encoding stays under limit
// bytes; a line longer than that on its own is truncated.
func splitLines(lines []string, limit int) [][]string {
	var chunks [][]string
	var cur []string
	size := 0
	for _, l := range lines {
		n := encodedLen(l) + 1 // the comma
		if n > limit {
			l = truncateLine(l, limit)
			n = encodedLen(l) + 1
		}
		if size+n > limit && len(cur) > 0 {
			chunks = append(chunks, cur)
			cur, size = nil, 0
		}
		cur = append(cur, l)
		size += n
	}
	if len(cur) > 0 {
		chunks = append(chunks, cur)
	}
	return chunks
}

func encodedLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b)
}

const truncatedMark = " …[line truncated]"

// truncateLine keeps the longest prefix of l (on a rune boundary) whose
// encoding, with the mark and a comma, fits limit bytes.
func truncateLine(l string, limit int) string {
	r := []rune(l)
	fits := func(keep int) bool { return encodedLen(string(r[:keep])+truncatedMark)+1 <= limit }
	// The largest keep that fits: sort.Search finds the first that does not.
	keep := sort.Search(len(r)+1, func(k int) bool { return !fits(k) }) - 1
	return string(r[:max(keep, 0)]) + truncatedMark
}
