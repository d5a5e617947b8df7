package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/spf13/cobra"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/opsconfig"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfarchive"
)

// runsAPI is what the workspace and run commands need from the ops API:
// *opsclient.Client, or a fake in tests.
type runsAPI interface {
	CreateWorkspace(ctx context.Context, tenant string, req opsapitypes.CreateWorkspaceRequest) (*opsapitypes.Workspace, error)
	Workspaces(ctx context.Context, tenant string) ([]opsapitypes.Workspace, error)
	UpdateWorkspace(ctx context.Context, tenant, name string, req opsapitypes.UpdateWorkspaceRequest) (*opsapitypes.Workspace, error)
	// CreateRun uploads a configuration bundle (tar.gz) and queues a run;
	// its Waiting says why it cannot start at once.
	CreateRun(ctx context.Context, tenant, workspace string, op opsclient.RunOp, message string, bundle io.Reader, opts ...opsclient.RunOption) (*opsapitypes.Run, error)
	// Runs lists runs newest first.
	Runs(ctx context.Context, tenant string, q opsclient.RunQuery) (*opsapitypes.RunList, error)
	Run(ctx context.Context, tenant, id string) (*opsapitypes.Run, error)
	Approve(ctx context.Context, tenant, id string) (*opsapitypes.Run, error)
	// Cancel cancels a run; force ends an executing run without waiting
	// for its agent.
	Cancel(ctx context.Context, tenant, id, reason string, force bool) (*opsapitypes.Run, error)
	// Logs returns the log from offset, whole lines.
	Logs(ctx context.Context, tenant, id string, offset int64) (*opsapitypes.LogChunk, error)
	// Follow streams the run's log lines from offset and its changes
	// until the run ends (nil), fn returns an error (returned as is), or
	// the stream breaks for good (it resumes short drops itself).
	Follow(ctx context.Context, tenant, id string, offset int64, fn func(opsapitypes.FollowFrame) error) error
	// StateVersions lists a workspace's kept states; PullState writes one
	// (version "": the current) to w and says which it was.
	StateVersions(ctx context.Context, tenant, workspace string) ([]opsapitypes.StateVersion, error)
	PullState(ctx context.Context, tenant, workspace, version string, w io.Writer) (string, error)
	// Plan is a run's saved plan (resource changes, sensitive values
	// masked).
	Plan(ctx context.Context, tenant, id string) (*tfjson.Plan, error)
	// Vars, SetVar and UnsetVar manage a workspace's input variables.
	Vars(ctx context.Context, tenant, workspace string) ([]opsapitypes.Variable, error)
	SetVar(ctx context.Context, tenant, workspace, name, value string, sensitive bool) (*opsapitypes.Variable, error)
	UnsetVar(ctx context.Context, tenant, workspace, name string) (*opsapitypes.Variable, error)
	// RollbackState makes a kept version current again.
	RollbackState(ctx context.Context, tenant, workspace, version string) (*opsapitypes.StateVersion, error)
}

var _ runsAPI = (*opsclient.Client)(nil)

// runsAPI returns the ops API for the run commands: the ops client
// (through the relay or a local port), or the fake a test set.
func (a *app) runsAPI() (runsAPI, error) {
	if a.api != nil {
		return a.api, nil
	}
	return a.client()
}

// withTenant makes a command body that needs the tenant and the API.
func (a *app) withTenant(fn func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		tenant, err := a.tenantOf(cmd)
		if err != nil {
			return err
		}
		api, err := a.runsAPI()
		if err != nil {
			return err
		}
		return fn(cmd, args, tenant, api)
	}
}

// tenantOf is the resolved tenant setting (--tenant, OPSBOT_TENANT, a
// profile's or the config file's tenant).
func (a *app) tenantOf(*cobra.Command) (string, error) {
	if a.cfg == nil || a.cfg.Tenant == "" {
		return "", usageError{errors.New("tenant: required; set --tenant, OPSBOT_TENANT, or tenant in the config file or its profile")}
	}
	return a.cfg.Tenant, nil
}

func (a *app) runsCommands() []*cobra.Command {
	return []*cobra.Command{a.workspacesCommand(), a.planCommand(), a.applyCommand(), a.destroyCommand(),
		a.runsCommand(), a.logsCommand(), a.cancelCommand(), a.varsCommand()}
}

// followFlags are shared by the commands that start or resume a run.
type followFlags struct {
	detach  bool
	yes     bool
	message string
	run     runOptions // --var, --target, ...
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
			return a.startRun(cmd.Context(), tenant, api, workspace, dir, runs.OpApply, ff)
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
			return a.startRun(cmd.Context(), tenant, api, workspace, dir, runs.OpDestroy, ff)
		}),
	}
	runFlags(c, &workspace, &dir, &ff, true)
	return c
}

// workspaceFlag adds the --workspace flag of the commands that act on one
// workspace; requireWorkspace checks it was given.
func workspaceFlag(c *cobra.Command, workspace *string) {
	c.Flags().StringVarP(workspace, "workspace", "w", "", "workspace (required)")
}

func requireWorkspace(workspace string) error {
	if workspace == "" {
		return usageError{errors.New("--workspace: required")}
	}
	return nil
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
func (a *app) startRun(ctx context.Context, tenant string, api runsAPI, workspace, dir string, op runs.Operation, ff followFlags) error {
	if err := requireWorkspace(workspace); err != nil {
		return err
	}
	if op == runs.OpDestroy && !ff.yes && !ff.detach && !a.stdinIsTerminal() {
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
	if op == runs.OpDestroy {
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
	if op == runs.OpDestroy && state(final) == runs.Planned {
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
			if state(run) != runs.Planned {
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
	return c
}

// approveAndFollow confirms, approves a planned run and follows the apply.
// The log is followed from offset.
func (a *app) approveAndFollow(ctx context.Context, api runsAPI, tenant string, run *opsapitypes.Run, offset int64, ff followFlags) error {
	if !ff.yes {
		a.beforeApproval(ctx, api, tenant, run)
		fmt.Fprintf(a.stderr, "\nRun %s of workspace %s: %s.\n", run.ID, run.Workspace, changeLine(run.PlanResult, false))
		question := "Do you want to apply these changes?"
		if run.Operation == string(runs.OpDestroy) {
			question = "Do you really want to destroy these resources?"
		}
		ok, err := a.confirm(ctx, question)
		if err != nil {
			return err
		}
		if !ok {
			return runOutcome{exitChanges, fmt.Sprintf("not applied; the plan of run %s still waits for approval", run.ID)}
		}
	}
	approved, err := api.Approve(ctx, tenant, run.ID)
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

// stateList names every run state, for help texts.
func stateList() string {
	names := make([]string, 0, len(runs.States()))
	for _, st := range runs.States() {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}

// logEnd returns the offset where a run's log currently ends.
func logEnd(ctx context.Context, api runsAPI, tenant, id string) (int64, error) {
	return (&app{stdout: io.Discard}).drainLogs(ctx, api, tenant, id, 0)
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

func (a *app) runsCommand() *cobra.Command {
	var q opsclient.RunQuery
	list := &cobra.Command{
		Use:   "list [--workspace W] [--state S,...] [--limit N]",
		Short: "List runs, newest first",
		Long: `List the tenant's runs, newest first: the --limit newest (default 20) of
those in --workspace and in one of the --state states:
  ` + stateList() + `.
An unknown workspace is an error (exit 9).`,
		Args: cobra.NoArgs,
		RunE: a.withTenant(func(cmd *cobra.Command, _ []string, tenant string, api runsAPI) error {
			if q.Limit < 1 || q.Limit > opsapitypes.MaxRunListLimit {
				return usageError{fmt.Errorf("--limit: %d must be between 1 and %d", q.Limit, opsapitypes.MaxRunListLimit)}
			}
			for _, st := range q.States {
				if !runs.State(st).Valid() {
					return usageError{fmt.Errorf("--state: %q is not one of %v", st, runs.States())}
				}
			}
			list, err := api.Runs(cmd.Context(), tenant, q)
			if err != nil {
				return err
			}
			return a.print(list, func(w io.Writer) {
				printRuns(w, list.Runs)
				if list.Truncated {
					fmt.Fprintf(a.stderr, "(the newest %d; more with --limit)\n", len(list.Runs))
				}
			})
		}),
	}
	list.Flags().StringVarP(&q.Workspace, "workspace", "w", "", "only this workspace's runs")
	list.Flags().StringSliceVar(&q.States, "state", nil, "only runs in these states (comma-separated or repeated), e.g. planned,failed")
	list.Flags().IntVar(&q.Limit, "limit", 20, fmt.Sprintf("at most this many runs, the newest (1 to %d)", opsapitypes.MaxRunListLimit))

	var withPlan bool
	show := &cobra.Command{
		Use:   "show RUN [--plan]",
		Short: "Show a run: state, history, change summary, diagnostics, outputs; --plan: its resource changes",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			run, err := api.Run(cmd.Context(), tenant, args[0])
			if err != nil {
				return err
			}
			return a.showRun(cmd.Context(), api, tenant, run, withPlan)
		}),
	}
	show.Flags().BoolVar(&withPlan, "plan", false, "show the plan's resource changes as terraform plan prints them (with -o json: its structured changes)")
	c := &cobra.Command{Use: "runs", Aliases: []string{"run"}, Short: "Terraform runs"}
	c.AddCommand(list, show)
	return c
}

func (a *app) logsCommand() *cobra.Command {
	var follow bool
	var offset int64
	c := &cobra.Command{
		Use:   "logs RUN",
		Short: "Print a run's log; -f follows it live until the run ends",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			a.logsToStdout = true // the log is this command's output
			if follow {
				final, _, err := a.follow(cmd.Context(), api, tenant, args[0], offset, untilEnded, false)
				if err != nil {
					return err
				}
				if a.cfg.Output == opsconfig.OutputJSON {
					return outcomeOf(final) // stdout holds the log only
				}
				return a.finish(final)
			}
			_, err := a.drainLogs(cmd.Context(), api, tenant, args[0], offset)
			return err
		}),
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "follow the log and the run's state until it ends")
	c.Flags().Int64Var(&offset, "offset", 0, "start at this byte offset of the log")
	return c
}

func (a *app) cancelCommand() *cobra.Command {
	var reason string
	var force bool
	c := &cobra.Command{
		Use:   "cancel RUN",
		Short: "Cancel a run: a waiting run ends at once, a running one is interrupted (SIGINT, then killed after a grace period)",
		Args:  cobra.ExactArgs(1),
		RunE: a.withTenant(func(cmd *cobra.Command, args []string, tenant string, api runsAPI) error {
			run, err := api.Cancel(cmd.Context(), tenant, args[0], reason, force)
			if err != nil {
				return err
			}
			return a.print(run, func(w io.Writer) {
				if state(run) == runs.Cancelled {
					fmt.Fprintf(w, "Run %s cancelled.\n", run.ID)
					return
				}
				fmt.Fprintf(w, "Run %s: cancel requested; its agent is interrupting Terraform (opsbot logs -f %s to watch).\n", run.ID, run.ID)
			})
		}),
	}
	c.Flags().StringVar(&reason, "reason", "", "why: kept in the run's history")
	c.Flags().BoolVar(&force, "force", false, "end an executing run now, without waiting for its agent to confirm (for an agent that no longer answers)")
	return c
}

// packBundle packs dir into a temporary file, rewound, with the bundle
// limits checked before anything is uploaded.
func packBundle(dir string, extra []tfarchive.File) (*os.File, tfarchive.Stats, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, tfarchive.Stats{}, usageError{fmt.Errorf("--dir: %w", err)}
	}
	if !st.IsDir() {
		return nil, tfarchive.Stats{}, usageError{fmt.Errorf("--dir: %s is not a directory", dir)}
	}
	f, err := os.CreateTemp("", "opsbot-bundle-*.tar.gz")
	if err != nil {
		return nil, tfarchive.Stats{}, fmt.Errorf("cannot create a temporary file for the bundle: %w", err)
	}
	fail := func(err error) (*os.File, tfarchive.Stats, error) {
		f.Close()
		os.Remove(f.Name())
		return nil, tfarchive.Stats{}, err
	}
	stats, err := tfarchive.Pack(dir, f, tfarchive.PackOptions{Limits: tfarchive.BundleLimits, TerraformIgnore: true, Extra: extra})
	if err != nil {
		return fail(fmt.Errorf("cannot pack %s: %w", dir, err))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(fmt.Errorf("cannot read the packed bundle: %w", err))
	}
	return f, stats, nil
}

// explainCreateRun makes a refused upload say which limit it hit.
func explainCreateRun(err error, dir string) error {
	var ae *opsclient.APIError
	if errors.As(err, &ae) && ae.StatusCode == 413 {
		return fmt.Errorf("the ops server refused the configuration bundle of %s as too large: %s; leave large or generated files out of the directory", dir, ae.Message)
	}
	return fmt.Errorf("cannot start the run: %w", err)
}
