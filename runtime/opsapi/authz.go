package opsapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
)

// Authorization. Every /v1 route says what it needs (route.role or
// route.admin), and authorize checks it before the handler runs, against
// the tenant in the path: a principal's role in one tenant says nothing
// about another. Routes without a tenant in the path (status, agents,
// events) show only the tenants the principal has a role in; key
// management is for admins. Denials are 403 with an ErrorBody whose
// Reason and MissingRole say what was missing.
//
// Malformed ids in the path are refused with 400 before anything else, so
// that they never reach the store (where they used to become 500s).

// Reasons in ErrorDetail.Reason of a 403.
const (
	// ReasonMissingRole: the principal lacks the role in the tenant.
	ReasonMissingRole = "missing_role"
	// ReasonAdminRequired: the endpoint is for platform administrators.
	ReasonAdminRequired = "admin_required"
	// ReasonFourEyes: the workspace requires a second person to approve.
	ReasonFourEyes = "four_eyes"
)

// authorize checks the path's ids and the principal's grants for rt.
func (s *Server) authorize(rt route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := checkPathIDs(r); msg != "" {
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, msg)
			return
		}
		p, _ := PrincipalFrom(r.Context())
		switch {
		case rt.admin && !p.IsAdmin():
			s.forbid(w, r, ReasonAdminRequired, "", fmt.Sprintf("%s is not a platform administrator; %s %s is for administrators", p, r.Method, rt.path))
			return
		case rt.role != "":
			tenant := r.PathValue("tenant")
			if !p.Allows(tenant, rt.role) {
				s.forbidRole(w, r, p, tenant, rt.role)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// checkPathIDs returns why an id in the path is malformed, or "".
func checkPathIDs(r *http.Request) string {
	for _, kind := range []string{"tenant", "workspace", "policy", "notification"} {
		if v := r.PathValue(kind); v != "" {
			if err := ids.Validate(kind, v); err != nil {
				return err.Error()
			}
		}
	}
	if v := r.PathValue("run"); v != "" && !runs.ValidRunID(v) {
		return fmt.Sprintf("run id %q is malformed (want run-<16 characters>)", v)
	}
	if v := r.PathValue("key"); v != "" {
		if err := operatorauth.ValidateKeyID(v); err != nil {
			return err.Error()
		}
	}
	return ""
}

// forbidRole refuses a request for want in tenant, naming the role.
func (s *Server) forbidRole(w http.ResponseWriter, r *http.Request, p operatorauth.Principal, tenant string, want operatorauth.Role) {
	has := "no role"
	if got := p.RoleIn(tenant); got != "" {
		has = "only " + string(got)
	}
	msg := fmt.Sprintf("%s needs the %s role in tenant %s and has %s there", p, want, tenant, has)
	s.forbidden(w, r, ErrorDetail{Reason: ReasonMissingRole, MissingRole: string(want), Tenant: tenant, Message: msg})
}

func (s *Server) forbid(w http.ResponseWriter, r *http.Request, reason, tenant, msg string) {
	s.forbidden(w, r, ErrorDetail{Reason: reason, Tenant: tenant, Message: msg})
}

// forbidden answers 403 with d (code forbidden) and logs the denial.
func (s *Server) forbidden(w http.ResponseWriter, r *http.Request, d ErrorDetail) {
	s.cfg.Logger.WarnContext(r.Context(), "operator request refused", "request_id", requestID(r.Context()), "method", r.Method, "path", r.URL.Path, "reason", d.Reason, "message", d.Message)
	d.Code, d.RequestID = CodeForbidden, requestID(r.Context())
	noteError(w, d.Message)
	writeJSON(w, http.StatusForbidden, ErrorBody{Error: d})
}

// visibleAgents lists the agents of the tenants the principal in ctx has a
// role in (every tenant for an admin), narrowed to tenant if not "".
func (s *Server) visibleAgents(ctx context.Context, tenant string) ([]Agent, error) {
	p, _ := PrincipalFrom(ctx)
	if p.IsAdmin() {
		return s.cfg.Agents.ListAgents(ctx, AgentFilter{Tenant: tenant})
	}
	var out []Agent
	for _, t := range p.TenantIDs() {
		if tenant != "" && t != tenant {
			continue
		}
		agents, err := s.cfg.Agents.ListAgents(ctx, AgentFilter{Tenant: t})
		if err != nil {
			return nil, err
		}
		out = append(out, agents...)
	}
	return out, nil
}
