package opsapitypes

import (
	"encoding/json"
	"time"

	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/tfdiag"
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
	// Providers override the agents' provider sources for its runs.
	Providers *ProviderSources `json:"providers,omitempty"`
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
	// Providers replaces the provider sources ({} removes them).
	Providers *ProviderSources `json:"providers,omitempty"`
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
	TerraformVersion string           `json:"terraform_version,omitempty"`
	Providers        *ProviderSources `json:"providers,omitempty"`
	CreatedAt        time.Time        `json:"created_at"`
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
	PlanChanges bool       `json:"plan_changes,omitempty"`
	PlanResult  *RunResult `json:"plan_result,omitempty"`
	ApplyResult *RunResult `json:"apply_result,omitempty"`
	// Policy is the policy check of its plan; absent when no policy
	// applied.
	Policy *PolicyCheck `json:"policy,omitempty"`
	// PolicyChanged, on a planned run read alone (GET .../runs/{run}),
	// says that policies were added or changed for its workspace since
	// its plan was checked, which refuses its approval (409
	// policy_failed): plan again.
	PolicyChanged string       `json:"policy_changed,omitempty"`
	History       []Transition `json:"history"`
}

// PlanOptions are a run's terraform plan -target, -replace and
// -refresh-only (query parameters target, replace, refresh_only of POST
// .../runs).
type PlanOptions struct {
	Targets     []string `json:"targets,omitempty"`
	Replace     []string `json:"replace,omitempty"`
	RefreshOnly bool     `json:"refresh_only,omitempty"`
}

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
	// LockFile is the dependency lock file the plan's init left.
	LockFile *LockFile `json:"lock_file,omitempty"`
}

// Changes counts resource changes.
type Changes struct {
	Add     int `json:"add"`
	Change  int `json:"change"`
	Destroy int `json:"destroy"`
	Import  int `json:"import"`
}

// Diagnostic is one Terraform warning or error (package tfdiag).
type Diagnostic = tfdiag.Diagnostic

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

// Limits of GET .../runs.
const (
	DefaultRunListLimit = 100
	MaxRunListLimit     = 1000
)
