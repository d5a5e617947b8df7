package opsmcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	tfjson "github.com/hashicorp/terraform-json"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/botehq/platform/runtime/opsapitypes"
	"github.com/botehq/platform/runtime/opsclient"
	"github.com/botehq/platform/runtime/planrender"
	"github.com/botehq/platform/runtime/runspec"
	"github.com/botehq/platform/runtime/tfarchive"
)

// PlanBudget bounds a show_plan answer: a page holds the resources whose
// structured changes and diff (counted twice: the text content and the
// structured diff) fit in it, at least one.
const PlanBudget = 100_000

const (
	// summaryListMax bounds the summary's lists of destroyed and replaced
	// instances (its counts are the whole plan's).
	summaryListMax = 50
	// planOverhead is what a page holds besides its summary and
	// resources: the protocol's envelope, the paging line, the legend and
	// the "Plan:" line, twice.
	planOverhead = 2048
)

// ShowPlanIn asks for a page of a run's plan.
type ShowPlanIn struct {
	RunArg
	Offset int `json:"offset,omitempty" jsonschema:"the first resource change of the page (0: the first); a page that does not end the plan says its next_offset"`
	Limit  int `json:"limit,omitempty" jsonschema:"at most this many resource changes (0: as many as fit in about 100 KB, which bounds every page)"`
}

// PlanOut is show_plan's answer: a page of the plan's resource changes.
type PlanOut struct {
	Run RunView `json:"run"`
	// Summary counts the changes of the whole plan, as terraform plan's
	// "Plan:" line.
	Summary planrender.Summary `json:"summary"`
	// Total is how many resource changes the whole plan has; Offset is
	// this page's first, Changes this page's.
	Total  int `json:"total"`
	Offset int `json:"offset"`
	// NextOffset is the offset of the next page; absent on the last.
	NextOffset int `json:"next_offset,omitempty" jsonschema:"call show_plan again with this offset for the next page; absent on the last page"`
	// Changes are this page's resource changes, in the plan's order.
	Changes []ResourceChange `json:"changes"`
	// Diff is this page as terraform plan prints it, with the whole
	// plan's "Plan:" line (and, on the last page, the outputs' changes);
	// a page that is not the whole plan starts with which resources it
	// holds and how to get the next.
	Diff string `json:"diff"`
}

// ResourceChange is one resource instance the plan changes.
type ResourceChange struct {
	Address string `json:"address"`
	Type    string `json:"type"`
	Name    string `json:"name"`
	// Action is create, update, delete, delete-create or create-delete
	// (replace), read, forget or no-op.
	Action string `json:"action"`
	// Reason is Terraform's action reason (replace_because_tainted, ...).
	Reason string `json:"reason,omitempty"`
	// Before and After are the attribute values; sensitive values are
	// masked by the ops server ("(sensitive value ...)").
	Before       any `json:"before,omitempty"`
	After        any `json:"after,omitempty"`
	AfterUnknown any `json:"after_unknown,omitempty" jsonschema:"attributes known only after apply (true where unknown)"`
}

func (s *Server) showPlan(ctx context.Context, _ *mcp.CallToolRequest, in ShowPlanIn) (*mcp.CallToolResult, PlanOut, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, PlanOut{}, err
	}
	run, err := s.api.Run(ctx, tenant, in.Run)
	if err != nil {
		return nil, PlanOut{}, s.apiErr(err)
	}
	if !run.PlanChanges {
		return nil, PlanOut{}, fmt.Errorf("run %s has no plan to show: it is %s (a plan can be shown once the run is planned, and stays after it is applied)", run.ID, run.State)
	}
	p, err := s.api.Plan(ctx, tenant, run.ID)
	if err != nil {
		return nil, PlanOut{}, s.apiErr(err)
	}
	out, err := planOut(run, p, in.Offset, in.Limit)
	if err != nil {
		return nil, PlanOut{}, err
	}
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: out.Diff}}}, out, nil
}

// planOut is the page of plan p from offset: at most limit resource
// changes (0: no limit), as many as fit in PlanBudget, at least one.
func planOut(run *opsapitypes.Run, p *tfjson.Plan, offset, limit int) (PlanOut, error) {
	var all []*tfjson.ResourceChange
	for _, rc := range p.ResourceChanges {
		if rc != nil && rc.Change != nil {
			all = append(all, rc)
		}
	}
	switch {
	case offset < 0 || offset > len(all) || (offset == len(all) && offset > 0):
		return PlanOut{}, fmt.Errorf("offset: %d is not a resource change of run %s's plan (it has %d, from 0)", offset, run.ID, len(all))
	case limit < 0:
		return PlanOut{}, fmt.Errorf("limit: %d is negative (0: as many as fit)", limit)
	}
	out := PlanOut{Run: runView(run, false), Summary: planrender.Summarize(p), Total: len(all), Offset: offset, Changes: []ResourceChange{}}
	out.Summary.Bound(summaryListMax)
	fixed, err := json.Marshal(out)
	if err != nil {
		return PlanOut{}, fmt.Errorf("cannot encode the plan of run %s: %w", run.ID, err)
	}
	end, size := offset, len(fixed)+planOverhead
	for end < len(all) && (limit == 0 || end-offset < limit) {
		rc := all[end]
		c := ResourceChange{
			Address: rc.Address, Type: rc.Type, Name: rc.Name,
			Action: actionName(rc.Change.Actions), Reason: string(rc.ActionReason),
			Before: rc.Change.Before, After: rc.Change.After, AfterUnknown: rc.Change.AfterUnknown,
		}
		js, err := json.Marshal(c)
		if err != nil {
			return PlanOut{}, fmt.Errorf("cannot encode the change of %s in run %s: %w", rc.Address, run.ID, err)
		}
		diff, _ := json.Marshal(planrender.ResourceDiff(rc))
		size += len(js) + 2*len(diff)
		if size > PlanBudget && end > offset {
			break
		}
		out.Changes = append(out.Changes, c)
		end++
	}
	var diff strings.Builder
	if offset > 0 || end < len(all) {
		fmt.Fprintf(&diff, "Resource changes %d to %d of %d (this page; the Plan: line counts the whole plan).", offset+1, end, len(all))
		if end < len(all) {
			out.NextOffset = end
			fmt.Fprintf(&diff, " Call show_plan with offset %d for the next page.", end)
		}
		diff.WriteString("\n")
	}
	if err := planrender.RenderPage(&diff, p, all[offset:end], end == len(all)); err != nil {
		return PlanOut{}, fmt.Errorf("cannot render the plan of run %s: %w", run.ID, err)
	}
	out.Diff = diff.String()
	return out, nil
}

// actionName names Terraform's actions as planrender.Action does.
func actionName(as tfjson.Actions) string {
	switch {
	case as.Create():
		return string(planrender.Create)
	case as.Read():
		return string(planrender.Read)
	case as.Update():
		return string(planrender.Update)
	case as.Delete():
		return string(planrender.Delete)
	case as.DestroyBeforeCreate():
		return string(planrender.DeleteCreate)
	case as.CreateBeforeDestroy():
		return string(planrender.CreateDelete)
	case as.Forget():
		return string(planrender.Forget)
	}
	return string(planrender.NoOp)
}

// PlanIn queues a plan.
type PlanIn struct {
	TenantArg
	Workspace   string   `json:"workspace" jsonschema:"the workspace to plan"`
	Dir         string   `json:"dir" jsonschema:"the directory holding the Terraform configuration (absolute, or relative to the server's working directory); it must be inside one of the server's roots"`
	Message     string   `json:"message,omitempty" jsonschema:"why this run: kept with the run"`
	Targets     []string `json:"targets,omitempty" jsonschema:"plan only these resource addresses and what they depend on (terraform -target)"`
	Replace     []string `json:"replace,omitempty" jsonschema:"plan to replace these resource instances (terraform -replace)"`
	RefreshOnly bool     `json:"refresh_only,omitempty" jsonschema:"plan only to update the state to match the real infrastructure"`
	// Vars travel in the bundle as opsbot plan --var does (runspec.RunVarsFile).
	Vars        map[string]string `json:"vars,omitempty" jsonschema:"input variables for this run, as strings (as opsbot plan --var); they win over the workspace's variables and are stored with the bundle: never put secrets here"`
	WaitSeconds int               `json:"wait_seconds,omitempty" jsonschema:"wait up to this many seconds for the plan to finish (0: return once queued)"`
}

// PlanRunOut is the plan tool's answer.
type PlanRunOut struct {
	Run RunView `json:"run"`
	// Bundle is what was uploaded.
	Bundle BundleStats `json:"bundle"`
}

// BundleStats describes an uploaded configuration bundle.
type BundleStats struct {
	Dir     string `json:"dir"`
	Files   int    `json:"files"`
	Bytes   int64  `json:"bytes"`
	Ignored int    `json:"ignored,omitempty" jsonschema:"files left out by .terraformignore"`
}

func (s *Server) plan(ctx context.Context, req *mcp.CallToolRequest, in PlanIn) (*mcp.CallToolResult, PlanRunOut, error) {
	tenant, err := s.tenant(in.Tenant)
	if err != nil {
		return nil, PlanRunOut{}, err
	}
	if in.Workspace == "" {
		return nil, PlanRunOut{}, errors.New("workspace: required")
	}
	dir, err := s.configDir(in.Dir)
	if err != nil {
		return nil, PlanRunOut{}, err
	}
	var extra []tfarchive.File
	if len(in.Vars) > 0 {
		data, err := runspec.RunVarsJSON(in.Vars)
		if err != nil {
			return nil, PlanRunOut{}, fmt.Errorf("vars: %w", err)
		}
		extra = append(extra, tfarchive.File{Name: runspec.RunVarsFile, Data: data})
	}
	bundle, stats, err := tfarchive.PackBundle(dir, extra)
	if err != nil {
		return nil, PlanRunOut{}, err
	}
	defer os.Remove(bundle.Name())
	defer bundle.Close()
	opts := opsclient.WithPlanOptions(opsapitypes.PlanOptions{Targets: in.Targets, Replace: in.Replace, RefreshOnly: in.RefreshOnly})
	run, err := s.api.CreateRun(ctx, tenant, in.Workspace, opsclient.OpPlan, in.Message, bundle, opts)
	if err != nil {
		return nil, PlanRunOut{}, s.apiErr(err)
	}
	s.log.Info("queued a plan", "tenant", tenant, "workspace", in.Workspace, "run", run.ID, "dir", dir)
	if d := s.wait(in.WaitSeconds); d > 0 {
		if run, err = s.waitRun(ctx, req, tenant, run.ID, d); err != nil {
			return nil, PlanRunOut{}, err
		}
	}
	out := PlanRunOut{Run: runView(run, false), Bundle: BundleStats{Dir: dir, Files: stats.Files, Bytes: stats.Bytes, Ignored: stats.Ignored}}
	return nil, out, nil
}

// configDir resolves the plan tool's directory and checks it is a
// Terraform configuration inside a root: an assistant must not be able to
// upload whatever the operator can read (~/.ssh) as a "configuration".
func (s *Server) configDir(arg string) (string, error) {
	if arg == "" {
		return "", errors.New("dir: required")
	}
	if len(s.cfg.Roots) == 0 {
		return "", errors.New("dir: this server may upload no directory: it was started in the file system's root without --root; the operator adds --root DIR (the directory of the configurations) to opsbot mcp's arguments in the assistant's configuration")
	}
	dir, err := filepath.Abs(arg)
	if err != nil {
		return "", fmt.Errorf("dir: %w", err)
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	inside := false
	for _, root := range s.cfg.Roots {
		if r, err := filepath.EvalSymlinks(root); err == nil {
			root = r
		}
		if rel, err := filepath.Rel(root, dir); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			inside = true
			break
		}
	}
	if !inside {
		return "", fmt.Errorf("dir: %s is outside the directories this server may upload (%s); the operator widens them with opsbot mcp --root", dir, strings.Join(s.cfg.Roots, ", "))
	}
	st, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("dir: %w", err)
	}
	if !st.IsDir() {
		return "", fmt.Errorf("dir: %s is not a directory", dir)
	}
	tf, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
	tfJSON, _ := filepath.Glob(filepath.Join(dir, "*.tf.json"))
	if len(tf)+len(tfJSON) == 0 {
		return "", fmt.Errorf("dir: %s holds no Terraform configuration (no *.tf or *.tf.json file)", dir)
	}
	return dir, nil
}

// errIdle stops following a run that waits for a person.
var errIdle = errors.New("run is idle")

// waitRun returns the run once it is idle or d has passed, following it
// live (and reporting its states as progress when the client asked).
func (s *Server) waitRun(ctx context.Context, req *mcp.CallToolRequest, tenant, id string, d time.Duration) (*opsapitypes.Run, error) {
	run, err := s.api.Run(ctx, tenant, id)
	if err != nil || d == 0 || idle(run) {
		return run, s.apiErr(err)
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	step := 0.0
	err = s.api.Follow(wctx, tenant, id, 0, func(f opsapitypes.FollowFrame) error {
		if f.Run == nil {
			return nil
		}
		run = f.Run
		step++
		s.progress(ctx, req, step, fmt.Sprintf("run %s is %s", run.ID, run.State))
		if idle(run) {
			return errIdle
		}
		return nil
	})
	switch {
	case err == nil, errors.Is(err, errIdle):
		return run, nil
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case wctx.Err() != nil: // waited long enough: the run as it is now
		r, err := s.api.Run(ctx, tenant, id)
		return r, s.apiErr(err)
	}
	return nil, s.apiErr(err)
}

// progress notifies the client of a long call's progress, if it asked.
func (s *Server) progress(ctx context.Context, req *mcp.CallToolRequest, step float64, msg string) {
	if req == nil || req.Session == nil || req.Params == nil {
		return
	}
	tok := req.Params.GetProgressToken()
	if tok == nil {
		return
	}
	if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: step, Message: msg}); err != nil {
		s.log.Debug("cannot notify progress", "err", err)
	}
}
