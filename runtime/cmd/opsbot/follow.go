package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/opsconfig"
)

// stopAt says when following a run may stop.
type stopAt func(*opsapitypes.Run) bool

// untilSettled stops at a saved plan waiting for approval or at the end.
func untilSettled(r *opsapitypes.Run) bool { return r.State == opsapitypes.StatePlanned || r.Settled() }

// untilEnded stops at the end of the run, or where it needs attention.
func untilEnded(r *opsapitypes.Run) bool { return r.Settled() }

var errStopFollowing = errors.New("stop following")

// followRun prints a run's log lines and state changes live until stop
// says so, and returns the run as it was then and the log offset reached.
// A stream that drops (the server restarts, the relay drops) is resumed
// from the last log offset (opsclient.FollowRun).
func (a *app) followRun(ctx context.Context, api runsAPI, tenant, id string, offset int64, stop stopAt) (*opsapitypes.Run, int64, error) {
	var last *opsapitypes.Run
	lastShown := ""
	show := func(r *opsapitypes.Run) bool {
		last = r
		if r.State != lastShown {
			lastShown = r.State
			a.progress(r)
			if r.State == opsapitypes.StatePlanned && !stop(r) {
				fmt.Fprintf(a.stderr, "Waiting for approval: the plan of run %s waits for opsbot apply %s; following until the run ends (Ctrl-C stops following, not the run).\n", r.ID, r.ID)
			}
		}
		a.showWaiting(r)
		return stop(r)
	}
	// The current state first: the run may already be where it stops.
	r, err := api.Run(ctx, tenant, id)
	if err != nil {
		return nil, offset, err
	}
	if !show(r) {
		resume := opsclient.Resume{OnResume: func(err error, wait time.Duration) {
			fmt.Fprintf(a.stderr, "opsbot: following run %s: %v; resuming in %s\n", id, err, wait.Round(time.Millisecond))
		}}
		err = opsclient.FollowRun(ctx, api, tenant, id, offset, func(fr opsapitypes.FollowFrame) error {
			switch fr.Type {
			case opsapitypes.FrameLog:
				for _, l := range fr.Lines {
					if _, err := fmt.Fprintln(a.logOut(), l); err != nil {
						return err
					}
				}
				offset = max(offset, fr.NextOffset)
			case opsapitypes.FrameRun, opsapitypes.FrameEnd:
				if fr.Run != nil && show(fr.Run) {
					return errStopFollowing
				}
			}
			return nil
		}, resume)
		if err != nil && !errors.Is(err, errStopFollowing) {
			return nil, offset, err
		}
	}
	// The server sends a change before the log lines that led to it, and
	// may store lines late (an agent's batch retried across a server
	// restart): read the rest from the log.
	offset, err = a.drainLogs(ctx, api, tenant, id, offset)
	return last, offset, err
}

// logOut is where a run's log goes: stdout, or stderr with -o json so
// that stdout holds only the JSON result (opsbot logs sets logsToStdout);
// its control characters shown, not sent (termSafe).
func (a *app) logOut() io.Writer {
	if a.cfg != nil && a.cfg.Output == opsconfig.OutputJSON && !a.logsToStdout {
		return termSafe{a.stderr}
	}
	return termSafe{a.stdout}
}

// drainLogs prints what the log holds after offset and returns where it
// ends.
func (a *app) drainLogs(ctx context.Context, api runsAPI, tenant, id string, offset int64) (int64, error) {
	for {
		chunk, err := api.Logs(ctx, tenant, id, offset)
		if err != nil {
			return offset, err
		}
		if _, err := io.WriteString(a.logOut(), chunk.Text); err != nil {
			return offset, err
		}
		if chunk.Text == "" || chunk.NextOffset <= offset {
			return offset, nil
		}
		offset = chunk.NextOffset
	}
}

// lastReason is the reason recorded with the run's latest transition.
func lastReason(r *opsapitypes.Run) string {
	if len(r.History) == 0 {
		return ""
	}
	return r.History[len(r.History)-1].Reason
}

// showWaiting prints why a run cannot start, when that changed.
func (a *app) showWaiting(r *opsapitypes.Run) {
	if r.Waiting != "" && r.Waiting != a.shownWaiting {
		fmt.Fprintf(a.stderr, "Waiting: %s\n", r.Waiting)
	}
	a.shownWaiting = r.Waiting
}

// progress prints a state change on stderr (stdout carries the log).
func (a *app) progress(r *opsapitypes.Run) {
	line := fmt.Sprintf("==> %s  run %s is %s", time.Now().Format(time.TimeOnly), r.ID, r.State)
	// The outcome of an ended run says why, once, as the output's end.
	if reason := lastReason(r); reason != "" && !r.Terminal() {
		line += ": " + reason
	}
	fmt.Fprintln(a.stderr, line)
}

// finish prints the outcome of a followed run and turns it into the
// command's result (and exit code).
func (a *app) finish(r *opsapitypes.Run) error {
	if err := a.print(r, func(w io.Writer) { printOutcome(w, r) }); err != nil {
		return err
	}
	return a.outcome(r)
}

// outcomeOf is the command's result (and exit code) for a run it followed.
func outcomeOf(r *opsapitypes.Run) error {
	switch r.State {
	case opsapitypes.StatePlanned:
		return runOutcome{code: exitcode.Changes} // printOutcome said how to apply it
	case opsapitypes.StateFailed:
		return runOutcome{exitcode.RunFailed, fmt.Sprintf("run %s failed: %s", r.ID, lastReason(r))}
	case opsapitypes.StateCancelled, opsapitypes.StateTimedOut:
		return runOutcome{exitcode.RunEnded, fmt.Sprintf("run %s ended %s: %s", r.ID, r.State, lastReason(r))}
	case opsapitypes.StateNeedsAttention:
		return runOutcome{exitcode.RunFailed, fmt.Sprintf("run %s needs attention: %s", r.ID, lastReason(r))}
	}
	return nil
}
