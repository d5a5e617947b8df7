package runs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/ids"
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
// ops server replica) may share one Store: every change is a conditional
// write, so two replicas never start one run or one workspace twice.
type Manager struct {
	store  Store
	roster Roster
	silent time.Duration
	now    func() time.Time
	log    *slog.Logger

	subMu sync.RWMutex
	subs  []func(Run)                              // Config.OnChange, then what Subscribe added
	moves []func(context.Context, Run, Transition) // Config.OnTransition, then what SubscribeTransitions added
}

// New returns a Manager.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{store: cfg.Store, roster: cfg.Roster, silent: cfg.SilentAfter, now: cfg.Now, log: cfg.Logger}
	if cfg.OnChange != nil {
		m.subs = append(m.subs, cfg.OnChange)
	}
	if cfg.OnTransition != nil {
		m.moves = append(m.moves, cfg.OnTransition)
	}
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

// Subscribe adds f to what is told of every run this Manager stores a
// change of, after Config.OnChange and under the same rules (after the
// write, must not block). It is how a component built on the Manager, the
// dispatcher, registers once it exists; changes stored before Subscribe are
// not replayed.
func (m *Manager) Subscribe(f func(Run)) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	m.subs = append(m.subs, f)
}

// SubscribeTransitions adds f to what is told of every transition this
// Manager stores, after Config.OnTransition and under the same rules (in
// order, in the goroutine that made the change). It is how a component
// built on the Manager registers once it exists: the drift scheduler,
// which queues its checks through the Manager and keeps its states in
// line with their transitions.
func (m *Manager) SubscribeTransitions(f func(ctx context.Context, r Run, t Transition)) {
	m.subMu.Lock()
	defer m.subMu.Unlock()
	m.moves = append(m.moves, f)
}

// notify tells the subscribers of a stored change of r.
func (m *Manager) notify(r Run) {
	m.subMu.RLock()
	subs := m.subs
	m.subMu.RUnlock()
	for _, f := range subs {
		f(r)
	}
}

// changed logs a stored change of r and tells the transitions'
// subscribers (Config.OnTransition, SubscribeTransitions), then the
// changes' (Config.OnChange, Subscribe).
func (m *Manager) changed(ctx context.Context, msg string, r Run, attrs ...any) {
	m.log.InfoContext(ctx, msg, append([]any{"tenant", r.Tenant, "workspace", r.Workspace, "run", r.ID, "state", r.State}, attrs...)...)
	m.subMu.RLock()
	moves := m.moves
	m.subMu.RUnlock()
	if len(moves) > 0 {
		for _, t := range newTransitions(r) {
			for _, f := range moves {
				f(ctx, r, t)
			}
		}
	}
	m.notify(r)
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

// GetTenant returns a tenant, ErrNotFound if there is none.
func (m *Manager) GetTenant(ctx context.Context, id ids.TenantID) (Tenant, error) {
	return m.store.GetTenant(ctx, id)
}

// ListTenants returns every tenant of the store.
func (m *Manager) ListTenants(ctx context.Context) ([]Tenant, error) {
	return m.store.ListTenants(ctx)
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
func (m *Manager) UpdateWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID, change func(*Workspace)) (Workspace, error) {
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
func (m *Manager) GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (Workspace, error) {
	return m.store.GetWorkspace(ctx, tenant, name)
}

// ListWorkspaces returns tenant's workspaces by name.
func (m *Manager) ListWorkspaces(ctx context.Context, tenant ids.TenantID) ([]Workspace, error) {
	return m.store.ListWorkspaces(ctx, tenant)
}

// GetRun returns one run of tenant.
func (m *Manager) GetRun(ctx context.Context, tenant ids.TenantID, id string) (Run, error) {
	return m.store.GetRun(ctx, tenant, id)
}

// ListRuns returns tenant's runs oldest first: one workspace's, or every
// workspace's when workspace is "". States filter when given.
func (m *Manager) ListRuns(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, states ...State) ([]Run, error) {
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

// ListLocks returns the held workspace locks of tenant. (A zero tenant
// is refused: in a LockQuery it would match every tenant's locks.)
func (m *Manager) ListLocks(ctx context.Context, tenant ids.TenantID) ([]Lock, error) {
	if tenant == "" {
		return nil, fmt.Errorf("%w: tenant id is empty", ErrInvalid)
	}
	return m.store.ListLocks(ctx, LockQuery{Tenant: tenant})
}

// ListAgents returns tenant's agents.
func (m *Manager) ListAgents(ctx context.Context, tenant ids.TenantID) ([]Agent, error) {
	return m.store.ListAgents(ctx, tenant)
}

// Online reports whether a has heartbeated recently enough to get work.
func (m *Manager) Online(a Agent) bool {
	return !a.Silent && m.clock().Sub(a.LastHeartbeat) < m.silent
}
