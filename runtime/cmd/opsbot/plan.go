package main

import (
	"context"
	"fmt"
	"io"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsconfig"
	"github.com/botehq/platform/runtime/planrender"
)

// runWithPlan is a run with its plan's resource changes, for -o json.
type runWithPlan struct {
	*opsapitypes.Run
	Plan *tfjson.Plan `json:"plan,omitempty"`
}

// fetchPlan reads the run's plan if it has one to show. A plan that
// cannot be read is a warning, not a failure: the run's log has the
// changes too.
func (a *app) fetchPlan(ctx context.Context, api runsAPI, tenant string, r *opsapitypes.Run) *tfjson.Plan {
	if !r.PlanChanges {
		return nil
	}
	p, err := api.Plan(ctx, tenant, r.ID)
	if err != nil {
		fmt.Fprintf(a.stderr, "Warning: cannot show the plan's changes (they are in the run's log, opsbot logs %s): %v\n", r.ID, err)
		return nil
	}
	return p
}

// writePlan renders the plan as `terraform plan` shows it.
func (a *app) writePlan(w io.Writer, p *tfjson.Plan) {
	if p == nil {
		return
	}
	if err := planrender.Render(w, p); err != nil {
		fmt.Fprintf(a.stderr, "Warning: cannot show the plan: %v\n", err)
	}
}

// showPlanned prints a followed run's outcome: in text, the plan as
// Terraform shows it, then the outcome; with -o json, the run with its
// plan's structured changes.
func (a *app) showPlanned(ctx context.Context, api runsAPI, tenant string, r *opsapitypes.Run) error {
	var p *tfjson.Plan
	if r.State != opsapitypes.StateNoChanges { // the outcome says it all
		p = a.fetchPlan(ctx, api, tenant, r)
	}
	if err := a.print(runWithPlan{r, p}, func(w io.Writer) {
		a.writePlan(w, p)
		printOutcome(w, r)
	}); err != nil {
		return err
	}
	return a.outcome(r)
}

// outcome is outcomeOf, without its message when the text output just
// printed it: the reason and the diagnostics are the output's last lines,
// once. With -o json the message goes to stderr as the one readable line.
func (a *app) outcome(r *opsapitypes.Run) error {
	err := outcomeOf(r)
	if ro, ok := err.(runOutcome); ok && a.cfg.Output != opsconfig.OutputJSON {
		return runOutcome{code: ro.code}
	}
	return err
}

// showRun is `runs show`, with --plan the plan's changes too.
func (a *app) showRun(ctx context.Context, api runsAPI, tenant string, r *opsapitypes.Run, withPlan bool) error {
	var p *tfjson.Plan
	if withPlan {
		if !r.PlanChanges {
			fmt.Fprintf(a.stderr, "Run %s has no plan to show (it is %s).\n", r.ID, r.State)
		}
		p = a.fetchPlan(ctx, api, tenant, r)
	}
	return a.print(runWithPlan{r, p}, func(w io.Writer) {
		printRun(w, r)
		a.writePlan(w, p)
	})
}

// beforeApproval shows what an approval would do: the plan's changes on
// stdout (where the run's log goes) and what it destroys or replaces on
// stderr, right above the question.
func (a *app) beforeApproval(ctx context.Context, api runsAPI, tenant string, r *opsapitypes.Run) {
	if a.cfg.Output != opsconfig.OutputJSON {
		a.writePlan(a.stdout, a.fetchPlan(ctx, api, tenant, r))
	}
	if r.PlanResult != nil && r.PlanResult.Plan != nil && r.PlanResult.Plan.Destroy > 0 {
		fmt.Fprintln(a.stderr)
		_ = planrender.WriteDestructive(a.stderr, *r.PlanResult.Plan)
	}
}
