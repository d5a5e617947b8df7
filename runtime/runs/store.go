package runs

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// Errors a Store returns (wrapped); callers branch on them with errors.Is.
var (
	// ErrNotFound: no such tenant, workspace, run or agent in this tenant.
	ErrNotFound = errors.New("not found")
	// ErrExists: creating something that is already there.
	ErrExists = errors.New("already exists")
	// ErrConflict: an ETag did not match; someone else changed the entity
	// first. Re-read and decide again.
	ErrConflict = errors.New("concurrent update")
)

// Store keeps tenants, workspaces, runs, locks and agents durably. The
// Manager holds the lifecycle rules; a Store only guarantees storage
// semantics, which package runstore's contract suite checks for every
// implementation:
//
//   - Every read and write is scoped by tenant: a run or workspace is only
//     found under its own tenant.
//   - An entity read carries an ETag; writing it back with that ETag fails
//     with ErrConflict if it changed meanwhile, and creating (empty ETag)
//     fails with ErrExists (workspaces, tenants) or ErrConflict (runs,
//     locks) if it is already there.
//   - Commit writes a workspace's runs and its lock all or nothing.
//
// Tenant and workspace ids come typed (ids.TenantID, ids.WorkspaceID):
// they were parsed where they entered, and a Store builds keys from them
// without checking them again.
type Store interface {
	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id ids.TenantID) (Tenant, error)
	ListTenants(ctx context.Context) ([]Tenant, error)

	CreateWorkspace(ctx context.Context, w Workspace) error
	GetWorkspace(ctx context.Context, tenant ids.TenantID, name ids.WorkspaceID) (Workspace, error)
	// UpdateWorkspace replaces w if w.ETag still matches.
	UpdateWorkspace(ctx context.Context, w Workspace) error
	ListWorkspaces(ctx context.Context, tenant ids.TenantID) ([]Workspace, error)

	// GetRun finds a run by id within tenant.
	GetRun(ctx context.Context, tenant ids.TenantID, id string) (Run, error)
	// ListRuns returns a workspace's runs matching q, oldest first.
	ListRuns(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, q RunQuery) ([]Run, error)
	// GetLock returns the workspace's lock; a lock never written comes back
	// free with an empty ETag.
	GetLock(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (Lock, error)
	// ListLocks returns held locks matching q.
	ListLocks(ctx context.Context, q LockQuery) ([]Lock, error)
	// Commit writes c atomically. Stored ETags are stale afterwards.
	Commit(ctx context.Context, c Commit) error

	// PutAgent stores a. With an empty ETag it creates or replaces the
	// agent unconditionally (a heartbeat); otherwise only if a.ETag matches.
	PutAgent(ctx context.Context, a Agent) error
	GetAgent(ctx context.Context, tenant ids.TenantID, id string) (Agent, error)
	ListAgents(ctx context.Context, tenant ids.TenantID) ([]Agent, error)
	// ListSilentAgents returns the agents of every tenant not marked Silent
	// whose last heartbeat is before cutoff (the sweeper's query).
	ListSilentAgents(ctx context.Context, cutoff time.Time) ([]Agent, error)
}

// Commit is one atomic write to a workspace: runs (created when their ETag
// is empty, replaced otherwise) and optionally its lock.
type Commit struct {
	Tenant    ids.TenantID
	Workspace ids.WorkspaceID
	Runs      []Run
	Lock      *Lock
}

// RunQuery selects a workspace's runs. Empty fields match everything.
type RunQuery struct {
	// States keeps runs in one of these states.
	States []State
	// From keeps runs whose id is not before it (ids sort by creation),
	// so the queue is read without the history before it.
	From string
}

// Match reports whether r satisfies q (for Store implementations).
func (q RunQuery) Match(r Run) bool {
	return r.ID >= q.From && (len(q.States) == 0 || slices.Contains(q.States, r.State))
}

// LockQuery selects held locks. Empty fields match everything.
type LockQuery struct {
	Tenant ids.TenantID
	Agent  string
	// ExpiredBy keeps locks whose deadline is set and not after it.
	ExpiredBy time.Time
}

// Match reports whether a held lock l satisfies q (for Store
// implementations).
func (q LockQuery) Match(l Lock) bool {
	switch {
	case !l.Held():
		return false
	case q.Tenant != "" && l.Tenant != q.Tenant:
		return false
	case q.Agent != "" && l.Agent != q.Agent:
		return false
	case !q.ExpiredBy.IsZero() && (l.Deadline.IsZero() || l.Deadline.After(q.ExpiredBy)):
		return false
	}
	return true
}
