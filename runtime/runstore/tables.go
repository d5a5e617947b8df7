package runstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/internal/aztable"
	"github.com/botehq/platform/runtime/runs"
)

// DefaultTablePrefix names the store's tables unless Config says otherwise.
const DefaultTablePrefix = "boteruns"

// Table names, after the prefix.
const (
	tenantsTable    = "tenants"
	workspacesTable = "workspaces"
	runsTable       = "runs"
	runIndexTable   = "runindex"
	agentsTable     = "agents"
	activeTable     = "active"
)

// Options tune a Tables store.
type Options struct {
	// TablePrefix starts every table name (letters and digits, starting
	// with a letter, at most 50; DefaultTablePrefix if empty), so several
	// stores can share an account.
	TablePrefix string
	// CreateTables creates missing tables (local use; in Azure the
	// infrastructure creates them).
	CreateTables bool
}

// Validate names the first bad option.
func (o Options) Validate() error {
	p := o.TablePrefix
	if len(p) > 50 {
		return fmt.Errorf("runstore options: TablePrefix %q is longer than 50 characters", p)
	}
	for i, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return fmt.Errorf("runstore options: TablePrefix %q must be letters and digits, starting with a letter", p)
		}
	}
	return nil
}

// Tables is the Azure Table Storage runs.Store.
type Tables struct {
	tenants, workspaces, runs, index, agents, active *aztables.Client
	now                                              func() time.Time
}

var _ runs.Store = (*Tables)(nil)

// TableNames lists the store's tables for prefix (DefaultTablePrefix if
// empty), in a fixed order; the Pulumi components provision exactly these.
func TableNames(prefix string) []string {
	if prefix == "" {
		prefix = DefaultTablePrefix
	}
	names := []string{tenantsTable, workspacesTable, runsTable, runIndexTable, agentsTable, activeTable}
	for i, n := range names {
		names[i] = prefix + n
	}
	return names
}

// Open returns a store on the tables of svc (built by the caller from a
// connection string, or from the table endpoint in the stack outputs and
// an Entra ID credential).
func Open(ctx context.Context, svc *aztables.ServiceClient, opts Options) (*Tables, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	names := TableNames(opts.TablePrefix)
	clients := make([]*aztables.Client, len(names))
	for i, n := range names {
		clients[i] = svc.NewClient(n)
		if opts.CreateTables {
			if err := aztable.Create(ctx, svc, n); err != nil {
				return nil, err
			}
		}
	}
	return &Tables{tenants: clients[0], workspaces: clients[1], runs: clients[2], index: clients[3], agents: clients[4], active: clients[5], now: time.Now}, nil
}

// Keys. Tenant and workspace ids never hold '|' (runs.CheckScope), so
// "tenant|workspace" is one to one; a tenant's run partitions are exactly
// the keys in ["tenant|", "tenant}").
const (
	tenantsPartition = "tenant"
	lockRow          = "lock"
	runRowFirst      = "run-"
	runRowEnd        = "run." // '.' follows '-': every run id sorts in [run-, run.)
)

func runsPartition(tenant, workspace string) string { return tenant + "|" + workspace }

// timeKey renders t so that string order is time order, for filters.
func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z")
}

// Entities carry the value as JSON split over string properties Data0..,
// plus the few plain properties that queries filter on. The service counts
// strings in UTF-16: a property holds at most 64 KiB (30 KiB of UTF-8 is
// at most 30 Ki characters), an entity 1 MiB (400 KiB of UTF-8 is at most
// 800 KiB).
const (
	chunkBytes   = 30 << 10
	maxDataBytes = 400 << 10
)

func encode(pk, rk string, v any, props map[string]any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("cannot encode %T: %w", v, err)
	}
	if len(data) > maxDataBytes {
		return nil, fmt.Errorf("cannot store %s/%s: %d bytes encoded, the limit is %d", pk, rk, len(data), maxDataBytes)
	}
	e := map[string]any{"PartitionKey": pk, "RowKey": rk}
	for k, v := range props {
		e[k] = v
	}
	n := 0
	for len(data) > 0 {
		end := min(chunkBytes, len(data))
		for end < len(data) && !utf8.RuneStart(data[end]) {
			end-- // never split a UTF-8 sequence across properties
		}
		e["Data"+strconv.Itoa(n)] = string(data[:end])
		data, n = data[end:], n+1
	}
	e["Chunks"] = n
	return json.Marshal(e)
}

// decode fills v from an entity's Data properties and returns its ETag
// (from odata.etag when listed).
func decode(raw []byte, v any) (string, error) {
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", fmt.Errorf("cannot decode entity: %w", err)
	}
	n, _ := e["Chunks"].(float64)
	var b strings.Builder
	for i := range int(n) {
		s, _ := e["Data"+strconv.Itoa(i)].(string)
		b.WriteString(s)
	}
	if err := json.Unmarshal([]byte(b.String()), v); err != nil {
		return "", fmt.Errorf("cannot decode entity %v/%v: %w", e["PartitionKey"], e["RowKey"], err)
	}
	etag, _ := e["odata.etag"].(string)
	return etag, nil
}

func isCode(err error, status int, codes ...aztables.TableErrorCode) bool {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	if re.StatusCode == status {
		return true
	}
	for _, c := range codes {
		if re.ErrorCode == string(c) {
			return true
		}
	}
	return false
}

func notFound(err error) bool {
	return isCode(err, http.StatusNotFound, aztables.ResourceNotFound, aztables.EntityNotFound)
}

func (s *Tables) getEntity(ctx context.Context, c *aztables.Client, pk, rk string, v any) (string, error) {
	resp, err := c.GetEntity(ctx, pk, rk, nil)
	if err != nil {
		if notFound(err) {
			return "", runs.ErrNotFound
		}
		return "", fmt.Errorf("cannot read %s/%s: %w", pk, rk, err)
	}
	if _, err := decode(resp.Value, v); err != nil {
		return "", err
	}
	return string(resp.ETag), nil
}

func (s *Tables) add(ctx context.Context, c *aztables.Client, pk, rk string, v any, props map[string]any) error {
	e, err := encode(pk, rk, v, props)
	if err != nil {
		return err
	}
	if _, err := c.AddEntity(ctx, e, nil); err != nil {
		if isCode(err, http.StatusConflict, aztables.EntityAlreadyExists) {
			return fmt.Errorf("%s/%s: %w", pk, rk, runs.ErrExists)
		}
		return fmt.Errorf("cannot add %s/%s: %w", pk, rk, err)
	}
	return nil
}

// list returns every entity of c matching filter, decoded by each.
func list(ctx context.Context, c *aztables.Client, filter string, each func(raw []byte) error) error {
	p := c.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: to.Ptr(filter)})
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("cannot query %q: %w", filter, err)
		}
		for _, raw := range page.Entities {
			if err := each(raw); err != nil {
				return err
			}
		}
	}
	return nil
}

// quote renders s as an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// CreateTenant implements runs.Store.
func (s *Tables) CreateTenant(ctx context.Context, t runs.Tenant) error {
	if err := runs.CheckScope(t.ID, ""); err != nil {
		return err
	}
	return s.add(ctx, s.tenants, tenantsPartition, t.ID, t, nil)
}

// GetTenant implements runs.Store.
func (s *Tables) GetTenant(ctx context.Context, id string) (runs.Tenant, error) {
	if err := runs.CheckScope(id, ""); err != nil {
		return runs.Tenant{}, err
	}
	var t runs.Tenant
	if _, err := s.getEntity(ctx, s.tenants, tenantsPartition, id, &t); err != nil {
		return runs.Tenant{}, fmt.Errorf("tenant %s: %w", id, err)
	}
	return t, nil
}

// ListTenants implements runs.Store.
func (s *Tables) ListTenants(ctx context.Context) ([]runs.Tenant, error) {
	var out []runs.Tenant
	err := list(ctx, s.tenants, "PartitionKey eq "+quote(tenantsPartition), func(raw []byte) error {
		var t runs.Tenant
		_, err := decode(raw, &t)
		out = append(out, t)
		return err
	})
	return out, err
}

// CreateWorkspace implements runs.Store.
func (s *Tables) CreateWorkspace(ctx context.Context, w runs.Workspace) error {
	if err := runs.CheckScope(w.Tenant, w.Name); err != nil {
		return err
	}
	return s.add(ctx, s.workspaces, w.Tenant, w.Name, w, nil)
}

// GetWorkspace implements runs.Store.
func (s *Tables) GetWorkspace(ctx context.Context, tenant, name string) (runs.Workspace, error) {
	if err := runs.CheckScope(tenant, name); err != nil {
		return runs.Workspace{}, err
	}
	var w runs.Workspace
	etag, err := s.getEntity(ctx, s.workspaces, tenant, name, &w)
	if err != nil {
		return runs.Workspace{}, fmt.Errorf("workspace %s/%s: %w", tenant, name, err)
	}
	w.ETag = etag
	return w, nil
}

// UpdateWorkspace implements runs.Store.
func (s *Tables) UpdateWorkspace(ctx context.Context, w runs.Workspace) error {
	if err := runs.CheckScope(w.Tenant, w.Name); err != nil {
		return err
	}
	if w.ETag == "" {
		return fmt.Errorf("workspace %s/%s: update needs the ETag it was read with", w.Tenant, w.Name)
	}
	e, err := encode(w.Tenant, w.Name, w, nil)
	if err != nil {
		return err
	}
	etag := azcore.ETag(w.ETag)
	_, err = s.workspaces.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	switch {
	case notFound(err):
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrNotFound)
	case isCode(err, http.StatusPreconditionFailed, aztables.UpdateConditionNotSatisfied):
		return fmt.Errorf("workspace %s/%s: %w", w.Tenant, w.Name, runs.ErrConflict)
	case err != nil:
		return fmt.Errorf("cannot update workspace %s/%s: %w", w.Tenant, w.Name, err)
	}
	return nil
}

// ListWorkspaces implements runs.Store.
func (s *Tables) ListWorkspaces(ctx context.Context, tenant string) ([]runs.Workspace, error) {
	if err := runs.CheckScope(tenant, ""); err != nil {
		return nil, err
	}
	var out []runs.Workspace
	err := list(ctx, s.workspaces, "PartitionKey eq "+quote(tenant), func(raw []byte) error {
		var w runs.Workspace
		etag, err := decode(raw, &w)
		w.ETag = etag
		out = append(out, w)
		return err
	})
	return out, err
}

// indexEntry maps a run id to its workspace within a tenant.
type indexEntry struct {
	Workspace string `json:"workspace"`
}

// GetRun implements runs.Store.
func (s *Tables) GetRun(ctx context.Context, tenant, id string) (runs.Run, error) {
	if err := runs.CheckScope(tenant, ""); err != nil {
		return runs.Run{}, err
	}
	if !runs.ValidRunID(id) {
		return runs.Run{}, fmt.Errorf("run %q in tenant %s: %w", id, tenant, runs.ErrNotFound)
	}
	var ix indexEntry
	if _, err := s.getEntity(ctx, s.index, tenant, id, &ix); err != nil {
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
func (s *Tables) ListRuns(ctx context.Context, tenant, workspace string, q runs.RunQuery) ([]runs.Run, error) {
	if err := runs.CheckScope(tenant, workspace); err != nil {
		return nil, err
	}
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
func (s *Tables) GetLock(ctx context.Context, tenant, workspace string) (runs.Lock, error) {
	if err := runs.CheckScope(tenant, workspace); err != nil {
		return runs.Lock{}, err
	}
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
		if err := runs.CheckScope(q.Tenant, ""); err != nil {
			return nil, err
		}
		filter = "PartitionKey eq " + quote(q.Tenant)
	}
	type hint struct {
		tenant, workspace, etag string
		updated                 time.Time
	}
	var hints []hint
	err := list(ctx, s.active, filter, func(raw []byte) error {
		var keys struct{ PartitionKey, RowKey string }
		if err := json.Unmarshal(raw, &keys); err != nil {
			return fmt.Errorf("cannot decode active entry: %w", err)
		}
		var e activeEntry
		etag, err := decode(raw, &e)
		hints = append(hints, hint{keys.PartitionKey, keys.RowKey, etag, e.Updated})
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
			_, err := s.active.DeleteEntity(ctx, h.tenant, h.workspace, &aztables.DeleteEntityOptions{IfMatch: &etag})
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
		hint, err := encode(c.Tenant, c.Workspace, activeEntry{Updated: s.now().UTC()}, nil)
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
func (s *Tables) indexRun(ctx context.Context, tenant, workspace, id string) error {
	ix, err := encode(tenant, id, indexEntry{Workspace: workspace}, nil)
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
	if _, err := s.getEntity(ctx, s.index, tenant, id, &prev); err != nil {
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

func agentProps(a runs.Agent) map[string]any {
	return map[string]any{"LastHeartbeat": timeKey(a.LastHeartbeat), "Silent": a.Silent}
}

// PutAgent implements runs.Store.
func (s *Tables) PutAgent(ctx context.Context, a runs.Agent) error {
	if err := runs.CheckScope(a.Tenant, ""); err != nil {
		return err
	}
	e, err := encode(a.Tenant, a.ID, a, agentProps(a))
	if err != nil {
		return err
	}
	if a.ETag == "" {
		_, err = s.agents.UpsertEntity(ctx, e, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace})
	} else {
		etag := azcore.ETag(a.ETag)
		_, err = s.agents.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	}
	switch {
	case a.ETag != "" && (notFound(err) || isCode(err, http.StatusPreconditionFailed, aztables.UpdateConditionNotSatisfied)):
		return fmt.Errorf("agent %s/%s: %w", a.Tenant, a.ID, runs.ErrConflict)
	case err != nil:
		return fmt.Errorf("cannot store agent %s/%s: %w", a.Tenant, a.ID, err)
	}
	return nil
}

// GetAgent implements runs.Store.
func (s *Tables) GetAgent(ctx context.Context, tenant, id string) (runs.Agent, error) {
	if err := runs.CheckScope(tenant, ""); err != nil {
		return runs.Agent{}, err
	}
	var a runs.Agent
	etag, err := s.getEntity(ctx, s.agents, tenant, id, &a)
	if err != nil {
		return runs.Agent{}, fmt.Errorf("agent %s/%s: %w", tenant, id, err)
	}
	a.ETag = etag
	return a, nil
}

// ListAgents implements runs.Store.
func (s *Tables) ListAgents(ctx context.Context, tenant string) ([]runs.Agent, error) {
	if err := runs.CheckScope(tenant, ""); err != nil {
		return nil, err
	}
	return s.listAgents(ctx, "PartitionKey eq "+quote(tenant))
}

// ListSilentAgents implements runs.Store.
func (s *Tables) ListSilentAgents(ctx context.Context, cutoff time.Time) ([]runs.Agent, error) {
	return s.listAgents(ctx, "Silent eq false and LastHeartbeat lt "+quote(timeKey(cutoff)))
}

func (s *Tables) listAgents(ctx context.Context, filter string) ([]runs.Agent, error) {
	var out []runs.Agent
	err := list(ctx, s.agents, filter, func(raw []byte) error {
		var a runs.Agent
		etag, err := decode(raw, &a)
		a.ETag = etag
		out = append(out, a)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Tenant < out[j].Tenant })
	return out, err
}
