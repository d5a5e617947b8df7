package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/metrics"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/policystore"
	"github.com/botehq/platform/runtime/runs"
)

// Workspaces reads a workspace (*runs.Manager).
type Workspaces interface {
	GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (runs.Workspace, error)
}

// CheckerConfig configures a Checker.
type CheckerConfig struct {
	Store      policystore.Store // required
	Workspaces Workspaces        // required
	// Timeout bounds one policy's evaluation (default 10 s); a policy
	// that takes longer fails with an error.
	Timeout time.Duration
	// MaxMemory bounds what one evaluation may allocate on the heap
	// (default 256 MiB); past it the evaluation is stopped and the
	// policy fails with an error. Rego builds strings and collections
	// that double with each line, and a policy that takes the server's
	// memory takes every tenant's runs with it.
	MaxMemory uint64
	Logger    *slog.Logger
	Now       func() time.Time
}

// Validate names the first bad field.
func (c CheckerConfig) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("policy config: Store is required")
	case c.Workspaces == nil:
		return errors.New("policy config: Workspaces is required")
	case c.Timeout < 0:
		return fmt.Errorf("policy config: Timeout %s must not be negative", c.Timeout)
	}
	return nil
}

// Checker evaluates the policies that apply to a run on its plan. It
// keeps compiled policies by the SHA-256 of their source.
type Checker struct {
	cfg CheckerConfig

	mu       sync.Mutex
	compiled map[string]*Compiled
}

// maxCompiled bounds the cache; past it, it starts over.
const maxCompiled = 512

// NewChecker returns a Checker.
func NewChecker(cfg CheckerConfig) (*Checker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = 256 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Checker{cfg: cfg, compiled: map[string]*Compiled{}}, nil
}

// Check evaluates the tenant's policies that apply to r's workspace on
// plan (the plan's JSON as the server keeps it, planrender.Keep; nil when
// there is none). It returns nil when no policy applies, and an error only
// when the policies or the workspace cannot be read (try again later): a
// policy that cannot be evaluated fails with its error in its result.
func (c *Checker) Check(ctx context.Context, r runs.Run, plan []byte) (*runs.PolicyCheck, error) {
	all, err := c.cfg.Store.List(ctx, r.Tenant)
	if err != nil {
		return nil, fmt.Errorf("cannot read the policies of tenant %s: %w", r.Tenant, err)
	}
	var apply []policystore.Policy
	for _, p := range all {
		if p.AppliesTo(r.Workspace) {
			apply = append(apply, p)
		}
	}
	if len(apply) == 0 {
		return nil, nil
	}
	ws, err := c.cfg.Workspaces.GetWorkspace(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return nil, fmt.Errorf("cannot read workspace %s/%s for its policies: %w", r.Tenant, r.Workspace, err)
	}
	out := &runs.PolicyCheck{At: c.cfg.Now().UTC()}
	input, inErr := Input(r, ws, plan)
	for _, p := range apply {
		res := runs.PolicyResult{Policy: p.Name, Version: p.Version, Workspace: p.Workspace, Enforcement: p.Enforcement}
		v, err := c.eval(ctx, p, input, inErr)
		if err != nil {
			res.Error = err.Error()
			c.cfg.Logger.WarnContext(ctx, "policy could not be evaluated", "tenant", r.Tenant, "run", r.ID, "policy", p.Name, "version", p.Version, "err", err)
		}
		res.Messages, res.Warnings = v.Deny, v.Warn
		res.Passed = err == nil && len(v.Deny) == 0
		out.Results = append(out.Results, res)
	}
	return out, nil
}

func (c *Checker) eval(ctx context.Context, p policystore.Policy, input ast.Value, inErr error) (Verdict, error) {
	if inErr != nil {
		return Verdict{}, inErr
	}
	comp, err := c.compile(ctx, p)
	if err != nil {
		return Verdict{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	done := make(chan struct{})
	defer close(done)
	go watchMemory(done, c.cfg.MaxMemory, stop)
	v, err := comp.Eval(ctx, input)
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errMemory) {
		return Verdict{}, fmt.Errorf("%w (%d MiB)", cause, c.cfg.MaxMemory>>20)
	}
	return v, err
}

var errMemory = errors.New("the policy's evaluation used more memory than a policy may")

// heapSample is the heap in use: live objects and those not yet freed.
const heapSample = "/memory/classes/heap/objects:bytes"

// watchMemory stops an evaluation (OPA checks its context between steps)
// when the heap has grown by more than limit since it began, until done.
// The heap is the process's: an evaluation running beside others may be
// stopped for their allocations, which the default's margin makes rare.
func watchMemory(done <-chan struct{}, limit uint64, stop context.CancelCauseFunc) {
	sample := []metrics.Sample{{Name: heapSample}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if used := sample[0].Value.Uint64(); used > base && used-base > limit {
			stop(errMemory)
			return
		}
	}
}

func (c *Checker) compile(ctx context.Context, p policystore.Policy) (*Compiled, error) {
	key := p.Name + "@" + p.SHA256
	c.mu.Lock()
	comp := c.compiled[key]
	c.mu.Unlock()
	if comp != nil {
		return comp, nil
	}
	comp, err := Compile(ctx, p.Name, p.Source)
	if err != nil {
		return nil, err // stored policies compiled at upload; only an OPA upgrade gets here
	}
	c.mu.Lock()
	if len(c.compiled) >= maxCompiled {
		clear(c.compiled)
	}
	c.compiled[key] = comp
	c.mu.Unlock()
	return comp, nil
}

// Input is what a policy sees as input (docs/policy.md):
//
//	plan:      the plan's JSON as the server keeps it (terraform show -json,
//	           sensitive values masked; resource_changes, resource_drift,
//	           output_changes)
//	run:       id, operation (apply, destroy), created_by, refresh_only,
//	           targets, replace
//	workspace: tenant, name, labels (its agent labels)
//
// A run without plan JSON (over runproto.MaxPlanBytes) cannot be checked:
// Input returns an error, which fails every policy that applies.
func Input(r runs.Run, ws runs.Workspace, plan []byte) (ast.Value, error) {
	if len(plan) == 0 {
		return nil, errors.New("the plan's JSON is not available (larger than the server keeps, or not reported by the agent), so the policy cannot check it")
	}
	p, err := ast.ValueFromReader(bytes.NewReader(plan))
	if err != nil {
		return nil, fmt.Errorf("cannot read the plan's JSON: %w", err)
	}
	labels := map[string]any{}
	for k, v := range ws.AgentLabels {
		labels[k] = v
	}
	strs := func(ss []string) []any {
		out := make([]any, len(ss))
		for i, s := range ss {
			out[i] = s
		}
		return out
	}
	rest, err := ast.InterfaceToValue(map[string]any{
		"run": map[string]any{
			"id": r.ID, "operation": string(r.Operation), "created_by": r.CreatedBy,
			"refresh_only": r.PlanOptions.RefreshOnly, "targets": strs(r.PlanOptions.Targets), "replace": strs(r.PlanOptions.Replace),
		},
		"workspace": map[string]any{"tenant": ws.Tenant, "name": ws.Name, "labels": labels},
	})
	if err != nil {
		return nil, err
	}
	obj := rest.(ast.Object)
	obj.Insert(ast.StringTerm("plan"), ast.NewTerm(p))
	return obj, nil
}
