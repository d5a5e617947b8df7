package agent

import (
	"context"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/retry"
	"github.com/botehq/platform/runtime/runproto"
)

// The start fence: the agent starts an apply only once the server
// recorded the start (run.started, answered by run.proceed). Until then
// the claim is the server's to give to another agent: if this agent dies,
// shuts down or reads an assignment whose claim the server has closed
// meanwhile, Terraform never applied anything for it. The cost is one
// round trip through the gateway (about 60 ms here) before each apply.
// A plan changes no infrastructure, and the server gives a lost plan back
// whether or not it started, so a plan does not wait: its run.started only
// tells the server (a plan of a closed claim is stopped by the run.cancel
// that answers it).

// fence holds the claims waiting for run.proceed.
type fence struct {
	mu      sync.Mutex
	waiting map[string]chan struct{} // runID/claimToken
}

func (f *fence) open(key string) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waiting == nil {
		f.waiting = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	f.waiting[key] = ch
	return ch
}

func (f *fence) close(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.waiting, key)
}

// proceed lets the claim waiting under key start; a run.proceed for no
// waiting claim (repeated, or late) is ignored.
func (f *fence) proceed(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ch, ok := f.waiting[key]; ok {
		close(ch)
		delete(f.waiting, key)
	}
}

// errNotStarted ends a phase whose Terraform never started, for a reason
// of the agent's: it gives the claim back (Outcome Refused).
type errNotStarted struct {
	reason   string
	draining bool
}

func (e *errNotStarted) Error() string { return "terraform not started: " + e.reason }

// awaitStart asks the server to start an apply for asg's claim, repeating
// the request every startedEvery, and returns once the server let it
// proceed (a plan: at once, once run.started went out or failed). It fails with the run's context (cancelled by the server, which
// also answers a closed claim with run.cancel, or timed out), or with an
// *errNotStarted when the agent starts shutting down meanwhile.
func (a *Agent) awaitStart(ctx context.Context, asg *runproto.Assign, phase runproto.Phase) error {
	if phase != runproto.PhaseApply {
		sctx, cancel := context.WithTimeout(ctx, startedEvery)
		defer cancel()
		if err := a.send(sctx, &runproto.Started{RunID: asg.RunID, ClaimToken: asg.ClaimToken, Phase: phase}, ""); err != nil && ctx.Err() == nil {
			a.log.Warn("cannot send run.started", "run", asg.RunID, "err", err)
		}
		return nil
	}
	key := phaseKey(asg.RunID, asg.ClaimToken)
	proceed := a.fence.open(key)
	defer a.fence.close(key)
	started := &runproto.Started{RunID: asg.RunID, ClaimToken: asg.ClaimToken, Phase: phase}
	for failures := 0; ; {
		sctx, cancel := context.WithTimeout(ctx, startedEvery)
		err := a.send(sctx, started, "")
		cancel()
		wait := startedEvery // for the answer
		if err != nil && ctx.Err() == nil {
			a.log.Warn("cannot send run.started; repeating it", "run", asg.RunID, "claim", asg.ClaimToken, "err", err)
			wait = retry.Backoff(100*time.Millisecond, startedEvery, failures)
			failures++
		}
		t := time.NewTimer(wait)
		select {
		case <-proceed:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return context.Cause(ctx)
		case <-a.drainCh:
			t.Stop()
			return &errNotStarted{reason: "agent " + a.cfg.ID + " is shutting down", draining: true}
		case <-t.C:
			if err == nil {
				a.log.Info("the server has not answered run.started yet; repeating it", "run", asg.RunID, "claim", asg.ClaimToken)
			}
		}
	}
}

// isDraining reports whether the agent is shutting down.
func (a *Agent) isDraining() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining
}

// newerClaim reports whether claim token t is a later claim of a run than
// running.
func newerClaim(t, running string) bool {
	n, ok := runproto.ParseClaimToken(t)
	m, okRunning := runproto.ParseClaimToken(running)
	return !ok || !okRunning || n > m
}
