package opsapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
)

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	tenant := pathTenant(r)
	var req CreateWorkspaceRequest
	if !decodeBody(w, r, &req) {
		return
	}
	name, err := ids.ParseWorkspaceID(req.Name)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	ws := runs.Workspace{Tenant: tenant, Name: name, Description: req.Description, AgentLabels: req.Labels, TerraformVersion: req.TerraformVersion,
		Options: runs.Options{AutoApply: req.AutoApply, FourEyes: req.FourEyes}, Providers: providerSources(req.Providers)}
	if err := applyTimeouts(&ws.Options, req.Timeouts); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if !s.mayChangeApproval(w, r, runs.Options{}, ws.Options) {
		return
	}
	if err := ws.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	// A tenant exists once it has a workspace (or an agent heartbeated).
	if _, err := s.cfg.Runs.CreateTenant(r.Context(), runs.Tenant{ID: tenant}); err != nil && !errors.Is(err, runs.ErrExists) {
		s.runsError(w, r, err)
		return
	}
	created, err := s.cfg.Runs.CreateWorkspace(r.Context(), ws)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "workspace created", "tenant", tenant, "workspace", ws.Name, "by", operator(r))
	noteDetail(w, "%s", describeWorkspace(created))
	writeJSON(w, http.StatusCreated, apiWorkspace(created))
}

// applyTimeouts parses the timeouts that are set into o.
func applyTimeouts(o *runs.Options, t Timeouts) error {
	for _, f := range []struct {
		field, v string
		to       *time.Duration
	}{{"plan", t.Plan, &o.PlanTimeout}, {"apply", t.Apply, &o.ApplyTimeout}, {"approval", t.Approval, &o.ApprovalTimeout}} {
		if f.v == "" {
			continue
		}
		d, err := parseTimeout(f.field, f.v)
		if err != nil {
			return err
		}
		*f.to = d
	}
	return nil
}

// mayChangeApproval refuses (403) a change of a workspace's approval
// options that the operator's role does not cover: turning auto-apply on
// lets every plan apply unapproved, so it needs the approver role; turning
// four-eyes off lets an approver apply their own plans, so it needs an
// admin.
func (s *Server) mayChangeApproval(w http.ResponseWriter, r *http.Request, from, to runs.Options) bool {
	p, _ := PrincipalFrom(r.Context())
	tenant := pathTenant(r)
	switch {
	case to.AutoApply && !from.AutoApply && !p.Allows(string(tenant), operatorauth.RoleApprover):
		s.forbidRole(w, r, p, tenant, operatorauth.RoleApprover)
		return false
	case from.FourEyes && !to.FourEyes && !p.IsAdmin():
		s.forbid(w, r, ReasonAdminRequired, tenant, fmt.Sprintf("%s may not turn four-eyes approval off; a platform administrator may", p))
		return false
	}
	return true
}

// updateWorkspace changes the fields present in the body; absent ones
// keep their values.
func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request) {
	tenant, name := pathTenant(r), pathWorkspace(r)
	var req UpdateWorkspaceRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var timeouts runs.Options
	if err := applyTimeouts(&timeouts, req.Timeouts); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	cur, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, name)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	next := applyUpdate(req, cur, timeouts)
	if !s.mayChangeApproval(w, r, cur.Options, next.Options) {
		return
	}
	if err := next.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	// The check above saw cur; a concurrent change of the approval
	// options makes this one fail rather than slip past it.
	var raced bool
	updated, err := s.cfg.Runs.UpdateWorkspace(r.Context(), tenant, name, func(ws *runs.Workspace) {
		if ws.Options.AutoApply != cur.Options.AutoApply || ws.Options.FourEyes != cur.Options.FourEyes {
			raced = true
			return
		}
		*ws = applyUpdate(req, *ws, timeouts)
	})
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if raced {
		writeError(w, r, http.StatusConflict, CodeConflict, "the workspace's approval options changed meanwhile; read it and try again")
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "workspace updated", "tenant", tenant, "workspace", name, "by", operator(r))
	if s.cfg.Dispatcher != nil {
		// Its labels, terraform version or provider sources may let a
		// waiting run start now.
		s.cfg.Dispatcher.Kick(tenant, name)
	}
	noteDetail(w, "%s", describeChange(cur, updated))
	writeJSON(w, http.StatusOK, apiWorkspace(updated))
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	wss, err := s.cfg.Runs.ListWorkspaces(r.Context(), pathTenant(r))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	out := WorkspaceList{Workspaces: []Workspace{}}
	for _, ws := range wss {
		out.Workspaces = append(out.Workspaces, apiWorkspace(ws))
	}
	writeJSON(w, http.StatusOK, out)
}
