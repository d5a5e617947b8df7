package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/internal/aztable"
)

// DefaultTable is the audit table's name when no prefix is given.
const DefaultTable = "boteaudit"

// TableName is the audit table of a table prefix (the ops server's
// --table-prefix): prefix + "audit", DefaultTable without one. The Pulumi
// component provisions TableName("").
func TableName(prefix string) string { return aztable.Name(prefix, "audit", DefaultTable) }

// Query limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	// maxScan bounds the entities one query reads across every partition;
	// a query that would read more must be narrowed (since, tenant).
	maxScan = 50000
)

// Query selects records. Zero fields match everything.
type Query struct {
	// Tenants limits the query to these tenants (Platform names the
	// platform's records); nil reads every partition.
	Tenants []string
	// Since keeps records at or after it.
	Since time.Time
	// Before keeps records older than the record with this id (a cursor:
	// the last id of the previous page).
	Before string
	// Principal keeps one principal's records: those whose Principal or
	// Subject it is.
	Principal string
	// Limit is the most records returned (DefaultLimit if 0, at most
	// MaxLimit).
	Limit int
}

// Validate names the first bad field.
func (q Query) Validate() error {
	switch {
	case q.Limit < 0 || q.Limit > MaxLimit:
		return fmt.Errorf("limit %d must be between 1 and %d", q.Limit, MaxLimit)
	case q.Before != "" && !validID(q.Before):
		return fmt.Errorf("before %q is not a record id", q.Before)
	case q.Tenants != nil && len(q.Tenants) == 0:
		return errors.New("tenants is empty: nothing to read")
	}
	for _, t := range q.Tenants {
		if t == "" || strings.ContainsAny(t, "'/\\#?") {
			return fmt.Errorf("tenant %q cannot name a partition", t)
		}
	}
	return nil
}

// validID reports whether id has the form newID produces.
func validID(id string) bool {
	if len(id) != 19+1+16 || id[19] != '-' {
		return false
	}
	for i, c := range []byte(id) {
		if i != 19 && !(c >= '0' && c <= '9' || i > 19 && c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Page is a query's answer: records newest first, and whether more match
// (ask again with Before set to the last record's id).
type Page struct {
	Records []Record `json:"records"`
	More    bool     `json:"more"`
}

// ErrExists: a record with this id is already stored.
var ErrExists = errors.New("audit record already exists")

// Options configure Open.
type Options struct {
	// Table is the table name (DefaultTable if empty).
	Table string
	// CreateTable creates it when missing (local use; in Azure the
	// infrastructure creates it).
	CreateTable bool
}

// Table is the audit log in Azure Table Storage. It only ever adds
// entities.
type Table struct {
	c *aztables.Client
}

// Open returns the audit table of svc.
func Open(ctx context.Context, svc *aztables.ServiceClient, opts Options) (*Table, error) {
	name := cmp.Or(opts.Table, DefaultTable)
	if opts.CreateTable {
		if err := aztable.Create(ctx, svc, name); err != nil {
			return nil, err
		}
	}
	return &Table{c: svc.NewClient(name)}, nil
}

// entity is a record as stored: plain properties, so that the table reads
// well in any Table Storage tool and exports as is.
type entity struct {
	PartitionKey string
	RowKey       string
	Time         string
	Tenant       string
	Principal    string
	Subject      string
	Action       string
	Object       string
	Result       string
	Status       int
	RequestID    string
	Client       string
	Detail       string
}

// Append adds r and returns it as stored (normalized, with its id). key,
// if not empty, is the event's natural identity: appending an event with
// the same time and key again fails with ErrExists and stores nothing.
func (t *Table) Append(ctx context.Context, r Record, key string) (Record, error) {
	if r.Time.IsZero() {
		return Record{}, errors.New("cannot append an audit record without a time")
	}
	r = r.normalize()
	r.ID = newID(r.Time, key)
	e, err := json.Marshal(entity{
		PartitionKey: r.Partition(), RowKey: r.ID, Time: r.Time.Format(time.RFC3339Nano),
		Tenant: r.Tenant, Principal: r.Principal, Subject: r.Subject, Action: r.Action, Object: r.Object, Result: r.Result,
		Status: r.Status, RequestID: r.RequestID, Client: r.Client, Detail: r.Detail,
	})
	if err != nil {
		return Record{}, fmt.Errorf("cannot encode audit record: %w", err)
	}
	if _, err := t.c.AddEntity(ctx, e, nil); err != nil {
		var re *azcore.ResponseError
		if errors.As(err, &re) && (re.StatusCode == http.StatusConflict || re.ErrorCode == string(aztables.EntityAlreadyExists)) {
			return Record{}, fmt.Errorf("%s/%s: %w", r.Partition(), r.ID, ErrExists)
		}
		return Record{}, fmt.Errorf("cannot append audit record: %w", err)
	}
	return r, nil
}

// Query returns the records matching q, newest first.
func (t *Table) Query(ctx context.Context, q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, fmt.Errorf("invalid audit query: %w", err)
	}
	limit := cmp.Or(q.Limit, DefaultLimit)
	var conds []string
	if !q.Since.IsZero() {
		// Row keys of records at or after Since are at most its inverted
		// time followed by "-...", which sorts before ".".
		conds = append(conds, "RowKey lt "+quote(timeKey(q.Since)+"."))
	}
	if q.Before != "" {
		conds = append(conds, "RowKey gt "+quote(q.Before))
	}
	if q.Principal != "" {
		conds = append(conds, "(Principal eq "+quote(q.Principal)+" or Subject eq "+quote(q.Principal)+")")
	}
	var all []Record
	if q.Tenants == nil {
		// Every partition: a scan, bounded by the since range and maxScan.
		recs, err := t.list(ctx, strings.Join(conds, " and "), maxScan+1)
		if err != nil {
			return Page{}, err
		}
		if len(recs) > maxScan {
			return Page{}, fmt.Errorf("the audit query matches more than %d records across all tenants: narrow it with since or a tenant", maxScan)
		}
		all = recs
	} else {
		for _, tenant := range slices.Compact(slices.Sorted(slices.Values(q.Tenants))) {
			f := strings.Join(append([]string{"PartitionKey eq " + quote(tenant)}, conds...), " and ")
			recs, err := t.list(ctx, f, limit+1) // a partition lists newest first
			if err != nil {
				return Page{}, err
			}
			all = append(all, recs...)
		}
	}
	slices.SortFunc(all, func(a, b Record) int { return cmp.Compare(a.ID, b.ID) })
	p := Page{Records: all}
	if len(all) > limit {
		p.Records, p.More = all[:limit], true
	}
	if p.Records == nil {
		p.Records = []Record{}
	}
	return p, nil
}

// list reads up to max records matching filter, in table order.
func (t *Table) list(ctx context.Context, filter string, max int) ([]Record, error) {
	opts := &aztables.ListEntitiesOptions{Top: to.Ptr(int32(min(max, 1000)))}
	if filter != "" {
		opts.Filter = to.Ptr(filter)
	}
	var out []Record
	p := t.c.NewListEntitiesPager(opts)
	for p.More() && len(out) < max {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot query the audit log: %w", err)
		}
		for _, raw := range page.Entities {
			var e entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("cannot decode audit entity: %w", err)
			}
			at, err := time.Parse(time.RFC3339Nano, e.Time)
			if err != nil {
				return nil, fmt.Errorf("audit entity %s/%s has a bad time %q: %w", e.PartitionKey, e.RowKey, e.Time, err)
			}
			out = append(out, Record{
				ID: e.RowKey, Time: at, Tenant: e.Tenant, Principal: e.Principal, Subject: e.Subject, Action: e.Action, Object: e.Object,
				Result: e.Result, Status: e.Status, RequestID: e.RequestID, Client: e.Client, Detail: e.Detail,
			})
		}
	}
	return out, nil
}

// quote renders s as an OData string literal.
func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
