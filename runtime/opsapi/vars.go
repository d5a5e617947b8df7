package opsapi

import (
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runproto"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/secretstore"
)

func (s *Server) varRoutes() []route {
	return []route{
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/workspaces/{workspace}/vars", role: operatorauth.RoleReader, handler: s.needRuns(s.listVars)},
		{method: http.MethodPut, path: "/v1/tenants/{tenant}/workspaces/{workspace}/vars/{name}", role: operatorauth.RoleOperator, handler: s.needRuns(s.setVar)},
		{method: http.MethodDelete, path: "/v1/tenants/{tenant}/workspaces/{workspace}/vars/{name}", role: operatorauth.RoleOperator, handler: s.needRuns(s.unsetVar)},
	}
}

// secrets is the store of sensitive variables; the server's secret store,
// or none (then sensitive variables cannot be set).
func (s *Server) secrets() secretstore.Store {
	if s.cfg.Secrets == nil {
		return secretstore.None{}
	}
	return s.cfg.Secrets
}

func (s *Server) listVars(w http.ResponseWriter, r *http.Request) {
	tenant, name := pathTenant(r), pathWorkspace(r)
	ws, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, name)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	sec, err := s.secrets().Get(r.Context(), tenant, name)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("cannot read the workspace's sensitive variables: %w", err))
		return
	}
	out := VariableList{Vars: []Variable{}}
	for k, v := range ws.Vars {
		out.Vars = append(out.Vars, Variable{Name: k, Value: &v})
	}
	for k := range sec.Vars {
		out.Vars = append(out.Vars, Variable{Name: k, Sensitive: true})
	}
	slices.SortFunc(out.Vars, func(a, b Variable) int { return strings.Compare(a.Name, b.Name) })
	writeJSON(w, http.StatusOK, out)
}

// setVar sets a variable, plain (stored with the workspace) or sensitive
// (in the secret store, with the deployment secrets); a variable of the
// same name of the other kind is removed.
func (s *Server) setVar(w http.ResponseWriter, r *http.Request) {
	tenant, name, key := pathTenant(r), pathWorkspace(r), r.PathValue("name")
	var req SetVariableRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if err := runs.ValidateVars(map[string]string{key: req.Value}); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if _, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, name); err != nil {
		s.runsError(w, r, err)
		return
	}
	if req.Sensitive {
		if s.cfg.Secrets == nil {
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "this server has no secret store for sensitive variables (start opsserver with --secrets-file or --key-vault-url)")
			return
		}
		if err := s.changeSecretVars(r, tenant, name, func(v map[string]string) { v[key] = req.Value }); err != nil {
			s.varsError(w, r, err)
			return
		}
	}
	_, err := s.cfg.Runs.UpdateWorkspace(r.Context(), tenant, name, func(ws *runs.Workspace) {
		if req.Sensitive {
			delete(ws.Vars, key)
			return
		}
		if ws.Vars == nil {
			ws.Vars = map[string]string{}
		}
		ws.Vars[key] = req.Value
	})
	if err == nil && !req.Sensitive && s.cfg.Secrets != nil {
		err = s.changeSecretVars(r, tenant, name, func(v map[string]string) { delete(v, key) })
	}
	if err != nil {
		s.varsError(w, r, err)
		return
	}
	out := Variable{Name: key, Sensitive: req.Sensitive}
	kind := "sensitive"
	if !req.Sensitive {
		out.Value, kind = &req.Value, "plain"
	}
	noteDetail(w, "variable %s set (%s)", key, kind)
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) unsetVar(w http.ResponseWriter, r *http.Request) {
	tenant, name, key := pathTenant(r), pathWorkspace(r), r.PathValue("name")
	found, sensitive := false, false
	_, err := s.cfg.Runs.UpdateWorkspace(r.Context(), tenant, name, func(ws *runs.Workspace) {
		_, found = ws.Vars[key]
		delete(ws.Vars, key)
	})
	if err == nil && s.cfg.Secrets != nil {
		err = s.changeSecretVars(r, tenant, name, func(v map[string]string) {
			_, sensitive = v[key]
			delete(v, key)
		})
	}
	found = found || sensitive
	switch {
	case err != nil:
		s.varsError(w, r, err)
	case !found:
		writeError(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("workspace %s has no variable %s", name, key))
	default:
		writeJSON(w, http.StatusOK, Variable{Name: key, Sensitive: sensitive})
	}
}

// changeSecretVars reads, changes and writes back the workspace's secrets
// (its environment kept as is).
func (s *Server) changeSecretVars(r *http.Request, tenant ids.TenantID, workspace ids.WorkspaceID, change func(map[string]string)) error {
	sec, err := s.cfg.Secrets.Get(r.Context(), tenant, workspace)
	if err != nil {
		return fmt.Errorf("cannot read the workspace's secrets: %w", err)
	}
	vars := maps.Clone(sec.Vars)
	if vars == nil {
		vars = map[string]string{}
	}
	change(vars)
	if maps.Equal(vars, sec.Vars) || len(vars) == 0 && len(sec.Vars) == 0 {
		return nil
	}
	next := runproto.Secrets{Env: sec.Env, Vars: vars}
	if err := secretstore.Validate(next); err != nil {
		return err
	}
	return s.cfg.Secrets.Put(r.Context(), tenant, workspace, next)
}

func (s *Server) varsError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, secretstore.ErrInvalid) {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	s.runsError(w, r, err)
}
