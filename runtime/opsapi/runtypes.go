package opsapi

import (
	"maps"
	"time"

	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfproviders"
	"github.com/botehq/platform/runtime/tfresult"
)

// applyUpdate returns w with the request's changes; timeouts holds the parsed
// non-empty timeouts.
func applyUpdate(u UpdateWorkspaceRequest, w runs.Workspace, timeouts runs.Options) runs.Workspace {
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
	if u.Providers != nil {
		w.Providers = providerSources(u.Providers)
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

func fmtDuration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func apiWorkspace(w runs.Workspace) Workspace {
	return Workspace{
		Tenant: string(w.Tenant), Name: string(w.Name), Description: w.Description, AutoApply: w.Options.AutoApply, FourEyes: w.Options.FourEyes, Labels: w.AgentLabels,
		Timeouts: Timeouts{
			Plan: fmtDuration(w.Options.PlanTimeout), Apply: fmtDuration(w.Options.ApplyTimeout), Approval: fmtDuration(w.Options.ApprovalTimeout),
		},
		TerraformVersion: w.TerraformVersion,
		Providers:        apiProviderSources(w.Providers),
		CreatedAt:        w.CreatedAt.UTC(),
	}
}

func apiResult(r *tfresult.Result) *RunResult {
	if r == nil {
		return nil
	}
	out := &RunResult{HasChanges: r.HasChanges, Plan: r.Plan}
	if l := r.LockFile; l != nil {
		out.LockFile = &LockFile{Changed: l.Changed, Created: l.Created, Content: l.Content, Truncated: l.Truncated}
	}
	if c := r.Changes; c != nil {
		out.Changes = &Changes{Add: c.Add, Change: c.Change, Destroy: c.Remove, Import: c.Import}
	}
	out.Diagnostics = append([]Diagnostic(nil), r.Diagnostics...) // the same type (tfdiag); a copy, not the stored slice
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
		ID: r.ID, Tenant: string(r.Tenant), Workspace: string(r.Workspace), Operation: string(r.Operation), State: string(r.State),
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
	if c := r.Policy; c != nil {
		out.Policy = &PolicyCheck{CheckedAt: c.At.UTC(), Blocked: c.Blocks() && c.OverriddenBy == "", OverriddenBy: c.OverriddenBy, Results: make([]PolicyResult, len(c.Results))}
		for i, p := range c.Results {
			out.Policy.Results[i] = PolicyResult{Policy: p.Policy, Version: p.Version, Workspace: string(p.Workspace), Enforcement: string(p.Enforcement),
				Passed: p.Passed, Messages: p.Messages, Warnings: p.Warnings, Error: p.Error}
		}
	}
	for _, h := range r.History {
		out.History = append(out.History, Transition{From: string(h.From), To: string(h.To), At: h.At.UTC(), By: h.By, Reason: h.Reason})
	}
	return out
}

func providerSources(p *ProviderSources) tfproviders.Sources {
	if p == nil {
		return tfproviders.Sources{}
	}
	return tfproviders.Sources{FilesystemMirror: p.FilesystemMirror, NetworkMirror: p.NetworkMirror, NoDirect: p.NoDirect}
}

func apiProviderSources(s tfproviders.Sources) *ProviderSources {
	if s.IsZero() {
		return nil
	}
	return &ProviderSources{FilesystemMirror: s.FilesystemMirror, NetworkMirror: s.NetworkMirror, NoDirect: s.NoDirect}
}
