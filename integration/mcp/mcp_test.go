// Package mcp_test drives `opsbot mcp` (runtime/opsmcp) with the official
// MCP SDK's client, as an AI assistant would: the client starts opsbot as
// a process over stdio, and opsbot reaches the real local platform
// (Azurite, idp, gateway, devrelay, opsserver, an agent running the real
// terraform) through the relay with an operator API key.
//
// MCP_TRANSCRIPT=FILE writes the JSON-RPC messages of the main session to
// FILE (docs/mcp.md quotes one).
package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/botehq/platform/integration/platform"
	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsmcp"
)

const tenant = "contoso"

var plat *platform.Platform

func TestMain(m *testing.M) {
	platform.MainShared(m, platform.Options{Agents: []platform.Agent{
		{Tenant: tenant, ID: "agent-a", Start: true, Args: []string{"--heartbeat-interval", "2s"}},
	}}, &plat)
}

// assistant is an MCP client session with opsbot mcp.
type assistant struct {
	cs      *mcp.ClientSession
	stderr  *bytes.Buffer
	updates chan string
	// answer is the human's answer to the next confirmation.
	mu     sync.Mutex
	answer *mcp.ElicitResult
	asked  []string
}

// start runs opsbot mcp with args as an assistant would, with env added
// to the operator's (an API key of another principal). elicit: the client
// can ask the human.
func start(t *testing.T, elicit bool, env []string, transcript io.Writer, args ...string) *assistant {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd, err := plat.OpsbotCmd(ctx, tenant, append([]string{"mcp"}, args...)...)
	require.NoError(t, err)
	cmd.Env = append(cmd.Env, env...)
	a := &assistant{stderr: &bytes.Buffer{}, updates: make(chan string, 100)}
	cmd.Stderr = a.stderr
	opts := &mcp.ClientOptions{ResourceUpdatedHandler: func(_ context.Context, r *mcp.ResourceUpdatedNotificationRequest) {
		select {
		case a.updates <- r.Params.URI:
		default:
		}
	}}
	if elicit {
		opts.ElicitationHandler = func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			a.mu.Lock()
			defer a.mu.Unlock()
			a.asked = append(a.asked, r.Params.Message)
			return a.answer, nil
		}
	}
	var tr mcp.Transport = &mcp.CommandTransport{Command: cmd}
	if transcript != nil {
		tr = &mcp.LoggingTransport{Transport: tr, Writer: transcript}
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "integration-test", Version: "1"}, opts).Connect(ctx, tr, nil)
	require.NoError(t, err, "opsbot mcp stderr:\n%s", a.stderr)
	a.cs = cs
	t.Cleanup(func() {
		cs.Close()
		cancel()
		if t.Failed() {
			t.Logf("opsbot mcp stderr:\n%s", a.stderr)
		}
	})
	return a
}

// call calls a tool and decodes its structured output into out (if set).
func (a *assistant) call(t *testing.T, name string, args map[string]any, out any) (*mcp.CallToolResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := a.cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err == nil && !res.IsError && out != nil {
		data, merr := json.Marshal(res.StructuredContent)
		require.NoError(t, merr)
		require.NoError(t, json.Unmarshal(data, out))
	}
	return res, err
}

// must calls a tool that must succeed.
func (a *assistant) must(t *testing.T, name string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	res, err := a.call(t, name, args, out)
	require.NoError(t, err, name)
	require.False(t, res.IsError, "%s: %s", name, text(res))
	return res
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// apiError requires err to be the server's protocol error for a refusal.
func apiError(t *testing.T, err error) opsmcp.APIErrorData {
	t.Helper()
	var we *jsonrpc.Error
	require.ErrorAs(t, err, &we)
	require.EqualValues(t, opsmcp.CodeAPIError, we.Code, we.Message)
	var d opsmcp.APIErrorData
	require.NoError(t, json.Unmarshal(we.Data, &d))
	return d
}

// configDir is the quick configuration (one terraform_data and an output,
// and a file its .terraformignore leaves out) and the root opsbot mcp may
// upload it from.
func configDir(t *testing.T) (root, dir string) {
	t.Helper()
	root, err := filepath.Abs("testdata")
	require.NoError(t, err)
	return root, filepath.Join(root, "quick")
}

// TestAssistantSession is an assistant's whole session: discovery, the
// lists, a plan of a directory with its diff and log (followed through a
// subscription), an approval the human declines, one the human confirms
// and its apply, and a cancel.
func TestAssistantSession(t *testing.T) {
	plat.Expect(t, 0, tenant, "workspaces", "create", "app")
	root, dir := configDir(t)
	var transcript io.Writer
	if path := os.Getenv("MCP_TRANSCRIPT"); path != "" {
		f, err := os.Create(path)
		require.NoError(t, err)
		defer f.Close()
		transcript = f
	}
	a := start(t, true, nil, transcript, "--allow-approve", "--root", root)
	ctx := context.Background()

	// Discovery.
	var tools []string
	for tool, err := range a.cs.Tools(ctx, nil) {
		require.NoError(t, err)
		tools = append(tools, tool.Name)
	}
	assert.ElementsMatch(t, []string{"list_tenants", "list_workspaces", "list_agents", "list_runs", "show_run", "show_plan", "read_log", "plan", "cancel_run", "approve_run"}, tools)
	var templates []string
	for rt, err := range a.cs.ResourceTemplates(ctx, nil) {
		require.NoError(t, err)
		templates = append(templates, rt.URITemplate)
	}
	assert.ElementsMatch(t, []string{"opsbot://tenants/{tenant}/runs/{run}/log", "opsbot://tenants/{tenant}/runs/{run}/plan"}, templates)
	prompt, err := a.cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "safe_change", Arguments: map[string]string{"workspace": "app", "dir": dir}})
	require.NoError(t, err)
	assert.Contains(t, prompt.Messages[0].Content.(*mcp.TextContent).Text, "Ask the human whether to apply it")

	// Lists.
	var tenants opsmcp.TenantsOut
	a.must(t, "list_tenants", nil, &tenants)
	assert.True(t, tenants.Admin)
	assert.Contains(t, tenants.Tenants, opsmcp.TenantRole{Tenant: tenant, Role: "approver"})
	var wss opsmcp.WorkspacesOut
	a.must(t, "list_workspaces", nil, &wss)
	assert.True(t, slices.ContainsFunc(wss.Workspaces, func(w opsapitypes.Workspace) bool { return w.Name == "app" }))
	var agents opsmcp.AgentsOut
	a.must(t, "list_agents", map[string]any{"tenant": tenant}, &agents)
	require.Len(t, agents.Agents, 1)
	assert.Equal(t, "online", agents.Agents[0].State)

	// A plan of a directory, followed through a subscription to its log.
	var queued opsmcp.PlanRunOut
	a.must(t, "plan", map[string]any{"workspace": "app", "dir": dir, "message": "first bucket", "vars": map[string]string{"label": "first"}}, &queued)
	assert.Equal(t, opsmcp.BundleStats{Dir: dir, Files: 3, Bytes: queued.Bundle.Bytes, Ignored: 1}, queued.Bundle, "main.tf, .terraformignore and the run's variables; notes.txt left out")
	id := queued.Run.ID
	require.NoError(t, a.cs.Subscribe(ctx, &mcp.SubscribeParams{URI: queued.Run.LogURI}))
	var run opsmcp.RunView
	a.must(t, "show_run", map[string]any{"run": id, "wait_seconds": 120}, &run)
	require.Equal(t, "planned", run.State, "%+v", run)
	select {
	case uri := <-a.updates:
		assert.Equal(t, queued.Run.LogURI, uri)
	case <-time.After(10 * time.Second):
		t.Fatal("no resource update while the run planned")
	}
	var list opsmcp.RunsOut
	a.must(t, "list_runs", map[string]any{"workspace": "app", "states": []string{"planned"}}, &list)
	require.Len(t, list.Runs, 1)
	assert.Equal(t, id, list.Runs[0].ID)

	// The diff, structured and rendered, the log, and the same as resources.
	var plan opsmcp.PlanOut
	res := a.must(t, "show_plan", map[string]any{"run": id}, &plan)
	assert.Contains(t, plan.Diff, "# terraform_data.quick will be created")
	assert.Contains(t, plan.Diff, "Plan: 1 to add, 0 to change, 0 to destroy.")
	assert.Equal(t, plan.Diff, text(res), "the text content is the diff")
	require.Len(t, plan.Changes, 1)
	assert.Equal(t, opsmcp.ResourceChange{Address: "terraform_data.quick", Type: "terraform_data", Name: "quick", Action: "create",
		After: map[string]any{"input": "first", "triggers_replace": nil}, AfterUnknown: plan.Changes[0].AfterUnknown}, plan.Changes[0])
	var log opsmcp.LogOut
	a.must(t, "read_log", map[string]any{"run": id}, &log)
	assert.Contains(t, log.Text, "Plan: 1 to add")
	rlog, err := a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: run.LogURI})
	require.NoError(t, err)
	assert.Contains(t, rlog.Contents[0].Text, "Plan: 1 to add")
	rplan, err := a.cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: run.PlanURI})
	require.NoError(t, err)
	assert.Equal(t, plan.Diff, rplan.Contents[0].Text)

	// The human declines: nothing is approved.
	a.answer = &mcp.ElicitResult{Action: "decline"}
	res, err = a.call(t, "approve_run", map[string]any{"run": id}, nil)
	require.NoError(t, err)
	require.True(t, res.IsError)
	assert.Contains(t, text(res), "not approved: the human did not confirm")
	require.Len(t, a.asked, 1)
	assert.Contains(t, a.asked[0], "Apply run "+id+" of workspace app (tenant contoso)?")
	assert.Contains(t, a.asked[0], "Plan: 1 to add, 0 to change, 0 to destroy.")
	a.must(t, "show_run", map[string]any{"run": id}, &run)
	assert.Equal(t, "planned", run.State)

	// The human confirms: approved, applied.
	a.answer = &mcp.ElicitResult{Action: "accept", Content: map[string]any{"confirm": "yes"}}
	a.must(t, "approve_run", map[string]any{"run": id, "wait_seconds": 120}, &run)
	require.Equal(t, "applied", run.State, "%+v", run)
	assert.Equal(t, opsmcp.OutputView{Value: "first"}, run.Apply.Outputs["label"], "the run's variable")

	// Cancel a run that is waiting for approval (a replacement, so that
	// the plan has changes again).
	a.must(t, "plan", map[string]any{"workspace": "app", "dir": dir, "replace": []string{"terraform_data.quick"}, "wait_seconds": 120}, &queued)
	require.Equal(t, "planned", queued.Run.State)
	a.must(t, "cancel_run", map[string]any{"run": queued.Run.ID, "reason": "changed my mind"}, &run)
	assert.Equal(t, "cancelled", run.State)
	a.must(t, "show_run", map[string]any{"run": queued.Run.ID}, &run)
	assert.Contains(t, run.History[len(run.History)-1].Reason, "changed my mind")
}

// TestApprovalNeedsTheFlagAndAHuman: without --allow-approve there is no
// approve_run; with it, a client that cannot ask the human is refused.
// Nothing gets approved either way.
func TestApprovalNeedsTheFlagAndAHuman(t *testing.T) {
	plat.Expect(t, 0, tenant, "workspaces", "create", "noflag")
	root, dir := configDir(t)
	a := start(t, true, nil, nil, "--root", root)
	var queued opsmcp.PlanRunOut
	a.must(t, "plan", map[string]any{"workspace": "noflag", "dir": dir, "wait_seconds": 120}, &queued)
	require.Equal(t, "planned", queued.Run.State)
	id := queued.Run.ID
	a.answer = &mcp.ElicitResult{Action: "accept", Content: map[string]any{"confirm": "yes"}}
	_, err := a.call(t, "approve_run", map[string]any{"run": id}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown tool")
	assert.Empty(t, a.asked)

	mute := start(t, false, nil, nil, "--allow-approve", "--root", root)
	res, err := mute.call(t, "approve_run", map[string]any{"run": id}, nil)
	require.NoError(t, err)
	require.True(t, res.IsError)
	assert.Contains(t, text(res), "no elicitation capability")

	var run opsmcp.RunView
	a.must(t, "show_run", map[string]any{"run": id}, &run)
	assert.Equal(t, "planned", run.State, "nobody approved it")
}

// TestReaderIsRefused: a principal with the reader role reads, but its
// plan and cancel are refused by the server with the missing role named,
// its approval is refused before the human is asked, and nothing changes.
func TestReaderIsRefused(t *testing.T) {
	plat.Expect(t, 0, tenant, "workspaces", "create", "readonly")
	key := strings.TrimSpace(plat.Expect(t, 0, "", "keys", "create", "mcp-reader", "--role", tenant+"=reader").Stdout)
	root, dir := configDir(t)
	a := start(t, true, []string{"OPSBOT_API_KEY=" + key}, nil, "--allow-approve", "--root", root)
	a.answer = &mcp.ElicitResult{Action: "accept", Content: map[string]any{"confirm": "yes"}}

	var wss opsmcp.WorkspacesOut
	a.must(t, "list_workspaces", nil, &wss)
	var tenants opsmcp.TenantsOut
	a.must(t, "list_tenants", nil, &tenants)
	assert.Equal(t, []opsmcp.TenantRole{{Tenant: tenant, Role: "reader"}}, tenants.Tenants)

	_, err := a.call(t, "plan", map[string]any{"workspace": "readonly", "dir": dir}, nil)
	d := apiError(t, err)
	assert.Equal(t, opsmcp.APIErrorData{Status: 403, Code: "forbidden", Message: d.Message, RequestID: d.RequestID, Reason: "missing_role", MissingRole: "operator", Tenant: tenant}, d)
	assert.Contains(t, err.Error(), "the credential lacks the operator role in tenant contoso")

	// An operator's planned run: the reader may see it, not approve or cancel it.
	var queued opsmcp.PlanRunOut
	op := start(t, true, nil, nil, "--root", root)
	op.must(t, "plan", map[string]any{"workspace": "readonly", "dir": dir, "wait_seconds": 120}, &queued)
	require.Equal(t, "planned", queued.Run.State)
	_, err = a.call(t, "cancel_run", map[string]any{"run": queued.Run.ID}, nil)
	assert.Equal(t, "operator", apiError(t, err).MissingRole)
	res, err := a.call(t, "approve_run", map[string]any{"run": queued.Run.ID}, nil)
	require.NoError(t, err)
	require.True(t, res.IsError)
	assert.Contains(t, text(res), "lacks the approver role in tenant contoso")
	assert.Empty(t, a.asked, "the human is not asked to confirm what the server would refuse")
	var run opsmcp.RunView
	a.must(t, "show_run", map[string]any{"run": queued.Run.ID}, &run)
	assert.Equal(t, "planned", run.State)
}

// TestServerDecidesAfterTheHuman: the human's yes does not override the
// server: on a four-eyes workspace, whoever queued the plan cannot approve
// it, through opsbot mcp as through the CLI.
func TestServerDecidesAfterTheHuman(t *testing.T) {
	plat.Expect(t, 0, tenant, "workspaces", "create", "foureyes", "--four-eyes")
	root, dir := configDir(t)
	a := start(t, true, nil, nil, "--allow-approve", "--root", root)
	a.answer = &mcp.ElicitResult{Action: "accept", Content: map[string]any{"confirm": "yes"}}
	var queued opsmcp.PlanRunOut
	a.must(t, "plan", map[string]any{"workspace": "foureyes", "dir": dir, "wait_seconds": 120}, &queued)
	require.Equal(t, "planned", queued.Run.State)
	_, err := a.call(t, "approve_run", map[string]any{"run": queued.Run.ID}, nil)
	d := apiError(t, err)
	assert.Equal(t, "four_eyes", d.Reason)
	assert.Contains(t, err.Error(), "someone other than whoever queued the run must approve it")
	assert.Len(t, a.asked, 1, "the human was asked, and said yes")
	var run opsmcp.RunView
	a.must(t, "show_run", map[string]any{"run": queued.Run.ID}, &run)
	assert.Equal(t, "planned", run.State)
}
