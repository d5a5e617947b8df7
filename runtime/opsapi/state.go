package opsapi

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
)

// stateRoutes read a workspace's kept Terraform states and roll back to
// one. Listing them is a reader's; reading one takes operator: a state
// holds every resource attribute in the clear, secrets included, which a
// reader (who sees redacted logs) must not get. A rollback changes what
// the next plan and apply build on, so it is an approver's, like an apply.
func (s *Server) stateRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/workspaces/{workspace}/state/versions", role: operatorauth.RoleReader, handler: s.needRuns(s.listStateVersions)},
		{method: http.MethodGet, path: statePath, role: operatorauth.RoleOperator, handler: s.needRuns(s.getState)},
		{method: http.MethodPost, path: statePath + "/rollback", role: operatorauth.RoleApprover, handler: s.needRuns(s.rollbackState)},
	}
}

const statePath = "/v1/tenants/{tenant}/workspaces/{workspace}/state"

// auditedRead reports a read the audit log records although it changes
// nothing: a state read hands out every secret the state holds.
func auditedRead(pattern string) bool { return pattern == http.MethodGet+" "+statePath }

// stateWorkspace checks the workspace exists (an unknown one is 404, not
// an empty history).
func (s *Server) stateWorkspace(w http.ResponseWriter, r *http.Request) (tenant ids.TenantID, workspace ids.WorkspaceID, ok bool) {
	ws, ok := s.stateWorkspaceOf(w, r)
	return ws.Tenant, ws.Name, ok
}

func (s *Server) stateWorkspaceOf(w http.ResponseWriter, r *http.Request) (runs.Workspace, bool) {
	ws, err := s.cfg.Runs.GetWorkspace(r.Context(), pathTenant(r), pathWorkspace(r))
	if err != nil {
		s.runsError(w, r, err)
		return runs.Workspace{}, false
	}
	return ws, true
}

func (s *Server) listStateVersions(w http.ResponseWriter, r *http.Request) {
	tenant, workspace, ok := s.stateWorkspace(w, r)
	if !ok {
		return
	}
	vs, err := s.cfg.Artifacts.StateVersions(r.Context(), tenant, workspace)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	out := StateVersionList{Versions: make([]StateVersion, 0, len(vs))}
	for _, v := range vs {
		out.Versions = append(out.Versions, StateVersion(v))
	}
	writeJSON(w, http.StatusOK, out)
}

// getState answers with the state file itself, byte for byte, and its
// version and SHA-256 in headers.
func (s *Server) getState(w http.ResponseWriter, r *http.Request) {
	tenant, workspace, ok := s.stateWorkspace(w, r)
	if !ok {
		return
	}
	version := r.URL.Query().Get("version")
	data, err := s.cfg.Artifacts.OpenState(r.Context(), tenant, workspace, version)
	if errors.Is(err, artifacts.ErrNotFound) {
		msg := fmt.Sprintf("workspace %s of tenant %s has no state yet (no apply stored one)", workspace, tenant)
		if version != "" && version != artifacts.CurrentVersion {
			msg = fmt.Sprintf("workspace %s of tenant %s has no state version %s (opsbot state versions lists them)", workspace, tenant, version)
		}
		writeError(w, r, http.StatusNotFound, CodeNotFound, msg)
		return
	}
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if version == "" {
		version = artifacts.CurrentVersion
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Header().Set(HeaderStateVersion, version)
	sum := sha256.Sum256(data)
	w.Header().Set(HeaderStateSHA256, hex.EncodeToString(sum[:]))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
}

// rollbackState makes a kept version the workspace's current state again,
// only while no run holds the workspace (a saved plan waiting for approval
// carries the state it was planned on; its apply would undo the rollback).
// In a four-eyes workspace it takes a platform administrator: a rollback
// changes what the next plan builds on, which four-eyes makes take two
// people, and there is no second approver to ask.
func (s *Server) rollbackState(w http.ResponseWriter, r *http.Request) {
	ws, ok := s.stateWorkspaceOf(w, r)
	if !ok {
		return
	}
	tenant, workspace := ws.Tenant, ws.Name
	if p, _ := PrincipalFrom(r.Context()); ws.Options.FourEyes && !p.IsAdmin() {
		s.forbid(w, r, ReasonAdminRequired, tenant, fmt.Sprintf("%s may not roll back the state of four-eyes workspace %s alone; a platform administrator may", p, workspace))
		return
	}
	var req StateRollbackRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Version == "" {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, "version is required (opsbot state versions lists them)")
		return
	}
	if err := artifacts.CheckStateVersion(req.Version); err != nil {
		s.runsError(w, r, err)
		return
	}
	var holding []runs.State
	for _, st := range runs.States() {
		if st.HoldsLock() {
			holding = append(holding, st)
		}
	}
	busy, err := s.cfg.Runs.ListRuns(r.Context(), tenant, workspace, holding...)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if len(busy) > 0 {
		writeError(w, r, http.StatusConflict, CodeConflict, fmt.Sprintf("workspace %s is held by run %s (%s): roll back when no run holds it (cancel it, or let it end)", workspace, busy[0].ID, busy[0].State))
		return
	}
	v, err := s.cfg.Artifacts.RestoreState(r.Context(), tenant, workspace, req.Version)
	switch {
	case errors.Is(err, artifacts.ErrNotFound):
		writeError(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("workspace %s of tenant %s has no state version %s (opsbot state versions lists them)", workspace, tenant, req.Version))
	case errors.Is(err, artifacts.ErrConflict):
		writeError(w, r, http.StatusConflict, CodeConflict, "the workspace's state changed during the rollback; look at opsbot state versions and try again")
	case err != nil:
		s.runsError(w, r, err)
	default:
		noteDetail(w, "state version %s made current", v.Version)
		writeJSON(w, http.StatusOK, StateVersion(v))
	}
}
