package notify

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/aztable"
)

// DefaultTable names the notifications table without a prefix.
const DefaultTable = "botenotify"

// TableName is the notifications table of the ops server's tables with
// prefix ("" for DefaultTable).
func TableName(prefix string) string { return aztable.Name(prefix, "notify", DefaultTable) }

// Table keeps destinations and deliveries in one Azure table:
//
//	PK tenant    RK "d|<id>"                 a destination (with its secret)
//	PK tenant    RK "l|<delivery id>"        a delivery as logged
//	PK "outbox"  RK "<tenant>|<delivery id>" a delivery still to send (Due, LeaseUntil)
//
// The outbox is one partition all notifiers read with one query per poll;
// a lease is an ETag-conditional update of the outbox row.
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

const outboxPartition = "outbox"

// encode is v as an entity: its JSON over Data0.. properties
// (aztable.SetData: an event may be larger than one property holds) and,
// for the outbox, Due.
func encode(pk, rk string, v any, due time.Time) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	e := map[string]any{"PartitionKey": pk, "RowKey": rk}
	if !due.IsZero() {
		e["Due"] = aztable.TimeKey(due)
	}
	aztable.SetData(e, data)
	return json.Marshal(e)
}

func decode(raw []byte, v any) (azcore.ETag, error) {
	data, etag, err := aztable.GetData(raw)
	if err != nil {
		return "", err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return "", fmt.Errorf("cannot decode a notification entity: %w", err)
	}
	return azcore.ETag(etag), nil
}

func (t *Table) list(ctx context.Context, filter string, top int, each func(raw []byte) error) error {
	opts := &aztables.ListEntitiesOptions{Filter: to.Ptr(filter)}
	if top > 0 {
		opts.Top = to.Ptr(int32(top))
	}
	p := t.c.NewListEntitiesPager(opts)
	for p.More() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("cannot query notifications: %w", err)
		}
		for _, raw := range page.Entities {
			if err := each(raw); err != nil {
				return err
			}
		}
		if top > 0 {
			return nil
		}
	}
	return nil
}

// AddDestination implements Store.
func (t *Table) AddDestination(ctx context.Context, d Destination) error {
	e, err := encode(string(d.Tenant), "d|"+d.ID, d, time.Time{})
	if err != nil {
		return err
	}
	_, err = t.c.AddEntity(ctx, e, nil)
	switch {
	case aztable.StatusCode(err) == http.StatusConflict:
		return fmt.Errorf("notification %s/%s: %w", d.Tenant, d.ID, ErrExists)
	case err != nil:
		return fmt.Errorf("cannot add notification %s/%s: %w", d.Tenant, d.ID, err)
	}
	return nil
}

func rangeFilter(pk, prefix string) string {
	return fmt.Sprintf("PartitionKey eq '%s' and RowKey ge '%s|' and RowKey lt '%s}'", pk, prefix, prefix)
}

// Destinations implements Store.
func (t *Table) Destinations(ctx context.Context, tenant ids.TenantID) ([]Destination, error) {
	var out []Destination
	err := t.list(ctx, rangeFilter(string(tenant), "d"), 0, func(raw []byte) error {
		var d Destination
		_, err := decode(raw, &d)
		out = append(out, d)
		return err
	})
	return out, err
}

// DeleteDestination implements Store.
func (t *Table) DeleteDestination(ctx context.Context, tenant ids.TenantID, id string) error {
	_, err := t.c.DeleteEntity(ctx, string(tenant), "d|"+id, nil)
	switch {
	case aztable.StatusCode(err) == http.StatusNotFound:
		return fmt.Errorf("tenant %s has no notification %s: %w", tenant, id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("cannot delete notification %s/%s: %w", tenant, id, err)
	}
	return nil
}

// Enqueue implements Store: the log row first, then the outbox row, each
// added only if absent, so an enqueue repeated after a failure completes
// and one repeated after success changes nothing.
func (t *Table) Enqueue(ctx context.Context, ds []Delivery) error {
	for _, d := range ds {
		logRow, err := encode(string(d.Tenant), "l|"+d.ID, d, time.Time{})
		if err != nil {
			return err
		}
		if _, err := t.c.AddEntity(ctx, logRow, nil); aztable.StatusCode(err) == http.StatusConflict {
			continue // enqueued before
		} else if err != nil {
			return fmt.Errorf("cannot log delivery %s: %w", d.ID, err)
		}
		out, err := encode(outboxPartition, string(d.Tenant)+"|"+d.ID, d, d.Due)
		if err != nil {
			return err
		}
		if _, err := t.c.AddEntity(ctx, out, nil); err != nil && aztable.StatusCode(err) != http.StatusConflict {
			return fmt.Errorf("cannot enqueue delivery %s: %w", d.ID, err)
		}
	}
	return nil
}

// Due implements Store.
func (t *Table) Due(ctx context.Context, now time.Time, limit int) ([]Delivery, error) {
	var out []Delivery
	filter := fmt.Sprintf("PartitionKey eq '%s' and Due le '%s'", outboxPartition, aztable.TimeKey(now))
	err := t.list(ctx, filter, limit, func(raw []byte) error {
		var d Delivery
		etag, err := decode(raw, &d)
		if err != nil {
			return err
		}
		if !d.LeaseUntil.After(now) {
			d.ETag = string(etag)
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// Lease implements Store.
func (t *Table) Lease(ctx context.Context, d Delivery, until time.Time) (Delivery, error) {
	d.LeaseUntil = until.UTC()
	e, err := encode(outboxPartition, string(d.Tenant)+"|"+d.ID, d, d.Due)
	if err != nil {
		return Delivery{}, err
	}
	etag := azcore.ETag(d.ETag)
	resp, err := t.c.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	switch aztable.StatusCode(err) {
	case 0:
	case http.StatusPreconditionFailed, http.StatusNotFound:
		return Delivery{}, fmt.Errorf("delivery %s: %w", d.ID, ErrConflict)
	default:
		return Delivery{}, fmt.Errorf("cannot lease delivery %s: %w", d.ID, err)
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("cannot lease delivery %s: %w", d.ID, err)
	}
	d.ETag = string(resp.ETag)
	return d, nil
}

// Record implements Store.
func (t *Table) Record(ctx context.Context, d Delivery) error {
	etag := azcore.ETag(d.ETag)
	rk := string(d.Tenant) + "|" + d.ID
	var err error
	if d.State == Pending {
		var e []byte
		if e, err = encode(outboxPartition, rk, d, d.Due); err != nil {
			return err
		}
		_, err = t.c.UpdateEntity(ctx, e, &aztables.UpdateEntityOptions{IfMatch: &etag, UpdateMode: aztables.UpdateModeReplace})
	} else {
		_, err = t.c.DeleteEntity(ctx, outboxPartition, rk, &aztables.DeleteEntityOptions{IfMatch: &etag})
	}
	switch aztable.StatusCode(err) {
	case 0:
	case http.StatusPreconditionFailed, http.StatusNotFound:
		return fmt.Errorf("delivery %s: %w", d.ID, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("cannot record delivery %s: %w", d.ID, err)
	}
	d.LeaseUntil = time.Time{}
	logRow, err := encode(string(d.Tenant), "l|"+d.ID, d, time.Time{})
	if err != nil {
		return err
	}
	if _, err := t.c.UpsertEntity(ctx, logRow, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("cannot log delivery %s: %w", d.ID, err)
	}
	return nil
}

// Deliveries implements Store.
func (t *Table) Deliveries(ctx context.Context, tenant ids.TenantID, destination string, limit int) ([]Delivery, error) {
	var out []Delivery
	err := t.list(ctx, rangeFilter(string(tenant), "l"), 0, func(raw []byte) error {
		var d Delivery
		if _, err := decode(raw, &d); err != nil {
			return err
		}
		if destination == "" || d.Destination == destination {
			out = append(out, d)
		}
		return nil
	})
	return newest(out, limit), err
}
