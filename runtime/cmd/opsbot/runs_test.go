package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/cmd/internal/program"
	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapi"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/relay"
	"github.com/botehq/platform/runtime/runs"
)

// fakeRuns is the ops API as the run commands see it: one run whose log
// and states a test scripts.
type fakeRuns struct {
	mu  sync.Mutex
	run opsapi.Run
	log string
	// follow plays one StreamRun call (the n-th, from 0).
	follow func(f *fakeRuns, n int, offset int64, fn func(opsapi.FollowFrame) error) error

	followOffsets []int64
	queries       []opsclient.RunQuery
	followCtx     context.Context // of the latest StreamRun call
	created       []string        // workspace/op of each CreateRun
	bundleBytes   int64
	createErr     error
	updates       []opsapi.UpdateWorkspaceRequest
	approved      []string
	cancelled     []string
	workspaces    []opsapi.Workspace
	plan          *tfjson.Plan // the run's plan, when it has one
	createQuery   url.Values   // the options of the last CreateRun
	keepBundle    bool         // keep the last bundle in bundle
	bundle        []byte
	vars          []opsapi.Variable // workspace variables as set, values included
	policies      []opsapi.Policy   // every version put (policies_test.go)
	overridden    []string          // runs approved overriding policies
	webhooks      []opsapi.CreateNotificationRequest
	deliveries    []opsapi.Delivery
	drift         []opsapi.DriftStatus
	schedules     []opsapi.DriftSchedule
}

func (f *fakeRuns) CreateWorkspace(_ context.Context, tenant string, req opsapi.CreateWorkspaceRequest) (*opsapi.Workspace, error) {
	ws := opsapi.Workspace{Tenant: tenant, Name: req.Name, AutoApply: req.AutoApply, FourEyes: req.FourEyes, Labels: req.Labels, Timeouts: req.Timeouts,
		Providers: req.Providers, CreatedAt: time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC)}
	f.workspaces = append(f.workspaces, ws)
	return &ws, nil
}

func (f *fakeRuns) UpdateWorkspace(_ context.Context, _, name string, req opsapi.UpdateWorkspaceRequest) (*opsapi.Workspace, error) {
	for i := range f.workspaces {
		if ws := &f.workspaces[i]; ws.Name == name {
			if req.FourEyes != nil {
				ws.FourEyes = *req.FourEyes
			}
			if req.AutoApply != nil {
				ws.AutoApply = *req.AutoApply
			}
			if req.Description != nil {
				ws.Description = *req.Description
			}
			f.updates = append(f.updates, req)
			return ws, nil
		}
	}
	return nil, &opsclient.APIError{StatusCode: 404, Code: "not_found"}
}

func (f *fakeRuns) Workspaces(context.Context, string) ([]opsapi.Workspace, error) {
	return f.workspaces, nil
}

func (f *fakeRuns) CreateRun(_ context.Context, _, workspace string, op opsclient.RunOp, _ string, bundle io.Reader, opts ...opsclient.RunOption) (*opsapi.Run, error) {
	if f.createErr != nil {
		return nil, f.createErr
	}
	f.createQuery = url.Values{}
	for _, o := range opts {
		o(f.createQuery)
	}
	if f.keepBundle {
		data, err := io.ReadAll(bundle)
		if err != nil {
			return nil, err
		}
		f.bundle, bundle = data, bytes.NewReader(data)
	}
	n, err := io.Copy(io.Discard, bundle)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created = append(f.created, workspace+"/"+string(op))
	f.bundleBytes = n
	f.run.Operation = map[opsclient.RunOp]string{opsclient.OpPlan: "apply", opsclient.OpDestroy: "destroy"}[op]
	r := f.run
	r.Waiting = "no agent of tenant contoso is online"
	return &r, nil
}

func (f *fakeRuns) Runs(_ context.Context, _ string, q opsclient.RunQuery) (*opsapi.RunList, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if q.Workspace != "" && q.Workspace != f.run.Workspace {
		return nil, &opsclient.APIError{StatusCode: 404, Code: "not_found", Message: "tenant contoso has no workspace " + q.Workspace}
	}
	return &opsapi.RunList{Runs: []opsapi.Run{f.run}, Truncated: q.Limit == 1}, nil
}

func (f *fakeRuns) Run(_ context.Context, _, id string) (*opsapi.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != f.run.ID {
		return nil, &opsclient.APIError{StatusCode: 404, Code: "not_found", Message: "no run " + id}
	}
	r := f.run
	return &r, nil
}

func (f *fakeRuns) Approve(_ context.Context, _, id string) (*opsapi.Run, error) {
	f.approved = append(f.approved, id)
	return f.set(runs.Approved, "approved by operator", nil), nil
}

func (f *fakeRuns) Cancel(_ context.Context, _, id, _ string, _ bool) (*opsapi.Run, error) {
	f.cancelled = append(f.cancelled, id)
	return f.set(runs.Cancelled, "cancelled by operator", nil), nil
}

func (f *fakeRuns) Logs(_ context.Context, _, _ string, offset int64) (*opsapi.LogChunk, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if offset >= int64(len(f.log)) {
		return &opsapi.LogChunk{Offset: offset, NextOffset: offset, Done: f.run.Terminal()}, nil
	}
	return &opsapi.LogChunk{Text: f.log[offset:], Offset: offset, NextOffset: int64(len(f.log))}, nil
}

func (f *fakeRuns) StreamRun(ctx context.Context, _, _ string, offset int64, fn func(opsapi.FollowFrame) error) error {
	f.mu.Lock()
	f.followCtx = ctx
	n := len(f.followOffsets)
	f.followOffsets = append(f.followOffsets, offset)
	f.mu.Unlock()
	return f.follow(f, n, offset, fn)
}

// set moves the run and returns a copy.
func (f *fakeRuns) set(state runs.State, reason string, mutate func(*opsapi.Run)) *opsapi.Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.run.History = append(f.run.History, opsapi.Transition{From: f.run.State, To: string(state), At: time.Date(2026, 5, 4, 8, 0, len(f.run.History), 0, time.UTC), Reason: reason})
	f.run.State = string(state)
	if mutate != nil {
		mutate(&f.run)
	}
	r := f.run
	return &r
}

// emit appends lines to the log and sends them.
func (f *fakeRuns) emit(fn func(opsapi.FollowFrame) error, lines ...string) error {
	f.mu.Lock()
	for _, l := range lines {
		f.log += l + "\n"
	}
	off := int64(len(f.log))
	f.mu.Unlock()
	return fn(opsapi.FollowFrame{Type: opsapi.FrameLog, Lines: lines, NextOffset: off})
}

func newFakeRuns() *fakeRuns {
	return &fakeRuns{run: opsapi.Run{
		ID: "run-0000000000000001", Tenant: "contoso", Workspace: "app", Operation: "apply", State: "queued",
		CreatedAt: time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC),
		History:   []opsapi.Transition{{To: "queued", At: time.Date(2026, 5, 4, 8, 0, 0, 0, time.UTC), By: "operator", Reason: "queued"}},
	}}
}

var planResult = &opsapi.RunResult{HasChanges: true, Changes: &opsapi.Changes{Add: 3}}

// runFrame is a follow frame announcing a change of the run.
func runFrame(r *opsapi.Run) opsapi.FollowFrame {
	if r.Terminal() {
		return opsapi.FollowFrame{Type: opsapi.FrameEnd, Run: r}
	}
	return opsapi.FollowFrame{Type: opsapi.FrameRun, Run: r}
}

// playPlan is a follow that plans with changes in one stream.
func playPlan(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
	if err := fn(runFrame(f.set(runs.Planning, "claimed by agent agent-01", nil))); err != nil {
		return err
	}
	if err := f.emit(fn, "Initializing the backend...", "Plan: 3 to add, 0 to change, 0 to destroy."); err != nil {
		return err
	}
	return fn(runFrame(f.set(runs.Planned, "plan saved: 3 to add, 0 to change, 0 to destroy", func(r *opsapi.Run) { r.PlanResult = planResult })))
}

type cli struct {
	t     *testing.T
	api   *fakeRuns
	stdin string
	tty   bool
	env   map[string]string
	// signals, if set, are the process's signals; cancelWindow as in app.
	signals      chan os.Signal
	cancelWindow time.Duration
	// in, if set, is stdin instead of the stdin text.
	in io.Reader
}

func (c cli) run(args ...string) result {
	c.t.Helper()
	env := map[string]string{"HOME": c.t.TempDir(), "OPSBOT_LOCAL_URL": "http://127.0.0.1:1", "OPSBOT_API_KEY": "obk_x.y", "OPSBOT_TENANT": "contoso"}
	for k, v := range c.env {
		env[k] = v
	}
	var out, errOut bytes.Buffer
	var stdin io.Reader = strings.NewReader(c.stdin)
	if c.in != nil {
		stdin = c.in
	}
	a := &app{
		lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		stdin:  stdin, stdout: &out, stderr: &errOut,
		terminal: func() bool { return c.tty }, api: c.api,
		cancelWindow: c.cancelWindow,
	}
	ctx := context.Background()
	if c.signals != nil {
		var stop func()
		ctx, stop = program.WithSignals(ctx, c.signals, func() {})
		defer stop()
	}
	code := program.Exit("opsbot", a.run(ctx, args), &errOut)
	return result{code, out.String(), errOut.String()}
}

func configDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), []byte(`resource "terraform_data" "x" {}`), 0o644))
	return dir
}

func TestPlanFollowsTheRunAndExitsWithChanges(t *testing.T) {
	api := newFakeRuns()
	api.follow = playPlan
	r := cli{t: t, api: api}.run("plan", "--workspace", "app", "--dir", configDir(t))

	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	assert.Equal(t, []string{"app/plan"}, api.created)
	assert.Positive(t, api.bundleBytes)
	assert.Contains(t, r.stdout, "Initializing the backend...\nPlan: 3 to add")
	assert.Contains(t, r.stdout, "Plan saved: 3 to add, 0 to change, 0 to destroy.\nApply it with: opsbot apply run-0000000000000001")
	assert.Contains(t, r.stderr, "Waiting: no agent of tenant contoso is online")
	assert.Regexp(t, `==> \S+  run run-0000000000000001 is planning: claimed by agent agent-01`, r.stderr)
	assert.NotContains(t, r.stderr, "opsbot:", "the outcome is printed once, on stdout")
}

func TestPlanOutcomesHaveTheirExitCodes(t *testing.T) {
	failed := &opsapi.RunResult{Diagnostics: []opsapi.Diagnostic{
		{Severity: "error", Summary: "Unsupported argument", Detail: `An argument named "bogus" is not expected here.`, File: "main.tf", Line: 3},
	}}
	for _, tc := range []struct {
		name   string
		state  runs.State
		result *opsapi.RunResult
		code   int
		out    []string
	}{
		{"no changes", runs.NoChanges, &opsapi.RunResult{}, exitcode.OK, []string{"No changes"}},
		{"failed with diagnostics", runs.Failed, failed, exitcode.RunFailed, []string{"Error: Unsupported argument (main.tf line 3)", `  An argument named "bogus" is not expected here.`}},
		{"cancelled", runs.Cancelled, nil, exitcode.RunEnded, []string{"cancelled"}},
		{"timed out", runs.TimedOut, nil, exitcode.RunEnded, []string{"timed_out"}},
		{"auto-applied", runs.Applied, &opsapi.RunResult{Changes: &opsapi.Changes{Add: 1}, Outputs: map[string]opsapi.Output{
			"url": {Value: json.RawMessage(`"https://x"`)}, "token": {Sensitive: true},
		}}, exitcode.OK, []string{"Applied: 1 added, 0 changed, 0 destroyed", `url = "https://x"`, "token = <sensitive>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeRuns()
			api.follow = func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
				return fn(runFrame(f.set(tc.state, "because", func(r *opsapi.Run) {
					if tc.state == runs.Applied {
						r.ApplyResult = tc.result
					} else {
						r.PlanResult = tc.result
					}
				})))
			}
			r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t))
			require.Equal(t, tc.code, r.code, r.stderr)
			for _, s := range tc.out {
				assert.Contains(t, r.stdout, s)
			}
		})
	}
}

func TestFollowResumesAfterTheStreamBreaks(t *testing.T) {
	api := newFakeRuns()
	api.follow = func(f *fakeRuns, n int, offset int64, fn func(opsapi.FollowFrame) error) error {
		switch n {
		case 0:
			_ = fn(runFrame(f.set(runs.Planning, "claimed", nil)))
			_ = f.emit(fn, "line 1", "line 2")
			return opsclient.ErrStreamEnded // the server restarts
		case 1:
			return relay.ErrNoListener // not back yet
		}
		_ = f.emit(fn, "line 3")
		return fn(runFrame(f.set(runs.NoChanges, "no changes", nil)))
	}
	r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t))
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "line 1\nline 2\nline 3\n\nNo changes"), "every line once, in order:\n%s", r.stdout)
	require.Len(t, api.followOffsets, 3)
	assert.Equal(t, int64(0), api.followOffsets[0])
	assert.Equal(t, int64(len("line 1\nline 2\n")), api.followOffsets[2], "resumed where the log was")
	assert.Contains(t, r.stderr, "resuming in")
}

func TestFollowGivesUpOnErrorsThatDoNotPass(t *testing.T) {
	api := newFakeRuns()
	api.follow = func(*fakeRuns, int, int64, func(opsapi.FollowFrame) error) error {
		return &opsclient.APIError{StatusCode: 401, Code: "unauthorized"}
	}
	r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t))
	assert.Equal(t, exitcode.APIAuth, r.code, r.stderr)
	assert.Len(t, api.followOffsets, 1)
}

func TestApplyConfirmation(t *testing.T) {
	planned := func() *fakeRuns {
		api := newFakeRuns()
		api.run.State, api.run.PlanResult = "planned", planResult
		api.log = "plan output\n"
		api.follow = func(f *fakeRuns, _ int, offset int64, fn func(opsapi.FollowFrame) error) error {
			if offset != int64(len("plan output\n")) {
				return errors.New("apply must follow from the end of the plan's log")
			}
			_ = fn(runFrame(f.set(runs.Applying, "claimed by agent agent-02", nil)))
			_ = f.emit(fn, "terraform_data.x: Creating...")
			return fn(runFrame(f.set(runs.Applied, "applied", func(r *opsapi.Run) {
				r.ApplyResult = &opsapi.RunResult{Changes: &opsapi.Changes{Add: 3}, Outputs: map[string]opsapi.Output{"network": {Value: json.RawMessage(`"vnet"`)}}}
			})))
		}
		return api
	}
	for _, tc := range []struct {
		name     string
		args     []string
		tty      bool
		stdin    string
		code     int
		approved bool
		msg      string
	}{
		{"no terminal, no --yes", []string{"apply", "run-0000000000000001"}, false, "yes\n", exitcode.Usage, false, "--yes: required"},
		{"declined", []string{"apply", "run-0000000000000001"}, true, "no\n", exitcode.Changes, false, "still waits for approval"},
		{"empty answer", []string{"apply", "run-0000000000000001"}, true, "", exitcode.Changes, false, "still waits for approval"},
		{"confirmed", []string{"apply", "run-0000000000000001"}, true, "yes\n", exitcode.OK, true, "Applied: 3 added"},
		{"--yes", []string{"apply", "run-0000000000000001", "--yes"}, false, "", exitcode.OK, true, `network = "vnet"`},
		{"unknown run", []string{"apply", "run-0000000000000009", "--yes"}, false, "", exitcode.Unknown, false, "no run run-0000000000000009"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			api := planned()
			r := cli{t: t, api: api, tty: tc.tty, stdin: tc.stdin}.run(tc.args...)
			require.Equal(t, tc.code, r.code, "stdout: %s\nstderr: %s", r.stdout, r.stderr)
			assert.Contains(t, r.stdout+r.stderr, tc.msg)
			assert.Equal(t, tc.approved, len(api.approved) == 1)
			assert.NotContains(t, r.stdout, "plan output", "the plan's log is not repeated")
			if tc.tty {
				assert.Contains(t, r.stderr, "3 to add, 0 to change, 0 to destroy")
				assert.Contains(t, r.stderr, "Only 'yes' will be accepted")
			}
		})
	}
}

func TestApplyRefusesARunThatIsNotPlanned(t *testing.T) {
	api := newFakeRuns()
	api.run.State = "applied"
	r := cli{t: t, api: api}.run("apply", api.run.ID, "--yes")
	assert.Equal(t, exitcode.Error, r.code)
	assert.Contains(t, r.stderr, "is applied, not planned")
	assert.Empty(t, api.approved)
}

func TestDestroyPlansConfirmsAndApplies(t *testing.T) {
	api := newFakeRuns()
	api.follow = func(f *fakeRuns, _ int, offset int64, fn func(opsapi.FollowFrame) error) error {
		if f.run.State == "queued" {
			_ = f.emit(fn, "Plan: 0 to add, 0 to change, 3 to destroy.")
			return fn(runFrame(f.set(runs.Planned, "plan saved", func(r *opsapi.Run) {
				r.PlanResult = &opsapi.RunResult{HasChanges: true, Changes: &opsapi.Changes{Destroy: 3}}
			})))
		}
		_ = f.emit(fn, "Destroy complete!")
		return fn(runFrame(f.set(runs.Applied, "applied", func(r *opsapi.Run) {
			r.ApplyResult = &opsapi.RunResult{Changes: &opsapi.Changes{Destroy: 3}}
		})))
	}
	r := cli{t: t, api: api, tty: true, stdin: "yes\n"}.run("destroy", "-w", "app", "-d", configDir(t))
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, []string{"app/destroy"}, api.created)
	assert.Contains(t, r.stderr, "Do you really want to destroy these resources?")
	assert.Contains(t, r.stdout, "Applied: 0 added, 0 changed, 3 destroyed")
	assert.Equal(t, 1, strings.Count(r.stdout, "Plan: 0 to add"), "the plan's log once")
}

func TestDestroyWithoutTerminalNeedsYesBeforeUploading(t *testing.T) {
	api := newFakeRuns()
	r := cli{t: t, api: api}.run("destroy", "-w", "app", "-d", configDir(t))
	assert.Equal(t, exitcode.Usage, r.code)
	assert.Contains(t, r.stderr, "--yes: required")
	assert.Empty(t, api.created)
}

func TestRunCommandErrors(t *testing.T) {
	api := newFakeRuns()
	api.createErr = &opsclient.APIError{StatusCode: 413, Code: "too_large", Message: "the bundle is over the limit of 64.0 MiB"}
	dir := configDir(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"no tenant", map[string]string{"OPSBOT_TENANT": ""}, []string{"plan", "-w", "app", "-d", dir}, exitcode.Usage, "tenant: required"},
		{"no workspace", nil, []string{"plan", "-d", dir}, exitcode.Usage, "--workspace: required"},
		{"no such dir", nil, []string{"plan", "-w", "app", "-d", filepath.Join(dir, "missing")}, exitcode.Usage, "--dir:"},
		{"oversize bundle", nil, []string{"plan", "-w", "app", "-d", dir}, exitcode.Error, "refused the configuration bundle of " + dir + " as too large: the bundle is over the limit of 64.0 MiB"},
		{"bad label", nil, []string{"workspaces", "create", "w", "--label", "novalue"}, exitcode.Usage, `--label: "novalue": want key=value`},
		{"bad workspace name", nil, []string{"workspaces", "create", "bad name"}, exitcode.Usage, "workspace"},
		{"tenant flag wins", map[string]string{"OPSBOT_TENANT": "x"}, []string{"workspaces", "create", "--tenant", "contoso", "bad name"}, exitcode.Usage, "workspace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := cli{t: t, api: api, env: tc.env}.run(tc.args...)
			assert.Equal(t, tc.code, r.code, r.stderr)
			assert.Contains(t, r.stderr, tc.msg)
		})
	}
}

func TestLogsAndCancel(t *testing.T) {
	api := newFakeRuns()
	api.log = "one\ntwo\n"
	r := cli{t: t, api: api}.run("logs", api.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "one\ntwo\n", r.stdout)

	r = cli{t: t, api: api}.run("logs", api.run.ID, "--offset", "4")
	assert.Equal(t, "two\n", r.stdout)

	// logs -f of a finished run prints the log and the outcome.
	api.run.State = "failed"
	api.run.History = append(api.run.History, opsapi.Transition{From: "planning", To: "failed", Reason: "agent agent-01 stopped heartbeating"})
	r = cli{t: t, api: api}.run("logs", "-f", api.run.ID)
	assert.Equal(t, exitcode.RunFailed, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "one\ntwo\n"), r.stdout)
	assert.True(t, strings.HasSuffix(r.stdout, "\nRun run-0000000000000001 failed: agent agent-01 stopped heartbeating\n"), "the reason is the last line: %s", r.stdout)
	assert.NotContains(t, r.stderr, "opsbot: run", "and said once")

	api.run.State = "queued"
	r = cli{t: t, api: api}.run("cancel", api.run.ID)
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "Run run-0000000000000001 cancelled.\n", r.stdout)
	assert.Equal(t, []string{api.run.ID}, api.cancelled)
}

func TestRunTablesGolden(t *testing.T) {
	api := newFakeRuns()
	api.run.State = "applied"
	api.run.PlanAgent, api.run.ApplyAgent = "agent-01", "agent-02"
	api.run.PlanResult = planResult
	api.run.ApplyResult = &opsapi.RunResult{Changes: &opsapi.Changes{Add: 3}, Outputs: map[string]opsapi.Output{
		"endpoints": {Value: json.RawMessage(`["https://a","https://b"]`)}, "secret": {Sensitive: true},
	}, Diagnostics: []opsapi.Diagnostic{{Severity: "warning", Summary: "Deprecated attribute", Address: "terraform_data.x"}}}
	api.run.History = append(api.run.History,
		opsapi.Transition{From: "queued", To: "planning", At: time.Date(2026, 5, 4, 8, 0, 1, 0, time.UTC), By: "agent-01", Reason: "claimed by agent agent-01"},
		opsapi.Transition{From: "planning", To: "planned", At: time.Date(2026, 5, 4, 8, 0, 9, 0, time.UTC), By: "agent-01", Reason: "plan saved: 3 to add, 0 to change, 0 to destroy"},
	)
	api.workspaces = []opsapi.Workspace{{Tenant: "contoso", Name: "app", Labels: map[string]string{"env": "prod", "zone": "a"}, AutoApply: true, TerraformVersion: "~> 1.11", CreatedAt: time.Date(2026, 5, 4, 7, 0, 0, 0, time.UTC)}}
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"runs_show.txt", []string{"runs", "show", api.run.ID}},
		{"runs_list.txt", []string{"runs", "list"}},
		{"runs_list.json", []string{"runs", "list", "-o", "json"}},
		{"workspaces_list.txt", []string{"workspaces", "list"}},
	} {
		r := cli{t: t, api: api}.run(tc.args...)
		require.Equal(t, exitcode.OK, r.code, r.stderr)
		checkGolden(t, tc.golden, r.stdout)
	}
}

func TestAgentsShowRunningOnceAgentsHeartbeat(t *testing.T) {
	seen := time.Date(2026, 5, 4, 9, 59, 0, 0, time.UTC)
	var b bytes.Buffer
	printAgents(&b, opsapi.AgentList{Agents: []opsapi.Agent{
		{ID: "contoso/a1", Tenant: "contoso", Name: "a1", State: "online", Version: "1.0", TerraformVersion: "1.11.4", LastSeen: &seen, Capacity: 2, Running: []string{"run-1"}},
		{ID: "contoso/a2", Tenant: "contoso", Name: "a2", State: "offline"},
	}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3)
	assert.Regexp(t, `^ID\s+TENANT\s+NAME\s+STATE\s+RUNS\s+VERSION\s+TERRAFORM\s+LAST SEEN$`, lines[0])
	assert.Regexp(t, `^contoso/a1\s+contoso\s+a1\s+online\s+1/2\s+1\.0\s+1\.11\.4\s+2026-05-04T09:59:00Z$`, lines[1])
	assert.Regexp(t, `^contoso/a2\s+contoso\s+a2\s+offline\s+-\s+-\s+-\s+-$`, lines[2])
}

func TestAgentsMarkVersionsOtherThanTheDeployedOne(t *testing.T) {
	var b bytes.Buffer
	printAgents(&b, opsapi.AgentList{DeployedVersion: "v1.2.0", Agents: []opsapi.Agent{
		{ID: "contoso/a1", Tenant: "contoso", Name: "a1", State: "online", Version: "v1.2.0", Capacity: 1},
		{ID: "contoso/a2", Tenant: "contoso", Name: "a2", State: "online", Version: "v1.1.0", Outdated: true, Capacity: 1},
	}})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 5)
	assert.Regexp(t, `^contoso/a1\s+contoso\s+a1\s+online\s+0/1\s+v1\.2\.0\s+-\s+-$`, lines[1])
	assert.Regexp(t, `^contoso/a2\s+contoso\s+a2\s+online\s+0/1\s+v1\.1\.0 \*\s+-\s+-$`, lines[2])
	assert.Equal(t, "* 1 agent(s) run a version other than the deployed v1.2.0; update them (docs/agent.md).", lines[4])
}

func TestPlanWithJSONOutputKeepsStdoutForTheResult(t *testing.T) {
	api := newFakeRuns()
	api.follow = playPlan
	r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t), "-o", "json")
	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	var run opsapi.Run
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &run), "stdout is the run's JSON only:\n%s", r.stdout)
	assert.Equal(t, "planned", run.State)
	assert.Contains(t, r.stderr, "Plan: 3 to add", "the log goes to stderr")

	// opsbot logs -o json: the log is the output.
	api.set(runs.Applied, "applied", nil)
	r = cli{t: t, api: api}.run("logs", "-f", run.ID, "-o", "json")
	assert.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Equal(t, "Initializing the backend...\nPlan: 3 to add, 0 to change, 0 to destroy.\n", r.stdout)
}

func TestFollowReadsLinesStoredAfterTheLastFrame(t *testing.T) {
	api := newFakeRuns()
	api.follow = func(f *fakeRuns, _ int, _ int64, fn func(opsapi.FollowFrame) error) error {
		_ = f.emit(fn, "line 1")
		f.mu.Lock()
		f.log += "line 2\n" // stored, but the stream moves on to the change first
		f.mu.Unlock()
		return fn(runFrame(f.set(runs.Planned, "plan saved", func(r *opsapi.Run) { r.PlanResult = planResult })))
	}
	r := cli{t: t, api: api}.run("plan", "-w", "app", "-d", configDir(t))
	require.Equal(t, exitcode.Changes, r.code, r.stderr)
	assert.True(t, strings.HasPrefix(r.stdout, "line 1\nline 2\n\nPlan saved"), r.stdout)
}

func TestRunsList(t *testing.T) {
	api := newFakeRuns()
	r := cli{t: t, api: api}.run("runs", "list")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, api.run.ID)

	r = cli{t: t, api: api}.run("runs", "list", "-w", "app", "--state", "planned,failed", "--state", "queued", "--limit", "1")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stderr, "(the newest 1; more with --limit)")
	assert.Equal(t, []opsclient.RunQuery{{Limit: 20}, {Workspace: "app", States: []string{"planned", "failed", "queued"}, Limit: 1}}, api.queries)

	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"runs", "list", "--state", "done"}, exitcode.Usage, `--state: "done" is not one of`},
		{[]string{"runs", "list", "--limit", "0"}, exitcode.Usage, "--limit: 0 must be between 1 and 1000"},
		{[]string{"runs", "list", "-w", "nope"}, exitcode.Unknown, "tenant contoso has no workspace nope"},
	} {
		r := cli{t: t, api: api}.run(tc.args...)
		assert.Equal(t, tc.code, r.code, "%v: %s", tc.args, r.stderr)
		assert.Contains(t, r.stderr, tc.msg)
	}
}

func TestVersionNeedsNoConfiguration(t *testing.T) {
	r := cli{t: t, api: newFakeRuns()}.run("--version")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Regexp(t, `^opsbot \S+ .*go1\.\d+`, r.stdout)
}

// TestJSONOutputKeepsVersionConstraintsReadable: -o json writes ">= 1.10",
// not "\u003e= 1.10" (Go's HTML escaping has no place in a CLI's output).
func TestJSONOutputKeepsVersionConstraintsReadable(t *testing.T) {
	api := newFakeRuns()
	api.workspaces = []opsapi.Workspace{{Tenant: "contoso", Name: "app", TerraformVersion: ">= 1.10, < 2.0"}}
	r := cli{t: t, api: api}.run("workspaces", "list", "-o", "json")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stdout, `"terraform_version": ">= 1.10, < 2.0"`)
}

func TestUploadLineCountsFilesInEnglish(t *testing.T) {
	r := cli{t: t, api: newFakeRuns()}.run("plan", "-w", "app", "-d", configDir(t), "--detach")
	require.Equal(t, exitcode.OK, r.code, r.stderr)
	assert.Contains(t, r.stderr, " (1 file, ")
}
