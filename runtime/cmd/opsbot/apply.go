package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/cmd/opsbot/exitcode"
	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/tfarchive"
)

// followFlags are shared by the commands that start or resume a run.
type followFlags struct {
	detach  bool
	yes     bool
	message string
	run     runOptions // --var, --target, ...
	// overridePolicy approves despite failed mandatory-with-override
	// policies (apply --override-policy).
	overridePolicy bool
}

func (a *app) planCommand() *cobra.Command {
	var workspace, dir string
	var ff followFlags
	c := &cobra.Command{
		Use:   "plan --workspace W --dir DIR",
		Short: "Plan a configuration: pack DIR, upload it, and follow the run live",
		Long: `Pack DIR (a Terraform configuration; what its .terraformignore excludes is
left out, without one .git/ and .terraform/), upload it as a new run of the
workspace, and follow the run: its state changes and Terraform's log, live,
then the plan as terraform plan prints it. The plan is saved; apply it with
opsbot apply RUN (or the workspace applies it by itself with --auto-apply).

Exit codes: 0 no changes (or applied, on an auto-apply workspace), 10 the plan
has changes and waits for approval, 11 the run failed, 12 it was cancelled or
timed out; with --detach, 0 once the run is queued.`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			return a.startRun(cmd.Context(), tenant, api, workspace, dir, opsapitypes.OpApply, ff)
		}),
	}
	runFlags(c, &workspace, &dir, &ff, false)
	return c
}

func (a *app) destroyCommand() *cobra.Command {
	var workspace, dir string
	var ff followFlags
	c := &cobra.Command{
		Use:   "destroy --workspace W --dir DIR",
		Short: "Plan the destruction of a workspace's resources, confirm, and apply it",
		Long: `Upload DIR as a destroy run of the workspace, follow the plan, show it and
what it destroys, then ask for confirmation (or take --yes) and apply it,
following the apply.

Exit codes: 0 destroyed (or nothing to destroy; with --detach, once queued),
10 the plan waits for approval (declined), 11 failed, 12 cancelled or timed
out.`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			return a.startRun(cmd.Context(), tenant, api, workspace, dir, opsapitypes.OpDestroy, ff)
		}),
	}
	runFlags(c, &workspace, &dir, &ff, true)
	return c
}

func runFlags(c *cobra.Command, workspace, dir *string, ff *followFlags, confirm bool) {
	workspaceFlag(c, workspace)
	c.Flags().StringVarP(dir, "dir", "d", ".", "directory holding the Terraform configuration")
	c.Flags().BoolVar(&ff.detach, "detach", false, "return once the run is queued instead of following it")
	c.Flags().StringVarP(&ff.message, "message", "m", "", "why this run: kept with the run")
	if confirm {
		c.Flags().BoolVarP(&ff.yes, "yes", "y", false, "apply without asking (required without a terminal)")
	}
	ff.run.flags(c, confirm)
}

// startRun packs dir, creates the run and follows it.
func (a *app) startRun(ctx context.Context, tenant string, api runsAPI, workspace, dir string, op string, ff followFlags) error {
	if err := requireWorkspace(workspace); err != nil {
		return err
	}
	if op == opsapitypes.OpDestroy && !ff.yes && !ff.detach && !a.stdinIsTerminal() {
		// Fail before uploading anything rather than after the plan.
		return usageError{errors.New("--yes: required to destroy without a terminal to confirm on")}
	}
	extra, err := ff.run.bundleFiles()
	if err != nil {
		return err
	}
	bundle, stats, err := packBundle(dir, extra)
	if err != nil {
		return err
	}
	defer os.Remove(bundle.Name())
	defer bundle.Close()
	ignored := ""
	if stats.Ignored > 0 {
		ignored = fmt.Sprintf("; %d left out by .terraformignore", stats.Ignored)
	}
	files := "files"
	if stats.Files == 1 {
		files = "file"
	}
	fmt.Fprintf(a.stderr, "Uploading %s (%d %s, %s%s) to workspace %s...\n", dir, stats.Files, files, tfarchive.FormatBytes(stats.Bytes), ignored, workspace)
	apiOp := opsclient.OpPlan
	if op == opsapitypes.OpDestroy {
		apiOp = opsclient.OpDestroy
	}
	run, err := api.CreateRun(ctx, tenant, workspace, apiOp, ff.message, bundle, opsclient.WithPlanOptions(ff.run.plan))
	if err != nil {
		return explainCreateRun(err, dir)
	}
	fmt.Fprintf(a.stderr, "Run %s queued (%s).\n", run.ID, apiOp)
	a.showWaiting(run)
	if ff.detach {
		return a.print(run, func(w io.Writer) { fmt.Fprintln(w, run.ID) })
	}
	final, offset, err := a.follow(ctx, api, tenant, run.ID, 0, untilSettled, true)
	if err != nil {
		return err
	}
	if op == opsapitypes.OpDestroy && final.State == opsapitypes.StatePlanned {
		// A plan nobody has seen yet: shown even with --yes, as terraform
		// destroy -auto-approve does.
		if ff.yes {
			a.beforeApproval(ctx, api, tenant, final)
		}
		return a.approveAndFollow(ctx, api, tenant, final, offset, ff)
	}
	return a.showPlanned(ctx, api, tenant, final)
}

func (a *app) applyCommand() *cobra.Command {
	var ff followFlags
	c := &cobra.Command{
		Use:   "apply RUN",
		Short: "Approve a planned run and follow its apply (asks for confirmation unless --yes)",
		Long: `Show the saved plan's changes as terraform plan prints them and what it
destroys or replaces, ask for confirmation (type yes), approve the run and
follow its apply: the agent applies exactly the saved plan. Without a
terminal, --yes is required (it approves without showing the plan again, as
terraform apply does with a saved plan).

Exit codes: 0 applied, 10 not approved (declined), 11 failed, 12 cancelled or
timed out; with --detach, 0 once approved.`,
		Args: cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			if !ff.yes && !a.stdinIsTerminal() {
				return usageError{errors.New("--yes: required to apply without a terminal to confirm on")}
			}
			run, err := api.Run(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			if run.State != opsapitypes.StatePlanned {
				return fmt.Errorf("run %s is %s, not planned: only a saved plan waiting for approval can be applied", run.ID, run.State)
			}
			// The plan's log was shown when it ran; follow from its end.
			offset, err := logEnd(cmd.Context(), api, tenant, run.ID)
			if err != nil {
				return err
			}
			return a.approveAndFollow(cmd.Context(), api, tenant, run, offset, ff)
		}),
	}
	c.Flags().BoolVarP(&ff.yes, "yes", "y", false, "apply without asking (required without a terminal)")
	c.Flags().BoolVar(&ff.detach, "detach", false, "return once approved instead of following the apply")
	c.Flags().BoolVar(&ff.overridePolicy, "override-policy", false, "approve although mandatory-with-override policies failed (approver role; recorded in the run and the audit log)")
	return c
}

// approveAndFollow confirms, approves a planned run and follows the apply.
// The log is followed from offset.
func (a *app) approveAndFollow(ctx context.Context, api runsAPI, tenant string, run *opsapitypes.Run, offset int64, ff followFlags) error {
	if run.PolicyChanged != "" {
		printPolicyCheck(a.stderr, run)
		return fmt.Errorf("run %s cannot be approved: %s", run.ID, run.PolicyChanged)
	}
	if c := run.Policy; c != nil && c.Blocked && (!ff.overridePolicy || hasFailed(c, opsapitypes.EnforcementMandatory)) {
		printPolicyCheck(a.stderr, run)
		hint := ""
		if !hasFailed(c, opsapitypes.EnforcementMandatory) {
			hint = fmt.Sprintf(" (an approver may override it: opsbot apply %s --override-policy)", run.ID)
		}
		return fmt.Errorf("run %s failed policy %s: it cannot be approved%s", run.ID, failedPolicies(c), hint)
	}
	if !ff.yes {
		a.beforeApproval(ctx, api, tenant, run)
		fmt.Fprintf(a.stderr, "\nRun %s of workspace %s: %s.\n", run.ID, run.Workspace, changeLine(run.PlanResult, false))
		question := "Do you want to apply these changes?"
		if run.Operation == opsapitypes.OpDestroy {
			question = "Do you really want to destroy these resources?"
		}
		ok, err := a.confirm(ctx, question)
		if err != nil {
			return err
		}
		if !ok {
			return runOutcome{exitcode.Changes, fmt.Sprintf("not applied; the plan of run %s still waits for approval", run.ID)}
		}
	}
	approve := api.Approve
	if ff.overridePolicy {
		p, err := policiesOf(api)
		if err != nil {
			return err
		}
		approve = p.ApproveOverridingPolicy
	}
	approved, err := approve(ctx, tenant, run.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stderr, "Run %s approved.\n", run.ID)
	if ff.detach {
		return a.print(approved, func(w io.Writer) { fmt.Fprintln(w, approved.ID) })
	}
	final, _, err := a.follow(ctx, api, tenant, run.ID, offset, untilEnded, true)
	if err != nil {
		return err
	}
	return a.finish(final)
}

// confirm asks on the terminal; only "yes" is yes. Ctrl-C (ctx) ends the
// wait for an answer.
func (a *app) confirm(ctx context.Context, question string) (bool, error) {
	if !a.stdinIsTerminal() {
		return false, usageError{errors.New("--yes: required without a terminal to confirm on")}
	}
	fmt.Fprintf(a.stderr, "%s\n  Only 'yes' will be accepted.\n\n  Enter a value: ", question)
	type answer struct {
		line string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		line, err := bufio.NewReader(a.stdin).ReadString('\n')
		answered <- answer{line, err}
	}()
	select {
	case <-ctx.Done():
		fmt.Fprintln(a.stderr)
		return false, ctx.Err()
	case ans := <-answered:
		if ans.err != nil && !errors.Is(ans.err, io.EOF) {
			return false, fmt.Errorf("cannot read the answer: %w", ans.err)
		}
		return strings.TrimSpace(ans.line) == "yes", nil
	}
}

// packBundle packs an existing directory (tfarchive.PackBundle).
func packBundle(dir string, extra []tfarchive.File) (*os.File, tfarchive.Stats, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, tfarchive.Stats{}, usageError{fmt.Errorf("--dir: %w", err)}
	}
	if !st.IsDir() {
		return nil, tfarchive.Stats{}, usageError{fmt.Errorf("--dir: %s is not a directory", dir)}
	}
	return tfarchive.PackBundle(dir, extra)
}

// explainCreateRun makes a refused upload say which limit it hit.
func explainCreateRun(err error, dir string) error {
	var ae *opsclient.APIError
	if errors.As(err, &ae) && ae.StatusCode == 413 {
		return fmt.Errorf("the ops server refused the configuration bundle of %s as too large: %s; leave large or generated files out of the directory", dir, ae.Message)
	}
	return fmt.Errorf("cannot start the run: %w", err)
}
