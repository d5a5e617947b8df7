package opsclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/botehq/platform/runtime/opsapitypes"
)

// callJSON is call with in, unless it is nil, sent as the JSON body.
func (c *Client) callJSON(ctx context.Context, method, path string, in any, want int, out any) error {
	if in == nil {
		return c.call(ctx, c.http, method, path, nil, "", nil, want, out)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("cannot encode the request: %w", err)
	}
	return c.call(ctx, c.http, method, path, nil, "application/json", bytes.NewReader(body), want, out)
}

// call sends a request and decodes a JSON answer with status want into out.
func (c *Client) call(ctx context.Context, hc *http.Client, method, path string, q url.Values, contentType string, body io.Reader, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path, q), body)
	if err != nil {
		return err
	}
	if req.Header, err = c.header(ctx); err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return unwrapURLError(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("cannot read response: %w", err)
	}
	if resp.StatusCode != want {
		return apiError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("cannot decode response of %s: %w", path, err)
	}
	return nil
}

func tenantPath(tenant string, parts ...string) string {
	p := "/v1/tenants/" + url.PathEscape(tenant)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// IsNotFound reports whether err is the API's 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == http.StatusNotFound
}

// CreateWorkspace creates a workspace of tenant (POST /v1/tenants/{tenant}/workspaces).
func (c *Client) CreateWorkspace(ctx context.Context, tenant string, req opsapitypes.CreateWorkspaceRequest) (*opsapitypes.Workspace, error) {
	var ws opsapitypes.Workspace
	if err := c.callJSON(ctx, http.MethodPost, tenantPath(tenant, "workspaces"), req, http.StatusCreated, &ws); err != nil {
		return nil, fmt.Errorf("cannot create workspace %s/%s: %w", tenant, req.Name, err)
	}
	return &ws, nil
}

// UpdateWorkspace changes the fields set in req (PATCH
// /v1/tenants/{tenant}/workspaces/{workspace}).
func (c *Client) UpdateWorkspace(ctx context.Context, tenant, name string, req opsapitypes.UpdateWorkspaceRequest) (*opsapitypes.Workspace, error) {
	var ws opsapitypes.Workspace
	if err := c.callJSON(ctx, http.MethodPatch, tenantPath(tenant, "workspaces", name), req, http.StatusOK, &ws); err != nil {
		return nil, fmt.Errorf("cannot update workspace %s/%s: %w", tenant, name, err)
	}
	return &ws, nil
}

// Workspaces lists tenant's workspaces.
func (c *Client) Workspaces(ctx context.Context, tenant string) ([]opsapitypes.Workspace, error) {
	var list opsapitypes.WorkspaceList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "workspaces"), nil, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list workspaces of %s: %w", tenant, err)
	}
	return list.Workspaces, nil
}

// RunOp is what CreateRun asks for.
type RunOp string

// Run operations.
const (
	OpPlan    RunOp = "plan"    // plan, then apply once approved
	OpDestroy RunOp = "destroy" // plan a destroy, then apply it once approved
)

// CreateRun uploads a configuration bundle (tfarchive.Pack output, read
// from bundle) and queues a run; the answer's Waiting says why it has not
// started. An oversize bundle is an *APIError with StatusCode 413 whose
// message names the limit. The upload may take longer than a request's
// Timeout: it is bounded by ctx and UploadTimeout.
func (c *Client) CreateRun(ctx context.Context, tenant, workspace string, op RunOp, message string, bundle io.Reader, opts ...RunOption) (*opsapitypes.Run, error) {
	q := url.Values{"op": {string(op)}}
	if message != "" {
		q.Set("message", message)
	}
	for _, o := range opts {
		o(q)
	}
	var run opsapitypes.Run
	if err := c.call(ctx, c.upload, http.MethodPost, tenantPath(tenant, "workspaces", workspace, "runs"), q, "application/gzip", bundle, http.StatusAccepted, &run); err != nil {
		return nil, fmt.Errorf("cannot start a run in %s/%s: %w", tenant, workspace, err)
	}
	return &run, nil
}

// RunOption sets an option of a new run.
type RunOption func(url.Values)

// WithPlanOptions gives the run's plan -target, -replace and
// -refresh-only.
func WithPlanOptions(o opsapitypes.PlanOptions) RunOption {
	return func(q url.Values) {
		for _, a := range o.Targets {
			q.Add("target", a)
		}
		for _, a := range o.Replace {
			q.Add("replace", a)
		}
		if o.RefreshOnly {
			q.Set("refresh_only", "true")
		}
	}
}

// RunQuery selects runs for Runs. Empty fields match everything; Limit 0
// is the server's default (opsapitypes.DefaultRunListLimit).
type RunQuery struct {
	Workspace string
	States    []string
	Limit     int
}

// Runs lists a tenant's runs, newest first.
func (c *Client) Runs(ctx context.Context, tenant string, rq RunQuery) (*opsapitypes.RunList, error) {
	q := url.Values{}
	if rq.Workspace != "" {
		q.Set("workspace", rq.Workspace)
	}
	if len(rq.States) > 0 {
		q.Set("state", strings.Join(rq.States, ","))
	}
	if rq.Limit > 0 {
		q.Set("limit", strconv.Itoa(rq.Limit))
	}
	var list opsapitypes.RunList
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "runs"), q, "", nil, http.StatusOK, &list); err != nil {
		return nil, fmt.Errorf("cannot list runs of %s: %w", tenant, err)
	}
	return &list, nil
}

// Run returns one run with its history and results.
func (c *Client) Run(ctx context.Context, tenant, runID string) (*opsapitypes.Run, error) {
	var run opsapitypes.Run
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "runs", runID), nil, "", nil, http.StatusOK, &run); err != nil {
		return nil, fmt.Errorf("cannot get run %s: %w", runID, err)
	}
	return &run, nil
}

// Approve approves a planned run for apply.
func (c *Client) Approve(ctx context.Context, tenant, runID string) (*opsapitypes.Run, error) {
	var run opsapitypes.Run
	if err := c.call(ctx, c.http, http.MethodPost, tenantPath(tenant, "runs", runID, "approve"), nil, "", nil, http.StatusOK, &run); err != nil {
		return nil, fmt.Errorf("cannot approve run %s: %w", runID, err)
	}
	return &run, nil
}

// Cancel cancels a run; force ends an executing run without waiting for
// its agent.
func (c *Client) Cancel(ctx context.Context, tenant, runID, reason string, force bool) (*opsapitypes.Run, error) {
	q := url.Values{}
	if reason != "" {
		q.Set("reason", reason)
	}
	if force {
		q.Set("force", "true")
	}
	var run opsapitypes.Run
	if err := c.call(ctx, c.http, http.MethodPost, tenantPath(tenant, "runs", runID, "cancel"), q, "", nil, http.StatusOK, &run); err != nil {
		return nil, fmt.Errorf("cannot cancel run %s: %w", runID, err)
	}
	return &run, nil
}

// Logs reads a chunk of a run's log from offset (whole lines); continue
// from the chunk's NextOffset until Done.
func (c *Client) Logs(ctx context.Context, tenant, runID string, offset int64) (*opsapitypes.LogChunk, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	var chunk opsapitypes.LogChunk
	if err := c.call(ctx, c.http, http.MethodGet, tenantPath(tenant, "runs", runID, "logs"), q, "", nil, http.StatusOK, &chunk); err != nil {
		return nil, fmt.Errorf("cannot read logs of run %s: %w", runID, err)
	}
	return &chunk, nil
}
