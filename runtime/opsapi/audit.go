package opsapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// AuditLog records and reads the audit log (*audit.Recorder on an
// audit.Table).
type AuditLog interface {
	Record(ctx context.Context, r audit.Record)
	Query(ctx context.Context, q audit.Query) (audit.Page, error)
}

// DefaultAuditWindow is how far back GET /v1/audit reads without since.
const DefaultAuditWindow = 24 * time.Hour

func (s *Server) auditRoutes() []route {
	return []route{{method: http.MethodGet, path: "/v1/audit", handler: s.readAudit}}
}

// mutating reports whether a request may change something.
func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// audited records every mutating call and every refused authorization
// (401, 403) of a route, whatever answered it: the authentication
// middleware, an endpoint's role check, or the handler. It wraps a route
// outside authentication and reads the outcome from the statusRecorder,
// so no handler needs to call it. Requests that reach no route (404, 405)
// are not API calls and are not recorded.
func (s *Server) audited(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := audit.Origin{RequestID: requestID(r.Context()), Client: r.RemoteAddr}
		r = r.WithContext(audit.WithOrigin(r.Context(), origin))
		defer func() {
			// A handler that panics is answered 500 further out (observe);
			// its call is audited all the same.
			v := recover()
			if rec, ok := w.(*statusRecorder); ok {
				status := rec.status
				if v != nil && status == 0 {
					status = http.StatusInternalServerError
				}
				s.auditCall(r, rec, status, origin)
			}
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// auditCall records a routed call that mutates, reads secrets
// (auditedRead) or was refused.
func (s *Server) auditCall(r *http.Request, rec *statusRecorder, status int, origin audit.Origin) {
	if !mutating(r.Method) && !auditedRead(r.Pattern) && status != http.StatusUnauthorized && status != http.StatusForbidden {
		return
	}
	entry := audit.Record{
		Time:      s.cfg.Now(),
		Action:    r.Pattern,
		Object:    r.URL.RequestURI(), // the query says what too (?op=destroy)
		Result:    audit.ResultOf(status),
		Status:    status,
		RequestID: origin.RequestID,
		Client:    origin.Client,
		Detail:    rec.detail,
	}
	if p := rec.principal; p != nil {
		entry.Principal = p.String()
		if p.Subject() != entry.Principal {
			entry.Subject = p.Subject()
		}
	}
	// An unauthenticated caller's claim to a tenant proves nothing: its
	// records go to the platform partition (admins read them), where they
	// cannot crowd out a tenant's own. So do those of a credential refused
	// before it became a principal (a token the identity provider signed
	// that lacks the role the API requires: any user of the directory can
	// get one).
	if status == http.StatusUnauthorized || rec.principal == nil {
		ok, dropped, since := s.unauthenticated.Take(entry.Time)
		if !ok {
			return
		}
		if dropped > 0 {
			entry.Detail += fmt.Sprintf(" (and %d more unauthenticated requests since %s, not recorded one by one)", dropped, since.UTC().Format(time.RFC3339))
		}
	} else {
		if status == http.StatusForbidden {
			ok, dropped, since := s.refusals.take(rec.principal.Subject(), entry.Time)
			if !ok {
				return
			}
			if dropped > 0 {
				entry.Detail += fmt.Sprintf(" (and %d more refused requests of %s since %s, not recorded one by one)", dropped, rec.principal, since.UTC().Format(time.RFC3339))
			}
		}
		if t := auditTenant(r); ids.Validate("tenant", t) == nil {
			entry.Tenant = t
		}
	}
	s.record(r.Context(), entry)
}

// auditTenant is the tenant a call concerns: the one in its path, or for
// reads that filter by ?tenant= (agents, audit), that one. A mutation
// without a tenant in its path (key management) is the platform's, so a
// query parameter cannot file it in a tenant's log.
func auditTenant(r *http.Request) string {
	if t := r.PathValue("tenant"); t != "" || mutating(r.Method) {
		return t
	}
	return r.URL.Query().Get("tenant")
}

// Unauthenticated requests are recorded at most this often (a caller with
// relay send rights but no API key must not make the server write an
// entity per request); the next record stored counts those skipped.
const (
	unauthenticatedRate  = 10 // per second
	unauthenticatedBurst = 100
)

// An authenticated principal's refusals (403) are recorded at most this
// often per principal: a principal that knocks on another tenant's door
// again and again must not fill that tenant's audit log, nor the table.
// The next record stored counts those skipped.
const (
	refusalRate  = 1 // per second
	refusalBurst = 20
	// maxRefusalSamplers bounds the principals tracked; past it the
	// samplers start over (principals are authenticated, so few).
	maxRefusalSamplers = 10000
)

// refusalSamplers holds an audit.Sampler per principal (Subject).
type refusalSamplers struct {
	mu sync.Mutex
	m  map[string]*audit.Sampler
}

// take is audit.Sampler.Take for subject's sampler.
func (rs *refusalSamplers) take(subject string, now time.Time) (ok bool, dropped int, since time.Time) {
	rs.mu.Lock()
	smp := rs.m[subject]
	if smp == nil {
		if rs.m == nil || len(rs.m) >= maxRefusalSamplers {
			rs.m = map[string]*audit.Sampler{}
		}
		smp = &audit.Sampler{Rate: refusalRate, Burst: refusalBurst}
		rs.m[subject] = smp
	}
	rs.mu.Unlock()
	return smp.Take(now)
}

// noteError keeps the message of the error answered, for the audit record.
func noteError(w http.ResponseWriter, msg string) { noteDetail(w, "%s", msg) }

// noteDetail says in the audit record what a mutation made or changed
// when its path does not (the body named it): never a secret value.
func noteDetail(w http.ResponseWriter, format string, args ...any) {
	if rec, ok := w.(*statusRecorder); ok {
		rec.detail = fmt.Sprintf(format, args...)
	}
}

// record stores an audit record, or logs it when the server has no audit
// log (no storage configured).
func (s *Server) record(ctx context.Context, r audit.Record) {
	if s.cfg.Audit != nil {
		s.cfg.Audit.Record(ctx, r)
		return
	}
	s.cfg.Logger.InfoContext(ctx, "audit", r.LogAttrs()...)
}

// readAudit is GET /v1/audit: admins read every tenant (and the platform
// records), everyone else only the tenants they hold a role in.
func (s *Server) readAudit(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Audit == nil {
		writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "the audit log is not configured on this server (it needs storage: --storage-connection-string or --table-url)")
		return
	}
	q, err := auditQuery(r, s.cfg.Now())
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	p, _ := PrincipalFrom(r.Context())
	tenant := r.URL.Query().Get("tenant")
	if q.Tenants, err = auditScope(p, tenant); err != nil {
		writeError(w, r, http.StatusForbidden, CodeForbidden, err.Error())
		return
	}
	page, err := s.cfg.Audit.Query(r.Context(), q)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("cannot read the audit log: %w", err))
		return
	}
	// Nothing for a tenant the run store does not know: a mistyped name,
	// not a quiet tenant. (Refusals may be filed under a name no tenant
	// has yet; those are shown.)
	if len(page.Records) == 0 && tenant != "" && tenant != audit.Platform && s.cfg.Runs != nil {
		t := ids.TenantID(tenant) // auditQuery checked it
		if _, err := s.cfg.Runs.GetTenant(r.Context(), t); errors.Is(err, runs.ErrNotFound) {
			writeError(w, r, http.StatusNotFound, CodeNotFound, tenantNotFound(t))
			return
		}
	}
	writeJSON(w, http.StatusOK, apiAuditPage(page))
}

func apiAuditPage(p audit.Page) AuditPage {
	out := AuditPage{More: p.More}
	if p.Records != nil {
		out.Records = make([]AuditRecord, 0, len(p.Records))
	}
	for _, r := range p.Records {
		out.Records = append(out.Records, AuditRecord(r))
	}
	return out
}

// auditQuery parses GET /v1/audit's parameters (all but the tenant).
func auditQuery(r *http.Request, now time.Time) (audit.Query, error) {
	v := r.URL.Query()
	q := audit.Query{Principal: v.Get("principal"), Before: v.Get("before"), Since: now.Add(-DefaultAuditWindow)}
	if s := v.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return q, fmt.Errorf("since %q must be an RFC 3339 time such as 2026-01-02T15:04:05Z", s)
		}
		q.Since = t
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxLimit {
			return q, fmt.Errorf("limit %q must be a number from 1 to %d", s, audit.MaxLimit)
		}
		q.Limit = n
	}
	if t := v.Get("tenant"); t != "" && t != audit.Platform {
		if err := ids.Validate("tenant", t); err != nil {
			return q, err
		}
	}
	return q, q.Validate()
}

// errNoAuditScope: the principal may read no tenant's audit log.
var errNoAuditScope = errors.New("reading the audit log needs a role in a tenant")

// grants is what auditScope asks of a principal (operatorauth.Grants).
type grants interface {
	IsAdmin() bool
	TenantIDs() []string
}

// auditScope is the partitions p may read, narrowed to tenant when given:
// nil (everything) for an admin without a tenant.
func auditScope(p grants, tenant string) ([]string, error) {
	if p.IsAdmin() {
		if tenant != "" {
			return []string{tenant}, nil
		}
		return nil, nil
	}
	mine := p.TenantIDs()
	switch {
	case tenant == audit.Platform:
		return nil, errors.New("the platform's audit records are for admins only")
	case tenant != "" && !slices.Contains(mine, tenant):
		return nil, fmt.Errorf("you hold no role in tenant %s, so you cannot read its audit log", tenant)
	case tenant != "":
		return []string{tenant}, nil
	case len(mine) == 0:
		return nil, errNoAuditScope
	}
	return mine, nil
}

// workspaceSettings are what the audit log says of a workspace's settings
// (not its variables: plain ones are logged by name where they are set).
func workspaceSettings(ws runs.Workspace) [][2]string {
	labels := make([]string, 0, len(ws.AgentLabels))
	for _, k := range slices.Sorted(maps.Keys(ws.AgentLabels)) {
		labels = append(labels, k+"="+ws.AgentLabels[k])
	}
	o := ws.Options
	return [][2]string{
		{"auto_apply", strconv.FormatBool(o.AutoApply)}, {"four_eyes", strconv.FormatBool(o.FourEyes)},
		{"labels", "{" + strings.Join(labels, ",") + "}"}, {"terraform_version", ws.TerraformVersion},
		{"timeouts", fmt.Sprintf("plan %s, apply %s, approval %s", orDefault(o.PlanTimeout), orDefault(o.ApplyTimeout), orDefault(o.ApprovalTimeout))},
	}
}

func orDefault(d time.Duration) string {
	if d == 0 {
		return "default"
	}
	return d.String()
}

// describeWorkspace is a created workspace's audit detail.
func describeWorkspace(ws runs.Workspace) string {
	parts := []string{}
	for _, kv := range workspaceSettings(ws) {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	return "workspace " + string(ws.Name) + ": " + strings.Join(parts, " ")
}

// describeChange is an updated workspace's audit detail: each setting
// that changed, old→new.
func describeChange(from, to runs.Workspace) string {
	var parts []string
	if from.Description != to.Description {
		parts = append(parts, "description changed")
	}
	was := workspaceSettings(from)
	for i, kv := range workspaceSettings(to) {
		if kv[1] != was[i][1] {
			parts = append(parts, kv[0]+" "+was[i][1]+"→"+kv[1])
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "nothing changed")
	}
	return "workspace " + string(to.Name) + ": " + strings.Join(parts, ", ")
}
