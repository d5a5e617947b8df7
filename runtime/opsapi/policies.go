package opsapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/policy"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runs"
)

// Policies (docs/policy.md). Readers see them; only platform
// administrators change them: a tenant's approvers are whom policies
// hold back, so they must not be able to lift them.
func (s *Server) policyRoutes() []route {
	const one = "/v1/tenants/{tenant}/policies/{policy}"
	return []route{
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/policies", role: operatorauth.RoleReader, handler: s.needPolicies(s.listPolicies)},
		{method: http.MethodGet, path: one, role: operatorauth.RoleReader, handler: s.needPolicies(s.getPolicy)},
		{method: http.MethodPut, path: one, admin: true, handler: s.needPolicies(s.putPolicy)},
		{method: http.MethodDelete, path: one, admin: true, handler: s.needPolicies(s.deletePolicy)},
		{method: http.MethodGet, path: one + "/versions", role: operatorauth.RoleReader, handler: s.needPolicies(s.policyVersions)},
	}
}

// needPolicies answers 503 without a policy store, and 404 for an unknown
// tenant (needRuns).
func (s *Server) needPolicies(h http.HandlerFunc) http.HandlerFunc {
	return s.needRuns(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Policies == nil {
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "policies are not configured on this server")
			return
		}
		h(w, r)
	})
}

func apiPolicy(p policystore.Policy, withSource bool) Policy {
	out := Policy{Tenant: string(p.Tenant), Name: p.Name, Workspace: string(p.Workspace), Description: p.Description, Enforcement: string(p.Enforcement),
		Version: p.Version, SHA256: p.SHA256, CreatedAt: p.CreatedAt.UTC(), CreatedBy: p.CreatedBy, Deleted: p.Deleted}
	if withSource {
		out.Source = p.Source
	}
	return out
}

func (s *Server) policyError(w http.ResponseWriter, r *http.Request, err error) {
	var ce *policy.CompileError
	switch {
	case errors.As(err, &ce):
		writeError(w, r, http.StatusBadRequest, CodePolicyInvalid, err.Error())
	case errors.Is(err, policystore.ErrNotFound):
		writeError(w, r, http.StatusNotFound, CodeNotFound, err.Error())
	case errors.Is(err, policystore.ErrConflict):
		writeError(w, r, http.StatusConflict, CodeConflict, err.Error()+"; read it again and retry")
	default:
		s.internalError(w, r, err)
	}
}

func (s *Server) listPolicies(w http.ResponseWriter, r *http.Request) {
	ps, err := s.cfg.Policies.List(r.Context(), pathTenant(r))
	if err != nil {
		s.policyError(w, r, err)
		return
	}
	out := PolicyList{Policies: make([]Policy, len(ps))}
	for i, p := range ps {
		out.Policies[i] = apiPolicy(p, false)
	}
	writeJSON(w, http.StatusOK, out)
}

// getPolicy answers the current version, or ?version=N.
func (s *Server) getPolicy(w http.ResponseWriter, r *http.Request) {
	tenant, name := pathTenant(r), r.PathValue("policy")
	v := r.URL.Query().Get("version")
	if v == "" {
		p, err := s.cfg.Policies.Get(r.Context(), tenant, name)
		if err != nil {
			s.policyError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, apiPolicy(p, true))
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, "version "+strconv.Quote(v)+" must be a positive number")
		return
	}
	vs, err := s.cfg.Policies.Versions(r.Context(), tenant, name)
	if err != nil {
		s.policyError(w, r, err)
		return
	}
	for _, p := range vs {
		if p.Version == n {
			writeJSON(w, http.StatusOK, apiPolicy(p, true))
			return
		}
	}
	writeError(w, r, http.StatusNotFound, CodeNotFound, "policy "+name+" has no version "+v)
}

func (s *Server) putPolicy(w http.ResponseWriter, r *http.Request) {
	var req PutPolicyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	workspace, ok := optionalWorkspace(w, r, req.Workspace)
	if !ok {
		return
	}
	p := policystore.Policy{Tenant: pathTenant(r), Name: r.PathValue("policy"), Workspace: workspace, Description: req.Description,
		Enforcement: runs.Enforcement(req.Enforcement), Source: req.Source, CreatedBy: operator(r)}
	if err := p.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	p, err := policy.Put(r.Context(), s.cfg.Policies, p)
	if err != nil {
		s.policyError(w, r, err)
		return
	}
	noteDetail(w, "policy %s version %d (%s, workspace %q, sha256 %s)", p.Name, p.Version, p.Enforcement, p.Workspace, p.SHA256)
	writeJSON(w, http.StatusOK, apiPolicy(p, true))
}

func (s *Server) deletePolicy(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Policies.Delete(r.Context(), pathTenant(r), r.PathValue("policy"), operator(r))
	if err != nil {
		s.policyError(w, r, err)
		return
	}
	noteDetail(w, "policy %s deleted (version %d)", p.Name, p.Version)
	writeJSON(w, http.StatusOK, apiPolicy(p, false))
}

func (s *Server) policyVersions(w http.ResponseWriter, r *http.Request) {
	vs, err := s.cfg.Policies.Versions(r.Context(), pathTenant(r), r.PathValue("policy"))
	if err != nil {
		s.policyError(w, r, err)
		return
	}
	out := PolicyList{Policies: make([]Policy, len(vs))}
	for i, p := range vs {
		out.Policies[i] = apiPolicy(p, false)
	}
	writeJSON(w, http.StatusOK, out)
}

// policiesUnchanged refuses (runs.ErrPolicyFailed) to approve a planned run
// whose plan was checked before a policy that applies to its workspace now
// was added or changed (policyChanges).
func (s *Server) policiesUnchanged(ctx context.Context, tenant ids.TenantID, id string) error {
	if s.cfg.Policies == nil {
		return nil
	}
	run, err := s.cfg.Runs.GetRun(ctx, tenant, id)
	if err != nil {
		return nil // ApproveRun answers it
	}
	changed, err := s.policyChanges(ctx, run)
	if err != nil || changed == "" {
		return err
	}
	return fmt.Errorf("%w: %s", runs.ErrPolicyFailed, changed)
}

// policyChanges says which policies that apply to a planned run's
// workspace were added or got a new version since its plan was checked
// ("" when none): a verdict on an older set of policies must not let a
// plan through that the current ones would stop (a mandatory policy added
// after an incident, while plans wait for approval). Deleted policies
// change nothing: their recorded failures still block. Plan again to be
// checked on the current policies.
func (s *Server) policyChanges(ctx context.Context, run runs.Run) (string, error) {
	if s.cfg.Policies == nil || run.State != runs.Planned || run.DriftCheck || run.Plan == nil {
		return "", nil
	}
	all, err := s.cfg.Policies.List(ctx, run.Tenant)
	if err != nil {
		return "", fmt.Errorf("cannot read the policies of tenant %s: %w", run.Tenant, err)
	}
	checked := map[string]int{}
	if run.Policy != nil {
		for _, r := range run.Policy.Results {
			checked[r.Policy] = r.Version
		}
	}
	var changed []string
	for _, p := range all {
		if !p.AppliesTo(run.Workspace) {
			continue
		}
		switch v, ok := checked[p.Name]; {
		case !ok:
			changed = append(changed, fmt.Sprintf("%s v%d is new", p.Name, p.Version))
		case v != p.Version:
			changed = append(changed, fmt.Sprintf("%s is v%d, checked at v%d", p.Name, p.Version, v))
		}
	}
	if len(changed) == 0 {
		return "", nil
	}
	return fmt.Sprintf("the policies changed since run %s's plan was checked (%s); plan again to check it on them", run.ID, strings.Join(changed, ", ")), nil
}
