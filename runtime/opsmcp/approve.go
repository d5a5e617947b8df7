package opsmcp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/botehq/platform/runtime/operator"
	"github.com/botehq/platform/runtime/opsapitypes"
)

// CancelIn cancels a run.
type CancelIn struct {
	RunArg
	Reason string `json:"reason,omitempty" jsonschema:"why: kept in the run's history"`
}

// ApproveIn approves a planned run.
type ApproveIn struct {
	RunArg
	WaitSeconds int `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds for the apply to finish (0: return once approved)"`
}

func (s *Server) addChangeTools() {
	mcp.AddTool(s.srv, &mcp.Tool{
		Name: "plan",
		Description: "Queue a plan of a local directory in a workspace: pack it (.terraformignore applies, as with opsbot plan), upload it, and optionally wait for the plan. " +
			"Planning changes no infrastructure; the plan waits for a human's approval unless the workspace auto-applies (list_workspaces says so). Needs the operator role.",
		Annotations: &mcp.ToolAnnotations{Title: "Queue a plan", DestructiveHint: new(false), OpenWorldHint: new(true)},
	}, s.plan)
	mcp.AddTool(s.srv, &mcp.Tool{
		Name: "cancel_run",
		Description: "Cancel a run: a waiting run ends at once, a running one is interrupted (Terraform gets SIGINT, then is killed after a grace period; an interrupted apply can leave resources half-changed). " +
			"Only when the human asks for it. Needs the operator role.",
		Annotations: &mcp.ToolAnnotations{Title: "Cancel a run", DestructiveHint: new(true), IdempotentHint: true, OpenWorldHint: new(false)},
	}, s.cancelRun)
	if !s.cfg.AllowApprove {
		return
	}
	mcp.AddTool(s.srv, &mcp.Tool{
		Name: "approve_run",
		Description: "Approve a planned run, which applies its saved plan to real infrastructure. Call it only after showing the human the plan's diff (show_plan) and being asked to apply it. " +
			"The human is asked to confirm (type yes) through the client; without that confirmation, or with a client that cannot ask, nothing is approved. Needs the approver role.",
		Annotations: &mcp.ToolAnnotations{Title: "Approve and apply a plan", DestructiveHint: new(true), OpenWorldHint: new(true)},
	}, s.approveRun)
}

func (s *Server) cancelRun(ctx context.Context, _ *mcp.CallToolRequest, in CancelIn) (*mcp.CallToolResult, RunView, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, RunView{}, err
	}
	reason := in.Reason
	if reason == "" {
		reason = "cancelled through opsbot mcp"
	}
	run, err := s.api.Cancel(ctx, tenant, in.Run, reason, false)
	if err != nil {
		return nil, RunView{}, s.apiErr(err)
	}
	s.log.Info("cancelled a run", "tenant", tenant, "run", run.ID, "state", run.State)
	return nil, runView(run, false), nil
}

// pendingApproval is an approval the human was asked to confirm. The
// request state sent with the question names it; only that state, once,
// within the TTL, for the same run, lets an answer approve: a client
// cannot skip the question by sending an answer of its own.
type pendingApproval struct {
	tenant, run string
	session     string
	updatedAt   time.Time // the run as the human saw it
	expires     time.Time
}

// confirmField is the form field the human types "yes" into.
const confirmField = "confirm"

func (s *Server) approveRun(ctx context.Context, req *mcp.CallToolRequest, in ApproveIn) (*mcp.CallToolResult, RunView, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, RunView{}, err
	}
	if caps := req.ClientCapabilities(); caps == nil || caps.Elicitation == nil {
		return nil, RunView{}, errors.New("refused: this client cannot ask the human to confirm (it has no elicitation capability), and approve_run never approves without that confirmation; the human approves with opsbot apply " + in.Run)
	}
	if req.Params.RequestState == "" {
		return s.askApproval(ctx, req, tenant, in.Run)
	}
	p, err := s.takePending(req, tenant, in.Run)
	if err != nil {
		return nil, RunView{}, err
	}
	if !confirmed(req.Params.InputResponses["approval"]) {
		s.log.Info("approval declined by the human", "tenant", tenant, "run", in.Run)
		return nil, RunView{}, fmt.Errorf("not approved: the human did not confirm; the plan of run %s still waits for approval", in.Run)
	}
	run, err := s.api.Run(ctx, tenant, in.Run)
	if err != nil {
		return nil, RunView{}, s.apiErr(err)
	}
	if !run.UpdatedAt.Equal(p.updatedAt) || run.State != opsapitypes.StatePlanned {
		return nil, RunView{}, fmt.Errorf("not approved: run %s changed while the human was asked (now %s); show it again and ask again", run.ID, run.State)
	}
	run, err = s.api.Approve(ctx, tenant, in.Run)
	if err != nil {
		return nil, RunView{}, s.apiErr(err)
	}
	s.log.Info("approved a run after the human confirmed", "tenant", tenant, "run", run.ID)
	if d := s.wait(in.WaitSeconds); d > 0 {
		if run, err = s.waitRun(ctx, req, tenant, run.ID, d); err != nil {
			return nil, RunView{}, err
		}
	}
	return nil, runView(run, false), nil
}

// askApproval checks the run can be approved and asks the human, through
// the client, to confirm what the plan does.
func (s *Server) askApproval(ctx context.Context, req *mcp.CallToolRequest, tenant, id string) (*mcp.CallToolResult, RunView, error) {
	run, err := s.api.Run(ctx, tenant, id)
	if err != nil {
		return nil, RunView{}, s.apiErr(err)
	}
	if run.State != opsapitypes.StatePlanned {
		return nil, RunView{}, fmt.Errorf("run %s is %s, not planned: only a saved plan waiting for approval can be approved", run.ID, run.State)
	}
	// Not a decision (the server makes it, after the human's answer): a
	// principal that cannot approve does not make the human answer for
	// nothing.
	me, err := s.api.Whoami(ctx)
	if err != nil {
		return nil, RunView{}, s.apiErr(err)
	}
	if !me.Allows(tenant, operator.RoleApprover) {
		return nil, RunView{}, fmt.Errorf("not asked: the credential (%s) lacks the approver role in tenant %s, so the ops server would refuse the approval; a platform administrator grants it, or someone who holds it approves with opsbot apply %s", me, tenant, run.ID)
	}
	state := rand.Text()
	now := time.Now()
	s.mu.Lock()
	for k, p := range s.pending {
		if now.After(p.expires) {
			delete(s.pending, k)
		}
	}
	s.pending[state] = pendingApproval{tenant: tenant, run: run.ID, session: req.Session.ID(), updatedAt: run.UpdatedAt, expires: now.Add(s.cfg.ConfirmTTL)}
	s.mu.Unlock()
	return &mcp.CallToolResult{
		InputRequests: mcp.InputRequestMap{"approval": &mcp.ElicitParams{
			Message: approvalQuestion(run),
			RequestedSchema: &jsonschema.Schema{
				Type: "object",
				Properties: map[string]*jsonschema.Schema{
					confirmField: {Type: "string", Title: "Type yes to apply", Description: "Only 'yes' will be accepted."},
				},
				Required: []string{confirmField},
			},
		}},
		RequestState: state,
	}, RunView{}, nil
}

// takePending returns and forgets the pending approval the call's
// request state names.
func (s *Server) takePending(req *mcp.CallToolRequest, tenant, id string) (pendingApproval, error) {
	s.mu.Lock()
	p, ok := s.pending[req.Params.RequestState]
	delete(s.pending, req.Params.RequestState)
	s.mu.Unlock()
	if !ok || time.Now().After(p.expires) || p.tenant != tenant || p.run != id || p.session != req.Session.ID() {
		return pendingApproval{}, errors.New("not approved: this confirmation was not asked by this server for this run, or it expired; call approve_run again without a request state")
	}
	return p, nil
}

// confirmed reports whether the human accepted and typed yes.
func confirmed(r mcp.InputResponse) bool {
	er, ok := r.(*mcp.ElicitResult)
	if !ok || er.Action != "accept" {
		return false
	}
	v, _ := er.Content[confirmField].(string)
	return strings.TrimSpace(v) == "yes"
}

// approvalQuestion says what approving does, as opsbot apply does before
// it asks.
func approvalQuestion(r *opsapitypes.Run) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Apply run %s of workspace %s (tenant %s)?", r.ID, r.Workspace, r.Tenant)
	if r.Message != "" {
		fmt.Fprintf(&b, " Queued by %s: %q.", r.CreatedBy, r.Message)
	}
	if r.PlanResult != nil && r.PlanResult.Plan != nil {
		p := r.PlanResult.Plan
		fmt.Fprintf(&b, "\nPlan: %d to add, %d to change, %d to destroy.", p.Add, p.Change, p.Destroy)
		if len(p.Destroyed) > 0 {
			fmt.Fprintf(&b, "\nDestroys: %s.", strings.Join(p.Destroyed, ", "))
		}
		for _, rep := range p.Replaced {
			fmt.Fprintf(&b, "\nReplaces: %s.", rep.Address)
		}
	}
	b.WriteString("\nApplying changes real infrastructure. Type yes to apply; anything else leaves the plan waiting.")
	return b.String()
}
