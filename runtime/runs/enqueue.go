package runs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runspec"
)

// EnqueueRequest asks for a new run.
type EnqueueRequest struct {
	Tenant    ids.TenantID
	Workspace ids.WorkspaceID
	// ID is the run's id when the caller allocated it (NewRunID) to upload
	// the bundle under it first, at most 30 minutes ago; empty means
	// allocate one now.
	ID        string
	Operation Operation
	// Bundle is the uploaded configuration (package artifacts); its blob
	// must lie under "<tenant>/<workspace>/".
	Bundle    *Artifact
	Message   string
	CreatedBy string
	// CreatedByID identifies the principal stably (see Run.CreatedByID);
	// empty means CreatedBy.
	CreatedByID string
	// PlanOptions are the plan's -target, -replace and -refresh-only.
	PlanOptions runspec.PlanOptions
	// DriftCheck marks a scheduled refresh-only check (see Run.DriftCheck).
	DriftCheck bool
}

// checkArtifact refuses a reference to another tenant's or workspace's
// blob, so nobody can make an agent fetch what is not theirs.
func checkArtifact(what string, c *Artifact, tenant ids.TenantID, workspace ids.WorkspaceID) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	if !strings.HasPrefix(c.Blob, string(tenant)+"/"+string(workspace)+"/") || strings.Contains(c.Blob, "..") {
		return fmt.Errorf("%w: %s %s is not an artifact of workspace %s/%s", ErrInvalid, what, c.Blob, tenant, workspace)
	}
	return nil
}

// Enqueued is a new run and, when it cannot start at once, why.
type Enqueued struct {
	Run Run
	// Waiting says what the run waits for ("" when it can be claimed now).
	Waiting string
}

// Enqueue adds a run to the end of its workspace's queue.
func (m *Manager) Enqueue(ctx context.Context, req EnqueueRequest) (Enqueued, error) {
	switch {
	case !req.Operation.Valid():
		return Enqueued{}, fmt.Errorf("%w: operation %q must be %q or %q", ErrInvalid, req.Operation, OpApply, OpDestroy)
	case req.Bundle == nil:
		return Enqueued{}, fmt.Errorf("%w: bundle is required", ErrInvalid)
	case len(req.Message) > 1024:
		return Enqueued{}, fmt.Errorf("%w: message is longer than 1024 characters", ErrInvalid)
	}
	if err := req.PlanOptions.Validate(req.Operation == OpDestroy); err != nil {
		return Enqueued{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if req.ID != "" {
		at, ok := runIDTime(req.ID)
		switch {
		case !ok:
			return Enqueued{}, fmt.Errorf("%w: run id %q is malformed", ErrInvalid, req.ID)
		case m.clock().Sub(at) > maxIDAge:
			return Enqueued{}, fmt.Errorf("%w: run id %s was allocated %s ago, more than %s: allocate it right before the upload", ErrInvalid, req.ID, m.clock().Sub(at).Round(time.Second), maxIDAge)
		}
	}
	if err := checkArtifact("bundle", req.Bundle, req.Tenant, req.Workspace); err != nil {
		return Enqueued{}, err
	}
	if _, err := m.store.GetWorkspace(ctx, req.Tenant, req.Workspace); err != nil {
		return Enqueued{}, fmt.Errorf("cannot enqueue run: %w", err)
	}
	now := m.clock()
	if req.ID == "" {
		req.ID = NewRunID(now)
	}
	if req.CreatedByID == "" {
		req.CreatedByID = req.CreatedBy
	}
	b := *req.Bundle
	r := Run{
		ID: req.ID, Tenant: req.Tenant, Workspace: req.Workspace, Operation: req.Operation,
		State: Queued, Message: req.Message, CreatedBy: req.CreatedBy, CreatedByID: req.CreatedByID, CreatedAt: now, UpdatedAt: now,
		Bundle: &b, PlanOptions: req.PlanOptions, DriftCheck: req.DriftCheck,
		History: []Transition{{To: Queued, At: now, By: req.CreatedBy, Reason: "run created"}},
	}
	if err := m.store.Commit(ctx, Commit{Tenant: r.Tenant, Workspace: r.Workspace, Runs: []Run{r}}); err != nil {
		return Enqueued{}, fmt.Errorf("cannot enqueue run in %s/%s: %w", r.Tenant, r.Workspace, err)
	}
	waiting, err := m.Waiting(ctx, r)
	if err != nil { // the run is queued all the same
		m.log.WarnContext(ctx, "cannot tell why a run waits", "run", r.ID, "err", err)
	}
	m.changed(ctx, "run queued", r, "operation", r.Operation, "waiting", waiting)
	return Enqueued{Run: r, Waiting: waiting}, nil
}

// Waiting explains why a runnable run is not being worked on: another run
// holds the workspace, runs are ahead of it, or no agent can take it. It
// returns "" when an agent could claim the run now, and for runs that are
// not waiting for an agent.
func (m *Manager) Waiting(ctx context.Context, r Run) (string, error) {
	why, err := m.waiting(ctx, r)
	if why == "" || err != nil {
		return why, err
	}
	// An agent may have claimed r since it was read (Enqueue asks right
	// after the commit): then it is busy with r itself, and r waits for
	// nothing.
	now, err := m.store.GetRun(ctx, r.Tenant, r.ID)
	if err != nil {
		return "", err
	}
	if now.State != r.State {
		return "", nil
	}
	return why, nil
}

func (m *Manager) waiting(ctx context.Context, r Run) (string, error) {
	if !r.State.Runnable() {
		return "", nil
	}
	if r.State == Queued {
		lock, err := m.store.GetLock(ctx, r.Tenant, r.Workspace)
		if err != nil {
			return "", err
		}
		queued, err := m.store.ListRuns(ctx, r.Tenant, r.Workspace, RunQuery{States: []State{Queued}, From: queueFloor(lock.Started)})
		if err != nil {
			return "", err
		}
		ahead := 0
		for _, q := range queued {
			if q.ID < r.ID {
				ahead++
			}
		}
		switch {
		case lock.Held() && ahead > 0:
			return fmt.Sprintf("workspace %s is busy with run %s; %d run(s) ahead in its queue", r.Workspace, lock.Run, ahead), nil
		case lock.Held():
			return fmt.Sprintf("workspace %s is busy with run %s", r.Workspace, lock.Run), nil
		case ahead > 0:
			return fmt.Sprintf("%d run(s) ahead in the queue of workspace %s", ahead, r.Workspace), nil
		}
	}
	w, err := m.store.GetWorkspace(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return "", err
	}
	fit, err := m.fit(ctx, w)
	if err != nil {
		return "", err
	}
	switch {
	case fit.online == 0:
		return fmt.Sprintf("no agent of tenant %s is online", r.Tenant), nil
	case fit.labelled == 0:
		return fmt.Sprintf("none of the %d online agent(s) of tenant %s has the labels %s", fit.online, r.Tenant, formatLabels(w.AgentLabels)), nil
	case fit.versioned == 0:
		return fmt.Sprintf("no online agent of tenant %s has a terraform meeting %q, the version workspace %s requires (they run %s)",
			r.Tenant, w.TerraformVersion, w.Name, strings.Join(fit.versions, ", ")), nil
	case fit.matching == 0:
		return fmt.Sprintf("none of the %d online agent(s) of tenant %s that could run workspace %s applies its provider sources (they are older; upgrade them, or remove the workspace's provider sources)",
			fit.versioned, r.Tenant, w.Name), nil
	case len(fit.free) == 0:
		return fmt.Sprintf("all %d agent(s) that can run it are busy", fit.matching), nil
	}
	return "", nil
}

// agentFit is how a tenant's agents fit a workspace.
type agentFit struct {
	// labelled agents have the workspace's labels; versioned ones also its
	// terraform version; matching ones also apply its provider sources;
	// versions are the labelled agents' terraform versions.
	online, labelled, versioned, matching int
	versions                              []string
	// free are the online agents with the workspace's labels and spare
	// capacity, least loaded first, then most recently seen.
	free []Agent
}

func (m *Manager) fit(ctx context.Context, w Workspace) (agentFit, error) {
	agents, err := m.store.ListAgents(ctx, w.Tenant)
	if err != nil {
		return agentFit{}, err
	}
	locks, err := m.store.ListLocks(ctx, LockQuery{Tenant: w.Tenant})
	if err != nil {
		return agentFit{}, err
	}
	busy := map[string]int{}
	for _, l := range locks {
		busy[l.Agent]++
	}
	var f agentFit
	for _, a := range agents {
		a, ok := m.admit(a)
		if !ok || !m.Online(a) {
			continue
		}
		f.online++
		if a.Matches(w.AgentLabels) {
			f.labelled++
			if v := cmp.Or(a.TerraformVersion, "an unknown version"); !slices.Contains(f.versions, v) {
				f.versions = append(f.versions, v)
			}
			if w.TerraformAccepts(a.TerraformVersion) {
				f.versioned++
			}
		}
		if w.Runs(a) {
			f.matching++
			if busy[a.ID] < a.Capacity && !a.Draining {
				f.free = append(f.free, a)
			}
		}
	}
	load := func(a Agent) float64 { return float64(busy[a.ID]) / float64(a.Capacity) }
	sort.SliceStable(f.free, func(i, j int) bool {
		if li, lj := load(f.free[i]), load(f.free[j]); li != lj {
			return li < lj
		}
		return f.free[i].LastHeartbeat.After(f.free[j].LastHeartbeat)
	})
	return f, nil
}

// Dispatch claims a workspace's next run for the best agent that can take
// it (online, with the workspace's labels, least loaded): what the server
// does when a run is queued or approved, or a workspace or an agent frees
// up. The returned run names its agent; send it there. ErrNothingToClaim
// means there is no run to start, ErrAgentUnavailable that no agent can
// take it now (Waiting says why).
func (m *Manager) Dispatch(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (Run, error) {
	w, err := m.store.GetWorkspace(ctx, tenant, workspace)
	if err != nil {
		return Run{}, fmt.Errorf("cannot dispatch in workspace %s/%s: %w", tenant, workspace, err)
	}
	fit, err := m.fit(ctx, w)
	if err != nil {
		return Run{}, err
	}
	for _, a := range fit.free {
		r, err := m.claim(ctx, a, workspace)
		if errors.Is(err, ErrAgentUnavailable) {
			continue
		}
		return r, err
	}
	return Run{}, fmt.Errorf("%w: no agent of tenant %s can take a run of workspace %s now", ErrAgentUnavailable, tenant, workspace)
}

func formatLabels(l map[string]string) string {
	parts := make([]string, 0, len(l))
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, ",")
}
