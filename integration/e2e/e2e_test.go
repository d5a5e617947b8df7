// Package e2e runs the product's main job end to end with real processes
// and the real terraform: Azurite, idp, gateway, devrelay, opsserver and
// deployment agents on loopback (package integration/platform), driven
// with the opsbot CLI exactly as an operator would, through the relay.
//
// One platform serves the package. The tests mostly wait (for processes,
// Terraform, the bus), so they run in parallel, more of them at once than
// Go's default of one per CPU (TestMain), each on its own workspace; a
// test that disturbs the agents it uses (kills or hangs one) has a tenant
// and agents of its own, and the ops server restart test a platform of
// its own. The one test that restarts the shared ops server
// (TestWebhooksSurviveRestartAndRetry) is not parallel: Go runs it first
// and alone.
package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/integration/procs"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
)

const (
	contoso   = "contoso"
	fabrikam  = "fabrikam"
	lonely    = "lonely"    // its agent starts only in the isolation test
	survive   = "survive"   // its agents start only in the lost-agent test
	crashed   = "crashed"   // its agents start only in the agent-crash test
	restarted = "restarted" // on the platform of the ops server restart test
)

// plat is the package's platform, started by TestMain.
var plat *platform.Platform

// Agents heartbeat every 2 s, well inside --agent-silent-after (8 s):
// with the default 10 s an agent would look lost between heartbeats.
var agents = []platform.Agent{
	{Tenant: contoso, ID: "agent-a", Start: true, Capacity: 2, Args: heartbeat},
	{Tenant: contoso, ID: "agent-b", Start: true, Capacity: 2, Args: heartbeat},
	{Tenant: fabrikam, ID: "agent-f", Start: true, Args: heartbeat},
	{Tenant: lonely, ID: "agent-l", Args: heartbeat},
	{Tenant: survive, ID: "agent-s1", Args: lostAgent},
	{Tenant: survive, ID: "agent-s2", Args: lostAgent},
	{Tenant: crashed, ID: "agent-c1", Args: heartbeat},
	{Tenant: crashed, ID: "agent-c2", Args: heartbeat},
}

var heartbeat = []string{"--heartbeat-interval", "2s"}

// lostAgent: a delivery the lost-agent test's killed agent never read is
// visible again after 5 s, not the default 60 s (agent --visibility).
var lostAgent = []string{"--heartbeat-interval", "2s", "--visibility", "5s"}

// opsServerArgs are the ops servers' flags.
var opsServerArgs = []string{
	// A silent agent is declared lost after 8 s (four heartbeats), not
	// 60 s, and looked for every second, not 10 s: the agent-crash
	// tests wait for it.
	"--agent-silent-after", "8s", "--sweep-interval", "1s",
	// Small enough for the oversize test to exceed cheaply.
	"--max-bundle-bytes", "1048576",
	// Upload links last 10 s, not 10 min: phases longer than 5 s
	// (the slow applies) renew theirs before they upload.
	"--upload-link-ttl", "10s",
	// Webhooks to the test's loopback receiver, retried within
	// seconds (notification_test.go).
	"--webhook-allow-private", "--webhook-retry-base", "300ms", "--webhook-retry-max", "2s", "--webhook-poll", "500ms",
}

// parallel is how many tests run at once unless -test.parallel says
// otherwise: they mostly wait, and Go's default (GOMAXPROCS) would run
// two at a time on a 2-core machine.
const parallel = 6

func TestMain(m *testing.M) {
	procs.Parallel(parallel)
	platform.MainShared(m, platform.Options{Agents: agents, OpsServerArgs: opsServerArgs}, &plat)
}

// others are the platforms tests started for a tenant of their own, by
// tenant; every other tenant is on plat.
var others sync.Map

// on is the platform tenant is on.
func on(tenant string) *platform.Platform {
	if p, ok := others.Load(tenant); ok {
		return p.(*platform.Platform)
	}
	return plat
}

// opsbot runs the CLI as tenant's operator and returns its result.
func opsbot(t *testing.T, tenant string, args ...string) platform.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	r, err := on(tenant).Opsbot(ctx, tenant, nil, args...)
	require.NoError(t, err)
	t.Logf("opsbot %s → %d", strings.Join(args, " "), r.Code)
	return r
}

// expect runs opsbot and requires an exit code.
func expect(t *testing.T, code int, tenant string, args ...string) platform.Result {
	t.Helper()
	return on(tenant).Expect(t, code, tenant, args...)
}

// runID is the run a plan or destroy command queued.
func runID(t *testing.T, r platform.Result) string {
	t.Helper()
	return platform.MustQueuedRun(t, r)
}

// show returns the run as the API has it.
func show(t *testing.T, tenant, id string) opsapi.Run {
	t.Helper()
	run, err := on(tenant).Run(context.Background(), tenant, id)
	require.NoError(t, err)
	return *run
}

// waitRun polls the run until cond holds.
func waitRun(t *testing.T, tenant, id string, within time.Duration, what string, cond func(opsapi.Run) bool) opsapi.Run {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		run := show(t, tenant, id)
		if cond(run) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %s did not happen within %s; it is %s (%s)", id, what, within, run.State, lastReason(run))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func inState(states ...string) func(opsapi.Run) bool {
	return func(r opsapi.Run) bool {
		for _, s := range states {
			if r.State == s {
				return true
			}
		}
		return false
	}
}

func lastReason(r opsapi.Run) string {
	if len(r.History) == 0 {
		return ""
	}
	return r.History[len(r.History)-1].Reason
}

// config returns a configuration (a testdata directory, or an absolute
// path) copied to a fresh directory. Configurations use the local backend:
// the platform keeps their state between runs (whichever agent runs them).
func config(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	src := name
	if !filepath.IsAbs(src) {
		src = filepath.Join("testdata", name)
	}
	entries, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue // examples/ holds other samples (chat, policies) beside its configuration
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644))
	}
	return dir
}

func examples(t *testing.T) string {
	t.Helper()
	root, err := procs.RepoRoot()
	require.NoError(t, err)
	return filepath.Join(root, "examples")
}

// startOpsbot starts a long-running opsbot (it follows a run).
func startOpsbot(t *testing.T, tenant string, args ...string) *procs.Process {
	t.Helper()
	p, err := on(tenant).StartOpsbot(tenant, args...)
	require.NoError(t, err)
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("--- opsbot %s ---\n%s", strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// exitCode waits for a process and returns its exit code.
func exitCode(t *testing.T, p *procs.Process, within time.Duration) int {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(within):
		t.Fatalf("opsbot did not exit within %s:\n%s", within, p.Output())
	}
	var ee *exec.ExitError
	if err := p.ExitErr(); errors.As(err, &ee) {
		return ee.ExitCode()
	} else if err != nil {
		t.Fatalf("opsbot: %v", err)
	}
	return 0
}

// setSleep sets how long the slow configuration's apply sleeps.
func setSleep(t *testing.T, dir string, seconds int) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "e2e.auto.tfvars"), fmt.Appendf(nil, "sleep_seconds = %d\n", seconds), 0o644))
}

// slowApply creates a workspace of tenant, plans the slow configuration
// in it and starts `opsbot apply RUN --yes`, returning once the apply's
// sleep has begun on an agent.
func slowApply(t *testing.T, tenant, workspace string, seconds int) (id, dir string, apply *procs.Process) {
	t.Helper()
	createWorkspace(t, tenant, workspace)
	dir = config(t, "slow")
	setSleep(t, dir, seconds)
	id = runID(t, expect(t, exitcode.Changes, tenant, "plan", "--workspace", workspace, "--dir", dir))
	apply = startOpsbot(t, tenant, "apply", id, "--yes")
	_, err := apply.WaitOutput("slow apply starting", 2*time.Minute)
	require.NoError(t, err)
	return id, dir, apply
}

// startAgents starts registered agents of a tenant at once (each waits
// to be online) and stops them at cleanup.
func startAgents(t *testing.T, tenant string, ids ...string) map[string]*procs.Process {
	t.Helper()
	started := make([]*procs.Process, len(ids))
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, a := range ids {
		t.Cleanup(func() { _ = plat.StopAgent(tenant, a) })
		wg.Go(func() { started[i], errs[i] = plat.StartAgent(tenant, a) })
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	byID := map[string]*procs.Process{}
	for i, a := range ids {
		byID[a] = started[i]
	}
	return byID
}

func createWorkspace(t *testing.T, tenant, name string, flags ...string) {
	t.Helper()
	expect(t, exitcode.OK, tenant, append([]string{"workspaces", "create", name}, flags...)...)
}

// TestAgentsAreOnline checks that every started agent heartbeats to the
// ops server and that opsbot shows when it was last seen.
func TestAgentsAreOnline(t *testing.T) {
	r := expect(t, exitcode.OK, contoso, "agents", "list")
	for _, id := range []string{"agent-a", "agent-b"} {
		assert.Regexp(t, id+`\s+online\s+\d/2\s+\S+\s+\d+\.\d+\.\d+\s+20\d\d-`, r.Stdout) // version, terraform version, last seen
	}
	assert.NotContains(t, r.Stdout, "agent-f", "another tenant's agents are not listed")
}

// TestPlanApplyDestroy is the operator's main job: plan, approve and apply
// exactly the saved plan, then destroy what was created.
func TestPlanApplyDestroy(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "app", "--description", "e2e main job")
	dir := config(t, examples(t))

	r := expect(t, exitcode.Changes, contoso, "plan", "--workspace", "app", "--dir", dir)
	id := runID(t, r)
	assert.Contains(t, r.Stdout, "Plan saved: 3 to add, 0 to change, 0 to destroy.")
	assert.Contains(t, r.Stdout, "opsbot apply "+id)
	assert.Regexp(t, `run `+id+` is planning: claimed by agent`, r.Stderr)

	// Without a terminal, apply refuses to go on without --yes.
	expect(t, 2, contoso, "apply", id)
	assert.Equal(t, "planned", show(t, contoso, id).State)

	r = expect(t, exitcode.OK, contoso, "apply", id, "--yes")
	assert.Contains(t, r.Stdout, "Applied: 3 added, 0 changed, 0 destroyed")
	assert.Contains(t, r.Stdout, `network = "bote-demo-vnet"`)
	assert.Contains(t, r.Stdout, `"https://bote-demo-app-1.internal.example"`)
	assert.Contains(t, r.Stdout, "deploying bote-demo-app-0", "the provisioner's output is streamed")
	run := show(t, contoso, id)
	assert.Equal(t, "applied", run.State)
	assert.NotEmpty(t, run.PlanAgent)
	assert.NotEmpty(t, run.ApplyAgent)
	// The platform promoted the state the apply left.
	applied := expect(t, exitcode.OK, contoso, "state", "pull", "--workspace", "app").Stdout
	assert.Contains(t, applied, `"bote-demo-vnet"`)

	// The same configuration again: nothing to do.
	r = expect(t, exitcode.OK, contoso, "plan", "--workspace", "app", "--dir", dir)
	assert.Contains(t, r.Stdout, "No changes")

	r = expect(t, exitcode.OK, contoso, "destroy", "--workspace", "app", "--dir", dir, "--yes")
	assert.Contains(t, r.Stdout, "Applied: 0 added, 0 changed, 3 destroyed")

	r = expect(t, exitcode.OK, contoso, "runs", "list", "--workspace", "app")
	assert.Equal(t, 3, strings.Count(r.Stdout, " app "), r.Stdout)

	// Both states are kept; the apply's comes back byte for byte.
	r = expect(t, exitcode.OK, contoso, "state", "versions", "--workspace", "app", "-o", "json")
	var kept opsapi.StateVersionList
	require.NoError(t, json.Unmarshal([]byte(r.Stdout), &kept))
	require.Len(t, kept.Versions, 2, r.Stdout)
	assert.True(t, kept.Versions[0].Current, "the destroy's state is current")
	assert.Equal(t, id, kept.Versions[1].Run)
	old := filepath.Join(t.TempDir(), "applied.tfstate")
	expect(t, exitcode.OK, contoso, "state", "pull", "--workspace", "app", "--version", kept.Versions[1].Version, "-O", old)
	got, err := os.ReadFile(old)
	require.NoError(t, err)
	assert.Equal(t, applied, string(got))
	assert.NotContains(t, expect(t, exitcode.OK, contoso, "state", "pull", "--workspace", "app").Stdout, `"bote-demo-vnet"`)

	// Rolled back to the applied state, the next plan finds the resources
	// there: nothing to do.
	expect(t, exitcode.OK, contoso, "state", "rollback", "--workspace", "app", "--version", kept.Versions[1].Version)
	assert.Equal(t, applied, expect(t, exitcode.OK, contoso, "state", "pull", "--workspace", "app").Stdout)
	r = expect(t, exitcode.OK, contoso, "plan", "--workspace", "app", "--dir", dir)
	assert.Contains(t, r.Stdout, "No changes")
}

// TestRunsQueueOnOneWorkspace: a second run waits for the first instead of
// failing, then runs.
func TestRunsQueueOnOneWorkspace(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "queue", "--auto-apply")
	dir := config(t, "slow")
	// The first run holds the workspace for its whole apply (~3 s).
	setSleep(t, dir, 3)

	first := runID(t, expect(t, exitcode.OK, contoso, "plan", "--workspace", "queue", "--dir", dir, "--detach"))
	r := expect(t, exitcode.OK, contoso, "plan", "--workspace", "queue", "--dir", dir, "--detach")
	second := runID(t, r)
	assert.Regexp(t, `Waiting: .*(busy with run `+first+`|run\(s\) ahead in the queue of workspace queue)`, r.Stderr)

	a := waitRun(t, contoso, first, 2*time.Minute, "applied", inState("applied", "failed", "cancelled"))
	b := waitRun(t, contoso, second, 2*time.Minute, "ended", inState("applied", "no_changes", "failed", "cancelled"))
	require.Equal(t, "applied", a.State, lastReason(a))
	require.Contains(t, []string{"applied", "no_changes"}, b.State, lastReason(b))
	assert.False(t, started(b).Before(ended(a)), "the second run started (%s) before the first ended (%s)", started(b), ended(a))
}

func started(r opsapi.Run) time.Time {
	for _, h := range r.History {
		if h.To == "planning" {
			return h.At
		}
	}
	return time.Time{}
}

func ended(r opsapi.Run) time.Time { return r.History[len(r.History)-1].At }

// TestCancelDuringApply: cancelling a long apply interrupts Terraform; the
// run ends cancelled and the workspace is free for the next run.
func TestCancelDuringApply(t *testing.T) {
	t.Parallel()
	id, dir, apply := slowApply(t, contoso, "cancel", 120)

	r := expect(t, exitcode.OK, contoso, "cancel", id)
	assert.Contains(t, r.Stdout, "cancel requested")
	assert.Equal(t, exitcode.RunEnded, exitCode(t, apply, time.Minute), "the following apply ends with the run's outcome")
	run := show(t, contoso, id)
	assert.Equal(t, "cancelled", run.State)
	assert.NotContains(t, apply.Output(), "(local-exec): slow apply done")

	// The lock is released: the next run of the workspace starts at once.
	setSleep(t, dir, 0)
	r = expect(t, exitcode.Changes, contoso, "plan", "--workspace", "cancel", "--dir", dir)
	assert.NotContains(t, r.Stderr, "is busy with run")
}

// TestCtrlCDuringApply: opsbot run as a process and sent SIGINT while it
// follows an apply says the run continues; a second SIGINT within 3 s
// cancels it, and opsbot follows the run to its cancelled end (exit 12).
func TestCtrlCDuringApply(t *testing.T) {
	t.Parallel()
	id, _, apply := slowApply(t, contoso, "ctrlc", 120)

	require.NoError(t, syscall.Kill(apply.Pid(), syscall.SIGINT))
	_, err := apply.WaitOutput("Press Ctrl-C again within 3s to cancel it", 30*time.Second)
	require.NoError(t, err)
	assert.Contains(t, apply.Output(), "Run "+id+" continues on its agent")
	assert.Equal(t, "applying", show(t, contoso, id).State, "one Ctrl-C leaves the run alone")

	require.NoError(t, syscall.Kill(apply.Pid(), syscall.SIGINT))
	assert.Equal(t, exitcode.RunEnded, exitCode(t, apply, time.Minute), apply.Output())
	assert.Contains(t, apply.Output(), "Cancel of run "+id+" requested")
	run := show(t, contoso, id)
	assert.Equal(t, "cancelled", run.State)
	assert.Contains(t, run.History[len(run.History)-1].Reason+run.History[len(run.History)-2].Reason, "interrupted by the operator (Ctrl-C in opsbot)")
	assert.NotContains(t, apply.Output(), "(local-exec): slow apply done")
}

// TestInvalidTerraformFails: Terraform's diagnostics reach the operator.
func TestInvalidTerraformFails(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "broken")
	r := expect(t, exitcode.RunFailed, contoso, "plan", "--workspace", "broken", "--dir", config(t, "invalid"))
	id := runID(t, r)
	reason := "terraform plan failed: Unsupported argument (main.tf line 4)"
	diag := "\nError: Unsupported argument\n\n  on main.tf line 4, in resource \"terraform_data\" \"broken\":\n     4:   not_an_argument = true\n\n" +
		"  An argument named \"not_an_argument\" is not expected here.\n"
	assert.True(t, strings.HasSuffix(r.Stdout, "\nRun "+id+" failed: "+reason+"\n"+diag), "the output ends with Terraform's diagnostic:\n%s", r.Stdout)
	assert.Equal(t, 1, strings.Count(r.Stdout+r.Stderr, reason), "the reason is said once")
	assert.NotContains(t, r.Stdout+r.Stderr, "exit status", "no exit status for a reason")
	assert.NotContains(t, r.Stdout+r.Stderr, "CLI configuration", "no noise from the agent's machine")

	r = expect(t, exitcode.OK, contoso, "runs", "show", id)
	assert.Regexp(t, `State:\s+failed`, r.Stdout)
	assert.Contains(t, r.Stdout, reason)
	assert.Contains(t, r.Stdout, diag)

	run := show(t, contoso, id)
	require.Len(t, run.PlanResult.Diagnostics, 1)
	d := run.PlanResult.Diagnostics[0]
	assert.Equal(t, []any{"error", "main.tf", 4, 3, 4, 18}, []any{d.Severity, d.File, d.Line, d.Column, d.EndLine, d.EndColumn})
}

// TestOversizeBundleIsRefused: the server refuses a bundle over its limit
// with a message naming it, before any run exists.
func TestOversizeBundleIsRefused(t *testing.T) {
	t.Parallel()
	createWorkspace(t, contoso, "big")
	dir := config(t, "quick")
	// 2 MiB that do not compress, over the server's 1 MiB limit.
	blob := make([]byte, 2<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(blob)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "payload.bin"), blob, 0o644))

	r := expect(t, exitcode.Error, contoso, "plan", "--workspace", "big", "--dir", dir)
	assert.Contains(t, r.Stderr, "refused the configuration bundle")
	assert.Contains(t, r.Stderr, "1.0 MiB")
	r = expect(t, exitcode.OK, contoso, "runs", "list", "--workspace", "big")
	assert.Contains(t, r.Stdout, "No runs.")
}

// TestSecretsNeverAppearInLogs: per-run secrets reach Terraform (the
// configuration prints them) but neither the run's log, nor its result,
// nor any process's output shows them.
func TestSecretsNeverAppearInLogs(t *testing.T) {
	t.Parallel()
	const token, password = "tok-e2e-7d1f3c9a2b", "pw-e2e-5e8a0c4f61"
	createWorkspace(t, contoso, "secret", "--auto-apply")
	require.NoError(t, plat.SetSecrets(contoso, "secret", map[string]string{"DEPLOY_TOKEN": token}, map[string]string{"db_password": password}))

	r := expect(t, exitcode.OK, contoso, "plan", "--workspace", "secret", "--dir", config(t, "secret"))
	id := runID(t, r)
	assert.Contains(t, r.Stdout, "token=", "the provisioner ran")
	assert.Contains(t, r.Stdout, fmt.Sprintf("password_length = %d", len(password)), "the variable reached Terraform")

	logs := expect(t, exitcode.OK, contoso, "logs", id)
	js := expect(t, exitcode.OK, contoso, "runs", "show", id, "-o", "json")
	for what, text := range map[string]string{
		"followed log": r.Stdout + r.Stderr, "stored log": logs.Stdout, "run": js.Stdout, "processes": plat.Outputs(),
	} {
		assert.NotContains(t, text, token, "the token appears in the %s", what)
		assert.NotContains(t, text, password, "the password appears in the %s", what)
	}
}

// TestTenantIsolation: a run of a tenant whose agents are all offline waits
// and says why; other tenants' agents never take it; its own agent does.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	createWorkspace(t, lonely, "iso")
	r := expect(t, exitcode.OK, lonely, "plan", "--workspace", "iso", "--dir", config(t, "quick"), "--detach")
	id := runID(t, r)
	assert.Contains(t, r.Stderr, "no agent of tenant lonely is online")

	time.Sleep(3 * time.Second) // contoso's and fabrikam's agents are idle meanwhile
	run := show(t, lonely, id)
	assert.Equal(t, "queued", run.State)
	assert.Empty(t, run.Agent)
	for _, a := range []string{"agent-a", "agent-b"} {
		assert.NotContains(t, plat.Agent(contoso, a).Output(), id)
	}
	assert.NotContains(t, plat.Agent(fabrikam, "agent-f").Output(), id)

	// Another tenant's operator path cannot see it either.
	r = opsbot(t, contoso, "runs", "show", id)
	assert.NotEqual(t, exitcode.OK, r.Code)

	_, err := plat.StartAgent(lonely, "agent-l")
	require.NoError(t, err)
	run = waitRun(t, lonely, id, 2*time.Minute, "planned", inState("planned", "failed"))
	assert.Equal(t, "planned", run.State, lastReason(run))
	assert.Contains(t, run.PlanAgent, "agent-l")
}

// TestAgentKilledMidRun: an agent that dies (kill -9) while Terraform
// applies is declared lost; the run needs attention, saying what is known,
// is never applied again, and keeps the workspace until an operator
// settles it; then the next run goes to another agent of the tenant. Its
// tenant and agents are its own: it runs in parallel with the others.
func TestAgentKilledMidRun(t *testing.T) {
	t.Parallel()
	startAgents(t, crashed, "agent-c1", "agent-c2")
	id, dir, apply := slowApply(t, crashed, "crash", 120)

	run := show(t, crashed, id)
	require.Equal(t, "applying", run.State)
	victim := strings.TrimPrefix(run.Agent, crashed+"/")
	require.NotEmpty(t, victim)
	plat.KillAgent(crashed, victim)

	assert.Equal(t, exitcode.RunFailed, exitCode(t, apply, 2*time.Minute))
	assert.Contains(t, apply.Output(), "needs_attention")
	run = show(t, crashed, id)
	assert.Equal(t, "needs_attention", run.State)
	assert.Contains(t, lastReason(run), "stopped heartbeating")
	assert.Contains(t, lastReason(run), "while Terraform was applying")
	assert.Contains(t, lastReason(run), "may have changed resources and written part of the state")
	for _, h := range run.History {
		if h.From == "applying" {
			assert.Equal(t, "needs_attention", h.To, "never given back to be applied again")
		}
	}

	setSleep(t, dir, 0)
	next := runID(t, expect(t, exitcode.OK, crashed, "plan", "--workspace", "crash", "--dir", dir, "--detach"))
	time.Sleep(3 * time.Second)
	assert.Equal(t, "queued", show(t, crashed, next).State, "the workspace waits for a person")
	expect(t, exitcode.OK, crashed, "cancel", id, "--reason", "checked: the resources are as the plan said")
	other := waitRun(t, crashed, next, 2*time.Minute, "planned", inState("planned", "failed", "no_changes"))
	assert.Equal(t, "planned", other.State, lastReason(other))
	assert.NotContains(t, other.PlanAgent, victim, "the next run goes to the agent that is alive")
}

// TestAgentLostBeforeTerraformStarted: the agent a run is claimed for
// hangs and is killed (kill -9) before Terraform started: the claim goes
// back to the queue and the run is planned and applied on the tenant's
// other agent. The killed agent, restarted, reads the stale assignment
// from its queue and is told to drop it. Its tenant and agents are its
// own: it runs in parallel with the others.
func TestAgentLostBeforeTerraformStarted(t *testing.T) {
	t.Parallel()
	ids := []string{"agent-s1", "agent-s2"}
	started := startAgents(t, survive, ids...)
	createWorkspace(t, survive, "lost")
	dir := config(t, "quick")

	// Both agents hang: the run is claimed for one of them, which never
	// sees it.
	claimed := claimedWhileHung(t, survive, "lost", dir, started)
	id := claimed.ID
	victim := strings.TrimPrefix(claimed.Agent, survive+"/")
	require.Contains(t, ids, victim)
	plat.KillAgent(survive, victim)
	for _, a := range ids {
		if a != victim {
			require.NoError(t, started[a].Resume())
		}
	}

	run := waitRun(t, survive, id, 2*time.Minute, "planned", inState("planned", "failed", "no_changes"))
	require.Equal(t, "planned", run.State, lastReason(run))
	assert.NotContains(t, run.PlanAgent, victim)
	var givenBack bool
	for _, h := range run.History {
		givenBack = givenBack || h.From == "planning" && h.To == "queued" && strings.Contains(h.Reason, "before Terraform started")
	}
	assert.True(t, givenBack, "the lost claim went back to the queue: %+v", run.History)

	expect(t, exitcode.OK, survive, "apply", id, "--yes")
	assert.Equal(t, "applied", show(t, survive, id).State)

	// Restarted, the killed agent finds the assignment of its lost claim
	// in its queue; the server tells it to drop it. The gateway handed the
	// assignment to the hung agent's session in a deliver frame (the
	// kernel took the bytes), so it stays hidden for the connector's
	// visibility (--visibility 5s here, lostAgent) from then, and the
	// restarted agent reads its queue again that long after it connects
	// (docs/gateway.md, "Delivery in the frame"): up to about 6 s after
	// the restart. A plan does not wait for the start fence: the agent
	// starts it, and the server stops it with whichever of its answers
	// comes first, the one to the plan's run.started (the claim is no
	// longer open) or the one to a heartbeat listing the run (it is
	// applied); on a loaded machine the heartbeat's sometimes comes first.
	p, err := plat.StartAgent(survive, victim)
	require.NoError(t, err)
	ended, err := p.WaitOutput(`"msg":"run phase ended"`, time.Minute)
	require.NoError(t, err)
	assert.Contains(t, ended, `"run":"`+id+`"`)
	assert.Contains(t, ended, `"outcome":"cancelled"`)
	assert.Regexp(t, `"reason":"(the claim is no longer open|run is applied)`, ended)
}

// claimedWhileHung pauses the tenant's agents, queues a plan of dir in
// workspace and returns the run once it is claimed for one of them. The
// claim must come while the server still counts the hung agents online
// (--agent-silent-after from their last heartbeat); a loaded machine may
// dispatch it later than that. Then the run is cancelled, the agents go
// on until they are online and idle again, and it tries once more.
func claimedWhileHung(t *testing.T, tenant, workspace, dir string, agents map[string]*procs.Process) opsapi.Run {
	t.Helper()
	for attempt := 1; ; attempt++ {
		for _, p := range agents {
			require.NoError(t, p.Pause())
		}
		id := runID(t, expect(t, exitcode.OK, tenant, "plan", "--workspace", workspace, "--dir", dir, "--detach"))
		deadline := time.Now().Add(2 * time.Minute)
		for {
			run := show(t, tenant, id)
			if run.State == "planning" {
				return run
			}
			require.Equal(t, "queued", run.State, lastReason(run))
			if online, _ := agentsOnline(t, tenant); online == 0 {
				break // silent now: no agent of the tenant can claim it
			}
			require.True(t, time.Now().Before(deadline), "run %s was not claimed within 2m", id)
			time.Sleep(300 * time.Millisecond)
		}
		require.Less(t, attempt, 3, "run %s was not claimed before the hung agents of %s went silent, %d times", id, tenant, attempt)
		t.Logf("run %s was not claimed before the hung agents went silent; trying again", id)
		expect(t, exitcode.OK, tenant, "cancel", id)
		for _, p := range agents {
			require.NoError(t, p.Resume())
		}
		waitRun(t, tenant, id, 2*time.Minute, "cancelled", func(r opsapi.Run) bool { return r.Terminal() })
		for ready := time.Now().Add(2 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
			if _, idle := agentsOnline(t, tenant); idle == len(agents) {
				break
			}
			require.True(t, time.Now().Before(ready), "the agents of %s are not online and idle again within 2m", tenant)
		}
	}
}

// agentsOnline counts the tenant's agents the server counts online, and
// those of them that run nothing.
func agentsOnline(t *testing.T, tenant string) (online, idle int) {
	t.Helper()
	var list opsapi.AgentList
	require.NoError(t, json.Unmarshal([]byte(expect(t, exitcode.OK, tenant, "agents", "list", "-o", "json").Stdout), &list))
	for _, a := range list.Agents {
		if a.State == opsapi.AgentOnline {
			online++
			if len(a.Running) == 0 {
				idle++
			}
		}
	}
	return online, idle
}

// TestOpsServerRestartMidRun: the ops server stops (SIGTERM) or crashes
// (SIGKILL) during an apply and starts again; the run completes, and the
// operator's opsbot, following it through the relay, carries on to the
// end. It restarts the ops server of a platform of its own, so it runs in
// parallel with the others.
func TestOpsServerRestartMidRun(t *testing.T) {
	// Its runs are the longest of the package: its platform starts
	// before the test waits for its turn to run in parallel.
	opts := platform.Options{Dir: t.TempDir(), OpsServerArgs: opsServerArgs, Agents: []platform.Agent{
		{Tenant: restarted, ID: "agent-r", Start: true, Capacity: 2, Args: heartbeat},
	}}
	type started struct {
		p   *platform.Platform
		err error
	}
	starting := make(chan started, 1)
	go func() {
		p, err := platform.Start(context.Background(), opts)
		starting <- started{p, err}
	}()
	t.Parallel()
	s := <-starting
	require.NoError(t, s.err, "cannot start the platform")
	p := s.p
	t.Cleanup(func() {
		_ = p.Stop()
		if t.Failed() {
			t.Logf("--- platform processes ---\n%s", p.Outputs())
		}
	})
	others.Store(restarted, p)
	for _, tc := range []struct {
		name string
		stop func() error
	}{
		{"stopped", p.StopOpsServer},
		{"killed", func() error { p.KillOpsServer(); return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The apply sleeps 5 s, longer than half the upload links'
			// 10 s (--upload-link-ttl): it renews them before it uploads
			// the state, after the restart (which takes well under a
			// second here).
			id, _, apply := slowApply(t, restarted, "restart-"+tc.name, 5)

			require.NoError(t, tc.stop())
			require.NoError(t, p.StartOpsServer())

			require.Equal(t, exitcode.OK, exitCode(t, apply, 2*time.Minute), apply.Output())
			run := show(t, restarted, id)
			assert.Equal(t, "applied", run.State)
			// The apply renewed its upload link (from the restarted
			// server) and its state was promoted.
			applier := strings.TrimPrefix(run.ApplyAgent, restarted+"/")
			assert.Regexp(t, `"msg":"upload links renewed".*"run":"`+id+`"`, p.Agent(restarted, applier).Output())
			versions := opsbot(t, restarted, "state", "versions", "--workspace", "restart-"+tc.name).Stdout
			assert.Regexp(t, id+`-c\d+\s+yes`, versions)
			// No line is lost from the stored log. Known limit
			// (docs/opsbot.md): batches the agent sent while the server
			// was down may be stored a few seconds after the run is
			// reported ended, too late for the follower.
			assert.EventuallyWithT(t, func(c *assert.CollectT) {
				assert.Contains(c, opsbot(t, restarted, "logs", id).Stdout, "(local-exec): slow apply done")
			}, time.Minute, time.Second, "a log line written during the restart is lost")
		})
	}
}
