package opsmcp

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
)

// readOnly annotates a tool that changes nothing.
func readOnly(title string) *mcp.ToolAnnotations {
	return &mcp.ToolAnnotations{Title: title, ReadOnlyHint: true, DestructiveHint: new(false), IdempotentHint: true, OpenWorldHint: new(false)}
}

// TenantArg names the tenant of a call.
type TenantArg struct {
	Tenant string `json:"tenant,omitempty" jsonschema:"tenant id; default: the tenant of the operator's opsbot profile"`
}

// RunArg names a run.
type RunArg struct {
	TenantArg
	Run string `json:"run" jsonschema:"run id (run-...)"`
}

// TenantsOut is list_tenants' answer.
type TenantsOut struct {
	// Principal is who the credential authenticates as ("api-key:alice").
	Principal string `json:"principal"`
	// Admin: a platform administrator, with every role in every tenant.
	Admin bool `json:"admin"`
	// Tenants are those the principal has a role in (for an admin, those
	// with agents too).
	Tenants []TenantRole `json:"tenants"`
	// DefaultTenant is used when a tool is given none.
	DefaultTenant string `json:"default_tenant,omitempty"`
}

// TenantRole is the principal's role in one tenant.
type TenantRole struct {
	Tenant string `json:"tenant"`
	Role   string `json:"role" jsonschema:"reader (read), operator (also plan and cancel) or approver (also approve)"`
}

// WorkspacesOut is list_workspaces' answer.
type WorkspacesOut struct {
	Tenant     string                  `json:"tenant"`
	Workspaces []opsapitypes.Workspace `json:"workspaces"`
}

// AgentsOut is list_agents' answer.
type AgentsOut struct {
	Agents          []opsapitypes.Agent `json:"agents"`
	DeployedVersion string              `json:"deployed_version,omitempty"`
}

// ListRunsIn selects runs.
type ListRunsIn struct {
	TenantArg
	Workspace string   `json:"workspace,omitempty" jsonschema:"only this workspace's runs"`
	States    []string `json:"states,omitempty" jsonschema:"only runs in these states"`
	Limit     int      `json:"limit,omitempty" jsonschema:"at most this many, the newest (default 20, at most 1000)"`
}

// RunsOut is list_runs' answer, newest first.
type RunsOut struct {
	Runs []RunView `json:"runs"`
	// Truncated: more runs matched; raise limit to see them.
	Truncated bool `json:"truncated,omitempty"`
}

// ShowRunIn names a run and how long to wait for it.
type ShowRunIn struct {
	RunArg
	WaitSeconds int `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds until the run waits for a person (planned, ended or needs attention)"`
}

// ReadLogIn reads a run's log.
type ReadLogIn struct {
	RunArg
	Offset int64 `json:"offset,omitempty" jsonschema:"byte offset to read from: 0, or the next_offset of the previous chunk"`
}

func (s *Server) addReadTools() {
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "list_tenants",
		Description: "Who the operator's credential is and its role in each tenant it may see.",
		Annotations: readOnly("List tenants"),
	}, s.listTenants)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "list_workspaces",
		Description: "List a tenant's workspaces (Terraform configurations of one environment each): auto-apply, four-eyes, labels, timeouts.",
		Annotations: readOnly("List workspaces"),
	}, s.listWorkspaces)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "list_agents",
		Description: "List deployment agents (all the tenants the operator sees, unless tenant is given): state, version, last heartbeat, labels, running runs.",
		Annotations: readOnly("List agents"),
	}, s.listAgents)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "list_runs",
		Description: "List a tenant's runs, newest first, optionally of one workspace and in some states.",
		Annotations: readOnly("List runs"),
	}, s.listRuns)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "show_run",
		Description: "Show a run: state, history, change counts, what it destroys or replaces, Terraform's diagnostics, outputs (sensitive values withheld). wait_seconds waits until it needs a person.",
		Annotations: readOnly("Show a run"),
	}, s.showRun)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "show_plan",
		Description: "Show a planned run's resource changes, structured (address, action, reason, before/after with sensitive values masked) and as the diff terraform plan prints, a page of about 100 KB at most: summary and the Plan: line count the whole plan; while next_offset is set, call again with that offset for the rest. Show the diff (every page) to the human before any approval.",
		Annotations: readOnly("Show a plan"),
	}, s.showPlan)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name:        "read_log",
		Description: "Read a run's Terraform log from a byte offset, in whole lines; continue from next_offset until done.",
		Annotations: readOnly("Read a run's log"),
	}, s.readLog)
}

func (s *Server) listTenants(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, TenantsOut, error) {
	me, err := s.api.Whoami(ctx)
	if err != nil {
		return nil, TenantsOut{}, s.apiErr(err)
	}
	out := TenantsOut{Principal: me.String(), Admin: me.Admin, DefaultTenant: s.cfg.Tenant, Tenants: []TenantRole{}}
	roles := map[string]string{}
	for t, r := range me.Tenants {
		roles[t] = string(r)
	}
	if me.Admin {
		// An admin has every tenant; those with agents are the ones known.
		list, err := s.api.AgentList(ctx, "")
		if err != nil {
			return nil, TenantsOut{}, s.apiErr(err)
		}
		for _, a := range list.Agents {
			roles[a.Tenant] = "approver"
		}
	}
	for _, t := range slices.Sorted(maps.Keys(roles)) {
		out.Tenants = append(out.Tenants, TenantRole{Tenant: t, Role: roles[t]})
	}
	return nil, out, nil
}

func (s *Server) listWorkspaces(ctx context.Context, _ *mcp.CallToolRequest, in TenantArg) (*mcp.CallToolResult, WorkspacesOut, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, WorkspacesOut{}, err
	}
	wss, err := s.api.Workspaces(ctx, tenant)
	if err != nil {
		return nil, WorkspacesOut{}, s.apiErr(err)
	}
	if wss == nil {
		wss = []opsapitypes.Workspace{}
	}
	return nil, WorkspacesOut{Tenant: tenant, Workspaces: wss}, nil
}

func (s *Server) listAgents(ctx context.Context, _ *mcp.CallToolRequest, in TenantArg) (*mcp.CallToolResult, AgentsOut, error) {
	list, err := s.api.AgentList(ctx, in.Tenant)
	if err != nil {
		return nil, AgentsOut{}, s.apiErr(err)
	}
	out := AgentsOut{Agents: list.Agents, DeployedVersion: list.DeployedVersion}
	if out.Agents == nil {
		out.Agents = []opsapitypes.Agent{}
	}
	return nil, out, nil
}

func (s *Server) listRuns(ctx context.Context, _ *mcp.CallToolRequest, in ListRunsIn) (*mcp.CallToolResult, RunsOut, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, RunsOut{}, err
	}
	if in.Limit == 0 {
		in.Limit = 20
	}
	if in.Limit < 1 || in.Limit > opsapitypes.MaxRunListLimit {
		return nil, RunsOut{}, errors.New("limit: must be between 1 and 1000")
	}
	for _, st := range in.States {
		if !slices.Contains(opsapitypes.States(), st) {
			return nil, RunsOut{}, errors.New("states: " + st + " is not one of " + strings.Join(opsapitypes.States(), ", "))
		}
	}
	list, err := s.api.Runs(ctx, tenant, opsclient.RunQuery{Workspace: in.Workspace, States: in.States, Limit: in.Limit})
	if err != nil {
		return nil, RunsOut{}, s.apiErr(err)
	}
	out := RunsOut{Runs: make([]RunView, 0, len(list.Runs)), Truncated: list.Truncated}
	for i := range list.Runs {
		out.Runs = append(out.Runs, runView(&list.Runs[i], false))
	}
	return nil, out, nil
}

func (s *Server) showRun(ctx context.Context, req *mcp.CallToolRequest, in ShowRunIn) (*mcp.CallToolResult, RunView, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, RunView{}, err
	}
	run, err := s.waitRun(ctx, req, tenant, in.Run, s.wait(in.WaitSeconds))
	if err != nil {
		return nil, RunView{}, err
	}
	return nil, runView(run, true), nil
}

// LogOut is a chunk of a run's log.
type LogOut struct {
	Text       string `json:"text"`
	Offset     int64  `json:"offset"`
	NextOffset int64  `json:"next_offset" jsonschema:"read on from here"`
	// Done: the run ended and this chunk reaches the end of its log.
	Done bool `json:"done"`
}

func (s *Server) readLog(ctx context.Context, _ *mcp.CallToolRequest, in ReadLogIn) (*mcp.CallToolResult, LogOut, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, LogOut{}, err
	}
	if in.Offset < 0 {
		return nil, LogOut{}, errors.New("offset: must not be negative")
	}
	c, err := s.api.Logs(ctx, tenant, in.Run, in.Offset)
	if err != nil {
		return nil, LogOut{}, s.apiErr(err)
	}
	out := LogOut(*c)
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: c.Text}}}, out, nil
}
