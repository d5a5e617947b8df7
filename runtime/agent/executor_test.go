package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/clientauth"
	"github.com/botehq/platform/runtime/connector"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfrun"
)

// fakeTerraform runs until released or cancelled, logging what it got.
type fakeTerraform struct {
	mu      sync.Mutex
	jobs    []tfrun.Job
	started chan string // the job's directory
	release chan struct{}
	lines   [][]string // batches sent to the sink before blocking
}

func newFakeTerraform() *fakeTerraform {
	return &fakeTerraform{started: make(chan string, 10), release: make(chan struct{})}
}

func (f *fakeTerraform) Run(ctx context.Context, job tfrun.Job, sink tfrun.Sink) (*tfrun.Result, error) {
	f.mu.Lock()
	f.jobs = append(f.jobs, job)
	f.mu.Unlock()
	for _, b := range f.lines {
		if err := sink.Logs(ctx, b); err != nil {
			return nil, err
		}
	}
	f.started <- job.Dir
	select {
	case <-f.release:
		return &tfrun.Result{Op: job.Op}, nil
	case <-ctx.Done():
		return &tfrun.Result{Op: job.Op, Cancelled: true}, fmt.Errorf("%w: %w", tfrun.ErrCancelled, context.Cause(ctx))
	}
}

func (f *fakeTerraform) waitStarted(t *testing.T) string {
	t.Helper()
	select {
	case d := <-f.started:
		return d
	case <-time.After(30 * time.Second):
		t.Fatal("terraform did not start")
		return ""
	}
}

// planAssign is a plan of the "ok" testdata bundle.
func planAssign(t *testing.T, store *blobs, run, token string) *runproto.Assign {
	t.Helper()
	u, size, sum := store.bundle(t, "ok")
	return &runproto.Assign{RunID: run, Tenant: "contoso", Workspace: "app", Op: tfrun.Plan, ClaimToken: token,
		BundleURL: u, BundleSize: size, BundleSHA256: sum, UploadURL: store.URL + "/upload/" + run}
}

func TestConcurrencyLimit(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) { c.Concurrency = 1; c.QueueWait = 300 * time.Millisecond })

	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	tf.waitStarted(t)

	// Above the limit: waits QueueWait, then is refused so the server can
	// free the workspace.
	start := time.Now()
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-2", "1")))
	assert.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond)
	refused := resultOf(t, f.sender, "run-2", "1")
	assert.Equal(t, runproto.Refused, refused.Outcome, "the server gives the claim to another agent")
	assert.False(t, refused.Draining)
	assert.True(t, strings.HasPrefix(refused.Reason, ReasonRefused), refused.Reason)
	assert.Contains(t, refused.Reason, "concurrency limit")
	assert.Equal(t, []string{"run-1"}, f.agent.Running())

	// A slot freeing up within QueueWait takes the waiting assignment.
	f.agent.cfg.QueueWait = 30 * time.Second
	done := make(chan error)
	go func() { done <- f.deliver(t, planAssign(t, store, "run-3", "1")) }()
	time.Sleep(100 * time.Millisecond)
	tf.release <- struct{}{}
	require.NoError(t, <-done)
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "1").Outcome)
	tf.waitStarted(t)
	assert.Equal(t, []string{"run-3"}, f.agent.Running())
	tf.release <- struct{}{}
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-3", "1").Outcome)
}

// TestWaitingAssignments: an assignment waiting for a slot counts as taken
// on (heartbeats list it, so the server does not assign it again), a
// second copy of it is ignored, and a cancel ends it without running it.
func TestWaitingAssignments(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) { c.QueueWait = time.Minute })
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	tf.waitStarted(t)

	waiting := planAssign(t, store, "run-2", "1")
	done := make(chan error, 2)
	go func() { done <- f.deliver(t, waiting) }()
	require.Eventually(t, func() bool { return len(f.agent.Running()) == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []string{"run-1", "run-2"}, f.agent.Running())
	go func() { done <- f.deliver(t, waiting) }()
	require.NoError(t, <-done, "the second copy returns at once")

	require.NoError(t, f.deliver(t, &runproto.Cancel{RunID: "run-2", Reason: "cancelled by bob"}))
	require.NoError(t, <-done)
	res := resultOf(t, f.sender, "run-2", "1")
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Equal(t, "cancelled by bob", res.Reason)
	assert.Equal(t, []string{"run-1"}, f.agent.Running())
	tf.mu.Lock()
	assert.Len(t, tf.jobs, 1, "the cancelled assignment never ran")
	tf.mu.Unlock()
}

// TestNewerClaimSupersedes: a new claim of a run this agent still runs
// (the server assigned it again) replaces the old one, even at the limit.
func TestNewerClaimSupersedes(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) { c.QueueWait = 10 * time.Second })
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	tf.waitStarted(t)
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "4")))
	old := resultOf(t, f.sender, "run-1", "1")
	assert.Equal(t, runproto.Failed, old.Outcome)
	assert.Contains(t, old.Reason, "superseded by claim 4")
	tf.waitStarted(t)
	tf.release <- struct{}{}
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "4").Outcome)
}

// TestStopWithoutClaimToken: the server's answer to a heartbeat names only
// the run (runs.Stop); the agent stops it.
func TestStopWithoutClaimToken(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "3")))
	tf.waitStarted(t)
	require.NoError(t, f.deliver(t, &runproto.Cancel{RunID: "run-1", Reason: "timed out"}))
	res := resultOf(t, f.sender, "run-1", "3")
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Equal(t, "timed out", res.Reason)
	f.assertClean(t)
}

func TestRedeliveredAssignmentRunsOnce(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) { c.Concurrency = 2 })
	asg := planAssign(t, store, "run-1", "1")
	require.NoError(t, f.deliver(t, asg))
	tf.waitStarted(t)
	require.NoError(t, f.deliver(t, asg)) // while running
	tf.release <- struct{}{}
	resultOf(t, f.sender, "run-1", "1")
	require.NoError(t, f.deliver(t, asg)) // after it ended
	time.Sleep(100 * time.Millisecond)
	tf.mu.Lock()
	assert.Len(t, tf.jobs, 1)
	tf.mu.Unlock()
	assert.Len(t, all[*runproto.Result](f.sender), 1)
}

func TestCancelBeforeAssignment(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf)
	require.NoError(t, f.deliver(t, &runproto.Cancel{RunID: "run-1", ClaimToken: "1", Reason: "cancelled by bob"}))
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	res := resultOf(t, f.sender, "run-1", "1")
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Equal(t, "cancelled by bob", res.Reason)
	assert.Empty(t, tf.jobs)
}

func TestRefusedAndFailedAssignments(t *testing.T) {
	otherKey, err := clientauth.GenerateKey()
	require.NoError(t, err)
	store := newBlobs(t)
	tests := []struct {
		name   string
		change func(a *runproto.Assign)
		reason string
	}{
		{"another tenant", func(a *runproto.Assign) { a.Tenant = "fabrikam" }, ReasonRefused + "assignment names tenant fabrikam"},
		{"secrets sealed for another agent", func(a *runproto.Assign) {
			a.Secrets, _ = runproto.SealSecrets(&otherKey.PublicKey, runproto.Secrets{Env: map[string]string{"X": "secret-value"}})
		}, "cannot open the run's secrets"},
		{"tampered bundle", func(a *runproto.Assign) { a.BundleSHA256 = strings.Repeat("0", 64) }, "does not match its size or SHA-256"},
		{"wrong bundle size", func(a *runproto.Assign) { a.BundleSize++ }, "does not match its size or SHA-256"},
		{"missing bundle", func(a *runproto.Assign) { a.BundleURL = store.URL + "/nothing?sig=x" }, "404"},
		{"timed out", func(a *runproto.Assign) { a.Timeout = runproto.Duration(200 * time.Millisecond) }, "timed out after 200ms"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tf := newFakeTerraform()
			f := newFixture(t, tf)
			asg := planAssign(t, store, fmt.Sprintf("run-%d", i), "1")
			tt.change(asg)
			require.NoError(t, f.deliver(t, asg))
			res := resultOf(t, f.sender, asg.RunID, "1")
			assert.Equal(t, runproto.Failed, res.Outcome)
			assert.Contains(t, res.Reason, tt.reason)
			assert.NotContains(t, res.Reason, "sig=", "a SAS link leaked into the reason")
			assert.False(t, res.WorkdirUploaded)
			f.assertClean(t)
		})
	}
}

func TestDropsMessagesThatAreNotAssignments(t *testing.T) {
	f := newFixture(t, newFakeTerraform())
	for _, m := range []*connector.Message{
		{ID: "1", ContentType: "text/plain", Body: []byte("hello")},
		{ID: "2", ContentType: runproto.ContentType, Body: []byte(`{"type":"run.assign"}`)},
		{ID: "3", ContentType: runproto.ContentType, Body: []byte(`{"type":"run.bogus"}`)},
		{ID: "4", ContentType: runproto.ContentType, Body: []byte(`{"type":"agent.heartbeat","capacity":1}`)},
	} {
		assert.NoError(t, f.agent.Handle(context.Background(), m), "a bad message must not come back")
	}
	assert.Empty(t, all[runproto.Message](f.sender))
}

// TestLogsInOrderThroughDroppedSessions: sends that fail are retried and
// batches keep their order and seqs.
func TestLogsInOrderThroughDroppedSessions(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	for i := range 5 {
		tf.lines = append(tf.lines, []string{fmt.Sprintf("line %d", i)})
	}
	f := newFixture(t, tf)
	f.sender.failNext = 3
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	tf.waitStarted(t)
	tf.release <- struct{}{}
	res := resultOf(t, f.sender, "run-1", "1")
	assert.Equal(t, []string{"line 0", "line 1", "line 2", "line 3", "line 4"}, logLines(t, f.sender, "run-1", "1"))
	assert.Equal(t, int64(4), res.LastSeq)
}

func TestHeartbeatAndGracefulShutdown(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) {
		c.HeartbeatInterval = 50 * time.Millisecond
		c.ShutdownGrace = 300 * time.Millisecond
		c.Concurrency = 3
		c.Labels = map[string]string{"env": "prod"}
		c.Version = "v1.2.3"
		c.TerraformVersion = "1.11.4"
	})
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- f.agent.Run(ctx) }()

	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	tf.waitStarted(t)
	hb := waitFor(t, f.sender, func(h *runproto.Heartbeat) bool { return len(h.Running) == 1 })
	assert.Equal(t, []string{"run-1"}, hb.Running)
	assert.Equal(t, 3, hb.Capacity)
	assert.Equal(t, map[string]string{"env": "prod"}, hb.Labels)
	assert.Equal(t, "v1.2.3", hb.Version)
	assert.Equal(t, "1.11.4", hb.TerraformVersion)

	// Shutting down: new runs are refused, the running one gets the grace
	// and is then cancelled.
	stop()
	require.Eventually(t, func() bool {
		f.agent.mu.Lock()
		defer f.agent.mu.Unlock()
		return f.agent.draining
	}, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-2", "1")))
	refused := resultOf(t, f.sender, "run-2", "1")
	assert.Contains(t, refused.Reason, "shutting down")
	assert.Equal(t, runproto.Refused, refused.Outcome)
	assert.True(t, refused.Draining, "the server gives a draining agent no further run")
	waitFor(t, f.sender, func(h *runproto.Heartbeat) bool { return h.Draining })

	select {
	case err := <-ran:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	res := resultOf(t, f.sender, "run-1", "1")
	assert.Equal(t, runproto.Cancelled, res.Outcome)
	assert.Contains(t, res.Reason, "shut down")
	f.assertClean(t)
}

func TestGracefulShutdownLetsRunsFinish(t *testing.T) {
	store := newBlobs(t)
	tf := newFakeTerraform()
	f := newFixture(t, tf, func(c *Config) { c.ShutdownGrace = time.Minute })
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error)
	go func() { ran <- f.agent.Run(ctx) }()
	require.NoError(t, f.deliver(t, planAssign(t, store, "run-1", "1")))
	tf.waitStarted(t)
	stop()
	time.Sleep(100 * time.Millisecond)
	tf.release <- struct{}{}
	require.NoError(t, <-ran)
	assert.Equal(t, runproto.Succeeded, resultOf(t, f.sender, "run-1", "1").Outcome)
}

func TestSplitLines(t *testing.T) {
	long := strings.Repeat("é", 100)
	tests := []struct {
		name   string
		lines  []string
		limit  int
		chunks int
	}{
		{"empty", nil, 100, 0},
		{"one chunk", []string{"a", "b", "c"}, 100, 1},
		{"split by size", []string{strings.Repeat("a", 40), strings.Repeat("b", 40), strings.Repeat("c", 40)}, 100, 2},
		{"escapes count", []string{strings.Repeat(`"`, 30), strings.Repeat(`"`, 30)}, 100, 2},
		{"long line truncated", []string{long}, 60, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chunks := splitLines(tt.lines, tt.limit)
			assert.Len(t, chunks, tt.chunks)
			var n int
			for _, c := range chunks {
				size := 0
				for _, l := range c {
					size += encodedLen(l) + 1
				}
				assert.LessOrEqual(t, size, tt.limit)
				n += len(c)
			}
			assert.Equal(t, len(tt.lines), n, "no line lost")
		})
	}
	cut := splitLines([]string{long}, 60)[0][0]
	assert.True(t, strings.HasSuffix(cut, truncatedMark))
	assert.True(t, strings.HasPrefix(long, strings.TrimSuffix(cut, truncatedMark)))
}

func TestShorten(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer reason", 10, "a long …"},
		{"ééééé", 8, "éé …"}, // never half a rune
	}
	for _, tt := range tests {
		got := shorten(tt.in, tt.n)
		assert.Equal(t, tt.want, got)
		assert.LessOrEqual(t, len(got), tt.n)
	}
}

func TestConfigValidate(t *testing.T) {
	key, err := clientauth.GenerateKey()
	require.NoError(t, err)
	good := Config{Tenant: "contoso", ID: "agent-1", Key: key, WorkDir: t.TempDir(), Terraform: newFakeTerraform(), Sender: newSender()}
	require.NoError(t, good.Validate())
	tests := []struct {
		field  string
		change func(*Config)
	}{
		{"Tenant", func(c *Config) { c.Tenant = "" }},
		{"Tenant", func(c *Config) { c.Tenant = "a/b" }},
		{"ID", func(c *Config) { c.ID = "" }},
		{"Key", func(c *Config) { c.Key = nil }},
		{"WorkDir", func(c *Config) { c.WorkDir = "" }},
		{"Concurrency", func(c *Config) { c.Concurrency = -1 }},
		{"QueueWait", func(c *Config) { c.QueueWait = -time.Second }},
		{"HeartbeatInterval", func(c *Config) { c.HeartbeatInterval = -time.Second }},
		{"ShutdownGrace", func(c *Config) { c.ShutdownGrace = -time.Second }},
		{"Terraform", func(c *Config) { c.Terraform = nil }},
		{"Sender", func(c *Config) { c.Sender = nil }},
		{"Server", func(c *Config) { c.Server = "ops server" }},
		{"Labels", func(c *Config) { c.Labels = map[string]string{"bad key": "x"} }},
		{"Labels", func(c *Config) { c.Labels = map[string]string{"env": strings.Repeat("x", 257)} }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			c := good
			tt.change(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.field)
		})
	}
}

func TestWorkDirShared(t *testing.T) {
	base := t.TempDir()
	// A process that died mid-run: its directory is not locked.
	dead := filepath.Join(base, "agent-dead")
	require.NoError(t, os.MkdirAll(filepath.Join(dead, "run-1", "tf"), 0o700))
	require.NoError(t, os.WriteFile(filepath.Join(dead, "run-1", "tf", "terraform.tfstate"), []byte("{}"), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dead, lockName), nil, 0o600))
	// A live process's directory.
	live := filepath.Join(base, "agent-live")
	require.NoError(t, os.MkdirAll(filepath.Join(live, "run-2"), 0o700))
	l, err := lockFile(filepath.Join(live, lockName), false)
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, os.WriteFile(filepath.Join(base, "keep.txt"), nil, 0o600))

	f1 := newFixture(t, newFakeTerraform(), func(c *Config) { c.WorkDir = base })
	assert.NoDirExists(t, dead, "a dead process's runs are removed")
	assert.DirExists(t, filepath.Join(live, "run-2"), "a live process's runs are not")
	assert.FileExists(t, filepath.Join(base, "keep.txt"))
	f2 := newFixture(t, newFakeTerraform(), func(c *Config) { c.WorkDir = base })
	assert.DirExists(t, f1.agent.dir, "a second agent on the same work directory leaves the first alone")
	assert.NotEqual(t, f1.agent.dir, f2.agent.dir)

	// Run's end removes the process's directory.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, f1.agent.Run(ctx))
	assert.NoDirExists(t, f1.agent.dir)
	assert.DirExists(t, f2.agent.dir)
}
