package opsapi

import (
	"errors"
	"net/http"
	"time"

	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
)

// Drift detection (docs/drift.md): readers see drift states, operators
// set schedules and queue checks.
func (s *Server) driftRoutes() []route {
	const ws = "/v1/tenants/{tenant}/workspaces/{workspace}/drift"
	return []route{
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/drift", role: operatorauth.RoleReader, handler: s.needDrift(s.listDrift)},
		{method: http.MethodGet, path: ws, role: operatorauth.RoleReader, handler: s.needDrift(s.getDrift)},
		{method: http.MethodPut, path: ws + "/schedule", role: operatorauth.RoleOperator, handler: s.needDrift(s.setDriftSchedule)},
		{method: http.MethodDelete, path: ws + "/schedule", role: operatorauth.RoleOperator, handler: s.needDrift(s.deleteDriftSchedule)},
		{method: http.MethodPost, path: ws + "/check", role: operatorauth.RoleOperator, handler: s.needDrift(s.checkDrift)},
	}
}

func (s *Server) needDrift(h http.HandlerFunc) http.HandlerFunc {
	return s.needRuns(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Drift == nil {
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "drift detection is not configured on this server")
			return
		}
		h(w, r)
	})
}

func apiDrift(st drift.State) DriftStatus {
	out := DriftStatus{Tenant: string(st.Tenant), Workspace: string(st.Workspace), Status: string(st.Status), CheckRun: st.CheckRun, Cleared: st.Cleared,
		LastRun: st.LastRun, LastError: st.LastError}
	if out.Status == "" {
		out.Status = "unknown"
	}
	if !st.Schedule.IsZero() {
		out.Schedule = &DriftSchedule{Cron: st.Schedule.Cron}
		if st.Schedule.Every != 0 {
			out.Schedule.Every = st.Schedule.Every.String()
		}
	}
	ptr := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	out.NextCheck, out.CheckedAt, out.MoreResources = ptr(st.Next), ptr(st.CheckedAt), st.More
	for _, res := range st.Resources {
		dr := DriftResource{Address: res.Address, Type: res.Type, Actions: res.Actions, Diff: res.Diff}
		for _, a := range res.Attributes {
			dr.Attributes = append(dr.Attributes, DriftAttribute{Name: a.Name, Before: a.Before, After: a.After})
		}
		out.Resources = append(out.Resources, dr)
	}
	return out
}

func (s *Server) driftError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, runs.ErrConflict) {
		writeError(w, r, http.StatusConflict, CodeConflict, err.Error())
		return
	}
	s.runsError(w, r, err)
}

func (s *Server) listDrift(w http.ResponseWriter, r *http.Request) {
	sts, err := s.cfg.Drift.List(r.Context(), pathTenant(r))
	if err != nil {
		s.driftError(w, r, err)
		return
	}
	out := DriftList{Workspaces: make([]DriftStatus, len(sts))}
	for i, st := range sts {
		out.Workspaces[i] = apiDrift(st)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getDrift(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Drift.Get(r.Context(), pathTenant(r), pathWorkspace(r))
	if err != nil {
		s.driftError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiDrift(st))
}

func (s *Server) setDriftSchedule(w http.ResponseWriter, r *http.Request) {
	var req DriftSchedule
	if !decodeBody(w, r, &req) {
		return
	}
	sch := drift.Schedule{Cron: req.Cron}
	if req.Every != "" {
		d, err := time.ParseDuration(req.Every)
		if err != nil {
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, "every "+req.Every+" is not a duration such as 6h or 30m")
			return
		}
		sch.Every = d
	}
	if sch.IsZero() {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, "give a cron expression or an interval (DELETE removes the schedule)")
		return
	}
	s.writeSchedule(w, r, sch)
}

func (s *Server) deleteDriftSchedule(w http.ResponseWriter, r *http.Request) {
	s.writeSchedule(w, r, drift.Schedule{})
}

func (s *Server) writeSchedule(w http.ResponseWriter, r *http.Request, sch drift.Schedule) {
	st, err := s.cfg.Drift.SetSchedule(r.Context(), pathTenant(r), pathWorkspace(r), sch)
	if err != nil {
		s.driftError(w, r, err)
		return
	}
	noteDetail(w, "drift schedule %s", sch)
	writeJSON(w, http.StatusOK, apiDrift(st))
}

// checkDrift queues a drift check now: 202 with the state naming the
// run; 409 while the workspace is busy.
func (s *Server) checkDrift(w http.ResponseWriter, r *http.Request) {
	st, err := s.cfg.Drift.CheckNow(r.Context(), pathTenant(r), pathWorkspace(r))
	if err != nil {
		s.driftError(w, r, err)
		return
	}
	if s.cfg.Dispatcher != nil {
		s.cfg.Dispatcher.Kick(st.Tenant, st.Workspace)
	}
	noteDetail(w, "drift check %s queued", st.LastRun)
	writeJSON(w, http.StatusAccepted, apiDrift(st))
}
