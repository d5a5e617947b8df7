package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/runproto"
)

// renewWait bounds how long an upload waits for fresh links from the
// server; renewAsk is how often it asks meanwhile (the bus may drop an
// ask, never deliver it twice in a way that matters). Variables for tests.
var (
	renewWait = 30 * time.Second
	renewAsk  = 10 * time.Second
)

// uploadLink returns the link for this claim's upload (the apply's state,
// or the plan's working directory). Upload links are short-lived (see
// runproto.Assign.UploadExpiresAt): with less than half of their lifetime
// left (counted from issued, when the assignment arrived) the agent asks
// the server for fresh ones first, which it gets only while its claim is
// open.
func (a *Agent) uploadLink(ctx context.Context, asg *runproto.Assign, issued time.Time, state bool) (string, error) {
	pick := func() string {
		if state {
			return asg.StateUploadURL
		}
		return asg.UploadURL
	}
	exp := asg.UploadExpiresAt
	if exp.IsZero() || time.Until(exp) > exp.Sub(issued)/2 {
		return pick(), nil
	}
	key := phaseKey(asg.RunID, asg.ClaimToken)
	ch := make(chan *runproto.Links, 1)
	a.mu.Lock()
	a.renewals[key] = ch
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.renewals, key)
		a.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, renewWait)
	defer cancel()
	t := time.NewTicker(renewAsk)
	defer t.Stop()
	for {
		if err := a.send(ctx, &runproto.Renew{RunID: asg.RunID, ClaimToken: asg.ClaimToken}, ""); err != nil && ctx.Err() == nil {
			a.log.Warn("cannot ask for fresh upload links", "run", asg.RunID, "claim", asg.ClaimToken, "err", err)
		}
		select {
		case l := <-ch:
			if l.UploadURL != "" {
				asg.UploadURL = l.UploadURL
			}
			if l.StateUploadURL != "" {
				asg.StateUploadURL = l.StateUploadURL
			}
			asg.UploadExpiresAt = l.ExpiresAt
			if pick() == "" {
				return "", errors.New("the server renewed the upload links without the one needed")
			}
			a.log.Info("upload links renewed", "run", asg.RunID, "claim", asg.ClaimToken, "until", l.ExpiresAt)
			return pick(), nil
		case <-ctx.Done():
			return "", fmt.Errorf("the server sent no fresh upload link within %s (did the run end?)", renewWait)
		case <-t.C:
		}
	}
}

// links hands fresh upload links to the upload waiting for them.
func (a *Agent) links(l *runproto.Links) {
	a.mu.Lock()
	ch := a.renewals[phaseKey(l.RunID, l.ClaimToken)]
	a.mu.Unlock()
	if ch == nil {
		a.log.Debug("upload links nobody waits for", "run", l.RunID, "claim", l.ClaimToken)
		return
	}
	select {
	case ch <- l:
	default: // an earlier answer is being used
	}
}
