package opsapi

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfrun"
)

// Error codes of the runs API, in addition to the general ones.
const (
	CodeConflict = "conflict"
	CodeTooLarge = "too_large"
)

// Timeouts of a workspace's runs, Go durations ("1h30m"); empty or
// omitted takes the server default (plan 1h, apply 2h, approval 24h).
type Timeouts struct {
	Plan     string `json:"plan,omitempty"`
	Apply    string `json:"apply,omitempty"`
	Approval string `json:"approval,omitempty"`
}

// CreateWorkspaceRequest is the body of POST /v1/tenants/{tenant}/workspaces.
type CreateWorkspaceRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// AutoApply approves a plan with changes as soon as it is saved; it
	// needs the approver role.
	AutoApply bool `json:"auto_apply,omitempty"`
	// FourEyes: whoever queued a run may not approve it. Turning it off
	// again needs a platform administrator.
	FourEyes bool `json:"four_eyes,omitempty"`
	// Labels select the agents that may run it: each must be present on
	// the agent with the same value.
	Labels   map[string]string `json:"labels,omitempty"`
	Timeouts Timeouts          `json:"timeouts,omitzero"`
	// TerraformVersion constrains the terraform of the agents that run
	// it ("~> 1.9"); empty: any.
	TerraformVersion string `json:"terraform_version,omitempty"`
}

// UpdateWorkspaceRequest is the body of PATCH
// /v1/tenants/{tenant}/workspaces/{workspace}: fields present change,
// absent ones keep their values; a timeout given as "" is not changed.
type UpdateWorkspaceRequest struct {
	Description *string            `json:"description,omitempty"`
	AutoApply   *bool              `json:"auto_apply,omitempty"`
	FourEyes    *bool              `json:"four_eyes,omitempty"`
	Labels      *map[string]string `json:"labels,omitempty"`
	Timeouts    Timeouts           `json:"timeouts,omitzero"`
	// TerraformVersion replaces the version constraint ("" removes it).
	TerraformVersion *string `json:"terraform_version,omitempty"`
}

// apply returns w with the request's changes; timeouts holds the parsed
// non-empty timeouts.
func (u UpdateWorkspaceRequest) apply(w runs.Workspace, timeouts runs.Options) runs.Workspace {
	if u.Description != nil {
		w.Description = *u.Description
	}
	if u.AutoApply != nil {
		w.Options.AutoApply = *u.AutoApply
	}
	if u.FourEyes != nil {
		w.Options.FourEyes = *u.FourEyes
	}
	if u.Labels != nil {
		w.AgentLabels = maps.Clone(*u.Labels)
	}
	if u.TerraformVersion != nil {
		w.TerraformVersion = *u.TerraformVersion
	}
	if u.Timeouts.Plan != "" {
		w.Options.PlanTimeout = timeouts.PlanTimeout
	}
	if u.Timeouts.Apply != "" {
		w.Options.ApplyTimeout = timeouts.ApplyTimeout
	}
	if u.Timeouts.Approval != "" {
		w.Options.ApprovalTimeout = timeouts.ApprovalTimeout
	}
	return w
}

// Workspace is a Terraform configuration of one environment of a tenant.
type Workspace struct {
	Tenant      string            `json:"tenant"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	AutoApply   bool              `json:"auto_apply"`
	FourEyes    bool              `json:"four_eyes"`
	Labels      map[string]string `json:"labels,omitempty"`
	Timeouts    Timeouts          `json:"timeouts"`
	// TerraformVersion is the constraint on its agents' terraform.
	TerraformVersion string    `json:"terraform_version,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
}

// WorkspaceList is the body of GET /v1/tenants/{tenant}/workspaces.
type WorkspaceList struct {
	Workspaces []Workspace `json:"workspaces"`
}

// Run is one plan (and possibly apply) of a workspace.
type Run struct {
	ID        string `json:"id"`
	Tenant    string `json:"tenant"`
	Workspace string `json:"workspace"`
	// Operation is apply (plan, then apply) or destroy.
	Operation string    `json:"operation"`
	State     string    `json:"state"`
	Message   string    `json:"message,omitempty"`
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Waiting says why a queued or approved run has not started.
	Waiting string `json:"waiting,omitempty"`
	// Agent is working on the run now; PlanAgent and ApplyAgent did each
	// phase.
	Agent      string `json:"agent,omitempty"`
	PlanAgent  string `json:"plan_agent,omitempty"`
	ApplyAgent string `json:"apply_agent,omitempty"`
	// Deadline is when the current state times out.
	Deadline        *time.Time `json:"deadline,omitempty"`
	CancelRequested bool       `json:"cancel_requested,omitempty"`
	// PlanOptions narrow or change its plan: -target, -replace,
	// -refresh-only.
	PlanOptions *PlanOptions `json:"plan_options,omitempty"`
	// HasPlan: a saved plan is kept for the apply.
	HasPlan bool `json:"has_plan"`
	// PlanChanges: the plan's resource changes can be read from
	// GET .../runs/{run}/plan.
	PlanChanges bool         `json:"plan_changes,omitempty"`
	PlanResult  *RunResult   `json:"plan_result,omitempty"`
	ApplyResult *RunResult   `json:"apply_result,omitempty"`
	History     []Transition `json:"history"`
}

// PlanOptions are a run's terraform plan -target, -replace and
// -refresh-only (query parameters target, replace, refresh_only of POST
// .../runs).
type PlanOptions struct {
	Targets     []string `json:"targets,omitempty"`
	Replace     []string `json:"replace,omitempty"`
	RefreshOnly bool     `json:"refresh_only,omitempty"`
}

// Terminal reports whether the run has ended.
func (r Run) Terminal() bool { return runs.State(r.State).Terminal() }

// Settled reports whether nothing more happens to the run unless a person
// acts: it ended, or it needs attention.
func (r Run) Settled() bool { return runs.State(r.State).Settled() }

// Transition is one state change of a run.
type Transition struct {
	From   string    `json:"from,omitempty"`
	To     string    `json:"to"`
	At     time.Time `json:"at"`
	By     string    `json:"by,omitempty"`
	Reason string    `json:"reason,omitempty"`
}

// RunResult is what Terraform reported for a phase.
type RunResult struct {
	HasChanges  bool              `json:"has_changes"`
	Changes     *Changes          `json:"changes,omitempty"`
	Diagnostics []Diagnostic      `json:"diagnostics,omitempty"`
	Outputs     map[string]Output `json:"outputs,omitempty"`
	// Plan counts a plan's changes and lists what it destroys and
	// replaces (at most a hundred of each; the counts are complete).
	Plan *planrender.Summary `json:"plan,omitempty"`
}

// Changes counts resource changes.
type Changes struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Import  int `json:"import"`
}

// Diagnostic is a Terraform error or warning, as the agent reported it.
type Diagnostic = tfrun.Diagnostic

// Output is a Terraform output; sensitive values are never sent.
type Output struct {
	Sensitive bool            `json:"sensitive"`
	Value     json.RawMessage `json:"value,omitempty"`
}

// RunList is the body of GET /v1/tenants/{tenant}/runs, newest first.
type RunList struct {
	Runs []Run `json:"runs"`
	// Truncated: more runs matched than the limit let through.
	Truncated bool `json:"truncated,omitempty"`
}

// LogChunk is the body of GET .../runs/{id}/logs: whole lines from
// Offset; read on from NextOffset. Done: the run has ended and this chunk
// reaches the end of its log.
type LogChunk struct {
	Text       string `json:"text"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset"`
	Done       bool   `json:"done"`
}

// Follow frame types.
const (
	FrameLog = "log" // Lines, NextOffset
	FrameRun = "run" // Run: the run changed
	FrameEnd = "end" // Run: it ended and every line was sent; the server closes
)

// FollowFrame is one message on GET .../runs/{id}/follow (JSON text frame).
type FollowFrame struct {
	Type string    `json:"type"`
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Lines and NextOffset are set for log frames; resume a dropped follow
	// with ?offset=NextOffset.
	Lines      []string `json:"lines,omitempty"`
	NextOffset int64    `json:"next_offset,omitempty"`
	Run        *Run     `json:"run,omitempty"`
}

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func apiWorkspace(w runs.Workspace) Workspace {
	return Workspace{
		Tenant: w.Tenant, Name: w.Name, Description: w.Description, AutoApply: w.Options.AutoApply, FourEyes: w.Options.FourEyes, Labels: w.AgentLabels,
		Timeouts: Timeouts{
			Plan: fmtDuration(w.Options.PlanTimeout), Apply: fmtDuration(w.Options.ApplyTimeout), Approval: fmtDuration(w.Options.ApprovalTimeout),
		},
		TerraformVersion: w.TerraformVersion,
		CreatedAt:        w.CreatedAt.UTC(),
	}
}

func apiResult(r *tfrun.Result) *RunResult {
	if r == nil {
		return nil
	}
	out := &RunResult{HasChanges: r.HasChanges, Plan: r.Plan}
	if c := r.Changes; c != nil {
		out.Changes = &Changes{Add: c.Add, Change: c.Change, Destroy: c.Remove, Import: c.Import}
	}
	out.Diagnostics = slices.Clone(r.Diagnostics)
	if len(r.Outputs) > 0 {
		out.Outputs = map[string]Output{}
		for k, o := range r.Outputs {
			v := o.Value
			if o.Sensitive {
				v = nil
			}
			out.Outputs[k] = Output{Sensitive: o.Sensitive, Value: v}
		}
	}
	return out
}

func apiRun(r runs.Run, waiting string) Run {
	out := Run{
		ID: r.ID, Tenant: r.Tenant, Workspace: r.Workspace, Operation: string(r.Operation), State: string(r.State),
		Message: r.Message, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
		Waiting: waiting, Agent: r.Agent, PlanAgent: r.PlanAgent, ApplyAgent: r.ApplyAgent,
		CancelRequested: r.CancelRequested, HasPlan: r.Plan != nil, PlanChanges: r.PlanJSON != nil,
		PlanResult: apiResult(r.PlanResult), ApplyResult: apiResult(r.ApplyResult),
		History: make([]Transition, 0, len(r.History)),
	}
	if !r.Deadline.IsZero() {
		d := r.Deadline.UTC()
		out.Deadline = &d
	}
	if o := r.PlanOptions; !o.Empty() {
		out.PlanOptions = &PlanOptions{Targets: o.Targets, Replace: o.Replace, RefreshOnly: o.RefreshOnly}
	}
	for _, h := range r.History {
		out.History = append(out.History, Transition{From: string(h.From), To: string(h.To), At: h.At.UTC(), By: h.By, Reason: h.Reason})
	}
	return out
}
