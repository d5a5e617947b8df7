package main

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/runs"
)

// applying is a planned run whose apply streams one line and then runs
// until the follower goes away (the first StreamRun), or until it was
// cancelled (later ones). following is closed once the apply streams.
func applying(following chan struct{}) *fakeRuns {
	api := newFakeRuns()
	api.run.State, api.run.PlanResult = "planned", planResult
	api.follow = func(f *fakeRuns, n int, _ int64, fn func(opsapi.FollowFrame) error) error {
		if n > 0 {
			return fn(runFrame(f.set(runs.State(f.run.State), "", nil)))
		}
		_ = fn(runFrame(f.set(runs.Applying, "claimed by agent agent-02", nil)))
		_ = f.emit(fn, "terraform_data.x: Creating...")
		close(following)
		<-f.followCtx.Done()
		return f.followCtx.Err()
	}
	return api
}

// interrupt sends n signals once the run is being followed.
func interrupt(following chan struct{}, signals chan os.Signal, sig os.Signal, n int) {
	go func() {
		<-following
		for range n {
			signals <- sig
		}
	}()
}

func TestCtrlCWhileFollowingAnApplySaysTheRunGoesOn(t *testing.T) {
	following, signals := make(chan struct{}), make(chan os.Signal, 4)
	api := applying(following)
	interrupt(following, signals, syscall.SIGINT, 1)
	start := time.Now()
	r := cli{t: t, api: api, signals: signals, cancelWindow: 200 * time.Millisecond}.run("apply", api.run.ID, "--yes")

	assert.Equal(t, exitcode.Interrupted, r.code, r.stderr)
	assert.Contains(t, r.stderr, "Interrupted: stopped following. Run run-0000000000000001 continues on its agent.")
	assert.Contains(t, r.stderr, "Press Ctrl-C again within 200ms to cancel it (Terraform is interrupted on the agent), or later: opsbot cancel run-0000000000000001")
	assert.Empty(t, api.cancelled, "one Ctrl-C never cancels")
	assert.GreaterOrEqual(t, time.Since(start), 200*time.Millisecond, "it waits the window for a second Ctrl-C")
	assert.Contains(t, r.stdout, "terraform_data.x: Creating...")
}

func TestSecondCtrlCCancelsTheRunAndFollowsItToItsEnd(t *testing.T) {
	following, signals := make(chan struct{}), make(chan os.Signal, 4)
	api := applying(following)
	interrupt(following, signals, syscall.SIGINT, 2)
	r := cli{t: t, api: api, signals: signals, cancelWindow: time.Minute}.run("apply", api.run.ID, "--yes")

	assert.Equal(t, exitcode.RunEnded, r.code, r.stderr)
	assert.Equal(t, []string{api.run.ID}, api.cancelled)
	assert.Contains(t, r.stderr, "Cancel of run run-0000000000000001 requested; following it to its end")
	assert.Contains(t, r.stdout, "Run run-0000000000000001 cancelled", "the outcome ends the output, once")
}

func TestCtrlCDuringLogsFollowNeverCancels(t *testing.T) {
	following, signals := make(chan struct{}), make(chan os.Signal, 4)
	api := applying(following)
	interrupt(following, signals, syscall.SIGINT, 2)
	start := time.Now()
	r := cli{t: t, api: api, signals: signals, cancelWindow: time.Minute}.run("logs", "-f", api.run.ID)

	assert.Equal(t, exitcode.Interrupted, r.code, r.stderr)
	assert.Contains(t, r.stderr, "Run run-0000000000000001 continues on its agent; to cancel it: opsbot cancel run-0000000000000001")
	assert.NotContains(t, r.stderr, "Press Ctrl-C again")
	assert.Empty(t, api.cancelled)
	assert.Less(t, time.Since(start), 30*time.Second, "no window to wait for")
}

func TestSIGTERMWhileFollowingStopsAtOnce(t *testing.T) {
	following, signals := make(chan struct{}), make(chan os.Signal, 4)
	api := applying(following)
	interrupt(following, signals, syscall.SIGTERM, 1)
	r := cli{t: t, api: api, signals: signals, cancelWindow: time.Minute}.run("apply", api.run.ID, "--yes")

	assert.Equal(t, exitcode.Interrupted, r.code, r.stderr)
	assert.Contains(t, r.stderr, "stopped following; run run-0000000000000001 continues on its agent (opsbot cancel run-0000000000000001 to cancel it)")
	assert.Empty(t, api.cancelled)
}

// Ctrl-C at the confirmation question ends opsbot without approving.
func TestCtrlCAtTheQuestionApprovesNothing(t *testing.T) {
	api := newFakeRuns()
	api.run.State, api.run.PlanResult = "planned", planResult
	signals := make(chan os.Signal, 1)
	signals <- syscall.SIGINT
	stdin, w, _ := os.Pipe() // never answers
	t.Cleanup(func() { w.Close() })
	t.Cleanup(func() { stdin.Close() })
	r := cli{t: t, api: api, tty: true, signals: signals, in: stdin}.run("apply", api.run.ID)
	assert.Equal(t, exitcode.Interrupted, r.code, r.stderr)
	assert.Empty(t, api.approved)
}

func TestLogsFollowOfARunWaitingForApprovalSaysSoAndKeepsFollowing(t *testing.T) {
	api := newFakeRuns()
	api.run.State, api.run.PlanResult = "planned", planResult
	api.log = "Plan: 3 to add, 0 to change, 0 to destroy.\n"
	api.follow = func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
		// Someone approves it a while later.
		_ = fn(runFrame(f.set(runs.Approved, "approved by bob", nil)))
		_ = fn(runFrame(f.set(runs.Applying, "claimed by agent agent-01", nil)))
		_ = f.emit(fn, "Apply complete! Resources: 3 added, 0 changed, 0 destroyed.")
		return fn(runFrame(f.set(runs.Applied, "applied", func(r *opsapi.Run) {
			r.ApplyResult = &opsapi.RunResult{Changes: &opsapi.Changes{Add: 3}}
		})))
	}
	r := cli{t: t, api: api}.run("logs", "-f", api.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stderr, "Waiting for approval: the plan of run run-0000000000000001 waits for opsbot apply run-0000000000000001; following until the run ends")
	assert.Contains(t, r.stdout, "Apply complete!")
	assert.Regexp(t, `run run-0000000000000001 is applied`, r.stderr)
}
