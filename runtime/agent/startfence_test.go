package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfrun"
)

// applyAssign is an apply of a saved plan (the "ok" configuration).
func applyAssign(t *testing.T, store *blobs, run, token string) *runproto.Assign {
	t.Helper()
	u, size, sum := store.bundle(t, "ok")
	return &runproto.Assign{RunID: run, Tenant: "contoso", Workspace: "app", Op: tfrun.Apply, ClaimToken: token,
		WorkdirURL: u, WorkdirSize: size, WorkdirSHA256: sum}
}

// TestApplyWaitsForTheServer: an apply starts only once the server
// answered run.started; run.started is repeated until then.
func TestApplyWaitsForTheServer(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	f.sender.onStarted = nil // the server does not answer yet
	f.sender.failNext = 1    // and the first request is lost
	require.NoError(t, f.deliver(t, applyAssign(t, store, "run-1", "3")))
	st := waitFor(t, f.sender, func(s *runproto.Started) bool { return s.RunID == "run-1" })
	assert.Equal(t, "3", st.ClaimToken)
	select {
	case <-tf.started:
		t.Fatal("terraform started before the server let it")
	case <-time.After(300 * time.Millisecond):
	}
	assert.Equal(t, []string{"run-1"}, f.agent.Running(), "a claim waiting to start is the agent's: its heartbeat lists it")

	require.NoError(t, f.deliver(t, &runproto.Proceed{RunID: "run-1", ClaimToken: "2"}), "another claim's answer")
	require.NoError(t, f.deliver(t, &runproto.Proceed{RunID: "run-1", ClaimToken: "3"}))
	tf.waitStarted(t)
	tf.release <- struct{}{}
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "3").Outcome)
	require.NoError(t, f.deliver(t, &runproto.Proceed{RunID: "run-1", ClaimToken: "3"}), "a late answer is ignored")
}

// TestClosedClaimNeverStartsTerraform: the server answers run.started of an
// apply claim it no longer has open (an assignment read late, after a
// restart) with run.cancel; Terraform never runs.
func TestClosedClaimNeverStartsTerraform(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	f.sender.onStarted = func(st *runproto.Started) {
		_ = f.deliver(t, &runproto.Cancel{RunID: st.RunID, ClaimToken: st.ClaimToken, Reason: "the claim is no longer open"})
	}
	require.NoError(t, f.deliver(t, applyAssign(t, store, "run-1", "2")))
	res := resultOf(t, f.sender, "run-1", "2")
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Empty(t, tf.jobs, "terraform ran for a closed claim")
	f.assertClean(t)
}

// TestPlanDoesNotWait: a plan tells the server it starts and starts: it
// changes nothing, and a lost plan goes back to the queue anyway.
func TestPlanDoesNotWait(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	f.sender.onStarted = nil // the server does not answer
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "2")))
	tf.waitStarted(t)
	st := waitFor(t, f.sender, func(s *runproto.Started) bool { return s.RunID == "run-1" })
	assert.Equal(t, runproto.PhasePlan, st.Phase)
	tf.release <- struct{}{}
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "2").Outcome)
}

// TestShutdownGivesBackClaimsNotStarted: an apply still waiting for the
// server when the agent shuts down is refused (draining), not run.
func TestShutdownGivesBackClaimsNotStarted(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) { c.ShutdownGrace = time.Minute })
	f.sender.onStarted = nil
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- f.agent.Run(ctx) }()
	require.NoError(t, f.deliver(t, applyAssign(t, store, "run-1", "2")))
	waitFor(t, f.sender, func(s *runproto.Started) bool { return s.RunID == "run-1" })
	stop()
	res := resultOf(t, f.sender, "run-1", "2")
	assert.Equal(t, runproto.Refused, res.Outcome)
	assert.True(t, res.Draining)
	assert.Contains(t, res.Reason, "shutting down")
	require.NoError(t, <-ran)
	assert.Empty(t, tf.jobs)
}

// TestOlderClaimIsIgnored: an assignment of an earlier claim of a run the
// agent executes (read late from its queue) is dropped quietly; it neither
// stops the current claim nor reports anything.
func TestOlderClaimIsIgnored(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "5")))
	tf.waitStarted(t)
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "2")))
	tf.release <- struct{}{}
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "5").Outcome)
	for _, r := range all[*runproto.Result](f.sender) {
		assert.NotEqual(t, "2", r.ClaimToken, "the older claim reported")
	}
	for _, s := range all[*runproto.Started](f.sender) {
		assert.NotEqual(t, "2", s.ClaimToken, "the older claim asked to start")
	}
}
