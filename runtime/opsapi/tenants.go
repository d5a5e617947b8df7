package opsapi

import (
	"net/http"
	"slices"
	"strings"
)

// listTenants answers the tenants of this server the principal holds a
// role in: every one for an admin. A granted tenant the server does not
// know (no agent, no workspace yet) is left out, as every tenant route
// answers it 404.
func (s *Server) listTenants(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	all, err := s.cfg.Runs.ListTenants(r.Context())
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	out := TenantList{Tenants: []Tenant{}}
	for _, t := range all {
		if role := p.RoleIn(string(t.ID)); role != "" {
			out.Tenants = append(out.Tenants, Tenant{ID: string(t.ID), Role: string(role), CreatedAt: t.CreatedAt})
		}
	}
	slices.SortFunc(out.Tenants, func(a, b Tenant) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, http.StatusOK, out)
}
