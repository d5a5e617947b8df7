package opsapi

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfarchive"
)

// Artifacts stores run bundles, reads run logs and kept workspace states
// (*artifacts.Store).
type Artifacts interface {
	Put(ctx context.Context, key artifacts.RunKey, kind artifacts.Kind, r io.Reader, max int64) (*runs.Artifact, error)
	ReadLog(ctx context.Context, key artifacts.RunKey, offset int64, max int) ([]byte, int64, error)
	StateVersions(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) ([]artifacts.StateVersion, error)
	OpenState(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, version string) ([]byte, error)
	// Open streams an artifact of tenant, checking its SHA-256 as it reads.
	Open(ctx context.Context, tenant ids.TenantID, c *runs.Artifact) (io.ReadCloser, error)
	RestoreState(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, version string) (artifacts.StateVersion, error)
}

// Dispatcher starts runs and wakes followers (*dispatch.Dispatcher).
type Dispatcher interface {
	// Kick asks for a dispatch in a workspace soon.
	Kick(tenant ids.TenantID, workspace ids.WorkspaceID)
	// Subscribe fires when a run changes or gets log lines here.
	Subscribe(runID string) (<-chan struct{}, func())
}

// Limits of the runs API.
const (
	// DefaultLogChunk and MaxLogChunk bound one GET .../logs answer.
	DefaultLogChunk = 256 << 10
	MaxLogChunk     = 1 << 20
	// FollowPoll is how often a follower re-reads state and log when
	// nothing in this process woke it (changes made by other replicas).
	FollowPoll = 500 * time.Millisecond
)

func (s *Server) runRoutes() []route {
	return []route{
		{method: http.MethodPost, path: "/v1/tenants/{tenant}/workspaces", role: operatorauth.RoleOperator, handler: s.needRunStore(s.createWorkspace)},
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/workspaces", role: operatorauth.RoleReader, handler: s.needRuns(s.listWorkspaces)},
		{method: http.MethodPatch, path: "/v1/tenants/{tenant}/workspaces/{workspace}", role: operatorauth.RoleOperator, handler: s.needRuns(s.updateWorkspace)},
		{method: http.MethodPost, path: "/v1/tenants/{tenant}/workspaces/{workspace}/runs", role: operatorauth.RoleOperator, handler: s.needRuns(s.createRun)},
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/runs", role: operatorauth.RoleReader, handler: s.needRuns(s.listRuns)},
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/runs/{run}", role: operatorauth.RoleReader, handler: s.needRuns(s.getRun)},
		{method: http.MethodPost, path: "/v1/tenants/{tenant}/runs/{run}/approve", role: operatorauth.RoleApprover, handler: s.needRuns(s.approveRun)},
		{method: http.MethodPost, path: "/v1/tenants/{tenant}/runs/{run}/cancel", role: operatorauth.RoleOperator, handler: s.needRuns(s.cancelRun)},
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/runs/{run}/plan", role: operatorauth.RoleReader, handler: s.needRuns(s.runPlan)},
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/runs/{run}/logs", role: operatorauth.RoleReader, handler: s.needRuns(s.runLogs)},
		{method: http.MethodGet, path: "/v1/tenants/{tenant}/runs/{run}/follow", role: operatorauth.RoleReader, handler: s.needRuns(s.followRun)},
	}
}

// needRunStore answers 503 when the server has no run store.
func (s *Server) needRunStore(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Runs == nil {
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "runs are not configured on this server (start opsserver with --storage-connection-string, or --table-url and --blob-url)")
			return
		}
		h(w, r)
	}
}

// needRuns is needRunStore for a route of an existing tenant: an unknown
// tenant is 404, never an empty list that looks like a tenant with
// nothing in it. (Creating a workspace creates its tenant.)
func (s *Server) needRuns(h http.HandlerFunc) http.HandlerFunc {
	return s.needRunStore(func(w http.ResponseWriter, r *http.Request) {
		if tenant := pathTenant(r); tenant != "" {
			_, err := s.cfg.Runs.GetTenant(r.Context(), tenant)
			if errors.Is(err, runs.ErrNotFound) {
				writeError(w, r, http.StatusNotFound, CodeNotFound, tenantNotFound(tenant))
				return
			}
			if err != nil {
				s.runsError(w, r, err)
				return
			}
		}
		h(w, r)
	})
}

func operator(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p.String()
	}
	return "unknown"
}

// subject is the stable id of the request's principal ("" if none).
func subject(r *http.Request) string {
	if p, ok := PrincipalFrom(r.Context()); ok {
		return p.Subject()
	}
	return ""
}

// runsError maps a runs/artifacts error to a response.
func (s *Server) runsError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, runs.ErrNotFound):
		writeError(w, r, http.StatusNotFound, CodeNotFound, notFoundMessage(r))
	case errors.Is(err, runs.ErrInvalid):
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, strings.TrimPrefix(err.Error(), runs.ErrInvalid.Error()+": "))
	case errors.Is(err, runs.ErrFourEyes):
		s.forbid(w, r, ReasonFourEyes, pathTenant(r), strings.TrimPrefix(err.Error(), runs.ErrFourEyes.Error()+": "))
	case errors.Is(err, runs.ErrPolicyFailed):
		writeError(w, r, http.StatusConflict, CodePolicyFailed, strings.TrimPrefix(err.Error(), runs.ErrPolicyFailed.Error()+": "))
	case errors.Is(err, runs.ErrExists):
		writeError(w, r, http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, runs.ErrIllegalTransition):
		writeError(w, r, http.StatusConflict, CodeConflict, err.Error())
	case errors.Is(err, tfarchive.ErrTooLarge):
		var le *tfarchive.LimitError
		msg := err.Error()
		if errors.As(err, &le) {
			msg = "the configuration bundle is too large: " + le.Error()
		}
		writeError(w, r, http.StatusRequestEntityTooLarge, CodeTooLarge, msg)
	default:
		s.internalError(w, r, err)
	}
}

func notFoundMessage(r *http.Request) string {
	t, ws, id := pathTenant(r), pathWorkspace(r), r.PathValue("run")
	switch {
	case id != "":
		return fmt.Sprintf("tenant %s has no run %s", t, id)
	case ws != "":
		return fmt.Sprintf("tenant %s has no workspace %s", t, ws)
	}
	return tenantNotFound(t)
}

func tenantNotFound(t ids.TenantID) string {
	return fmt.Sprintf("no tenant %s on this server (a tenant exists once an agent of it is registered or it has a workspace)", t)
}

// decodeBody reads a small JSON body strictly.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, "cannot decode the request body: "+err.Error())
		return false
	}
	return true
}

func parseTimeout(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("timeouts.%s: %q is not a duration such as 1h30m", field, v)
	}
	return d, nil
}

// createRun stores the uploaded bundle and queues a run. The body is the
// tar.gz bundle (tfarchive.Pack), streamed to Blob storage with the
// bundle size limit.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	tenant, workspace := pathTenant(r), pathWorkspace(r)
	var op runs.Operation
	switch q := r.URL.Query().Get("op"); q {
	case "", "plan", "apply":
		op = runs.OpApply
	case "destroy":
		op = runs.OpDestroy
	default:
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("op %q must be plan or destroy", q))
		return
	}
	q := r.URL.Query()
	refreshOnly, err := strconv.ParseBool(cmp.Or(q.Get("refresh_only"), "false"))
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("refresh_only %q must be true or false", q.Get("refresh_only")))
		return
	}
	plan := runspec.PlanOptions{Targets: q["target"], Replace: q["replace"], RefreshOnly: refreshOnly}
	if err := plan.Validate(op == runs.OpDestroy); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/gzip" {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, "the body must be the configuration bundle, Content-Type application/gzip (opsbot plan packs it)")
		return
	}
	limit := s.cfg.MaxBundleBytes
	if r.ContentLength > limit {
		s.runsError(w, r, &tfarchive.LimitError{What: "compressed size", Limit: limit, Value: r.ContentLength})
		return
	}
	if _, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, workspace); err != nil {
		s.runsError(w, r, err)
		return
	}
	id := runs.NewRunID(s.cfg.Now())
	// The limit holds while reading too: behind Azure Relay a large request
	// has no Content-Length (the relay strips it), so the check above
	// cannot see it.
	body := http.MaxBytesReader(w, r.Body, limit)
	ref, err := s.cfg.Artifacts.Put(r.Context(), artifacts.RunKey{Tenant: tenant, Workspace: workspace, Run: id}, artifacts.Bundle, body, limit)
	if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
		err = &tfarchive.LimitError{What: "compressed size", Limit: limit, Value: limit + 1}
	}
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	queued, err := s.cfg.Runs.Enqueue(r.Context(), runs.EnqueueRequest{Tenant: tenant, Workspace: workspace, ID: id, Operation: op,
		Bundle: ref, Message: q.Get("message"), CreatedBy: operator(r), CreatedByID: subject(r), PlanOptions: plan})
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if s.cfg.Dispatcher != nil {
		s.cfg.Dispatcher.Kick(tenant, workspace)
	}
	writeJSON(w, http.StatusAccepted, apiRun(queued.Run, queued.Waiting))
}

// listRuns lists the tenant's runs newest first: ?workspace= one
// workspace's (which must exist), ?state= (repeated or comma-separated)
// only runs in those states, ?limit= at most that many (Truncated says
// there were more).
func (s *Server) listRuns(w http.ResponseWriter, r *http.Request) {
	tenant, q := pathTenant(r), r.URL.Query()
	limit, err := queryInt(r, "limit", DefaultRunListLimit, 1, MaxRunListLimit)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	var states []runs.State
	for _, v := range q["state"] {
		for _, st := range strings.Split(v, ",") {
			if st := runs.State(strings.TrimSpace(st)); st.Valid() {
				states = append(states, st)
				continue
			}
			writeError(w, r, http.StatusBadRequest, CodeBadRequest, fmt.Sprintf("state %q is not one of %v", st, runs.States()))
			return
		}
	}
	workspace, ok := optionalWorkspace(w, r, q.Get("workspace"))
	if !ok {
		return
	}
	if workspace != "" {
		if _, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, workspace); err != nil {
			if errors.Is(err, runs.ErrNotFound) {
				writeError(w, r, http.StatusNotFound, CodeNotFound, fmt.Sprintf("tenant %s has no workspace %s", tenant, workspace))
				return
			}
			s.runsError(w, r, err)
			return
		}
	}
	rs, err := s.cfg.Runs.ListRuns(r.Context(), tenant, workspace, states...)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	out := RunList{Runs: []Run{}}
	for i := len(rs) - 1; i >= 0 && len(out.Runs) < int(limit); i-- {
		out.Runs = append(out.Runs, apiRun(rs[i], ""))
	}
	out.Truncated = len(rs) > len(out.Runs)
	writeJSON(w, http.StatusOK, out)
}

// loadRun returns the run with why it waits.
func (s *Server) loadRun(ctx context.Context, tenant ids.TenantID, id string) (Run, error) {
	run, err := s.cfg.Runs.GetRun(ctx, tenant, id)
	if err != nil {
		return Run{}, err
	}
	return s.withWaiting(ctx, run), nil
}

// withWaiting is the run for the API with why it waits.
func (s *Server) withWaiting(ctx context.Context, run runs.Run) Run {
	waiting, err := s.cfg.Runs.Waiting(ctx, run)
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "cannot tell why a run waits", "run", run.ID, "err", err)
	}
	return apiRun(run, waiting)
}

// getRun answers the run, with whether its policies changed since its
// plan was checked (which followers polling loadRun do not ask).
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	stored, err := s.cfg.Runs.GetRun(ctx, pathTenant(r), r.PathValue("run"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	run := s.withWaiting(ctx, stored)
	if run.PolicyChanged, err = s.policyChanges(ctx, stored); err != nil {
		s.cfg.Logger.WarnContext(ctx, "cannot tell whether a run's policies changed", "run", stored.ID, "err", err)
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) approveRun(w http.ResponseWriter, r *http.Request) {
	override, _ := strconv.ParseBool(r.URL.Query().Get("override_policy"))
	if err := s.policiesUnchanged(r.Context(), pathTenant(r), r.PathValue("run")); err != nil {
		s.runsError(w, r, err)
		return
	}
	run, err := s.cfg.Runs.ApproveRun(r.Context(), runs.ApproveRequest{Tenant: pathTenant(r), Run: r.PathValue("run"),
		By: operator(r), ByID: subject(r), OverridePolicy: override})
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if s.cfg.Dispatcher != nil {
		s.cfg.Dispatcher.Kick(run.Tenant, run.Workspace)
	}
	if c := run.Policy; c != nil && c.OverriddenBy != "" {
		noteDetail(w, "approved overriding failed policies: %s", policyNames(c.Failed(runs.MandatoryOverride)))
	}
	writeJSON(w, http.StatusOK, apiRun(run, ""))
}

func policyNames(rs []runs.PolicyResult) string {
	out := ""
	for i, r := range rs {
		if i > 0 {
			out += ", "
		}
		out += r.Policy + " v" + strconv.Itoa(r.Version)
	}
	return out
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	run, err := s.cfg.Runs.Cancel(r.Context(), runs.CancelRequest{Tenant: pathTenant(r), Run: r.PathValue("run"), By: operator(r),
		Reason: r.URL.Query().Get("reason"), Force: force})
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiRun(run, ""))
}
