package main

import (
	"context"
	"fmt"
	"time"

	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapitypes"
)

// Ctrl-C while opsbot follows a run stops following, never the run: the
// run belongs to the server and continues on its agent. So that nobody
// believes otherwise, the first Ctrl-C says so and how to cancel; for a
// run this command started or approved (plan, apply, destroy), a second
// Ctrl-C within cancelWindow cancels it (as `opsbot cancel RUN` would:
// Terraform is interrupted on the agent) and opsbot follows the run to its
// end, exit 12; a third Ctrl-C then stops following at once (exit 130).
// `logs -f` only says how to cancel: a reader's Ctrl-C must not cancel
// someone else's apply.

// defaultCancelWindow is how long after the first Ctrl-C a second one
// cancels the run.
const defaultCancelWindow = 3 * time.Second

// follow is followRun with Ctrl-C handled as above; mayCancel says whether
// a second Ctrl-C cancels the run.
func (a *app) follow(ctx context.Context, api runsAPI, tenant, id string, offset int64, stop stopAt, mayCancel bool) (*opsapitypes.Run, int64, error) {
	presses := make(chan struct{}, 8)
	fctx, stopFollowing := context.WithCancel(ctx)
	defer stopFollowing()
	// SIGINT comes here instead of ending the command (package program);
	// SIGTERM still ends it.
	restore := program.OnInterrupt(ctx, func() {
		stopFollowing()
		select {
		case presses <- struct{}{}:
		default:
		}
	})
	defer restore()

	final, offset, err := a.followRun(fctx, api, tenant, id, offset, stop)
	switch {
	case err == nil: // the run got where following stops, Ctrl-C or not
		return final, offset, nil
	case ctx.Err() != nil: // terminated (SIGTERM)
		fmt.Fprintf(a.stderr, "\nopsbot: stopped following; run %s continues on its agent (opsbot cancel %s to cancel it).\n", id, id)
		return final, offset, err
	case fctx.Err() == nil:
		return final, offset, err
	}
	<-presses // the press that stopped following
	if !mayCancel {
		fmt.Fprintf(a.stderr, "\nInterrupted: stopped following. Run %s continues on its agent; to cancel it: opsbot cancel %s\n", id, id)
		return nil, offset, runOutcome{code: exitcode.Interrupted}
	}
	window := a.cancelWindow
	if window <= 0 {
		window = defaultCancelWindow
	}
	fmt.Fprintf(a.stderr, "\nInterrupted: stopped following. Run %s continues on its agent.\n"+
		"Press Ctrl-C again within %s to cancel it (Terraform is interrupted on the agent), or later: opsbot cancel %s\n", id, window, id)
	select {
	case <-presses:
	case <-time.After(window):
		return nil, offset, runOutcome{code: exitcode.Interrupted}
	case <-ctx.Done():
		return nil, offset, ctx.Err()
	}
	restore() // from now on Ctrl-C ends opsbot at once
	if _, err := api.Cancel(ctx, tenant, id, "interrupted by the operator (Ctrl-C in opsbot)", false); err != nil {
		return nil, offset, fmt.Errorf("cannot cancel run %s: %w", id, err)
	}
	fmt.Fprintf(a.stderr, "Cancel of run %s requested; following it to its end (Ctrl-C to stop following).\n", id)
	return a.followRun(ctx, api, tenant, id, offset, untilEnded)
}
