package policystore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/aztable"
)

// DefaultTable names the policies table without a prefix.
const DefaultTable = "botepolicies"

// TableName is the policies table of the ops server's tables with
// prefix ("" for DefaultTable).
func TableName(prefix string) string { return aztable.Name(prefix, "policies", DefaultTable) }

// Table keeps policies in one Azure table, partition key the tenant:
//
//	RK "c|<name>"             the current version (a deleted policy's tombstone)
//	RK "v|<name>|<version>"   every version, the version zero-padded to 10 digits
//
// A put writes both rows in one entity group transaction, the current row
// conditional on the ETag it read (or added if there was none), so two
// concurrent puts never give one version number twice: the loser gets
// ErrConflict.
type Table struct {
	c   *aztables.Client
	now func() time.Time
}

var _ Store = (*Table)(nil)

// OpenTable opens the table name (DefaultTable if empty) of svc, creating
// it if create is set (local use; in Azure the infrastructure creates it).
func OpenTable(ctx context.Context, svc *aztables.ServiceClient, name string, create bool) (*Table, error) {
	c, err := aztable.Open(ctx, svc, cmp.Or(name, DefaultTable), create)
	return &Table{c: c, now: time.Now}, err
}

func currentRow(name string) string              { return "c|" + name }
func versionRow(name string, version int) string { return fmt.Sprintf("v|%s|%010d", name, version) }

// entity is a policy as stored: its JSON in Data (a policy is at most
// 64 KiB of source, well within an entity).
// encode is p as the entity of row rk: its JSON over Data0.. properties
// (aztable.SetData; a source of 64 KiB does not fit one property).
func (t *Table) encode(rk string, p Policy) ([]byte, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("cannot encode policy %s: %w", p.Name, err)
	}
	e := map[string]any{"PartitionKey": string(p.Tenant), "RowKey": rk}
	aztable.SetData(e, data)
	return json.Marshal(e)
}

func decode(raw []byte) (Policy, azcore.ETag, error) {
	var p Policy
	data, etag, err := aztable.GetData(raw)
	if err != nil {
		return p, "", err
	}
	if err := json.Unmarshal(data, &p); err != nil {
		return p, "", fmt.Errorf("cannot decode policy: %w", err)
	}
	return p, azcore.ETag(etag), nil
}

func notFound(err error) bool { return aztable.StatusCode(err) == http.StatusNotFound }

// current reads the current row; ok is false when there is none.
func (t *Table) current(ctx context.Context, tenant ids.TenantID, name string) (p Policy, etag azcore.ETag, ok bool, err error) {
	resp, err := t.c.GetEntity(ctx, string(tenant), currentRow(name), nil)
	if notFound(err) {
		return Policy{}, "", false, nil
	}
	if err != nil {
		return Policy{}, "", false, fmt.Errorf("cannot read policy %s/%s: %w", tenant, name, err)
	}
	p, _, err = decode(resp.Value)
	return p, resp.ETag, err == nil, err
}

// write stores p as the current version and as a version row, in one
// transaction conditional on etag (none: the current row must not exist).
func (t *Table) write(ctx context.Context, p Policy, etag azcore.ETag, exists bool) error {
	cur, err := t.encode(currentRow(p.Name), p)
	if err != nil {
		return err
	}
	ver, err := t.encode(versionRow(p.Name, p.Version), p)
	if err != nil {
		return err
	}
	first := aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: cur}
	if exists {
		first = aztables.TransactionAction{ActionType: aztables.TransactionTypeUpdateReplace, Entity: cur, IfMatch: &etag}
	}
	_, err = t.c.SubmitTransaction(ctx, []aztables.TransactionAction{first, {ActionType: aztables.TransactionTypeAdd, Entity: ver}}, nil)
	if err == nil {
		return nil
	}
	// The SDK does not say which action failed: another writer came
	// first if the current row moved on from what this one read.
	now, _, ok, rerr := t.current(ctx, p.Tenant, p.Name)
	if rerr == nil && ok && now.Version >= p.Version {
		return fmt.Errorf("policy %s/%s: %w", p.Tenant, p.Name, ErrConflict)
	}
	return fmt.Errorf("cannot store policy %s/%s: %w", p.Tenant, p.Name, err)
}

// Put implements Store.
func (t *Table) Put(ctx context.Context, p Policy) (Policy, error) {
	if err := p.Validate(); err != nil {
		return Policy{}, err
	}
	cur, etag, exists, err := t.current(ctx, p.Tenant, p.Name)
	if err != nil {
		return Policy{}, err
	}
	p = next(cur, p, t.now())
	return p, t.write(ctx, p, etag, exists)
}

// Get implements Store.
func (t *Table) Get(ctx context.Context, tenant ids.TenantID, name string) (Policy, error) {
	cur, _, ok, err := t.current(ctx, tenant, name)
	if err != nil {
		return Policy{}, err
	}
	if !ok || cur.Deleted {
		return Policy{}, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	return cur, nil
}

// Delete implements Store.
func (t *Table) Delete(ctx context.Context, tenant ids.TenantID, name, by string) (Policy, error) {
	cur, etag, ok, err := t.current(ctx, tenant, name)
	if err != nil {
		return Policy{}, err
	}
	if !ok || cur.Deleted {
		return Policy{}, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	ts := tombstone(cur, by, t.now())
	return ts, t.write(ctx, ts, etag, true)
}

// rows lists the tenant's rows with keys in [from, to).
func (t *Table) rows(ctx context.Context, tenant ids.TenantID, from, until string) ([]Policy, error) {
	filter := fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s' and RowKey lt '%s'", tenant, from, until)
	pager := t.c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr(filter)})
	var out []Policy
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot list policies of tenant %s: %w", tenant, err)
		}
		for _, raw := range page.Entities {
			p, _, err := decode(raw)
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// List implements Store.
func (t *Table) List(ctx context.Context, tenant ids.TenantID) ([]Policy, error) {
	all, err := t.rows(ctx, tenant, "c|", "c}")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, p := range all {
		if !p.Deleted {
			out = append(out, p)
		}
	}
	return out, nil
}

// Versions implements Store.
func (t *Table) Versions(ctx context.Context, tenant ids.TenantID, name string) ([]Policy, error) {
	if strings.ContainsAny(name, "|'") {
		return nil, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	vs, err := t.rows(ctx, tenant, "v|"+name+"|", "v|"+name+"}")
	if err != nil {
		return nil, err
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("tenant %s has no policy %s: %w", tenant, name, ErrNotFound)
	}
	return vs, nil
}
