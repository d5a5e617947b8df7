package runstore

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// Memory is an in-memory runs.Store for unit tests. It passes the same
// contract suite (package storetest) as the Table Storage store, so tests
// built on it see the semantics production has. State is lost with the
// process: never use it to serve.
type Memory struct {
	mu         sync.Mutex
	seq        int
	tenants    map[ids.TenantID]entry
	workspaces map[wsKey]entry
	runs       map[idKey]entry // tenant, run id
	locks      map[wsKey]entry
	agents     map[idKey]entry // tenant, agent id
}

// wsKey is a workspace's key, idKey a run's or an agent's.
type (
	wsKey struct {
		tenant    ids.TenantID
		workspace ids.WorkspaceID
	}
	idKey struct {
		tenant ids.TenantID
		id     string
	}
)

// entry is a stored value as JSON, so callers never share memory with the
// store, and its ETag.
type entry struct {
	data []byte
	etag string
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{
		tenants:    map[ids.TenantID]entry{},
		workspaces: map[wsKey]entry{},
		runs:       map[idKey]entry{},
		locks:      map[wsKey]entry{},
		agents:     map[idKey]entry{},
	}
}

var _ runs.Store = (*Memory)(nil)

func (m *Memory) put(v any) (entry, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return entry{}, fmt.Errorf("cannot encode %T: %w", v, err)
	}
	if len(data) > maxDataBytes { // as Tables, so tests see the same limit
		return entry{}, fmt.Errorf("cannot store %T: %d bytes encoded, the limit is %d", v, len(data), maxDataBytes)
	}
	m.seq++
	return entry{data: data, etag: "m" + strconv.Itoa(m.seq)}, nil
}

func get[T any](e entry) (T, string) {
	var v T
	_ = json.Unmarshal(e.data, &v) // written by put
	return v, e.etag
}

// CreateTenant implements runs.Store.
func (m *Memory) CreateTenant(_ context.Context, t runs.Tenant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tenants[t.ID]; ok {
		return fmt.Errorf("tenant %s: %w", t.ID, runs.ErrExists)
	}
	e, err := m.put(t)
	if err != nil {
		return err
	}
	m.tenants[t.ID] = e
	return nil
}

// GetTenant implements runs.Store.
func (m *Memory) GetTenant(_ context.Context, id ids.TenantID) (runs.Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.tenants[id]
	if !ok {
		return runs.Tenant{}, fmt.Errorf("tenant %s: %w", id, runs.ErrNotFound)
	}
	t, _ := get[runs.Tenant](e)
	return t, nil
}

// ListTenants implements runs.Store.
func (m *Memory) ListTenants(context.Context) ([]runs.Tenant, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]runs.Tenant, 0, len(m.tenants))
	for _, e := range m.tenants {
		t, _ := get[runs.Tenant](e)
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// CreateWorkspace implements runs.Store.
func (m *Memory) CreateWorkspace(_ context.Context, w runs.Workspace) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := wsKey{w.Tenant, w.Name}
	if _, ok := m.workspaces[k]; ok {
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrExists)
	}
	e, err := m.put(w)
	if err != nil {
		return err
	}
	m.workspaces[k] = e
	return nil
}

// GetWorkspace implements runs.Store.
func (m *Memory) GetWorkspace(_ context.Context, tenant ids.TenantID, name ids.WorkspaceID) (runs.Workspace, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.workspaces[wsKey{tenant, name}]
	if !ok {
		return runs.Workspace{}, fmt.Errorf("workspace %s/%s: %w", tenant, name, runs.ErrNotFound)
	}
	w, etag := get[runs.Workspace](e)
	w.ETag = etag
	return w, nil
}

// UpdateWorkspace implements runs.Store.
func (m *Memory) UpdateWorkspace(_ context.Context, w runs.Workspace) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := wsKey{w.Tenant, w.Name}
	old, ok := m.workspaces[k]
	switch {
	case !ok:
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrNotFound)
	case old.etag != w.ETag:
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrConflict)
	}
	e, err := m.put(w)
	if err != nil {
		return err
	}
	m.workspaces[k] = e
	return nil
}

// ListWorkspaces implements runs.Store.
func (m *Memory) ListWorkspaces(_ context.Context, tenant ids.TenantID) ([]runs.Workspace, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []runs.Workspace
	for k, e := range m.workspaces {
		if k.tenant == tenant {
			w, etag := get[runs.Workspace](e)
			w.ETag = etag
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// GetRun implements runs.Store.
func (m *Memory) GetRun(_ context.Context, tenant ids.TenantID, id string) (runs.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.runs[idKey{tenant, id}]
	if !ok {
		return runs.Run{}, fmt.Errorf("run %s in tenant %s: %w", id, tenant, runs.ErrNotFound)
	}
	r, etag := get[runs.Run](e)
	r.ETag = etag
	return r, nil
}

// ListRuns implements runs.Store.
func (m *Memory) ListRuns(_ context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, q runs.RunQuery) ([]runs.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []runs.Run
	for k, e := range m.runs {
		if k.tenant != tenant {
			continue
		}
		r, etag := get[runs.Run](e)
		if r.Workspace == workspace && q.Match(r) {
			r.ETag = etag
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// GetLock implements runs.Store.
func (m *Memory) GetLock(_ context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (runs.Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.locks[wsKey{tenant, workspace}]
	if !ok {
		return runs.Lock{Tenant: tenant, Workspace: workspace}, nil
	}
	l, etag := get[runs.Lock](e)
	l.ETag = etag
	return l, nil
}

// ListLocks implements runs.Store.
func (m *Memory) ListLocks(_ context.Context, q runs.LockQuery) ([]runs.Lock, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []runs.Lock
	for _, e := range m.locks {
		l, etag := get[runs.Lock](e)
		if q.Match(l) {
			l.ETag = etag
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return string(out[i].Tenant)+"|"+string(out[i].Workspace) < string(out[j].Tenant)+"|"+string(out[j].Workspace)
	})
	return out, nil
}

// Commit implements runs.Store.
func (m *Memory) Commit(_ context.Context, c runs.Commit) error {
	if err := checkCommit(c); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Check every condition first: all or nothing.
	for _, r := range c.Runs {
		old, ok := m.runs[idKey{c.Tenant, r.ID}] // run ids are unique per tenant
		if (r.ETag == "" && ok) || (r.ETag != "" && (!ok || old.etag != r.ETag)) {
			return fmt.Errorf("run %s: %w", r.ID, runs.ErrConflict)
		}
	}
	lk := wsKey{c.Tenant, c.Workspace}
	if c.Lock != nil {
		old, ok := m.locks[lk]
		if (c.Lock.ETag == "" && ok) || (c.Lock.ETag != "" && (!ok || old.etag != c.Lock.ETag)) {
			return fmt.Errorf("lock of %s/%s: %w", c.Tenant, c.Workspace, runs.ErrConflict)
		}
	}
	// Encode everything before writing anything: all or nothing.
	entries := make([]entry, len(c.Runs))
	for i, r := range c.Runs {
		e, err := m.put(r)
		if err != nil {
			return err
		}
		entries[i] = e
	}
	var lockEntry entry
	if c.Lock != nil {
		e, err := m.put(c.Lock)
		if err != nil {
			return err
		}
		lockEntry = e
	}
	for i, r := range c.Runs {
		m.runs[idKey{c.Tenant, r.ID}] = entries[i]
	}
	if c.Lock != nil {
		m.locks[lk] = lockEntry
	}
	return nil
}

// PutAgent implements runs.Store.
func (m *Memory) PutAgent(_ context.Context, a runs.Agent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := idKey{a.Tenant, a.ID}
	if a.ETag != "" {
		if old, ok := m.agents[k]; !ok || old.etag != a.ETag {
			return fmt.Errorf("agent %s/%s: %w", a.Tenant, a.ID, runs.ErrConflict)
		}
	}
	e, err := m.put(a)
	if err != nil {
		return err
	}
	m.agents[k] = e
	return nil
}

// GetAgent implements runs.Store.
func (m *Memory) GetAgent(_ context.Context, tenant ids.TenantID, id string) (runs.Agent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, ok := m.agents[idKey{tenant, id}]
	if !ok {
		return runs.Agent{}, fmt.Errorf("agent %s/%s: %w", tenant, id, runs.ErrNotFound)
	}
	a, etag := get[runs.Agent](e)
	a.ETag = etag
	return a, nil
}

// ListAgents implements runs.Store.
func (m *Memory) ListAgents(_ context.Context, tenant ids.TenantID) ([]runs.Agent, error) {
	return m.agentsWhere(func(a runs.Agent) bool { return a.Tenant == tenant }), nil
}

// ListSilentAgents implements runs.Store.
func (m *Memory) ListSilentAgents(_ context.Context, cutoff time.Time) ([]runs.Agent, error) {
	return m.agentsWhere(func(a runs.Agent) bool { return !a.Silent && a.LastHeartbeat.Before(cutoff) }), nil
}

func (m *Memory) agentsWhere(keep func(runs.Agent) bool) []runs.Agent {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []runs.Agent
	for _, e := range m.agents {
		a, etag := get[runs.Agent](e)
		if keep(a) {
			a.ETag = etag
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].Tenant)+"|"+out[i].ID < string(out[j].Tenant)+"|"+out[j].ID })
	return out
}
