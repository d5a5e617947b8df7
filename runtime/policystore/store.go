package policystore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/botehq/platform/runtime/ids"
)

// Store keeps policies with every version: Table (Azure Table Storage, the
// the ops server's) and Memory (tests).
type Store interface {
	// Put stores p as the next version of its name (Version, SHA256 and
	// CreatedAt are set here) and returns it. It does not compile: see
	// policy.Put.
	Put(ctx context.Context, p Policy) (Policy, error)
	// Get returns the current version of a policy (ErrNotFound if it
	// never existed or is deleted).
	Get(ctx context.Context, tenant ids.TenantID, name string) (Policy, error)
	// List returns the current versions of the tenant's policies, by
	// name, deleted ones left out.
	List(ctx context.Context, tenant ids.TenantID) ([]Policy, error)
	// Delete marks the policy deleted (a new version); its versions stay.
	Delete(ctx context.Context, tenant ids.TenantID, name, by string) (Policy, error)
	// Versions returns every version of a policy, oldest first.
	Versions(ctx context.Context, tenant ids.TenantID, name string) ([]Policy, error)
}

// next is the version that follows cur (zero: none yet) for p.
func next(cur, p Policy, now time.Time) Policy {
	p.Version, p.SHA256, p.CreatedAt, p.Deleted = cur.Version+1, sourceHash(p.Source), now.UTC(), false
	return p
}

// tombstone is the version that deletes cur.
func tombstone(cur Policy, by string, now time.Time) Policy {
	cur.Version, cur.CreatedAt, cur.CreatedBy, cur.Deleted = cur.Version+1, now.UTC(), by, true
	return cur
}

// Memory is an in-memory Store for tests.
type Memory struct {
	mu       sync.Mutex
	versions map[policyKey][]Policy
	Now      func() time.Time
}

var _ Store = (*Memory)(nil)

// policyKey is a tenant's policy name.
type policyKey struct {
	tenant ids.TenantID
	name   string
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{versions: map[policyKey][]Policy{}, Now: time.Now} }

func (m *Memory) current(tenant ids.TenantID, name string) (Policy, bool) {
	vs := m.versions[policyKey{tenant, name}]
	if len(vs) == 0 {
		return Policy{}, false
	}
	return vs[len(vs)-1], true
}

// Put implements Store.
func (m *Memory) Put(ctx context.Context, p Policy) (Policy, error) {
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, _ := m.current(p.Tenant, p.Name)
	p = next(cur, p, m.Now())
	k := policyKey{p.Tenant, p.Name}
	m.versions[k] = append(m.versions[k], p)
	return p, nil
}

// Get implements Store.
func (m *Memory) Get(ctx context.Context, tenant ids.TenantID, name string) (Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.current(tenant, name)
	if !ok || cur.Deleted {
		return Policy{}, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	return cur, nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, tenant ids.TenantID) ([]Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Policy
	for k := range m.versions {
		if cur, _ := m.current(k.tenant, k.name); k.tenant == tenant && !cur.Deleted {
			out = append(out, cur)
		}
	}
	slices.SortFunc(out, func(a, b Policy) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, tenant ids.TenantID, name, by string) (Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.current(tenant, name)
	if !ok || cur.Deleted {
		return Policy{}, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	t := tombstone(cur, by, m.Now())
	k := policyKey{tenant, name}
	m.versions[k] = append(m.versions[k], t)
	return t, nil
}

// Versions implements Store.
func (m *Memory) Versions(ctx context.Context, tenant ids.TenantID, name string) ([]Policy, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.versions[policyKey{tenant, name}]
	if len(vs) == 0 {
		return nil, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	return slices.Clone(vs), nil
}
