// Package opsapi is the ops server's versioned REST API: the handlers behind
// opsserver, the JSON types they exchange (which the opsclient package
// reuses), and the OpenAPI document that describes them, embedded and served
// at /v1/openapi.json.
//
// Paths are versioned (/v1/...). Every /v1 endpoint needs an operator
// credential (see operatorauth) and the role it names in the tenant it
// touches (authz.go); /healthz does not. Every error is a JSON
// ErrorBody with a stable code and the request id, never a bare text page.
//
// Hybrid Connections answer a relayed HTTP request with 504 after 60
// seconds, so no endpoint may hold a request for long: work that takes time
// is followed over a WebSocket (GET /v1/events shows the pattern; run logs
// will use it too), which the relay carries for as long as both ends live.
package opsapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/audit"
	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/secretstore"
	"github.com/botehq/platform/runtime/tfarchive"
)

// Authenticator checks a request's operator credential. operatorauth's
// Authenticator implements it; errors wrapping operatorauth.ErrForbidden
// become 403, all others 401.
type Authenticator interface {
	Authenticate(r *http.Request) (operatorauth.Principal, error)
}

// AgentStore lists agents: RunAgents (from the run store, what the ops server
// uses with runs) or StaticAgents (a fixed list).
type AgentStore interface {
	ListAgents(ctx context.Context, filter AgentFilter) ([]Agent, error)
}

// AgentFilter narrows ListAgents. Zero values match everything.
type AgentFilter struct {
	Tenant ids.TenantID
}

// Config configures the API handler.
type Config struct {
	// Version of the server binary, reported by /v1/status.
	Version string
	// DeployedAgentVersion is the agent version the stack deployed (the
	// agent image's version label); agents reporting another version are
	// listed as outdated. Empty: nothing is marked.
	DeployedAgentVersion string
	// StartedAt is reported by /v1/status; default: when New was called.
	StartedAt time.Time
	// Auth checks operator credentials on /v1/*. Required.
	Auth Authenticator
	// Agents is the agent store. Required.
	Agents AgentStore
	// RelayConnected reports whether the relay listener is connected; nil
	// means there is no relay listener.
	RelayConnected func() bool
	// EventInterval is the default interval between status events on
	// /v1/events. Default 5 s.
	EventInterval time.Duration
	// PingInterval is how often the events WebSocket is pinged, well under
	// the idle timeouts of the relay and of proxies. Default 30 s.
	PingInterval time.Duration
	// StreamRecheck is how often a WebSocket stream's credential is
	// checked again (revoked keys, changed roles). Default 15 s.
	StreamRecheck time.Duration
	// Runs enables the runs API (workspaces, runs, logs); nil answers
	// those routes with 503.
	Runs *runs.Manager
	// Artifacts stores bundles and reads logs; required with Runs.
	Artifacts Artifacts
	// Secrets keeps sensitive workspace variables (with the deployment
	// secrets); nil: they cannot be set.
	Secrets secretstore.Store
	// MaxBundleBytes is the largest bundle accepted, compressed (default
	// and maximum tfarchive.BundleLimits.MaxBytes).
	MaxBundleBytes int64
	// Keys enables API key management (/v1/keys, admins only); nil
	// answers those routes with 503.
	Keys KeyManager
	// Policies stores the tenants' policies (/v1/tenants/{t}/policies);
	// nil answers those routes with 503. The dispatcher checks plans
	// against them.
	Policies policystore.Store
	// Notifications stores the tenants' webhooks and their delivery log
	// (/v1/tenants/{t}/notifications); nil answers those routes with 503.
	Notifications notify.Store
	// WebhookAllowHTTP accepts http webhook URLs (local use and tests).
	WebhookAllowHTTP bool
	// Drift serves drift states and schedules (/v1/tenants/{t}/drift,
	// .../workspaces/{w}/drift); nil answers those routes with 503.
	Drift *drift.Scheduler
	// Dispatcher starts queued runs at once and wakes followers; without
	// it runs start on the dispatcher's tick and followers poll.
	Dispatcher Dispatcher
	// Audit records every mutating call and refused authorization, and
	// serves GET /v1/audit; nil logs the records instead and answers
	// GET /v1/audit with 503.
	Audit AuditLog
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	if c.Auth == nil {
		return errors.New("opsapi config: Auth is required")
	}
	if c.Agents == nil {
		return errors.New("opsapi config: Agents is required")
	}
	if c.Runs != nil && c.Artifacts == nil {
		return errors.New("opsapi config: Artifacts is required with Runs")
	}
	if c.MaxBundleBytes < 0 || c.MaxBundleBytes > tfarchive.BundleLimits.MaxBytes {
		return fmt.Errorf("opsapi config: MaxBundleBytes %d must be between 0 (default) and %d", c.MaxBundleBytes, tfarchive.BundleLimits.MaxBytes)
	}
	if c.EventInterval < 0 {
		return fmt.Errorf("opsapi config: EventInterval %s must not be negative", c.EventInterval)
	}
	if c.PingInterval < 0 {
		return fmt.Errorf("opsapi config: PingInterval %s must not be negative", c.PingInterval)
	}
	if c.StreamRecheck < 0 {
		return fmt.Errorf("opsapi config: StreamRecheck %s must not be negative", c.StreamRecheck)
	}
	return nil
}

// Server is the API. It is an http.Handler.
type Server struct {
	cfg     Config
	handler http.Handler
	routes  []route

	stopping chan struct{}
	stopOnce sync.Once

	unauthenticated audit.Sampler   // 401s recorded in the audit log
	refusals        refusalSamplers // 403s of each principal recorded
}

// Shutdown ends the long-lived streams (event WebSockets, which
// http.Server.Shutdown does not track once hijacked) with close code 1001,
// so that clients reconnect elsewhere. Call it before http.Server.Shutdown.
func (s *Server) Shutdown() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// route is one endpoint. The OpenAPI test walks this table.
type route struct {
	method, path string
	public       bool
	// role is the role needed in the path's {tenant}; admin marks
	// platform administration. Neither: any authenticated operator (the
	// handler shows only their tenants).
	role    operatorauth.Role
	admin   bool
	handler http.HandlerFunc
}

// New builds the API handler.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.StartedAt.IsZero() {
		cfg.StartedAt = cfg.Now()
	}
	if cfg.EventInterval == 0 {
		cfg.EventInterval = 5 * time.Second
	}
	if cfg.MaxBundleBytes == 0 {
		cfg.MaxBundleBytes = tfarchive.BundleLimits.MaxBytes
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.StreamRecheck == 0 {
		cfg.StreamRecheck = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, stopping: make(chan struct{}),
		unauthenticated: audit.Sampler{Rate: unauthenticatedRate, Burst: unauthenticatedBurst}}
	s.routes = []route{
		{method: http.MethodGet, path: "/healthz", public: true, handler: s.health},
		{method: http.MethodGet, path: "/v1/status", handler: s.status},
		{method: http.MethodGet, path: "/v1/agents", handler: s.listAgents},
		{method: http.MethodGet, path: "/v1/events", handler: s.events},
		{method: http.MethodGet, path: "/v1/openapi.json", handler: serveOpenAPI},
		{method: http.MethodGet, path: "/v1/whoami", handler: s.whoami},
		{method: http.MethodGet, path: "/v1/tenants", handler: s.needRunStore(s.listTenants)},
	}
	s.routes = append(s.routes, s.runRoutes()...)
	s.routes = append(s.routes, s.varRoutes()...)
	s.routes = append(s.routes, s.stateRoutes()...)
	s.routes = append(s.routes, s.keyRoutes()...)
	s.routes = append(s.routes, s.auditRoutes()...)
	s.routes = append(s.routes, s.policyRoutes()...)
	s.routes = append(s.routes, s.notificationRoutes()...)
	s.routes = append(s.routes, s.driftRoutes()...)
	mux := http.NewServeMux()
	methods := map[string][]string{}
	for _, rt := range s.routes {
		// A route that touches a tenant must say which role it needs
		// there: forgetting it would open the tenant to every operator.
		if strings.Contains(rt.path, "{tenant}") && !rt.role.Valid() && !rt.admin {
			return nil, fmt.Errorf("route %s %s touches a tenant but names no role", rt.method, rt.path)
		}
		h := http.Handler(rt.handler)
		if !rt.public {
			h = s.audited(s.authenticate(s.authorize(rt, h)))
		}
		mux.Handle(rt.method+" "+rt.path, h)
		methods[rt.path] = append(methods[rt.path], rt.method)
	}
	// The mux's own 404 and 405 pages are plain text; ours are JSON.
	for path, ms := range methods {
		allow := strings.Join(ms, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	s.handler = s.observe(mux)
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type ctxKey int

const (
	principalKey ctxKey = iota
	requestIDKey
	scopeKey
)

// PrincipalFrom returns the operator a /v1 request was authenticated as.
func PrincipalFrom(ctx context.Context) (operatorauth.Principal, bool) {
	p, ok := ctx.Value(principalKey).(operatorauth.Principal)
	return p, ok
}

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// observe gives each request an id, logs it, and turns panics into 500s.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id := hex.EncodeToString(b[:])
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(ctx)
		start := s.cfg.Now()
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.cfg.Logger.ErrorContext(ctx, "panic in API handler", "request_id", id, "panic", v, "stack", string(debug.Stack()))
				if rec.status == 0 {
					writeError(rec, r, http.StatusInternalServerError, CodeInternal, "internal error")
				}
			}
			attrs := []any{"request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status, "duration", s.cfg.Now().Sub(start)}
			if rec.principal != nil {
				attrs = append(attrs, "operator", rec.principal.String())
			}
			level := slog.LevelInfo
			if r.URL.Path == "/healthz" {
				level = slog.LevelDebug // probes would drown the log
			}
			s.cfg.Logger.Log(ctx, level, "request", attrs...)
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status and the authenticated operator for
// the access log. It passes Hijack and Flush through (via
// Unwrap and http.ResponseController) for WebSockets.
type statusRecorder struct {
	http.ResponseWriter
	status    int
	principal *operatorauth.Principal
	// detail is the audit record's detail: the message of the error
	// answered, or what a mutation made or changed (noteDetail).
	detail string
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// authenticate requires an operator credential.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.cfg.Auth.Authenticate(r)
		if err != nil {
			s.cfg.Logger.WarnContext(r.Context(), "operator authentication failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
			if errors.Is(err, operatorauth.ErrForbidden) {
				writeError(w, r, http.StatusForbidden, CodeForbidden, "the credential is valid but lacks the role this API requires")
				return
			}
			// Say what kind of problem it is, never which key exists.
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, r, http.StatusUnauthorized, CodeUnauthorized, "missing or invalid operator credential (API key or OAuth2 token)")
			return
		}
		ctx := context.WithValue(r.Context(), principalKey, p)
		if rec, ok := w.(*statusRecorder); ok {
			rec.principal = &p
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// whoami answers the request's principal and its grants, so that an
// operator can see what a credential may do.
func (s *Server) whoami(w http.ResponseWriter, r *http.Request) {
	p, _ := PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Health{Status: "ok"})
}

// currentStatus is the server's status as the principal in ctx sees it:
// the agent count covers only its tenants.
func (s *Server) currentStatus(ctx context.Context) (Status, error) {
	agents, err := s.visibleAgents(ctx, "")
	if err != nil {
		return Status{}, fmt.Errorf("cannot list agents: %w", err)
	}
	now := s.cfg.Now().UTC()
	st := Status{
		Version:       s.cfg.Version,
		StartedAt:     s.cfg.StartedAt.UTC(),
		UptimeSeconds: int64(now.Sub(s.cfg.StartedAt) / time.Second),
		AgentCount:    len(agents),
		Time:          now,
	}
	if s.cfg.RelayConnected != nil {
		st.RelayConnected = s.cfg.RelayConnected()
	}
	return st, nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.currentStatus(r.Context())
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// listAgents lists the agents of the operator's tenants; ?tenant= narrows
// to one, which needs the reader role there.
func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	var tenant ids.TenantID
	if v := r.URL.Query().Get("tenant"); v != "" {
		var err error
		if tenant, err = ids.ParseTenantID(v); err != nil {
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
			return
		}
		if p, _ := PrincipalFrom(r.Context()); !p.Allows(v, operatorauth.RoleReader) {
			s.forbidRole(w, r, p, tenant, operatorauth.RoleReader)
			return
		}
		// With a run store, an unknown tenant is 404, not "no agents".
		if s.cfg.Runs != nil {
			if _, err := s.cfg.Runs.GetTenant(r.Context(), tenant); errors.Is(err, runs.ErrNotFound) {
				writeError(w, r, http.StatusNotFound, CodeNotFound, tenantNotFound(tenant))
				return
			} else if err != nil {
				s.internalError(w, r, fmt.Errorf("cannot read tenant %s: %w", tenant, err))
				return
			}
		}
	}
	agents, err := s.visibleAgents(r.Context(), tenant)
	if err != nil {
		s.internalError(w, r, fmt.Errorf("cannot list agents: %w", err))
		return
	}
	sort.Slice(agents, func(i, j int) bool { return agents[i].ID < agents[j].ID })
	if agents == nil {
		agents = []Agent{}
	}
	if v := s.cfg.DeployedAgentVersion; v != "" {
		for i := range agents {
			agents[i].Outdated = agents[i].Version != "" && agents[i].Version != v
		}
	}
	writeJSON(w, http.StatusOK, AgentList{Agents: agents, DeployedVersion: s.cfg.DeployedAgentVersion})
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.ErrorContext(r.Context(), "API request failed", "request_id", requestID(r.Context()), "path", r.URL.Path, "err", err)
	writeError(w, r, http.StatusInternalServerError, CodeInternal, "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"error":{"code":"internal","message":"cannot encode response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	noteError(w, msg)
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg, RequestID: requestID(r.Context())}})
}
