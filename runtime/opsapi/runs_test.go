package opsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/runtime/artifacts"
	"github.com/botehq/platform/runtime/drift"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/notify"
	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/registry"
	"github.com/botehq/platform/runtime/runs"
	"github.com/botehq/platform/runtime/runstore"
	"github.com/botehq/platform/runtime/tfarchive"
	"github.com/botehq/platform/runtime/tfresult"
)

// fakeArtifacts keeps bundles and logs in memory; limit (when set) stands
// in for the real 64 MiB bundle limit.
type fakeArtifacts struct {
	mu      sync.Mutex
	limit   int64
	bundles map[string][]byte
	logs    map[string][]byte
	plans   map[string][]byte // blob → plan JSON
}

func (f *fakeArtifacts) Put(_ context.Context, key artifacts.RunKey, kind artifacts.Kind, r io.Reader, max int64) (*runs.Artifact, error) {
	if f.limit > 0 {
		max = f.limit
	}
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &tfarchive.LimitError{What: "compressed size", Limit: max, Value: int64(len(data))}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	name := string(key.Tenant) + "/" + string(key.Workspace) + "/" + key.Run + "/bundle-1.tar.gz"
	f.bundles[name] = data
	return &runs.Artifact{Container: "boteruns", Blob: name, Size: int64(len(data)), SHA256: strings.Repeat("a", 64)}, nil
}

func (f *fakeArtifacts) ReadLog(_ context.Context, key artifacts.RunKey, offset int64, max int) ([]byte, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	log := f.logs[key.Run]
	if offset >= int64(len(log)) {
		return nil, offset, nil
	}
	data := log[offset:min(int64(len(log)), offset+int64(max))]
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	return data, offset + int64(len(data)), nil
}

func (f *fakeArtifacts) appendLog(run string, lines ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.logs[run] = append(f.logs[run], artifacts.Lines(lines)...)
}

// fakeDispatcher records kicks and lets tests wake followers.
type fakeDispatcher struct {
	mu    sync.Mutex
	kicks []string
	subs  map[string][]chan struct{}
}

func (f *fakeDispatcher) Kick(tenant ids.TenantID, workspace ids.WorkspaceID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kicks = append(f.kicks, string(tenant)+"/"+string(workspace))
}

func (f *fakeDispatcher) Subscribe(runID string) (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{}, 1)
	f.subs[runID] = append(f.subs[runID], ch)
	return ch, func() {}
}

func (f *fakeDispatcher) wake(runID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs[runID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// runsFixture is a runs API over the memory store: tenant contoso with
// workspace prod, a planned run holding it and a cancelled one; agent a1
// of contoso online.
type runsFixture struct {
	m         *runs.Manager
	store     *runstore.Memory
	arts      *fakeArtifacts
	disp      *fakeDispatcher
	srv       *httptest.Server
	s         *Server
	planned   string
	cancelled string
	policies  *policystore.Memory
	notify    *notify.Memory
	drift     *drift.Memory
}

var runsNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func newRunsFixture(t *testing.T) *runsFixture {
	t.Helper()
	ctx := context.Background()
	f := &runsFixture{store: runstore.NewMemory(), arts: &fakeArtifacts{bundles: map[string][]byte{}, logs: map[string][]byte{}},
		disp: &fakeDispatcher{subs: map[string][]chan struct{}{}}, policies: policystore.NewMemory(), notify: notify.NewMemory(), drift: drift.NewMemory()}
	var err error
	f.m, err = runs.New(runs.Config{Store: f.store, Roster: runs.Unrestricted, Now: func() time.Time { return runsNow }, Logger: slog.New(slog.DiscardHandler)})
	require.NoError(t, err)
	_, err = f.m.CreateTenant(ctx, runs.Tenant{ID: "contoso"})
	require.NoError(t, err)
	_, err = f.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "prod", AgentLabels: map[string]string{"env": "prod"}})
	require.NoError(t, err)
	_, err = f.m.Heartbeat(ctx, runs.Heartbeat{Tenant: "contoso", Agent: "a1", Capacity: 2, Labels: map[string]string{"env": "prod"}, Version: "0.5.0"})
	require.NoError(t, err)
	bundle := func(id string) *runs.Artifact {
		return &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/" + id + "/bundle-1.tar.gz", Size: 1, SHA256: strings.Repeat("b", 64)}
	}
	f.planned = runs.NewRunID(runsNow)
	_, err = f.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", ID: f.planned, Operation: runs.OpApply, Bundle: bundle(f.planned), CreatedBy: "api-key:alice"})
	require.NoError(t, err)
	_, err = f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	plan := &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/" + f.planned + "/workdir-c2.tar.gz", Size: 9, SHA256: strings.Repeat("c", 64)}
	planJSON := &runs.Artifact{Container: "boteruns", Blob: "contoso/prod/" + f.planned + "/plan-1.json", Size: int64(len(fixturePlan)), SHA256: strings.Repeat("d", 64)}
	f.arts.plans = map[string][]byte{planJSON.Blob: []byte(fixturePlan)}
	_, err = f.m.Report(ctx, runs.Report{Tenant: "contoso", Run: f.planned, Agent: "a1", State: runs.Planned, Plan: plan, PlanJSON: planJSON, Result: &tfresult.Result{
		Op: tfresult.Plan, HasChanges: true, Changes: &tfresult.ChangeSummary{Add: 2}, Plan: &planrender.Summary{Add: 2},
		Diagnostics: []tfresult.Diagnostic{{Severity: "warning", Summary: "deprecated", File: "main.tf", Line: 3}},
		Outputs:     map[string]tfresult.Output{"name": {Value: json.RawMessage(`"web"`)}, "password": {Sensitive: true, Value: json.RawMessage(`"hunter2"`)}},
	}})
	require.NoError(t, err)
	f.arts.appendLog(f.planned, "Terraform will perform the following actions:", "Plan: 2 to add, 0 to change, 0 to destroy.")
	f.cancelled = runs.NewRunID(runsNow)
	_, err = f.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "prod", ID: f.cancelled, Operation: runs.OpDestroy, Bundle: bundle(f.cancelled)})
	require.NoError(t, err)
	_, err = f.m.Cancel(ctx, runs.CancelRequest{Tenant: "contoso", Run: f.cancelled, By: "api-key:alice"})
	require.NoError(t, err)

	f.s, f.srv = newTestServer(t, func(c *Config) {
		c.Runs, c.Artifacts, c.Dispatcher, c.Policies = f.m, f.arts, f.disp, f.policies
		c.Notifications, c.WebhookAllowHTTP = f.notify, true
		c.Drift, err = drift.New(drift.Config{Store: f.drift, Runs: f.m, Now: func() time.Time { return runsNow }, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(t, err)
		c.Now = func() time.Time { return runsNow }
		c.PingInterval = time.Second
	})
	return f
}

func doBody(t *testing.T, method, url, contentType string, body []byte) response {
	t.Helper()
	return send(t, method, url, goodKey, contentType, body)
}

// provokeRuns makes a runs route answer with code.
func provokeRuns(t *testing.T, method, path, code string) ([]byte, bool) {
	t.Helper()
	f := newRunsFixture(t)
	run := f.planned
	if code == "409" || code == "101" {
		run = f.cancelled // cannot be approved or cancelled; its follow ends at once
	}
	fill := func(tenant, ws, run string) string {
		return strings.NewReplacer("{tenant}", tenant, "{workspace}", ws, "{run}", run, "{name}", "region").Replace(path)
	}
	if strings.Contains(path, "/vars") {
		_, err := f.m.UpdateWorkspace(context.Background(), "contoso", "prod", func(w *runs.Workspace) { w.Vars = map[string]string{"region": "westeurope"} })
		require.NoError(t, err)
	}
	url := f.srv.URL + fill("contoso", "prod", run)
	var r response
	if strings.HasSuffix(path, "/rollback") {
		// prod is held by a planned run (409); idle is not.
		body := []byte(`{"version":"run-0000000000000001-c5"}`)
		switch code {
		case "200":
			_, err := f.m.CreateWorkspace(context.Background(), runs.Workspace{Tenant: "contoso", Name: "idle"})
			require.NoError(t, err)
			r = doBody(t, method, f.srv.URL+fill("contoso", "idle", run), "application/json", body)
		case "409":
			r = doBody(t, method, url, "application/json", body)
		case "400":
			r = doBody(t, method, url, "application/json", []byte(`{"version":"../x"}`))
		}
	}
	switch {
	case r.status != 0:
		require.Equal(t, code, strconv.Itoa(r.status), "body: %s", r.body)
		return r.body, true
	}
	switch code {
	case "101":
		c, _, err := websocket.Dial(context.Background(), strings.Replace(url, "http", "ws", 1), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + goodKey}}})
		require.NoError(t, err)
		defer c.CloseNow()
		_, data, err := c.Read(context.Background())
		require.NoError(t, err)
		return data, true
	case "401":
		r = do(t, method, url, "bad")
	case "403":
		r = do(t, method, url, nobodyKey)
	case "404":
		if method == http.MethodGet && (strings.HasSuffix(path, "/workspaces") || strings.HasSuffix(path, "/runs")) {
			r = do(t, method, f.srv.URL+fill("nobody", "prod", run), goodKey) // no such tenant
			break
		}
		ct, body := "application/gzip", []byte("x")
		switch method {
		case http.MethodPatch:
			ct, body = "application/json", []byte("{}")
		case http.MethodPut:
			ct, body = "application/json", []byte(`{"value":"v"}`)
		}
		r = doBody(t, method, f.srv.URL+fill("contoso", "nope", "run-0000000000000000"), ct, body)
	case "503":
		_, srv := newTestServer(t, nil)
		r = doBody(t, method, srv.URL+fill("contoso", "prod", run), "application/gzip", []byte("x"))
	case "413":
		f.arts.limit = 4
		r = doBody(t, method, url, "application/gzip", []byte("too large"))
	case "400":
		switch {
		case method == http.MethodPatch:
			r = doBody(t, method, url, "application/json", []byte(`{"timeouts":{"plan":"forever"}}`))
		case method == http.MethodPut:
			r = doBody(t, method, url, "application/json", []byte(`{"value":"v","unknown":1}`))
		case strings.Contains(path, "{run}") && !strings.HasSuffix(path, "/logs") && !strings.HasSuffix(path, "/follow"):
			r = doBody(t, method, f.srv.URL+fill("contoso", "prod", "run-not-an-id"), "application/json", nil)
		case strings.HasSuffix(path, "/state"):
			r = do(t, method, url+"?version=../x", goodKey)
		case method == http.MethodGet && (strings.HasSuffix(path, "/workspaces") || strings.HasSuffix(path, "/runs") || strings.HasSuffix(path, "/versions")):
			r = do(t, method, f.srv.URL+fill("-bad", "prod", run), goodKey)
		case strings.HasSuffix(path, "/workspaces"):
			r = doBody(t, method, url, "application/json", []byte(`{"name":"bad name!"}`))
		case strings.HasSuffix(path, "/runs"):
			r = doBody(t, method, url+"?op=import", "application/gzip", []byte("x"))
		default:
			r = do(t, method, url+"?offset=-1", goodKey)
		}
	case "409":
		if method == http.MethodPatch {
			return nil, false // only when two changes race
		}
		if strings.HasSuffix(path, "/workspaces") {
			r = doBody(t, method, url, "application/json", []byte(`{"name":"prod"}`))
		} else {
			r = do(t, method, url, goodKey)
		}
	case "200", "201", "202", "426":
		switch {
		case strings.HasSuffix(path, "/workspaces") && method == http.MethodPost:
			r = doBody(t, method, url, "application/json", []byte(`{"name":"staging","auto_apply":true,"labels":{"env":"staging"},"timeouts":{"plan":"30m"}}`))
		case strings.HasSuffix(path, "/runs") && method == http.MethodPost:
			r = doBody(t, method, url, "application/gzip", []byte("bundle"))
		case method == http.MethodPatch:
			r = doBody(t, method, url, "application/json", []byte(`{"four_eyes":true,"description":"prod"}`))
		case method == http.MethodPut:
			r = doBody(t, method, url, "application/json", []byte(`{"value":"northeurope"}`))
		default:
			r = do(t, method, url, goodKey)
		}
	default:
		return nil, false
	}
	require.Equal(t, code, strconv.Itoa(r.status), "body: %s", r.body)
	return r.body, true
}

func decode[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.body, &v), "body: %s", r.body)
	return v
}

func TestWorkspaces(t *testing.T) {
	f := newRunsFixture(t)
	r := doBody(t, "POST", f.srv.URL+"/v1/tenants/fabrikam/workspaces", "application/json",
		[]byte(`{"name":"staging","auto_apply":true,"labels":{"env":"staging"},"timeouts":{"plan":"30m","approval":"2h"}}`))
	require.Equal(t, 201, r.status, "%s", r.body)
	ws := decode[Workspace](t, r)
	assert.Equal(t, Workspace{Tenant: "fabrikam", Name: "staging", AutoApply: true, Labels: map[string]string{"env": "staging"},
		Timeouts: Timeouts{Plan: "30m0s", Approval: "2h0m0s"}, CreatedAt: runsNow}, ws)

	list := decode[WorkspaceList](t, do(t, "GET", f.srv.URL+"/v1/tenants/fabrikam/workspaces", goodKey))
	assert.Equal(t, []Workspace{ws}, list.Workspaces, "a new tenant's first workspace creates the tenant")
	list = decode[WorkspaceList](t, do(t, "GET", f.srv.URL+"/v1/tenants/nobody/workspaces", goodKey))
	assert.Empty(t, list.Workspaces)

	tests := []struct {
		name, body string
		status     int
		want       string
	}{
		{"duplicate", `{"name":"prod"}`, 409, "already exists"},
		{"bad name", `{"name":"no/slash"}`, 400, "workspace id"},
		{"no name", `{}`, 400, "workspace id is empty"},
		{"bad timeout", `{"name":"x","timeouts":{"apply":"forever"}}`, 400, "timeouts.apply"},
		{"timeout too long", `{"name":"x","timeouts":{"plan":"9000h"}}`, 400, "planTimeout"},
		{"unknown field", `{"name":"x","autoapply":true}`, 400, "unknown field"},
		{"not json", `{`, 400, "cannot decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := doBody(t, "POST", f.srv.URL+"/v1/tenants/contoso/workspaces", "application/json", []byte(tt.body))
			assert.Equal(t, tt.status, r.status)
			assert.Contains(t, decode[ErrorBody](t, r).Error.Message, tt.want)
		})
	}
}

// An updated workspace is dispatched at once: its run may wait for the
// labels or terraform version the update changed.
func TestUpdatedWorkspaceIsDispatched(t *testing.T) {
	f := newRunsFixture(t)
	r := doBody(t, "PATCH", f.srv.URL+"/v1/tenants/contoso/workspaces/prod", "application/json", []byte(`{"terraform_version":">= 1.0"}`))
	require.Equal(t, 200, r.status, "%s", r.body)
	assert.Equal(t, []string{"contoso/prod"}, f.disp.kicks)
	r = doBody(t, "PATCH", f.srv.URL+"/v1/tenants/contoso/workspaces/prod", "application/json", []byte(`{"terraform_version":"not a constraint"}`))
	require.Equal(t, 400, r.status, "%s", r.body)
	assert.Equal(t, []string{"contoso/prod"}, f.disp.kicks, "a refused update changes nothing")
}

func TestCreateRun(t *testing.T) {
	f := newRunsFixture(t)
	r := doBody(t, "POST", f.srv.URL+"/v1/tenants/contoso/workspaces/prod/runs?op=destroy&message=teardown", "application/gzip", []byte("bundle bytes"))
	require.Equal(t, 202, r.status, "%s", r.body)
	run := decode[Run](t, r)
	assert.Equal(t, "destroy", run.Operation)
	assert.Equal(t, "queued", run.State)
	assert.Equal(t, "teardown", run.Message)
	assert.Equal(t, "api-key:alice", run.CreatedBy)
	assert.Contains(t, run.Waiting, "busy with run "+f.planned, "says why it waits")
	assert.Equal(t, []byte("bundle bytes"), f.arts.bundles["contoso/prod/"+run.ID+"/bundle-1.tar.gz"])
	assert.Equal(t, []string{"contoso/prod"}, f.disp.kicks, "the dispatcher is told at once")

	f.arts.limit = 4
	r = doBody(t, "POST", f.srv.URL+"/v1/tenants/contoso/workspaces/prod/runs", "application/gzip", []byte("12345"))
	assert.Equal(t, 413, r.status)
	eb := decode[ErrorBody](t, r)
	assert.Equal(t, CodeTooLarge, eb.Error.Code)
	assert.Contains(t, eb.Error.Message, "over the limit of 4 bytes")

	tests := []struct {
		name, path, ctype string
		status            int
	}{
		{"unknown workspace", "/v1/tenants/contoso/workspaces/nope/runs", "application/gzip", 404},
		{"another tenant's workspace", "/v1/tenants/fabrikam/workspaces/prod/runs", "application/gzip", 404},
		{"not a bundle", "/v1/tenants/contoso/workspaces/prod/runs", "application/json", 400},
		{"bad op", "/v1/tenants/contoso/workspaces/prod/runs?op=import", "application/gzip", 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.status, doBody(t, "POST", f.srv.URL+tt.path, tt.ctype, []byte("x")).status)
		})
	}
}

func TestDeclaredOversizeIsRefusedBeforeReading(t *testing.T) {
	f := newRunsFixture(t)
	req, err := http.NewRequest("POST", f.srv.URL+"/v1/tenants/contoso/workspaces/prod/runs", strings.NewReader("x"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+goodKey)
	req.Header.Set("Content-Type", "application/gzip")
	req.ContentLength = tfarchive.BundleLimits.MaxBytes + 1
	// The server answers before the body; the client may fail writing it.
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		defer resp.Body.Close()
		assert.Equal(t, 413, resp.StatusCode)
	}
	assert.Empty(t, f.arts.bundles)
}

// Behind Azure Relay a request streamed over a rendezvous has no
// Content-Length (the relay strips RFC 7230 headers), so the bundle limit
// must hold while reading, whatever the artifact store allows.
func TestUndeclaredOversizeIsRefused(t *testing.T) {
	f := newRunsFixture(t)
	f.s.cfg.MaxBundleBytes = 10
	f.arts.limit = 1 << 20 // a store more generous than the API
	for _, declared := range []bool{true, false} {
		var body io.Reader = strings.NewReader(strings.Repeat("x", 100))
		if !declared {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, err := http.NewRequest("POST", f.srv.URL+"/v1/tenants/contoso/workspaces/prod/runs", body)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+goodKey)
		req.Header.Set("Content-Type", "application/gzip")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, 413, resp.StatusCode, "declared length %v: %s", declared, b)
		assert.Contains(t, string(b), "over the limit of 10", "declared length %v", declared)
	}
	assert.Empty(t, f.arts.bundles)
}

func TestGetRunShowsResultsWithoutSensitiveValues(t *testing.T) {
	f := newRunsFixture(t)
	run := decode[Run](t, do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned, goodKey))
	assert.Equal(t, "planned", run.State)
	assert.True(t, run.HasPlan)
	require.NotNil(t, run.PlanResult)
	assert.Equal(t, &Changes{Add: 2}, run.PlanResult.Changes)
	assert.Equal(t, "deprecated", run.PlanResult.Diagnostics[0].Summary)
	assert.JSONEq(t, `"web"`, string(run.PlanResult.Outputs["name"].Value))
	assert.Nil(t, run.PlanResult.Outputs["password"].Value)
	assert.Equal(t, []string{"queued", "planning", "planned"}, []string{run.History[0].To, run.History[1].To, run.History[2].To})

	assert.Equal(t, 404, do(t, "GET", f.srv.URL+"/v1/tenants/fabrikam/runs/"+f.planned, goodKey).status, "another tenant's run is not found")

	list := decode[RunList](t, do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs?workspace=prod", goodKey))
	require.Len(t, list.Runs, 2)
	assert.Equal(t, []string{f.cancelled, f.planned}, []string{list.Runs[0].ID, list.Runs[1].ID}, "newest first")
}

func TestListRunsNewestFirstWithLimitAndStates(t *testing.T) {
	f := newRunsFixture(t)
	ctx := context.Background()
	_, err := f.m.CreateWorkspace(ctx, runs.Workspace{Tenant: "contoso", Name: "dev"})
	require.NoError(t, err)
	dev := runs.NewRunID(runsNow.Add(time.Minute))
	_, err = f.m.Enqueue(ctx, runs.EnqueueRequest{Tenant: "contoso", Workspace: "dev", ID: dev, Operation: runs.OpApply,
		Bundle: &runs.Artifact{Container: "boteruns", Blob: "contoso/dev/" + dev + "/bundle-1.tar.gz", Size: 1, SHA256: strings.Repeat("b", 64)}})
	require.NoError(t, err)

	ids := func(query string) ([]string, bool) {
		t.Helper()
		r := do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs"+query, goodKey)
		require.Equal(t, 200, r.status, "%s", r.body)
		l := decode[RunList](t, r)
		var out []string
		for _, run := range l.Runs {
			out = append(out, run.ID)
		}
		return out, l.Truncated
	}
	for _, tc := range []struct {
		query     string
		want      []string
		truncated bool
	}{
		{"", []string{dev, f.cancelled, f.planned}, false},
		{"?limit=2", []string{dev, f.cancelled}, true},
		{"?limit=3", []string{dev, f.cancelled, f.planned}, false},
		{"?state=planned", []string{f.planned}, false},
		{"?state=queued,cancelled", []string{dev, f.cancelled}, false},
		{"?state=queued&state=planned", []string{dev, f.planned}, false},
		{"?workspace=prod&limit=1", []string{f.cancelled}, true},
		{"?workspace=dev&state=failed", nil, false},
	} {
		got, truncated := ids(tc.query)
		assert.Equal(t, tc.want, got, tc.query)
		assert.Equal(t, tc.truncated, truncated, tc.query)
	}

	for _, tc := range []struct {
		query  string
		status int
		msg    string
	}{
		{"/v1/tenants/contoso/runs?limit=0", 400, "limit"},
		{"/v1/tenants/contoso/runs?limit=1001", 400, "limit"},
		{"/v1/tenants/contoso/runs?state=done", 400, "is not one of"},
		{"/v1/tenants/contoso/runs?workspace=nope", 404, "tenant contoso has no workspace nope"},
		{"/v1/tenants/contoso/runs?workspace=-bad", 400, "workspace"},
		{"/v1/tenants/nobody/runs", 404, "no tenant nobody"},
		{"/v1/tenants/nobody/workspaces", 404, "no tenant nobody"},
		{"/v1/tenants/nobody/runs/" + f.planned, 404, "no tenant nobody"},
		{"/v1/tenants/-bad/runs", 400, "tenant"},
		{"/v1/agents?tenant=nobody", 404, "no tenant nobody"},
		{"/v1/agents?tenant=contoso", 200, "agents"},
	} {
		r := do(t, "GET", f.srv.URL+tc.query, goodKey)
		assert.Equal(t, tc.status, r.status, "%s: %s", tc.query, r.body)
		assert.Contains(t, string(r.body), tc.msg, tc.query)
	}
}

func TestApproveAndCancel(t *testing.T) {
	f := newRunsFixture(t)
	r := do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/approve", goodKey)
	require.Equal(t, 200, r.status, "%s", r.body)
	run := decode[Run](t, r)
	assert.Equal(t, "approved", run.State)
	assert.Equal(t, "approved by api-key:alice", run.History[len(run.History)-1].Reason)
	assert.Equal(t, []string{"contoso/prod"}, f.disp.kicks)

	r = do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/approve", goodKey)
	assert.Equal(t, 409, r.status, "approving twice")

	r = do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/cancel?reason=wrong+change", goodKey)
	require.Equal(t, 200, r.status, "%s", r.body)
	run = decode[Run](t, r)
	assert.Equal(t, "cancelled", run.State)
	assert.Contains(t, run.History[len(run.History)-1].Reason, "wrong change")
	assert.Equal(t, 409, do(t, "POST", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/cancel", goodKey).status)
	assert.Equal(t, 404, do(t, "POST", f.srv.URL+"/v1/tenants/fabrikam/runs/"+f.cancelled+"/cancel", goodKey).status)
}

func TestLogs(t *testing.T) {
	f := newRunsFixture(t)
	chunk := decode[LogChunk](t, do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/logs?max=60", goodKey))
	assert.Equal(t, "Terraform will perform the following actions:\n", chunk.Text, "whole lines within max")
	assert.False(t, chunk.Done)
	chunk = decode[LogChunk](t, do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/logs?offset="+strconv.FormatInt(chunk.NextOffset, 10), goodKey))
	assert.Equal(t, "Plan: 2 to add, 0 to change, 0 to destroy.\n", chunk.Text)
	for _, q := range []string{"?offset=-1", "?offset=x", "?max=0", "?max=99999999"} {
		assert.Equal(t, 400, do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs/"+f.planned+"/logs"+q, goodKey).status, q)
	}
	done := decode[LogChunk](t, do(t, "GET", f.srv.URL+"/v1/tenants/contoso/runs/"+f.cancelled+"/logs", goodKey))
	assert.True(t, done.Done)
}

func readFrame(t *testing.T, c *websocket.Conn) FollowFrame {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, data, err := c.Read(ctx)
	require.NoError(t, err)
	var fr FollowFrame
	require.NoError(t, json.Unmarshal(data, &fr))
	return fr
}

func TestFollowStreamsLinesAndStateUntilTheEnd(t *testing.T) {
	f := newRunsFixture(t)
	_, err := f.m.Approve(context.Background(), "contoso", f.planned, "bob")
	require.NoError(t, err)
	c, _, err := websocket.Dial(context.Background(), strings.Replace(f.srv.URL, "http", "ws", 1)+"/v1/tenants/contoso/runs/"+f.planned+"/follow",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + goodKey}}})
	require.NoError(t, err)
	defer c.CloseNow()

	fr := readFrame(t, c)
	assert.Equal(t, FrameRun, fr.Type)
	assert.Equal(t, "approved", fr.Run.State)
	fr = readFrame(t, c)
	assert.Equal(t, FrameLog, fr.Type)
	assert.Equal(t, []string{"Terraform will perform the following actions:", "Plan: 2 to add, 0 to change, 0 to destroy."}, fr.Lines)

	// The apply runs: a claim, lines, the end. A wake-up delivers each at once.
	_, err = f.m.Claim(context.Background(), runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)
	f.disp.wake(f.planned)
	fr = readFrame(t, c)
	assert.Equal(t, "applying", fr.Run.State)
	start := time.Now()
	f.arts.appendLog(f.planned, "Apply complete!")
	f.disp.wake(f.planned)
	fr = readFrame(t, c)
	assert.Equal(t, []string{"Apply complete!"}, fr.Lines)
	assert.Less(t, time.Since(start), FollowPoll, "woken, not polled")
	_, err = f.m.Report(context.Background(), runs.Report{Tenant: "contoso", Run: f.planned, Agent: "a1", State: runs.Applied})
	require.NoError(t, err)
	// No wake-up this time: the poll finds it (a change on another replica).
	fr = readFrame(t, c)
	assert.Equal(t, FrameRun, fr.Type)
	assert.Equal(t, "applied", fr.Run.State)
	fr = readFrame(t, c)
	assert.Equal(t, FrameEnd, fr.Type)
	_, _, err = c.Read(context.Background())
	assert.Equal(t, websocket.StatusNormalClosure, websocket.CloseStatus(err))
}

func TestFollowResumesFromOffset(t *testing.T) {
	f := newRunsFixture(t)
	f.arts.appendLog(f.cancelled, "one", "two")
	c, _, err := websocket.Dial(context.Background(), strings.Replace(f.srv.URL, "http", "ws", 1)+"/v1/tenants/contoso/runs/"+f.cancelled+"/follow?offset=4",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + goodKey}}})
	require.NoError(t, err)
	defer c.CloseNow()
	assert.Equal(t, FrameRun, readFrame(t, c).Type)
	fr := readFrame(t, c)
	assert.Equal(t, []string{"two"}, fr.Lines)
	assert.Equal(t, int64(8), fr.NextOffset)
	assert.Equal(t, FrameEnd, readFrame(t, c).Type)
}

func TestRunsUnavailableWithoutStore(t *testing.T) {
	_, srv := newTestServer(t, nil)
	r := do(t, "GET", srv.URL+"/v1/tenants/contoso/workspaces", goodKey)
	assert.Equal(t, 503, r.status)
	assert.Contains(t, decode[ErrorBody](t, r).Error.Message, "runs are not configured")
	_, err := New(Config{Auth: fakeAuth{}, Agents: NewStaticAgents(nil), Runs: &runs.Manager{}})
	assert.ErrorContains(t, err, "Artifacts")
}

func TestRunAgents(t *testing.T) {
	f := newRunsFixture(t)
	ctx := context.Background()
	_, err := f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.Error(t, err, "the planned run waits for approval")
	_, err = f.m.Approve(ctx, "contoso", f.planned, "bob")
	require.NoError(t, err)
	_, err = f.m.Claim(ctx, runs.ClaimRequest{Tenant: "contoso", Workspace: "prod", Agent: "a1"})
	require.NoError(t, err)

	agent := []string{registry.RoleAgent}
	parse := func(cs ...registry.Connector) *registry.Registry {
		data, err := registry.Marshal(cs)
		require.NoError(t, err)
		reg, err := registry.Parse(data)
		require.NoError(t, err)
		return reg
	}
	reg := parse(registry.Connector{Tenant: "contoso", ID: "a1", JWK: testJWK, Roles: agent}, registry.Connector{Tenant: "contoso", ID: "a2", JWK: testJWK, Roles: agent},
		registry.Connector{Tenant: "contoso", ID: "erp", JWK: testJWK}, registry.Connector{Tenant: "fabrikam", ID: "f1", JWK: testJWK, Roles: agent, Disabled: true})
	ra := RunAgents{Runs: f.m, Tenants: f.store.ListTenants, Registry: func() *registry.Registry { return reg }}
	got, err := ra.ListAgents(ctx, AgentFilter{})
	require.NoError(t, err)
	require.Len(t, got, 3)
	seen := runsNow
	assert.Equal(t, Agent{ID: "contoso/a1", Tenant: "contoso", Name: "a1", State: AgentOnline, Version: "0.5.0", LastSeen: &seen,
		Labels: map[string]string{"env": "prod"}, Capacity: 2, Running: []string{f.planned}}, got[0])
	assert.Equal(t, AgentUnknown, got[1].State, "registered, never heartbeated")
	assert.Equal(t, AgentDisabled, got[2].State)

	only, err := ra.ListAgents(ctx, AgentFilter{Tenant: "fabrikam"})
	require.NoError(t, err)
	require.Len(t, only, 1)
	assert.Equal(t, "fabrikam/f1", only[0].ID)

	// The registry withdraws a1's agent role: it is listed disabled.
	reg = parse(registry.Connector{Tenant: "contoso", ID: "a1", JWK: testJWK})
	got, err = ra.ListAgents(ctx, AgentFilter{Tenant: "contoso"})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, AgentDisabled, got[0].State)
}

var testJWK = json.RawMessage(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`)
