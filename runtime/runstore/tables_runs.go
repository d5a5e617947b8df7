package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/runs"
)

// indexEntry maps a run id to its workspace within a tenant.
type indexEntry struct {
	Workspace ids.WorkspaceID `json:"workspace"`
}

// GetRun implements runs.Store.
func (s *Tables) GetRun(ctx context.Context, tenant ids.TenantID, id string) (runs.Run, error) {
	if !runs.ValidRunID(id) {
		return runs.Run{}, fmt.Errorf("run %q in tenant %s: %w", id, tenant, runs.ErrNotFound)
	}
	var ix indexEntry
	if _, err := s.getEntity(ctx, s.index, string(tenant), id, &ix); err != nil {
		return runs.Run{}, fmt.Errorf("run %s in tenant %s: %w", id, tenant, err)
	}
	var r runs.Run
	etag, err := s.getEntity(ctx, s.runs, runsPartition(tenant, ix.Workspace), id, &r)
	if err != nil {
		// An index entry without its run: the create it announced failed.
		return runs.Run{}, fmt.Errorf("run %s in tenant %s: %w", id, tenant, err)
	}
	r.ETag = etag
	return r, nil
}

// ListRuns implements runs.Store.
func (s *Tables) ListRuns(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, q runs.RunQuery) ([]runs.Run, error) {
	from := max(q.From, runRowFirst)
	filter := fmt.Sprintf("PartitionKey eq %s and RowKey ge %s and RowKey lt %s",
		quote(runsPartition(tenant, workspace)), quote(from), quote(runRowEnd))
	if len(q.States) > 0 {
		or := make([]string, len(q.States))
		for i, st := range q.States {
			or[i] = "State eq " + quote(string(st))
		}
		filter += " and (" + strings.Join(or, " or ") + ")"
	}
	var out []runs.Run
	err := list(ctx, s.runs, filter, func(raw []byte) error {
		var r runs.Run
		etag, err := decode(raw, &r)
		r.ETag = etag
		out = append(out, r)
		return err
	})
	return out, err
}

func lockProps(l runs.Lock) map[string]any {
	return map[string]any{"Run": l.Run, "Agent": l.Agent}
}

// GetLock implements runs.Store.
func (s *Tables) GetLock(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID) (runs.Lock, error) {
	var l runs.Lock
	etag, err := s.getEntity(ctx, s.runs, runsPartition(tenant, workspace), lockRow, &l)
	switch {
	case errors.Is(err, runs.ErrNotFound):
		return runs.Lock{Tenant: tenant, Workspace: workspace}, nil
	case err != nil:
		return runs.Lock{}, err
	}
	l.ETag = etag
	return l, nil
}

// activeEntry marks a workspace whose lock may be held (table "active",
// PK tenant, RK workspace), so sweeps read the few busy workspaces instead
// of scanning every run ever stored. Commit writes it before any
// transaction that leaves the lock held; it is only a hint: ListLocks
// checks each against the lock itself and deletes entries of free locks
// once they are older than staleActive, which leaves a claim in flight
// (entry written, transaction not yet) more than enough time.
type activeEntry struct {
	Updated time.Time `json:"updated"`
}

const staleActive = 2 * time.Minute

// ListLocks implements runs.Store through the active-workspace hints.
func (s *Tables) ListLocks(ctx context.Context, q runs.LockQuery) ([]runs.Lock, error) {
	filter := ""
	if q.Tenant != "" {
		filter = "PartitionKey eq " + quote(string(q.Tenant))
	}
	type hint struct {
		tenant    ids.TenantID
		workspace ids.WorkspaceID
		etag      string
		updated   time.Time
	}
	var hints []hint
	err := list(ctx, s.active, filter, func(raw []byte) error {
		var keys struct{ PartitionKey, RowKey string }
		if err := json.Unmarshal(raw, &keys); err != nil {
			return fmt.Errorf("cannot decode active entry: %w", err)
		}
		var e activeEntry
		etag, err := decode(raw, &e)
		// The keys were a tenant's and a workspace's ids when Commit
		// wrote them.
		hints = append(hints, hint{ids.TenantID(keys.PartitionKey), ids.WorkspaceID(keys.RowKey), etag, e.Updated})
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []runs.Lock
	for _, h := range hints {
		l, err := s.GetLock(ctx, h.tenant, h.workspace)
		if err != nil {
			return nil, err
		}
		if !l.Held() && s.now().Sub(h.updated) > staleActive {
			etag := azcore.ETag(h.etag)
			_, err := s.active.DeleteEntity(ctx, string(h.tenant), string(h.workspace), &aztables.DeleteEntityOptions{IfMatch: &etag})
			if err != nil && !notFound(err) && !isCode(err, http.StatusPreconditionFailed, aztables.UpdateConditionNotSatisfied) {
				return nil, fmt.Errorf("cannot drop active entry %s/%s: %w", h.tenant, h.workspace, err)
			}
		}
		if q.Match(l) {
			out = append(out, l)
		}
	}
	return out, nil
}

// Commit implements runs.Store as one entity group transaction: runs and
// lock share the partition "tenant|workspace". A new run's index entry is
// written first, and only if the id is not taken in another workspace; if
// the transaction then fails it points at nothing and GetRun reports the
// run not found.
func (s *Tables) Commit(ctx context.Context, c runs.Commit) error {
	if err := checkCommit(c); err != nil {
		return err
	}
	pk := runsPartition(c.Tenant, c.Workspace)
	// Encode everything first, so a value too large fails before any write.
	var actions []aztables.TransactionAction
	action := func(rk, etag string, v any, props map[string]any) error {
		e, err := encode(pk, rk, v, props)
		if err != nil {
			return err
		}
		a := aztables.TransactionAction{ActionType: aztables.TransactionTypeAdd, Entity: e}
		if etag != "" {
			a.ActionType, a.IfMatch = aztables.TransactionTypeUpdateReplace, to.Ptr(azcore.ETag(etag))
		}
		actions = append(actions, a)
		return nil
	}
	for _, r := range c.Runs {
		if err := action(r.ID, r.ETag, r, map[string]any{"State": string(r.State)}); err != nil {
			return err
		}
	}
	if c.Lock != nil {
		if err := action(lockRow, c.Lock.ETag, c.Lock, lockProps(*c.Lock)); err != nil {
			return err
		}
	}
	for _, r := range c.Runs {
		if r.ETag == "" {
			if err := s.indexRun(ctx, c.Tenant, c.Workspace, r.ID); err != nil {
				return err
			}
		}
	}
	if c.Lock != nil && c.Lock.Held() {
		hint, err := encode(string(c.Tenant), string(c.Workspace), activeEntry{Updated: s.now().UTC()}, nil)
		if err != nil {
			return err
		}
		if _, err := s.active.UpsertEntity(ctx, hint, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
			return fmt.Errorf("cannot mark workspace %s/%s active: %w", c.Tenant, c.Workspace, err)
		}
	}
	if _, err := s.runs.SubmitTransaction(ctx, actions, nil); err != nil {
		if s.stale(ctx, pk, c) {
			return fmt.Errorf("commit to %s/%s: %w", c.Tenant, c.Workspace, runs.ErrConflict)
		}
		return fmt.Errorf("cannot commit to %s/%s: %w", c.Tenant, c.Workspace, err)
	}
	return nil
}

// indexRun records which workspace a new run id belongs to, refusing an
// id already taken in another workspace of the tenant. An entry for this
// very workspace was left by an earlier attempt at the same run.
func (s *Tables) indexRun(ctx context.Context, tenant ids.TenantID, workspace ids.WorkspaceID, id string) error {
	ix, err := encode(string(tenant), id, indexEntry{Workspace: workspace}, nil)
	if err != nil {
		return err
	}
	_, err = s.index.AddEntity(ctx, ix, nil)
	switch {
	case err == nil:
		return nil
	case !isCode(err, http.StatusConflict, aztables.EntityAlreadyExists):
		return fmt.Errorf("cannot index run %s: %w", id, err)
	}
	var prev indexEntry
	if _, err := s.getEntity(ctx, s.index, string(tenant), id, &prev); err != nil {
		return fmt.Errorf("cannot index run %s: %w", id, err)
	}
	if prev.Workspace != workspace {
		return fmt.Errorf("run id %s is taken in workspace %s: %w", id, prev.Workspace, runs.ErrConflict)
	}
	return nil
}

// stale reports whether a failed transaction failed because one of its
// conditions no longer holds. A batch reports the failing operation inside
// its multipart body, which the SDK does not surface, so the conditions are
// checked again instead.
func (s *Tables) stale(ctx context.Context, pk string, c runs.Commit) bool {
	differs := func(rk, want string) bool {
		resp, err := s.runs.GetEntity(ctx, pk, rk, nil)
		switch {
		case notFound(err):
			return want != ""
		case err != nil:
			return false
		}
		return want == "" || string(resp.ETag) != want
	}
	for _, r := range c.Runs {
		if differs(r.ID, r.ETag) {
			return true
		}
	}
	return c.Lock != nil && differs(lockRow, c.Lock.ETag)
}
