// Package tfrun runs one Terraform operation (plan, apply of a saved plan,
// destroy) in a working directory and turns Terraform's machine-readable
// `-json` UI into what a deployment agent streams back: batched log lines
// with secrets redacted, and a structured result (change summary,
// diagnostics, outputs).
//
// Terraform is driven through hashicorp/terraform-exec. Cancelling the
// context interrupts Terraform the way Ctrl-C would (SIGINT), so it can
// release state locks and stop cleanly; if it is still running after the
// grace period it is killed.
//
// Per-run secrets reach the Terraform process as environment variables only;
// their values never appear in the streamed logs or the result.
package tfrun

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfresult"
)

// Operation is what a run does (package tfresult).
type Operation = tfresult.Operation

// Operations a run can perform.
const (
	Plan        = tfresult.Plan        // plan and save the plan file
	PlanDestroy = tfresult.PlanDestroy // plan a destroy and save the plan file
	Apply       = tfresult.Apply       // apply exactly the saved plan file
)

// DefaultPlanFile is the saved plan's name inside the working directory.
const DefaultPlanFile = "tfplan"

// Config configures a Runner.
type Config struct {
	// TerraformPath is the terraform executable; empty means "terraform"
	// looked up on PATH.
	TerraformPath string
	// CancelGrace is how long Terraform gets after SIGINT before it is
	// killed (default 30s).
	CancelGrace time.Duration
	// FlushInterval bounds how long a log line waits before it is sent
	// (default 200ms).
	FlushInterval time.Duration
	// BatchLines sends a batch early once it holds this many lines
	// (default 200).
	BatchLines int
}

// Validate checks the configuration and names the bad field.
func (c Config) Validate() error {
	switch {
	case c.CancelGrace < 0:
		return errors.New("tfrun config: CancelGrace must not be negative")
	case c.FlushInterval < 0:
		return errors.New("tfrun config: FlushInterval must not be negative")
	case c.BatchLines < 0:
		return errors.New("tfrun config: BatchLines must not be negative")
	}
	return nil
}

// Runner runs Terraform operations.
type Runner struct {
	cfg  Config
	path string
}

// New returns a Runner, resolving the terraform executable.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CancelGrace == 0 {
		cfg.CancelGrace = 30 * time.Second
	}
	if cfg.FlushInterval == 0 {
		cfg.FlushInterval = 200 * time.Millisecond
	}
	if cfg.BatchLines == 0 {
		cfg.BatchLines = 200
	}
	name := cfg.TerraformPath
	if name == "" {
		name = "terraform"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return nil, fmt.Errorf("cannot find terraform executable %q: %w", name, err)
	}
	return &Runner{cfg: cfg, path: path}, nil
}

// Job is one operation in one working directory.
type Job struct {
	Op Operation
	// Dir holds the Terraform configuration; the plan file is written and
	// read there. The caller owns it (and cleans it up).
	Dir string
	// PlanFile is the saved plan inside Dir (default DefaultPlanFile).
	PlanFile string
	// Env is given to the Terraform process only (e.g. ARM_CLIENT_SECRET).
	// Every value is treated as a secret.
	Env map[string]string
	// Vars are Terraform input variables for a plan, written to an
	// auto-loaded tfvars file readable only by the agent and removed when
	// the run ends (terraform-exec reserves TF_VAR_* and the command line
	// would show values to every local user). Every value is treated as a
	// secret. Terraform keeps them in the saved plan, which is therefore
	// itself sensitive.
	Vars map[string]string
	// Secrets are further values to redact from logs; an apply passes the
	// values of its plan's Vars here.
	Secrets []string
	// PlainVars are input variables that are not secret (workspace
	// variables not marked sensitive): written with Vars, never redacted.
	// A name in both takes the Vars value.
	PlainVars map[string]string
	// Plan narrows or changes a plan (-target, -replace, -refresh-only).
	Plan PlanOptions
	// CLIConfigFile is the Terraform CLI configuration for this job
	// (TF_CLI_CONFIG_FILE): plugin cache and provider installation.
	// Empty: the agent's own.
	CLIConfigFile string
	// InitGuard, if set, wraps terraform init (a shared plugin cache
	// serializes installs and leases what the run links to); the
	// environment then cannot override the CLI configuration's plugin
	// cache (TF_PLUGIN_CACHE_DIR, TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE).
	InitGuard InitGuard
}

// cacheEnv are the environment variables that override a CLI
// configuration's plugin cache settings.
var cacheEnv = []string{"TF_PLUGIN_CACHE_DIR", "TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE"}

// InitGuard wraps terraform init in dir; *tfproviders.Use is one.
type InitGuard interface {
	GuardInit(ctx context.Context, dir string, init func(context.Context) error) error
}

// PlanOptions are terraform plan's -target, -replace and -refresh-only
// (the rule is runspec's, which clients check too).
type PlanOptions = runspec.PlanOptions

// MaxPlanAddresses bounds the addresses of each PlanOptions list.
const MaxPlanAddresses = runspec.MaxPlanAddresses

// Sink receives a run's log lines as they happen, in batches.
type Sink interface {
	Logs(ctx context.Context, lines []string) error
}

// Error is a failed Terraform operation. Its text is Terraform's error
// diagnostics when there are any, else what Terraform printed on stderr,
// without the warnings about the machine's CLI configuration.
type Error struct {
	Op          Operation
	Diagnostics []Diagnostic // the errors Terraform reported
	Err         error        // terraform-exec's error (exit status, stderr)
}

func (e *Error) Error() string {
	if len(e.Diagnostics) == 0 {
		return fmt.Sprintf("terraform %s failed: %s", e.Op, withoutCLIConfigNoise(e.Err.Error()))
	}
	d := e.Diagnostics[0]
	msg := fmt.Sprintf("terraform %s failed: %s", e.Op, d.Summary)
	if w := d.Where(); w != "" {
		msg += " (" + w + ")"
	}
	if n := len(e.Diagnostics) - 1; n > 0 {
		msg += fmt.Sprintf(" and %d more error(s)", n)
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// withoutCLIConfigNoise drops Terraform's complaints about its CLI
// configuration ("There are some problems with the CLI configuration:"
// and the boxed warnings after it) from its stderr: they are about the
// agent's machine, never the run.
func withoutCLIConfigNoise(s string) string {
	const head = "There are some problems with the CLI configuration:"
	for {
		i := strings.Index(s, head)
		if i < 0 {
			return strings.TrimSpace(s)
		}
		rest := s[i+len(head):]
		// The warnings are boxes ╷ … ╵, one after the other.
		for {
			t := strings.TrimLeft(rest, " \n")
			if !strings.HasPrefix(t, "╷") {
				break
			}
			end := strings.Index(t, "╵")
			if end < 0 {
				t = ""
			} else {
				t = t[end+len("╵"):]
			}
			rest = t
		}
		s = s[:i] + rest
	}
}

// ErrCancelled reports a run stopped by its context.
var ErrCancelled = errors.New("terraform run cancelled")

// Run performs job, streaming logs to sink, and returns its result. A
// Terraform failure returns a result with Failed set and the diagnostics
// Terraform reported, plus an error; a cancelled run returns ErrCancelled.
func (r *Runner) Run(ctx context.Context, job Job, sink Sink) (*Result, error) {
	if job.Dir == "" {
		return nil, errors.New("tfrun: job Dir is empty")
	}
	if job.PlanFile == "" {
		job.PlanFile = DefaultPlanFile
	}
	plan := filepath.Join(job.Dir, job.PlanFile)

	tf, err := tfexec.NewTerraform(job.Dir, r.path)
	if err != nil {
		return nil, fmt.Errorf("cannot prepare terraform in %s: %w", job.Dir, err)
	}
	if err := tf.SetWaitDelay(r.cfg.CancelGrace); err != nil {
		return nil, fmt.Errorf("cannot set cancel grace: %w", err)
	}
	env, err := jobEnv(job)
	if err != nil {
		return nil, err
	}
	if err := tf.SetEnv(env); err != nil {
		return nil, fmt.Errorf("cannot set terraform environment: %w", err)
	}

	secrets := append([]string(nil), job.Secrets...)
	for _, v := range job.Env {
		secrets = append(secrets, v)
	}
	for _, v := range job.Vars {
		secrets = append(secrets, v)
	}
	if len(job.Vars) > 0 || len(job.PlainVars) > 0 {
		if job.Op == Apply {
			return nil, errors.New("tfrun: Vars belong to the plan; an apply uses the saved plan's values")
		}
		vars := maps.Clone(job.PlainVars)
		if vars == nil {
			vars = map[string]string{}
		}
		maps.Copy(vars, job.Vars)
		path := filepath.Join(job.Dir, varsFile)
		if err := writeVars(path, vars); err != nil {
			return nil, err
		}
		defer os.Remove(path)
	}
	if !job.Plan.Empty() {
		if job.Op == Apply {
			return nil, errors.New("tfrun: plan options belong to the plan")
		}
		if err := job.Plan.Validate(job.Op == PlanDestroy); err != nil {
			return nil, err
		}
	}
	res := &Result{Op: job.Op}
	ev := newEventStream(ctx, sink, res, newRedactor(secrets), r.cfg.FlushInterval, r.cfg.BatchLines)

	runErr := r.run(ctx, tf, job, plan, ev, res)
	_ = ev.Close() // a delivery failure is recorded in res.LogError; it does not fail the run
	switch {
	case ctx.Err() != nil:
		res.Cancelled = true
		return res, fmt.Errorf("%w: %w", ErrCancelled, context.Cause(ctx))
	case runErr != nil:
		res.Failed = true
		return res, &Error{Op: job.Op, Diagnostics: res.Errors(), Err: ev.redact.errorf(runErr)}
	}
	return res, nil
}

func (r *Runner) run(ctx context.Context, tf *tfexec.Terraform, job Job, plan string, ev *eventStream, res *Result) error {
	switch job.Op {
	case Plan, PlanDestroy:
		if err := r.init(ctx, tf, job, ev, res); err != nil {
			return fmt.Errorf("init: %w", err)
		}
		opts := []tfexec.PlanOption{tfexec.Out(job.PlanFile), tfexec.Destroy(job.Op == PlanDestroy), tfexec.RefreshOnly(job.Plan.RefreshOnly)}
		for _, a := range job.Plan.Targets {
			opts = append(opts, tfexec.Target(a))
		}
		for _, a := range job.Plan.Replace {
			opts = append(opts, tfexec.Replace(a))
		}
		changes, err := tf.PlanJSON(ctx, ev, opts...)
		if err != nil {
			return fmt.Errorf("plan: %w", err)
		}
		res.HasChanges = changes
		if err := r.showPlan(ctx, tf, job.PlanFile, ev.redact, res); err != nil && ctx.Err() == nil {
			// The plan stands; only its rendering is lost (the log has it).
			res.Diagnostics = append(res.Diagnostics, Diagnostic{Severity: "warning", Summary: "The plan cannot be shown", Detail: ev.redact.string(err.Error())})
		}
		return nil
	case Apply:
		if _, err := os.Stat(plan); err != nil {
			return fmt.Errorf("no saved plan to apply: %w", err)
		}
		if providersLeftOut(job.Dir) {
			// The plan's agent left its providers out: install exactly
			// the ones the lock file (and the plan) records.
			if err := guardedInit(ctx, tf, job, ev); err != nil {
				return fmt.Errorf("init: %w", err)
			}
		}
		if err := tf.ApplyJSON(ctx, ev, tfexec.DirOrPlan(job.PlanFile)); err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		// `terraform output -json` prints sensitive values in clear: keep it
		// out of the log stream ApplyJSON installed as stdout.
		tf.SetStdout(io.Discard)
		outs, err := tf.Output(ctx)
		if err != nil {
			return fmt.Errorf("cannot read outputs: %w", err)
		}
		setOutputs(res, outs)
		return nil
	default:
		return fmt.Errorf("tfrun: unknown operation %q", job.Op)
	}
}

// MaxPlanSummaryEntries bounds the addresses a Result's plan summary
// lists as destroyed or replaced (the plan JSON has them all).
const MaxPlanSummaryEntries = tfresult.MaxPlanSummaryEntries

// showPlan records the saved plan as JSON (planrender.Keep: no sensitive
// value; the run's secrets redacted too, as a value derived from one
// need not be marked sensitive) and its summary.
func (r *Runner) showPlan(ctx context.Context, tf *tfexec.Terraform, planFile string, red *redactor, res *Result) error {
	// `terraform show -json` prints sensitive values in clear: keep it out
	// of the log stream PlanJSON installed as stdout.
	tf.SetStdout(io.Discard)
	p, err := tf.ShowPlanFile(ctx, planFile, tfexec.JSONNumber(true))
	if err != nil {
		return fmt.Errorf("cannot read the saved plan: %w", err)
	}
	kept := planrender.Keep(p)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // so a secret's JSON form is its plain form
	if err := enc.Encode(kept); err != nil {
		return fmt.Errorf("cannot encode the plan: %w", err)
	}
	res.PlanJSON = []byte(red.json(b.String()))
	sum := planrender.Summarize(kept)
	sum.Bound(MaxPlanSummaryEntries)
	res.Plan = &sum
	return nil
}

// varsFile holds a run's input variables while it runs.
const varsFile = "zz-bote-run.auto.tfvars.json"

func writeVars(path string, vars map[string]string) error {
	data, err := json.Marshal(vars)
	if err != nil {
		return fmt.Errorf("cannot encode run variables: %w", err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("cannot write run variables: %w", err)
	}
	return nil
}

// jobEnv is runEnv with the job's CLI configuration.
func jobEnv(job Job) (map[string]string, error) {
	env, err := runEnv(job.Env)
	if err != nil {
		return nil, err
	}
	if job.CLIConfigFile != "" {
		env["TF_CLI_CONFIG_FILE"] = job.CLIConfigFile
	}
	if job.InitGuard != nil {
		// Terraform takes these over the CLI configuration's plugin cache:
		// the agent's environment or a run's secrets would move init
		// out of the guarded cache, or let it link cached packages the
		// lock file does not confirm.
		for _, k := range cacheEnv {
			delete(env, k)
		}
	}
	return env, nil
}

// runEnv is the Terraform process's environment: the agent's own (PATH,
// HOME, proxy settings), plus the run's secrets, with upgrade checks off.
// Variables terraform-exec manages itself (TF_LOG, TF_INPUT, ...) cannot be
// run secrets.
func runEnv(secrets map[string]string) (map[string]string, error) {
	if bad := tfexec.ProhibitedEnv(secrets); len(bad) > 0 {
		return nil, fmt.Errorf("tfrun: run environment may not set %v (managed by the runner)", bad)
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	env = tfexec.CleanEnv(env)
	// A CLI configuration file named but missing makes Terraform warn on
	// every command; an empty one is what it meant.
	if f := env["TF_CLI_CONFIG_FILE"]; f != "" {
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			env["TF_CLI_CONFIG_FILE"] = os.DevNull
		}
	}
	for k, v := range secrets {
		env[k] = v
	}
	env["CHECKPOINT_DISABLE"] = "1"
	return env, nil
}

// Version asks the terraform executable for its version ("1.11.4").
func (r *Runner) Version(ctx context.Context) (string, error) {
	tf, err := tfexec.NewTerraform(os.TempDir(), r.path)
	if err != nil {
		return "", fmt.Errorf("cannot run terraform: %w", err)
	}
	v, _, err := tf.Version(ctx, true)
	if err != nil {
		return "", fmt.Errorf("cannot read the terraform version: %w", err)
	}
	return v.String(), nil
}
