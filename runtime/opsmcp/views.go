package opsmcp

import (
	"encoding/json"
	"time"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/planrender"
)

// The tools' outputs. They are the API's bodies (opsapitypes) reshaped
// where the API's JSON has no schema a client could check (raw values),
// and with links to the run's resources.

// RunView is a run as the tools show it.
type RunView struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Workspace string `json:"workspace"`
	// Operation is apply (plan, then apply once approved) or destroy.
	Operation string    `json:"operation"`
	State     string    `json:"state" jsonschema:"queued, planning, planned (waits for approval), approved, applying, needs_attention, applied, no_changes, failed, cancelled or timed_out"`
	Message   string    `json:"message,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Waiting says why a queued or approved run has not started.
	Waiting         string                   `json:"waiting,omitempty"`
	Agent           string                   `json:"agent,omitempty"`
	Deadline        *time.Time               `json:"deadline,omitempty"`
	CancelRequested bool                     `json:"cancel_requested,omitempty"`
	PlanOptions     *opsapitypes.PlanOptions `json:"plan_options,omitempty"`
	// PlanChanges: show_plan can show the plan's resource changes.
	PlanChanges bool       `json:"plan_changes"`
	Plan        *PhaseView `json:"plan,omitempty" jsonschema:"what the plan phase reported"`
	Apply       *PhaseView `json:"apply,omitempty" jsonschema:"what the apply phase reported"`
	// History is the run's state changes (show_run only).
	History []opsapitypes.Transition `json:"history,omitempty"`
	// LogURI and PlanURI are the run's resources (read, subscribe).
	LogURI  string `json:"log_uri"`
	PlanURI string `json:"plan_uri,omitempty"`
}

// PhaseView is what Terraform reported for a plan or an apply.
type PhaseView struct {
	HasChanges  bool                     `json:"has_changes"`
	Changes     *opsapitypes.Changes     `json:"changes,omitempty"`
	Summary     *planrender.Summary      `json:"summary,omitempty" jsonschema:"the plan's counts and what it destroys and replaces"`
	Diagnostics []opsapitypes.Diagnostic `json:"diagnostics,omitempty"`
	Outputs     map[string]OutputView    `json:"outputs,omitempty"`
}

// OutputView is a Terraform output; a sensitive one has no value.
type OutputView struct {
	Sensitive bool `json:"sensitive"`
	Value     any  `json:"value,omitempty" jsonschema:"the output's value; never set for a sensitive output"`
}

func runView(r *opsapitypes.Run, withHistory bool) RunView {
	v := RunView{
		ID: r.ID, Tenant: r.Tenant, Workspace: r.Workspace, Operation: r.Operation, State: r.State,
		Message: r.Message, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
		Waiting: r.Waiting, Agent: r.Agent, Deadline: r.Deadline, CancelRequested: r.CancelRequested,
		PlanOptions: r.PlanOptions, PlanChanges: r.PlanChanges,
		Plan: phaseView(r.PlanResult), Apply: phaseView(r.ApplyResult),
		LogURI: logURI(r.Tenant, r.ID),
	}
	if r.PlanChanges {
		v.PlanURI = planURI(r.Tenant, r.ID)
	}
	if withHistory {
		v.History = r.History
	}
	return v
}

func phaseView(res *opsapitypes.RunResult) *PhaseView {
	if res == nil {
		return nil
	}
	v := &PhaseView{HasChanges: res.HasChanges, Changes: res.Changes, Summary: res.Plan, Diagnostics: res.Diagnostics}
	if len(res.Outputs) > 0 {
		v.Outputs = make(map[string]OutputView, len(res.Outputs))
		for name, o := range res.Outputs {
			ov := OutputView{Sensitive: o.Sensitive}
			// The API never sends a sensitive value; this never shows one
			// either, should that change.
			if !o.Sensitive && len(o.Value) > 0 {
				_ = json.Unmarshal(o.Value, &ov.Value)
			}
			v.Outputs[name] = ov
		}
	}
	return v
}

// idle reports whether nothing happens to a run until a person acts:
// it ended, needs attention, or its plan waits for approval.
func idle(r *opsapitypes.Run) bool {
	return r.Settled() || r.State == opsapitypes.StatePlanned
}
