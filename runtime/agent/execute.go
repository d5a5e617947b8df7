package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfrun"
)

// Names inside a run's directory: the Terraform working directory, and
// the archive of it uploaded after a plan (beside it, so it is not packed
// into itself).
const (
	configDir   = "tf"
	workdirFile = "workdir.tar.gz"
	// processDirPattern names an agent process's directory under WorkDir,
	// runDirPattern a run's directory in it.
	processDirPattern = "agent-*"
	runDirPattern     = "run-*"
)

const (
	// startedEvery is how often run.started is repeated while the server
	// has not answered it (each send is bounded by it too).
	startedEvery = 10 * time.Second
	// maxReasonBytes bounds a failure's reason (Terraform's stderr can be
	// long; the full text is in the log and the diagnostics).
	maxReasonBytes = 4 << 10
)

// shorten cuts s to at most n bytes on a rune boundary.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = " …"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// execute runs one phase and returns its result, for the caller to
// report. ctx is the run's context: it ends on cancel, timeout or
// shutdown, with the reason as its cause.
func (a *Agent) execute(ctx context.Context, asg *runproto.Assign, log *slog.Logger) *runproto.Result {
	start := time.Now()
	phase := runproto.PhaseOf(asg.Op)
	sink := &logSink{a: a, runID: asg.RunID, token: asg.ClaimToken, offset: asg.LogOffset}
	res := &runproto.Result{RunID: asg.RunID, ClaimToken: asg.ClaimToken, Phase: phase}
	var took timings

	if asg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, time.Duration(asg.Timeout), fmt.Errorf("timed out after %s", time.Duration(asg.Timeout)))
		defer cancel()
	}

	// The working directory is gone before the result goes out: a result
	// means nothing of the run is left on this machine.
	dir, err := os.MkdirTemp(a.dir, runDirPattern) // 0700
	if err == nil {
		err = a.phase(ctx, asg, start, dir, sink, res, &took)
		if rerr := os.RemoveAll(dir); rerr != nil {
			log.Error("cannot remove working directory", "dir", dir, "err", rerr)
		}
	} else {
		err = fmt.Errorf("cannot create working directory: %w", err)
	}

	var cancelled *errCancelled
	var notStarted *errNotStarted
	switch cause := context.Cause(ctx); {
	case err == nil:
		res.Outcome = runproto.Succeeded
	case errors.As(err, &notStarted):
		res.Outcome, res.Reason, res.Draining = runproto.Refused, ReasonRefused+notStarted.reason, notStarted.draining
	case ctx.Err() != nil && errors.As(cause, &cancelled):
		res.Outcome, res.Reason = runproto.Cancelled, cancelled.reason
	case ctx.Err() != nil:
		// A phase timeout is the server's to call timed_out; for the
		// agent it is a failure with its reason.
		res.Outcome, res.Reason = runproto.Failed, cause.Error()
	default:
		res.Outcome, res.Reason = runproto.Failed, shorten(err.Error(), maxReasonBytes)
	}
	if res.Result != nil {
		res.Result.Failed = res.Outcome == runproto.Failed
		res.Result.Cancelled = res.Outcome == runproto.Cancelled
	}
	res.LastSeq = sink.lastSeq()
	log.Info("run phase ended", "outcome", res.Outcome, "reason", res.Reason, "took", time.Since(start).Round(time.Millisecond),
		"fetch", took.fetch.Round(time.Millisecond), "terraform", took.terraform.Round(time.Millisecond), "upload", took.upload.Round(time.Millisecond))
	return res
}

// timings are where a phase's time went (the agent's share of pickup
// latency is fetch).
type timings struct{ fetch, terraform, upload time.Duration }

// phase does the work of execute in dir; res gets the tfrun result and the
// upload.
func (a *Agent) phase(ctx context.Context, asg *runproto.Assign, issued time.Time, dir string, sink *logSink, res *runproto.Result, took *timings) error {
	// size: one phase in order (fetch, providers, start fence, Terraform, state, upload); the job, the provider sources and timings carry through it.
	t0 := time.Now()
	secrets, err := runproto.OpenSecrets(a.cfg.Key, asg.Secrets)
	if err != nil {
		return fmt.Errorf("cannot open the run's secrets (sealed for another agent key?): %w", err)
	}
	tfDir := filepath.Join(dir, configDir)
	if err := os.Mkdir(tfDir, 0o700); err != nil {
		return fmt.Errorf("cannot create working directory: %w", err)
	}
	job := tfrun.Job{Op: asg.Op, Dir: tfDir, Env: secrets.Env}
	sources, endProviders, err := a.providers(dir, asg, &job)
	defer endProviders()
	if err != nil {
		return err
	}
	if asg.Op == tfrun.Apply {
		if err := a.download(ctx, asg.WorkdirURL, asg.WorkdirSize, asg.WorkdirSHA256, tfDir, tfarchive.WorkdirLimits); err != nil {
			return fmt.Errorf("cannot fetch the saved plan: %w", err)
		}
		// The plan carries the variables; their values are still secrets.
		job.Secrets = slices.Collect(maps.Values(secrets.Vars))
	} else {
		if err := a.download(ctx, asg.BundleURL, asg.BundleSize, asg.BundleSHA256, tfDir, tfarchive.BundleLimits); err != nil {
			return fmt.Errorf("cannot fetch the configuration bundle: %w", err)
		}
		if asg.StateURL != "" {
			// The state the last apply left; it travels on inside the saved
			// plan's working directory to the apply.
			if _, err := a.fetchState(ctx, asg.StateURL, filepath.Join(tfDir, stateFile)); err != nil {
				return err
			}
		}
		job.Vars, job.PlainVars, job.Plan = secrets.Vars, asg.Vars, asg.Plan
	}

	took.fetch = time.Since(t0)

	if err := a.awaitStart(ctx, asg, res.Phase); err != nil {
		return err
	}
	t0 = time.Now()
	tr, runErr := a.cfg.Terraform.Run(ctx, job, sink)
	took.terraform = time.Since(t0)
	if asg.Op == tfrun.Apply {
		// Store the state whatever the outcome: a failed or cancelled apply
		// may have changed resources too, and the next plan must know.
		if err := a.storeState(ctx, asg, issued, filepath.Join(tfDir, stateFile), res); err != nil {
			if runErr == nil {
				return err
			}
			a.log.Error("cannot store the workspace state after a failed apply", "run", asg.RunID, "err", err)
		}
	}
	runErr = explainProviders(tr, runErr, sources)
	scrubOutputs(tr, secrets)
	res.Result = tr
	if runErr != nil {
		return runErr
	}
	keepPlan(tr, res)
	if asg.Op == tfrun.Apply || tr == nil || !tr.HasChanges {
		return nil // nothing to apply later: no working directory to keep
	}
	t0 = time.Now()
	defer func() { took.upload = time.Since(t0) }()
	archive := filepath.Join(dir, workdirFile)
	size, sum, err := packWorkdir(tfDir, archive, a.cfg.PlanWithoutProviders)
	if err != nil {
		return err
	}
	link, err := a.uploadLink(ctx, asg, issued, false)
	if err == nil {
		err = a.upload(ctx, link, archive)
	}
	if err != nil {
		return fmt.Errorf("cannot upload the saved plan: %w", err)
	}
	res.WorkdirUploaded, res.WorkdirSize, res.WorkdirSHA256 = true, size, sum
	return nil
}

// keepPlan moves the plan's JSON into the result, if it fits.
func keepPlan(tr *tfrun.Result, res *runproto.Result) {
	if tr == nil || len(tr.PlanJSON) == 0 {
		return
	}
	if n := len(tr.PlanJSON); n > runproto.MaxPlanBytes {
		tr.Diagnostics = append(tr.Diagnostics, tfrun.Diagnostic{Severity: "warning", Summary: "Plan too large to keep",
			Detail: fmt.Sprintf("The plan is %d bytes as JSON, over the %d byte limit: its changes are in the run log only.", n, runproto.MaxPlanBytes)})
	} else {
		res.Plan = tr.PlanJSON
	}
	tr.PlanJSON = nil
}

// stateFile is where Terraform's local backend keeps state.
const stateFile = "terraform.tfstate"

// storeState uploads the local state an apply left, if any (a remote
// backend leaves none), to this claim's state blob, and puts its size and
// SHA-256 in res: the server promotes it to the workspace's state only if
// they match. It outlives a cancelled run's context: the state of an
// interrupted apply matters most.
func (a *Agent) storeState(ctx context.Context, asg *runproto.Assign, issued time.Time, path string, res *runproto.Result) error {
	if asg.StateUploadURL == "" {
		return nil
	}
	size, sum, err := fileSum(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read the workspace state: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	link, err := a.uploadLink(ctx, asg, issued, true)
	if err == nil {
		err = a.upload(ctx, link, path)
	}
	if err != nil {
		return fmt.Errorf("cannot store the workspace state: %w", err)
	}
	res.StateUploaded, res.StateSize, res.StateSHA256 = true, size, sum
	return nil
}

// scrubOutputs withholds the value of any output that contains a secret:
// a configuration that copies a secret into an output not marked
// sensitive must not carry it back to the server.
func scrubOutputs(tr *tfrun.Result, s runproto.Secrets) {
	if tr == nil || len(tr.Outputs) == 0 {
		return
	}
	var forms [][]byte
	for _, v := range slices.Concat(slices.Collect(maps.Values(s.Env)), slices.Collect(maps.Values(s.Vars))) {
		if len(v) >= minSecretLen {
			forms = append(forms, jsonForms(v)...)
		}
	}
	for name, out := range tr.Outputs {
		if slices.ContainsFunc(forms, func(f []byte) bool { return bytes.Contains(out.Value, f) }) {
			tr.Outputs[name] = tfrun.Output{Sensitive: true}
		}
	}
}

// minSecretLen matches tfrun's: shorter values are not treated as secrets.
const minSecretLen = 4

// jsonForms are the ways v can appear inside a JSON value: as is, and as
// the inside of a JSON string with and without HTML escaping.
func jsonForms(v string) [][]byte {
	forms := [][]byte{[]byte(v)}
	for _, html := range []bool{true, false} {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(html)
		_ = enc.Encode(v)
		q := bytes.TrimSpace(b.Bytes())
		forms = append(forms, q[1:len(q)-1])
	}
	return forms
}
