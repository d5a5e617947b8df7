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

	"github.com/coder/websocket"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/operatorauth"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfrun"
)

// Artifacts stores run bundles, reads run logs and kept workspace states
// (*artifacts.Store).
type Artifacts interface {
	Put(ctx context.Context, key artifacts.RunKey, kind artifacts.Kind, r io.Reader, max int64) (*envelope.Claim, error)
	ReadLog(ctx context.Context, key artifacts.RunKey, offset int64, max int) ([]byte, int64, error)
	StateVersions(ctx context.Context, tenant, workspace string) ([]artifacts.StateVersion, error)
	OpenState(ctx context.Context, tenant, workspace, version string) ([]byte, error)
	// Open streams an artifact of tenant, checking its SHA-256 as it reads.
	Open(ctx context.Context, tenant string, c *envelope.Claim) (io.ReadCloser, error)
	RestoreState(ctx context.Context, tenant, workspace, version string) (artifacts.StateVersion, error)
}

// Dispatcher starts runs and wakes followers (*dispatch.Dispatcher).
type Dispatcher interface {
	// Kick asks for a dispatch in a workspace soon.
	Kick(tenant, workspace string)
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
			writeError(w, r, http.StatusServiceUnavailable, CodeUnavailable, "runs are not configured on this server (start relayserver with --storage-connection-string, or --table-url and --blob-url)")
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
		if tenant := r.PathValue("tenant"); tenant != "" {
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
		s.forbid(w, r, ReasonFourEyes, r.PathValue("tenant"), strings.TrimPrefix(err.Error(), runs.ErrFourEyes.Error()+": "))
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
	t, ws, id := r.PathValue("tenant"), r.PathValue("workspace"), r.PathValue("run")
	switch {
	case id != "":
		return fmt.Sprintf("tenant %s has no run %s", t, id)
	case ws != "":
		return fmt.Sprintf("tenant %s has no workspace %s", t, ws)
	}
	return tenantNotFound(t)
}

func tenantNotFound(t string) string {
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

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request) {
	tenant := r.PathValue("tenant")
	var req CreateWorkspaceRequest
	if !decodeBody(w, r, &req) {
		return
	}
	ws := runs.Workspace{Tenant: tenant, Name: req.Name, Description: req.Description, AgentLabels: req.Labels, TerraformVersion: req.TerraformVersion,
		Options: runs.Options{AutoApply: req.AutoApply, FourEyes: req.FourEyes}}
	if err := applyTimeouts(&ws.Options, req.Timeouts); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	if !s.mayChangeApproval(w, r, runs.Options{}, ws.Options) {
		return
	}
	if err := ws.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	// A tenant exists once it has a workspace (or an agent heartbeated).
	if _, err := s.cfg.Runs.CreateTenant(r.Context(), runs.Tenant{ID: tenant}); err != nil && !errors.Is(err, runs.ErrExists) {
		s.runsError(w, r, err)
		return
	}
	created, err := s.cfg.Runs.CreateWorkspace(r.Context(), ws)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "workspace created", "tenant", tenant, "workspace", ws.Name, "by", operator(r))
	noteDetail(w, "%s", describeWorkspace(created))
	writeJSON(w, http.StatusCreated, apiWorkspace(created))
}

// applyTimeouts parses the timeouts that are set into o.
func applyTimeouts(o *runs.Options, t Timeouts) error {
	for _, f := range []struct {
		field, v string
		to       *time.Duration
	}{{"plan", t.Plan, &o.PlanTimeout}, {"apply", t.Apply, &o.ApplyTimeout}, {"approval", t.Approval, &o.ApprovalTimeout}} {
		if f.v == "" {
			continue
		}
		d, err := parseTimeout(f.field, f.v)
		if err != nil {
			return err
		}
		*f.to = d
	}
	return nil
}

// mayChangeApproval refuses (403) a change of a workspace's approval
// options that the operator's role does not cover: turning auto-apply on
// lets every plan apply unapproved, so it needs the approver role; turning
// four-eyes off lets an approver apply their own plans, so it needs an
// admin.
func (s *Server) mayChangeApproval(w http.ResponseWriter, r *http.Request, from, to runs.Options) bool {
	p, _ := PrincipalFrom(r.Context())
	tenant := r.PathValue("tenant")
	switch {
	case to.AutoApply && !from.AutoApply && !p.Allows(tenant, operatorauth.RoleApprover):
		s.forbidRole(w, r, p, tenant, operatorauth.RoleApprover)
		return false
	case from.FourEyes && !to.FourEyes && !p.IsAdmin():
		s.forbid(w, r, ReasonAdminRequired, tenant, fmt.Sprintf("%s may not turn four-eyes approval off; a platform administrator may", p))
		return false
	}
	return true
}

// updateWorkspace changes the fields present in the body; absent ones
// keep their values.
func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request) {
	tenant, name := r.PathValue("tenant"), r.PathValue("workspace")
	var req UpdateWorkspaceRequest
	if !decodeBody(w, r, &req) {
		return
	}
	var timeouts runs.Options
	if err := applyTimeouts(&timeouts, req.Timeouts); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	cur, err := s.cfg.Runs.GetWorkspace(r.Context(), tenant, name)
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	next := applyUpdate(req, cur, timeouts)
	if !s.mayChangeApproval(w, r, cur.Options, next.Options) {
		return
	}
	if err := next.Validate(); err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	// The check above saw cur; a concurrent change of the approval
	// options makes this one fail rather than slip past it.
	var raced bool
	updated, err := s.cfg.Runs.UpdateWorkspace(r.Context(), tenant, name, func(ws *runs.Workspace) {
		if ws.Options.AutoApply != cur.Options.AutoApply || ws.Options.FourEyes != cur.Options.FourEyes {
			raced = true
			return
		}
		*ws = applyUpdate(req, *ws, timeouts)
	})
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if raced {
		writeError(w, r, http.StatusConflict, CodeConflict, "the workspace's approval options changed meanwhile; read it and try again")
		return
	}
	s.cfg.Logger.InfoContext(r.Context(), "workspace updated", "tenant", tenant, "workspace", name, "by", operator(r))
	noteDetail(w, "%s", describeChange(cur, updated))
	writeJSON(w, http.StatusOK, apiWorkspace(updated))
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	wss, err := s.cfg.Runs.ListWorkspaces(r.Context(), r.PathValue("tenant"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	out := WorkspaceList{Workspaces: []Workspace{}}
	for _, ws := range wss {
		out.Workspaces = append(out.Workspaces, apiWorkspace(ws))
	}
	writeJSON(w, http.StatusOK, out)
}

// createRun stores the uploaded bundle and queues a run. The body is the
// tar.gz bundle (tfarchive.Pack), streamed to Blob storage with the
// bundle size limit.
func (s *Server) createRun(w http.ResponseWriter, r *http.Request) {
	tenant, workspace := r.PathValue("tenant"), r.PathValue("workspace")
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
	plan := tfrun.PlanOptions{Targets: q["target"], Replace: q["replace"], RefreshOnly: refreshOnly}
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
	tenant, q := r.PathValue("tenant"), r.URL.Query()
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
	workspace := q.Get("workspace")
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
func (s *Server) loadRun(ctx context.Context, tenant, id string) (Run, error) {
	run, err := s.cfg.Runs.GetRun(ctx, tenant, id)
	if err != nil {
		return Run{}, err
	}
	waiting, err := s.cfg.Runs.Waiting(ctx, run)
	if err != nil {
		s.cfg.Logger.WarnContext(ctx, "cannot tell why a run waits", "run", id, "err", err)
	}
	return apiRun(run, waiting), nil
}

func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.loadRun(r.Context(), r.PathValue("tenant"), r.PathValue("run"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) approveRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.cfg.Runs.ApproveAs(r.Context(), r.PathValue("tenant"), r.PathValue("run"), operator(r), subject(r))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if s.cfg.Dispatcher != nil {
		s.cfg.Dispatcher.Kick(run.Tenant, run.Workspace)
	}
	writeJSON(w, http.StatusOK, apiRun(run, ""))
}

func (s *Server) cancelRun(w http.ResponseWriter, r *http.Request) {
	force, _ := strconv.ParseBool(r.URL.Query().Get("force"))
	run, err := s.cfg.Runs.Cancel(r.Context(), runs.CancelRequest{Tenant: r.PathValue("tenant"), Run: r.PathValue("run"), By: operator(r),
		Reason: r.URL.Query().Get("reason"), Force: force})
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, apiRun(run, ""))
}

func queryInt(r *http.Request, name string, def, lo, hi int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s %q must be an integer from %d to %d", name, v, lo, hi)
	}
	return n, nil
}

func (s *Server) runLogs(w http.ResponseWriter, r *http.Request) {
	offset, err := queryInt(r, "offset", 0, 0, 1<<50)
	if err == nil {
		var max int64
		max, err = queryInt(r, "max", DefaultLogChunk, 1, MaxLogChunk)
		if err == nil {
			s.serveLogs(w, r, offset, int(max))
			return
		}
	}
	writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
}

func (s *Server) serveLogs(w http.ResponseWriter, r *http.Request, offset int64, max int) {
	run, err := s.cfg.Runs.GetRun(r.Context(), r.PathValue("tenant"), r.PathValue("run"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	data, next, err := s.cfg.Artifacts.ReadLog(r.Context(), runKey(run), offset, max)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, LogChunk{Text: string(data), Offset: offset, NextOffset: next, Done: run.State.Settled() && len(data) < max})
}

// runPlan serves the run's plan as JSON: Terraform's plan format (format
// version, resource_changes, resource_drift, output_changes) as the agent
// kept it, sensitive values masked (planrender.Keep).
func (s *Server) runPlan(w http.ResponseWriter, r *http.Request) {
	run, err := s.cfg.Runs.GetRun(r.Context(), r.PathValue("tenant"), r.PathValue("run"))
	if err != nil {
		s.runsError(w, r, err)
		return
	}
	if run.PlanJSON == nil {
		msg := fmt.Sprintf("run %s has no plan to show: it is %s", run.ID, run.State)
		if run.PlanResult != nil {
			msg = fmt.Sprintf("run %s has no plan to show (its agent did not report one; the changes are in its log)", run.ID)
		}
		writeError(w, r, http.StatusNotFound, CodeNotFound, msg)
		return
	}
	rc, err := s.cfg.Artifacts.Open(r.Context(), run.Tenant, run.PlanJSON)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	defer rc.Close()
	data, err := io.ReadAll(rc) // bounded: the agent's plan is at most runproto.MaxPlanBytes
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(data)
}

func runKey(r runs.Run) artifacts.RunKey {
	return artifacts.RunKey{Tenant: r.Tenant, Workspace: r.Workspace, Run: r.ID}
}

// followRun streams a run's log lines and state changes over a WebSocket
// until the run ends (then an end frame and a normal close), the client
// goes away, or the server shuts down (1001). It works through the relay:
// the upgrade answers at once and the relay carries the stream.
func (s *Server) followRun(w http.ResponseWriter, r *http.Request) {
	offset, err := queryInt(r, "offset", 0, 0, 1<<50)
	if err != nil {
		writeError(w, r, http.StatusBadRequest, CodeBadRequest, err.Error())
		return
	}
	tenant, id := r.PathValue("tenant"), r.PathValue("run")
	if _, err := s.cfg.Runs.GetRun(r.Context(), tenant, id); err != nil {
		s.runsError(w, r, err)
		return
	}
	s.serveStream(w, r, "follow", func(ctx context.Context, c *websocket.Conn) error {
		return s.streamRun(ctx, c, tenant, id, offset)
	})
}

func (s *Server) streamRun(ctx context.Context, c *websocket.Conn, tenant, id string, offset int64) error {
	var wake <-chan struct{}
	if s.cfg.Dispatcher != nil {
		var stop func()
		wake, stop = s.cfg.Dispatcher.Subscribe(id)
		defer stop()
	}
	poll := time.NewTicker(FollowPoll)
	defer poll.Stop()
	ping := time.NewTicker(s.cfg.PingInterval)
	defer ping.Stop()
	var seq int64
	send := func(f FollowFrame) error {
		seq++
		f.Seq, f.Time = seq, s.cfg.Now().UTC()
		return writeMessage(ctx, c, f)
	}
	var last string
	for {
		// State first, then the log: lines written before the run ended
		// are in the log by the time its end is visible.
		run, err := s.loadRun(ctx, tenant, id)
		if err != nil {
			return err
		}
		if key := run.State + "|" + run.UpdatedAt.String() + "|" + run.Waiting + "|" + strconv.FormatBool(run.CancelRequested); key != last {
			last = key
			if err := send(FollowFrame{Type: FrameRun, Run: &run}); err != nil {
				return err
			}
		}
		for {
			data, next, err := s.cfg.Artifacts.ReadLog(ctx, artifacts.RunKey{Tenant: tenant, Workspace: run.Workspace, Run: id}, offset, DefaultLogChunk)
			if err != nil {
				return err
			}
			if len(data) == 0 {
				break
			}
			offset = next
			if err := send(FollowFrame{Type: FrameLog, Lines: strings.Split(strings.TrimSuffix(string(data), "\n"), "\n"), NextOffset: next}); err != nil {
				return err
			}
		}
		if run.Settled() {
			return send(FollowFrame{Type: FrameEnd, Run: &run})
		}
		if err := waitTick(ctx, c, wake, poll.C, ping.C); err != nil {
			return err
		}
	}
}
