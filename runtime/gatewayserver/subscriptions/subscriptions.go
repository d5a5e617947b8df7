// Package subscriptions stores which connectors of a tenant subscribe to
// which topic, in Azure Table Storage.
//
// Layout: one entity per subscription, PartitionKey = tenant + "|" + topic,
// RowKey = connector. A broadcast's fan-out is therefore one single-partition
// query, and tenants can never meet in one partition. Table keys may not
// contain '/', which topics may; PartitionKey writes it as ':', a character
// neither tenant ids nor topics use, so the mapping stays one to one.
package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/data/aztables"

	"github.com/botehq/platform/runtime/envelope"
	"github.com/botehq/platform/runtime/ids"
	"github.com/botehq/platform/runtime/internal/aztable"
)

// DefaultTable is the table name used when none is configured.
const DefaultTable = "botesubscriptions"

// Store is the Table Storage subscription store.
type Store struct {
	table *aztables.Client
}

// New returns a store on table of svc, creating the table if needed.
func New(ctx context.Context, svc *aztables.ServiceClient, table string) (*Store, error) {
	if table == "" {
		table = DefaultTable
	}
	if err := aztable.Create(ctx, svc, table); err != nil {
		return nil, err
	}
	return &Store{table: svc.NewClient(table)}, nil
}

// PartitionKey is the partition holding the subscribers of topic in tenant.
func PartitionKey(tenant, topic string) string {
	return tenant + "|" + strings.ReplaceAll(topic, "/", ":")
}

func validate(tenant, topic, connector string) error {
	if err := ids.Validate("tenant", tenant); err != nil {
		return err
	}
	if connector != "" {
		if err := ids.Validate("connector", connector); err != nil {
			return err
		}
	}
	return envelope.ValidateTopic(topic)
}

type entity struct {
	aztables.Entity
	Tenant       string
	Topic        string
	Connector    string
	SubscribedAt time.Time
}

// Subscribe adds connector of tenant to topic. Subscribing twice is fine.
func (s *Store) Subscribe(ctx context.Context, tenant, topic, connector string) error {
	if err := validate(tenant, topic, connector); err != nil {
		return err
	}
	data, err := json.Marshal(entity{
		Entity: aztables.Entity{PartitionKey: PartitionKey(tenant, topic), RowKey: connector},
		Tenant: tenant, Topic: topic, Connector: connector, SubscribedAt: time.Now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("cannot encode subscription: %w", err)
	}
	if _, err := s.table.UpsertEntity(ctx, data, &aztables.UpsertEntityOptions{UpdateMode: aztables.UpdateModeReplace}); err != nil {
		return fmt.Errorf("cannot subscribe %s/%s to %q: %w", tenant, connector, topic, err)
	}
	return nil
}

// Unsubscribe removes connector of tenant from topic. Removing a
// subscription that does not exist is fine.
func (s *Store) Unsubscribe(ctx context.Context, tenant, topic, connector string) error {
	if err := validate(tenant, topic, connector); err != nil {
		return err
	}
	_, err := s.table.DeleteEntity(ctx, PartitionKey(tenant, topic), connector, nil)
	var re *azcore.ResponseError
	if err != nil && !(errors.As(err, &re) && re.StatusCode == 404) {
		return fmt.Errorf("cannot unsubscribe %s/%s from %q: %w", tenant, connector, topic, err)
	}
	return nil
}

// Subscribers returns the connectors of tenant subscribed to topic, in
// RowKey order, with one partition query.
func (s *Store) Subscribers(ctx context.Context, tenant, topic string) ([]string, error) {
	if err := validate(tenant, topic, ""); err != nil {
		return nil, err
	}
	filter := fmt.Sprintf("PartitionKey eq '%s'", strings.ReplaceAll(PartitionKey(tenant, topic), "'", "''"))
	sel := "RowKey"
	pager := s.table.NewListEntitiesPager(&aztables.ListEntitiesOptions{Filter: &filter, Select: &sel})
	var out []string
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("cannot list subscribers of %q in %s: %w", topic, tenant, err)
		}
		for _, raw := range page.Entities {
			var e aztables.Entity
			if err := json.Unmarshal(raw, &e); err != nil {
				return nil, fmt.Errorf("cannot decode subscription: %w", err)
			}
			out = append(out, e.RowKey)
		}
	}
	return out, nil
}
