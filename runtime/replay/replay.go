// Package replay remembers which client assertions (jti) the idp has
// accepted, in an Azure Table shared by every idp replica, so that an
// assertion is accepted once per deployment, not once per replica.
//
// Each use is one entity inserted with AddEntity, which fails with
// EntityAlreadyExists if the entity is there: the table service decides
// atomically which of two replicas saw an assertion first. Entities are
// partitioned by the hour their assertion expires in (the expiry is part
// of the signed assertion, so every replica computes the same partition);
// an expired assertion is refused before the table is asked, so old
// partitions are only garbage, swept now and then.
package replay

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"
)

// DefaultTable is the table's name in the gateway's storage account.
const DefaultTable = "botereplay"

// partitionFormat buckets entities by the UTC hour their assertion expires.
const partitionFormat = "2006010215"

// Client is what Table needs of *aztables.Client.
type Client interface {
	AddEntity(ctx context.Context, entity []byte, opts *aztables.AddEntityOptions) (aztables.AddEntityResponse, error)
	NewListEntitiesPager(opts *aztables.ListEntitiesOptions) *runtime.Pager[aztables.ListEntitiesResponse]
	DeleteEntity(ctx context.Context, partitionKey, rowKey string, opts *aztables.DeleteEntityOptions) (aztables.DeleteEntityResponse, error)
}

var _ Client = (*aztables.Client)(nil)

// Table is a replay store in one Azure Table.
type Table struct {
	client Client
	now    func() time.Time
	logger *slog.Logger

	mu        sync.Mutex
	nextSweep time.Time
}

// NewTable returns a store over client. now defaults to time.Now, logger
// to slog.Default().
func NewTable(client Client, now func() time.Time, logger *slog.Logger) (*Table, error) {
	if client == nil {
		return nil, errors.New("replay: client is nil")
	}
	if now == nil {
		now = time.Now
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Table{client: client, now: now, logger: logger}, nil
}

type entity struct {
	PartitionKey string `json:"PartitionKey"`
	RowKey       string `json:"RowKey"`
	// ForgetAfter is when the assertion stops being valid anyway.
	ForgetAfter string `json:"ForgetAfter"`
	// ForgetAfterType makes ForgetAfter an Edm.DateTime.
	ForgetAfterType string `json:"ForgetAfter@odata.type"`
}

// Use records key until forgetAfter. It reports false if key was already
// recorded, by this replica or any other.
func (t *Table) Use(ctx context.Context, key string, forgetAfter time.Time) (bool, error) {
	sum := sha256.Sum256([]byte(key))
	e, err := json.Marshal(entity{
		PartitionKey: forgetAfter.UTC().Format(partitionFormat),
		RowKey:       hex.EncodeToString(sum[:]),
		ForgetAfter:  forgetAfter.UTC().Format(time.RFC3339Nano), ForgetAfterType: "Edm.DateTime",
	})
	if err != nil {
		return false, err
	}
	_, err = t.client.AddEntity(ctx, e, nil)
	var re *azcore.ResponseError
	switch {
	case err == nil:
	case errors.As(err, &re) && re.StatusCode == http.StatusConflict:
		return false, nil
	default:
		return false, fmt.Errorf("cannot record assertion use: %w", err)
	}
	t.maybeSweep(ctx)
	return true, nil
}

// maybeSweep deletes, at most every ten minutes, the partitions of
// assertions that expired over an hour ago. Failures are logged: stale
// entities only cost storage.
func (t *Table) maybeSweep(ctx context.Context) {
	now := t.now()
	t.mu.Lock()
	due := !now.Before(t.nextSweep)
	if due {
		t.nextSweep = now.Add(10 * time.Minute)
	}
	t.mu.Unlock()
	if !due {
		return
	}
	before := now.Add(-time.Hour).UTC().Format(partitionFormat)
	filter := fmt.Sprintf("PartitionKey lt '%s'", before)
	sel := "PartitionKey,RowKey"
	pager := t.client.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel})
	deleted := 0
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.logger.Warn("cannot list expired assertion records", "err", err)
			return
		}
		for _, raw := range page.Entities {
			var k struct{ PartitionKey, RowKey string }
			if err := json.Unmarshal(raw, &k); err != nil {
				continue
			}
			if _, err := t.client.DeleteEntity(ctx, k.PartitionKey, k.RowKey, nil); err != nil {
				t.logger.Warn("cannot delete expired assertion record", "err", err)
				return
			}
			deleted++
		}
	}
	if deleted > 0 {
		t.logger.Debug("expired assertion records deleted", "count", deleted)
	}
}
