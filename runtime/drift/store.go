package drift

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/aztable"
)

// Store keeps one State per workspace: Table (Azure Table Storage) and
// Memory (tests).
type Store interface {
	// Get returns the workspace's state; one never stored is the zero
	// State of the workspace (ETag "").
	Get(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (State, error)
	// Put stores s if it is unchanged since it was read (its ETag; "":
	// only if absent), ErrConflict otherwise.
	Put(ctx context.Context, s State) error
	// List returns the tenant's states, by workspace.
	List(ctx context.Context, tenant ids.TenantID) ([]State, error)
	// Due returns states of every tenant whose schedule fires at or
	// before now, at most limit.
	Due(ctx context.Context, now time.Time, limit int) ([]State, error)
}

// update reads, changes and stores a workspace's state, starting over
// when another writer came first.
func update(ctx context.Context, s Store, tenant ids.TenantID, workspace ids.WorkspaceID, change func(*State) error) (State, error) {
	for range 5 {
		st, err := s.Get(ctx, tenant, workspace)
		if err != nil {
			return State{}, err
		}
		if err := change(&st); err != nil {
			return State{}, err
		}
		if err = s.Put(ctx, st); !errors.Is(err, ErrConflict) {
			return st, err
		}
	}
	return State{}, fmt.Errorf("drift state of %s/%s: %w", tenant, workspace, ErrConflict)
}

// Memory is an in-memory Store for tests. Requests counts its calls.
type Memory struct {
	mu       sync.Mutex
	states   map[stateKey]State
	etag     int
	Requests int
}

var _ Store = (*Memory)(nil)

type stateKey struct {
	tenant    ids.TenantID
	workspace ids.WorkspaceID
}

// NewMemory returns an empty Memory store.
func NewMemory() *Memory { return &Memory{states: map[stateKey]State{}} }

func cloneState(s State) State {
	b, _ := json.Marshal(s)
	var out State
	_ = json.Unmarshal(b, &out)
	out.ETag = s.ETag
	return out
}

// Get implements Store.
func (m *Memory) Get(_ context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Requests++
	st, ok := m.states[stateKey{tenant, workspace}]
	if !ok {
		return State{Tenant: tenant, Workspace: workspace}, nil
	}
	return cloneState(st), nil
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, s State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Requests++
	k := stateKey{s.Tenant, s.Workspace}
	if cur, ok := m.states[k]; ok && cur.ETag != s.ETag || !ok && s.ETag != "" {
		return fmt.Errorf("drift state of %s/%s: %w", s.Tenant, s.Workspace, ErrConflict)
	}
	m.etag++
	s.ETag = strconv.Itoa(m.etag)
	m.states[k] = cloneState(s)
	return nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, tenant ids.TenantID) ([]State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Requests++
	var out []State
	for k, st := range m.states {
		if k.tenant == tenant {
			out = append(out, cloneState(st))
		}
	}
	slices.SortFunc(out, func(a, b State) int { return cmp.Compare(a.Workspace, b.Workspace) })
	return out, nil
}

// Due implements Store.
func (m *Memory) Due(_ context.Context, now time.Time, limit int) ([]State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Requests++
	var out []State
	for _, st := range m.states {
		if !st.Next.IsZero() && !st.Next.After(now) {
			out = append(out, cloneState(st))
		}
	}
	slices.SortFunc(out, func(a, b State) int { return a.Next.Compare(b.Next) })
	return out[:min(len(out), limit)], nil
}

// DefaultTable names the drift table without a prefix.
const DefaultTable = "botedrift"

// TableName is the drift table of the ops server's tables with prefix
// ("" for DefaultTable).
func TableName(prefix string) string { return aztable.Name(prefix, "drift", DefaultTable) }

// Table keeps the states in an Azure table: PK tenant, RK workspace, the
// State as JSON in Data and its Next time (fixed-width UTC, "" without a
// schedule) in Next, which the due query filters on across partitions.
type Table struct {
	c *aztables.Client
}

var _ Store = (*Table)(nil)

// OpenTable opens the table name (DefaultTable if empty) of svc, creating
// it if create is set (local use; in Azure the infrastructure creates it).
func OpenTable(ctx context.Context, svc *aztables.ServiceClient, name string, create bool) (*Table, error) {
	c, err := aztable.Open(ctx, svc, cmp.Or(name, DefaultTable), create)
	return &Table{c: c}, err
}

type entity struct {
	PartitionKey string
	RowKey       string
	ETag         azcore.ETag `json:"odata.etag,omitempty"`
	Next         string
	Data         string
}

func decode(raw []byte) (State, error) {
	var e entity
	if err := json.Unmarshal(raw, &e); err != nil {
		return State{}, fmt.Errorf("cannot decode drift entity: %w", err)
	}
	var st State
	if err := json.Unmarshal([]byte(e.Data), &st); err != nil {
		return State{}, fmt.Errorf("cannot decode drift state %s/%s: %w", e.PartitionKey, e.RowKey, err)
	}
	st.ETag = string(e.ETag)
	return st, nil
}

// Get implements Store.
func (t *Table) Get(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (State, error) {
	resp, err := t.c.GetEntity(ctx, string(tenant), string(workspace), nil)
	if aztable.StatusCode(err) == http.StatusNotFound {
		return State{Tenant: tenant, Workspace: workspace}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("cannot read the drift state of %s/%s: %w", tenant, workspace, err)
	}
	st, err := decode(resp.Value)
	st.ETag = string(resp.ETag)
	return st, err
}

// Put implements Store.
func (t *Table) Put(ctx context.Context, s State) error {
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	e, err := json.Marshal(entity{PartitionKey: string(s.Tenant), RowKey: string(s.Workspace), Next: aztable.TimeKey(s.Next), Data: string(data)})
	if err != nil {
		return err
	}
	if s.ETag == "" {
		_, err = t.c.AddEntity(ctx, e, nil)
	} else {
		etag := azcore.ETag(s.ETag)
		_, err = t.c.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	}
	switch aztable.StatusCode(err) {
	case 0:
		if err != nil {
			return fmt.Errorf("cannot store the drift state of %s/%s: %w", s.Tenant, s.Workspace, err)
		}
		return nil
	case http.StatusConflict, http.StatusPreconditionFailed, http.StatusNotFound:
		return fmt.Errorf("drift state of %s/%s: %w", s.Tenant, s.Workspace, ErrConflict)
	}
	return fmt.Errorf("cannot store the drift state of %s/%s: %w", s.Tenant, s.Workspace, err)
}

func (t *Table) query(ctx context.Context, filter string, limit int) ([]State, error) {
	opts := &aztables.ListEntitiesOptions{Filter: to.Ptr(filter)}
	if limit > 0 {
		opts.Top = to.Ptr(int32(limit))
	}
	p := t.c.NewListEntitiesPager(opts)
	var out []State
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot query drift states: %w", err)
		}
		for _, raw := range page.Entities {
			st, err := decode(raw)
			if err != nil {
				return nil, err
			}
			out = append(out, st)
		}
		if limit > 0 {
			break
		}
	}
	return out, nil
}

// List implements Store.
func (t *Table) List(ctx context.Context, tenant ids.TenantID) ([]State, error) {
	return t.query(ctx, fmt.Sprintf("PartitionKey eq '%s'", tenant), 0)
}

// Due implements Store: one query across the tenants' partitions.
func (t *Table) Due(ctx context.Context, now time.Time, limit int) ([]State, error) {
	return t.query(ctx, fmt.Sprintf("Next ne '' and Next le '%s'", aztable.TimeKey(now)), limit)
}
