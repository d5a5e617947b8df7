package tfrun

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/planrender"
)

// sink records batches as they arrive.
type sink struct {
	mu      sync.Mutex
	batches [][]string
	arrived chan struct{}
	fail    error
}

func newSink() *sink { return &sink{arrived: make(chan struct{}, 1000)} }

func (s *sink) Logs(_ context.Context, lines []string) error {
	s.mu.Lock()
	s.batches = append(s.batches, append([]string(nil), lines...))
	s.mu.Unlock()
	s.arrived <- struct{}{}
	return s.fail
}

func (s *sink) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, batch := range s.batches {
		for _, l := range batch {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// workdir copies a configuration from testdata into a fresh directory.
func workdir(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", name, "main.tf"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.tf"), src, 0o600))
	return dir
}

func runner(t *testing.T, cfg Config) *Runner {
	t.Helper()
	r, err := New(cfg)
	require.NoError(t, err)
	return r
}

const secret = "s3cr3t-value-42"

func TestPlanThenApplyExactlyThePlan(t *testing.T) {
	t.Parallel()
	r := runner(t, Config{FlushInterval: 50 * time.Millisecond})
	dir := workdir(t, "ok")
	env := map[string]string{"DEPLOY_TOKEN": secret}
	ctx := context.Background()

	logs := newSink()
	plan, err := r.Run(ctx, Job{Op: Plan, Dir: dir, Env: env, Vars: map[string]string{"token": "var-secret-77"}}, logs)
	assert.NoFileExists(t, filepath.Join(dir, varsFile), "variables file removed after the run")
	require.NoError(t, err)
	assert.True(t, plan.HasChanges)
	require.NotNil(t, plan.Changes)
	assert.Equal(t, ChangeSummary{Add: 1, Operation: "plan"}, *plan.Changes)
	assert.FileExists(t, filepath.Join(dir, DefaultPlanFile))
	assert.Contains(t, logs.text(), "terraform_data.greeting: Plan to create")

	// Changing the configuration after the plan must not change what is
	// applied: apply uses the saved plan only.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "extra.tf"), []byte(`resource "terraform_data" "unplanned" {}`), 0o600))

	applyLogs := newSink()
	applied, err := r.Run(ctx, Job{Op: Apply, Dir: dir, Env: env, Secrets: []string{"var-secret-77"}}, applyLogs)
	require.NoError(t, err)
	require.NotNil(t, applied.Changes)
	assert.Equal(t, 1, applied.Changes.Add)
	assert.NotContains(t, applyLogs.text(), "unplanned")

	var greeting string
	require.NoError(t, json.Unmarshal(applied.Outputs["greeting"].Value, &greeting))
	assert.Equal(t, "hello from tfrun", greeting)
	assert.True(t, applied.Outputs["token_echo"].Sensitive)
	assert.Nil(t, applied.Outputs["token_echo"].Value, "sensitive output values are not reported")

	all := logs.text() + applyLogs.text()
	assert.NotContains(t, all, secret, "secrets never reach the streamed logs")
	assert.NotContains(t, all, "var-secret-77")
	assert.Contains(t, applyLogs.text(), "using token ***")
	out, _ := json.Marshal(applied)
	assert.NotContains(t, string(out), secret)
}

func TestInvalidConfigurationFailsWithDiagnostics(t *testing.T) {
	t.Parallel()
	r := runner(t, Config{})
	res, err := r.Run(context.Background(), Job{Op: Plan, Dir: workdir(t, "invalid")}, newSink())
	require.Error(t, err)
	require.NotNil(t, res)
	assert.True(t, res.Failed)
	require.NotEmpty(t, res.Diagnostics)
	d := res.Diagnostics[0]
	assert.Equal(t, "error", d.Severity)
	assert.Equal(t, "Reference to undeclared input variable", d.Summary)
	assert.Equal(t, "main.tf", d.File)
	assert.Equal(t, 2, d.Line)
}

func TestApplyWithoutPlanFails(t *testing.T) {
	t.Parallel()
	r := runner(t, Config{})
	res, err := r.Run(context.Background(), Job{Op: Apply, Dir: workdir(t, "ok")}, newSink())
	require.ErrorContains(t, err, "no saved plan to apply")
	assert.True(t, res.Failed)
}

func TestCancelInterruptsTerraform(t *testing.T) {
	t.Parallel()
	r := runner(t, Config{FlushInterval: 20 * time.Millisecond, CancelGrace: 5 * time.Second})
	dir := workdir(t, "slow")
	ctx := context.Background()
	_, err := r.Run(ctx, Job{Op: Plan, Dir: dir}, newSink())
	require.NoError(t, err)

	logs := newSink()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type outcome struct {
		res *Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := r.Run(ctx, Job{Op: Apply, Dir: dir}, logs)
		done <- outcome{res, err}
	}()

	// Logs stream while Terraform runs: wait for the provisioner to start.
	deadline := time.After(60 * time.Second)
	for !strings.Contains(logs.text(), "slow-start") {
		select {
		case <-logs.arrived:
		case <-deadline:
			t.Fatalf("provisioner never started; logs:\n%s", logs.text())
		}
	}
	cancelled := time.Now()
	cancel()
	select {
	case o := <-done:
		require.ErrorIs(t, o.err, ErrCancelled)
		assert.True(t, o.res.Cancelled)
		// SIGINT stops the 60 s sleep's provisioner well within the grace
		// period plus Terraform's own shutdown.
		assert.Less(t, time.Since(cancelled), 20*time.Second)
		assert.Contains(t, logs.text(), "Interrupt received")
	case <-time.After(40 * time.Second):
		t.Fatal("run did not end after cancel")
	}
}

func TestProhibitedEnvIsRefused(t *testing.T) {
	r := runner(t, Config{})
	_, err := r.Run(context.Background(), Job{Op: Plan, Dir: t.TempDir(), Env: map[string]string{"TF_VAR_x": "trace"}}, newSink())
	require.ErrorContains(t, err, "may not set [TF_VAR_x]")
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{CancelGrace: -1}, "CancelGrace"},
		{Config{FlushInterval: -1}, "FlushInterval"},
		{Config{BatchLines: -1}, "BatchLines"},
	} {
		assert.ErrorContains(t, c.cfg.Validate(), c.want)
	}
	_, err := New(Config{TerraformPath: "/nonexistent/terraform"})
	assert.ErrorContains(t, err, "cannot find terraform executable")
}

func TestStreamBatchesAndRedacts(t *testing.T) {
	logs := newSink()
	res := &Result{}
	s := newEventStream(context.Background(), logs, res, newRedactor([]string{"hunter22", "x"}), time.Hour, 2)
	_, _ = s.Write([]byte(`{"@message":"a hunter22 b","type":"log"}` + "\n" + `{"@message":"se`))
	_, _ = s.Write([]byte(`cond x","type":"log"}` + "\nplain text line\n"))
	// Two lines reached the batch size: sent without waiting for the timer.
	select {
	case <-logs.arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("full batch not sent")
	}
	_, _ = s.Write([]byte(`{"type":"diagnostic","@message":"Error: bad","diagnostic":{"severity":"error","summary":"bad hunter22"}}`))
	require.NoError(t, s.Close())
	assert.Equal(t, "a *** b\nsecond x\nplain text line\nError: bad\n", logs.text(), "short values are not treated as secrets")
	require.Len(t, res.Diagnostics, 1)
	assert.Equal(t, "bad ***", res.Diagnostics[0].Summary)
}

// TestRedactionIsExactMatchOnly pins what docs/agent.md says redaction
// does not promise: only exact occurrences within one line are replaced;
// transformed, partial and multi-line secrets pass.
func TestRedactionIsExactMatchOnly(t *testing.T) {
	const secret = "s3cr3t-Value"
	const pem = "-----BEGIN KEY-----\nMIIBkey\n-----END KEY-----"
	logs := newSink()
	s := newEventStream(context.Background(), logs, &Result{}, newRedactor([]string{secret, pem}), time.Hour, 100)
	for _, line := range []string{
		"exact " + secret,
		"base64 " + base64.StdEncoding.EncodeToString([]byte(secret)),
		"upper " + strings.ToUpper(secret),
		"part " + secret[:6],
		pem, // printed as is: three lines, none of them the secret
	} {
		_, _ = s.Write([]byte(line + "\n"))
	}
	require.NoError(t, s.Close())
	assert.Equal(t, strings.Join([]string{
		"exact ***",
		"base64 " + base64.StdEncoding.EncodeToString([]byte(secret)),
		"upper S3CR3T-VALUE",
		"part s3cr3t",
		"-----BEGIN KEY-----", "MIIBkey", "-----END KEY-----",
	}, "\n")+"\n", logs.text())
}

func TestSinkFailureDoesNotFailTheRun(t *testing.T) {
	logs := newSink()
	logs.fail = errors.New("connection dropped")
	res := &Result{}
	s := newEventStream(context.Background(), logs, res, newRedactor(nil), time.Hour, 1)
	_, _ = s.Write([]byte("line\n"))
	require.Error(t, s.Close())
	assert.Equal(t, "connection dropped", res.LogError)
	assert.False(t, res.Failed)
}

// TestPlanKeepsThePlanWithoutSecrets: a plan records the saved plan as
// JSON and its summary; no variable value reaches it, whether Terraform
// marks it sensitive or not.
func TestPlanKeepsThePlanWithoutSecrets(t *testing.T) {
	t.Parallel()
	r := runner(t, Config{})
	const token = `tok"en-<value>-91`
	res, err := r.Run(context.Background(), Job{Op: Plan, Dir: workdir(t, "leaky"), Vars: map[string]string{"token": token}}, newSink())
	require.NoError(t, err)
	require.NotNil(t, res.Plan)
	assert.Equal(t, 2, res.Plan.Add)
	require.NotEmpty(t, res.PlanJSON)
	plan := string(res.PlanJSON)
	for _, form := range []string{token, `tok\"en-<value>-91`, `tok\"en-\u003cvalue\u003e-91`, "en-<value>"} {
		assert.NotContains(t, plan, form)
	}
	assert.Contains(t, plan, planrender.MaskPrefix, "the marked value is masked")
	assert.Contains(t, plan, `"copy":"***"`, "the unmarked copy is redacted")
	assert.Contains(t, plan, `"terraform_version"`)
	out, _ := json.Marshal(res)
	assert.NotContains(t, string(out), "resource_changes", "the plan JSON travels beside the result, not in it")
}

// TestFailureIsTerraformsDiagnostic: a configuration error fails with
// Terraform's diagnostic (summary, detail, range, the line of code), not
// with its exit status and stderr; a CLI configuration file named but
// missing (as on machines that set TF_CLI_CONFIG_FILE for every user)
// adds no noise.
func TestFailureIsTerraformsDiagnostic(t *testing.T) {
	t.Setenv("TF_CLI_CONFIG_FILE", filepath.Join(t.TempDir(), "missing.tfrc"))
	r := runner(t, Config{})
	logs := newSink()
	res, err := r.Run(context.Background(), Job{Op: Plan, Dir: workdir(t, "typo")}, logs)
	require.Error(t, err)
	assert.Equal(t, "terraform plan failed: Unsupported argument (main.tf line 2)", err.Error())
	var te *Error
	require.ErrorAs(t, err, &te)
	require.Len(t, res.Diagnostics, 1)
	assert.Equal(t, Diagnostic{Severity: "error", Summary: "Unsupported argument",
		Detail: `An argument named "inptu" is not expected here. Did you mean "input"?`,
		File:   "main.tf", Line: 2, Column: 3, EndLine: 2, EndColumn: 8,
		Context: `resource "terraform_data" "x"`, Code: "  inptu = 1"}, res.Diagnostics[0])
	assert.NotContains(t, logs.text(), "CLI configuration")
}

func TestCLIConfigNoiseIsLeftOut(t *testing.T) {
	stderr := "exit status 1\nThere are some problems with the CLI configuration:\n╷\n│ Warning: Unable to open CLI configuration file\n│\n" +
		"│ The CLI configuration file at \"/root/.terraformrc\" does not exist.\n╵\n\n╷\n│ Warning: second\n╵\n\nError: Failed to query available provider packages\n"
	err := &Error{Op: Plan, Err: errors.New(stderr)}
	assert.Equal(t, "terraform plan failed: exit status 1\n\n\nError: Failed to query available provider packages", err.Error())
	two := &Error{Op: Apply, Err: errors.New("x"), Diagnostics: []Diagnostic{{Summary: "A", Address: "terraform_data.x"}, {Summary: "B"}}}
	assert.Equal(t, "terraform apply failed: A (terraform_data.x) and 1 more error(s)", two.Error())
}

// TestPlanOptions: -target narrows the plan, -refresh-only plans no
// resource change; plain variables reach Terraform and are not redacted.
func TestPlanOptions(t *testing.T) {
	t.Parallel()
	r := runner(t, Config{})
	ctx := context.Background()
	logs := newSink()
	res, err := r.Run(ctx, Job{Op: Plan, Dir: workdir(t, "two"), PlainVars: map[string]string{"region": "westeurope"},
		Plan: PlanOptions{Targets: []string{"terraform_data.a"}}}, logs)
	require.NoError(t, err)
	require.NotNil(t, res.Changes)
	assert.Equal(t, 1, res.Changes.Add, "only the target")
	assert.Contains(t, string(res.PlanJSON), `"westeurope"`, "a plain variable is not a secret")

	res, err = r.Run(ctx, Job{Op: Plan, Dir: workdir(t, "two"), PlainVars: map[string]string{"region": "x"}, Plan: PlanOptions{RefreshOnly: true}}, newSink())
	require.NoError(t, err)
	assert.Equal(t, 0, res.Plan.Add, "a refresh-only plan creates nothing")

	_, err = r.Run(ctx, Job{Op: PlanDestroy, Dir: workdir(t, "two"), Plan: PlanOptions{Replace: []string{"terraform_data.a"}}}, newSink())
	require.ErrorContains(t, err, "a destroy takes -target only")
}
