package runs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/tfrun"
)

// Errors of the lifecycle that callers branch on.
var (
	// ErrNothingToClaim: the workspace (or tenant) has no run an agent may
	// start now.
	ErrNothingToClaim = errors.New("nothing to claim")
	// ErrNotAssigned: an agent reported on a run it is not working on.
	ErrNotAssigned = errors.New("run is not assigned to this agent")
	// ErrAgentUnavailable: the agent is silent, at capacity, or its labels
	// do not match the workspace.
	ErrAgentUnavailable = errors.New("agent unavailable")
	// ErrInvalid: a request is malformed.
	ErrInvalid = errors.New("invalid request")
	// ErrFourEyes: the workspace needs a second person to approve, and
	// the approver is who queued the run.
	ErrFourEyes = errors.New("four-eyes approval required")
)

// Defaults for Config.
const (
	DefaultSilentAfter = 60 * time.Second
	conflictRetries    = 8
)

// Config configures a Manager.
type Config struct {
	Store Store
	// Roster says which connectors are agents of a tenant and which
	// labels each may serve (Unrestricted only in tests). Required.
	Roster Roster
	// SilentAfter is how long an agent may go without a heartbeat before
	// its runs fail and its locks are released (default DefaultSilentAfter).
	SilentAfter time.Duration
	// Now is the clock (default time.Now).
	Now    func() time.Time
	Logger *slog.Logger
	// OnChange, if set, is called with every run this Manager stored a
	// change of (created, claimed, reported, approved, cancelled, swept),
	// after the write. It must not block: hand the run to followers and
	// dispatch. Changes made by other replicas are not seen here.
	OnChange func(Run)
	// OnTransition, if set, is called after the write with every
	// transition this Manager stored (the audit log), in order. It runs
	// before OnChange, in the goroutine that made the change, with its ctx.
	OnTransition func(ctx context.Context, r Run, t Transition)
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Store == nil:
		return errors.New("runs config: Store is required")
	case c.Roster == nil:
		return errors.New("runs config: Roster is required (the connector registry's agents)")
	case c.SilentAfter < 0:
		return fmt.Errorf("runs config: SilentAfter %s is negative", c.SilentAfter)
	}
	return nil
}

// Manager applies the run lifecycle to a Store. Several Managers (one per
// relayserver replica) may share one Store: every change is a conditional
// write, so two replicas never start one run or one workspace twice.
type Manager struct {
	store    Store
	roster   Roster
	silent   time.Duration
	now      func() time.Time
	log      *slog.Logger
	onChange func(Run)
	onMove   func(context.Context, Run, Transition)
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{store: cfg.Store, roster: cfg.Roster, silent: cfg.SilentAfter, now: cfg.Now, log: cfg.Logger, onChange: cfg.OnChange, onMove: cfg.OnTransition}
	if m.silent == 0 {
		m.silent = DefaultSilentAfter
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	return m, nil
}

func (m *Manager) clock() time.Time { return m.now().UTC() }

// changed logs a stored change of r and tells Config.OnTransition and
// Config.OnChange.
func (m *Manager) changed(ctx context.Context, msg string, r Run, attrs ...any) {
	m.log.InfoContext(ctx, msg, append([]any{"tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "state", r.State}, attrs...)...)
	if m.onMove != nil {
		for _, t := range newTransitions(r) {
			m.onMove(ctx, r, t)
		}
	}
	if m.onChange != nil {
		m.onChange(r)
	}
}

// newTransitions are the transitions of r's latest change. Every change
// moves a run with one clock reading, which becomes UpdatedAt, so they are
// the trailing transitions at UpdatedAt; a change without a move (a cancel
// request) set a later UpdatedAt and has none. (A frozen test clock may
// report a move twice; the lifecycle never repeats a from → to pair in one
// run, which is what the audit log deduplicates on.)
func newTransitions(r Run) []Transition {
	i := len(r.History)
	for i > 0 && r.History[i-1].At.Equal(r.UpdatedAt) {
		i--
	}
	return r.History[i:]
}

// retry runs f again while it loses an optimistic-concurrency race.
func retry[T any](ctx context.Context, f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range conflictRetries {
		if v, err = f(); !errors.Is(err, ErrConflict) {
			return v, err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return v, err
}

// CreateTenant stores a new tenant.
func (m *Manager) CreateTenant(ctx context.Context, t Tenant) (Tenant, error) {
	if err := t.Validate(); err != nil {
		return Tenant{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	t.CreatedAt = m.clock()
	if err := m.store.CreateTenant(ctx, t); err != nil {
		return Tenant{}, fmt.Errorf("cannot create tenant %s: %w", t.ID, err)
	}
	return t, nil
}

// GetTenant returns a tenant: ErrNotFound if there is none, ErrInvalid if
// id cannot name one.
func (m *Manager) GetTenant(ctx context.Context, id string) (Tenant, error) {
	if err := CheckScope(id, ""); err != nil {
		return Tenant{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return m.store.GetTenant(ctx, id)
}

// CreateWorkspace stores a new workspace of an existing tenant.
func (m *Manager) CreateWorkspace(ctx context.Context, w Workspace) (Workspace, error) {
	if err := w.Validate(); err != nil {
		return Workspace{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := m.store.GetTenant(ctx, w.Tenant); err != nil {
		return Workspace{}, fmt.Errorf("cannot create workspace %s: %w", w.Name, err)
	}
	w.AgentLabels = cloneLabels(w.AgentLabels)
	w.CreatedAt, w.ETag = m.clock(), ""
	if err := m.store.CreateWorkspace(ctx, w); err != nil {
		return Workspace{}, fmt.Errorf("cannot create workspace %s/%s: %w", w.Tenant, w.Name, err)
	}
	return w, nil
}

// UpdateWorkspace changes a workspace's description, agent labels and
// options; runs already started keep the deadlines they got.
func (m *Manager) UpdateWorkspace(ctx context.Context, tenant, name string, change func(*Workspace)) (Workspace, error) {
	return retry(ctx, func() (Workspace, error) {
		w, err := m.store.GetWorkspace(ctx, tenant, name)
		if err != nil {
			return Workspace{}, fmt.Errorf("cannot update workspace %s/%s: %w", tenant, name, err)
		}
		change(&w)
		w.Tenant, w.Name = tenant, name
		if err := w.Validate(); err != nil {
			return Workspace{}, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		if err := m.store.UpdateWorkspace(ctx, w); err != nil {
			return Workspace{}, fmt.Errorf("cannot update workspace %s/%s: %w", tenant, name, err)
		}
		return m.store.GetWorkspace(ctx, tenant, name)
	})
}

// GetWorkspace returns one workspace of tenant.
func (m *Manager) GetWorkspace(ctx context.Context, tenant, name string) (Workspace, error) {
	return m.store.GetWorkspace(ctx, tenant, name)
}

// ListWorkspaces returns tenant's workspaces by name.
func (m *Manager) ListWorkspaces(ctx context.Context, tenant string) ([]Workspace, error) {
	return m.store.ListWorkspaces(ctx, tenant)
}

// GetRun returns one run of tenant.
func (m *Manager) GetRun(ctx context.Context, tenant, id string) (Run, error) {
	return m.store.GetRun(ctx, tenant, id)
}

// ListRuns returns tenant's runs oldest first: one workspace's, or every
// workspace's when workspace is "". States filter when given.
func (m *Manager) ListRuns(ctx context.Context, tenant, workspace string, states ...State) ([]Run, error) {
	if workspace != "" {
		return m.store.ListRuns(ctx, tenant, workspace, RunQuery{States: states})
	}
	wss, err := m.store.ListWorkspaces(ctx, tenant)
	if err != nil {
		return nil, err
	}
	var all []Run
	for _, w := range wss {
		rs, err := m.store.ListRuns(ctx, tenant, w.Name, RunQuery{States: states})
		if err != nil {
			return nil, err
		}
		all = append(all, rs...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	return all, nil
}

// ListLocks returns the held workspace locks of tenant.
func (m *Manager) ListLocks(ctx context.Context, tenant string) ([]Lock, error) {
	if err := CheckScope(tenant, ""); err != nil {
		return nil, err
	}
	return m.store.ListLocks(ctx, LockQuery{Tenant: tenant})
}

// ListAgents returns tenant's agents.
func (m *Manager) ListAgents(ctx context.Context, tenant string) ([]Agent, error) {
	return m.store.ListAgents(ctx, tenant)
}

// Online reports whether a has heartbeated recently enough to get work.
func (m *Manager) Online(a Agent) bool {
	return !a.Silent && m.clock().Sub(a.LastHeartbeat) < m.silent
}

// EnqueueRequest asks for a new run.
type EnqueueRequest struct {
	Tenant, Workspace string
	// ID is the run's id when the caller allocated it (NewRunID) to upload
	// the bundle under it first, at most 30 minutes ago; empty means
	// allocate one now.
	ID        string
	Operation Operation
	// Bundle is the uploaded configuration (package artifacts); its blob
	// must lie under "<tenant>/<workspace>/".
	Bundle    *envelope.Claim
	Message   string
	CreatedBy string
	// CreatedByID identifies the principal stably (see Run.CreatedByID);
	// empty means CreatedBy.
	CreatedByID string
	// PlanOptions are the plan's -target, -replace and -refresh-only.
	PlanOptions tfrun.PlanOptions
}

// checkArtifact refuses a reference to another tenant's or workspace's
// blob, so nobody can make an agent fetch what is not theirs.
func checkArtifact(what string, c *envelope.Claim, tenant, workspace string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, what, err)
	}
	if !strings.HasPrefix(c.Blob, tenant+"/"+workspace+"/") || strings.Contains(c.Blob, "..") {
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
	b.URL, b.URLExpiresAt = "", time.Time{} // signed links are per use, never stored
	r := Run{
		ID: req.ID, Tenant: req.Tenant, Workspace: req.Workspace, Operation: req.Operation,
		State: Queued, Message: req.Message, CreatedBy: req.CreatedBy, CreatedByID: req.CreatedByID, CreatedAt: now, UpdatedAt: now,
		Bundle: &b, PlanOptions: req.PlanOptions,
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
	case fit.matching == 0:
		return fmt.Sprintf("no online agent of tenant %s has a terraform meeting %q, the version workspace %s requires (they run %s)",
			r.Tenant, w.TerraformVersion, w.Name, strings.Join(fit.versions, ", ")), nil
	case len(fit.free) == 0:
		return fmt.Sprintf("all %d agent(s) that can run it are busy", fit.matching), nil
	}
	return "", nil
}

// agentFit is how a tenant's agents fit a workspace.
type agentFit struct {
	// labelled agents have the workspace's labels; matching ones also its
	// terraform version; versions are the labelled agents' versions.
	online, labelled, matching int
	versions                   []string
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
func (m *Manager) Dispatch(ctx context.Context, tenant, workspace string) (Run, error) {
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

// ClaimRequest asks for the next runnable run of a workspace for an agent.
type ClaimRequest struct {
	Tenant, Workspace, Agent string
}

// Claim atomically gives an agent the next run of a workspace: the
// approved run holding the workspace (its apply), or else, when the
// workspace is free, its oldest queued run (its plan). The run's state and
// the workspace lock change in one conditional write, so of two callers
// racing for one workspace exactly one wins; the other gets
// ErrNothingToClaim.
func (m *Manager) Claim(ctx context.Context, req ClaimRequest) (Run, error) {
	agent, err := m.availableAgent(ctx, req.Tenant, req.Agent)
	if err != nil {
		return Run{}, err
	}
	return m.claim(ctx, agent, req.Workspace)
}

// ClaimNext gives an agent the next run of any workspace of its tenant that
// it may work on, trying workspaces by name. ErrNothingToClaim means there
// is none.
func (m *Manager) ClaimNext(ctx context.Context, tenant, agentID string) (Run, error) {
	agent, err := m.availableAgent(ctx, tenant, agentID)
	if err != nil {
		return Run{}, err
	}
	wss, err := m.store.ListWorkspaces(ctx, tenant)
	if err != nil {
		return Run{}, fmt.Errorf("cannot list workspaces of %s: %w", tenant, err)
	}
	for _, w := range wss {
		if !w.Runs(agent) {
			continue
		}
		r, err := m.claim(ctx, agent, w.Name)
		if errors.Is(err, ErrNothingToClaim) {
			continue
		}
		return r, err
	}
	return Run{}, fmt.Errorf("%w for agent %s/%s", ErrNothingToClaim, tenant, agentID)
}

// availableAgent returns the agent if it is online and below capacity.
func (m *Manager) availableAgent(ctx context.Context, tenant, id string) (Agent, error) {
	a, err := m.store.GetAgent(ctx, tenant, id)
	if err != nil {
		return Agent{}, fmt.Errorf("cannot claim for agent %s/%s: %w", tenant, id, err)
	}
	if !m.Online(a) {
		return Agent{}, fmt.Errorf("%w: agent %s/%s is silent since %s", ErrAgentUnavailable, tenant, id, a.LastHeartbeat.Format(time.RFC3339))
	}
	held, err := m.store.ListLocks(ctx, LockQuery{Tenant: tenant, Agent: id})
	if err != nil {
		return Agent{}, fmt.Errorf("cannot count runs of agent %s/%s: %w", tenant, id, err)
	}
	if a.Draining {
		return Agent{}, fmt.Errorf("%w: agent %s/%s is shutting down", ErrAgentUnavailable, tenant, id)
	}
	if len(held) >= a.Capacity {
		return Agent{}, fmt.Errorf("%w: agent %s/%s runs %d of %d", ErrAgentUnavailable, tenant, id, len(held), a.Capacity)
	}
	return a, nil
}

func (m *Manager) claim(ctx context.Context, agent Agent, workspace string) (Run, error) {
	admitted, ok := m.admit(agent)
	if !ok {
		return Run{}, fmt.Errorf("%w: %w: %s/%s", ErrAgentUnavailable, ErrNotAgent, agent.Tenant, agent.ID)
	}
	agent = admitted
	w, err := m.store.GetWorkspace(ctx, agent.Tenant, workspace)
	if err != nil {
		return Run{}, fmt.Errorf("cannot claim in workspace %s/%s: %w", agent.Tenant, workspace, err)
	}
	if !agent.Matches(w.AgentLabels) {
		return Run{}, fmt.Errorf("%w: agent %s lacks the labels %s of workspace %s", ErrAgentUnavailable, agent.ID, formatLabels(w.AgentLabels), w.Name)
	}
	if !w.TerraformAccepts(agent.TerraformVersion) {
		return Run{}, fmt.Errorf("%w: agent %s runs terraform %s, workspace %s requires %q", ErrAgentUnavailable, agent.ID, cmp.Or(agent.TerraformVersion, "of an unknown version"), w.Name, w.TerraformVersion)
	}
	var attempted string // the run an earlier attempt tried to claim
	return retry(ctx, func() (Run, error) {
		lock, err := m.store.GetLock(ctx, w.Tenant, w.Name)
		if err != nil {
			return Run{}, err
		}
		var r Run
		if attempted != "" && lock.Run == attempted && lock.Agent == agent.ID {
			// The earlier attempt landed although its answer was lost.
			if r, err = m.store.GetRun(ctx, w.Tenant, attempted); err == nil && r.Agent == agent.ID && r.State.Executing() {
				m.changed(ctx, "run claimed", r, "agent", agent.ID)
				return r, nil
			}
		}
		if lock.Held() {
			holder, err := m.store.GetRun(ctx, w.Tenant, lock.Run)
			switch {
			case errors.Is(err, ErrNotFound) || err == nil && !holder.State.HoldsLock():
				// Unreachable while every lock change commits with its run;
				// repair rather than block the workspace for good.
				m.log.WarnContext(ctx, "releasing a lock its run does not hold", "tenant", w.Tenant, "workspace", w.Name, "run", lock.Run, "state", holder.State)
				lock.Run, lock.Agent = "", ""
			case err != nil:
				return Run{}, err
			case lock.Agent != "":
				return Run{}, fmt.Errorf("%w: workspace %s is busy with run %s on agent %s", ErrNothingToClaim, w.Name, lock.Run, lock.Agent)
			case holder.State != Approved:
				return Run{}, fmt.Errorf("%w: workspace %s waits for run %s (%s)", ErrNothingToClaim, w.Name, holder.ID, holder.State)
			default:
				r = holder
			}
		}
		if !lock.Held() {
			queued, err := m.store.ListRuns(ctx, w.Tenant, w.Name, RunQuery{States: []State{Queued}, From: queueFloor(lock.Started)})
			if err != nil {
				return Run{}, err
			}
			if len(queued) == 0 {
				return Run{}, fmt.Errorf("%w: workspace %s has no queued run", ErrNothingToClaim, w.Name)
			}
			r = queued[0]
		}
		to := Planning
		if r.State == Approved {
			to = Applying
		}
		now := m.clock()
		if err := r.move(to, now, agent.ID, "claimed by agent "+agent.ID, w.Options); err != nil {
			return Run{}, err
		}
		r.Agent = agent.ID
		if to == Planning {
			r.PlanAgent = agent.ID
		} else {
			r.ApplyAgent = agent.ID
		}
		if !lock.Held() {
			lock.Since = now
		}
		if to == Planning && r.ID > lock.Started {
			lock.Started = r.ID
		}
		lock.Tenant, lock.Workspace, lock.Run, lock.Agent, lock.Deadline = w.Tenant, w.Name, r.ID, agent.ID, r.Deadline
		attempted = r.ID
		if err := m.store.Commit(ctx, Commit{Tenant: w.Tenant, Workspace: w.Name, Runs: []Run{r}, Lock: &lock}); err != nil {
			return Run{}, err
		}
		m.changed(ctx, "run claimed", r, "agent", agent.ID)
		return r, nil
	})
}

// Report is an agent's account of the phase it ran.
type Report struct {
	Tenant, Run, Agent string
	// Claim is the claim the report belongs to (Run.Claim, the agent's
	// claim token); a report of any other claim is ErrNotAssigned, even
	// from the same agent. 0: the server's own report, not checked.
	Claim int
	// State is the phase's outcome: Planned (NoChanges is derived from
	// Result.HasChanges), Applied, Failed or Cancelled.
	State  State
	Reason string
	Result *tfrun.Result
	// Plan is the saved plan and working directory, required for a plan
	// with changes.
	Plan *envelope.Claim
	// PlanJSON is the plan's JSON (planrender.Keep) of a plan phase, if
	// the agent reported it.
	PlanJSON *envelope.Claim
}

// Report records the end of a phase. A plan with changes becomes Planned
// (and Approved at once when the workspace auto-applies), one without
// changes ends NoChanges; every final state releases the workspace.
func (m *Manager) Report(ctx context.Context, rep Report) (Run, error) {
	switch rep.State {
	case Planned, Applied, Failed, Cancelled:
	default:
		return Run{}, fmt.Errorf("%w: an agent reports planned, applied, failed or cancelled, not %q", ErrInvalid, rep.State)
	}
	attempted := false // whether an earlier try of this call wrote
	return retry(ctx, func() (Run, error) {
		r, err := m.store.GetRun(ctx, rep.Tenant, rep.Run)
		if err != nil {
			return Run{}, fmt.Errorf("cannot record report on run %s: %w", rep.Run, err)
		}
		to := rep.State
		if to == Planned && rep.Result != nil && !rep.Result.HasChanges {
			to = NoChanges
		}
		if reported(r, rep.Agent, to) {
			if attempted { // this call's earlier write landed, its answer was lost
				m.changed(ctx, "run phase ended", r, "agent", rep.Agent, "reason", r.LastReason())
			}
			return r, nil // a redelivered report: already recorded
		}
		if rep.Claim != 0 && rep.Claim != r.Claim() {
			return Run{}, fmt.Errorf("%w: run %s is at claim %d, the report is of claim %d", ErrNotAssigned, r.ID, r.Claim(), rep.Claim)
		}
		from := r.State
		if r.SettledBy(rep.Agent) {
			from = Applying // the lost agent's result settles the run
		} else if r.Agent != rep.Agent || !r.State.Executing() {
			return Run{}, fmt.Errorf("%w: run %s is %s on agent %q, not on %q", ErrNotAssigned, r.ID, r.State, r.Agent, rep.Agent)
		}
		w, err := m.store.GetWorkspace(ctx, r.Tenant, r.Workspace)
		if err != nil {
			return Run{}, err
		}
		if to == Planned && rep.Plan == nil {
			return Run{}, fmt.Errorf("%w: a plan with changes needs its saved plan artifact", ErrInvalid)
		}
		if to == Planned {
			if err := checkArtifact("plan", rep.Plan, r.Tenant, r.Workspace); err != nil {
				return Run{}, err
			}
		}
		if rep.PlanJSON != nil {
			if err := checkArtifact("plan JSON", rep.PlanJSON, r.Tenant, r.Workspace); err != nil {
				return Run{}, err
			}
		}
		reason := reportReason(from, to, rep)
		if to == Planned && r.CancelRequested {
			// The plan finished before the agent heard of the cancel. Ending
			// it planned would leave the run waiting for an approval nobody
			// will give, holding the workspace: the cancel wins.
			to, reason = Cancelled, "the plan finished before the agent stopped"
		}
		if to == Cancelled && r.CancelReason != "" {
			reason = r.CancelReason + "; " + reason
		}
		now := m.clock()
		if err := r.move(to, now, rep.Agent, reason, w.Options); err != nil {
			return Run{}, err
		}
		if r.History[len(r.History)-1].From == Planning && rep.PlanJSON != nil && (to == Planned || to == NoChanges) {
			p := *rep.PlanJSON
			p.URL, p.URLExpiresAt = "", time.Time{}
			r.PlanJSON = &p
		}
		if rep.Result != nil {
			res := boundResult(*rep.Result)
			if r.History[len(r.History)-1].From == Planning {
				r.PlanResult = &res
			} else {
				r.ApplyResult = &res
			}
		}
		if to == Planned {
			p := *rep.Plan
			p.URL, p.URLExpiresAt = "", time.Time{}
			r.Plan = &p
			if w.Options.AutoApply {
				if err := r.move(Approved, now, "auto-apply", "workspace "+w.Name+" applies automatically", w.Options); err != nil {
					return Run{}, err
				}
			}
		}
		attempted = true
		if err := m.commitWithLock(ctx, r); err != nil {
			return Run{}, err
		}
		m.changed(ctx, "run phase ended", r, "agent", rep.Agent, "reason", reason)
		return r, nil
	})
}

// reported reports whether agent's report ending a phase in state to is
// already r's latest phase end (at most an auto-approval after it), so a
// report the gateway delivers twice is recorded once.
func reported(r Run, agent string, to State) bool {
	for i := len(r.History) - 1; i >= 0 && i >= len(r.History)-2; i-- {
		h := r.History[i]
		if h.From.Executing() {
			return h.By == agent && h.To == to
		}
	}
	return false
}

// reportReason is the recorded reason of a phase's end: the agent's, or
// one derived from its result.
func reportReason(from, to State, rep Report) string {
	if rep.Reason != "" {
		return rep.Reason
	}
	var changes string
	if res := rep.Result; res != nil && res.Changes != nil {
		changes = fmt.Sprintf(": %d to add, %d to change, %d to destroy", res.Changes.Add, res.Changes.Change, res.Changes.Remove)
	}
	switch to {
	case Planned:
		return "plan saved" + changes
	case NoChanges:
		return "plan has no changes"
	case Applied:
		return "apply complete" + changes
	case Cancelled:
		return "agent stopped " + string(from)
	}
	if res := rep.Result; res != nil {
		for _, d := range res.Diagnostics {
			if d.Severity == "error" {
				return string(from) + " failed: " + d.Summary
			}
		}
	}
	return string(from) + " failed"
}

// commitWithLock writes r and brings the workspace lock in line with it:
// released when r ended, no agent between phases.
func (m *Manager) commitWithLock(ctx context.Context, r Run) error {
	lock, err := m.store.GetLock(ctx, r.Tenant, r.Workspace)
	if err != nil {
		return err
	}
	c := Commit{Tenant: r.Tenant, Workspace: r.Workspace, Runs: []Run{r}}
	if lock.Run == r.ID {
		if r.State.HoldsLock() {
			lock.Agent, lock.Deadline = r.Agent, r.Deadline
		} else {
			lock.Run, lock.Agent, lock.Since, lock.Deadline = "", "", time.Time{}, time.Time{}
		}
		c.Lock = &lock
	} else if r.State.HoldsLock() {
		// Unreachable while runs only take locks through claim; refuse
		// rather than run unlocked.
		return fmt.Errorf("run %s is %s but the workspace lock is held by %q", r.ID, r.State, lock.Run)
	}
	return m.store.Commit(ctx, c)
}

// Approve confirms a planned run so an agent applies its saved plan. by
// names the approver for people; it is also the stable id ApproveAs
// compares.
func (m *Manager) Approve(ctx context.Context, tenant, runID, by string) (Run, error) {
	return m.ApproveAs(ctx, tenant, runID, by, by)
}

// ApproveAs is Approve by a principal named by (for people) with the
// stable id byID. In a workspace with FourEyes, the principal that queued
// the run cannot approve it (ErrFourEyes).
func (m *Manager) ApproveAs(ctx context.Context, tenant, runID, by, byID string) (Run, error) {
	return m.change(ctx, tenant, runID, func(r *Run, w Workspace) error {
		if r.State == Planned && r.Plan == nil {
			return fmt.Errorf("%w: run %s has no saved plan", ErrInvalid, r.ID)
		}
		queuedBy := cmp.Or(r.CreatedByID, r.CreatedBy)
		if w.Options.FourEyes && (byID == "" || queuedBy == "" || byID == queuedBy) {
			return fmt.Errorf("%w: workspace %s/%s needs a second person: %s queued run %s and cannot approve it", ErrFourEyes, r.Tenant, r.Workspace, by, r.ID)
		}
		return r.move(Approved, m.clock(), by, "approved by "+by, w.Options)
	})
}

// CancelRequest asks to stop a run.
type CancelRequest struct {
	Tenant, Run, By, Reason string
	// Force ends an executing run at once and releases its workspace
	// without waiting for the agent (for an agent that no longer answers).
	Force bool
}

// Cancel stops a run. A run no agent is working on ends Cancelled at once
// (a queued run leaves the queue, a planned one is discarded); an executing
// run is marked CancelRequested and ends when its agent confirms, unless
// Force is set.
func (m *Manager) Cancel(ctx context.Context, req CancelRequest) (Run, error) {
	reason := "cancelled by " + req.By
	if req.Reason != "" {
		reason += ": " + req.Reason
	}
	return m.change(ctx, req.Tenant, req.Run, func(r *Run, w Workspace) error {
		if r.State.Executing() && !req.Force {
			if r.CancelRequested {
				return nil
			}
			r.CancelRequested, r.CancelReason, r.UpdatedAt = true, reason, m.clock()
			return nil
		}
		if req.Force && r.State.Executing() {
			reason = "force-" + reason
		}
		return r.move(Cancelled, m.clock(), req.By, reason, w.Options)
	})
}

// change reads a run, applies f and writes it back with its lock.
func (m *Manager) change(ctx context.Context, tenant, runID string, f func(*Run, Workspace) error) (Run, error) {
	var written *Run // what an earlier try of this call wrote
	return retry(ctx, func() (Run, error) {
		r, err := m.store.GetRun(ctx, tenant, runID)
		if err != nil {
			return Run{}, fmt.Errorf("cannot change run %s: %w", runID, err)
		}
		if written != nil && sameChange(r, *written) {
			// The earlier write landed although its answer was lost.
			m.changed(ctx, "run changed", r, "reason", r.LastReason(), "cancelRequested", r.CancelRequested)
			return r, nil
		}
		w, err := m.store.GetWorkspace(ctx, r.Tenant, r.Workspace)
		if err != nil {
			return Run{}, err
		}
		if err := f(&r, w); err != nil {
			return Run{}, err
		}
		written = &r
		if err := m.commitWithLock(ctx, r); err != nil {
			return Run{}, err
		}
		m.changed(ctx, "run changed", r, "reason", r.LastReason(), "cancelRequested", r.CancelRequested)
		return r, nil
	})
}

// sameChange reports whether stored is the run as want was written: same
// state, history, actor of the last move and update time.
func sameChange(stored, want Run) bool {
	n := len(want.History)
	return stored.State == want.State && stored.UpdatedAt.Equal(want.UpdatedAt) && stored.CancelRequested == want.CancelRequested &&
		len(stored.History) == n && (n == 0 || stored.History[n-1] == want.History[n-1])
}

// Heartbeat is an agent saying it is alive.
type Heartbeat struct {
	Tenant, Agent string
	Labels        map[string]string
	Capacity      int
	Version       string
	// TerraformVersion is the version of the agent's terraform.
	TerraformVersion string
	// Running lists the runs the agent is executing.
	Running []string
	// Draining: the agent is shutting down and takes no new run.
	Draining bool
}

// Stop tells an agent to stop a run it is executing.
type Stop struct {
	Run    string `json:"run"`
	Reason string `json:"reason"`
}

// Heartbeat records that an agent is alive and answers which of its
// running runs it must stop: cancelled, timed out, failed by a sweep, or
// no longer its own. The agent must be on the Roster (ErrNotAgent
// otherwise, and nothing is recorded); it serves the labels of
// ServedLabels, never more than its registration grants.
func (m *Manager) Heartbeat(ctx context.Context, hb Heartbeat) ([]Stop, error) {
	labels, dropped, err := m.served(hb)
	if err != nil {
		return nil, err
	}
	if len(dropped) > 0 {
		m.log.WarnContext(ctx, "agent heartbeat claims labels its registration does not grant; serving only the registered ones",
			"tenant", hb.Tenant, "agent", hb.Agent, "dropped", dropped)
	}
	now := m.clock()
	a := Agent{Tenant: hb.Tenant, ID: hb.Agent, Labels: labels, Capacity: hb.Capacity, Version: hb.Version, TerraformVersion: hb.TerraformVersion, RegisteredAt: now, LastHeartbeat: now, Draining: hb.Draining}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if _, err := m.store.GetTenant(ctx, hb.Tenant); err != nil {
		return nil, fmt.Errorf("cannot record heartbeat of %s/%s: %w", hb.Tenant, hb.Agent, err)
	}
	if old, err := m.store.GetAgent(ctx, hb.Tenant, hb.Agent); err == nil {
		a.RegisteredAt = old.RegisteredAt
		if old.Silent {
			m.log.InfoContext(ctx, "agent back", "tenant", hb.Tenant, "agent", hb.Agent, "silentSince", old.LastHeartbeat)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := m.store.PutAgent(ctx, a); err != nil {
		return nil, fmt.Errorf("cannot record heartbeat of %s/%s: %w", hb.Tenant, hb.Agent, err)
	}
	var stops []Stop
	for _, id := range hb.Running {
		r, err := m.store.GetRun(ctx, hb.Tenant, id)
		switch {
		case errors.Is(err, ErrNotFound):
			stops = append(stops, Stop{Run: id, Reason: "unknown run"})
		case err != nil:
			return nil, err
		case r.SettledBy(hb.Agent):
			// Lost mid-apply and back: let it finish, its result settles the run.
		case r.Agent != hb.Agent || !r.State.Executing():
			stops = append(stops, Stop{Run: id, Reason: fmt.Sprintf("run is %s: %s", r.State, r.LastReason())})
		case r.CancelRequested:
			stops = append(stops, Stop{Run: id, Reason: r.CancelReason})
		}
	}
	return stops, nil
}

// SweepSilentAgents settles the runs of agents that stopped heartbeating
// (loseClaim: back to the queue, or NeedsAttention for an apply whose
// Terraform started) and marks the agents silent. It returns the agents
// it marked. Any number of replicas may sweep at once.
func (m *Manager) SweepSilentAgents(ctx context.Context) ([]Agent, error) {
	now := m.clock()
	agents, err := m.store.ListSilentAgents(ctx, now.Add(-m.silent))
	if err != nil {
		return nil, fmt.Errorf("cannot list silent agents: %w", err)
	}
	var marked []Agent
	for _, a := range agents {
		// The list may be stale by now: skip an agent that just heartbeated.
		fresh, err := m.store.GetAgent(ctx, a.Tenant, a.ID)
		if err != nil || fresh.Silent || !fresh.LastHeartbeat.Equal(a.LastHeartbeat) {
			continue
		}
		a = fresh
		locks, err := m.store.ListLocks(ctx, LockQuery{Tenant: a.Tenant, Agent: a.ID})
		if err != nil {
			return marked, err
		}
		for _, l := range locks {
			if err := m.loseClaim(ctx, a.Tenant, l.Run, a.ID, a.LastHeartbeat); err != nil {
				return marked, err
			}
		}
		a.Silent = true
		switch err := m.store.PutAgent(ctx, a); {
		case errors.Is(err, ErrConflict):
			continue // it heartbeated meanwhile
		case err != nil:
			return marked, fmt.Errorf("cannot mark agent %s/%s silent: %w", a.Tenant, a.ID, err)
		}
		m.log.WarnContext(ctx, "agent silent", "tenant", a.Tenant, "agent", a.ID, "lastHeartbeat", a.LastHeartbeat, "runsFailed", len(locks))
		marked = append(marked, a)
	}
	return marked, nil
}

var errSkip = errors.New("skip")

// SweepTimeouts ends runs whose current state outlived its deadline
// (planning, applying, or a plan waiting for approval) as TimedOut and
// releases their workspaces. An agent still executing one learns it from
// its next heartbeat.
func (m *Manager) SweepTimeouts(ctx context.Context) ([]Run, error) {
	now := m.clock()
	locks, err := m.store.ListLocks(ctx, LockQuery{ExpiredBy: now})
	if err != nil {
		return nil, fmt.Errorf("cannot list expired locks: %w", err)
	}
	var ended []Run
	for _, l := range locks {
		r, err := m.change(ctx, l.Tenant, l.Run, func(r *Run, w Workspace) error {
			if r.Deadline.IsZero() || r.Deadline.After(now) {
				return errSkip
			}
			return r.move(TimedOut, now, "sweeper", fmt.Sprintf("%s passed its deadline %s", r.State, r.Deadline.Format(time.RFC3339)), w.Options)
		})
		switch {
		case errors.Is(err, errSkip), errors.Is(err, ErrIllegalTransition):
			continue
		case err != nil:
			return ended, err
		}
		m.log.WarnContext(ctx, "run timed out", "tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID)
		ended = append(ended, r)
	}
	return ended, nil
}

// Sweep runs both sweeps every interval until ctx ends.
func (m *Manager) Sweep(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := m.SweepSilentAgents(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "cannot sweep silent agents", "err", err)
		}
		if _, err := m.SweepTimeouts(ctx); err != nil && ctx.Err() == nil {
			m.log.ErrorContext(ctx, "cannot sweep run timeouts", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Result bounds keep a run's record small enough for a table entity; the
// full log is kept in Blob storage anyway.
const (
	maxDiagnostics     = 50
	maxDiagnosticBytes = 4 << 10
	maxOutputBytes     = 16 << 10
)

func boundResult(res tfrun.Result) tfrun.Result {
	if res.Plan != nil {
		p := *res.Plan
		p.Bound(tfrun.MaxPlanSummaryEntries)
		res.Plan = &p
	}
	if len(res.Diagnostics) > maxDiagnostics {
		extra := len(res.Diagnostics) - maxDiagnostics
		res.Diagnostics = append(res.Diagnostics[:maxDiagnostics:maxDiagnostics], tfrun.Diagnostic{
			Severity: "warning", Summary: fmt.Sprintf("%d more diagnostics are in the run log", extra),
		})
	} else {
		res.Diagnostics = slices.Clone(res.Diagnostics)
	}
	for i, d := range res.Diagnostics {
		if len(d.Detail) > maxDiagnosticBytes {
			res.Diagnostics[i].Detail = d.Detail[:maxDiagnosticBytes] + "… (truncated; see the run log)"
		}
	}
	if len(res.Outputs) > 0 {
		outs := make(map[string]tfrun.Output, len(res.Outputs))
		for k, o := range res.Outputs {
			if len(o.Value) > maxOutputBytes {
				o.Value = []byte(fmt.Sprintf("%q", fmt.Sprintf("(%d bytes, too large to keep)", len(o.Value))))
			}
			outs[k] = o
		}
		res.Outputs = outs
	}
	return res
}
