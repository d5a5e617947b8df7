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
		scope, msg := parsePath(r)
		if msg != "" {
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, msg)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), scopeKey, scope))
		p, _ := PrincipalFrom(r.Context())
		switch {
		case rt.admin && !p.IsAdmin():
			s.forbid(w, r, ReasonAdminRequired, "", fmt.Sprintf("%s is not a platform administrator; %s %s is for administrators", p, r.Method, rt.path))
			return
		case rt.role != "":
			if !p.Allows(string(scope.tenant), rt.role) {
				s.forbidRole(w, r, p, scope.tenant, rt.role)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// pathScope is the tenant and workspace a request's path names ("" where
// it names none), parsed once by authorize and carried typed from there.
type pathScope struct {
	tenant    ids.TenantID
	workspace ids.WorkspaceID
}

// pathTenant is the tenant in the request's path, as authorize parsed it.
func pathTenant(r *http.Request) ids.TenantID {
	scope, _ := r.Context().Value(scopeKey).(pathScope)
	return scope.tenant
}

// pathWorkspace is the workspace in the request's path, as authorize
// parsed it.
func pathWorkspace(r *http.Request) ids.WorkspaceID {
	scope, _ := r.Context().Value(scopeKey).(pathScope)
	return scope.workspace
}

// optionalWorkspace parses a workspace given in a request's body or query;
// "" (none given) means every workspace of the tenant. A malformed one is
// answered 400, naming it, and ok is false.
func optionalWorkspace(w http.ResponseWriter, r *http.Request, v string) (workspace ids.WorkspaceID, ok bool) {
	if v == "" {
		return "", true
	}
	workspace, err := ids.ParseWorkspaceID(v)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return "", false
	}
	return workspace, true
}

// parsePath parses the ids in the path. It returns why one is malformed,
// or "". A path value is never empty here: the mux matches {tenant} only
// to a non-empty segment.
func parsePath(r *http.Request) (pathScope, string) {
	var scope pathScope
	var err error
	if v := r.PathValue("tenant"); v != "" {
		if scope.tenant, err = ids.ParseTenantID(v); err != nil {
			return pathScope{}, err.Error()
		}
	}
	if v := r.PathValue("workspace"); v != "" {
		if scope.workspace, err = ids.ParseWorkspaceID(v); err != nil {
			return pathScope{}, err.Error()
		}
	}
	for _, kind := range []string{"policy", "notification"} {
		if v := r.PathValue(kind); v != "" {
			if err := ids.Validate(kind, v); err != nil {
				return pathScope{}, err.Error()
			}
		}
	}
	if v := r.PathValue("run"); v != "" && !runs.ValidRunID(v) {
		return pathScope{}, fmt.Sprintf("run id %q is malformed (want run-<16 characters>)", v)
	}
	if v := r.PathValue("key"); v != "" {
		if err := operatorauth.ValidateKeyID(v); err != nil {
			return pathScope{}, err.Error()
		}
	}
	return scope, ""
}

// forbidRole refuses a request for want in tenant, naming the role.
func (s *Server) forbidRole(w http.ResponseWriter, r *http.Request, p operatorauth.Principal, tenant ids.TenantID, want operatorauth.Role) {
	has := "no role"
	if got := p.RoleIn(string(tenant)); got != "" {
		has = "only " + string(got)
	}
	msg := fmt.Sprintf("%s needs the %s role in tenant %s and has %s there", p, want, tenant, has)
	s.forbidden(w, r, ErrorDetail{Reason: ReasonMissingRole, MissingRole: string(want), Tenant: string(tenant), Message: msg})
}

func (s *Server) forbid(w http.ResponseWriter, r *http.Request, reason string, tenant ids.TenantID, msg string) {
	s.forbidden(w, r, ErrorDetail{Reason: reason, Tenant: string(tenant), Message: msg})
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
func (s *Server) visibleAgents(ctx context.Context, tenant ids.TenantID) ([]Agent, error) {
	p, _ := PrincipalFrom(ctx)
	if p.IsAdmin() {
		return s.cfg.Agents.ListAgents(ctx, AgentFilter{Tenant: tenant})
	}
	var out []Agent
	for _, t := range p.TenantIDs() {
		if tenant != "" && t != string(tenant) {
			continue
		}
		// A grant's tenant id was checked when the grant was made.
		agents, err := s.cfg.Agents.ListAgents(ctx, AgentFilter{Tenant: ids.TenantID(t)})
		if err != nil {
			return nil, err
		}
		out = append(out, agents...)
	}
	return out, nil
}
